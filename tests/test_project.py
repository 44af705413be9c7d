"""The project itself: locked as a ``directory`` package with its build system, built offline
(``build-project``), installed on top of the dependency env, or editable from the working tree.

The sample project builds with tinybackend (served by the loopback index, like its dependencies)
or, in the ``network`` test, with real setuptools (its wheel downloaded once, then served by the
loopback index too), and depends on ``alpha``, which needs ``beta``, which needs ``alpha``: a
cycle.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w
from conftest import build_demo_index
from contract import assert_ok, run_cli
from indexserver import IndexServer
from packaging.pylock import Pylock

from wheelhouse.project import EDITABLE_VERSION, editable_wheel, read_project

SAMPLE_PYPROJECT = {
    "build-system": {"requires": ["tinybackend"], "build-backend": "tinybackend"},
    "project": {
        "name": "sample-app",
        "version": "0.3",
        "dependencies": ["alpha"],
        "scripts": {"sample": "sample_app.cli:main"},
    },
    "dependency-groups": {"dev": ["epsilon"]},
}


SETUPTOOLS = "setuptools==80.9.0"


def make_sample(directory: Path, backend: str = "tinybackend") -> Path:
    """The sample project's working tree, built with ``backend`` (tinybackend or setuptools)."""
    directory.mkdir(parents=True)
    data = dict(SAMPLE_PYPROJECT)
    if backend == "setuptools":
        data["build-system"] = {"requires": [SETUPTOOLS], "build-backend": "setuptools.build_meta"}
        data["tool"] = {"setuptools": {"packages": ["sample_app"]}}
    (directory / "pyproject.toml").write_text(tomli_w.dumps(data))
    pkg = directory / "sample_app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("GREETING = 'hello from the tree'\n")
    (pkg / "cli.py").write_text(
        "import alpha, beta, sample_app\n\ndef main():\n    print(sample_app.GREETING)\n"
    )
    return directory


@pytest.fixture
def locked(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path, Path]:
    """(project dir, its lock, the fetched wheelhouse)."""
    project = make_sample(tmp_path / "sample")
    lock = project / "pylock.toml"
    assert_ok(
        run_cli(capsys, "lock", project, "--group", "dev", "--index-url", sample_index.simple_url,
                "-o", lock)
    )  # fmt: skip
    wheelhouse = tmp_path / "wheelhouse"
    assert_ok(run_cli(capsys, "fetch", lock, "-d", wheelhouse))
    return project, lock, wheelhouse


def run(program: Path | str, *args: str) -> str:
    return subprocess.run(
        [str(program), *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_lock_records_the_project_and_its_build_system(locked: tuple[Path, Path, Path]) -> None:
    _project, lock, wheelhouse = locked
    data = tomllib.loads(lock.read_text())
    Pylock.from_dict(data)  # still a valid PEP 751 lock
    entries = {p["name"]: p for p in data["packages"]}
    assert entries["sample-app"] == {
        "name": "sample-app",
        "version": "0.3",
        "directory": {"path": ".", "editable": True},
    }
    assert data["tool"]["wheelhouse"]["project"] == "sample-app"
    (target,) = data["tool"]["wheelhouse"]["targets"]
    assert target["project-build"] == ["tinybackend-1.0-py3-none-any.whl"]
    assert "tinybackend-1.0-py3-none-any.whl" in target["build-artifacts"]
    # Runtime: the project's dependencies and the dev group, never the build system.
    assert target["artifacts"] == [
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "epsilon-2.0-py3-none-any.whl",
    ]
    assert (wheelhouse / "tinybackend-1.0-py3-none-any.whl").is_file()


def test_build_project_is_offline_and_reproducible(
    locked: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, lock, wheelhouse = locked
    outs = []
    for n in (1, 2):
        out = tmp_path / f"dist{n}"
        assert_ok(
            run_cli(capsys, "build-project", lock, "--project", project, "-w", wheelhouse,
                    "-o", out)
        )  # fmt: skip
        outs.append(sorted(out.iterdir()))
    assert [p.name for p in outs[0]] == ["sample_app-0.3-py3-none-any.whl"]
    assert outs[0][0].read_bytes() == outs[1][0].read_bytes()


def test_the_app_is_installed_on_top_of_the_dependency_env(
    locked: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, lock, wheelhouse = locked
    dist = tmp_path / "dist"
    assert_ok(run_cli(capsys, "build-project", lock, "--project", project, "-w", wheelhouse,
                      "-o", dist))  # fmt: skip
    env = tmp_path / "env"
    assert_ok(run_cli(capsys, "install", lock, "-w", wheelhouse, "--prefix", env))
    app = tmp_path / "app"
    assert_ok(
        run_cli(capsys, "install", "--wheel", dist, "--prefix", app, "--extra-site-packages", env)
    )
    assert run(app / "bin" / "sample") == "hello from the tree\n"
    # The dependencies' .pth files still run (epsilon's sets LOADED) through the env's site dir.
    assert run(app / "bin" / "python", "-c", "import epsilon_pkg; print(epsilon_pkg.LOADED)") == (
        "1\n"
    )
    # The project's files are in the app prefix only; the env holds dependencies only.
    assert list(app.glob("lib/python*/site-packages/sample_app/cli.py"))
    assert not list(env.glob("lib/python*/site-packages/sample_app"))


def test_editable_install_sees_edits_without_reinstalling(
    locked: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, lock, wheelhouse = locked
    dev = tmp_path / "dev"
    assert_ok(
        run_cli(capsys, "install", lock, "-w", wheelhouse, "--prefix", dev, "--editable", project)
    )
    assert run(dev / "bin" / "sample") == "hello from the tree\n"
    (project / "sample_app" / "__init__.py").write_text("GREETING = 'edited'\n")
    assert run(dev / "bin" / "sample") == "edited\n"
    probe = "import importlib.metadata as m, epsilon_pkg; print(m.version('sample-app'))"
    assert run(dev / "bin" / "python", "-c", probe) == "0.3\n"


def test_editable_wheel_of_a_dynamic_version_and_src_layout(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "src" / "p_mod").mkdir(parents=True)
    data = {"project": {"name": "P.Mod", "dynamic": ["version"]}}
    (project / "pyproject.toml").write_text(tomli_w.dumps(data))
    info = read_project(project)
    assert info.version is None
    wheel = editable_wheel(info, str(project / "src"), tmp_path)
    assert wheel.name == f"p_mod-{EDITABLE_VERSION}-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("__editable__.p_mod.pth") == f"{project / 'src'}\n".encode()


PROJECT_NIX = """
{{ python ? "{python}" }}:
(import {root}/nixlib).mkProject {{
  lock = ./pylock.toml; inherit python; src = ./.; devTools = [ {tools} ];
}}
"""


@pytest.mark.integration
def test_nix_targets_develop_build_and_bdist_wheel(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_nix_targets(make_sample(tmp_path / "sample"), sample_index, tmp_path, capsys)


@pytest.mark.integration
@pytest.mark.network
def test_nix_targets_of_a_setuptools_project(
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real setuptools builds the project offline inside Nix, from the locked wheelhouse."""
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "-d", str(root), SETUPTOOLS],
        check=True,
    )  # fmt: skip
    server = index_server_factory(root)
    project = make_sample(tmp_path / "sample", backend="setuptools")
    check_nix_targets(project, server, tmp_path, capsys)
    lock = tomllib.loads((project / "pylock.toml").read_text())
    (target,) = lock["tool"]["wheelhouse"]["targets"]
    assert [f.split("-")[0] for f in target["project-build"]] == ["setuptools"]


def check_nix_targets(
    project: Path, index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """develop (edits show, re-entry builds nothing), build (console script), bdist_wheel
    (rebuilt with --check: the same bytes)."""
    from conftest import HOST_PYTHON, ROOT, require
    from test_nix import nix_build

    sample_index = index
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    (tools / "bin" / "devtool").write_text("#!/bin/sh\necho devtool here\n")
    (tools / "bin" / "devtool").chmod(0o755)
    (project / "default.nix").write_text(
        PROJECT_NIX.format(python=HOST_PYTHON, root=ROOT, tools=f'"{tools}"')
    )
    assert_ok(
        run_cli(capsys, "lock", project, "--group", "dev", "--python", HOST_PYTHON,
                "--index-url", sample_index.simple_url, "-o", project / "pylock.toml")
    )  # fmt: skip

    def shell(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require("nix-shell"), str(project), "-A", "develop", "--option", "substituters", "",
             "--run", command],
            capture_output=True, text=True, check=False, cwd=tmp_path,
        )  # fmt: skip

    probe = "sample; devtool; python -c 'import sample_app, sys; print(sample_app.__file__)'"
    first = shell(probe)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.splitlines() == [
        "hello from the tree",
        "devtool here",
        str(project / "sample_app" / "__init__.py"),
    ]
    assert "wheelhouse develop:" in first.stderr
    # An edit shows in the shell at once, and re-entering builds nothing.
    (project / "sample_app" / "__init__.py").write_text("GREETING = 'edited'\n")
    again = shell("sample")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout == "edited\n"
    assert "will be built" not in again.stderr, again.stderr

    built = nix_build(project, "build")
    assert built.returncode == 0, built.stderr[-3000:]
    app = Path(built.stdout.strip().splitlines()[-1])
    assert run(app / "bin" / "sample") == "edited\n"

    wheel = nix_build(project, "bdist_wheel")
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    out = Path(wheel.stdout.strip().splitlines()[-1])
    assert [p.name for p in out.iterdir()] == ["sample_app-0.3-py3-none-any.whl"]
    check = nix_build(project, "bdist_wheel", "--check")  # build again, compare bytes
    assert check.returncode == 0, check.stderr[-3000:]


@pytest.mark.integration
@pytest.mark.network
def test_example_sample_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/sample-app as its default.nix says: locked from the real index, then its
    application and its development shell (src layout: the editable root is src/)."""
    import shutil

    from conftest import HOST_PYTHON, ROOT, require
    from test_nix import nix_build

    project = tmp_path / "sample-app"
    shutil.copytree(ROOT / "examples" / "sample-app", project,
                    ignore=shutil.ignore_patterns("pylock.toml", "result*", "__pycache__"))
    (project / "default.nix").write_text(
        (project / "default.nix").read_text().replace("import ../..", f"import {ROOT}")
    )  # fmt: skip
    assert_ok(run_cli(capsys, "lock", project, "--group", "dev", "--python", HOST_PYTHON,
                      "-o", project / "pylock.toml"))  # fmt: skip
    built = nix_build(project, "build")
    assert built.returncode == 0, built.stderr[-3000:]
    app = Path(built.stdout.strip().splitlines()[-1])
    assert run(app / "bin" / "sample-app").startswith("hello from sample-app (requests 2.")
    shell = subprocess.run(
        [require("nix-shell"), str(project), "-A", "develop", "--option", "substituters", "",
         "--run", "python -c 'import sample_app, pytest; print(sample_app.__file__)'"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert shell.stdout == f"{project / 'src' / 'sample_app' / '__init__.py'}\n"
