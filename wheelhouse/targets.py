"""Targets: the interpreters a lock is made for, as tags and marker environments.

A target is named like ``cp311-linux-x86_64``. Resolution and artifact selection happen per target;
the running platform is always the platform (cross-platform locks are out of scope for now).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
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
    markers: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    """The PEP 508 marker environment the interpreter reported (for a target given by path)."""

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

    @property
    def description(self) -> str:
        """The target as people name it in messages: its interpreter or its version."""
        where = self.interpreter or ("this interpreter" if self.is_running else None)
        return f"Python {self.full_version}" + (f" ({where})" if where else "")

    def environment(self) -> dict[str, str]:
        """Marker environment for evaluating dependency markers on this target: the one the
        interpreter reported, else this interpreter's with the target's Python version."""
        if self.markers is not None:
            return dict(self.markers)
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


_MARKERS = """
import json, os, platform, sys
def fmt(info):
    version = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""
"""What ``packaging.markers.default_environment()`` computes, with the standard library only:
the target interpreter need not have ``packaging``."""


def _query(interpreter: str) -> dict[str, str]:
    """The interpreter's marker environment, asked from the interpreter itself."""
    try:
        proc = subprocess.run(
            [interpreter, "-I", "-c", _MARKERS],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"--python {interpreter}: cannot run it ({exc})") from None
    try:
        markers = json.loads(proc.stdout)
        if not isinstance(markers, dict):
            raise ValueError(markers)
        return {str(k): str(v) for k, v in markers.items()}
    except ValueError:
        raise UsageError(
            f"--python {interpreter}: it does not answer like a Python interpreter (it printed "
            f"{proc.stdout.strip()[:80]!r}); give the path of a python executable"
        ) from None


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
    markers = None
    full = spec
    if os.sep in spec or not spec[:1].isdigit():
        interpreter = spec
        markers = _query(spec)
        full = markers.get("python_full_version", "")
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
    return Target(pyver, _tags_for(pyver), full, interpreter, markers=markers)
