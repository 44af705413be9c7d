"""Pure artifact choice: which file of a resolved version goes into a target's wheelhouse.

The rule that makes one shared env possible and images small: a ``none-any`` wheel whenever the
version has one that fits the target (pure Python, identical on every target), else the best
compatible wheel in the target's tag priority order, else the sdist. No I/O here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from wheelhouse.errors import SelectionError
from wheelhouse.targets import Target


@dataclass(frozen=True)
class Candidate:
    """A file an index offers for a project, before anything is chosen."""

    filename: str
    url: str | None = None
    path: str | None = None
    sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    yanked: bool = False
    metadata: str | None = None
    """PEP 658 core metadata next to the file: None when the index offers none, "" when it
    offers it without a hash, else the metadata file's sha256."""

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def candidate_identity(filename: str) -> tuple[NormalizedName, Version] | None:
    """Name and version encoded in a wheel or sdist filename; None for other files."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            return name, version
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def python_ok(candidate: Candidate, target: Target) -> bool:
    if not candidate.requires_python:
        return True
    try:
        spec = SpecifierSet(candidate.requires_python)
    except InvalidSpecifier:
        return True  # pip ignores unparsable data-requires-python too
    # The same version pip resolved for: the running interpreter's full version, else X.Y.0.
    return spec.contains(target.environment()["python_full_version"], prereleases=True)


def select(
    name: str,
    version: str,
    candidates: Sequence[Candidate],
    target: Target,
    *,
    prefer_binary: bool = False,
    no_binary: Collection[str] = (),
) -> Candidate:
    """Choose the artifact of ``name==version`` for ``target``.

    ``prefer_binary`` picks the most specific compatible wheel (pip's own order) even when a
    ``none-any`` wheel exists; ``no_binary`` names packages (or ``:all:``) that must come from
    their sdist.
    """
    norm = canonicalize_name(name)
    wanted = Version(version)
    rank = {tag: i for i, tag in enumerate(target.tags)}
    wheels: list[tuple[int, int, Candidate]] = []
    sdists: list[Candidate] = []
    for cand in candidates:
        ident = candidate_identity(cand.filename)
        if ident is None or ident != (norm, wanted) or not python_ok(cand, target):
            continue
        if not cand.is_wheel:
            sdists.append(cand)
            continue
        file_tags = parse_wheel_filename(cand.filename)[3]
        ranks = [rank[t] for t in file_tags if t in rank]
        if not ranks:
            continue
        pure = any(t.abi == "none" and t.platform == "any" for t in file_tags)
        wheels.append((0 if pure and not prefer_binary else 1, min(ranks), cand))
    sdists.sort(key=lambda c: (not c.filename.endswith(".tar.gz"), c.filename))
    if norm in no_binary or ":all:" in no_binary:
        if sdists:
            return sdists[0]
        raise SelectionError(
            f"{norm} {version}: --no-binary asks for an sdist but the index has none; "
            f"drop it from --no-binary"
        )
    if wheels:
        wheels.sort(key=lambda w: (w[0], w[1], w[2].filename))
        return wheels[0][2]
    if sdists:
        return sdists[0]
    offered = ", ".join(sorted(c.filename for c in candidates)) or "no files"
    raise SelectionError(
        f"{norm} {version}: no wheel or sdist fits target {target.name} (index offers: {offered})"
    )


def fits(filename: str, target: Target) -> bool:
    """Whether the target can load a wheel (one of its tags is the target's); sdists fit.

    The last check before installing: a lock target made for another interpreter, or a wheel
    built elsewhere, must not put extension modules the env cannot import into it silently.
    """
    if not filename.endswith(".whl"):
        return True
    try:
        file_tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return True  # install reports malformed names with their package
    return not file_tags.isdisjoint(target.tags)
