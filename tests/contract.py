"""The user-facing error contract, as helpers for the catalogue tests (tests/test_catalogue_*.py).

Every bad input must give: exit code non-zero (``exit_code`` of the error class), exactly one
line on stderr, ``error: <message>``, naming the package or file and saying what to do, no
traceback, and nothing half-written at the destination.

``run_cli`` runs ``wheelhouse.cli.main`` in-process and also records which ``WheelhouseError``
class the command raised (the CLI itself only prints it); ``run_module`` runs a real
``python -m wheelhouse`` process. ``write_lock`` writes a pylock.toml for given artifacts with
``wheelhouse.lockfile.package_entry``/``render``, as ``wheelhouse lock`` would.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wheelhouse import cli, lockfile, nar
from wheelhouse.errors import WheelhouseError
from wheelhouse.model import Artifact
from wheelhouse.targets import make_target

ROOT = Path(__file__).resolve().parent.parent
TARGET = make_target(None)


@dataclass(frozen=True)
class Outcome:
    rc: int
    out: str
    err: str
    error: type[BaseException] | None
    """The exception class the command raised (None on success)."""


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Outcome:
    """``wheelhouse <argv>`` in-process, like a user at the terminal."""
    seen: list[type[BaseException]] = []
    originals = dict(cli.COMMANDS)

    def wrap(
        command: Callable[[argparse.Namespace], int],
    ) -> Callable[[argparse.Namespace], int]:
        def recording(args: argparse.Namespace) -> int:
            try:
                return command(args)
            except BaseException as exc:
                seen.append(type(exc))
                raise

        return recording

    capsys.readouterr()
    try:
        for name, command in originals.items():
            cli.COMMANDS[name] = wrap(command)  # type: ignore[assignment]
        rc = cli.main([str(a) for a in argv])
    finally:
        cli.COMMANDS.update(originals)
    captured = capsys.readouterr()
    return Outcome(rc, captured.out, captured.err, seen[0] if seen else None)


def run_module(
    *argv: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A real ``python -m wheelhouse <argv>`` process (the interpreter running the tests)."""
    environ = dict(os.environ if env is None else env)
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "wheelhouse", *(str(a) for a in argv)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        check=False,
    )


ADVICE = re.compile(
    r";.*\b(regenerate|re-lock|re-fetch|fix|remove|use|run|check|rebuild|fetch|choose|give|"
    r"delete|drop|free|set|restore|clear|add|keep|pass|make|create|point (it|NETRC))\b",
    re.IGNORECASE,
)
"""What-to-do wording: after the statement of the problem and a ';', an imperative."""


def assert_error_line(rc: int, err: str, exit_code: int, *needles: str) -> str:
    """One ``error: `` line naming every needle and what to do, the exit code, no traceback."""
    assert rc == exit_code != 0, (rc, err)
    assert "Traceback" not in err, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    message = err[len("error: ") : -1]
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert ADVICE.search(message), f"no advice in {message!r}"
    return message


def assert_error(outcome: Outcome, error: type[WheelhouseError], *needles: str) -> str:
    """``outcome`` failed with exactly ``error`` (not a subclass) and a one-line message."""
    assert outcome.error is error, (outcome.error, outcome.err)
    return assert_error_line(outcome.rc, outcome.err, error.exit_code, *needles)


def assert_ok(outcome: Outcome) -> None:
    assert outcome.rc == 0 and outcome.error is None, outcome.err


def assert_absent(path: Path) -> None:
    """Nothing at ``path`` and no temp sibling of it (``.<name>*``) left behind."""
    assert not os.path.lexists(path), f"{path} was left behind"
    if path.parent.is_dir():
        prefix = f".{path.name}"
        leftovers = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(prefix))
        assert leftovers == [], leftovers


def lock_data(
    artifacts: Sequence[Artifact],
    *,
    files: Mapping[str, Path] | None = None,
    nar_hash: str | None = None,
) -> dict[str, Any]:
    """A wheelhouse lock with one target (the running Python) choosing ``artifacts``.

    The target's NAR hash is ``nar_hash``, else computed from ``files`` (name -> local bytes).
    """
    by_version: dict[tuple[str, str], list[Artifact]] = {}
    for art in artifacts:
        by_version.setdefault((art.package, art.version), []).append(art)
    packages = []
    for (name, version), arts in sorted(by_version.items()):
        sdists = [a for a in arts if a.kind == "sdist"]
        packages.append(
            lockfile.package_entry(
                name,
                version,
                [a for a in arts if a.kind == "wheel"],
                sdists[0] if sdists else None,
            )
        )
    target: dict[str, Any] = {
        "name": TARGET.name,
        "python-version": TARGET.version_string,
        "marker": TARGET.marker,
        "artifacts": sorted(a.filename for a in artifacts),
    }
    if nar_hash is None and files is not None:
        nar_hash = nar.sri(nar.flat_directory_sha256(files))
    if nar_hash is not None:
        target["wheelhouse-nar-hash"] = nar_hash
    return {
        "lock-version": "1.0",
        "environments": [TARGET.marker],
        "requires-python": ">=" + TARGET.version_string,
        "created-by": "wheelhouse",
        "packages": packages,
        "tool": {"wheelhouse": {"lock-format": lockfile.TOOL_FORMAT, "targets": [target]}},
    }


def write_lock(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lockfile.render(data))
    return path


# --- a small valid lock, for tests that break one thing at a time ----------------------------

SHA_A = "a" * 64
SHA_B = "b" * 64
A_WHEEL = "alpha-1.0-py3-none-any.whl"
B_WHEEL = "beta-2.0-py3-none-any.whl"


def good_lock() -> dict[str, Any]:
    return {
        "lock-version": "1.0",
        "created-by": "wheelhouse",
        "packages": [
            {
                "name": "alpha",
                "version": "1.0",
                "wheels": [
                    {
                        "name": A_WHEEL,
                        "url": f"https://example.org/files/{A_WHEEL}",
                        "size": 10,
                        "hashes": {"sha256": SHA_A},
                    }
                ],
            },
            {
                "name": "beta",
                "version": "2.0",
                "wheels": [
                    {"name": B_WHEEL, "path": f"wheels/{B_WHEEL}", "hashes": {"sha256": SHA_B}}
                ],
            },
        ],
        "tool": {
            "wheelhouse": {
                "lock-format": 1,
                "targets": [
                    {
                        "name": TARGET.name,
                        "python-version": TARGET.version_string,
                        "marker": TARGET.marker,
                        "artifacts": [A_WHEEL, B_WHEEL],
                        "wheelhouse-nar-hash": "sha256-" + "A" * 43 + "=",
                    }
                ],
            }
        },
    }
