"""Worker process for ``wheelhouse.install``: validates, extracts and byte-compiles wheels.

This file is run as a script by the *target* interpreter (``python -S -B _install_worker.py``),
which may be a different Python than the one running wheelhouse, so it uses the standard library
only and keeps to syntax that Python 3.8 understands. It talks to ``wheelhouse.install`` with one
JSON document per line on stdin/stdout:

1. worker -> ``{"hello": {...}}``: facts about the interpreter (version, real path, cache tag).
2. main -> ``{"op": "plan", "wheels": [[index, path, filename, sha256, label], ...]}``. For
   each wheel the worker reads the file, checks its sha256 against the lock's, parses the zip
   central directory, RECORD, WHEEL, METADATA and entry_points.txt, validates every member and
   answers ``{"plan": [...]}``: every destination path with its RECORD hash. Nothing is written
   yet, so the main process can detect conflicts between wheels first. Plans and wheel bytes
   stay in memory.
3. main -> ``{"op": "install", "root": ..., "prefix": ..., "shebang": ..., "compile": ...}``, then
   one ``{"op": "wheel", "index": ..., "path": ..., "filename": ..., "skip": [...],
   "scripts": [[dest, text], ...]}`` per wheel to install (a wheel another worker planned is
   planned again here), each answered ``{"installed": index}``. The worker decompresses every
   member once, checks its size, CRC and RECORD hash on the bytes in memory, writes it below
   ``root`` and compiles ``.py`` files of site-packages from the same bytes (unchecked-hash pyc,
   ``co_filename`` relative to the prefix), then writes the new RECORD and INSTALLER.
4. main -> ``{"op": "finish"}``: the worker answers ``{"done": {counts, warnings}}`` and exits.

Any failure is answered with ``{"error": {"kind": <wheelhouse.errors class>, "message": ...}}``.
"""

from __future__ import annotations

import binascii
import csv
import gc
import hashlib
import importlib.util
import io
import json
import marshal
import os
import posixpath
import stat
import struct
import sys
import time
import traceback
import warnings
import zlib
from typing import Any, BinaryIO

if __package__:  # imported as wheelhouse._install_worker (tests, mypy)
    from wheelhouse import _safefs
else:  # run as a script by the target interpreter: sys.path[0] is this directory
    import _safefs  # type: ignore[import-not-found,no-redef]

SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")
# Hash algorithms RECORD may use (the binary distribution format forbids md5 and sha1).
_ALLOWED_HASHES = frozenset(
    ("sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b")
)
_NAME_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
INSTALLER = b"wheelhouse\n"

# zip format (APPNOTE.TXT)
_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_END64_LOCATOR = b"PK\x06\x07"
_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # 46 bytes, zipfile's structCentralDir
_END_RECORD = struct.Struct("<4s4H2LH")  # 22 bytes
_END64_LOCATOR_RECORD = struct.Struct("<4sLQL")  # 20 bytes
_END64_RECORD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_STORED = 0
_DEFLATED = 8


class WorkerError(Exception):
    """A problem with a wheel, reported to the main process as a ``wheelhouse.errors`` class."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def interpreter_facts() -> dict[str, Any]:
    base = getattr(sys, "_base_executable", None) or sys.executable
    return {
        "version": "{}.{}.{}".format(*sys.version_info[:3]),
        "short": "{}.{}".format(*sys.version_info[:2]),
        "executable": os.path.realpath(base),
        "cache_tag": sys.implementation.cache_tag,
        "platlibdir": getattr(sys, "platlibdir", "lib"),
        "magic": importlib.util.MAGIC_NUMBER.hex(),
    }


def _b64(digest: bytes) -> str:
    """urlsafe base64 without padding, as RECORD wants it."""
    return binascii.b2a_base64(digest, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _damaged(wheel: str, what: str) -> WorkerError:
    return WorkerError(
        "InstallError", f"{wheel}: {what}; the file is truncated or damaged: fetch it again"
    )


def _unsafe(wheel: str, member: str, why: str) -> WorkerError:
    return WorkerError(
        "UnsafePathError",
        f"{wheel}: member {_safefs.quoted(member)} {why}; refusing to install this wheel (it may "
        "be malicious; rebuild it or get it from a trusted source)",
    )


def _control(name: str) -> bool:
    """Whether ``name`` holds a control character or a line separator: never part of a real
    file name, and printed raw (in a path) it would forge lines on the user's terminal."""
    return any(c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029" for c in name)


def _check_member_path(wheel: str, name: str) -> None:
    """Reject names that could land outside their scheme directory, or that hold control
    characters (destinations derived from them are printed in messages)."""
    if not name:
        raise _unsafe(wheel, name, "has an empty name")
    if "\\" in name or "\x00" in name:
        raise _unsafe(wheel, name, "contains a backslash or NUL byte")
    if _control(name):
        raise _unsafe(wheel, name, "contains a control character or line separator")
    if name[0] == "/" or name[1:2] == ":":
        raise _unsafe(wheel, name, "is an absolute path")
    padded = "/" + (name[:-1] if name[-1] == "/" else name) + "/"
    if "//" in padded or "/./" in padded or "/../" in padded:
        raise _unsafe(wheel, name, "has an empty, '.' or '..' path component")


class Entry:
    """One member of a zip archive, from its central directory record."""

    __slots__ = ("crc", "csize", "flags", "method", "mode", "name", "offset", "raw_name", "size")

    def __init__(
        self,
        name: str,
        raw_name: bytes,
        offset: int,
        csize: int,
        size: int,
        crc: int,
        method: int,
        flags: int,
        mode: int,
    ) -> None:
        self.name = name
        self.raw_name = raw_name
        self.offset = offset
        self.csize = csize
        self.size = size
        self.crc = crc
        self.method = method
        self.flags = flags
        self.mode = mode


def read_central_directory(data: bytes, wheel: str) -> list[Entry]:
    """Parse the central directory of the zip archive ``data`` (zip64 included)."""
    end = data.rfind(_END, max(0, len(data) - 65557))
    if end < 0 or end + 22 > len(data):
        raise _damaged(wheel, "is not a valid wheel (zip) archive: no end of central directory")
    _sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, _comment = _END_RECORD.unpack_from(
        data, end
    )
    records_end = end
    locator = end - 20
    if locator >= 0 and data[locator : locator + 4] == _END64_LOCATOR:  # zip64 (as zipfile)
        end64 = _END64_LOCATOR_RECORD.unpack_from(data, locator)[2]
        if end64 + 56 > len(data) or data[end64 : end64 + 4] != _END64:
            raise _damaged(wheel, "is not a valid wheel (zip) archive: bad zip64 end record")
        count, cd_size, cd_offset = _END64_RECORD.unpack_from(data, end64)[7:10]
        records_end = locator - 56
    # bytes prepended to the archive (self-extractors) shift every offset, as zipfile allows
    shift = records_end - cd_size - cd_offset
    if shift < 0:
        raise _damaged(wheel, "is not a valid wheel (zip) archive: bad central directory offset")
    pos = cd_offset + shift
    entries: list[Entry] = []
    unpack = _CENTRAL_HEADER.unpack_from
    try:
        for _ in range(count):
            (
                sig, _v1, _s1, _v2, _s2, flags, method, _time, _date, crc, csize, size, nlen,
                xlen, clen, _disk, _iattr, eattr, offset,
            ) = unpack(data, pos)  # fmt: skip
            if sig != _CENTRAL:
                raise _damaged(wheel, "is not a valid wheel (zip) archive: bad central directory")
            raw_name = data[pos + 46 : pos + 46 + nlen]
            if 0xFFFFFFFF in (csize, size, offset):
                size, csize, offset = _zip64_extra(
                    data[pos + 46 + nlen : pos + 46 + nlen + xlen], size, csize, offset, wheel
                )
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
            _check_sizes(wheel, name, method, flags, csize, size, len(data))
            entries.append(
                Entry(name, raw_name, offset + shift, csize, size, crc, method, flags, eattr >> 16)
            )
            pos += 46 + nlen + xlen + clen
    except (struct.error, UnicodeDecodeError, IndexError) as e:
        raise _damaged(wheel, f"is not a valid wheel (zip) archive: {e}") from None
    return entries


_DEFLATE_RATIO = 1032
"""The most deflate can compress: a member declaring more is lying (or a zip64 field is bogus)."""
_MAX_MEMBER = 1 << 40
"""No wheel member is a terabyte: a bigger declared size is a bomb or a broken header."""


def _check_sizes(
    wheel: str, name: str, method: int, flags: int, csize: int, size: int, total: int
) -> None:
    """Refuse declared sizes no real member has, before anything is decompressed: a size near
    2**64 would overflow, a huge one would exhaust memory."""
    if csize > total:
        why = f"declares {csize} compressed bytes, more than the whole file ({total})"
    elif method == _STORED and size != csize and not flags & 1:  # encrypted: 12 bytes more
        why = f"is stored uncompressed but declares {size} bytes in {csize}"
    elif method == _DEFLATED and size > csize * _DEFLATE_RATIO + 1024:
        why = f"declares {size} bytes, more than deflate can make of {csize}"
    elif size > _MAX_MEMBER:
        why = f"declares {size} bytes uncompressed, more than any wheel member has"
    else:
        return
    raise WorkerError(
        "InstallError",
        f"{wheel}: member {name!r} {why}; the wheel is damaged or malicious (a decompression "
        "bomb): fetch it again or get it from a trusted source",
    )


def _zip64_extra(
    extra: bytes, size: int, csize: int, offset: int, wheel: str
) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            fields = extra[pos + 4 : pos + 4 + length]
            values = list(struct.unpack_from(f"<{len(fields) // 8}Q", fields))
            if size == 0xFFFFFFFF:
                size = values.pop(0)
            if csize == 0xFFFFFFFF:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF:
                offset = values.pop(0)
            return size, csize, offset
        pos += 4 + length
    raise _damaged(wheel, "is not a valid wheel (zip) archive: missing zip64 extra field")


def extract(data: bytes, view: memoryview, entry: Entry, wheel: str) -> bytes:
    """The content of ``entry``, decompressed once and checked against its size and CRC."""
    try:
        return _extract(data, view, entry, wheel)
    except MemoryError:
        raise WorkerError(
            "InstallError",
            f"{wheel}: member {entry.name!r} is {entry.size} bytes uncompressed, more than the "
            "install worker could hold in memory; free memory or raise the limit (ulimit -v), "
            "and check the wheel comes from a trusted source (it may be a decompression bomb)",
        ) from None


def _extract(data: bytes, view: memoryview, entry: Entry, wheel: str) -> bytes:
    off = entry.offset
    name = entry.name
    if data[off : off + 4] != _LOCAL or off + 30 > len(data):
        raise _damaged(wheel, f"member {name!r} has no local header")
    if entry.flags & 1:
        raise _damaged(wheel, f"member {name!r} is encrypted")
    nlen, xlen = struct.unpack_from("<HH", data, off + 26)
    if data[off + 30 : off + 30 + nlen] != entry.raw_name:
        raise _damaged(wheel, f"member {name!r} has a different name in its local header")
    start = off + 30 + nlen + xlen
    end = start + entry.csize
    if end > len(data):
        raise _damaged(wheel, f"member {name!r} is truncated")
    size = entry.size
    method = entry.method
    if method == _DEFLATED:
        inflate = zlib.decompressobj(-15)
        try:
            content = inflate.decompress(view[start:end], size + 1)
        except zlib.error as e:
            raise _damaged(wheel, f"member {name!r} cannot be decompressed ({e})") from None
        if not inflate.eof:
            raise _damaged(wheel, f"member {name!r} is truncated or larger than declared")
    elif method == _STORED:
        content = data[start:end]
    else:  # bzip2, lzma...: rare in wheels, leave it to zipfile
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                content = zf.read(name)
        except MemoryError:
            raise
        except Exception as e:  # zipfile, bz2 and lzma each raise their own
            why = f"{type(e).__name__}: {e}".replace("\n", " ")
            raise _damaged(wheel, f"member {name!r} cannot be decompressed ({why})") from None
    if len(content) != size or zlib.crc32(content) != entry.crc:
        raise _damaged(wheel, f"member {name!r} fails its zip CRC/size check")
    return content


def _headers(text: str) -> dict[str, str]:
    """The first value of each header of an RFC 822 style metadata file (keys lower-cased)."""
    out: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():  # headers end at the first empty line
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip().lower(), value.strip())
    return out


def _parse_record(wheel: str, text: str, record_name: str) -> dict[str, tuple[str, str]]:
    """RECORD as {path: (hash, size)}."""
    entries: dict[str, tuple[str, str]] = {}
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            row = next(reader, None)
        except csv.Error as e:  # a bare CR, a field over csv's limit, a NUL...
            raise WorkerError(
                "RecordError",
                f"{wheel}: {record_name} line {reader.line_num} is not valid CSV ({e}); the "
                "wheel is broken: rebuild it",
            ) from None
        if row is None:
            break
        if not row:
            continue
        if len(row) != 3:
            raise WorkerError(
                "RecordError",
                f"{wheel}: {record_name} has a malformed line {','.join(row)!r} (expected "
                "path,hash,size); the wheel is broken: rebuild it",
            )
        path, hash_, size = row
        if entries.get(path, (hash_, size)) != (hash_, size):
            raise WorkerError(
                "RecordError",
                f"{wheel}: {record_name} lists {path!r} twice with different hashes; the wheel "
                "is broken: rebuild it",
            )
        entries[path] = (hash_, size)
    return entries


class WheelPlan:
    """One wheel, parsed and validated, with its bytes kept in memory for the install step."""

    __slots__ = (
        "data",
        "dist_info",
        "entry_points",
        "filename",
        "files",
        "index",
        "name",
        "requires_python",
        "sha256",
        "version",
        "warnings",
    )

    def __init__(self, index: int, filename: str) -> None:
        self.index = index
        self.filename = filename
        self.data = b""
        self.sha256 = ""
        self.name = ""
        self.version = ""
        self.requires_python = ""
        self.dist_info = ""
        self.entry_points: str | None = None
        # (member, destination relative to the prefix, hash algorithm, RECORD digest (urlsafe
        # base64, no padding), executable), in archive order
        self.files: list[tuple[Entry, str, str, str, bool]] = []
        self.warnings: list[str] = []


def plan_wheel(
    index: int, path: str, filename: str, expected: tuple[str, str], sp_rel: str, short: str
) -> WheelPlan:
    """Read and validate one wheel; its plan has destinations relative to the prefix.

    ``expected`` is the lock's (sha256, "package version"): bytes that are not the locked ones
    are refused before anything in them is parsed.
    """
    plan = WheelPlan(index, filename)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WorkerError(
            "InstallError", f"{filename}: cannot read {path} ({e.strerror}); fetch it again"
        ) from None
    plan.data = data
    plan.sha256 = hashlib.sha256(data).hexdigest()
    if plan.sha256 != expected[0]:
        raise WorkerError(
            "HashMismatchError",
            f"{path}: sha256 {plan.sha256} does not match the lock's {expected[0]} for "
            f"{expected[1]}; the wheelhouse is stale or damaged: delete the file and run "
            "`wheelhouse fetch` again",
        )
    view = memoryview(data)
    entries = read_central_directory(data, filename)

    by_name: dict[str, Entry] = {}
    dist_infos: set[str] = set()
    for entry in entries:
        name = entry.name
        if name in by_name:
            raise WorkerError(
                "InstallError",
                f"{filename}: archive contains member {name!r} more than once; the wheel is "
                "ambiguous: rebuild it",
            )
        by_name[name] = entry
        _check_member_path(filename, name)
        top, sep, _rest = name.partition("/")
        if sep and top.endswith(".dist-info"):
            dist_infos.add(top)
    if len(dist_infos) != 1:
        raise WorkerError(
            "InstallError",
            f"{filename}: expected exactly one top-level .dist-info directory, found "
            f"{sorted(dist_infos) or 'none'}; the wheel is malformed: rebuild it",
        )
    dist_info = dist_infos.pop()
    plan.dist_info = dist_info
    record_name = dist_info + "/RECORD"
    if record_name not in by_name:
        raise WorkerError(
            "RecordError",
            f"{filename}: has no {record_name}, so its content cannot be verified; the wheel is "
            "malformed: rebuild it with a PEP 427 compliant tool",
        )

    def text(member: str) -> str:
        return extract(data, view, by_name[member], filename).decode("utf-8", "replace")

    for meta in ("WHEEL", "METADATA"):
        if f"{dist_info}/{meta}" not in by_name:
            raise WorkerError(
                "InstallError",
                f"{filename}: has no {dist_info}/{meta}; the wheel is malformed: rebuild it",
            )
    wheel_version = _headers(text(dist_info + "/WHEEL")).get("wheel-version", "")
    if not wheel_version.startswith("1."):
        raise WorkerError(
            "InstallError",
            f"{filename}: unsupported Wheel-Version {wheel_version!r} in {dist_info}/WHEEL (only "
            "1.x is supported): install it with a newer tool",
        )
    metadata = _headers(text(dist_info + "/METADATA"))
    plan.name = metadata.get("name", "")
    plan.version = metadata.get("version", "")
    plan.requires_python = metadata.get("requires-python", "")
    if not plan.name or not set(plan.name) <= _NAME_OK or ".." in plan.name:
        raise WorkerError(
            "InstallError",
            f"{filename}: {dist_info}/METADATA has a missing or invalid Name {plan.name!r}; "
            "the wheel is malformed: rebuild it",
        )
    if dist_info + "/entry_points.txt" in by_name:
        plan.entry_points = text(dist_info + "/entry_points.txt")
    try:
        record_text = extract(data, view, by_name[record_name], filename).decode("utf-8")
    except UnicodeDecodeError:
        raise WorkerError(
            "RecordError", f"{filename}: {record_name} is not UTF-8: rebuild the wheel"
        ) from None
    record = _parse_record(filename, record_text, record_name)

    root = sp_rel + "/"
    prefixes = {
        "purelib": root,
        "platlib": root,
        "scripts": "bin/",
        "headers": f"include/site/python{short}/{plan.name}/",
        "data": "",
    }
    data_prefix = dist_info[: -len(".dist-info")] + ".data/"
    unrecorded = (record_name, dist_info + "/RECORD.jws", dist_info + "/RECORD.p7s")
    installer_name = dist_info + "/INSTALLER"
    dests: dict[str, str] = {}
    files = plan.files
    for entry in sorted(entries, key=lambda e: e.offset):
        name = entry.name
        if name[-1] == "/":
            continue  # a directory entry: directories are implied by files
        mode = entry.mode
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise _unsafe(filename, name, "is a symbolic link (wheels must not contain links)")
        if kind not in (0, stat.S_IFREG):
            raise _unsafe(filename, name, f"is not a regular file (mode {mode:o})")
        listed = record.pop(name, None)
        if name in unrecorded:
            continue
        if listed is None:
            raise WorkerError(
                "RecordError",
                f"{filename}: member {name!r} is not listed in {record_name}, so its content "
                "cannot be verified; the wheel is malformed or tampered with: rebuild it or "
                "fetch it again",
            )
        hash_, size = listed
        algo, _, digest = hash_.partition("=")
        if not digest or algo not in _ALLOWED_HASHES:
            raise WorkerError(
                "RecordError",
                f"{filename}: {record_name} has no acceptable hash for member {name!r} (got "
                f"{hash_!r}); rebuild the wheel",
            )
        if size and size != str(entry.size):
            raise WorkerError(
                "RecordError",
                f"{filename}: member {name!r} is {entry.size} bytes but {record_name} says "
                f"{size}; the wheel is corrupt or tampered with: fetch it again",
            )
        if "/__pycache__/" in "/" + name:
            plan.warnings.append(
                f"{filename}: skipped {name!r} (wheels must not ship __pycache__ files)"
            )
            continue
        if name.startswith(data_prefix):
            scheme, _, rest = name[len(data_prefix) :].partition("/")
            if scheme not in prefixes or not rest:
                raise WorkerError(
                    "InstallError",
                    f"{filename}: member {name!r} is in unknown .data scheme {scheme!r} (expected "
                    f"one of {', '.join(SCHEMES)}); the wheel is malformed: rebuild it",
                )
            dest = prefixes[scheme] + rest
            executable = scheme == "scripts" or bool(mode & 0o111)
        else:
            dest = root + name
            executable = bool(mode & 0o111)
        if name == installer_name:
            continue  # verified, but replaced by ours
        other = dests.setdefault(dest, name)
        if other != name:
            raise WorkerError(
                "InstallError",
                f"{filename}: members {other!r} and {name!r} both install to {dest}; the wheel "
                "is malformed: rebuild it",
            )
        files.append((entry, dest, algo, digest.rstrip("="), executable))
    for missing in record:
        if missing[-1:] != "/" and missing not in unrecorded:
            raise WorkerError(
                "RecordError",
                f"{filename}: {record_name} lists {missing!r} but the archive has no such "
                "member; the wheel is incomplete or tampered with: rebuild it or fetch it again",
            )
    return plan


def plan_summary(plan: WheelPlan) -> dict[str, Any]:
    py = total = 0
    for entry, dest, _algo, _digest, _x in plan.files:
        total += entry.size
        if dest[-3:] == ".py":
            py += entry.size
    return {
        "index": plan.index,
        "name": plan.name,
        "version": plan.version,
        "requires_python": plan.requires_python,
        "sha256": plan.sha256,
        "dist_info": plan.dist_info,
        "entry_points": plan.entry_points,
        "files": [[dest, algo + "=" + digest] for _e, dest, algo, digest, _x in plan.files],
        # rough nanoseconds of work: compile ~160 ns per source byte, ~100 us per file
        # created, ~5 ns per byte decompressed, hashed and written
        "cost": py * 160 + len(plan.files) * 100_000 + total * 5,
        "warnings": plan.warnings,
    }


class Installer:
    """Writes planned wheels below ``root`` (the staging directory for the final ``prefix``).

    Every write goes through ``_safefs.Tree``: directory fds opened with ``O_NOFOLLOW`` from the
    root down and files created with ``O_EXCL | O_NOFOLLOW`` at them, so a link on disk can
    never redirect a write outside ``root``. (The fds are closed when the worker exits.)
    """

    def __init__(self, root: str, prefix: str, sp_rel: str, shebang: bytes, compile_: bool) -> None:
        self.tree = _safefs.Tree(root)
        self.wheel = ""
        self.prefix = prefix + "/"
        self.sp_rel = sp_rel + "/"
        self.shebang = shebang
        self.compile = compile_
        self.pyc_header = importlib.util.MAGIC_NUMBER + b"\x01\x00\x00\x00"  # unchecked hash
        self.cache_tag = sys.implementation.cache_tag
        self.made: set[str] = set()
        self.files = 0
        self.pycs = 0
        self.compile_seconds = 0.0
        self.warnings: list[str] = []

    def _mkdir(self, rel: str) -> None:
        """Create directory ``rel`` (and missing parents) below root, at most once."""
        if rel in self.made or not rel:
            return
        try:
            self.tree.mkdir(rel)  # made by another worker or by the layout: fine
        except OSError as e:
            raise self._failed(rel, e) from None
        self.made.add(rel)

    def _write(self, dest: str, data: bytes, mode: int) -> None:
        try:
            self.tree.write(dest, data, mode)
        except OSError as e:
            raise self._failed(dest, e) from None

    def _failed(self, dest: str, e: OSError) -> WorkerError:
        where = _safefs.escape(dest)
        if e.errno in _safefs.BLOCKED:
            return WorkerError(
                "UnsafePathError",
                f"{self.wheel}: cannot write {where} ({e.strerror}): a link or another file is "
                "in the way on disk (a name differing only in case on this file system, or made "
                "by someone else meanwhile); refusing to write through it: check what else writes "
                "to the environment",
            )
        return WorkerError(
            "InstallError",
            f"{self.wheel}: writing {where} failed ({e.strerror}); check free space and "
            "permissions",
        )

    def _pyc(self, wheel: str, dest: str, source: bytes, write: bool) -> str | None:
        """Compile ``source`` (installed at ``dest``); returns the pyc path, None if invalid."""
        started = time.perf_counter()
        try:
            # co_filename relative to the prefix: the import system replaces it with the real
            # path when it loads the pyc, and the bytes then do not depend on where the env
            # lives (a Nix store path changes with every pin; image layers should not).
            code = compile(source, dest, "exec", dont_inherit=True, optimize=0)
        except Exception as e:
            if write:
                why = (str(e).splitlines() or [""])[0]
                self.warnings.append(
                    f"{wheel}: {_safefs.escape(dest)} is not valid Python, left without bytecode "
                    f"({type(e).__name__}: {_safefs.escape(why)})"
                )
            return None
        head, _, tail = dest.rpartition("/")
        cache = head + "/__pycache__"
        pyc = f"{cache}/{tail[:-3]}.{self.cache_tag}.pyc"
        if write:
            self._mkdir(cache)
            self._write(
                pyc,
                self.pyc_header + importlib.util.source_hash(source) + marshal.dumps(code),
                0o644,
            )
            self.pycs += 1
        self.compile_seconds += time.perf_counter() - started
        return pyc

    def install(self, plan: WheelPlan, skip: set[str], scripts: list[list[str]]) -> None:
        """Write one planned wheel, its scripts, bytecode, INSTALLER and RECORD.

        Destinations in ``skip`` are written by another wheel with identical content: they are
        still verified (and listed in this wheel's RECORD) but not written again.
        """
        data = plan.data
        view = memoryview(data)
        wheel = self.wheel = plan.filename
        sp_rel = self.sp_rel
        sp_len = len(sp_rel)
        compile_ = self.compile
        mkdir = self._mkdir
        write_file = self._write
        rows: list[tuple[str, str, str]] = []
        for dest in sorted({dest.rpartition("/")[0] for _e, dest, _a, _d, _x in plan.files}):
            mkdir(dest)
        for entry, dest, algo, expected, executable in plan.files:
            content = extract(data, view, entry, wheel)
            digest = _b64(
                hashlib.sha256(content).digest()
                if algo == "sha256"
                else hashlib.new(algo, content).digest()
            )
            if digest != expected:
                raise WorkerError(
                    "RecordError",
                    f"{wheel}: member {entry.name!r} does not match its RECORD hash "
                    f"({algo}={expected}, file has {digest}); the wheel is corrupt or tampered "
                    "with: fetch it again or rebuild it",
                )
            write = dest not in skip
            hash_ = algo + "=" + expected
            if dest[:4] == "bin/" and content[:8] == b"#!python":
                newline = content.find(b"\n")
                content = self.shebang + (content[newline:] if newline >= 0 else b"\n")
                hash_ = "sha256=" + _b64(hashlib.sha256(content).digest())
            if write:
                write_file(dest, content, 0o755 if executable else 0o644)
                self.files += 1
            if dest[:sp_len] == sp_rel:
                rows.append((dest[sp_len:], hash_, str(len(content))))
                if compile_ and dest[-3:] == ".py":
                    pyc = self._pyc(wheel, dest, content, write)
                    if pyc is not None:
                        rows.append((pyc[sp_len:], "", ""))
            else:
                rows.append((posixpath.relpath(dest, sp_rel), hash_, str(len(content))))
        for dest, script in scripts:
            content = script.encode("utf-8")
            if dest not in skip:
                mkdir("bin")
                write_file(dest, content, 0o755)
                self.files += 1
            digest = "sha256=" + _b64(hashlib.sha256(content).digest())
            rows.append((posixpath.relpath(dest, sp_rel), digest, str(len(content))))
        dist_info = sp_rel + plan.dist_info + "/"
        mkdir(dist_info[:-1])
        write_file(dist_info + "INSTALLER", INSTALLER, 0o644)
        digest = "sha256=" + _b64(hashlib.sha256(INSTALLER).digest())
        rows.append((plan.dist_info + "/INSTALLER", digest, str(len(INSTALLER))))
        rows.append((plan.dist_info + "/RECORD", "", ""))
        rows.sort()
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        write_file(dist_info + "RECORD", out.getvalue().encode("utf-8"), 0o644)
        self.files += 2
        plan.data = b""


def _rusage() -> list[float]:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return []
    r = resource.getrusage(resource.RUSAGE_SELF)
    return [r.ru_utime, r.ru_stime, r.ru_nvcsw, r.ru_nivcsw, r.ru_majflt, r.ru_minflt]


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n")
    out.flush()


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """Run the worker protocol on ``inp``/``out``; returns the exit status."""
    facts = interpreter_facts()
    _send(out, {"hello": facts})
    plans: dict[int, WheelPlan] = {}
    sp_rel = "lib/python{}/site-packages".format(facts["short"])
    try:
        line = inp.readline()
        if not line:
            return 0
        job = json.loads(line)
        started = time.perf_counter()
        summaries = []
        for index, path, filename, sha256, label in job["wheels"]:
            plan = plan_wheel(index, path, filename, (sha256, label), sp_rel, facts["short"])
            plans[index] = plan
            summaries.append(plan_summary(plan))
        planned = time.perf_counter()
        _send(out, {"plan": summaries})
        line = inp.readline()
        go = json.loads(line) if line else {}
        if go.get("op") != "install":
            return 0
        installing = time.perf_counter()
        installer = Installer(
            go["root"], go["prefix"], sp_rel, go["shebang"].encode("utf-8"), go["compile"]
        )
        while True:
            line = inp.readline()
            if not line:
                return 0
            task = json.loads(line)
            if task["op"] != "wheel":
                break
            index = task["index"]
            mine = plans.pop(index, None)
            if mine is None:  # planned by another worker: this one took it over
                expected = (task["sha256"], task["label"])
                mine = plan_wheel(
                    index, task["path"], task["filename"], expected, sp_rel, facts["short"]
                )
            installer.install(mine, set(task.get("skip", ())), task.get("scripts", []))
            _send(out, {"installed": index})
        seconds = {
            "plan": planned - started,
            "wait": installing - planned,
            "install": time.perf_counter() - installing,
            "compile": installer.compile_seconds,
            "cpu": time.process_time(),
        }
        done = {"files": installer.files, "pycs": installer.pycs, "warnings": installer.warnings}
        _send(out, {"done": dict(done, seconds=seconds, rusage=_rusage())})
    except WorkerError as e:
        _send(out, {"error": {"kind": e.kind, "message": e.message}})
        return 1
    except OSError as e:
        message = f"writing the environment failed: {e}; check free space and permissions"
        _send(out, {"error": {"kind": "InstallError", "message": message}})
        return 1
    except MemoryError:
        gc.collect()
        message = (
            "the install worker ran out of memory; free memory or raise the limit (ulimit -v), "
            "and check the wheels come from a trusted source"
        )
        _send(out, {"error": {"kind": "InstallError", "message": message}})
        return 1
    except Exception:
        _send(out, {"error": {"kind": "bug", "message": traceback.format_exc()}})
        return 1
    return 0


def main() -> int:
    gc.disable()  # compile() allocates many short-lived objects; cycles are rare here
    warnings.simplefilter("ignore")  # SyntaxWarning/DeprecationWarning from compile()
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    profile_dir = os.environ.get("WHEELHOUSE_INSTALL_PROFILE")
    if not profile_dir:
        return serve(sys.stdin.buffer, out)
    import cProfile  # pstats files for profiling: WHEELHOUSE_INSTALL_PROFILE=DIR

    profiler = cProfile.Profile(time.process_time)  # CPU time: other load does not count
    try:
        return profiler.runcall(serve, sys.stdin.buffer, out)
    finally:
        profiler.dump_stats(os.path.join(profile_dir, f"install-worker-{os.getpid()}.pstats"))


if __name__ == "__main__":
    sys.exit(main())
