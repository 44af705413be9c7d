"""How ``build-sdists`` keeps backends off the network: namespaces where the OS allows, else advice.

The advisory block (proxies at a closed port, ``PIP_NO_INDEX``, the ``.pth`` hook of
``_offline_hook.py``) only stops code that uses Python's ``socket`` module politely: a backend
can call ``_socket`` directly or start ``python -S``. A new network namespace stops every process
of the build at the kernel: it has a loopback of its own and nothing else. Whether the kernel lets
this user create one (unprivileged user namespaces may be disabled by a sysctl, AppArmor, or a
container's seccomp filter) is only known by trying, so ``choose`` probes once per run, in a
throw-away process, and ``Isolation.command`` wraps each backend call in ``_netns.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wheelhouse.errors import BuildError, UsageError

__all__ = ["ADVISORY", "REQUESTS", "Isolation", "choose"]

NETNS = Path(__file__).with_name("_netns.py")
REQUESTS = ("auto", "namespace", "advisory")
"""``--isolation``: namespaces if possible else advisory; namespaces or an error; advisory only."""

_NAMESPACE_MODES = {
    "user": "namespace (new user and network namespaces)",
    "net": "namespace (network namespace only: a backend running as root could leave it)",
}


@dataclass(frozen=True)
class Isolation:
    """The mode every backend of one run gets: ``user``, ``net`` (see ``_netns.py``) or
    ``advisory``, with why namespaces are not used."""

    mode: str
    reason: str = ""
    python: str = ""
    """The interpreter that runs ``_netns.py`` (any Python 3 with ``ctypes``)."""

    @property
    def namespaced(self) -> bool:
        return self.mode in _NAMESPACE_MODES

    def command(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` as it must be run: through ``_netns.py`` when namespaced."""
        if not self.namespaced:
            return list(cmd)
        return [self.python, "-I", "-S", str(NETNS), self.mode, "--", *cmd]

    def describe(self, building: str = "sdists") -> str:
        """One line for the terminal or the Nix log: which protection this run had."""
        mode = _NAMESPACE_MODES.get(self.mode) or f"advisory ({self.reason})"
        return f"wheelhouse: building {building} with network isolation: {mode}"


ADVISORY = Isolation("advisory", "--isolation advisory")


def _interpreter() -> str:
    """This interpreter's path; ``sys.executable`` is empty in a Nix builder (``argv[0]`` is a
    bare name and ``PATH`` is unset), where ``/proc/self/exe`` still knows."""
    if sys.executable:
        return sys.executable
    try:
        return os.readlink("/proc/self/exe")
    except OSError:
        return ""


def _probe(python: str) -> Isolation:
    if not python:
        return Isolation("advisory", "no user/network namespaces: no interpreter path to run")
    try:
        proc = subprocess.run(
            [python, "-I", "-S", str(NETNS), "probe"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:  # a bad --python: under auto, the build itself reports it by name
        return Isolation("advisory", f"cannot run {python} ({exc.strerror or exc})")
    mode = proc.stdout.strip()
    if proc.returncode == 0 and mode in _NAMESPACE_MODES:
        return Isolation(mode, python=python)
    detail = " ".join(proc.stderr.split())[-300:] or f"probe exited with {proc.returncode}"
    return Isolation("advisory", f"no user/network namespaces: {detail}")


def choose(requested: str, python: str | None = None) -> Isolation:
    """The isolation for this run (``requested`` is one of ``REQUESTS``); ``python`` (default:
    this one) runs ``_netns.py``, best the build interpreter, which the builds need anyway."""
    if requested not in REQUESTS:
        raise UsageError(f"--isolation {requested}: choose one of {', '.join(REQUESTS)}")
    if requested == "advisory":
        return ADVISORY
    found = _probe(python or _interpreter())
    if requested == "namespace" and found.reason.startswith("cannot run "):
        raise UsageError(
            f"--isolation namespace: {found.reason}, the interpreter that sets up the namespaces; "
            "give a working --python"
        )
    if requested == "namespace" and not found.namespaced:
        raise BuildError(
            f"--isolation namespace: this system does not let wheelhouse create network "
            f"namespaces ({found.reason.removeprefix('no user/network namespaces: ')}); allow "
            "unprivileged user namespaces (sysctl user.max_user_namespaces, "
            "kernel.unprivileged_userns_clone), build in the Nix sandbox, or accept the advisory "
            "block with --isolation auto"
        )
    return found
