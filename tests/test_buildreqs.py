"""wheelhouse.buildreqs: the lock-time question "what else does building this need?", asked of
real backends in venvs that real pip fills from a loopback index (tests/sdistmaker.py's demo
index: ``app`` builds with ``tinybackend<2`` and asks for ``tinyhelper>=1``).

And the direction of the stages: locking never loads the offline-build or install code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w
from indexserver import IndexServer
from sdistmaker import build_sdist_index, make_sdist, tiny_pyproject

from wheelhouse import buildreqs, sdist
from wheelhouse.errors import BuildError, ResolutionError
from wheelhouse.resolve import Inputs

pytestmark = pytest.mark.integration


def test_locking_loads_neither_builds_nor_installs() -> None:
    code = (
        "import json, sys, wheelhouse.lock\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('wheelhouse'))))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(run.stdout))
    assert "wheelhouse.buildreqs" in loaded  # what lock asks backends with
    assert not loaded & {
        "wheelhouse.build",
        "wheelhouse.install",
        "wheelhouse._install_worker",
        "wheelhouse.overrides",
    }


@pytest.fixture
def demo(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> tuple[Path, Inputs]:
    root = tmp_path / "files"
    root.mkdir()
    build_sdist_index(root)
    server = index_server_factory(root)
    return root, Inputs(index_url=server.simple_url)


def test_an_sdist_backend_is_asked_with_its_static_requirements_installed(
    demo: tuple[Path, Inputs],
) -> None:
    root, inputs = demo
    app = root / "app-1.0.tar.gz"
    system = sdist.read_build_system(app)
    assert system.requires == ("tinybackend<2",)
    assert buildreqs.query_build_requires(app, system, inputs) == ["tinyhelper>=1"]


def test_a_project_is_asked_on_a_copy(demo: tuple[Path, Inputs], tmp_path: Path) -> None:
    _root, inputs = demo
    project = tmp_path / "project"
    project.mkdir()
    pyproject = tiny_pyproject("proj", "1.0", dynamic_requires=["tinyhelper"])
    (project / "pyproject.toml").write_text(tomli_w.dumps(pyproject))
    system = sdist.build_system(pyproject, "project proj")
    assert buildreqs.query_build_requires(project, system, inputs) == ["tinyhelper"]
    assert [p.name for p in project.iterdir()] == ["pyproject.toml"]


def test_uninstallable_build_requirements_are_a_resolution_error(
    demo: tuple[Path, Inputs], tmp_path: Path
) -> None:
    _root, inputs = demo
    py = tiny_pyproject("lonely", "1.0", requires=["no-such-backend>=1"])
    path = make_sdist(tmp_path, "lonely", "1.0", pyproject=py)
    with pytest.raises(ResolutionError) as info:
        buildreqs.query_build_requires(path, sdist.read_build_system(path), inputs)
    message = str(info.value)
    assert message.startswith("lonely-1.0.tar.gz: pip cannot install its build requirements")
    assert "no-such-backend>=1 (needed to ask its backend for more)" in message


def test_an_answer_that_is_not_a_list_of_strings_is_a_build_error(tmp_path: Path) -> None:
    files = {
        "_backend/odd.py": "def get_requires_for_build_wheel(config_settings=None):\n"
        "    return {'cython': 3}\n"
    }
    py = {"build-system": {"requires": [], "build-backend": "odd", "backend-path": ["_backend"]}}
    path = make_sdist(tmp_path, "odd", "1.0", files, pyproject=py)
    system = sdist.read_build_system(path)
    with pytest.raises(BuildError, match=r"^odd-1.0.tar.gz: get_requires_for_build_wheel returned"):
        buildreqs.query_build_requires(path, system, Inputs(index_url="http://127.0.0.1:9/simple"))
