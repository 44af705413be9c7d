"""Artifact choice per target: none-any first, then tag priority, then sdist."""

from __future__ import annotations

import pytest

from wheelhouse.errors import SelectionError
from wheelhouse.selection import Candidate, candidate_identity, select
from wheelhouse.targets import make_target

T311 = make_target("3.11")
T312 = make_target("3.12")
BIN311 = "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
BIN312 = "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
PURE = "demo-1.0-py3-none-any.whl"
SDIST = "demo-1.0.tar.gz"


def cands(*names: str, **kw: str) -> list[Candidate]:
    return [Candidate(filename=n, url=f"https://x/{n}", **kw) for n in names]  # type: ignore[arg-type]


def test_none_any_wins_over_a_more_specific_binary_wheel() -> None:
    assert select("demo", "1.0", cands(BIN311, PURE, SDIST), T311).filename == PURE


def test_prefer_binary_takes_the_most_specific_wheel() -> None:
    chosen = select("demo", "1.0", cands(BIN311, PURE, SDIST), T311, prefer_binary=True)
    assert chosen.filename == BIN311


def test_binary_wheel_is_taken_per_target_when_no_none_any() -> None:
    offered = cands(BIN311, BIN312, SDIST)
    assert select("demo", "1.0", offered, T311).filename == BIN311
    assert select("demo", "1.0", offered, T312).filename == BIN312


def test_sdist_only_when_no_wheel_fits() -> None:
    offered = cands(BIN312, SDIST, "demo-1.0.zip")
    assert select("demo", "1.0", offered, T311).filename == SDIST


def test_no_binary_forces_sdist_and_fails_clearly_without_one() -> None:
    assert select("Demo", "1.0", cands(PURE, SDIST), T311, no_binary=["demo"]).filename == SDIST
    assert select("demo", "1.0", cands(PURE, SDIST), T311, no_binary=[":all:"]).filename == SDIST
    with pytest.raises(SelectionError, match=r"demo 1\.0: --no-binary"):
        select("demo", "1.0", cands(PURE), T311, no_binary=["demo"])


def test_other_versions_names_and_requires_python_are_ignored() -> None:
    offered = [
        Candidate("demo-2.0-py3-none-any.whl"),
        Candidate("other-1.0-py3-none-any.whl"),
        Candidate(PURE, requires_python=">=3.12"),
        Candidate(BIN311),
    ]
    assert select("demo", "1.0", offered, T311).filename == BIN311
    assert select("demo", "1.0", offered, T312).filename == PURE


def test_nothing_fits_names_package_target_and_offer() -> None:
    with pytest.raises(SelectionError) as err:
        select("demo", "1.0", cands(BIN312), T311)
    assert "demo 1.0" in str(err.value)
    assert T311.name in str(err.value)
    assert BIN312 in str(err.value)


def test_candidate_identity_parses_wheels_and_sdists_only() -> None:
    assert candidate_identity(PURE) == ("demo", candidate_identity(SDIST)[1])  # type: ignore[index]
    assert candidate_identity("demo-1.0.exe") is None
    assert candidate_identity("not a wheel.whl") is None


def test_running_target_checks_requires_python_against_the_full_version_pip_used() -> None:
    """pip resolves the running target with the interpreter's full version (3.11.7 may pick a
    release that needs >=3.11.5); selection must accept the file pip chose, not test X.Y.0."""
    import platform

    from packaging.specifiers import SpecifierSet

    running = make_target(None)
    full = platform.python_version()
    offered = [Candidate(PURE, requires_python=f">={full}")]
    assert select("demo", "1.0", offered, running).filename == PURE
    other = T312 if running.python_version != (3, 12) else T311
    newer = f">={other.version_string}.5"
    assert not SpecifierSet(newer).contains(other.version_string + ".0")
    with pytest.raises(SelectionError):
        select("demo", "1.0", [Candidate(PURE, requires_python=newer)], other)
