"""Targets from versions or interpreter paths."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from wheelhouse.errors import UsageError
from wheelhouse.targets import make_target

HOST_PYTHON = "/usr/bin/python3"


def test_running_interpreter_is_the_default_target() -> None:
    target = make_target(None)
    assert target.is_running and target.full_version == platform.python_version()
    assert make_target("{}.{}".format(*sys.version_info[:2])) == target


def test_full_version_target_resolves_as_that_micro_release() -> None:
    target = make_target("3.11.2")
    assert target.name.startswith("cp311-")
    assert target.environment()["python_full_version"] == "3.11.2"
    assert not target.is_running or platform.python_version() == "3.11.2"


@pytest.mark.skipif(not Path(HOST_PYTHON).exists(), reason="needs Debian's /usr/bin/python3")
def test_interpreter_path_target_asks_the_interpreter() -> None:
    import subprocess

    expected = subprocess.run(
        [HOST_PYTHON, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = make_target(HOST_PYTHON)
    assert target.interpreter == HOST_PYTHON and target.full_version == expected
    assert target.environment()["python_full_version"] == expected
    assert not target.is_running


@pytest.mark.parametrize("spec", ["2.7", "3", "3.x", "3.11.2.1"])
def test_bad_versions(spec: str) -> None:
    with pytest.raises(UsageError, match="--python expects"):
        make_target(spec)


def test_interpreter_that_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot run it"):
        make_target(str(tmp_path / "no-python"))


@pytest.mark.skipif(not Path(HOST_PYTHON).exists(), reason="needs Debian's /usr/bin/python3")
def test_interpreter_path_target_has_the_interpreters_own_marker_environment() -> None:
    """Markers of other tools' locks are evaluated with what the target reports, not with this
    interpreter's values patched."""
    import json
    import subprocess

    code = (
        "import json, platform, sys; print(json.dumps([platform.python_version(), "
        "'%d.%d.%d' % sys.implementation.version[:3], platform.python_implementation()]))"
    )
    full, impl, name = json.loads(
        subprocess.run([HOST_PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    env = make_target(HOST_PYTHON).environment()
    assert (env["python_full_version"], env["implementation_version"]) == (full, impl)
    assert env["platform_python_implementation"] == name
    assert env["python_version"] == ".".join(full.split(".")[:2])


def test_a_program_that_is_not_python(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(UsageError, match="does not answer like a Python interpreter"):
        make_target(str(fake))
