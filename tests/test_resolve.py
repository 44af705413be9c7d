"""Turning inputs into pip's command line, and projects into requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelhouse.errors import UsageError
from wheelhouse.resolve import Inputs, pip_command, pip_environment, project_requirements
from wheelhouse.targets import make_target

PYPROJECT = """
[project]
name = "app"
version = "1"
dependencies = ["requests>=2"]
[project.optional-dependencies]
Fast = ["orjson"]
[dependency-groups]
test = ["pytest", {include-group = "lint"}]
lint = ["ruff"]
loop = [{include-group = "loop"}]
"""


def test_project_dependencies_extras_and_groups(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    assert project_requirements(tmp_path) == ["requests>=2"]
    assert project_requirements(tmp_path, ["fast"], ["test"]) == [
        "requests>=2",
        "orjson",
        "pytest",
        "ruff",
    ]
    with pytest.raises(UsageError, match="no extra 'nope'"):
        project_requirements(tmp_path, ["nope"])
    with pytest.raises(UsageError, match="no dependency group 'nope'"):
        project_requirements(tmp_path, [], ["nope"])
    with pytest.raises(UsageError, match="includes itself"):
        project_requirements(tmp_path, [], ["loop"])
    with pytest.raises(UsageError, match=r"no pyproject\.toml"):
        project_requirements(tmp_path / "missing")


def test_pip_command_for_another_python_is_binary_only(tmp_path: Path) -> None:
    inputs = Inputs(
        requirements=("demo",),
        requirement_files=(Path("r.txt"),),
        constraint_files=(Path("c.txt"),),
        index_url="http://i/simple",
        extra_index_urls=("http://e/simple",),
        find_links=("/w",),
    )
    cmd = pip_command(inputs, make_target("3.12"), tmp_path / "r.json")
    joined = " ".join(cmd)
    for part in [
        "--dry-run",
        "--ignore-installed",
        "--find-links /w",
        "-r r.txt",
        "-c c.txt",
        "--python-version 3.12",
        "--only-binary :all:",
    ]:
        assert part in joined
    assert cmd[-1] == "demo"
    assert "--python-version" not in pip_command(inputs, make_target(None), tmp_path / "r")
    assert "http://i/simple" not in joined  # indexes go through the environment


def test_indexes_and_env_credentials_go_to_pip_through_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHEELHOUSE_AUTH", "e:8080=tok:p@ss:w0rd")
    inputs = Inputs(
        requirements=("demo",),
        index_url="http://u:pw@i/simple",
        extra_index_urls=("http://e:8080/simple", "http://other/simple"),
        find_links=("/local/dir", "https://f:tok@links.example/wheels/"),
    )
    env, secrets = pip_environment(inputs, {"PIP_NO_INDEX": "1", "HOME": "/h"})
    assert env["PIP_FIND_LINKS"] == "https://f:tok@links.example/wheels/"
    assert env["PIP_INDEX_URL"] == "http://u:pw@i/simple"
    assert (
        env["PIP_EXTRA_INDEX_URL"] == "http://tok:p%40ss%3Aw0rd@e:8080/simple http://other/simple"
    )
    assert "PIP_NO_INDEX" not in env and env["HOME"] == "/h"
    assert {"pw", "p@ss:w0rd", "p%40ss%3Aw0rd", "tok"} <= set(secrets)
    cmd = " ".join(pip_command(inputs, make_target(None), Path("r.json")))
    assert "pw" not in cmd and "w0rd" not in cmd and "tok" not in cmd and "--no-input" in cmd
    assert "--find-links /local/dir" in cmd


def test_pip_resolves_inside_a_named_interpreter(tmp_path: Path) -> None:
    from wheelhouse.targets import Target

    target = Target((3, 11), (), "3.11.2", "/usr/bin/python3")
    cmd = pip_command(Inputs(requirements=("demo",)), target, tmp_path / "r.json")
    assert cmd[cmd.index("pip") + 1 : cmd.index("install")] == ["--python", "/usr/bin/python3"]
    assert "--python-version" not in cmd and "--only-binary" not in cmd
