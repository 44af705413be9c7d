"""Read and write ``pylock.toml`` (PEP 751) and turn it into the artifact list of one target.

Reading validates twice: first the standard (``packaging.pylock``), then what wheelhouse needs to
build safely (a sha256 for every file, no credentials in URLs, no ``path`` escaping the lock's
directory, one artifact per package and target). ``[tool.wheelhouse]`` is a cache of decisions the
standard data already implies (the chosen file per target, the wheelhouse NAR hash); dropping it
leaves a lock any PEP 751 installer reads the same way. A lock without it (uv, pip, pdm) is
selected per target interpreter with the standard algorithm (markers, requires-python,
environments), then one file per package with wheelhouse's own preference (``selection``).
A ``directory`` entry is accepted only for the locked project itself (uv exports one): it is
neither fetched nor installed. Packages needed only to build sdists are
``[[packages]]`` in the ``wheelhouse-build`` dependency group (not installed by default); each
target lists them in ``build-artifacts`` and maps every sdist to its build environment in
``sdist-builds``. ``[tool.wheelhouse] resolver`` (``"pip"`` or ``"uv"``) only says who resolved;
nothing reads it, and locks written before it existed lack it.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import urlsplit

import tomli_w
from packaging.markers import Environment
from packaging.pylock import (
    Package,
    PackageDirectory,
    PackageSdist,
    PackageWheel,
    Pylock,
    PylockSelectError,
    PylockUnsupportedVersionError,
    PylockValidationError,
)
from packaging.utils import canonicalize_name

from wheelhouse.errors import LockError, SelectionError
from wheelhouse.model import Artifact
from wheelhouse.selection import Candidate, select
from wheelhouse.targets import Target, make_target

TOOL_NAME = "wheelhouse"
TOOL_FORMAT = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockTarget:
    """``[[tool.wheelhouse.targets]]``: what one target's wheelhouse holds and its NAR hash."""

    name: str
    python_version: str
    marker: str
    artifacts: tuple[str, ...]
    nar_hash: str | None = None
    build_artifacts: tuple[str, ...] = ()
    """Files only needed to build sdists: they enter the wheelhouse, never the env."""
    sdist_builds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """``sdist-builds``: each sdist's file name -> the files of its build environment (wheels,
    or sdists that must be built first)."""
    project_build: tuple[str, ...] | None = None
    """``project-build``: the project's own build environment (None: no project locked)."""


@dataclass(frozen=True)
class LockedProject:
    """The project the lock was made for: a PEP 751 ``directory`` package, never fetched."""

    name: str
    version: str | None
    path: str
    """The project directory, relative to the lock's directory."""


@dataclass(frozen=True)
class Lock:
    path: Path
    pylock: Pylock
    targets: tuple[LockTarget, ...]
    by_filename: Mapping[str, Artifact]
    """Every wheel and sdist the lock lists, verified to be safe to fetch."""
    project: LockedProject | None = None
    """The project the lock is for (its ``directory`` entry): the user's source, never fetched
    or installed as a dependency."""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The lock as parsed TOML: ``lock --from`` keeps it, adding ``[tool.wheelhouse]``."""

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def created_by(self) -> str:
        return self.pylock.created_by or "another tool"

    @property
    def indexes(self) -> tuple[str, ...]:
        """The package indexes the lock's entries name (``index``), first seen first."""
        return tuple(dict.fromkeys(p.index for p in self.pylock.packages if p.index))

    @property
    def is_foreign(self) -> bool:
        """No ``[tool.wheelhouse]`` targets: another tool's lock, chosen from per interpreter."""
        return not self.targets


def _fail(path: Path, message: str) -> LockError:
    return LockError(f"{path}: {message}")


def _check_url(path: Path, where: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError as exc:  # "http://[::1", "http://host:99999/"
        raise _fail(
            path, f"{where}: URL {url!r} is not valid ({exc}); fix it or regenerate the lock"
        ) from None
    if parts.username or parts.password:
        raise _fail(
            path,
            f"{where}: URL carries credentials; remove 'user:password@' from the lock and give "
            f"credentials through netrc or WHEELHOUSE_AUTH at fetch time",
        )
    if parts.scheme not in ("https", "http", "file"):
        raise _fail(path, f"{where}: unsupported URL scheme in {url!r}")


def _check_path(path: Path, where: str, value: str) -> None:
    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
        raise _fail(
            path,
            f"{where}: path {value!r} escapes the lock's directory (contains '..'); keep local "
            "files below the lock's directory, or give an absolute path or a URL",
        )


def _artifact(
    path: Path, name: str, version: str, dist: PackageWheel | PackageSdist, kind: str
) -> Artifact:
    filename = dist.filename
    where = f"package {name} {version} file {filename}"
    sha = (dist.hashes or {}).get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise _fail(
            path,
            f"{where}: needs a sha256 hash of 64 hex digits, got {sha!r}; "
            "regenerate the lock with `wheelhouse lock`",
        )
    if dist.size is not None and dist.size < 0:
        raise _fail(path, f"{where}: size {dist.size} is negative; fix it or regenerate the lock")
    if dist.url:
        _check_url(path, where, dist.url)
    if dist.path:
        _check_path(path, where, dist.path)
    return Artifact(
        filename=filename,
        package=name,
        version=version,
        sha256=sha.lower(),
        kind="wheel" if kind == "wheel" else "sdist",
        url=dist.url,
        path=dist.path,
        size=dist.size,
    )


def _tool_targets(path: Path, tool: Any) -> tuple[LockTarget, ...]:
    if tool is None:
        return ()
    try:
        if tool.get("lock-format") != TOOL_FORMAT:
            raise _fail(
                path,
                f"[tool.wheelhouse] lock-format {tool.get('lock-format')!r} is not supported "
                f"(expected {TOOL_FORMAT}); regenerate the lock with this wheelhouse",
            )
        return tuple(
            LockTarget(
                name=str(t["name"]),
                python_version=str(t["python-version"]),
                marker=str(t["marker"]),
                artifacts=tuple(str(a) for a in t["artifacts"]),
                nar_hash=t.get("wheelhouse-nar-hash"),
                build_artifacts=tuple(str(a) for a in t.get("build-artifacts", ())),
                sdist_builds={
                    str(sdist): tuple(str(f) for f in files)
                    for sdist, files in t.get("sdist-builds", {}).items()
                },
                project_build=(
                    tuple(str(f) for f in t["project-build"]) if "project-build" in t else None
                ),
            )
            for t in tool.get("targets", [])
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise _fail(
            path, f"[tool.wheelhouse] is malformed ({exc!r}); regenerate the lock"
        ) from None


def _package_hint(data: Mapping[str, Any], exc: PylockValidationError) -> str:
    """packaging says 'packages[3]'; people think in package names."""
    match = re.match(r"packages\[(\d+)\]", exc.context or "")
    packages = data.get("packages")
    if match and isinstance(packages, list) and int(match.group(1)) < len(packages):
        pkg = packages[int(match.group(1))]
        if isinstance(pkg, dict):
            return f" (package {pkg.get('name')!r} {pkg.get('version', '')})".replace(" )", ")")
    return ""


def load(path: Path) -> Lock:
    """Parse and validate a lock; every problem becomes one ``LockError`` naming the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "no such lock file; create it with `wheelhouse lock`") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(
            path, f"not valid TOML: {exc}; fix it or regenerate it with `wheelhouse lock`"
        ) from None
    except OSError as exc:  # a directory, no permission...
        raise _fail(
            path, f"cannot read it ({exc.strerror}); give the path of a pylock.toml"
        ) from None
    try:
        pylock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise _fail(
            path,
            f"lock-version {data.get('lock-version')!r} is not supported ({exc}); "
            "wheelhouse reads lock-version 1.x: regenerate the lock with `wheelhouse lock`",
        ) from None
    except PylockValidationError as exc:
        raise _fail(
            path,
            f"not a valid PEP 751 lock: {exc}{_package_hint(data, exc)}; fix that entry or "
            "regenerate the lock with `wheelhouse lock`",
        ) from None
    tool = (data.get("tool") or {}).get(TOOL_NAME)
    recorded = tool.get("project") if isinstance(tool, dict) else None
    by_filename: dict[str, Artifact] = {}
    project: LockedProject | None = None
    for pkg in pylock.packages:
        version = str(pkg.version) if pkg.version else ""
        where = f"package {pkg.name} {version}".rstrip()
        if pkg.vcs:
            raise _fail(
                path,
                f"{where}: a {pkg.vcs.type} source ({pkg.vcs.url or pkg.vcs.path}) pins no file "
                "by hash; use a released version from an index instead, or make a wheel of it "
                "and lock that file",
            )
        if pkg.directory:
            if not _is_project(path, pkg, pkg.directory, recorded, tool is not None):
                raise _fail(
                    path,
                    f"{where}: directory source {pkg.directory.path!r} is not the project next to "
                    "the lock, and wheelhouse installs only files pinned by hash; make a wheel of "
                    "it and lock that file, or drop it from the lock (uv: `uv export "
                    "--no-emit-workspace`)",
                )
            project = LockedProject(pkg.name, version or None, pkg.directory.path)
            continue
        if pkg.archive:
            raise _fail(path, f"{where}: direct archive sources are not supported; lock a wheel")
        dists: list[tuple[PackageWheel | PackageSdist, str]] = [
            (w, "wheel") for w in pkg.wheels or ()
        ]
        if pkg.sdist:
            dists.append((pkg.sdist, "sdist"))
        for dist, kind in dists:
            art = _artifact(path, pkg.name, version, dist, kind)
            previous = by_filename.get(art.filename)
            if previous is not None and previous.sha256 != art.sha256:
                raise _fail(path, f"{art.filename} is listed twice with different hashes")
            by_filename[art.filename] = art
    return Lock(path, pylock, _tool_targets(path, tool), by_filename, project, data)


def _is_project(
    path: Path, pkg: Package, source: PackageDirectory, recorded: Any, has_tool: bool
) -> bool:
    """Whether a ``directory`` entry is the project the lock is for: the one
    ``[tool.wheelhouse] project`` names, or, in another tool's lock, the lock's own directory
    (where uv writes it: ``path = "."``)."""
    if has_tool:
        return bool(pkg.name == recorded)
    where = Path(source.path)
    if not where.is_absolute():
        where = path.parent / where
    try:
        return where.resolve() == path.parent.resolve()
    except OSError:
        return False


def choose_target(
    lock: Lock, name: str | None, python_version: str | None = None
) -> LockTarget | None:
    """The ``[tool.wheelhouse]`` target to use; None for a lock without one (e.g. ``pip lock``).

    ``python_version`` (``X.Y`` of ``--python``) picks among several targets and must match the
    chosen one; without it the running interpreter's version picks.
    """
    if not lock.targets:
        if name is not None:
            raise _fail(
                lock.path,
                f"has no [tool.wheelhouse] targets, so --target {name} is unknown; add them with "
                f"`wheelhouse lock --from {lock.path}`",
            )
        return None
    names = ", ".join(t.name for t in lock.targets)
    chosen = None
    if name is not None:
        for target in lock.targets:
            if target.name == name:
                chosen = target
        if chosen is None:
            raise _fail(
                lock.path, f"has no target {name!r} (targets: {names}); choose one with --target"
            )
    elif len(lock.targets) == 1:
        chosen = lock.targets[0]
    else:
        running = python_version or "{}.{}".format(*sys.version_info[:2])
        for target in lock.targets:
            if target.python_version == running:
                chosen = target
        if chosen is None:
            raise _fail(lock.path, f"has several targets ({names}); choose one with --target")
    if python_version is not None and chosen.python_version != python_version:
        raise _fail(
            lock.path,
            f"target {chosen.name} is for Python {chosen.python_version}, but --python is Python "
            f"{python_version}; choose its target with --target, or lock for it with "
            "`wheelhouse lock --python PATH`",
        )
    return chosen


def artifacts_for(
    lock: Lock, target: LockTarget | None, python: Target | None = None
) -> list[Artifact]:
    """What the wheelhouse of ``target`` holds: runtime artifacts, then build-only ones.

    Without a target (a lock from another tool) the standard PEP 751 selection runs for the
    interpreter ``python`` (default: this one), so uv's, pip's and pdm's locks work too.
    """
    if target is None:
        return select_for(lock, python or make_target(None))
    chosen: list[Artifact] = []
    seen: dict[str, str] = {}
    for filename, build_only in [(f, False) for f in target.artifacts] + [
        (f, True) for f in target.build_artifacts
    ]:
        art = lock.by_filename.get(filename)
        if art is None:
            raise _fail(
                lock.path,
                f"target {target.name} names {filename}, which no [[packages]] entry lists; "
                "the lock was edited by hand: regenerate it with `wheelhouse lock`",
            )
        if not build_only:
            other = seen.setdefault(art.package, filename)
            if other != filename:
                raise _fail(
                    lock.path,
                    f"target {target.name} selects two files for {art.package}: "
                    f"{other} and {filename}; the lock was edited by hand: regenerate it with "
                    "`wheelhouse lock`",
                )
        chosen.append(Artifact(**{**art.__dict__, "build_only": True}) if build_only else art)
    return chosen


def build_envs(lock: Lock, target: LockTarget) -> dict[str, list[Artifact]]:
    """Each sdist of ``target`` (runtime or build-only) -> the artifacts of its build environment.

    Every sdist must have an ``sdist-builds`` entry and every file it names must be in the
    target's wheelhouse: a build may only use what the fixed-output wheelhouse holds.
    """
    in_wheelhouse = {a.filename: a for a in artifacts_for(lock, target)}
    envs: dict[str, list[Artifact]] = {}
    for filename, art in in_wheelhouse.items():
        if art.kind != "sdist":
            continue
        files = target.sdist_builds.get(filename)
        if files is None:
            raise _fail(
                lock.path,
                f"target {target.name} has no build environment for {filename} "
                f"({art.package} {art.version}) in sdist-builds; regenerate the lock with "
                "`wheelhouse lock` (this wheelhouse records sdists' build requirements)",
            )
        env = []
        for name in files:
            dep = in_wheelhouse.get(name)
            if dep is None:
                raise _fail(
                    lock.path,
                    f"target {target.name}: the build environment of {filename} names {name}, "
                    "which is not in the target's artifacts or build-artifacts; regenerate the "
                    "lock with `wheelhouse lock`",
                )
            env.append(dep)
        envs[filename] = env
    return envs


def select_for(
    lock: Lock,
    target: Target,
    *,
    prefer_binary: bool = False,
    no_binary: Sequence[str] = (),
) -> list[Artifact]:
    """The files of a lock without ``[tool.wheelhouse]`` for ``target``: the PEP 751 algorithm
    (``environments``, ``requires-python``, markers and default groups, evaluated with the
    target's marker environment and tags) decides which packages, then ``selection.select``
    which file of each (a ``none-any`` wheel first), exactly as ``wheelhouse lock`` would."""
    if not lock.pylock.packages:
        raise _fail(
            lock.path,
            f"holds no packages (created by {lock.created_by}); the tool that wrote it may have "
            "failed without an error (pdm exports `packages = []` when its own lock failed): run "
            "that tool's lock command, fix what it reports, and export the lock again",
        )
    fit = f"{lock.path} (created by {lock.created_by}) does not fit {target.description}"
    wanted = lock.pylock.requires_python
    full = target.environment()["python_full_version"]
    if wanted and not wanted.contains(full, prereleases=True):
        raise SelectionError(
            f"{lock.path}: requires-python {wanted} excludes {target.description}; use a matching "
            f"interpreter (--python PATH), or re-lock for that one with {lock.created_by}"
        )
    chosen: dict[str, Artifact] = {}
    try:
        env = cast(Environment, target.environment())
        for pkg, dist in lock.pylock.select(environment=env, tags=target.tags):
            if (
                isinstance(dist, PackageDirectory)
                and lock.project
                and pkg.name == lock.project.name
            ):
                continue
            if not isinstance(dist, PackageWheel | PackageSdist):
                raise _fail(lock.path, f"package {pkg.name}: only wheels and sdists are supported")
            files: list[PackageWheel | PackageSdist] = [*(pkg.wheels or ()), dist]
            if pkg.sdist is not None:
                files.append(pkg.sdist)
            candidates = {
                f.filename: Candidate(filename=f.filename, url=f.url, path=f.path) for f in files
            }
            version = str(pkg.version) if pkg.version else ""
            cand = select(
                pkg.name,
                version,
                list(candidates.values()),
                target,
                prefer_binary=prefer_binary,
                no_binary=no_binary,
            )
            chosen[pkg.name] = lock.by_filename[cand.filename]
    except PylockSelectError as exc:
        raise SelectionError(
            f"{fit}: {exc}; re-lock for that interpreter with {lock.created_by}, or pass the "
            "env's interpreter with --python"
        ) from None
    except SelectionError as exc:
        raise SelectionError(
            f"{fit}: {exc}; re-lock for that interpreter with {lock.created_by}, or pass the "
            "env's interpreter with --python"
        ) from None
    except PylockValidationError as exc:
        raise _fail(lock.path, str(exc)) from None
    return list(chosen.values())


def render(data: Mapping[str, Any]) -> bytes:
    """Serialise a lock deterministically: same data, same bytes (tomli-w keeps dict order)."""
    return tomli_w.dumps(dict(data)).encode("utf-8")


def project_entry(
    name: str, version: str | None, directory: Path, lock_dir: Path
) -> dict[str, Any]:
    """The project's own ``[[packages]]`` table: a ``directory`` source, relative to the lock."""
    entry: dict[str, Any] = {"name": canonicalize_name(name)}
    if version is not None:
        entry["version"] = version
    rel = os.path.relpath(directory.absolute(), lock_dir.absolute())
    entry["directory"] = {"path": Path(rel).as_posix(), "editable": True}
    return entry


def package_entry(
    name: str,
    version: str,
    wheels: Sequence[Artifact],
    sdist: Artifact | None,
    *,
    index: str | None = None,
    marker: str | None = None,
    requires_python: str | None = None,
) -> dict[str, Any]:
    """One ``[[packages]]`` table with keys in spec order and files sorted by name."""

    def file_table(a: Artifact) -> dict[str, Any]:
        table: dict[str, Any] = {"name": a.filename}
        if a.url:
            table["url"] = a.url
        if a.path:
            table["path"] = a.path
        if a.size is not None:
            table["size"] = a.size
        table["hashes"] = {"sha256": a.sha256}
        return table

    entry: dict[str, Any] = {"name": canonicalize_name(name), "version": version}
    if marker:
        entry["marker"] = marker
    if requires_python:
        entry["requires-python"] = requires_python
    if index:
        entry["index"] = index
    if sdist is not None:
        entry["sdist"] = file_table(sdist)
    if wheels:
        entry["wheels"] = [file_table(w) for w in sorted(wheels, key=lambda w: w.filename)]
    return entry
