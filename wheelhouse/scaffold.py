"""``wheelhouse init``: a project's Nix files, from the templates the flake also offers.

The templates (``templates/project``) are the ones ``nix flake init -t`` copies; ``init`` fills
in what only it knows (where nixlib lives, the interpreter, how the project was locked), so a
new user goes from a ``pyproject.toml`` to ``nix-shell -A develop`` in two commands.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from wheelhouse.errors import UsageError

TEMPLATES = Path(__file__).with_name("templates") / "project"
_CHECKOUT = Path(__file__).resolve().parent.parent


def _nix_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def own_nixlib() -> Path:
    """nixlib beside this wheelhouse (a checkout); a tool without one must be told."""
    nixlib = _CHECKOUT / "nixlib"
    if not (nixlib / "default.nix").is_file():
        raise UsageError(
            f"no nixlib beside {_CHECKOUT}; pass --nixlib DIR (the nixlib directory of a "
            "wheelhouse checkout)"
        )
    return nixlib


def own_flake_url() -> str:
    if not (_CHECKOUT / "flake.nix").is_file():
        raise UsageError(
            f"no flake.nix beside {_CHECKOUT}; pass --wheelhouse-url URL (where wheelhouse's "
            "flake lives)"
        )
    return f"git+file://{_CHECKOUT}"


def lock_arguments(
    groups: Sequence[str], extras: Sequence[str], pythons: Sequence[str], versions: Sequence[str]
) -> str:
    """The options the lock was made with, for the comment telling how to re-lock."""
    words = [f"--group {g}" for g in groups] + [f"--extra {e}" for e in extras]
    words += [f"--python {shlex.quote(p)}" for p in pythons]
    words += [f"--python-version {v}" for v in versions]
    return " ".join(words)


def default_nix(nixlib: Path, python: str, lock_args: str) -> str:
    text = (TEMPLATES / "default.nix").read_text(encoding="utf-8")
    return (
        text.replace("@nixlib@", os.fspath(nixlib.absolute()))
        .replace('"@python@"', _nix_string(python))
        .replace(" @lock_args@", f" {lock_args}" if lock_args else "")
    )


def flake_nix(url: str) -> str:
    text = (TEMPLATES / "flake.nix").read_text(encoding="utf-8")
    return text.replace('"@wheelhouse_url@"', _nix_string(url))


def check_free(project: Path, files: Mapping[str, str], *, force: bool) -> None:
    """Refuse before locking, so that a refusal leaves nothing new behind."""
    taken = sorted(name for name in files if (project / name).exists())
    if taken and not force:
        raise UsageError(
            f"{project}: {', '.join(taken)} already exist; keep them, or pass --force to "
            "overwrite them"
        )


def write(project: Path, files: Mapping[str, str]) -> Iterable[Path]:
    written = []
    for name, text in files.items():
        path = project / name
        tmp = path.with_name(f".{name}.wheelhouse-tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
