"""``wheelhouse export --format requirements``: real pip installs the exported file and gets the
same files as ``wheelhouse install`` of the same lock.

The project (one lock, the loopback index): the demo set of conftest (a cycle, ``gamma`` with a
``none-any`` AND a binary wheel, ``delta`` with binary wheels only, ``epsilon`` with a ``.pth``)
plus ``app`` locked as an sdist (``--no-binary``), whose build needs ``tinybackend<2`` and the
sdist-only ``tinyhelper`` (build-only: never exported), and ``tinybackend`` 2.0 at runtime.

What "the same files" means: every file under ``site-packages`` with the same relative path and
the same bytes, except what records the installer rather than the package: bytecode
(``__pycache__``: pip writes timestamp pycs, wheelhouse unchecked-hash ones), and in
``.dist-info`` ``INSTALLER`` (names the tool), ``RECORD`` (lists those pycs and the installer's own
files), ``REQUESTED`` and ``direct_url.json`` (pip's record of how it was asked). Console scripts
must exist under the same names in ``bin`` (their shebangs name each env's interpreter).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import build_demo_index
from contract import assert_error, assert_ok, run_cli
from indexserver import IndexServer
from sdistmaker import build_sdist_index

from wheelhouse import backend, export, lockfile
from wheelhouse.cli import main
from wheelhouse.errors import LockError, UsageError
from wheelhouse.model import Artifact

pytestmark = pytest.mark.integration

INSTALLER_FILES = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


@dataclass(frozen=True)
class Project:
    lock: Path
    wheelhouse: Path
    built: Path
    env: Path
    server: IndexServer


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("files")
    build_demo_index(root, uuid.uuid4().hex)
    build_sdist_index(root)
    base = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp, IndexServer(root) as server:
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("WHEELHOUSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
            mp.delenv(var, raising=False)
        lock, wh, built, env = base / "pylock.toml", base / "wh", base / "built", base / "env"
        reqs = ["alpha", "gamma", "epsilon", "app", "tinybackend==2.0", "--no-binary", "app"]
        assert main(["lock", *reqs, "--index-url", server.simple_url, "-o", str(lock)]) == 0
        assert main(["fetch", str(lock), "-d", str(wh)]) == 0
        assert main(["build-sdists", str(lock), "-w", str(wh), "-o", str(built)]) == 0
        args = ["install", str(lock), "-w", str(wh), "--prefix", str(env), "--built", str(built)]
        assert main(args) == 0
        yield Project(lock, wh, built, env, server)


def installed(prefix: Path) -> dict[str, str]:
    """site-packages as {relative path: sha256}, without what records the installer."""
    (site,) = prefix.glob("lib/python*/site-packages")
    files = {}
    for path in sorted(site.rglob("*")):
        rel = path.relative_to(site)
        if path.is_dir() or "__pycache__" in rel.parts:
            continue
        if rel.parent.name.endswith(".dist-info") and rel.name in INSTALLER_FILES:
            continue
        files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def scripts(prefix: Path) -> set[str]:
    own = ("python", "activate", "Activate", "pip")
    return {p.name for p in (prefix / "bin").iterdir() if not p.name.startswith(own)}


def pip_install(requirements: Path, venv: Path, index_url: str | None) -> None:
    """Real pip into a fresh venv, isolated from this machine's configuration."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        SOURCE_DATE_EPOCH=backend.SOURCE_DATE_EPOCH,  # app's wheel records it, as in build-sdists
    )
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    cmd += ["--require-hashes", "--no-deps", "-r", str(requirements)]
    if index_url is not None:
        cmd += ["--index-url", index_url]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("urls", [False, True], ids=["index", "urls"])
def test_exported_requirements_install_the_same_files_with_pip(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str], urls: bool
) -> None:
    requirements = tmp_path / "requirements.txt"
    args = ["export", str(project.lock), "--format", "requirements", "-o", str(requirements)]
    outcome = run_cli(capsys, *args, *(["--urls"] if urls else []))
    assert_ok(outcome)
    text = requirements.read_text()
    lock = lockfile.load(project.lock)
    runtime = [a for a in lockfile.artifacts_for(lock, lock.targets[0]) if not a.build_only]
    chosen = {a.package: a for a in runtime}
    # Runtime only: the build-only tinyhelper and tinybackend 1.0 are not there; gamma is pinned
    # to its none-any wheel's hash (the binary one's is absent), app to its sdist's.
    assert "tinyhelper" not in text and "tinybackend==1.0" not in text
    gamma = chosen["gamma"]
    assert gamma.filename.endswith("none-any.whl") and f"sha256:{gamma.sha256}" in text
    assert f"sha256:{chosen['app'].sha256}" in text and chosen["app"].kind == "sdist"
    assert ("--no-binary app" in text) is not urls
    pinned = [ln for ln in text.splitlines() if "--hash=sha256:" in ln]
    assert len(pinned) == len(chosen) == 7

    venv = tmp_path / "venv"
    pip_install(requirements, venv, project.server.simple_url)
    assert installed(venv) == installed(project.env)
    assert scripts(venv) == scripts(project.env) == {"alpha"}


def test_foreign_lock_with_indexes_installs_from_the_exported_index_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``pip lock`` file given a PEP 751 ``index`` per package (as uv writes them): the export
    carries ``--index-url``, and pip, given no index at all, installs what ``install`` does."""
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    with IndexServer(root) as server:
        lock = tmp_path / "pylock.toml"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "lock", "alpha", "gamma", "epsilon", "--index-url",
             server.simple_url, "-o", str(lock)],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        text = lock.read_text()
        assert "index =" not in text  # pip lock records none: add them as uv would
        lock.write_text(
            text.replace("\nversion = ", f'\nindex = "{server.simple_url}"\nversion = ')
        )
        wh, env = tmp_path / "wh", tmp_path / "env"
        assert_ok(run_cli(capsys, "fetch", lock, "-d", wh))
        assert_ok(run_cli(capsys, "install", lock, "-w", wh, "--prefix", env))
        requirements = tmp_path / "deploy" / "requirements.txt"
        requirements.parent.mkdir()
        assert_ok(run_cli(capsys, "export", lock, "-o", requirements))
        exported = requirements.read_text()
        assert f"\n--index-url {server.simple_url}\n" in exported
        assert "chosen for the interpreter that exported it" in exported
        venv = tmp_path / "venv"
        pip_install(requirements, venv, None)
    assert installed(venv) == installed(env)
    assert scripts(venv) == scripts(env) == {"alpha"}


def test_export_to_stdout_is_deterministic(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_cli(capsys, "export", project.lock)
    assert_ok(first)
    second = run_cli(capsys, "export", project.lock, "-o", tmp_path / "r.txt")
    assert_ok(second)
    assert first.out == (tmp_path / "r.txt").read_text()
    assert first.out.startswith("# Exported by `wheelhouse export` from pylock.toml, target cp3")
    # wheelhouse's own locks record no index: pip's command line or configuration gives it.
    assert "--index-url" not in first.out


def test_unknown_target_is_one_error_line(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "requirements.txt"
    outcome = run_cli(capsys, "export", project.lock, "--target", "cp27-nope", "-o", out)
    assert_error(outcome, LockError, str(project.lock), "'cp27-nope'", "--target")
    assert not out.exists()


def test_output_that_is_a_directory_is_one_error_line(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_cli(capsys, "export", project.lock, "-o", tmp_path)
    assert_error(outcome, UsageError, str(tmp_path), "give a file name")
    outcome = run_cli(capsys, "export", project.lock, "-o", tmp_path / "missing" / "r.txt")
    assert_error(outcome, UsageError, "missing", "choose another path")
    assert list(tmp_path.iterdir()) == []


# --- pure rendering -------------------------------------------------------------------------------


def art(name: str, version: str, kind: str = "wheel", **kw: str) -> Artifact:
    filename = f"{name}-{version}" + ("-py3-none-any.whl" if kind == "wheel" else ".tar.gz")
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return Artifact(filename, name, version, digest, kind, **kw)  # type: ignore[arg-type]


def test_indexes_paths_urls_and_credentials() -> None:
    found = [
        export.Entry(art("b", "1", url="https://a.test/f/b.whl"), "https://u:pw@a.test/simple"),
        export.Entry(art("c", "2", "sdist", url="https://a.test/f/c.tgz"), "https://a.test/simple"),
        export.Entry(art("a", "3", url="https://x.test/f/a.whl"), "https://x.test/simple"),
        export.Entry(art("d", "4", path="wheels/d-4-py3-none-any.whl")),
    ]
    text = export.render_requirements(
        found, lock_name="pylock.toml", target="t", lock_dir="/p", output_dir="/p/deploy"
    )
    body = text.split("\n", 3)[3]
    assert body == (
        "--index-url https://a.test/simple\n"
        "--extra-index-url https://x.test/simple\n"
        "--find-links ../wheels\n"
        "--no-binary c\n"
        f"a==3 \\\n    --hash=sha256:{found[2].artifact.sha256}\n"
        f"b==1 \\\n    --hash=sha256:{found[0].artifact.sha256}\n"
        f"c==2 \\\n    --hash=sha256:{found[1].artifact.sha256}\n"
        f"d==4 \\\n    --hash=sha256:{found[3].artifact.sha256}\n"
    )
    assert "pw" not in text
    urls = export.render_requirements(
        found, lock_name="l", target=None, lock_dir="/p", output_dir="/p", urls=True
    )
    assert "a @ https://x.test/f/a.whl \\\n" in urls and "--index-url" not in urls
    assert "--find-links wheels\n" in urls and "d==4 \\\n" in urls
    with_project = export.render_requirements(
        found, lock_name="l", target="t", lock_dir="/p", output_dir="/p", project="sample-app"
    )
    assert "# The project sample-app itself is not listed" in with_project
    assert with_project.count("--hash=") == 4
