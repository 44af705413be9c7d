"""Targets: the interpreters a lock is made for, as tags and marker environments.

A target is named like ``cp311-linux-x86_64``. Resolution and artifact selection happen per target;
the running platform is always the platform (cross-platform locks are out of scope for now).
"""

from __future__ import annotations

import platform
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
        return self.python_version == sys.version_info[:2]

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
        if not self.is_running:
            env["python_version"] = self.version_string
            env["python_full_version"] = self.version_string + ".0"
            env["implementation_version"] = self.version_string + ".0"
        return env


def make_target(version: str | None = None) -> Target:
    """Build a target from ``"3.12"`` (default: the running interpreter).

    Tags for another CPython version are computed for the running platform, in packaging's priority
    order, so selection ranks wheels exactly as pip would for that interpreter.
    """
    if version is None:
        return Target(sys.version_info[:2], tuple(tags.sys_tags()))
    parts = version.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts[0] != "3":
        raise UsageError(f"--python expects a version like 3.12, got {version!r}")
    pyver = (int(parts[0]), int(parts[1]))
    if pyver == sys.version_info[:2]:
        return make_target(None)
    platforms = list(tags.platform_tags())
    interp = f"cp{pyver[0]}{pyver[1]}"
    seq = list(tags.cpython_tags(pyver, platforms=platforms))
    seq += list(tags.compatible_tags(pyver, interp, platforms))
    return Target(pyver, tuple(seq))
