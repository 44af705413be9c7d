"""Calling a PEP 517 backend, for both stages that do: ``wheelhouse.buildreqs`` (lock time, asking
for build requirements) and ``wheelhouse.build`` (offline builds).

A backend runs through ``pyproject_hooks`` in a subprocess whose output is kept (``Runner``), so
a failure becomes one ``BuildError`` naming the package with the backend's last lines
(``call_hook``); ``source_build_system`` and ``copy_source`` give a source tree as a backend
expects it. Nothing here installs anything or decides what a build may reach: the callers set
the environment and the isolation.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyproject_hooks

from wheelhouse import sdist
from wheelhouse.errors import BuildError
from wheelhouse.isolation import ADVISORY, Isolation

__all__ = [
    "SOURCE_DATE_EPOCH",
    "Runner",
    "call_hook",
    "copy_source",
    "hook_caller",
    "source_build_system",
]

SOURCE_DATE_EPOCH = "315532800"
"""1980-01-01T00:00:00Z: the earliest date a zip (wheel) can hold; fixed so rebuilds match."""
TAIL_LINES = 15
"""Backend output lines a BuildError shows: enough for a compiler error, short for a Nix log."""


class _HookFailed(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode


class Runner:
    """A ``pyproject_hooks`` runner that captures the backend's output for error messages, and
    runs the backend through ``isolation`` (a new network namespace, where the OS allows)."""

    def __init__(self, env: Mapping[str, str], isolation: Isolation = ADVISORY) -> None:
        self.env = dict(env)
        self.isolation = isolation
        self.output: list[str] = []

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        env = {**self.env, **(extra_environ or {})}
        proc = subprocess.run(
            self.isolation.command(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        self.output.extend(proc.stdout.decode("utf-8", "replace").splitlines())
        if proc.returncode != 0:
            raise _HookFailed(proc.returncode)

    def tail(self) -> str:
        lines = [ln.rstrip() for ln in self.output if ln.strip()][-TAIL_LINES:]
        if not lines:
            return " (the backend printed nothing)"
        return f"; the backend's last {len(lines)} lines of output:\n" + "\n".join(
            "  | " + ln for ln in lines
        )


def call_hook(what: str, package: str, runner: Runner, call: Any, *args: Any) -> Any:
    """Call a hook; every way it can fail becomes a BuildError naming the package."""
    try:
        return call(*args)
    except _HookFailed as exc:
        raise BuildError(
            f"building {package}: {what} failed (exit status {exc.returncode})"
            f"{' in a network namespace' if runner.isolation.namespaced else ''}{runner.tail()}"
        ) from None
    except pyproject_hooks.BackendUnavailable as exc:
        raise BuildError(
            f"building {package}: the build backend {exc.backend_name or ''} cannot be imported "
            f"({(exc.traceback.strip().splitlines() or ['no traceback'])[-1]}); is it in the "
            f"build requirements?{runner.tail()}"
        ) from None
    except (
        pyproject_hooks.HookMissing,
        pyproject_hooks.UnsupportedOperation,
        pyproject_hooks.BackendInvalid,
        ValueError,
    ) as exc:
        raise BuildError(f"building {package}: {what} failed: {exc!r}{runner.tail()}") from None


def hook_caller(
    source: Path, system: sdist.BuildSystem, python: str, runner: Runner
) -> pyproject_hooks.BuildBackendHookCaller:
    """``system``'s backend on the tree ``source``, run by ``python`` through ``runner``."""
    return pyproject_hooks.BuildBackendHookCaller(
        str(source),
        system.backend,
        backend_path=list(system.backend_path) or None,
        runner=runner,
        python_executable=python,
    )


def source_build_system(source: Path, filename: str) -> sdist.BuildSystem:
    """The ``[build-system]`` of an unpacked tree; without ``pyproject.toml``, setuptools' legacy
    default (PEP 517). ``filename`` names the source in messages."""
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return sdist.LEGACY_BUILD_SYSTEM
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{filename}: pyproject.toml is not valid TOML ({exc})") from None
    return sdist.build_system(data, filename)


def copy_source(project: Path, dest: Path) -> Path:
    """A project's tree as a backend should see it: no VCS data, caches or Nix result links."""
    skip = {".git", ".hg", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in skip or n.startswith("result")}

    shutil.copytree(project, dest, symlinks=True, ignore=ignore)
    # A source in the Nix store is read-only, and backends write (egg-info, build/): the copy is
    # the user's to write.
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, os.stat(root).st_mode | stat.S_IWUSR)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    return dest
