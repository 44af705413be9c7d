"""Build wheels on the fly for tests (and for a loopback index serving them).

``make_wheel`` writes a correct, reproducible wheel: METADATA, WHEEL (with the expanded tags),
optional entry_points.txt, ``.data`` members and a RECORD with urlsafe-base64 sha256 hashes.
Everything a broken-wheel test needs can be injected:

- ``record=False`` omits RECORD; ``record="..."`` writes that exact RECORD text;
- ``metadata={"Name": "other"}`` overrides/extends METADATA headers (``Name``/``Version`` too);
- ``extra_members=[Member(...)]`` adds members *after* RECORD was computed (so they are not in
  it), with any mode (e.g. ``Member.symlink("x", "/etc/passwd")``) and even duplicate names;
- ``tamper={"pkg/x.py": b"evil"}`` replaces a member's bytes after RECORD was computed;
- ``drop=["pkg/x.py"]`` removes members after RECORD was computed (RECORD still lists them);
- ``raw=lambda data: data[:100]`` post-processes the finished archive bytes (truncation...);
- ``corrupt_member(wheel, name)`` flips a byte of one member's compressed data in place.

``artifact_for(wheel)`` returns the matching ``wheelhouse.model.Artifact`` (sha256 and size of the
file, name and version from the filename), optionally with overrides.

Archives are deterministic: fixed timestamps, members in a fixed order, so the same arguments
always give the same bytes (and the same sha256).
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import re
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.tags import parse_tag

from wheelhouse.model import Artifact
from wheelhouse.selection import candidate_identity

__all__ = [
    "Member",
    "artifact_for",
    "corrupt_member",
    "escape_name",
    "make_wheel",
    "record_hash",
    "rewrite_central_directory",
]

_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Member:
    """One archive member as it will be written (name, bytes, unix mode incl. file type)."""

    name: str
    data: bytes = b""
    mode: int = stat.S_IFREG | 0o644
    compress: int = zipfile.ZIP_DEFLATED

    @classmethod
    def symlink(cls, name: str, target: str) -> Member:
        """A symbolic link member (as ``zip --symlinks`` stores it: target as content)."""
        return cls(name, target.encode(), stat.S_IFLNK | 0o777, zipfile.ZIP_STORED)

    @classmethod
    def executable(cls, name: str, data: bytes) -> Member:
        return cls(name, data, stat.S_IFREG | 0o755)


def escape_name(name: str) -> str:
    """The distribution name as it appears in wheel filenames and .dist-info directories."""
    return re.sub(r"[-_.]+", "_", name)


def record_hash(data: bytes) -> str:
    """``sha256=<urlsafe b64, no padding>``, as RECORD wants it."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _record(members: Iterable[Member], record_path: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # quotes names holding commas or newlines
    writer.writerows((m.name, record_hash(m.data), len(m.data)) for m in members)
    writer.writerow((record_path, "", ""))
    return out.getvalue()


def _ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    out = []
    for section, entries in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in entries.items())
        out.append("")
    return "\n".join(out)


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes | str] | None = None,
    *,
    tag: str = "py3-none-any",
    build_tag: str | None = None,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
    data: Mapping[str, Mapping[str, bytes | str]] | None = None,
    metadata: Mapping[str, str] | None = None,
    executable: Iterable[str] = (),
    record: str | Literal[False] | None = None,
    extra_members: Sequence[Member] = (),
    tamper: Mapping[str, bytes] | None = None,
    drop: Iterable[str] = (),
    raw: Callable[[bytes], bytes] | None = None,
    filename: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write ``<directory>/<name>-<version>[-<build>]-<tag>.whl`` and return its path.

    ``files`` maps archive paths (relative to the wheel root, i.e. site-packages) to contents;
    ``None`` gives one module ``<name>/__init__.py`` (name with ``-``/``.`` -> ``_``).
    ``tag`` may be a compressed tag set (``py2.py3-none-any``); WHEEL lists every expanded tag and
    ``Root-Is-Purelib`` is true unless the tag is platform-specific.
    ``entry_points`` maps sections (``console_scripts``, ``gui_scripts``, any group) to
    ``{name: "module:attr"}``. ``data`` maps a ``.data`` scheme (``scripts``, ``data``,
    ``headers``, ``purelib``, ``platlib``, or anything for bad-wheel tests) to ``{path: bytes}``.
    ``executable`` names members (archive paths) written with mode 0755.
    See the module docstring for the bad-wheel hooks (``record``, ``extra_members``, ``tamper``,
    ``drop``, ``raw``); ``filename`` overrides the output file name.
    """
    escaped = escape_name(name)
    dist_info = f"{escaped}-{version}.dist-info"
    data_dir = f"{escaped}-{version}.data"
    executables = set(executable)
    if files is None:
        files = {f"{escaped.lower()}/__init__.py": f"__version__ = {version!r}\n"}

    def member(path: str, content: bytes | str) -> Member:
        raw_bytes = content.encode("utf-8") if isinstance(content, str) else content
        mode = stat.S_IFREG | (0o755 if path in executables else 0o644)
        return Member(path, raw_bytes, mode, compression)

    members = [member(path, content) for path, content in files.items()]
    for scheme, entries in (data or {}).items():
        members += [member(f"{data_dir}/{scheme}/{p}", c) for p, c in entries.items()]

    headers: dict[str, str] = {"Metadata-Version": "2.1", "Name": name, "Version": version}
    if requires_python is not None:
        headers["Requires-Python"] = requires_python
    headers.update(metadata or {})
    lines = [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Requires-Dist: {r}" for r in requires]
    members.append(member(f"{dist_info}/METADATA", "\n".join(lines) + "\n\n"))

    tags = sorted({str(t) for t in parse_tag(tag)})
    purelib = all(t.endswith("-any") for t in tags)
    wheel_lines = [
        "Wheel-Version: 1.0",
        "Generator: wheelhouse-tests",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
        *(f"Tag: {t}" for t in tags),
    ]
    if build_tag is not None:
        wheel_lines.append(f"Build: {build_tag}")
    members.append(member(f"{dist_info}/WHEEL", "\n".join(wheel_lines) + "\n"))
    if entry_points:
        members.append(member(f"{dist_info}/entry_points.txt", _ini(entry_points)))

    record_path = f"{dist_info}/RECORD"
    if record is None:
        members.append(member(record_path, _record(members, record_path)))
    elif record is not False:
        members.append(member(record_path, record))

    dropped = set(drop)
    members = [m for m in members if m.name not in dropped]
    if tamper:
        members = [
            dataclasses.replace(m, data=tamper[m.name]) if m.name in tamper else m for m in members
        ]
    members += extra_members

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are added on purpose
        for m in members:
            info = zipfile.ZipInfo(m.name, date_time=_DATE)
            info.external_attr = (m.mode & 0xFFFF) << 16
            info.compress_type = m.compress
            info.create_system = 3  # unix, so the mode bits count
            zf.writestr(info, m.data)
    out = buffer.getvalue()
    if raw is not None:
        out = raw(out)
    if filename is None:
        build = f"-{build_tag}" if build_tag else ""
        filename = f"{escaped}-{version}{build}-{tag}.whl"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(out)
    return path


def corrupt_member(wheel: Path, name: str, at: int | None = None) -> None:
    """Flip one byte in the stored data of member ``name`` (CRC and hash no longer match):
    byte ``at`` of the compressed data (default: the middle one; 0 hits a stream's header)."""
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo(name)
    nlen, xlen = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + nlen + xlen
    if info.compress_size == 0:
        raise ValueError(f"{name} is empty, nothing to corrupt")
    data[start + (info.compress_size // 2 if at is None else at)] ^= 0xFF
    wheel.write_bytes(bytes(data))


def artifact_for(file: Path, **overrides: Any) -> Artifact:
    """The ``Artifact`` a lock would have for a wheel or sdist; keyword arguments override."""
    ident = candidate_identity(file.name)
    assert ident is not None, f"{file.name} is neither a wheel nor an sdist name"
    content = file.read_bytes()
    fields: dict[str, Any] = {
        "filename": file.name,
        "package": ident[0],
        "version": str(ident[1]),
        "sha256": hashlib.sha256(content).hexdigest(),
        "kind": "wheel" if file.name.endswith(".whl") else "sdist",
        "path": str(file),
        "size": len(content),
    }
    fields.update(overrides)
    return Artifact(**fields)


def rewrite_central_directory(wheel: Path, edit: Callable[[zipfile.ZipInfo], None]) -> None:
    """Rewrite the zip's central directory after ``edit`` changed each member's ``ZipInfo``
    (sizes, CRC, offsets, flags, method, mode...); the local headers and data stay as they are.

    zipfile writes a zip64 extra field for sizes or offsets over 2**32 - 1 (up to 2**64 - 1),
    so a header can declare sizes no real member has.
    """
    with zipfile.ZipFile(wheel, "a") as zf:
        for info in zf.infolist():
            edit(info)
        zf._didModify = True  # write the central directory again on close
