"""Catalogue, install stage: every bad wheel gives one clear error through ``wheelhouse install``
and leaves no prefix (and no staging directory) behind; a good install is reproducible.

One case per failure mode of /work/shared/README.md ("Bad inputs and faults to try", Install).
``install_env`` itself is tested case by case in tests/test_install.py; here each wheel is put in
a wheelhouse with a lock that pins its exact bytes (so the lock's sha256 check passes and the
wheel's own validation must catch the problem), and the command runs as the Nix builder runs it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from contract import (
    assert_absent,
    assert_error,
    assert_error_line,
    assert_ok,
    lock_data,
    run_cli,
    run_module,
    write_lock,
)
from wheelmaker import Member, artifact_for, corrupt_member, make_wheel

from wheelhouse.errors import (
    ConflictError,
    HashMismatchError,
    InstallError,
    RecordError,
    UnsafePathError,
    WheelhouseError,
)

Maker = Callable[[Path], list[Path]]


def _files(**files: str) -> dict[str, bytes | str]:
    return {"pkg/__init__.py": "", **{f"pkg/{k}": v for k, v in files.items()}}


MODULE = _files(**{"m.py": "x = 1\n"})


CASES: dict[str, tuple[Maker, type[WheelhouseError], tuple[str, ...]]] = {
    "member-dotdot": (
        lambda d: [make_wheel(d, "pkg", "1.0", {"pkg/__init__.py": "", "../x.py": "x"})],
        UnsafePathError,
        ("'../x.py'", "'..'", "rebuild"),
    ),
    "member-absolute": (
        lambda d: [make_wheel(d, "pkg", "1.0", {"pkg/__init__.py": "", "/tmp/x.py": "x"})],
        UnsafePathError,
        ("'/tmp/x.py'", "absolute"),
    ),
    "data-scripts-dotdot": (
        lambda d: [make_wheel(d, "pkg", "1.0", _files(), data={"scripts": {"../../x": "x"}})],
        UnsafePathError,
        ("'pkg-1.0.data/scripts/../../x'",),
    ),
    "unknown-data-scheme": (
        lambda d: [make_wheel(d, "pkg", "1.0", _files(), data={"etc": {"passwd": "x"}})],
        InstallError,
        ("pkg-1.0.data/etc/passwd", "unknown .data scheme 'etc'", "rebuild"),
    ),
    "entry-point-dotdot": (
        lambda d: [
            make_wheel(d, "pkg", "1.0", entry_points={"console_scripts": {"../x": "pkg:main"}})
        ],
        UnsafePathError,
        ("'../x'", "entry_points.txt"),
    ),
    "byte-flipped-without-record-update": (
        lambda d: [make_wheel(d, "pkg", "1.0", MODULE, tamper={"pkg/m.py": b"x = 2\n"})],
        RecordError,
        ("'pkg/m.py'", "RECORD hash"),
    ),
    "member-missing-from-record": (
        lambda d: [make_wheel(d, "pkg", "1.0", extra_members=[Member("pkg/evil.py", b"1\n")])],
        RecordError,
        ("'pkg/evil.py'", "not listed in pkg-1.0.dist-info/RECORD"),
    ),
    "no-record": (
        lambda d: [make_wheel(d, "pkg", "1.0", record=False)],
        RecordError,
        ("pkg-1.0.dist-info/RECORD", "cannot be verified"),
    ),
    "symlink-member": (
        lambda d: [make_wheel(d, "pkg", "1.0", extra_members=[Member.symlink("pkg/l", "/etc")])],
        UnsafePathError,
        ("'pkg/l'", "symbolic link"),
    ),
    "member-name-with-a-terminal-escape": (
        lambda d: [make_wheel(d, "pkg", "1.0", _files(**{"\x1b[2K\x1b[1Aerror: ok.py": ""}))],
        UnsafePathError,
        ("'pkg/\\x1b[2K\\x1b[1Aerror: ok.py'", "control character"),
    ),
    "duplicate-zip-names": (
        lambda d: [make_wheel(d, "pkg", "1.0", extra_members=[Member("pkg/__init__.py", b"2")])],
        InstallError,
        ("'pkg/__init__.py'", "more than once"),
    ),
    "two-wheels-write-one-path": (
        lambda d: [
            make_wheel(d, "aaa", "1.0", {"shared/x.py": "X = 1\n"}),
            make_wheel(d, "bbb", "1.0", {"shared/x.py": "X = 2\n"}),
        ],
        ConflictError,
        ("aaa-1.0-py3-none-any.whl", "bbb-1.0-py3-none-any.whl", "shared/x.py"),
    ),
    "truncated-zip": (
        lambda d: [make_wheel(d, "pkg", "1.0", raw=lambda data: data[: len(data) * 2 // 3])],
        InstallError,
        ("zip", "fetch it again"),
    ),
    "crc-error": (
        lambda d: [_crc_broken(d)],
        InstallError,
        ("'pkg/m.py'", "fetch it again"),
    ),
    "metadata-name-not-the-lock's": (
        lambda d: [make_wheel(d, "pkg", "1.0", metadata={"Name": "other"})],
        InstallError,
        ("METADATA says Name 'other'", "'pkg'"),
    ),
    "metadata-version-not-the-lock's": (
        lambda d: [make_wheel(d, "pkg", "1.0", metadata={"Version": "6.6.6"})],
        InstallError,
        ("METADATA says Version '6.6.6'", "'1.0'"),
    ),
}


def _crc_broken(d: Path) -> Path:
    wheel = make_wheel(d, "pkg", "1.0", _files(**{"m.py": "x = 1\n" * 50}), compression=0)
    corrupt_member(wheel, "pkg/m.py")
    return wheel


def setup(tmp_path: Path, wheels: list[Path]) -> tuple[Path, Path]:
    """A wheelhouse holding ``wheels`` plus a good one, and a lock pinning their exact bytes."""
    wheelhouse = tmp_path / "wh"
    good = make_wheel(wheelhouse, "fine", "1.0")
    arts = [artifact_for(w) for w in [*wheels, good]]
    return write_lock(tmp_path / "pylock.toml", lock_data(arts)), wheelhouse


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    make, error, needles = CASES[case]
    wheels = make(tmp_path / "wh")
    lock, wheelhouse = setup(tmp_path, wheels)
    prefix = tmp_path / "out" / "env"
    outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
    message = assert_error(outcome, error, wheels[0].name, *needles)
    assert "\\n" not in message
    assert_absent(prefix)
    assert not prefix.parent.exists() or os.listdir(prefix.parent) == []


def test_bad_wheel_does_not_touch_an_existing_prefix_on_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, wheelhouse = setup(tmp_path, [])
    prefix = tmp_path / "env"
    assert_ok(run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix))
    before = tree_digest(prefix)
    wheels = CASES["member-dotdot"][0](tmp_path / "wh")
    lock, wheelhouse = setup(tmp_path, wheels)
    outcome = run_cli(
        capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix, "--replace"
    )
    assert_error(outcome, UnsafePathError, wheels[0].name)
    assert tree_digest(prefix) == before
    assert sorted(os.listdir(tmp_path)) == ["env", "pylock.toml", "wh"]


def test_wheel_changed_in_the_wheelhouse_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wheelhouse file no longer has the lock's sha256 (flipped after fetching)."""
    wheel = make_wheel(tmp_path / "wh", "pkg", "1.0")
    lock, wheelhouse = setup(tmp_path, [wheel])
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    prefix = tmp_path / "out" / "env"
    outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
    assert_error(outcome, HashMismatchError, wheel.name, "pkg 1.0", "wheelhouse fetch")
    assert_absent(prefix)


def test_wheel_missing_from_the_wheelhouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(tmp_path / "wh", "pkg", "1.0")
    lock, wheelhouse = setup(tmp_path, [wheel])
    wheel.unlink()
    prefix = tmp_path / "out" / "env"
    outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
    assert_error(outcome, InstallError, wheel.name, "not in the wheelhouse", "wheelhouse fetch")
    assert_absent(prefix)


def test_bad_wheel_through_a_real_process(tmp_path: Path) -> None:
    wheels = CASES["member-dotdot"][0](tmp_path / "wh")
    lock, wheelhouse = setup(tmp_path, wheels)
    prefix = tmp_path / "out" / "env"
    proc = run_module("install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
    assert_error_line(proc.returncode, proc.stderr, 1, wheels[0].name, "'../x.py'")
    assert proc.stdout == ""
    assert_absent(prefix)


# --- installing twice --------------------------------------------------------------------------


def tree_digest(root: Path) -> str:
    """Every path, type, mode and content below root (links by target)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames + links):
            path = Path(dirpath, name)
            info = path.lstat()
            h.update(f"{path.relative_to(root)}\0{info.st_mode:o}\0".encode())
            link = stat.S_ISLNK(info.st_mode)
            h.update(os.readlink(path).encode() if link else path.read_bytes())
    return h.hexdigest()


def test_installing_twice_gives_an_identical_tree(tmp_path: Path) -> None:
    wheels = [
        make_wheel(
            tmp_path / "wh",
            "app",
            "1.0",
            {"app/__init__.py": "SEEN = {1, 2, 'a', 'b'}\n", "app/cli.py": "def main(): pass\n"},
            entry_points={"console_scripts": {"app": "app.cli:main"}},
            data={"data": {"share/app/x.txt": "x\n"}, "scripts": {"tool": "#!python\n"}},
        ),
        make_wheel(tmp_path / "wh", "lib", "2.0", {"lib/__init__.py": "X = frozenset('abc')\n"}),
    ]
    lock, wheelhouse = setup(tmp_path, wheels)
    prefix = tmp_path / "env"
    digests = []
    for args in ([], ["--replace"], ["--replace", "-j", "1"]):
        proc = run_module("install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix, *args)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        digests.append(tree_digest(prefix))
    assert digests[0] == digests[1] == digests[2]
    assert sorted(os.listdir(tmp_path)) == ["env", "pylock.toml", "wh"]  # no staging dirs left
    assert (prefix / "bin" / "app").exists() and (prefix / "bin" / "tool").exists()


def test_existing_prefix_is_refused_without_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, wheelhouse = setup(tmp_path, [])
    prefix = tmp_path / "env"
    prefix.mkdir()
    (prefix / "keep").write_text("mine")
    outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
    assert_error(outcome, InstallError, str(prefix), "already exists", "remove it")
    assert os.listdir(prefix) == ["keep"]
