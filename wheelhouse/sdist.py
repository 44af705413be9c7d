"""Source distributions as data: their build system, safe extraction, and the order to build them.

Everything a build needs to *decide* lives here and does no work beyond reading the archive:

* ``inspect``/``read_build_system``: the sdist's members are checked (no ``..``, no absolute
  paths, no links leaving the tree, no device files, a ``PKG-INFO``) and its
  ``[build-system]`` is read from ``pyproject.toml`` inside the archive, without extracting.
* ``extract``: the same checks, then extraction (tarfile's ``data`` filter where the Python has
  it, else an equivalent member-by-member copy), so an sdist can never write outside its tree.
* ``build_order``: sdists whose locked build environment holds another sdist wait for that one's
  wheel; the order is deterministic and a cycle is an error naming it.

Running backends is ``wheelhouse.build``'s job.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tomllib
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

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
        if _unsafe_name(p) or posixpath.isabs(p):
            raise BuildError(f"{where}: backend-path {p!r} leaves the source tree")
    return BuildSystem(tuple(requires), backend, tuple(paths))


# --- member checks (pure) ------------------------------------------------------------------------


def _unsafe_name(name: str) -> str | None:
    """Why ``name`` (an archive path) could land outside the extraction directory, if it could."""
    if "\0" in name:
        return "contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "is an absolute path"
    if ".." in norm.split("/"):
        return "contains a '..' component"
    return None


def _normalize(name: str) -> str:
    """``./a//b/`` -> ``a/b``: the path a member really has below the extraction directory."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _link_escapes(name: str, linkname: str, kind: MemberKind) -> str | None:
    if not linkname:
        return f"is a {kind} without a target"
    if linkname.startswith("/") or "\0" in linkname:
        return f"is a {kind} to the absolute path {linkname!r}"
    base = posixpath.dirname(name) if kind == "symlink" else ""
    resolved = posixpath.normpath(posixpath.join(base, linkname))
    if resolved == ".." or resolved.startswith("../"):
        return f"is a {kind} to {linkname!r}, outside the archive"
    return None


def check_members(sdist: str, members: Iterable[Member]) -> Layout:
    """Refuse anything unsafe to extract, and find the sdist's top directory and PKG-INFO.

    ``UnsafePathError`` names the sdist and the member; a missing ``PKG-INFO`` (not an sdist, but
    some other archive) is a ``BuildError``.
    """
    tops: set[str] = set()
    files: set[str] = set()
    for m in members:
        why = _unsafe_name(m.name)
        if why is None and m.kind == "special":
            why = "is a device file or FIFO"
        if why is None and m.kind in ("symlink", "hardlink"):
            why = _link_escapes(m.name, m.linkname, m.kind)
        if why is not None:
            raise UnsafePathError(
                f"{sdist}: member {m.name!r} {why}; refusing to extract this sdist"
            )
        norm = _normalize(m.name)
        if norm:
            tops.add(norm.split("/")[0])
            if m.kind == "file":
                files.add(norm)
    if len(tops) != 1:
        raise BuildError(
            f"{sdist}: an sdist holds one top-level directory, this one has "
            f"{len(tops)} ({', '.join(sorted(tops)[:5]) or 'none'}); it is not a valid sdist"
        )
    (top,) = tops
    if f"{top}/PKG-INFO" not in files:
        raise BuildError(
            f"{sdist}: has no {top}/PKG-INFO, so it is not a valid sdist (PEP 643); lock a wheel "
            "or a proper sdist of this package"
        )
    return Layout(top, f"{top}/pyproject.toml" in files)


# --- archives ------------------------------------------------------------------------------------


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
    if info.is_dir():
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if mode and not stat.S_ISREG(mode):
        return "special"
    return "file"


def _open_error(sdist: Path, exc: Exception) -> BuildError:
    return BuildError(f"{sdist.name}: cannot read the sdist archive ({exc}); fetch it again")


def _members(path: Path) -> list[Member]:
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                return [
                    Member(
                        i.filename,
                        _zip_kind(i),
                        zf.read(i).decode("utf-8", "replace") if _zip_kind(i) == "symlink" else "",
                        i.file_size,
                    )
                    for i in zf.infolist()
                ]
        with tarfile.open(path, "r:*") as tar:
            return [Member(i.name, _tar_kind(i), i.linkname, i.size) for i in tar.getmembers()]
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _open_error(path, exc) from None


def inspect(path: Path) -> Layout:
    """Check an sdist's members (see ``check_members``) without extracting anything."""
    return check_members(path.name, _members(path))


def _read_member(path: Path, name: str) -> bytes:
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                return zf.read(name)
        with tarfile.open(path, "r:*") as tar:
            f = tar.extractfile(name)
            assert f is not None  # check_members made sure it is a regular file
            return f.read()
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise _open_error(path, exc) from None


def read_build_system(path: Path) -> BuildSystem:
    """The ``[build-system]`` of an sdist, read from its ``pyproject.toml`` inside the archive."""
    members = _members(path)
    layout = check_members(path.name, members)
    if not layout.has_pyproject:
        return LEGACY_BUILD_SYSTEM
    name = f"{layout.top}/pyproject.toml"
    member = next(m for m in members if m.kind == "file" and _normalize(m.name) == name)
    if member.size > MAX_PYPROJECT_SIZE:
        raise BuildError(f"{path.name}: {name} is {member.size} bytes; refusing to read it")
    try:
        data = tomllib.loads(_read_member(path, member.name).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{path.name}: {name} is not valid TOML ({exc})") from None
    return build_system(data, path.name)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def extract(path: Path, dest: Path) -> Path:
    """Extract an sdist into the empty or missing ``dest``; return its source tree (top directory).

    Members are checked first (``check_members``); tar archives then go through tarfile's ``data``
    filter where available (Python >= 3.11.4), which re-checks links against the real files.
    Older interpreters (Debian's 3.11.2, used inside Nix builds here) and zip archives are extracted
    member by member with the same rules, so the result never depends on the interpreter.
    """
    members = _members(path)
    layout = check_members(path.name, members)
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    try:
        if path.name.endswith(".zip"):
            _extract_zip(path, root)
        elif hasattr(tarfile, "data_filter"):
            with tarfile.open(path, "r:*") as tar:
                try:
                    tar.extractall(root, filter="data")
                except tarfile.FilterError as exc:
                    member = exc.tarinfo.name if exc.tarinfo is not None else "?"
                    raise UnsafePathError(
                        f"{path.name}: member {member!r} is unsafe ({exc}); refusing to extract "
                        "this sdist"
                    ) from None
        else:
            _extract_tar(path, root)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise _open_error(path, exc) from None
    return Path(root, layout.top)


def _target(sdist: str, root: str, name: str) -> str:
    """Where ``name`` goes, refusing a destination whose real parent is outside ``root``."""
    dest = os.path.join(root, *[p for p in name.split("/") if p not in ("", ".")])
    if not _inside(root, os.path.realpath(os.path.dirname(dest))):
        raise UnsafePathError(
            f"{sdist}: member {name!r} would be written through a link outside the tree; "
            "refusing to extract this sdist"
        )
    return dest


def _check_link(sdist: str, root: str, name: str, dest: str, linkname: str) -> None:
    real = os.path.realpath(os.path.join(os.path.dirname(dest), linkname))
    if not _inside(root, real):
        raise UnsafePathError(
            f"{sdist}: member {name!r} is a symlink to {linkname!r}, which resolves outside the "
            "tree; refusing to extract this sdist"
        )


def _write(dest: str, data: IO[bytes], executable: bool) -> None:
    if os.path.lexists(dest) and not os.path.isdir(dest):
        os.unlink(dest)
    with open(dest, "wb") as out:
        shutil.copyfileobj(data, out)
    os.chmod(dest, 0o755 if executable else 0o644)


def _extract_tar(path: Path, root: str) -> None:
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            dest = _target(path.name, root, info.name)
            if info.isdir():
                os.makedirs(dest, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if info.issym():
                _check_link(path.name, root, info.name, dest, info.linkname)
                if os.path.lexists(dest):
                    os.unlink(dest)
                os.symlink(info.linkname, dest)
            elif info.islnk():
                source = _target(path.name, root, info.linkname)
                if not os.path.isfile(source) or not _inside(root, os.path.realpath(source)):
                    raise UnsafePathError(
                        f"{path.name}: member {info.name!r} is a hard link to {info.linkname!r}, "
                        "which is not a file extracted before it; refusing to extract this sdist"
                    )
                with open(source, "rb") as linked:
                    _write(dest, linked, bool(info.mode & 0o100))
            else:
                data = tar.extractfile(info)
                assert data is not None
                with data:
                    _write(dest, data, bool(info.mode & 0o100))


def _extract_zip(path: Path, root: str) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            dest = _target(path.name, root, info.filename)
            if info.is_dir():
                os.makedirs(dest, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                linkname = zf.read(info).decode("utf-8")
                _check_link(path.name, root, info.filename, dest, linkname)
                os.symlink(linkname, dest)
                continue
            with zf.open(info) as data:
                _write(dest, data, bool(mode & 0o100))


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
