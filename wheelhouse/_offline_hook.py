"""No network while building: refuses connections to anything but loopback, naming the package.

``wheelhouse.build`` copies this file into every build environment's site-packages as the
module ``_wheelhouse_offline``, with ``_wheelhouse_offline.pth`` (``import _wheelhouse_offline;
_wheelhouse_offline.install()``) so that every Python process of the build - the backend and any
interpreter it starts, unless with ``-S`` - patches ``socket`` before any other code runs. The
name of the package being built is read from ``_wheelhouse_offline.txt`` next to the copy: a file
written with it, not an environment variable, which a backend or the tools it starts may clear.

It runs under the build's (target) interpreter, not the one running wheelhouse, so it uses the
standard library only and keeps to syntax Python 3.8 understands. Importing it changes nothing;
only ``install()`` does, and it never raises: a failing ``.pth`` line is skipped, which would
leave the build unguarded.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

MODULE = "_wheelhouse_offline"
"""The module name in the build environment (ours would clash with no build requirement)."""
PACKAGE_FILE = MODULE + ".txt"
BLACKHOLE = ("127.0.0.1", 9)
"""Where wheelhouse points the proxy variables: a client honouring them is refused here too."""


def message(package: str) -> str:
    return (
        "network access is not allowed while building " + package + " (wheelhouse builds sdists "
        "offline from the locked wheelhouse; lock what the build downloads as a build requirement, "
        "or lock a wheel of " + package + ")"
    )


def _package() -> str:
    try:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), PACKAGE_FILE)
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or "this package"
    except (OSError, ValueError):
        return "this package"


def _loopback(host: object) -> bool:
    host = str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")


def install() -> None:
    """Patch ``socket`` in this process: only loopback (but not the blackhole) can be reached."""
    text = message(_package())
    connect_ = socket.socket.connect
    connect_ex_ = socket.socket.connect_ex
    getaddrinfo_ = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        if (
            not isinstance(address, tuple)
            or not _loopback(address[0])
            or tuple(address[:2]) == BLACKHOLE
        ):
            raise ConnectionRefusedError(errno.ECONNREFUSED, text)

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return connect_(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return connect_ex_(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
            raise socket.gaierror(socket.EAI_NONAME, text)
        return getaddrinfo_(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo
