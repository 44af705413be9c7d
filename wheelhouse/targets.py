"""Targets: the interpreters a lock is made for, as tags and marker environments.

A target is named like ``cp311-linux-x86_64``. Resolution and artifact selection happen per target;
the running platform is always the platform (cross-platform locks are out of scope for now).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field

from packaging import tags
from packaging.markers import default_environment

from wheelhouse.errors import UsageError


@dataclass(frozen=True)
class Target:
    """One interpreter version on the running platform."""

    python_version: tuple[int, int]
    tags: tuple[tags.Tag, ...] = field(repr=False, compare=False)
    full_version: str = ""
    """What ``python_full_version`` is on the target: requires-python checks use it."""
    interpreter: str | None = None
    """An interpreter to resolve with (``pip --python``), when the user named one."""
    machine: str = platform.machine().lower()
    os: str = sys.platform

    @property
    def name(self) -> str:
        major, minor = self.python_version
        return f"cp{major}{minor}-{self.os}-{self.machine}"

    @property
    def version_string(self) -> str:
        return "{}.{}".format(*self.python_version)

    @property
    def is_running(self) -> bool:
        """pip, run by this interpreter, resolves for this target as it is."""
        return self.interpreter is None and self.full_version == platform.python_version()

    @property
    def marker(self) -> str:
        """PEP 508 marker that is true exactly on this target (used for ``environments``)."""
        return (
            f'python_version == "{self.version_string}" and sys_platform == "{self.os}"'
            f' and platform_machine == "{platform.machine()}"'
        )

    def environment(self) -> dict[str, str]:
        """Marker environment for evaluating dependency markers on this target."""
        env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
        env["python_version"] = self.version_string
        env["python_full_version"] = self.full_version
        env["implementation_version"] = self.full_version
        return env


def _tags_for(pyver: tuple[int, int]) -> tuple[tags.Tag, ...]:
    """CPython ``pyver``'s tags on this platform, in packaging's (and pip's) priority order."""
    if pyver == sys.version_info[:2]:
        return tuple(tags.sys_tags())
    platforms = list(tags.platform_tags())
    interp = f"cp{pyver[0]}{pyver[1]}"
    seq = list(tags.cpython_tags(pyver, platforms=platforms))
    seq += list(tags.compatible_tags(pyver, interp, platforms))
    return tuple(seq)


def _query(interpreter: str) -> str:
    try:
        proc = subprocess.run(
            [interpreter, "-I", "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"--python {interpreter}: cannot run it ({exc})") from None
    return proc.stdout.strip()


def make_target(spec: str | None = None) -> Target:
    """Build a target from ``None`` (this interpreter), ``"3.12"``, ``"3.11.2"`` or the path of
    an interpreter.

    A path is best when the env will run on another build of the same X.Y (Nix's, Debian's):
    pip then resolves inside that interpreter, so a release needing 3.11.5 is never locked for
    a 3.11.2 env.
    """
    if spec is None:
        return Target(sys.version_info[:2], tuple(tags.sys_tags()), platform.python_version())
    interpreter = None
    full = spec
    if os.sep in spec or not spec[:1].isdigit():
        interpreter = spec
        full = _query(spec)
    parts = full.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts) or parts[0] != "3":
        raise UsageError(
            f"--python expects a version like 3.12 or 3.11.2, or an interpreter path; got {spec!r}"
        )
    pyver = (int(parts[0]), int(parts[1]))
    if len(parts) == 2:
        if interpreter is None and pyver == sys.version_info[:2]:
            return make_target(None)
        full += ".0"
    return Target(pyver, _tags_for(pyver), full, interpreter)
