"""``wheelhouse export``: a target of a lock as a pip ``requirements.txt`` with hashes.

For deploys without Nix (a PaaS that runs ``pip install -r requirements.txt``), from the same lock
as the Nix env. ``pip install --require-hashes --no-deps -r requirements.txt`` must install
exactly the files ``wheelhouse install`` installs, so each line pins a package to the ONE file the
target chose: ``name==version --hash=sha256:<that file's hash>``. With a single allowed hash pip
keeps only the index's candidates carrying that hash, so among a ``none-any`` and a binary wheel
it takes the one the lock chose (an index that publishes no hashes makes pip pick by its own
preference and then fail the hash check: an error, never another file). ``urls=True`` writes
``name @ URL --hash=...`` instead, which needs no index at all.

Only runtime artifacts: build-only packages (the ``wheelhouse-build`` group) would be installed by
pip, and two build environments may pin one name twice. No markers: the target's selection already
applied them, and PEP 751 markers may test ``extras``/``dependency_groups``, which requirement
files cannot evaluate. Everything is sorted and nothing depends on the time, so the same lock
gives the same bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from packaging.utils import canonicalize_name

from wheelhouse import lockfile
from wheelhouse.errors import UsageError
from wheelhouse.model import Artifact

__all__ = ["FORMATS", "Entry", "entries", "render_requirements", "write_output"]

FORMATS = ("requirements",)


@dataclass(frozen=True)
class Entry:
    """One runtime file of the target, and the index its package comes from (if the lock says)."""

    artifact: Artifact
    index: str | None = None


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def entries(lock: lockfile.Lock, target: lockfile.LockTarget | None) -> list[Entry]:
    """The target's runtime files with their packages' ``index`` (the lock's data, no I/O)."""
    index_of = {
        (canonicalize_name(p.name), str(p.version) if p.version else ""): p.index
        for p in lock.pylock.packages
    }
    return [
        Entry(a, index_of.get((canonicalize_name(a.package), a.version)))
        for a in lockfile.artifacts_for(lock, target)
        if not a.build_only
    ]


def _spec(art: Artifact) -> str:
    return f"{canonicalize_name(art.package)}=={art.version}"


def render_requirements(
    found: Sequence[Entry],
    *,
    lock_name: str,
    target: str | None,
    lock_dir: str,
    output_dir: str,
    urls: bool = False,
    project: str | None = None,
) -> str:
    """The requirements file's text.

    Index lines come from the packages' PEP 751 ``index`` (credentials removed; the most used one
    is ``--index-url``, the others ``--extra-index-url``); a lock without them (wheelhouse's own)
    leaves the index to pip's command line or configuration. A file locked by ``path`` is found
    through ``--find-links`` on its directory, relative to ``output_dir`` (pip resolves it from
    the requirements file's directory). A locked sdist gets ``--no-binary``, so that pip does not
    prefer a wheel an index lists without a hash. The locked ``project`` itself (a PEP 751
    ``directory``) has no file and no hash: the header says to install it separately.
    """
    counts: dict[str, int] = {}
    find_links: set[str] = set()
    lines: list[tuple[str, str]] = []
    no_binary: list[str] = []
    for entry in sorted(found, key=lambda e: canonicalize_name(e.artifact.package)):
        art = entry.artifact
        digest = f"--hash=sha256:{art.sha256}"
        if art.path is not None:
            directory = os.path.dirname(os.path.join(lock_dir, art.path))
            find_links.add(os.path.relpath(directory, output_dir))
            lines.append((_spec(art), digest))
        elif urls and art.url is not None:
            lines.append((f"{canonicalize_name(art.package)} @ {art.url}", digest))
            continue
        else:
            lines.append((_spec(art), digest))
        if entry.index is not None:
            index = _without_credentials(entry.index)
            counts[index] = counts.get(index, 0) + 1
        if art.kind == "sdist":
            no_binary.append(canonicalize_name(art.package))
    head = [
        f"# Exported by `wheelhouse export` from {lock_name}"
        + (f", target {target}" if target else ", chosen for the interpreter that exported it")
        + ": runtime packages only,",
        "# each pinned to the file the lock chose. Install with:",
        "#   pip install --require-hashes --no-deps -r <this file>",
    ]
    if project is not None:
        head.append(
            f"# The project {project} itself is not listed (a directory has no hash): install "
            "it after these with `pip install --no-deps <its directory>`."
        )
    indexes = sorted(counts, key=lambda i: (-counts[i], i))
    options = [f"--index-url {indexes[0]}"] if indexes else []
    options += [f"--extra-index-url {i}" for i in indexes[1:]]
    options += [f"--find-links {d}" for d in sorted(find_links)]
    options += [f"--no-binary {n}" for n in no_binary]
    body = [f"{spec} \\\n    {digest}" for spec, digest in lines]
    return "\n".join([*head, *options, *body]) + "\n"


def write_output(text: str, output: Path) -> None:
    """Write ``output`` atomically (a temp file renamed), so a failure leaves no partial file."""
    if output.is_dir():
        raise UsageError(f"-o {output}: is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(
            f"-o {output}: cannot write there ({exc.strerror or exc}); choose another path"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(
            f"-o {output}: cannot write it ({exc.strerror or exc}); choose another path"
        ) from None
