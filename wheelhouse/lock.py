"""``wheelhouse lock``: requirements -> pip resolution -> chosen files -> ``pylock.toml``.

The lock also records, per target, the NAR hash of the wheelhouse directory that ``fetch`` will
produce, so the Nix fixed-output derivation builds on the first try. Computing it needs the bytes
of every chosen file, so locking downloads them (into the cache that ``fetch`` reuses).

Each chosen sdist also gets its build environment locked (``_BuildLocker``): the backend's
requirements, resolved by pip and chosen like runtime files, recorded as build-only packages that
enter the wheelhouse but never the env, so ``build-sdists`` can later build offline.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from wheelhouse import __version__, backend, buildreqs, index, lockfile, nar, sdist, ui, uvresolve
from wheelhouse.download import Downloader
from wheelhouse.errors import LockError, ResolutionError
from wheelhouse.index import PageCache
from wheelhouse.mirror import IndexMirror
from wheelhouse.model import Artifact
from wheelhouse.project import ProjectInfo, has_build_system, read_project
from wheelhouse.resolve import Inputs, Resolved, check_url, resolve
from wheelhouse.selection import Candidate, candidate_identity, select
from wheelhouse.targets import Target

RESOLVERS: dict[str, Callable[[Inputs, Target, IndexMirror, dict[str, str]], list[Resolved]]] = {
    "pip": resolve,  # against the mirror
    "uv": lambda inputs, target, _mirror, _pins: uvresolve.resolve(inputs, target),
}
"""``--resolver``: what turns requirements into ``Resolved`` rows for a target (pip's default)."""


@dataclass(frozen=True)
class Options:
    prefer_binary: bool = False
    no_binary: tuple[str, ...] = ()
    jobs: int = 8
    resolver: str = "pip"
    """A key of ``RESOLVERS``; recorded in the lock (``[tool.wheelhouse] resolver``)."""

    pins: tuple[tuple[str, str], ...] = ()
    """(name, version) of the previous lock: kept while the requirements allow."""

    def resolve(
        self,
        inputs: Inputs,
        target: Target,
        mirror: IndexMirror,
        pins: dict[str, str] | None = None,
    ) -> list[Resolved]:
        """``pins``: versions ``inputs``' constraints fix (the pip mirror shows only those)."""
        return RESOLVERS[self.resolver](inputs, target, mirror, pins or {})

    def choose(
        self, name: str, version: str, cands: Sequence[Candidate], target: Target
    ) -> Candidate:
        """The file of ``name==version`` this lock takes for ``target``."""
        return select(
            name,
            version,
            cands,
            target,
            prefer_binary=self.prefer_binary,
            no_binary=self.no_binary,
        )


def previous_pins(
    output: Path, upgrade: bool = False, upgrade_packages: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    """The runtime pins of the lock at ``output``, if there is one, for a re-lock to keep.

    ``upgrade`` drops them all, ``upgrade_packages`` those of the named packages; build-only
    packages and the project are not pins (build environments are resolved afresh, the project
    is the user's source). A file that is not a readable lock is simply not a previous lock.
    """
    if upgrade or not output.is_file():
        return ()
    try:
        previous = lockfile.load(output)
    except LockError:
        return ()
    dropped = {canonicalize_name(n) for n in upgrade_packages}
    project = previous.project.name if previous.project else None
    pins = {
        (canonicalize_name(p.name), str(p.version))
        for p in previous.pylock.packages
        if p.version is not None
        and canonicalize_name(p.name) not in dropped
        and canonicalize_name(p.name) != project
        and BUILD_MARKER not in str(p.marker or "")
    }
    return tuple(sorted(pins))


def _with_resolved_file(cands: list[Candidate], row: Resolved) -> list[Candidate]:
    """pip's own pick is always a candidate, even from a location we could not list."""
    filename = row.url.rsplit("/", 1)[-1].split("#", 1)[0]
    if candidate_identity(filename) is None or any(c.filename == filename for c in cands):
        return cands
    if row.url.startswith("file://"):
        return [
            *cands,
            Candidate(filename=filename, path=row.url[len("file://") :], sha256=row.sha256),
        ]
    return [
        *cands,
        Candidate(filename=filename, url=index.strip_credentials(row.url), sha256=row.sha256),
    ]


def _lock_path(path: str, lock_dir: Path) -> str:
    """Local files are recorded relative to the lock when they live below it (portable repos)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(lock_dir.resolve()).as_posix()
    except ValueError:
        return str(p)


def _complete(
    cand: Candidate, row: Resolved, downloader: Downloader, lock_dir: Path, mirror: IndexMirror
) -> Artifact:
    """A chosen candidate as a fully hashed artifact (hashing the bytes if the index has none,
    unless pip had the mirror download them already)."""
    sha256 = cand.sha256
    if sha256 is None:
        if cand.path is not None:
            sha256 = hashlib.sha256(Path(cand.path).read_bytes()).hexdigest()
        else:
            assert cand.url is not None
            sha256 = (
                mirror.sha256_of(cand.url) or downloader.get_unhashed(cand.url, cand.filename)[1]
            )
    return Artifact(
        filename=cand.filename,
        package=row.name,
        version=row.version,
        sha256=sha256,
        kind="wheel" if cand.is_wheel else "sdist",
        url=cand.url,
        path=_lock_path(cand.path, lock_dir) if cand.path is not None else None,
        size=cand.size,
    )


BUILD_GROUP = "wheelhouse-build"
"""The PEP 751 dependency group of build-only packages (never installed by default)."""
BUILD_MARKER = f"'{BUILD_GROUP}' in dependency_groups"


def _download(
    arts: Sequence[Artifact],
    downloader: Downloader,
    completed: dict[str, Artifact],
    downloaded: dict[str, Path],
    mirror: IndexMirror | None = None,
) -> None:
    """Fetch ``arts`` into the cache (those the mirror downloaded while pip resolved are
    taken from it), recording their real sizes in ``completed``."""
    todo = [a for a in arts if a.filename not in downloaded]
    if not todo:
        return
    early = {a.filename: mirror.downloaded(a) for a in todo} if mirror else {}
    got = downloader.get_many([a for a in todo if early.get(a.filename) is None])
    got.update({name: path for name, path in early.items() if path is not None})
    for art in todo:
        size = got[art.filename].stat().st_size
        if art.size is not None and art.size != size:
            raise ResolutionError(f"{art.filename}: index says {art.size} bytes, file has {size}")
        completed[art.filename] = replace(completed[art.filename], size=size)
        downloaded[art.filename] = got[art.filename]


class _BuildLocker:
    """Locks the build environment of each sdist: its ``[build-system] requires`` plus what its
    backend's ``get_requires_for_build_wheel`` adds, resolved by pip for the target and chosen
    like runtime files (none-any first). A build dependency that is itself an sdist gets its own
    environment (recursively); a cycle is an error, since nothing could build first."""

    def __init__(
        self,
        inputs: Inputs,
        options: Options,
        downloader: Downloader,
        lock_dir: Path,
        listings: dict[str, list[Candidate]],
        completed: dict[str, Artifact],
        downloaded: dict[str, Path],
        mirror: IndexMirror,
    ) -> None:
        self.mirror = mirror
        self.inputs = inputs
        self.options = options
        self.downloader = downloader
        self.lock_dir = lock_dir
        self.listings = listings
        self.completed = completed
        self.downloaded = downloaded
        self.requirements: dict[str, list[str]] = {}

    def envs(self, target: Target, sdists: Sequence[Artifact]) -> dict[str, list[str]]:
        """Sdist file name -> file names of its build environment, for every sdist reached."""
        envs: dict[str, list[str]] = {}
        for art in sorted(sdists):
            self._env(target, art, envs, ())
        return envs

    def project_env(
        self, target: Target, project: ProjectInfo, envs: dict[str, list[str]]
    ) -> list[str]:
        """File names of the project's own build environment (sdists in it join ``envs``)."""
        label = f"project {project.name}"
        if label not in self.requirements:
            system = backend.source_build_system(project.directory, label)
            dynamic = buildreqs.query_build_requires(project.directory, system, self.inputs)
            self.requirements[label] = sorted({*system.requires, *dynamic})
        picks = self._picks(target, label, self.requirements[label])
        for dep in picks:
            if dep.kind == "sdist":
                self._env(target, dep, envs, (label,))
        return sorted(a.filename for a in picks)

    def _requires(self, art: Artifact) -> list[str]:
        if art.filename not in self.requirements:
            path = self.downloaded[art.filename]
            system = sdist.read_build_system(path)
            dynamic = buildreqs.query_build_requires(path, system, self.inputs)
            self.requirements[art.filename] = sorted({*system.requires, *dynamic})
        return self.requirements[art.filename]

    def _picks(self, target: Target, label: str, reqs: list[str]) -> list[Artifact]:
        """``reqs`` resolved by pip for ``target``, chosen, downloaded and completed."""
        if not reqs:
            return []
        inputs = Inputs(
            requirements=tuple(reqs),
            index_url=self.inputs.index_url,
            extra_index_urls=self.inputs.extra_index_urls,
            find_links=self.inputs.find_links,
        )
        try:
            rows = self.options.resolve(inputs, target, self.mirror)
        except ResolutionError as exc:
            raise ResolutionError(
                f"{label}: its build requirements ({', '.join(reqs)}): {exc}"
            ) from None
        picks = [self._pick(row, target) for row in rows]
        _download(picks, self.downloader, self.completed, self.downloaded, self.mirror)
        return [self.completed[a.filename] for a in picks]

    def _env(
        self, target: Target, art: Artifact, envs: dict[str, list[str]], stack: tuple[str, ...]
    ) -> None:
        if art.filename in envs:
            return
        if art.filename in stack:
            cycle = " needs ".join([*stack[stack.index(art.filename) :], art.filename])
            raise ResolutionError(
                f"sdists need each other to build: {cycle}; lock a wheel for one of them "
                "(drop it from --no-binary)"
            )
        picks = self._picks(target, art.filename, self._requires(art))
        for dep in picks:
            if dep.kind == "sdist":
                self._env(target, dep, envs, (*stack, art.filename))
        envs[art.filename] = sorted(a.filename for a in picks)

    def _pick(self, row: Resolved, target: Target) -> Artifact:
        if row.name not in self.listings:
            self.listings[row.name] = index.list_files(
                row.name, self.mirror.pages, self.inputs.indexes, self.inputs.find_links
            )
        cand = self.options.choose(
            row.name, row.version, _with_resolved_file(self.listings[row.name], row), target
        )
        if cand.filename not in self.completed:
            self.completed[cand.filename] = _complete(
                cand, row, self.downloader, self.lock_dir, self.mirror
            )
        return self.completed[cand.filename]


def _must_list(row: Resolved, options: Options) -> bool:
    """Whether choosing for ``row`` needs the index's full file list.

    pip ranks a ``none-any`` wheel below any binary one, so when pip itself took a ``none-any``
    wheel, no binary wheel fits and that file is our choice too; the same holds for every pip
    choice under ``--prefer-binary-wheels``. Plone: 223 of 242 index requests saved.
    """
    if row.is_direct:
        return False  # a direct URL pins the file itself
    if row.name in options.no_binary or ":all:" in options.no_binary:
        return True  # the sdist is wanted; pip may have taken a wheel
    if options.prefer_binary:
        return False
    filename = row.url.rsplit("/", 1)[-1].split("#", 1)[0]
    if not filename.endswith(".whl"):
        return True
    try:
        file_tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return True
    return not any(t.abi == "none" and t.platform == "any" for t in file_tags)


def build_lock(
    inputs: Inputs,
    targets: Sequence[Target],
    output: Path,
    downloader: Downloader,
    options: Options = Options(),
    project: ProjectInfo | None = None,
) -> dict[str, Any]:
    """Resolve, choose, download and hash; return the lock as a dict ready for ``render``.

    With ``project`` (``wheelhouse lock PROJECT_DIR``) the lock also records the project as a
    ``directory`` package and, per target, its build environment (``project-build``), locked
    like an sdist's, so ``build-project`` can build it offline.
    """
    for url in (*inputs.indexes, *inputs.find_links):
        check_url(url)
        # `--index-url https://user:pw@host/simple`: the files it links to need them too.
        downloader.remember_credentials(url)
    pages = PageCache(downloader)
    mirror = IndexMirror(downloader, inputs.indexes, pages, options.choose)
    with mirror:
        return _build_lock(inputs, targets, output, downloader, options, project, mirror)


class _Clock:
    """Where a lock's time goes, for ``-v``."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def lap(self, what: str) -> None:
        now = time.monotonic()
        ui.detail(f"lock: {what}: {now - self._last:.2f} s")
        self._last = now


def _resolve_keeping(
    inputs: Inputs, target: Target, mirror: IndexMirror, options: Options
) -> list[Resolved]:
    """The resolution with the previous lock's pins as constraints, so a re-lock changes only
    what the new requirements need; when they cannot be kept, a fresh resolution."""
    versions: dict[str, set[str]] = {}
    for name, version in options.pins:
        versions.setdefault(name, set()).add(version)
    pins = {name: vs.pop() for name, vs in sorted(versions.items()) if len(vs) == 1}
    if not pins:
        return options.resolve(inputs, target, mirror)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-pins-") as tmp:
        pinned = Path(tmp) / "previous-lock.txt"
        pinned.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
        kept = replace(inputs, constraint_files=(*inputs.constraint_files, pinned))
        try:
            return options.resolve(kept, target, mirror, pins)
        except ResolutionError:
            ui.info(
                f"the previous lock's versions do not fit the requirements for {target.name}; "
                "resolving afresh"
            )
    return options.resolve(inputs, target, mirror)


def _build_lock(
    inputs: Inputs,
    targets: Sequence[Target],
    output: Path,
    downloader: Downloader,
    options: Options,
    project: ProjectInfo | None,
    mirror: IndexMirror,
) -> dict[str, Any]:
    clock = _Clock()
    resolved = {t.name: _resolve_keeping(inputs, t, mirror, options) for t in targets}
    clock.lap("pip's resolution")
    names = sorted({r.name for rows in resolved.values() for r in rows if _must_list(r, options)})
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        listings = dict(
            zip(
                names,
                pool.map(
                    lambda n: index.list_files(n, mirror.pages, inputs.indexes, inputs.find_links),
                    names,
                ),
                strict=True,
            )
        )
    lock_dir = output.parent
    chosen: dict[str, list[Artifact]] = {}
    completed: dict[str, Artifact] = {}
    for target in targets:
        picks = []
        for row in resolved[target.name]:
            cands = _with_resolved_file(listings.get(row.name, []), row)
            if row.is_direct:
                cands = [c for c in cands if row.url.endswith("/" + c.filename)] or cands
            cand = options.choose(row.name, row.version, cands, target)
            if cand.filename not in completed:
                completed[cand.filename] = _complete(cand, row, downloader, lock_dir, mirror)
            picks.append(completed[cand.filename])
        chosen[target.name] = picks
    clock.lap("listing and choosing files")
    downloaded: dict[str, Path] = {}
    _download(list(completed.values()), downloader, completed, downloaded, mirror)
    clock.lap(f"downloads ({mirror.early_downloads} started while pip resolved)")
    builds = _BuildLocker(
        inputs, options, downloader, lock_dir, listings, completed, downloaded, mirror
    )
    tool_targets, build_only = _lock_targets(
        targets, chosen, completed, downloaded, builds, project
    )
    clock.lap("build environments and NAR hashes")
    groups: dict[str, Any] = {}
    if any(build_only.values()):
        # Build-only packages carry a marker true only for this group, and no group is installed
        # by default: a standard PEP 751 installer never puts them into an environment.
        groups = {"dependency-groups": [BUILD_GROUP], "default-groups": []}
    packages = _packages(targets, chosen, completed, build_only)
    tool: dict[str, Any] = {
        "lock-format": lockfile.TOOL_FORMAT,
        "version": __version__,
        "resolver": options.resolver,
    }
    if project is not None:
        packages = sorted(
            [
                *packages,
                lockfile.project_entry(
                    project.name, project.version, project.directory, output.parent
                ),
            ],
            key=lambda p: (p["name"], p.get("version", "")),
        )
        tool["project"] = canonicalize_name(project.name)
    return {
        "lock-version": "1.0",
        "environments": [t.marker for t in targets],
        "requires-python": ">=" + min(t.version_string for t in targets),
        **groups,
        "created-by": "wheelhouse",
        "packages": packages,
        "tool": {"wheelhouse": {**tool, "targets": tool_targets}},
    }


def _lock_targets(
    targets: Sequence[Target],
    chosen: dict[str, list[Artifact]],
    completed: dict[str, Artifact],
    downloaded: dict[str, Path],
    builds: _BuildLocker,
    project: ProjectInfo | None,
) -> tuple[list[dict[str, Any]], dict[str, list[Artifact]]]:
    """``[[tool.wheelhouse.targets]]`` from each target's chosen runtime files: the build
    environments of its sdists and of the project (locked now), and the NAR hash of the
    wheelhouse holding all of them. Also returns each target's build-only artifacts."""
    tool_targets = []
    build_only: dict[str, list[Artifact]] = {}
    for target in targets:
        runtime = {a.filename for a in chosen[target.name]}
        envs = builds.envs(target, [a for a in chosen[target.name] if a.kind == "sdist"])
        project_build = builds.project_env(target, project, envs) if project else []
        needed = {f for files in envs.values() for f in files} | set(project_build)
        extra = sorted(needed - runtime)
        build_only[target.name] = [completed[f] for f in extra]
        files = {f: downloaded[f] for f in sorted(runtime | set(extra))}
        entry: dict[str, Any] = {
            "name": target.name,
            "python-version": target.version_string,
            "python-full-version": target.full_version,
            "marker": target.marker,
            "artifacts": sorted(runtime),
        }
        if extra:
            entry["build-artifacts"] = extra
        if envs:
            entry["sdist-builds"] = {k: envs[k] for k in sorted(envs)}
        if project is not None:
            entry["project-build"] = project_build
        entry["wheelhouse-nar-hash"] = nar.sri(nar.flat_directory_sha256(files))
        tool_targets.append(entry)
    return tool_targets, build_only


def build_lock_from(
    foreign: lockfile.Lock,
    inputs: Inputs,
    targets: Sequence[Target],
    output: Path,
    downloader: Downloader,
    options: Options = Options(),
) -> dict[str, Any]:
    """Another tool's PEP 751 lock with ``[tool.wheelhouse]`` added, every pin kept.

    No resolution: the packages for each target are the lock's own (its markers, groups and
    ``requires-python`` evaluated for that target), one file each chosen like ``build_lock``
    does; only build environments are resolved (they are in no other tool's lock): the sdists',
    and the project's when the lock has the project's ``directory`` entry (uv exports one) and
    its source is there, as ``lock PROJECT_DIR`` does. They are recorded as extra build-only
    packages. The foreign ``[[packages]]`` stay as they are, except that TOML datetimes (uv's
    ``upload-time``, optional in PEP 751) are dropped, since Nix 2.8's ``fromTOML`` rejects
    them, and relative ``path``s follow the lock to ``output``.
    """
    for url in (*inputs.indexes, *inputs.find_links):
        downloader.remember_credentials(url)
    chosen = {
        t.name: lockfile.select_for(
            foreign, t, prefer_binary=options.prefer_binary, no_binary=options.no_binary
        )
        for t in targets
    }
    completed = {a.filename: a for arts in chosen.values() for a in arts}
    downloaded: dict[str, Path] = {}
    _download(list(completed.values()), downloader, completed, downloaded)
    lock_dir = output.parent
    project = None
    if foreign.project is not None:
        source = (foreign.directory / foreign.project.path).resolve()
        if has_build_system(source):
            project = read_project(source)
    with IndexMirror(downloader, inputs.indexes, PageCache(downloader), options.choose) as mirror:
        builds = _BuildLocker(
            inputs, options, downloader, lock_dir, {}, completed, downloaded, mirror
        )
        tool_targets, build_only = _lock_targets(
            targets, chosen, completed, downloaded, builds, project
        )

    data, pins_from = _foreign_part(_without_datetimes(foreign.data))
    data = _rebase_paths(data, foreign.directory, lock_dir)
    listed = _file_names(data.get("packages", []))
    new_only = {
        name: [a for a in arts if a.filename not in listed] for name, arts in build_only.items()
    }
    packages = list(data.get("packages", []))
    packages += _packages(targets, {t.name: [] for t in targets}, completed, new_only)
    out = {k: v for k, v in data.items() if k not in ("created-by", "packages", "tool")}
    if any(build_only.values()):
        groups = list(out.get("dependency-groups") or [])
        out["dependency-groups"] = groups if BUILD_GROUP in groups else [*groups, BUILD_GROUP]
        out.setdefault("default-groups", [])
    out["created-by"] = "wheelhouse"
    out["packages"] = packages
    tool: dict[str, Any] = {
        "lock-format": lockfile.TOOL_FORMAT,
        "version": __version__,
        "pins-from": pins_from or foreign.created_by,
        "resolver": options.resolver,
    }
    if foreign.project is not None:
        tool["project"] = foreign.project.name
    tool["targets"] = tool_targets
    out["tool"] = {**data.get("tool", {}), "wheelhouse": tool}
    return out


def _foreign_part(data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A lock with what an earlier ``lock --from`` added taken out (its ``[tool.wheelhouse]``,
    build-only packages and group), so that running it again gives the same bytes; and the tool
    the pins came from."""
    tools = dict(data.get("tool") or {})
    own = tools.pop(lockfile.TOOL_NAME, None)
    if not isinstance(own, dict):
        return data, None
    data = dict(data, tool=tools) if tools else {k: v for k, v in data.items() if k != "tool"}
    data["packages"] = [
        p for p in data.get("packages", []) if BUILD_MARKER not in str(p.get("marker", ""))
    ]
    if "dependency-groups" in data:
        data["dependency-groups"] = [g for g in data["dependency-groups"] if g != BUILD_GROUP]
    pins_from = own.get("pins-from")
    return data, str(pins_from) if pins_from else None


def _file_names(packages: Sequence[dict[str, Any]]) -> set[str]:
    """The file names of the wheels and sdists of ``[[packages]]`` tables (``name``, else the
    last part of ``url`` or ``path``, as PEP 751 says)."""
    names = set()
    for pkg in packages:
        for file in [*pkg.get("wheels", []), pkg.get("sdist")]:
            if isinstance(file, dict):
                location = str(file.get("url") or file.get("path") or "")
                names.add(str(file.get("name") or location.rsplit("/", 1)[-1]))
    return names


def _without_datetimes(value: Any) -> Any:
    """``value`` with every TOML date/time (and its key) removed."""
    if isinstance(value, dict):
        return {
            k: _without_datetimes(v)
            for k, v in value.items()
            if not isinstance(v, datetime.date | datetime.time)
        }
    if isinstance(value, list):
        return [
            _without_datetimes(v) for v in value if not isinstance(v, datetime.date | datetime.time)
        ]
    return value


def _rebase_paths(data: dict[str, Any], source: Path, dest: Path) -> dict[str, Any]:
    """Relative ``path``s of files and directories, made relative to ``dest`` instead (absolute
    when not below it)."""
    if source.resolve() == dest.resolve():
        return data

    def rebase(table: Any) -> None:
        if isinstance(table, dict) and isinstance(table.get("path"), str):
            path = table["path"]
            if not Path(path).is_absolute():
                table["path"] = _lock_path(str(source / path), dest)

    for pkg in data.get("packages", []):
        for file in [*pkg.get("wheels", []), pkg.get("sdist"), pkg.get("directory")]:
            rebase(file)
    return data


def _packages(
    targets: Sequence[Target],
    chosen: dict[str, list[Artifact]],
    completed: dict[str, Artifact],
    build_only: dict[str, list[Artifact]],
) -> list[dict[str, Any]]:
    users: dict[tuple[str, str], list[Target]] = {}
    builders: dict[tuple[str, str], list[Target]] = {}
    files: dict[tuple[str, str], set[str]] = {}
    for target in targets:
        for art in chosen[target.name]:
            key = (art.package, art.version)
            users.setdefault(key, []).append(target)
            files.setdefault(key, set()).add(art.filename)
        for art in build_only[target.name]:
            key = (art.package, art.version)
            if target not in users.get(key, []):
                builders.setdefault(key, []).append(target)
            files.setdefault(key, set()).add(art.filename)
    entries = []
    for key in sorted(files):
        arts = [completed[f] for f in sorted(files[key])]
        sdists = [a for a in arts if a.kind == "sdist"]
        marker = _marker(targets, users.get(key, []), builders.get(key, []))
        entries.append(
            lockfile.package_entry(
                key[0],
                key[1],
                [a for a in arts if a.kind == "wheel"],
                sdists[0] if sdists else None,
                marker=marker,
            )
        )
    return entries


def _marker(targets: Sequence[Target], users: list[Target], builders: list[Target]) -> str | None:
    """When a package entry applies: on the targets using it at runtime (no marker: all of
    them), or, for the ``wheelhouse-build`` group only, on the targets building with it."""
    if len(users) == len(targets):
        return None
    runtime = " or ".join(f"({t.marker})" for t in users)
    if not builders:
        return runtime
    build = BUILD_MARKER
    if len(builders) != len(targets):
        build += " and (" + " or ".join(f"({t.marker})" for t in builders) + ")"
    return f"({runtime}) or ({build})" if runtime else build


def write_lock(data: dict[str, Any], output: Path) -> bytes:
    """Write atomically; identical inputs give identical bytes (no dates, sorted everything)."""
    content = lockfile.render(data)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return content
