"""Source distributions as data: their build system, safe extraction, and the order to build them.

Everything a build needs to *decide* lives here and does no work beyond reading the archive:

* ``inspect``/``read_build_system``: the sdist's members are checked on their own names
  (``wheelhouse._safefs.check_entries``: no ``..``, no absolute paths, nothing through a symlink
  member, no link leaving the tree, no device files, no name twice; a ``PKG-INFO``) and its
  ``[build-system]`` is read from ``pyproject.toml`` inside the archive, without extracting.
* ``extract``: the same checks, then our own member-by-member extraction through directory file
  descriptors (``wheelhouse._safefs.Tree``), the same for tar and zip on every Python, so an
  sdist can never write outside its tree.
* ``build_order``: sdists whose locked build environment holds another sdist wait for that one's
  wheel; the order is deterministic and a cycle is an error naming it.

Running backends is ``wheelhouse.backend``'s job (for ``wheelhouse.buildreqs`` at lock time and
``wheelhouse.build`` offline).
"""

from __future__ import annotations

import errno
import lzma
import os
import posixpath
import stat
import tarfile
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelhouse import _safefs
from wheelhouse._safefs import escape, quoted
from wheelhouse.errors import BuildError, UnsafePathError

__all__ = [
    "LEGACY_BUILD_SYSTEM",
    "BuildSystem",
    "Member",
    "build_order",
    "build_system",
    "check_members",
    "extract",
    "inspect",
    "read_build_system",
    "unmet_requirements",
]

MemberKind = Literal["file", "dir", "symlink", "hardlink", "special"]
MAX_PYPROJECT_SIZE = 1 << 20
"""pyproject.toml is read into memory at lock time; a bigger one is not a real project file."""


@dataclass(frozen=True)
class BuildSystem:
    """PEP 517/518 ``[build-system]``: what must be installed and which backend to call."""

    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()


LEGACY_BUILD_SYSTEM = BuildSystem(
    requires=("setuptools>=40.8.0", "wheel"), backend="setuptools.build_meta:__legacy__"
)
"""What pip assumes for an sdist without ``[build-system]`` (a ``setup.py``-only project)."""


@dataclass(frozen=True)
class Member:
    """One archive member, reduced to what the safety checks need."""

    name: str
    kind: MemberKind
    linkname: str = ""
    size: int = 0


@dataclass(frozen=True)
class Layout:
    """A checked sdist: its single top-level directory and whether it has a pyproject.toml."""

    top: str
    has_pyproject: bool


# --- build system (pure) -------------------------------------------------------------------------


def build_system(pyproject: Mapping[str, Any] | None, where: str) -> BuildSystem:
    """The build system a ``pyproject.toml`` declares (PEP 517/518 defaults when it declares none).

    ``where`` names the sdist in errors. A ``[build-system]`` table without ``requires`` is an
    error, as PEP 518 says tools must treat it, rather than a silent guess.
    """
    if pyproject is None or "build-system" not in pyproject:
        return LEGACY_BUILD_SYSTEM
    table = pyproject["build-system"]
    if not isinstance(table, dict):
        raise BuildError(f"{where}: [build-system] in pyproject.toml is not a table")
    requires = table.get("requires")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise BuildError(
            f"{where}: [build-system] requires in pyproject.toml must be a list of strings, got "
            f"{requires!r}"
        )
    for req in requires:
        try:
            Requirement(req)
        except (InvalidRequirement, InvalidMarker) as exc:
            raise BuildError(
                f"{where}: build requirement {req!r} in pyproject.toml is invalid: {exc}"
            ) from None
    backend = table.get("build-backend", LEGACY_BUILD_SYSTEM.backend)
    if not isinstance(backend, str) or not backend:
        raise BuildError(f"{where}: build-backend in pyproject.toml must be a string")
    paths = table.get("backend-path", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BuildError(f"{where}: backend-path in pyproject.toml must be a list of strings")
    for p in paths:
        if _safefs.unsafe_name(p) or posixpath.isabs(p):
            raise BuildError(f"{where}: backend-path {p!r} leaves the source tree")
    return BuildSystem(tuple(requires), backend, tuple(paths))


# --- member checks (pure) ------------------------------------------------------------------------


def _unsafe(sdist: str, member: str, why: str) -> UnsafePathError:
    return UnsafePathError(
        f"{escape(sdist)}: member {quoted(member)} {why}; refusing to extract this sdist (it may "
        "be malicious): lock a wheel of the package instead (drop it from --no-binary) or use an "
        "sdist from a trusted source"
    )


def _check(sdist: str, members: Sequence[Member]) -> tuple[Layout, list[str]]:
    """``check_members``, also returning each member's normalized name (in archive order)."""
    try:
        checked = _safefs.check_entries(_safefs.Entry(m.name, m.kind, m.linkname) for m in members)
    except _safefs.UnsafeMember as exc:
        raise _unsafe(sdist, exc.member, exc.why) from None
    tops: set[str] = set()
    files: set[str] = set()
    for entry, norm in checked:
        if not norm:
            continue  # "./"
        tops.add(norm.split("/")[0])
        if entry.kind == "file":
            files.add(norm)
    if len(tops) != 1:
        shown = ", ".join(escape(t) for t in sorted(tops)[:5]) or "none"
        raise BuildError(
            f"{escape(sdist)}: an sdist holds one top-level directory, this one has "
            f"{len(tops)} ({shown}); it is not a valid sdist: use a proper sdist of this package"
        )
    (top,) = tops
    if f"{top}/PKG-INFO" not in files:
        raise BuildError(
            f"{escape(sdist)}: has no {escape(top)}/PKG-INFO, so it is not a valid sdist "
            "(PEP 643); lock a wheel or a proper sdist of this package"
        )
    names = [norm for _entry, norm in checked]
    return Layout(top, f"{top}/pyproject.toml" in files), names


def check_members(sdist: str, members: Iterable[Member]) -> Layout:
    """Refuse anything unsafe to extract, and find the sdist's top directory and PKG-INFO.

    The rules are ``wheelhouse._safefs.check_entries``'s, decided on the archive's own names
    (never on the disk): no absolute or ``..`` names, no device files or FIFOs, nothing written
    through a symlink member, no link leading outside the tree (following the archive's own
    links), hardlinks only to earlier regular files, each name once (a directory may be listed
    again). ``UnsafePathError`` names the sdist and the member; a missing ``PKG-INFO`` (not an
    sdist, but some other archive) is a ``BuildError``.
    """
    return _check(sdist, list(members))[0]


# --- archives ------------------------------------------------------------------------------------

_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,  # zipfile: encrypted member, unsupported compression (NotImplementedError)
    ValueError,
)
"""What reading a damaged tar or zip archive (or its gzip/bz2/xz/deflate stream) can raise."""


def _tar_kind(info: tarfile.TarInfo) -> MemberKind:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "special"


def _zip_kind(info: zipfile.ZipInfo) -> MemberKind:
    mode = info.external_attr >> 16
    if info.filename.endswith("/"):  # is_dir() raises IndexError for an empty name
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if mode and not stat.S_ISREG(mode):
        return "special"
    return "file"


def _open_error(sdist: Path, exc: BaseException) -> BuildError:
    # tarfile's "could not be opened" spans lines (one per compression it tried)
    why = " ".join(line.strip() for line in str(exc).splitlines())
    return BuildError(
        f"{escape(sdist.name)}: cannot read the sdist archive ({escape(why)}); fetch it again"
    )


class _Archive:
    """An sdist archive parsed once: the checks and the extraction see the same member objects
    (and so the very names tarfile reports, pax ``path``/``linkpath`` overrides applied)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.tar: tarfile.TarFile | None = None
        self.members: list[Member] = []
        self.infos: list[tarfile.TarInfo | zipfile.ZipInfo] = []
        try:
            if path.name.endswith(".zip"):
                self.zip = zipfile.ZipFile(path)
                self._list_zip(self.zip)
            else:
                self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed in close()
                for tinfo in self.tar.getmembers():
                    self.members.append(
                        Member(tinfo.name, _tar_kind(tinfo), tinfo.linkname, tinfo.size)
                    )
                    self.infos.append(tinfo)
        except UnsafePathError:
            self.close()
            raise
        except _READ_ERRORS as exc:
            self.close()
            raise _open_error(path, exc) from None

    def _list_zip(self, zf: zipfile.ZipFile) -> None:
        for zinfo in zf.infolist():
            kind = _zip_kind(zinfo)
            linkname = ""
            if kind == "symlink":  # zip keeps a symlink's target as its content
                if zinfo.file_size > _safefs.MAX_LINK_TARGET:
                    raise _unsafe(self.path.name, zinfo.filename, "is an overlong symlink")
                linkname = zf.read(zinfo).decode("utf-8", "surrogateescape")
            self.members.append(Member(zinfo.filename, kind, linkname, zinfo.file_size))
            self.infos.append(zinfo)

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for handle in (self.zip, self.tar):
            if handle is not None:
                handle.close()

    def open(self, index: int) -> IO[bytes]:
        """The content of member ``index``, a regular file."""
        info = self.infos[index]
        try:
            if isinstance(info, zipfile.ZipInfo):
                assert self.zip is not None
                return self.zip.open(info)
            assert self.tar is not None
            data = self.tar.extractfile(info)
            assert data is not None  # a regular file or a hardlink to one: checked
            return data
        except _READ_ERRORS as exc:
            raise _open_error(self.path, exc) from None

    def reader(self, data: IO[bytes]) -> Callable[[int], bytes]:
        """``data.read``, with read errors (a damaged archive) raised as ``BuildError``, so that
        they are not mistaken for errors writing the extracted file."""

        def read(size: int) -> bytes:
            try:
                return data.read(size)
            except _READ_ERRORS as exc:
                raise _open_error(self.path, exc) from None

        return read

    def read(self, index: int) -> bytes:
        with self.open(index) as data:
            return self.reader(data)(-1)


def inspect(path: Path) -> Layout:
    """Check an sdist's members (see ``check_members``) without extracting anything."""
    with _Archive(path) as archive:
        return check_members(path.name, archive.members)


def read_build_system(path: Path) -> BuildSystem:
    """The ``[build-system]`` of an sdist, read from its ``pyproject.toml`` inside the archive."""
    with _Archive(path) as archive:
        layout, names = _check(path.name, archive.members)
        if not layout.has_pyproject:
            return LEGACY_BUILD_SYSTEM
        name = f"{layout.top}/pyproject.toml"
        index = next(
            i for i, m in enumerate(archive.members) if m.kind == "file" and names[i] == name
        )
        size = archive.members[index].size
        if size > MAX_PYPROJECT_SIZE:
            raise BuildError(
                f"{escape(path.name)}: {escape(name)} is {size} bytes; refusing to read it: use a "
                "proper sdist of this package"
            )
        raw = archive.read(index)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{escape(path.name)}: {escape(name)} is not valid TOML ({exc})") from None
    return build_system(data, path.name)


def extract(path: Path, dest: Path) -> Path:
    """Extract an sdist into the empty or missing ``dest``; return its source tree (top directory).

    Every member is checked first (``check_members``), on the names of the one parse of the
    archive that is then extracted; nothing is written unless all pass. Members are then written
    by our own code for tar and zip alike, on every Python (tarfile's ``extractall`` and its
    ``data`` filter are not used: Debian's 3.11.2 lacks the filter and 3.11.7's is fooled by
    CVE-2025-4517's symlink chains), through directory file descriptors (``_safefs.Tree``), so
    that not even a symlink planted on disk meanwhile can redirect a write. Tar hardlinks are
    written as copies of the file they name; modes are 0644, or 0755 for owner-executable files.
    """
    with _Archive(path) as archive:
        layout, names = _check(path.name, archive.members)
        dest.mkdir(parents=True, exist_ok=True)
        root = os.path.realpath(dest)
        files: dict[str, int] = {}  # normalized name -> index, of the regular files so far
        with _safefs.Tree(root) as tree:
            for index, (member, rel) in enumerate(zip(archive.members, names, strict=True)):
                source = index
                if member.kind == "file":
                    files[rel] = index
                elif member.kind == "hardlink":  # resolved as checked, not by tarfile's rules
                    source = files[_safefs.normalize(member.linkname)]
                _extract_member(path.name, root, archive, tree, member, rel, source)
    return Path(root, layout.top)


def _extract_member(
    sdist: str, root: str, archive: _Archive, tree: _safefs.Tree, member: Member, rel: str,
    source: int,
) -> None:  # fmt: skip
    """Write ``member`` at ``rel``; a file's (or a hardlink's) content and mode are those of
    member ``source`` (itself, or the regular file the hardlink names)."""
    info = archive.infos[source]
    mode = info.mode if isinstance(info, tarfile.TarInfo) else info.external_attr >> 16
    try:
        if member.kind == "dir":
            if rel:  # not "./", the extraction directory itself
                tree.mkdir(rel)
        elif member.kind == "symlink":
            tree.symlink(rel, member.linkname)
        else:  # a file, or a hardlink: a copy of the earlier file it names
            with archive.open(source) as data:
                tree.copy(rel, archive.reader(data), 0o755 if mode & 0o100 else 0o644)
    except OSError as exc:
        if exc.errno in _safefs.BLOCKED:
            raise UnsafePathError(
                f"{escape(sdist)}: member {quoted(member.name)} cannot be written to {root}: "
                f"{exc.strerror} (a link or another file is in the way on disk: a name differing "
                "only in case on this file system, or made by someone else meanwhile); refusing "
                "to write through it: check what else writes there"
            ) from None
        advice = (
            "this file system cannot hold it: lock a wheel of the package instead"
            if exc.errno == errno.ENAMETOOLONG
            else "check free space and permissions"
        )
        raise BuildError(
            f"{escape(sdist)}: cannot extract member {quoted(member.name)} into {root} "
            f"({exc.strerror}); {advice}"
        ) from None


# --- build order (pure) --------------------------------------------------------------------------


def build_order(deps: Mapping[str, Collection[str]]) -> list[str]:
    """Sdists in an order where each comes after every sdist its build environment holds.

    ``deps`` maps each sdist file name to the sdist file names in its build environment (all of
    which must be keys too). Ties are broken by name, so the order is deterministic; a cycle
    raises ``BuildError`` naming it, since no order can build it.
    """
    for sdist, needed in deps.items():
        missing = sorted(set(needed) - set(deps))
        if missing:
            raise BuildError(
                f"{sdist}: its build environment holds {', '.join(missing)}, which is not an "
                "sdist of this target; regenerate the lock with `wheelhouse lock`"
            )
    order: list[str] = []
    done: set[str] = set()
    remaining = dict(deps)
    while remaining:
        ready = sorted(s for s, needed in remaining.items() if set(needed) <= done)
        if not ready:
            raise BuildError(
                "sdists need each other to build: "
                + _describe_cycle(remaining)
                + "; lock a wheel for one of them (drop it from --no-binary)"
            )
        for s in ready:
            order.append(s)
            done.add(s)
            del remaining[s]
    return order


def _describe_cycle(remaining: Mapping[str, Collection[str]]) -> str:
    start = sorted(remaining)[0]
    path = [start]
    while True:
        nxt = sorted(set(remaining[path[-1]]) & set(remaining))[0]
        if nxt in path:
            cycle = [*path[path.index(nxt) :], nxt]
            return " needs ".join(cycle)
        path.append(nxt)


# --- requirement check (pure) --------------------------------------------------------------------


def unmet_requirements(
    requirements: Sequence[str],
    available: Mapping[str, str],
    environment: Mapping[str, str],
) -> list[str]:
    """Requirements (from ``get_requires_for_build_wheel``) that the packages in ``available``
    (normalized name -> version) do not satisfy under the marker ``environment``.

    A build fails later and far less clearly when the backend asks for something the lock did not
    put into its environment, so this is checked before ``build_wheel`` runs.
    """
    unmet = []
    for text in requirements:
        try:
            req = Requirement(text)
        except (InvalidRequirement, InvalidMarker):
            unmet.append(text)
            continue
        if req.marker is not None and not req.marker.evaluate(dict(environment)):
            continue
        version = available.get(canonicalize_name(req.name))
        if version is None:
            unmet.append(text)
            continue
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = not req.specifier
        if not ok:
            unmet.append(f"{text} (the lock has {version})")
    return unmet
