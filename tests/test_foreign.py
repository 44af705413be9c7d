"""Locks written by the real uv, pip and pdm (versions pinned in requirements-dev.txt) against a
loopback index: ``fetch`` and ``install`` choose files for the target interpreter, ``lock --from``
keeps every pin and adds ``[tool.wheelhouse]``, and a real ``nix-build`` makes the env.

The index serves every file with a PEP 700 ``upload-time``, so uv's locks carry the TOML
datetimes Nix 2.8's ``fromTOML`` rejects. ``delta`` has only binary wheels, for cp311 and cp312,
and uv writes both into its locks: the file chosen shows which interpreter it was chosen for.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST_PYTHON, ROOT
from contract import assert_error, assert_ok, run_cli
from indexserver import IndexServer
from packaging.version import Version
from sdistmaker import make_backend_wheel, make_sdist, tiny_pyproject
from test_nix import PROJECT_NIX, nix_build
from test_nixlib import nix_eval
from wheelmaker import make_wheel

from wheelhouse.errors import InstallError, LockError, UsageError

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
UPLOAD_TIME = "2026-01-02T03:04:05.678Z"
CP311 = "cp311-cp311-manylinux_2_17_x86_64"
CP312 = "cp312-cp312-manylinux_2_17_x86_64"
CP313 = "cp313-cp313-manylinux_2_17_x86_64"
PROJECT_PYPROJECT = """\
[build-system]
requires = ["tinybackend"]
build-backend = "tinybackend"

[project]
name = "myapp"
version = "0.1"
requires-python = ">=3.11"
dependencies = ["alpha", "delta", "eps"]
"""
TOKEN = uuid.uuid4().hex
"""In alpha's bytes: each session's Nix wheelhouse is really built, not reused from before."""
PROBE = "import alpha, beta, delta, eps; print(delta.TAG, eps.BUILT, alpha.TOKEN == {token!r})"


def host_version() -> str:
    return subprocess.run(
        [HOST_PYTHON, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def index(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> IndexServer:
    root = tmp_path / "files"
    root.mkdir()
    make_wheel(
        root, "alpha", "1.0", {"alpha/__init__.py": f"TOKEN = {TOKEN!r}\n"}, requires=["beta"]
    )
    make_wheel(root, "beta", "1.0")
    for tag in (CP311, CP312, CP313):
        make_wheel(root, "delta", "1.0", {"delta/__init__.py": f"TAG = {tag[:5]!r}\n"}, tag=tag)
    make_backend_wheel(root)
    make_sdist(
        root,
        "eps",
        "1.0",
        {"eps/__init__.py": "BUILT = 'yes'\n"},
        pyproject=tiny_pyproject("eps", "1.0"),
    )
    for version in ("1.0", "2.0"):
        make_wheel(root, "gamma", version, {"gamma/__init__.py": f"V = {version!r}\n"})
    return index_server_factory(root, upload_time=UPLOAD_TIME)


def run(argv: list[str | Path], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def uv_env(tmp_path: Path) -> dict[str, str]:
    return {
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }


def pdm_env(tmp_path: Path, index: IndexServer) -> dict[str, str]:
    """pdm with nothing of this machine's: its own config file, cache and logs in tmp, the
    loopback index, no update check, no prompts, no venv."""
    return {
        "PDM_CONFIG_FILE": str(tmp_path / "pdm-config.toml"),
        "PDM_CACHE_DIR": str(tmp_path / "pdm-cache"),
        "PDM_LOG_DIR": str(tmp_path / "pdm-log"),
        "PDM_CHECK_UPDATE": "false",
        "PDM_NON_INTERACTIVE": "1",
        "PDM_USE_VENV": "false",
        "PDM_PYPI_URL": index.simple_url,
    }


def write_project(directory: Path) -> Path:
    directory.mkdir()
    (directory / "pyproject.toml").write_text(PROJECT_PYPROJECT)
    (directory / "myapp").mkdir()
    (directory / "myapp" / "__init__.py").write_text("")
    return directory


def pins(path: Path) -> set[tuple[str, str, str, str]]:
    """(name, version, location, sha256) of every file and directory a lock pins, build-only
    packages (which only wheelhouse adds) left out."""
    found = set()
    for pkg in tomllib.loads(path.read_text())["packages"]:
        if "wheelhouse-build" in pkg.get("marker", ""):
            continue
        files = [*pkg.get("wheels", []), *([pkg["sdist"]] if "sdist" in pkg else [])]
        for f in files:
            where = f.get("url") or f["path"]
            found.add((pkg["name"], pkg.get("version", ""), where, f["hashes"]["sha256"]))
        if "directory" in pkg:
            found.add((pkg["name"], "", pkg["directory"]["path"], ""))
    return found


def lock_from(
    capsys: pytest.CaptureFixture[str], foreign: Path, output: Path, *args: str
) -> tuple[dict[str, Any], str]:
    """``wheelhouse lock --from`` (``output`` may be ``foreign``, as the README does it): the pins
    stay, the lock is ours, running it again, also on its own output, changes nothing. Returns
    our lock and what the first run said."""
    expected = pins(foreign)
    copy = output.with_name(output.name + ".foreign")
    shutil.copy(foreign, copy)
    outcome = run_cli(capsys, "lock", "--from", foreign, *args, "-o", output)
    assert_ok(outcome)
    assert pins(output) == expected
    foreign = copy
    first = output.read_bytes()
    assert_ok(run_cli(capsys, "lock", "--from", foreign, *args, "-o", output))
    assert output.read_bytes() == first
    assert_ok(run_cli(capsys, "lock", "--from", output, *args, "-o", output))
    assert output.read_bytes() == first
    assert b"upload-time" not in first  # Nix 2.8 reads our locks without the datetime pass
    return tomllib.loads(first.decode()), outcome.err


def without_upload_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_upload_times(v) for k, v in value.items() if k != "upload-time"}
    if isinstance(value, list):
        return [without_upload_times(v) for v in value]
    return value


def env_python(prefix: Path) -> str:
    return str(prefix / "bin" / "python")


def fetch_build_install(
    capsys: pytest.CaptureFixture[str], lock: Path, tmp_path: Path, *, sdists: bool
) -> Path:
    """``fetch`` + ``build-sdists`` + ``install`` of our lock for /usr/bin/python3."""
    wheelhouse, built, prefix = tmp_path / "wh", tmp_path / "built", tmp_path / "env"
    assert_ok(run_cli(capsys, "fetch", lock, "-d", wheelhouse, "--python", HOST_PYTHON))
    extra: list[str | Path] = []
    if sdists:
        outcome = run_cli(
            capsys, "build-sdists", lock, "-w", wheelhouse, "-o", built, "--python", HOST_PYTHON
        )
        assert_ok(outcome)
        extra = ["--built", built]
    outcome = run_cli(
        capsys,
        "install",
        lock,
        "-w",
        wheelhouse,
        "--prefix",
        prefix,
        "--python",
        HOST_PYTHON,
        *extra,
    )
    assert_ok(outcome)
    return prefix


def nix_env(project: Path) -> Path:
    (project / "default.nix").write_text(PROJECT_NIX.format(python=HOST_PYTHON, root=ROOT))
    built = nix_build(project, "env")
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1])


def probe(python: str | Path, code: str = PROBE) -> str:
    return subprocess.run(
        [str(python), "-c", code.format(token=TOKEN)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


# --- uv export of a packaged project -------------------------------------------------------------


def test_uv_export_of_a_project_end_to_end(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = write_project(tmp_path / "project")
    env = uv_env(tmp_path)
    run(
        [BIN / "uv", "lock", "--index-url", index.simple_url, "--python", sys.executable],
        project,
        env,
    )
    run([BIN / "uv", "export", "--format", "pylock.toml", "-o", "pylock.toml"], project, env)
    foreign = project / "pylock.toml"
    text = foreign.read_text()
    assert "upload-time = 2026-01-02T03:04:05" in text and 'directory = { path = "."' in text

    # Nix reads uv's lock as Python does, upload-time aside (a string there, a datetime here).
    evaluated = nix_eval(f"(import {ROOT}/nixlib).readLock {foreign}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert without_upload_times(json.loads(evaluated.stdout)) == without_upload_times(
        tomllib.loads(text)
    )

    # Nix: the datetimes do not stop evaluation; the missing targets give one message with the fix.
    (project / "default.nix").write_text(PROJECT_NIX.format(python=HOST_PYTHON, root=ROOT))
    failed = nix_build(project, "env")
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.stderr
    assert f"{foreign} has no [tool.wheelhouse] targets" in errors[0]
    assert f"`wheelhouse lock --from {foreign}" in errors[0]

    # The CLI on uv's lock: install and build-sdists give the same advice about the sdist.
    wheelhouse = tmp_path / "wh-uv"
    assert_ok(run_cli(capsys, "fetch", foreign, "-d", wheelhouse, "--python", HOST_PYTHON))
    outcome = run_cli(
        capsys,
        "install",
        foreign,
        "-w",
        wheelhouse,
        "--prefix",
        tmp_path / "x",
        "--python",
        HOST_PYTHON,
    )
    assert_error(outcome, InstallError, "eps 1.0", "from uv", f"wheelhouse lock --from {foreign}")
    outcome = run_cli(capsys, "build-sdists", foreign, "-w", wheelhouse, "-o", tmp_path / "b")
    assert_error(outcome, UsageError, f"wheelhouse lock --from {foreign}")

    # lock --from in place, as README and the Nix message say: pins kept, the project recorded.
    data, said = lock_from(capsys, foreign, foreign, "--python", HOST_PYTHON)
    assert "info: " in said and "myapp is the project itself" in said
    tool = data["tool"]["wheelhouse"]
    assert tool["project"] == "myapp" and tool["pins-from"] == "uv"
    (target,) = tool["targets"]
    assert f"delta-1.0-{CP311}.whl" in target["artifacts"]
    assert target["sdist-builds"] == {"eps-1.0.tar.gz": ["tinybackend-1.0-py3-none-any.whl"]}
    # The project's own build system is locked too, as `wheelhouse lock PROJECT_DIR` does.
    assert target["project-build"] == ["tinybackend-1.0-py3-none-any.whl"]

    prefix = fetch_build_install(capsys, foreign, tmp_path, sdists=True)
    assert probe(env_python(prefix)) == "cp311 yes True"
    assert not list(prefix.glob("lib/python3.11/site-packages/myapp*"))

    env_path = nix_env(project)
    assert probe(env_path / "bin" / "python") == "cp311 yes True"
    # nixlib's project target: the project's wheel, built offline, over the same env.
    app = nix_build(project, "build")
    assert app.returncode == 0, app.stderr[-3000:]
    app_python = Path(app.stdout.strip().splitlines()[-1]) / "bin" / "python"
    assert probe(app_python, "import myapp, delta; print(myapp.__name__, delta.TAG)") == (
        "myapp cp311"
    )
    # ... its wheel alone (twice: the same bytes), and the shell with it editable from the tree.
    wheel = nix_build(project, "bdist_wheel")
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    built = Path(wheel.stdout.strip().splitlines()[-1])
    assert [p.name for p in built.iterdir()] == ["myapp-0.1-py3-none-any.whl"]
    assert nix_build(project, "bdist_wheel", "--check").returncode == 0
    shell = subprocess.run(
        ["nix-shell", str(project), "-A", "develop", "--option", "substituters", "", "--run",
         "python -c 'import myapp, delta; print(myapp.__file__, delta.TAG)'"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert shell.stdout == f"{project / 'myapp' / '__init__.py'} cp311\n"


# --- uv pip compile: files and markers for the target interpreter, not the tool's -----------------


def uv_compile(index: IndexServer, directory: Path, requirements: str) -> Path:
    """``uv pip compile --universal``: every platform's wheels, markers kept as markers."""
    directory.mkdir(exist_ok=True)
    (directory / "requirements.in").write_text(requirements)
    argv: list[str | Path] = [BIN / "uv", "pip", "compile", "--universal", "--python-version"]
    argv += ["3.11", "--format", "pylock.toml", "requirements.in", "-o", "pylock.toml"]
    run([*argv, "--index-url", index.simple_url], directory, uv_env(directory))
    return directory / "pylock.toml"


TAG_PROBE = "import delta; print(delta.TAG)"


def test_uv_pip_compile_lock_end_to_end(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    foreign = uv_compile(index, project, "alpha\ndelta\n")
    text = foreign.read_text()
    assert all(f"delta-1.0-{tag}.whl" in text for tag in (CP311, CP312, CP313))

    # Straight from uv's lock: the wheelhouse and the env hold the cp311 file only.
    wheelhouse, prefix = tmp_path / "wh", tmp_path / "env"
    assert_ok(run_cli(capsys, "fetch", foreign, "-d", wheelhouse, "--python", HOST_PYTHON))
    assert sorted(p.name for p in wheelhouse.iterdir()) == [
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        f"delta-1.0-{CP311}.whl",
    ]
    outcome = run_cli(
        capsys, "install", foreign, "-w", wheelhouse, "--prefix", prefix, "--python", HOST_PYTHON
    )
    assert_ok(outcome)
    assert probe(env_python(prefix), TAG_PROBE) == "cp311"

    data, _ = lock_from(capsys, foreign, foreign, "--python", HOST_PYTHON)
    (target,) = data["tool"]["wheelhouse"]["targets"]
    assert f"delta-1.0-{CP311}.whl" in target["artifacts"]
    env_path = nix_env(project)
    assert probe(env_path / "bin" / "python", TAG_PROBE) == "cp311"


def test_markers_are_evaluated_for_the_target_interpreter(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """uv forks on the micro version between the env's Python (/usr/bin/python3) and the one
    wheelhouse runs on: the env must get the entry whose marker holds for ITS version."""
    tool, host = platform.python_version(), host_version()
    if Version(host) >= Version(tool):
        pytest.skip(f"needs {HOST_PYTHON} ({host}) older than the tests' Python ({tool})")
    requirements = (
        f'gamma<2 ; python_full_version < "{tool}"\ngamma>=2 ; python_full_version >= "{tool}"\n'
    )
    foreign = uv_compile(index, tmp_path / "project", requirements)
    assert "python_full_version < " in foreign.read_text()

    ours_wh, theirs_wh = tmp_path / "wh-target", tmp_path / "wh-tool"
    assert_ok(run_cli(capsys, "fetch", foreign, "-d", ours_wh, "--python", HOST_PYTHON))
    assert_ok(run_cli(capsys, "fetch", foreign, "-d", theirs_wh))
    assert [p.name for p in ours_wh.iterdir()] == ["gamma-1.0-py3-none-any.whl"]
    assert [p.name for p in theirs_wh.iterdir()] == ["gamma-2.0-py3-none-any.whl"]
    prefix = tmp_path / "env"
    outcome = run_cli(
        capsys, "install", foreign, "-w", ours_wh, "--prefix", prefix, "--python", HOST_PYTHON
    )
    assert_ok(outcome)
    assert probe(env_python(prefix), "import gamma; print(gamma.V)") == "1.0"

    for python, wanted in [(HOST_PYTHON, "gamma-1.0"), (sys.executable, "gamma-2.0")]:
        data, _ = lock_from(capsys, foreign, tmp_path / "project" / "ours.toml", "--python", python)
        (target,) = data["tool"]["wheelhouse"]["targets"]
        assert target["artifacts"] == [f"{wanted}-py3-none-any.whl"], python


def other_python() -> str | None:
    """A CPython >= 3.11 of another X.Y than the tests' (on PATH or pyenv's), or None."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions")
    candidates = [shutil.which(f"python3.{minor}") for minor in (12, 13, 11)]
    candidates += sorted(str(p) for p in pyenv.glob("3.1[1-9].*/bin/python3"))
    for path in candidates:
        if path is None:
            continue
        proc = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0 and proc.stdout.strip() != "{}.{}".format(*sys.version_info[:2]):
            return path
    return None


def test_a_tool_on_another_python_chooses_for_the_target(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: wheelhouse runs on 3.12, the env is /usr/bin/python3's 3.11 (and the
    reverse: this 3.11 installs for the other Python). Only cp3XY extension wheels are offered,
    so a choice for the tool's interpreter would put a module into the env it cannot import."""
    other = other_python()
    if other is None:
        pytest.skip("needs a second CPython >= 3.11 (python3.12 or python3.13) on PATH")
    foreign = uv_compile(index, tmp_path / "project", "delta\n")
    # wheelhouse's dependencies are pure Python: the venv's site-packages serve any 3.x.
    site = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), site])}
    tool = [other, "-m", "wheelhouse"]
    wheelhouse, prefix = tmp_path / "wh", tmp_path / "env"
    run([*tool, "fetch", foreign, "-d", wheelhouse, "--python", HOST_PYTHON], tmp_path, env)
    run(
        [*tool, "install", foreign, "-w", wheelhouse, "--prefix", prefix, "--python", HOST_PYTHON],
        tmp_path,
        env,
    )
    assert probe(env_python(prefix), TAG_PROBE) == "cp311"

    other_tag = "cp{}{}".format(
        *Version(probe(other, "import platform; print(platform.python_version())")).release[:2]
    )
    wheelhouse, prefix = tmp_path / "wh-other", tmp_path / "env-other"
    assert_ok(run_cli(capsys, "fetch", foreign, "-d", wheelhouse, "--python", other))
    outcome = run_cli(
        capsys, "install", foreign, "-w", wheelhouse, "--prefix", prefix, "--python", other
    )
    assert_ok(outcome)
    assert probe(env_python(prefix), TAG_PROBE) == other_tag


# --- pip lock and pdm export -------------------------------------------------------------------


def test_pip_lock_end_to_end(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("alpha\ndelta\neps\n")
    argv: list[str | Path] = [sys.executable, "-m", "pip", "lock", "-r", "requirements.txt"]
    run([*argv, "-o", "pylock.toml", "--index-url", index.simple_url], project)
    foreign = project / "pylock.toml"
    assert 'created-by = "pip"' in foreign.read_text()

    # pip's lock names no index: the sdist's build requirements come from the one given.
    data, _ = lock_from(capsys, foreign, foreign, "--python", HOST_PYTHON, "-i", index.simple_url)
    assert data["tool"]["wheelhouse"]["pins-from"] == "pip"
    prefix = fetch_build_install(capsys, project / "pylock.toml", tmp_path, sdists=True)
    assert probe(env_python(prefix)) == "cp311 yes True"
    env_path = nix_env(project)
    assert probe(env_path / "bin" / "python") == "cp311 yes True"


def test_pdm_export_end_to_end(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = write_project(tmp_path / "project")
    env = pdm_env(tmp_path, index)
    run([BIN / "pdm", "lock"], project, env)
    run([BIN / "pdm", "export", "-f", "pylock", "-o", "pylock.toml"], project, env)
    foreign = project / "pylock.toml"
    text = foreign.read_text()
    assert 'created-by = "pdm"' in text and "in dependency_groups" in text  # pdm's group markers

    data, _ = lock_from(capsys, foreign, foreign, "--python", HOST_PYTHON, "-i", index.simple_url)
    assert data["tool"]["wheelhouse"]["pins-from"] == "pdm"
    prefix = fetch_build_install(capsys, project / "pylock.toml", tmp_path, sdists=True)
    assert probe(env_python(prefix)) == "cp311 yes True"
    env_path = nix_env(project)
    assert probe(env_path / "bin" / "python") == "cp311 yes True"


def test_pdm_export_after_a_failed_lock_is_called_empty(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pdm exports ``packages = []`` and exits 0 when it cannot lock: say so, write nothing."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "bad"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
        'dependencies = ["nosuchpkg"]\n'
    )
    run(
        [BIN / "pdm", "export", "-f", "pylock", "-o", "pylock.toml"],
        project,
        pdm_env(tmp_path, index),
    )
    foreign = project / "pylock.toml"
    assert "packages = []" in foreign.read_text()
    output = tmp_path / "ours.toml"
    outcome = run_cli(capsys, "lock", "--from", foreign, "-o", output)
    assert_error(outcome, LockError, str(foreign), "no packages", "created by pdm", "lock command")
    assert not output.exists()
    outcome = run_cli(capsys, "fetch", foreign, "-d", tmp_path / "wh")
    assert_error(outcome, LockError, "no packages", "pdm")
    assert not (tmp_path / "wh").exists()


# --- poetry: requirements.txt with hashes ---------------------------------------------------------


def test_poetry_export_requirements_lock(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `poetry export -f requirements.txt` writes (pins, markers, --hash lines): locked by
    pip with hash checking, the hashes end up in the lock."""
    root = index.root
    lines = []
    for file in ("alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"):
        name = file.split("-")[0]
        sha = hashlib.sha256((root / file).read_bytes()).hexdigest()
        lines.append(f'{name}==1.0 ; python_version >= "3.11" \\\n    --hash=sha256:{sha}')
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    output = tmp_path / "pylock.toml"
    outcome = run_cli(
        capsys,
        "lock",
        "-r",
        requirements,
        "--python",
        HOST_PYTHON,
        "--index-url",
        index.simple_url,
        "-o",
        output,
    )
    assert_ok(outcome)
    locked = {(n, v, sha) for n, v, _, sha in pins(output)}
    assert locked == {
        (f.split("-")[0], "1.0", hashlib.sha256((root / f).read_bytes()).hexdigest())
        for f in ("alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl")
    }


# --- a lock target made for another interpreter ---------------------------------------------------


def test_a_target_for_another_python_is_refused(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, wheelhouse, prefix = tmp_path / "pylock.toml", tmp_path / "wh", tmp_path / "env"
    outcome = run_cli(
        capsys, "lock", "delta", "--python-version", "3.12", "-i", index.simple_url, "-o", lock
    )
    assert_ok(outcome)
    assert_ok(run_cli(capsys, "fetch", lock, "-d", wheelhouse))
    # Named by --python: the target's Python version must be that interpreter's.
    outcome = run_cli(
        capsys, "install", lock, "-w", wheelhouse, "--prefix", prefix, "--python", HOST_PYTHON
    )
    assert_error(outcome, LockError, "cp312-linux-x86_64", "Python 3.12", "Python 3.11")
    # The only target, installed for this 3.11: its cp312 wheel cannot go in.
    outcome = run_cli(capsys, "install", lock, "-w", wheelhouse, "--prefix", prefix)
    assert_error(outcome, InstallError, f"delta-1.0-{CP312}.whl", "is not for Python 3.11")
    assert not prefix.exists()


# --- local files --------------------------------------------------------------------------------


def test_relative_paths_follow_the_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A foreign lock's relative ``path`` entries stay relative below our lock's directory and
    become absolute elsewhere, so the same bytes are fetched from wherever our lock is."""
    source = tmp_path / "src"
    wheel = make_wheel(source / "wheels", "alpha", "1.0")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    foreign = source / "pylock.toml"
    foreign.write_text(
        'lock-version = "1.0"\ncreated-by = "pip"\n[[packages]]\nname = "alpha"\n'
        f'version = "1.0"\n[[packages.wheels]]\nname = "{wheel.name}"\n'
        f'path = "wheels/{wheel.name}"\nhashes = {{ sha256 = "{sha}" }}\n'
    )
    for output, expected in [
        (source / "ours.toml", f"wheels/{wheel.name}"),
        (tmp_path / "elsewhere" / "pylock.toml", str(wheel)),
    ]:
        output.parent.mkdir(exist_ok=True)
        assert_ok(run_cli(capsys, "lock", "--from", foreign, "-o", output))
        (pkg,) = tomllib.loads(output.read_text())["packages"]
        assert pkg["wheels"][0]["path"] == expected
        wheelhouse = output.parent / "wh"
        assert_ok(run_cli(capsys, "fetch", output, "-d", wheelhouse))
        assert (wheelhouse / wheel.name).read_bytes() == wheel.read_bytes()


# --- lock --from: bad input --------------------------------------------------------------------


def test_lock_from_takes_no_requirements_and_names_a_missing_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "ours.toml"
    outcome = run_cli(capsys, "lock", "--from", tmp_path / "x.toml", "alpha", "-r", "r.txt")
    assert_error(outcome, UsageError, "--from keeps the pins", "drop requirements, -r")
    outcome = run_cli(capsys, "lock", "--from", tmp_path / "missing.toml", "-o", output)
    assert_error(outcome, LockError, str(tmp_path / "missing.toml"), "no such lock file")
    assert not output.exists()
