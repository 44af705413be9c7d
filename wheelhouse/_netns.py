"""Run a command in its own network namespace (standard library only; run as a script).

``python -I -S _netns.py MODE -- CMD ...`` enters new namespaces, brings their loopback up and
``exec``s CMD, so CMD and every process it starts (a compiler, ``python -S``, code calling
``_socket`` directly) see only a private loopback: no interface reaches the host or the outside,
not even the host's ``127.0.0.1``. ``python -I -S _netns.py probe`` tries the modes in order and
prints the first that works (exit 0), or why none does (exit 1).

Modes:

* ``user``: ``unshare(CLONE_NEWUSER | CLONE_NEWNET)``, this process's uid and gid mapped to
  themselves (``setgroups`` denied, as the kernel requires for an unprivileged map). Works for
  any user where unprivileged user namespaces are allowed. The command holds no capability in
  the host's namespaces, so it cannot ``setns`` back into the host's network.
* ``net``: ``unshare(CLONE_NEWNET)`` alone, for root where user namespaces are forbidden. A
  process with ``CAP_SYS_ADMIN`` can join another network namespace again (``setns`` on
  ``/proc/1/ns/net``), so this stops accidents, not a hostile root backend.

A script run by path, not a module of the package: it runs in a fresh single-threaded process
(``unshare(CLONE_NEWUSER)`` refuses multi-threaded callers, and ``preexec_fn`` is unsafe in the
thread pool ``build-sdists`` uses) and needs neither util-linux's ``unshare`` nor ``ip``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
FLAGS = {"user": CLONE_NEWUSER | CLONE_NEWNET, "net": CLONE_NEWNET}
SETUP_FAILED = 125
"""Exit status when the namespaces cannot be set up (as util-linux ``unshare`` and ``env``)."""

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: name, then the union, of which ifr_flags is the first short


class SetupError(Exception):
    """A step of entering the namespaces failed; ``entered`` tells if unshare itself worked."""

    def __init__(self, message: str, entered: bool) -> None:
        super().__init__(message)
        self.entered = entered


_UNSHARE_ERRORS = {
    errno.EPERM: "not permitted (user namespaces disabled for this user, or a seccomp filter)",
    errno.ENOSPC: "namespace limit reached (/proc/sys/user/max_*_namespaces)",
    errno.EINVAL: "not supported by this kernel",
    errno.ENOSYS: "not supported by this kernel",
    errno.EUSERS: "too many nested user namespaces",
}


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, _UNSHARE_ERRORS.get(err, os.strerror(err)))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _loopback_up() -> None:
    """A new network namespace has ``lo`` down: bring it up, as the Nix sandbox does, so a build
    can still talk to itself on 127.0.0.1 (test servers, compiler daemons)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack(_IFREQ, b"lo", 0)
        (flags,) = struct.unpack_from("H", fcntl.ioctl(s, _SIOCGIFFLAGS, request), 16)
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def enter(mode: str) -> None:
    """Move this process into new namespaces (``user`` or ``net``) with loopback up."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        _unshare(FLAGS[mode])
    except OSError as exc:
        raise SetupError(f"unshare: {exc.strerror}", entered=False) from None
    try:
        if mode == "user":
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        _loopback_up()
    except OSError as exc:
        raise SetupError(f"{exc.filename or 'loopback'}: {exc.strerror}", entered=True) from None


def _loopback_works() -> None:
    """The probe's proof: a connection to our own listener on 127.0.0.1 succeeds."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass


def probe() -> int:
    reasons = []
    for mode in FLAGS:
        try:
            enter(mode)
            _loopback_works()
        except SetupError as exc:
            reasons.append(f"{mode}: {exc}")
            if exc.entered:
                break
            continue
        except OSError as exc:
            reasons.append(f"{mode}: loopback: {exc.strerror or exc}")
            break
        print(mode)
        return 0
    print("; ".join(reasons), file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if argv == ["probe"]:
        return probe()
    if len(argv) < 3 or argv[0] not in FLAGS or argv[1] != "--":
        print(f"usage: {sys.argv[0]} probe | {{user,net}} -- CMD ...", file=sys.stderr)
        return 2
    try:
        enter(argv[0])
    except SetupError as exc:
        print(f"wheelhouse: cannot enter a network namespace ({argv[0]}): {exc}", file=sys.stderr)
        return SETUP_FAILED
    try:
        os.execvp(argv[2], argv[2:])
    except OSError as exc:
        print(f"wheelhouse: cannot run {argv[2]}: {exc.strerror}", file=sys.stderr)
        return 127 if exc.errno == errno.ENOENT else 126
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
