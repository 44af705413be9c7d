"""Turning inputs into pip's command line, and projects into requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelhouse.errors import UsageError
from wheelhouse.resolve import Inputs, pip_command, project_requirements
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
        "--index-url http://i/simple",
        "--extra-index-url http://e/simple",
        "--find-links /w",
        "-r r.txt",
        "-c c.txt",
        "--python-version 3.12",
        "--only-binary :all:",
    ]:
        assert part in joined
    assert cmd[-1] == "demo"
    assert "--python-version" not in pip_command(inputs, make_target(None), tmp_path / "r")
