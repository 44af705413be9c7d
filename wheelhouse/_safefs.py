"""Safe extraction of untrusted archives: one implementation for wheels, zip sdists and tar sdists.

Standard library only, Python 3.8 syntax: the install worker (``_install_worker.py``, run by the
*target* interpreter as ``python -S -B``) imports this file as the top-level module ``_safefs``;
``wheelhouse`` imports it as ``wheelhouse._safefs``.

Two layers, so neither has to be perfect alone:

1. ``check_entries`` decides on the archive's own names, before anything is written, never by
   looking at the disk (``os.path.realpath`` stops resolving past PATH_MAX, which is how
   CVE-2025-4517's chains of symlinks with long components escape a realpath check). It refuses
   absolute names, ``..`` components, device files and FIFOs, any member whose path passes
   through a symlink member, any link whose target leaves the tree (resolved against the
   archive's own symlinks, chains included, at most ``MAX_LINK_HOPS`` of them), hardlinks to
   anything but a regular file earlier in the archive, and any name listed twice - except a
   directory listed again, which is identical and harmless.
2. ``Tree`` writes below a root directory only through directory file descriptors: each
   directory component is opened with ``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's fd,
   files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` at that fd, directories and symlinks
   with ``mkdir``/``symlink`` at that fd. No path is ever resolved from the root again, so a
   symlink on disk (one the archive made, or one planted concurrently) makes the write fail
   instead of redirecting it.

Names are printed with ``quoted``/``escape``: an archive member name can hold a newline or an
ANSI escape sequence, which printed raw would forge an ``error:`` line on the user's terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable
from typing import NamedTuple

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
SPECIAL = "special"
"""Member kinds: ``special`` is a device file, FIFO or a tar type we do not know."""

_SHOWN = {DIR: "directory"}

MAX_LINK_HOPS = 40
"""Symlinks followed while resolving one target (Linux's own limit is 40)."""

MAX_LINK_TARGET = 4096
"""A symlink target longer than PATH_MAX is no real link (zip stores it as member content)."""

BLOCKED = frozenset(
    (errno.ELOOP, errno.ENOTDIR, errno.EEXIST, errno.EMLINK, getattr(errno, "EFTYPE", -1))
)
"""errnos meaning a symlink or another file is in the way on disk (FreeBSD: EMLINK, EFTYPE)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def escape(text: str) -> str:
    """``text`` with every non-printable character (newline, ESC, bidi override, ...) escaped as
    ``repr`` does (``\\n``, ``\\x1b``, ``\\u202e``), without quotes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def quoted(text: str) -> str:
    """``text`` quoted and escaped as ``repr`` does: how every archive member name is printed.

    (``f"{name!r}"`` is the same thing; this name says why.)"""
    return repr(text)


class UnsafeMember(Exception):
    """Member ``member`` (its name in the archive) cannot be extracted safely, because ``why``."""

    def __init__(self, member: str, why: str) -> None:
        super().__init__(f"member {quoted(member)} {why}")
        self.member = member
        self.why = why


class Entry(NamedTuple):
    """One archive member, reduced to what the checks need (``linkname``: a link's target)."""

    name: str
    kind: str
    linkname: str = ""


def unsafe_name(name: str) -> str | None:
    """Why the archive path ``name`` could land outside the extraction directory, if it could.

    Backslashes count as separators here (an archive made on Windows), drive letters as
    absolute; ``.`` and empty components are harmless and dropped by ``normalize``.
    """
    if "\0" in name:
        return "contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "is an absolute path"
    if ".." in norm.split("/"):
        return "contains a '..' component"
    return None


def normalize(name: str) -> str:
    """``./a//b/`` -> ``a/b``: the path a member really has below the extraction directory."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def resolve_link(name: str, target: str, links: dict[str, str]) -> str | None:
    """Where the symlink member ``name`` (normalized) points, resolved lexically against the
    archive's own symlinks ``links`` (normalized name -> target); None if it leaves the tree.

    ``..`` after a followed link goes up from the link's *target*, as the kernel does. A chain
    longer than ``MAX_LINK_HOPS`` raises ``UnsafeMember``.
    """
    parts = name.split("/")[:-1]
    todo = target.split("/")
    todo.reverse()  # a stack: the next component is last
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
        inner = links.get("/".join(parts))
        if inner is None:
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise UnsafeMember(name, f"is a chain of more than {MAX_LINK_HOPS} symlinks")
        if inner.startswith("/"):
            return None
        parts.pop()
        more = inner.split("/")
        more.reverse()
        todo.extend(more)
    return "/".join(parts)


def check_entries(entries: Iterable[Entry]) -> list[tuple[Entry, str]]:
    """Check every member of an archive; return ``(entry, normalized name)`` for each, in
    archive order (``""``, for a directory entry ``./``, is the extraction directory itself).

    Raises ``UnsafeMember`` for the first unsafe member (see the module docstring); nothing is
    read from the disk. Hardlink targets are archive paths (tar's convention, relative to the
    archive root); symlink targets are relative to the link's directory.
    """
    checked: list[tuple[Entry, str]] = []
    kinds: dict[str, str] = {}
    first: dict[str, Entry] = {}
    links: dict[str, str] = {}
    for entry in entries:
        why = unsafe_name(entry.name)
        if why is not None:
            raise UnsafeMember(entry.name, why)
        norm = normalize(entry.name)
        kind = entry.kind
        if kind == SPECIAL:
            raise UnsafeMember(entry.name, "is a device file or FIFO (or another special file)")
        if not norm:
            if kind != DIR:
                raise UnsafeMember(entry.name, f"is a {_SHOWN.get(kind, kind)} with an empty name")
            checked.append((entry, norm))  # "./": the extraction directory itself
            continue
        seen = kinds.get(norm)
        if seen is not None and not (seen == DIR and kind == DIR):
            other = first[norm]
            if normalize(other.name) != norm:  # a directory implied by a member below it
                raise UnsafeMember(
                    entry.name,
                    f"is a {_SHOWN.get(kind, kind)} but the archive has members below it "
                    f"({quoted(other.name)})",
                )
            raise UnsafeMember(
                entry.name,
                f"is listed twice in the archive (a {_SHOWN.get(seen, seen)}, then a "
                f"{_SHOWN.get(kind, kind)}); an archive must list each name once",
            )
        if kind == HARDLINK:
            if not entry.linkname or unsafe_name(entry.linkname) is not None:
                raise UnsafeMember(
                    entry.name, f"is a hardlink to {quoted(entry.linkname)}, outside the archive"
                )
            linked = normalize(entry.linkname)
            if kinds.get(linked) != FILE:
                what = kinds.get(linked)
                raise UnsafeMember(
                    entry.name,
                    f"is a hardlink to {quoted(entry.linkname)}, which is "
                    + (f"a {_SHOWN.get(what, what)}" if what else "not a member before it")
                    + " (only hardlinks to earlier regular files are extracted)",
                )
        elif kind == SYMLINK:
            target = entry.linkname
            if not target or "\0" in target:
                raise UnsafeMember(entry.name, "is a symlink without a valid target")
            if target.startswith("/"):
                raise UnsafeMember(
                    entry.name, f"is a symlink to the absolute path {quoted(target)}"
                )
            if len(target) > MAX_LINK_TARGET:
                raise UnsafeMember(entry.name, "is a symlink with an overlong target")
            links[norm] = target
        if seen is None:
            kinds[norm] = kind
            first[norm] = entry
        parent = norm
        while True:  # the implied parent directories, deepest first, up to a known one
            cut = parent.rfind("/")
            if cut < 0:
                break
            parent = parent[:cut]
            was = kinds.get(parent)
            if was == DIR:
                break  # so are its parents: they were registered with it
            if was is not None:
                raise _through(entry, first[parent], was)
            kinds[parent] = DIR
            first[parent] = entry
        checked.append((entry, norm))
    # Second pass, once every name is known: a link may point at links listed after it.
    for entry, norm in checked:
        if entry.kind == SYMLINK and resolve_link(norm, entry.linkname, links) is None:
            raise UnsafeMember(
                entry.name,
                f"is a symlink to {quoted(entry.linkname)}, which leads outside the archive "
                "(following the archive's own symlinks)",
            )
    return checked


def _through(entry: Entry, blocker: Entry, kind: str) -> UnsafeMember:
    if kind == SYMLINK:
        return UnsafeMember(
            entry.name,
            f"would be written through the symlink member {quoted(blocker.name)}",
        )
    return UnsafeMember(
        entry.name,
        f"needs a directory where the archive has {quoted(blocker.name)}, a {kind}",
    )


class Tree:
    """Writes below ``root`` only through directory file descriptors (see the module docstring).

    ``rel`` arguments are normalized paths (``a/b/c``, from ``check_entries`` or built by the
    caller); a ``..``, ``.`` or empty component is refused as a programming error. Directory fds
    are cached (at most ``cache`` of them, oldest closed first); ``close`` closes them all. Open
    and write errors are ``OSError``; an errno in ``BLOCKED`` means a link or file on disk is in
    the way of a write.
    """

    def __init__(self, root: str, cache: int = 128) -> None:
        self._root = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the root itself is ours
        self._fds: dict[str, int] = {}
        self._cache = cache

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._root >= 0:
            os.close(self._root)
            self._root = -1

    def _dir(self, rel: str) -> int:
        """An fd of directory ``rel``, created with its parents where missing."""
        if not rel:
            return self._root
        fd = self._fds.get(rel)
        if fd is not None:
            return fd
        parts = rel.split("/")
        # start from the deepest cached ancestor
        start = len(parts) - 1
        while start > 0 and "/".join(parts[:start]) not in self._fds:
            start -= 1
        fd = self._fds["/".join(parts[:start])] if start else self._root
        for i in range(start, len(parts)):
            part = parts[i]
            if part in ("", ".", ".."):
                raise ValueError(f"not a normalized path: {rel!r}")
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # made concurrently: opened below
                    os.mkdir(part, 0o755, dir_fd=fd)
                fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            self._remember("/".join(parts[: i + 1]), fd)
        return fd

    def _remember(self, rel: str, fd: int) -> None:
        if len(self._fds) >= self._cache:
            oldest = next(iter(self._fds))
            os.close(self._fds.pop(oldest))
        self._fds[rel] = fd

    def _split(self, rel: str) -> tuple[int, str]:
        head, _, base = rel.rpartition("/")
        if base in ("", ".", ".."):
            raise ValueError(f"not a normalized path: {rel!r}")
        return self._dir(head), base

    def mkdir(self, rel: str) -> None:
        """Directory ``rel`` and its missing parents (an existing directory is fine)."""
        self._dir(rel)

    def write(self, rel: str, data: bytes, mode: int) -> None:
        """Create the new file ``rel`` holding ``data``."""
        fd, base = self._split(rel)
        out = os.open(base, _FILE_FLAGS, mode, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)

    def copy(self, rel: str, read: Callable[[int], bytes], mode: int, chunk: int = 1 << 20) -> None:
        """Create the new file ``rel`` with the content ``read(chunk)`` gives until empty."""
        fd, base = self._split(rel)
        out = os.open(base, _FILE_FLAGS, mode, dir_fd=fd)
        try:
            while True:
                data = read(chunk)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
        finally:
            os.close(out)

    def symlink(self, rel: str, target: str) -> None:
        """Create the symlink ``rel`` -> ``target`` (``target`` is not followed or checked here)."""
        fd, base = self._split(rel)
        os.symlink(target, base, dir_fd=fd)
