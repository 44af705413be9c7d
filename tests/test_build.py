"""wheelhouse.build and `wheelhouse build-sdists` / `install --built`: sdists built offline from
the wheelhouse, against a loopback index serving sdists and a tiny backend made on the fly.

The demo project (locked once per module): ``app`` 1.0 locked from its sdist (``--no-binary``),
built with ``tinybackend<2`` plus, dynamically, ``tinyhelper`` (itself only an sdist, so it is
built first); the env also gets ``tinybackend`` 2.0 at runtime, so the same name has a build-only
version too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from indexserver import IndexServer
from sdistmaker import APP_PYPROJECT, RawMember, build_sdist_index, make_sdist, swap_locked_file
from wheelmaker import make_wheel

from wheelhouse import backend, build, overrides
from wheelhouse.cli import main
from wheelhouse.errors import BuildError, InstallError
from wheelhouse.model import Artifact

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Project:
    lock: Path
    wheelhouse: Path
    server: IndexServer

    def copy(self, dest: Path) -> Project:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.lock, dest / "pylock.toml")
        shutil.copytree(self.wheelhouse, dest / "wh")
        return Project(dest / "pylock.toml", dest / "wh", self.server)

    def swap_sdist(self, path: Path, filename: str = "app-1.0.tar.gz") -> None:
        """Replace a locked sdist's bytes (wheelhouse and lock hash), as a hostile index would."""
        swap_locked_file(self.lock, self.wheelhouse / filename, path.read_bytes())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("files")
    build_sdist_index(root)
    base = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp, IndexServer(root) as server:
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("WHEELHOUSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
            mp.delenv(var, raising=False)
        lock = base / "pylock.toml"
        args = ["app", "tinybackend==2.0", "--no-binary", "app", "--index-url", server.simple_url]
        assert main(["lock", *args, "-o", str(lock)]) == 0
        assert main(["fetch", str(lock), "-d", str(base / "wh")]) == 0
        yield Project(lock, base / "wh", server)


def build_sdists(p: Project, out: Path, *extra: str) -> int:
    return main(["build-sdists", str(p.lock), "-w", str(p.wheelhouse), "-o", str(out), *extra])


def install(p: Project, prefix: Path, *extra: str) -> int:
    return main(["install", str(p.lock), "-w", str(p.wheelhouse), "--prefix", str(prefix), *extra])


def test_build_then_install_built(project: Project, tmp_path: Path) -> None:
    out, env = tmp_path / "out", tmp_path / "env"
    assert build_sdists(project, out, "--jobs", "2") == 0
    # OUT holds the built wheels only: app and tinyhelper (which app's build needed first).
    assert sorted(p.name for p in out.iterdir()) == [
        "app-1.0-py3-none-any.whl",
        "tinyhelper-1.0-py3-none-any.whl",
    ]
    assert install(project, env, "--built", str(out)) == 0
    probe = (
        "import app, app._built_with as b, tinybackend, importlib.util as u; "
        "print(b.tinyhelper, b.SOURCE_DATE_EPOCH, tinybackend.VERSION, u.find_spec('tinyhelper'))"
    )
    result = subprocess.run(
        [env / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True
    )
    # Built with tinyhelper (a build-only sdist, never installed) and the fixed epoch; the env has
    # the runtime tinybackend 2.0, not the build-only 1.0.
    assert result.stdout.split() == ["helped", backend.SOURCE_DATE_EPOCH, "2.0", "None"]


def test_rebuild_is_byte_identical(project: Project, tmp_path: Path) -> None:
    assert build_sdists(project, tmp_path / "a") == 0
    assert build_sdists(project, tmp_path / "b", "--jobs", "2") == 0
    for wheel in (tmp_path / "a").iterdir():
        assert wheel.read_bytes() == (tmp_path / "b" / wheel.name).read_bytes()


def test_install_needs_the_built_wheels(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(project, tmp_path / "env") == 1
    assert "app-1.0.tar.gz: only an sdist is locked" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert install(project, tmp_path / "env", "--built", str(empty)) == 1
    err = capsys.readouterr().err
    assert "app-1.0.tar.gz" in err and "has no wheel of it" in err
    assert "wheelhouse build-sdists" in err
    assert not (tmp_path / "env").exists()


def test_overrides_apply_to_their_package_only(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(
        '{"path": ["/nonexistent/bin"], "packages": {"App": {"env": {"APP_FLAVOUR": "spicy"}}}}'
    )
    out = tmp_path / "out"
    assert build_sdists(project, out, "--overrides", str(overrides)) == 0
    extract = tmp_path / "x"
    shutil.unpack_archive(out / "app-1.0-py3-none-any.whl", extract, "zip")
    assert "APP_FLAVOUR = 'spicy'" in (extract / "app" / "_built_with.py").read_text()
    overrides.write_text('{"packages": {"psycopg2": {"env": {}}}}')
    assert build_sdists(project, tmp_path / "out2", "--overrides", str(overrides)) == 2
    err = capsys.readouterr().err
    assert "overrides name psycopg2" in err and "app, tinyhelper" in err


def test_network_access_during_a_build_fails_naming_the_package(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "pylock.toml"
    args = ["netpkg", "--no-binary", "netpkg", "--index-url", project.server.simple_url]
    assert main(["lock", *args, "-o", str(lock)]) == 0
    assert main(["fetch", str(lock), "-d", str(tmp_path / "wh")]) == 0
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["build-sdists", str(lock), "-w", str(tmp_path / "wh"), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.startswith("error: building netpkg: build_wheel failed")
    # In a network namespace (this machine allows them), the hook still speaks first.
    assert "build_wheel failed (exit status 1) in a network namespace;" in err
    assert "network access is not allowed while building netpkg" in err
    assert not out.exists()


def run_swapped(
    project: Project, tmp_path: Path, sdist_path: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    p = project.copy(tmp_path / "p")
    p.swap_sdist(sdist_path)
    out = tmp_path / "out"
    assert build_sdists(p, out) == 1
    assert not out.exists()  # nothing, not even the wheels that did build
    return capsys.readouterr().err


UNSAFE = {
    "dotdot": RawMember("app-1.0/../../evil.py", data=b"x"),
    "absolute": RawMember("/tmp/wheelhouse-evil.py", data=b"x"),
    "symlink": RawMember("app-1.0/link", tarfile.SYMTYPE, linkname="../../../etc/passwd"),
    "hardlink": RawMember("app-1.0/hard", tarfile.LNKTYPE, linkname="../etc/passwd"),
    "device": RawMember("app-1.0/null", tarfile.CHRTYPE),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_sdist_is_refused_and_nothing_is_written(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    member = UNSAFE[case]
    bad = make_sdist(tmp_path, "app", "1.0", pyproject=APP_PYPROJECT, raw=[member])
    err = run_swapped(project, tmp_path, bad, capsys)
    assert err.startswith(f"error: app-1.0.tar.gz: member {member.name!r}"), err
    assert not Path("/tmp/wheelhouse-evil.py").exists()


def test_sdist_without_pkg_info(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = make_sdist(tmp_path, "app", "1.0", pyproject=APP_PYPROJECT, pkg_info=False)
    err = run_swapped(project, tmp_path, bad, capsys)
    assert "error: app-1.0.tar.gz: has no app-1.0/PKG-INFO" in err


def test_built_wheel_must_match_the_lock(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    py = {**APP_PYPROJECT, "tool": {"tinybackend": {"wheel-version": "2.0"}}}
    bad = make_sdist(tmp_path, "app", "1.0", pyproject=py)
    err = run_swapped(project, tmp_path, bad, capsys)
    assert "the backend built app-2.0-py3-none-any.whl" in err
    assert "the lock says app 1.0" in err


def test_failed_build_shows_the_backend_output_tail(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [f"compiler says {i}" for i in range(30)]
    py = {**APP_PYPROJECT, "tool": {"tinybackend": {"print": lines, "fail": True}}}
    bad = make_sdist(tmp_path, "app", "1.0", pyproject=py)
    err = run_swapped(project, tmp_path, bad, capsys)
    assert err.startswith("error: building app: build_wheel failed (exit status 3)")
    shown = [ln for ln in err.splitlines() if "compiler says" in ln]
    assert shown == [f"  | compiler says {i}" for i in range(15, 30)]


def test_missing_build_env_in_lock_is_clear(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = project.copy(tmp_path / "p")
    data = tomllib.loads(p.lock.read_text())
    import tomli_w

    del data["tool"]["wheelhouse"]["targets"][0]["sdist-builds"]
    p.lock.write_text(tomli_w.dumps(data))
    assert build_sdists(p, tmp_path / "out") == 1
    assert "has no build environment for app-1.0.tar.gz" in capsys.readouterr().err


# --- pure parts -----------------------------------------------------------------------------------


def test_build_environment_is_offline_reproducible_and_overridable() -> None:
    base = {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/leak",
        "PIP_INDEX_URL": "https://x",
        "https_proxy": "http://corp:3128",
        "NO_PROXY": "*",
        "LANG": "C.UTF-8",
    }
    document = overrides.parse_overrides(
        {
            "path": ["/cc/bin"],
            "pkg_config_path": ["/cc/lib/pkgconfig"],
            "packages": {"Foo": {"path": ["/pg/bin"], "env": {"PG": "1", "PATH": "/only"}}},
        }
    )
    env = build.build_environment(
        base, package="bar", env_bin="/e/bin", home="/h", overrides=document
    )
    assert env["PATH"] == os.pathsep.join(["/e/bin", "/cc/bin", "/usr/bin"])
    assert env["PKG_CONFIG_PATH"] == "/cc/lib/pkgconfig"
    assert "PYTHONPATH" not in env and "NO_PROXY" not in env and "PG" not in env
    assert env["PIP_NO_INDEX"] == "1" and env["https_proxy"] == build.BLACKHOLE_PROXY
    assert env["SOURCE_DATE_EPOCH"] == backend.SOURCE_DATE_EPOCH and env["LANG"] == "C.UTF-8"
    foo = build.build_environment(
        base, package="foo", env_bin="/e/bin", home="/h", overrides=document
    )
    assert foo["PG"] == "1" and foo["PATH"] == "/only"


def test_wheels_for_sdists_matches_name_and_version(tmp_path: Path) -> None:
    make_wheel(tmp_path, "My.Pkg", "1.0")
    make_wheel(tmp_path, "other", "2.0")
    sdist = Artifact("my_pkg-1.0.tar.gz", "my-pkg", "1.0", "0" * 64, "sdist")
    wheel = Artifact("x-1-py3-none-any.whl", "x", "1", "0" * 64, "wheel")
    ((art, path),) = build.wheels_for_sdists([sdist, wheel], tmp_path)
    assert path.name == "My_Pkg-1.0-py3-none-any.whl"
    assert art.kind == "wheel" and art.package == "my-pkg"
    assert art.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InstallError, match=r"other-9.tar.gz: only an sdist"):
        build.wheels_for_sdists(
            [Artifact("other-9.tar.gz", "other", "9", "0" * 64, "sdist")], tmp_path
        )


def test_build_error_is_a_wheelhouse_error() -> None:
    assert issubclass(BuildError, Exception) and BuildError("x").exit_code == 1
