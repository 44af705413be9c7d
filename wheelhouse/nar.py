"""Nix archive (NAR) serialisation and Nix's hash spellings, without calling Nix.

A fixed-output derivation is pinned by the sha256 of the NAR of its output, so we must be able to
predict that hash for a fetched wheelhouse before Nix ever sees it; this module reproduces
``nix-store --dump`` / ``nix-hash --type sha256`` byte for byte. Only what Nix itself records is
serialised: file type, contents, the owner-executable bit and symlink targets (never followed).
Timestamps, ownership and other mode bits do not enter the hash, exactly as in Nix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import string
from collections.abc import Callable, Mapping
from pathlib import Path

from wheelhouse.errors import NarError

__all__ = [
    "CHUNK_SIZE",
    "dump",
    "flat_directory_sha256",
    "nar_sha256",
    "nix_base32",
    "parse_hash",
    "sri",
]

CHUNK_SIZE = 1 << 20
"""Bytes read per ``os.read``: large enough that hashing, not Python, is the bottleneck."""

NIX_BASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
"""Nix's base32 digits: no e, o, u, t, so hashes cannot spell words."""

_SHA256_SIZE = 32
_BASE32_LEN = (_SHA256_SIZE * 8 - 1) // 5 + 1  # 52
_BASE32_VALUE = {c: i for i, c in enumerate(NIX_BASE32_ALPHABET)}


def _token(data: bytes) -> bytes:
    """NAR string: u64 little-endian length, the bytes, zero padding to a multiple of 8."""
    return len(data).to_bytes(8, "little") + data + _padding(len(data))


def _padding(size: int) -> bytes:
    return b"\0" * (-size % 8)


_MAGIC = _token(b"nix-archive-1")
_OPEN = _token(b"(")
_CLOSE = _token(b")")
_REGULAR = _OPEN + _token(b"type") + _token(b"regular")
_EXECUTABLE = _token(b"executable") + _token(b"")
_CONTENTS = _token(b"contents")
_SYMLINK = _OPEN + _token(b"type") + _token(b"symlink") + _token(b"target")
_DIRECTORY = _OPEN + _token(b"type") + _token(b"directory")
_ENTRY = _token(b"entry") + _OPEN + _token(b"name")
_NODE = _token(b"node")


def dump(path: Path, write: Callable[[bytes], None]) -> None:
    """Stream the NAR of ``path`` into ``write``, holding at most one chunk of a file in memory.

    Paths are handled as bytes so that names which are not valid UTF-8 still round-trip, and so
    that directory entries sort by their bytes, as Nix sorts them (not by Python's str order).
    """
    write(_MAGIC)
    _dump_node(os.fsencode(path), write)


def nar_sha256(path: Path) -> bytes:
    """Raw sha256 digest of the NAR of ``path``: what Nix calls the path's recursive hash."""
    digest = hashlib.sha256()
    dump(path, digest.update)
    return digest.digest()


def nix_base32(digest: bytes) -> str:
    """Spell ``digest`` as Nix does in store paths and ``nix-hash --base32``.

    Nix's base32 is not RFC 4648: it reads the digest as one little-endian number and emits
    5-bit groups from the most significant end, so no standard codec produces it.
    """
    value = int.from_bytes(digest, "little")
    length = (len(digest) * 8 - 1) // 5 + 1 if digest else 0
    return "".join(
        NIX_BASE32_ALPHABET[(value >> (5 * n)) & 0x1F] for n in range(length - 1, -1, -1)
    )


def sri(digest: bytes) -> str:
    """Subresource-integrity spelling (``sha256-<base64>``), the form modern Nix prints."""
    if len(digest) != _SHA256_SIZE:
        raise ValueError(f"sri() expects a {_SHA256_SIZE}-byte sha256 digest, got {len(digest)}")
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def parse_hash(text: str) -> bytes:
    """Read a sha256 written any way a user may have copied it from Nix or a lock file.

    Accepts ``sha256-<base64>`` (SRI), ``sha256:<nix base32 or hex>``, bare nix base32 (52
    characters) or bare hex (64 characters), and returns the raw 32-byte digest.
    """
    value = text.strip()
    if value.startswith("sha256-"):
        return _parse_sri(text, value.removeprefix("sha256-"))
    body = value.removeprefix("sha256:")
    if len(body) == 2 * _SHA256_SIZE:
        # Checked by hand because bytes.fromhex() would also accept embedded spaces.
        if not all(char in string.hexdigits for char in body):
            raise _bad_hash(text, "64 characters but not hexadecimal")
        return bytes.fromhex(body)
    if len(body) == _BASE32_LEN:
        return _parse_base32(text, body)
    if body == value and ("-" in value or ":" in value):
        raise _bad_hash(text, "only sha256 is supported, as 'sha256-<base64>' or 'sha256:<hex>'")
    raise _bad_hash(
        text,
        f"expected 64 hex or {_BASE32_LEN} nix-base32 characters, got {len(body)} characters",
    )


def _parse_sri(text: str, body: str) -> bytes:
    try:
        digest = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise _bad_hash(text, "the part after 'sha256-' is not valid base64") from None
    if len(digest) != _SHA256_SIZE:
        raise _bad_hash(text, f"decodes to {len(digest)} bytes, a sha256 has {_SHA256_SIZE}")
    return digest


def _parse_base32(text: str, body: str) -> bytes:
    value = 0
    for char in body:
        digit = _BASE32_VALUE.get(char)
        if digit is None:
            raise _bad_hash(text, f"{char!r} is not a nix-base32 digit ({NIX_BASE32_ALPHABET})")
        value = value << 5 | digit
    if value >> (_SHA256_SIZE * 8):
        # 52 digits hold 260 bits; Nix rejects set bits beyond the 256 of the digest.
        raise _bad_hash(text, "nix-base32 value is larger than 256 bits")
    return value.to_bytes(_SHA256_SIZE, "little")


def _bad_hash(text: str, reason: str) -> NarError:
    return NarError(f"invalid sha256 hash {text!r}: {reason}")


def _dump_node(root: bytes, write: Callable[[bytes], None]) -> None:
    """Serialise one file system object and everything below it.

    Depth-first with an explicit stack, not recursion: a tree deeper than Python's recursion
    limit (a thousand nested directories) is still a valid store path, and nix-hash takes it.
    The stack holds nodes still to visit, as 1-tuples, and the bytes to write after them.
    """
    todo: list[bytes | tuple[bytes]] = [(root,)]
    while todo:
        item = todo.pop()
        if isinstance(item, bytes):
            write(item)
            continue
        path = item[0]
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise _unreadable(path, exc) from None
        if stat.S_ISREG(st.st_mode):
            _dump_regular(path, write)
        elif stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(path))  # bytes in, bytes out: byte order, like Nix
            except OSError as exc:
                raise _unreadable(path, exc) from None
            write(_DIRECTORY)
            todo.append(_CLOSE)
            for name in reversed(names):
                todo += [_CLOSE, (os.path.join(path, name),), _ENTRY + _token(name) + _NODE]
        elif stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise _unreadable(path, exc) from None
            write(_SYMLINK + _token(target) + _CLOSE)
        else:
            raise NarError(
                f"cannot archive {os.fsdecode(path)!r}: it is a {_kind(st.st_mode)}; a NAR (and"
                " so a Nix store path) holds only regular files, directories and symlinks: "
                "remove it"
            )


def flat_directory_sha256(files: Mapping[str, Path]) -> bytes:
    """NAR sha256 of a directory that would hold ``files`` (name -> source) as plain files.

    This is the hash of what ``fetch`` produces (mode 0644 files, nothing else), computed from the
    cached artifacts where they lie, so locking needs no copy of the wheelhouse.
    """
    digest = hashlib.sha256()
    digest.update(_MAGIC + _DIRECTORY)
    for name in sorted(files, key=os.fsencode):
        digest.update(_ENTRY + _token(os.fsencode(name)) + _NODE)
        _dump_regular(os.fsencode(files[name]), digest.update, plain=True)
        digest.update(_CLOSE)
    digest.update(_CLOSE)
    return digest.digest()


def _dump_regular(path: bytes, write: Callable[[bytes], None], *, plain: bool = False) -> None:
    # O_NOFOLLOW: if the file was swapped for a symlink after lstat, fail rather than follow it.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NarError(
                f"cannot archive {os.fsdecode(path)!r}: it changed while being read; run again "
                "once nothing else writes to it"
            )
        header = _REGULAR
        if st.st_mode & stat.S_IXUSR and not plain:  # Nix looks at the owner bit only.
            header += _EXECUTABLE
        size = st.st_size
        write(header + _CONTENTS + size.to_bytes(8, "little"))
        remaining = size
        while remaining:
            try:
                chunk = os.read(fd, min(CHUNK_SIZE, remaining))
            except OSError as exc:
                raise _unreadable(path, exc) from None
            if not chunk:
                # The length is already written, so a short file would corrupt the NAR.
                raise NarError(
                    f"cannot archive {os.fsdecode(path)!r}: it shrank while being read; run "
                    "again once nothing else writes to it"
                )
            write(chunk)
            remaining -= len(chunk)
        write(_padding(size) + _CLOSE)
    finally:
        os.close(fd)


def _unreadable(path: bytes, exc: OSError) -> NarError:
    return NarError(
        f"cannot archive {os.fsdecode(path)!r}: {exc.strerror or exc}; make it readable or "
        "remove it"
    )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return f"file of unknown type (mode {mode:o})"
