"""Catalogue, NAR: what cannot be a Nix store path, and NAR hashes that cannot be read, give one
clear error through the CLI (``wheelhouse nar-hash``, and ``fetch`` checking the lock's hash).

The serialisation itself is tested against nix-hash/nix-store in tests/test_nar.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import require
from contract import assert_absent, assert_error, assert_ok, lock_data, run_cli, write_lock
from wheelmaker import artifact_for, make_wheel

from wheelhouse.errors import LockError, NarError, UsageError


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_cli(capsys, "nar-hash", tmp_path / "nope")
    assert_error(outcome, UsageError, str(tmp_path / "nope"), "no such file")
    assert outcome.rc == 2 and outcome.out == ""


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_special_file_cannot_be_archived(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "ok.txt").write_text("fine\n")
    special = tree / "sub" / "special"
    if kind == "fifo":
        os.mkfifo(special)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(special))
        sock.close()
    outcome = run_cli(capsys, "nar-hash", tree)
    assert_error(outcome, NarError, str(special), f"it is a {kind}", "remove it")
    assert outcome.out == ""


def test_nar_hash_prints_what_nix_hash_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    os.symlink("a", tree / "link")
    outcome = run_cli(capsys, "nar-hash", tree)
    assert_ok(outcome)
    expected = subprocess.run(
        [require("nix-hash"), "--type", "sha256", "--base32", str(tree)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert outcome.out == expected and outcome.err == ""
    sri = run_cli(capsys, "nar-hash", tree, "--sri")
    assert sri.out.startswith("sha256-") and sri.out.endswith("=\n")


@pytest.mark.parametrize("bad", ["sha256-x", "sha512-AAAA", "md5:0123", "0" * 63])
def test_malformed_wheelhouse_hash_in_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    wheel = make_wheel(tmp_path / "wheels", "pkg", "1.0")
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(wheel)], nar_hash=bad))
    dest = tmp_path / "wh"
    outcome = run_cli(capsys, "fetch", lock, "-d", dest)
    assert_error(outcome, LockError, str(lock), "wheelhouse-nar-hash", repr(bad), "regenerate")
    assert_absent(dest)  # checked before anything is fetched
