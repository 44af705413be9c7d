"""``wheelhouse lock``: requirements -> pip resolution -> chosen files -> ``pylock.toml``.

The lock also records, per target, the NAR hash of the wheelhouse directory that ``fetch`` will
produce, so the Nix fixed-output derivation builds on the first try. Computing it needs the bytes
of every chosen file, so locking downloads them (into the cache that ``fetch`` reuses).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wheelhouse import __version__, index, lockfile, nar
from wheelhouse.download import Downloader
from wheelhouse.errors import ResolutionError
from wheelhouse.model import Artifact
from wheelhouse.resolve import Inputs, Resolved, resolve
from wheelhouse.selection import Candidate, candidate_identity, select
from wheelhouse.targets import Target


@dataclass(frozen=True)
class Options:
    prefer_binary: bool = False
    no_binary: tuple[str, ...] = ()
    jobs: int = 8


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


def _complete(cand: Candidate, row: Resolved, downloader: Downloader, lock_dir: Path) -> Artifact:
    """A chosen candidate as a fully hashed artifact (hashing the bytes if the index has none)."""
    sha256 = cand.sha256
    if sha256 is None:
        if cand.path is not None:
            sha256 = hashlib.sha256(Path(cand.path).read_bytes()).hexdigest()
        else:
            assert cand.url is not None
            body, _, _ = downloader.read(cand.url)
            sha256 = hashlib.sha256(body).hexdigest()
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


def build_lock(
    inputs: Inputs,
    targets: Sequence[Target],
    output: Path,
    downloader: Downloader,
    options: Options = Options(),
) -> dict[str, Any]:
    """Resolve, choose, download and hash; return the lock as a dict ready for ``render``."""
    resolved = {t.name: resolve(inputs, t) for t in targets}
    versions = {(r.name, r.version): r for rows in resolved.values() for r in rows}
    names = sorted({name for name, _ in versions})
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        listings = dict(
            zip(
                names,
                pool.map(
                    lambda n: index.list_files(n, downloader, inputs.indexes, inputs.find_links),
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
            cands = _with_resolved_file(listings[row.name], row)
            if row.is_direct:
                cands = [c for c in cands if row.url.endswith("/" + c.filename)] or cands
            cand = select(
                row.name,
                row.version,
                cands,
                target,
                prefer_binary=options.prefer_binary,
                no_binary=options.no_binary,
            )
            if cand.filename not in completed:
                completed[cand.filename] = _complete(cand, row, downloader, lock_dir)
            picks.append(completed[cand.filename])
        chosen[target.name] = picks
    downloaded = downloader.get_many(list(completed.values()))
    for filename, art in list(completed.items()):
        size = downloaded[filename].stat().st_size
        if art.size is not None and art.size != size:
            raise ResolutionError(f"{filename}: index says {art.size} bytes, file has {size}")
        completed[filename] = replace(art, size=size)

    tool_targets = []
    for target in targets:
        files = {a.filename: downloaded[a.filename] for a in chosen[target.name]}
        tool_targets.append(
            {
                "name": target.name,
                "python-version": target.version_string,
                "marker": target.marker,
                "artifacts": sorted(files),
                "wheelhouse-nar-hash": nar.sri(nar.flat_directory_sha256(files)),
            }
        )
    return {
        "lock-version": "1.0",
        "environments": [t.marker for t in targets],
        "requires-python": ">=" + min(t.version_string for t in targets),
        "created-by": "wheelhouse",
        "packages": _packages(targets, chosen, completed),
        "tool": {
            "wheelhouse": {
                "lock-format": lockfile.TOOL_FORMAT,
                "version": __version__,
                "targets": tool_targets,
            }
        },
    }


def _packages(
    targets: Sequence[Target], chosen: dict[str, list[Artifact]], completed: dict[str, Artifact]
) -> list[dict[str, Any]]:
    users: dict[tuple[str, str], list[Target]] = {}
    files: dict[tuple[str, str], set[str]] = {}
    for target in targets:
        for art in chosen[target.name]:
            key = (art.package, art.version)
            users.setdefault(key, []).append(target)
            files.setdefault(key, set()).add(art.filename)
    entries = []
    for key in sorted(users):
        arts = [completed[f] for f in sorted(files[key])]
        sdists = [a for a in arts if a.kind == "sdist"]
        marker = None
        if len(users[key]) != len(targets):
            marker = " or ".join(f"({t.marker})" for t in users[key])
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
