"""wheelhouse.backend: real PEP 517 backends (kept in the source tree, ``backend-path``) called
through pyproject_hooks in a subprocess, and source trees as a backend sees them. Failures of
whole builds (output tail, network namespace) are tests/test_build.py's."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from wheelhouse import backend, sdist
from wheelhouse.errors import BuildError


def tree(root: Path, backend_source: str) -> tuple[Path, sdist.BuildSystem]:
    """A source tree whose backend is ``_backend/inplace.py`` holding ``backend_source``."""
    (root / "_backend").mkdir(parents=True)
    (root / "_backend" / "inplace.py").write_text(backend_source)
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "inplace"\nbackend-path = ["_backend"]\n'
    )
    return root, backend.source_build_system(root, "demo-1.0.tar.gz")


def ask(source: Path, system: sdist.BuildSystem, **env: str) -> object:
    runner = backend.Runner({"PATH": os.environ.get("PATH", ""), **env})
    caller = backend.hook_caller(source, system, sys.executable, runner)
    return backend.call_hook(
        "get_requires_for_build_wheel", "demo", runner, caller.get_requires_for_build_wheel
    )


def test_a_backend_answers_with_the_runner_environment(tmp_path: Path) -> None:
    source, system = tree(
        tmp_path,
        "import os\n"
        "def get_requires_for_build_wheel(config_settings=None):\n"
        "    return [os.environ['WANTED'], os.path.basename(os.getcwd())]\n",
    )
    assert system == sdist.BuildSystem(requires=(), backend="inplace", backend_path=("_backend",))
    assert ask(source, system, WANTED="cython>=3") == ["cython>=3", source.name]


@pytest.mark.parametrize(
    ("backend_source", "needles"),
    [
        (
            "import sys\ndef get_requires_for_build_wheel(config_settings=None):\n"
            "    sys.exit(4)\n",
            ["get_requires_for_build_wheel failed (exit status 4)", "the backend printed nothing"],
        ),
        (
            "import no_such_module_for_wheelhouse\n",
            ["the build backend inplace cannot be imported", "no_such_module_for_wheelhouse",
             "is it in the build requirements?"],
        ),
    ],
)  # fmt: skip
def test_every_failure_is_one_build_error_naming_the_package(
    tmp_path: Path, backend_source: str, needles: list[str]
) -> None:
    with pytest.raises(BuildError) as info:
        ask(*tree(tmp_path, backend_source))
    assert str(info.value).startswith("building demo: ")
    for needle in needles:
        assert needle in str(info.value)


def test_source_build_system_of_a_tree(tmp_path: Path) -> None:
    assert backend.source_build_system(tmp_path, "old-1.0.tar.gz") == sdist.LEGACY_BUILD_SYSTEM
    (tmp_path / "pyproject.toml").write_text("[build-system\n")
    with pytest.raises(BuildError, match=r"^old-1.0.tar.gz: pyproject.toml is not valid TOML"):
        backend.source_build_system(tmp_path, "old-1.0.tar.gz")


def test_copy_source_leaves_out_vcs_caches_and_result_links_and_is_writable(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    for name in ["pkg/__init__.py", ".git/HEAD", "pkg/__pycache__/x.pyc", ".venv/pyvenv.cfg"]:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    (project / "result").symlink_to("/nix/store")
    (project / "link.py").symlink_to("pkg/__init__.py")
    for path in [project / "pkg" / "__init__.py", project / "pkg", project]:
        path.chmod(0o555 if path.is_dir() else 0o444)  # as in the Nix store
    try:
        copy = backend.copy_source(project, tmp_path / "copy")
    finally:
        for path in [project, project / "pkg"]:
            path.chmod(0o755)
    found = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    assert found == ["link.py", "pkg", "pkg/__init__.py"]
    assert (copy / "link.py").is_symlink()
    for path in [copy, copy / "pkg", copy / "pkg" / "__init__.py"]:
        assert path.stat().st_mode & stat.S_IWUSR
