"""Worker process for ``wheelhouse.install``: validates, extracts and byte-compiles wheels.

This file is run as a script by the *target* interpreter (``python -S -B _install_worker.py``),
which may be a different Python than the one running wheelhouse, so it uses the standard library
only and keeps to syntax that Python 3.8 understands. It talks to ``wheelhouse.install`` with the
messages of ``_install_protocol`` (one JSON document per line on stdin/stdout):

1. It greets with the interpreter's facts.
2. ``PlanRequest``: for each wheel it reads the file, checks its sha256 against the lock's, opens
   it with ``zipfile``, reads WHEEL and METADATA (``email.parser``), RECORD (``csv``) and
   entry_points.txt, validates every member and answers every destination path with its RECORD
   hash. Nothing is written yet, so the main process can detect conflicts between wheels first.
   Plans and wheel bytes stay in memory.
3. ``InstallSetup``, then one ``WheelTask`` per wheel to install (a wheel another worker planned
   is planned again here): the worker decompresses every member once, checks its size, CRC and
   RECORD hash on the bytes in memory, writes it below the staging root and compiles ``.py``
   files of site-packages from the same bytes (unchecked-hash pyc, ``co_filename`` relative to
   the prefix), then writes the new RECORD and INSTALLER.
4. ``Finish``: the worker reports counts and warnings and exits.

Any failure is answered with ``Failed``: a ``wheelhouse.errors`` class name and one message
naming the wheel and the member.

Why ``zipfile`` is enough here: the member checks wheels need on top of it (duplicate names,
sizes no member has, names with control characters or ``..``, links, encryption) are made on its
``ZipInfo`` records before anything is decompressed, and every member is read at most up to its
declared size, so a header that lies costs no memory.
"""

from __future__ import annotations

import binascii
import csv
import email.message
import email.parser
import gc
import hashlib
import importlib.util
import io
import marshal
import os
import posixpath
import stat
import sys
import time
import traceback
import warnings
import zipfile
from typing import BinaryIO

if __package__:  # imported as wheelhouse._install_worker (tests, mypy)
    from wheelhouse import _install_protocol as protocol
    from wheelhouse import _safefs
else:  # run as a script by the target interpreter: sys.path[0] is this directory
    import _install_protocol as protocol  # type: ignore[import-not-found,no-redef]
    import _safefs  # type: ignore[import-not-found,no-redef]

SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")
# Hash algorithms RECORD may use (the binary distribution format forbids md5 and sha1).
_ALLOWED_HASHES = frozenset(
    ("sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b")
)
_NAME_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
INSTALLER = b"wheelhouse\n"


class WorkerError(Exception):
    """A problem with a wheel, reported to the main process as a ``wheelhouse.errors`` class."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def interpreter_facts() -> protocol.Facts:
    base = getattr(sys, "_base_executable", None) or sys.executable
    return protocol.Facts(
        version="{}.{}.{}".format(*sys.version_info[:3]),
        short="{}.{}".format(*sys.version_info[:2]),
        executable=os.path.realpath(base),
        cache_tag=sys.implementation.cache_tag,
        platlibdir=getattr(sys, "platlibdir", "lib"),
        magic=importlib.util.MAGIC_NUMBER.hex(),
    )


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


def open_archive(data: bytes, wheel: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip archive ``data`` and its members, in central directory order, each checked for
    sizes no real member has before anything is decompressed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as e:  # BadZipFile, and what zipfile lets through from broken headers
        raise _damaged(wheel, f"is not a valid wheel (zip) archive ({_why(e)})") from None
    members = archive.infolist()
    for info in members:
        _check_sizes(wheel, info, len(data))
    return archive, members


def _why(e: BaseException) -> str:
    """An exception as one line: its class (the decompressors' errors say little without it)
    and its message, if any."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


_DEFLATE_RATIO = 1032
"""The most deflate can compress: a member declaring more is lying (or a zip64 field is bogus)."""
_MAX_MEMBER = 1 << 40
"""No wheel member is a terabyte: a bigger declared size is a bomb or a broken header."""


def _check_sizes(wheel: str, info: zipfile.ZipInfo, total: int) -> None:
    """Refuse declared sizes no real member has, before anything is decompressed: a size near
    2**64 would overflow, a huge one would exhaust memory."""
    csize = info.compress_size
    size = info.file_size
    method = info.compress_type
    if csize > total:
        why = f"declares {csize} compressed bytes, more than the whole file ({total})"
    elif method == zipfile.ZIP_STORED and size != csize and not info.flag_bits & 1:
        why = f"is stored uncompressed but declares {size} bytes in {csize}"  # encrypted: +12
    elif method == zipfile.ZIP_DEFLATED and size > csize * _DEFLATE_RATIO + 1024:
        why = f"declares {size} bytes, more than deflate can make of {csize}"
    elif size > _MAX_MEMBER:
        why = f"declares {size} bytes uncompressed, more than any wheel member has"
    else:
        return
    raise WorkerError(
        "InstallError",
        f"{wheel}: member {info.orig_filename!r} {why}; the wheel is damaged or malicious (a "
        "decompression bomb): fetch it again or get it from a trusted source",
    )


def extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, wheel: str) -> bytes:
    """The content of member ``info``, decompressed once and checked against its size and CRC.

    At most the declared size plus one byte is read (zipfile inflates a deflate member no
    further than asked), so a member whose header lies about its size costs no more memory than
    an honest one; CRC mismatches are zipfile's ``BadZipFile``, a short member ours.
    """
    name = info.orig_filename
    if info.flag_bits & 1:
        raise _damaged(wheel, f"member {name!r} is encrypted")
    try:
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)
    except MemoryError:
        raise WorkerError(
            "InstallError",
            f"{wheel}: member {name!r} is {info.file_size} bytes uncompressed, more than the "
            "install worker could hold in memory; free memory or raise the limit (ulimit -v), "
            "and check the wheel comes from a trusted source (it may be a decompression bomb)",
        ) from None
    except zipfile.BadZipFile as e:  # a bad local header, a CRC mismatch
        raise _damaged(wheel, f"member {name!r} fails its zip checks ({e})") from None
    except Exception as e:  # zlib, bz2 and lzma each raise their own; EOFError if truncated
        raise _damaged(wheel, f"member {name!r} cannot be decompressed ({_why(e)})") from None
    if len(content) != info.file_size:
        raise _damaged(wheel, f"member {name!r} fails its zip size check")
    return content


def _headers(text: str) -> email.message.Message:
    """The headers of an RFC 822 style metadata file (METADATA, WHEEL); ``get`` is
    case-insensitive and returns a header's first value.

    The body (a long description, often most of METADATA) is cut off unread: the parser would
    split it into lines only to keep it as one string.
    """
    return email.parser.HeaderParser().parsestr(text.split("\n\n", 1)[0])


def _header(headers: email.message.Message, name: str) -> str:
    """The first value of header ``name``, "" if there is none."""
    return str(headers.get(name, "")).strip()


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
        "archive",
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
        self.archive: zipfile.ZipFile | None = None
        self.sha256 = ""
        self.name = ""
        self.version = ""
        self.requires_python = ""
        self.dist_info = ""
        self.entry_points: str | None = None
        # (member, destination relative to the prefix, hash algorithm, RECORD digest (urlsafe
        # base64, no padding), executable), in archive order
        self.files: list[tuple[zipfile.ZipInfo, str, str, str, bool]] = []
        self.warnings: list[str] = []


def plan_wheel(job: protocol.WheelJob, sp_rel: str, short: str) -> WheelPlan:
    """Read and validate one wheel; its plan has destinations relative to the prefix.

    Bytes that are not the locked ones (``job.sha256``) are refused before anything in them is
    parsed.
    """
    path = job.path
    filename = job.filename
    plan = WheelPlan(job.index, filename)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WorkerError(
            "InstallError", f"{filename}: cannot read {path} ({e.strerror}); fetch it again"
        ) from None
    plan.sha256 = hashlib.sha256(data).hexdigest()
    if plan.sha256 != job.sha256:
        raise WorkerError(
            "HashMismatchError",
            f"{path}: sha256 {plan.sha256} does not match the lock's {job.sha256} for "
            f"{job.label}; the wheelhouse is stale or damaged: delete the file and run "
            "`wheelhouse fetch` again",
        )
    archive, entries = open_archive(data, filename)
    plan.archive = archive

    by_name: dict[str, zipfile.ZipInfo] = {}
    dist_infos: set[str] = set()
    for entry in entries:
        name = entry.orig_filename  # zipfile cuts filename at a NUL: refused below
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
        return extract(archive, by_name[member], filename).decode("utf-8", "replace")

    for meta in ("WHEEL", "METADATA"):
        if f"{dist_info}/{meta}" not in by_name:
            raise WorkerError(
                "InstallError",
                f"{filename}: has no {dist_info}/{meta}; the wheel is malformed: rebuild it",
            )
    wheel_version = _header(_headers(text(dist_info + "/WHEEL")), "Wheel-Version")
    if not wheel_version.startswith("1."):
        raise WorkerError(
            "InstallError",
            f"{filename}: unsupported Wheel-Version {wheel_version!r} in {dist_info}/WHEEL (only "
            "1.x is supported): install it with a newer tool",
        )
    metadata = _headers(text(dist_info + "/METADATA"))
    plan.name = _header(metadata, "Name")
    plan.version = _header(metadata, "Version")
    plan.requires_python = _header(metadata, "Requires-Python")
    if not plan.name or not set(plan.name) <= _NAME_OK or ".." in plan.name:
        raise WorkerError(
            "InstallError",
            f"{filename}: {dist_info}/METADATA has a missing or invalid Name {plan.name!r}; "
            "the wheel is malformed: rebuild it",
        )
    if dist_info + "/entry_points.txt" in by_name:
        plan.entry_points = text(dist_info + "/entry_points.txt")
    try:
        record_text = extract(archive, by_name[record_name], filename).decode("utf-8")
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
    for entry in sorted(entries, key=lambda e: e.header_offset):
        name = entry.orig_filename
        if name[-1] == "/":
            continue  # a directory entry: directories are implied by files
        mode = entry.external_attr >> 16
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
        if size and size != str(entry.file_size):
            raise WorkerError(
                "RecordError",
                f"{filename}: member {name!r} is {entry.file_size} bytes but {record_name} says "
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


def plan_summary(plan: WheelPlan) -> protocol.WheelSummary:
    py = total = 0
    for entry, dest, _algo, _digest, _x in plan.files:
        total += entry.file_size
        if dest[-3:] == ".py":
            py += entry.file_size
    return protocol.WheelSummary(
        index=plan.index,
        name=plan.name,
        version=plan.version,
        requires_python=plan.requires_python,
        sha256=plan.sha256,
        dist_info=plan.dist_info,
        entry_points=plan.entry_points,
        files=tuple((dest, algo + "=" + digest) for _e, dest, algo, digest, _x in plan.files),
        # rough nanoseconds of work: compile ~160 ns per source byte, ~100 us per file
        # created, ~5 ns per byte decompressed, hashed and written
        cost=py * 160 + len(plan.files) * 100_000 + total * 5,
        warnings=tuple(plan.warnings),
    )


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

    def install(
        self, plan: WheelPlan, skip: set[str], scripts: tuple[tuple[str, str], ...]
    ) -> None:
        """Write one planned wheel, its scripts, bytecode, INSTALLER and RECORD.

        Destinations in ``skip`` are written by another wheel with identical content: they are
        still verified (and listed in this wheel's RECORD) but not written again.
        """
        archive = plan.archive
        assert archive is not None
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
            content = extract(archive, entry, wheel)
            digest = _b64(
                hashlib.sha256(content).digest()
                if algo == "sha256"
                else hashlib.new(algo, content).digest()
            )
            if digest != expected:
                raise WorkerError(
                    "RecordError",
                    f"{wheel}: member {entry.orig_filename!r} does not match its RECORD hash "
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
        archive.close()
        plan.archive = None


def _rusage() -> tuple[float, ...]:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return ()
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime, r.ru_stime, r.ru_nvcsw, r.ru_nivcsw, r.ru_majflt, r.ru_minflt)


def _send(out: BinaryIO, message: protocol.Answer) -> None:
    out.write(protocol.encode(message))
    out.flush()


def _next(inp: BinaryIO) -> protocol.Request | None:
    """The next request, None at the end of input (the main process is gone or done)."""
    line = inp.readline()
    return protocol.decode_request(line) if line else None


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """Run the worker protocol on ``inp``/``out``; returns the exit status."""
    facts = interpreter_facts()
    _send(out, protocol.Hello(facts))
    plans: dict[int, WheelPlan] = {}
    sp_rel = f"lib/python{facts.short}/site-packages"
    try:
        job = _next(inp)
        if not isinstance(job, protocol.PlanRequest):
            return 0
        started = time.perf_counter()
        summaries = []
        for wheel in job.wheels:
            plan = plan_wheel(wheel, sp_rel, facts.short)
            plans[wheel.index] = plan
            summaries.append(plan_summary(plan))
        planned = time.perf_counter()
        _send(out, protocol.Planned(tuple(summaries)))
        go = _next(inp)
        if not isinstance(go, protocol.InstallSetup):
            return 0
        installing = time.perf_counter()
        installer = Installer(go.root, go.prefix, sp_rel, go.shebang.encode("utf-8"), go.compile)
        while True:
            task = _next(inp)
            if task is None:
                return 0
            if not isinstance(task, protocol.WheelTask):
                break
            index = task.wheel.index
            mine = plans.pop(index, None)
            if mine is None:  # planned by another worker: this one took it over
                mine = plan_wheel(task.wheel, sp_rel, facts.short)
            installer.install(mine, set(task.skip), task.scripts)
            _send(out, protocol.Installed(index))
        seconds = {
            "plan": planned - started,
            "wait": installing - planned,
            "install": time.perf_counter() - installing,
            "compile": installer.compile_seconds,
            "cpu": time.process_time(),
        }
        done = protocol.Done(
            installer.files, installer.pycs, tuple(installer.warnings), seconds, _rusage()
        )
        _send(out, done)
    except WorkerError as e:
        _send(out, protocol.Failed(e.kind, e.message))
        return 1
    except OSError as e:
        message = f"writing the environment failed: {e}; check free space and permissions"
        _send(out, protocol.Failed("InstallError", message))
        return 1
    except MemoryError:
        gc.collect()
        message = (
            "the install worker ran out of memory; free memory or raise the limit (ulimit -v), "
            "and check the wheels come from a trusted source"
        )
        _send(out, protocol.Failed("InstallError", message))
        return 1
    except Exception:
        _send(out, protocol.Failed("bug", traceback.format_exc()))
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
