"""Lock-time questions to a build backend: which requirements does building this sdist (or
project) need beyond its ``[build-system] requires``?

``query_build_requires`` asks the backend's ``get_requires_for_build_wheel`` in a throw-away venv
that pip fills with ``requires`` from the lock's indexes (network allowed: this is locking, not
building). What it answers joins the sdist's locked build environment, which the offline builds
of ``wheelhouse.build`` later install from the wheelhouse. This module is the lock's side of
that: it imports neither ``wheelhouse.build`` nor ``wheelhouse.install``, so the stages keep
feeding forward (lock -> fetch -> build -> install).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from wheelhouse import backend, sdist
from wheelhouse.errors import BuildError, ResolutionError
from wheelhouse.resolve import Inputs, pip_environment

__all__ = ["query_build_requires"]


def query_build_requires(path: Path, system: sdist.BuildSystem, inputs: Inputs) -> list[str]:
    """Ask the sdist's backend ``get_requires_for_build_wheel`` (lock time, network allowed).

    The backend runs in a fresh venv holding only ``system.requires``, installed by pip from the
    lock's indexes, so what it answers does not depend on this machine's packages.
    """
    with tempfile.TemporaryDirectory(prefix="wheelhouse-requires-") as tmp:
        if path.is_dir():  # a project: its backend may write (egg-info), so it gets a copy
            source = backend.copy_source(path, Path(tmp, "src"))
        else:
            source = sdist.extract(path, Path(tmp, "src"))
        env_dir = Path(tmp, "env")
        venv.EnvBuilder(symlinks=True, with_pip=False, clear=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        environ, secrets = pip_environment(inputs)
        environ = {k: v for k, v in environ.items() if not k.startswith("PYTHON")}
        if system.requires:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "--python",
                python,
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ]
            for link in inputs.find_links:
                cmd += ["--find-links", link]
            proc = subprocess.run(
                [*cmd, *system.requires],
                env=environ,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                detail = proc.stderr
                for secret in secrets:
                    detail = detail.replace(secret, "****")
                lines = [ln for ln in detail.splitlines() if ln.strip()][-5:]
                raise ResolutionError(
                    f"{path.name}: pip cannot install its build requirements "
                    f"{', '.join(system.requires)} (needed to ask its backend for more): "
                    + " | ".join(lines)
                )
        runner = backend.Runner({**environ, "SOURCE_DATE_EPOCH": backend.SOURCE_DATE_EPOCH})
        caller = backend.hook_caller(source, system, python, runner)
        reqs = backend.call_hook(
            "get_requires_for_build_wheel",
            path.name,
            runner,
            caller.get_requires_for_build_wheel,
        )
    if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
        raise BuildError(
            f"{path.name}: get_requires_for_build_wheel returned {reqs!r}, not a list of strings"
        )
    return reqs
