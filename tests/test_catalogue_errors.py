"""Catalogue, inputs that used to end in a Python traceback: each now gives one ``error:`` line
naming the file (and member) and what to do, a non-zero exit, and nothing at the destination.

Bad wheels run through ``wheelhouse install`` with a lock pinning their exact bytes (so the
wheel's own validation must catch them, as in tests/test_catalogue_install.py); the other cases
are the command line itself (``-j 0``), the prefix, the target interpreter, memory exhaustion,
and names holding control characters that must not forge lines on the terminal.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from contract import (
    A_WHEEL,
    ROOT,
    Outcome,
    assert_absent,
    assert_error,
    assert_error_line,
    assert_ok,
    good_lock,
    lock_data,
    run_cli,
    write_lock,
)
from sdistmaker import make_sdist
from test_catalogue_install import setup as wheelhouse_for
from wheelmaker import (
    artifact_for,
    corrupt_member,
    make_wheel,
    record_hash,
    rewrite_central_directory,
)

from wheelhouse import cli, install, sdist
from wheelhouse.errors import (
    BuildError,
    ConflictError,
    InstallError,
    LockError,
    NarError,
    RecordError,
    UnsafePathError,
    UsageError,
    WheelhouseError,
    escape,
)

Maker = Callable[[Path], Path]
NEAR_2_64 = 2**64 - 2
MODULE = {"pkg/__init__.py": "", "pkg/m.py": "x = 1\n" * 100}


def _record_with(line: str) -> str:
    """A RECORD that lists the wheel's files correctly and then has ``line``."""
    return (
        "pkg/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
        + line
        + "pkg-1.0.dist-info/RECORD,,\n"
    )


def _edited(method: int, change: Callable[[zipfile.ZipInfo], None]) -> Maker:
    """``pkg/m.py``'s central directory record changed by ``change``."""

    def make(d: Path) -> Path:
        wheel = make_wheel(d, "pkg", "1.0", MODULE, compression=method)

        def edit(info: zipfile.ZipInfo) -> None:
            if info.filename == "pkg/m.py":
                change(info)

        rewrite_central_directory(wheel, edit)
        return wheel

    return make


def _huge(method: int) -> Maker:
    """A member whose central directory (zip64 extra field) declares a size near 2**64."""
    return _edited(method, lambda info: setattr(info, "file_size", NEAR_2_64))


def _corrupt(method: int, at: int) -> Maker:
    def make(d: Path) -> Path:
        wheel = make_wheel(d, "pkg", "1.0", MODULE, compression=method)
        corrupt_member(wheel, "pkg/m.py", at=at)
        return wheel

    return make


WHEELS: dict[str, tuple[Maker, type[WheelhouseError], tuple[str, ...]]] = {
    "record-bare-cr": (
        lambda d: make_wheel(d, "pkg", "1.0", record=_record_with('pkg/x\r"y,sha256=a,1\n')),
        RecordError,
        ("pkg-1.0.dist-info/RECORD line", "not valid CSV", "rebuild"),
    ),
    "record-oversized-field": (
        lambda d: make_wheel(d, "pkg", "1.0", record=_record_with(f"pkg/{'x' * 200_000},,\n")),
        RecordError,
        ("pkg-1.0.dist-info/RECORD line 2", "field limit", "rebuild"),
    ),
    "zip64-size-near-2**64-deflate": (
        _huge(zipfile.ZIP_DEFLATED),
        InstallError,
        ("'pkg/m.py'", f"declares {NEAR_2_64} bytes", "fetch it again"),
    ),
    "zip64-size-near-2**64-bzip2": (
        _huge(zipfile.ZIP_BZIP2),
        InstallError,
        ("'pkg/m.py'", f"declares {NEAR_2_64} bytes", "decompression bomb"),
    ),
    "zip64-size-near-2**64-stored": (
        _huge(zipfile.ZIP_STORED),
        InstallError,
        ("'pkg/m.py'", "stored uncompressed", "fetch it again"),
    ),
    "encrypted-member": (
        _edited(zipfile.ZIP_STORED, lambda info: setattr(info, "flag_bits", info.flag_bits | 1)),
        InstallError,
        ("'pkg/m.py'", "is encrypted", "fetch it again"),
    ),
    "lzma-corrupt": (
        _corrupt(zipfile.ZIP_LZMA, 4),  # the LZMA properties: the stream itself is invalid
        InstallError,
        ("'pkg/m.py'", "cannot be decompressed", "LZMAError", "fetch it again"),
    ),
    "lzma-crc": (
        _corrupt(zipfile.ZIP_LZMA, 10),
        InstallError,
        ("'pkg/m.py'", "cannot be decompressed", "fetch it again"),
    ),
    "bz2-corrupt": (
        _corrupt(zipfile.ZIP_BZIP2, 0),
        InstallError,
        ("'pkg/m.py'", "cannot be decompressed", "Invalid data stream"),
    ),
    "dist-info-name-not-the-wheel's": (
        lambda d: make_wheel(
            d, "other", "1.0", filename="pkg-1.0-py3-none-any.whl", metadata={"Name": "pkg"}
        ),
        InstallError,
        ("'other-1.0.dist-info'", "pkg 1.0", "'pkg-1.0.dist-info'", "rebuild"),
    ),
    "dist-info-version-not-the-wheel's": (
        lambda d: make_wheel(
            d, "pkg", "2.0", filename="pkg-1.0-py3-none-any.whl", metadata={"Version": "1.0"}
        ),
        InstallError,
        ("'pkg-2.0.dist-info'", "pkg 1.0"),
    ),
}


def _prefix(tmp_path: Path) -> Path:
    return tmp_path / "out" / "env"


def _install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, wheels: list[Path], *extra: str | Path
) -> tuple[Outcome, Path]:
    lock, wheelhouse = wheelhouse_for(tmp_path, wheels)
    prefix = _prefix(tmp_path)
    outcome = run_cli(
        capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix, *extra
    )
    return outcome, prefix


@pytest.mark.parametrize("case", sorted(WHEELS))
def test_bad_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    make, error, needles = WHEELS[case]
    wheel = make(tmp_path / "wh")
    outcome, prefix = _install(capsys, tmp_path, [wheel])
    assert_error(outcome, error, wheel.name, *needles)
    assert_absent(prefix)
    assert not prefix.parent.exists() or os.listdir(prefix.parent) == []


def test_dist_info_is_compared_normalized(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``Foo_Bar-1.0.0.dist-info`` is the lock's ``foo-bar 1.0`` (names normalized, versions
    compared as PEP 440), as old and new wheel builders spell it."""
    wheel = make_wheel(tmp_path / "wh", "Foo.Bar", "1.0.0", filename="foo_bar-1.0-py3-none-any.whl")
    outcome, prefix = _install(capsys, tmp_path, [wheel])
    assert_ok(outcome)
    site = next(prefix.glob("lib/python*/site-packages"))
    assert (site / "Foo_Bar-1.0.0.dist-info" / "METADATA").is_file()


def test_built_wheel_with_another_dist_info_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--built`` wheels never met pip: the directory importlib.metadata reads is checked too."""
    sdist = tmp_path / "wh" / "pkg-1.0.tar.gz"
    sdist.parent.mkdir()
    sdist.write_bytes(b"not read: the built wheel replaces it")
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(sdist)]))
    built = make_wheel(
        tmp_path / "built", "impostor", "1.0", filename="pkg-1.0-cp311-cp311-linux_x86_64.whl",
        metadata={"Name": "pkg"},
    )  # fmt: skip
    prefix = _prefix(tmp_path)
    outcome = run_cli(
        capsys, "install", lock, "--wheelhouse", sdist.parent, "--prefix", prefix,
        "--built", built.parent,
    )  # fmt: skip
    assert_error(outcome, InstallError, built.name, "'impostor-1.0.dist-info'", "pkg 1.0")
    assert_absent(prefix)


def test_built_wheel_that_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist_file = tmp_path / "wh" / "pkg-1.0.tar.gz"
    sdist_file.parent.mkdir()
    sdist_file.write_bytes(b"not read")
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(sdist_file)]))
    (tmp_path / "built" / "pkg-1.0-py3-none-any.whl").mkdir(parents=True)
    prefix = _prefix(tmp_path)
    outcome = run_cli(
        capsys, "install", lock, "--wheelhouse", sdist_file.parent, "--prefix", prefix,
        "--built", tmp_path / "built",
    )  # fmt: skip
    assert_error(outcome, InstallError, sdist_file.name, "has no wheel of it", "build-sdists")
    assert_absent(prefix)


def test_unparsable_entry_points_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(
        tmp_path / "wh", "pkg", "1.0",
        {"pkg/__init__.py": "", "pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\nbad\n"},
    )  # fmt: skip
    outcome, prefix = _install(capsys, tmp_path, [wheel])
    assert_error(outcome, InstallError, wheel.name, "entry_points.txt", "line 2", "rebuild")
    assert_absent(prefix)


# --- memory ------------------------------------------------------------------------------------

BOMB_SIZE = 512 << 20
MEMORY_LIMIT = 256 << 20
"""Enough for wheelhouse and its workers (they need well under 200 MiB), not for the bomb."""


def _bomb(directory: Path) -> Path:
    """A valid wheel with a 512 MiB member of zeros (deflated to 0.5 MB), with an honest RECORD:
    only memory stops it. Written as a stream, so the test does not hold it in memory."""
    chunk = bytes(1 << 20)
    digest = hashlib.sha256()
    for _ in range(BOMB_SIZE >> 20):
        digest.update(chunk)
    bomb_hash = base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
    small = {
        "pkg/__init__.py": b"",
        "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\n",
        "pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
    }
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in small.items())
    record += f"pkg/zeros.bin,sha256={bomb_hash},{BOMB_SIZE}\npkg-1.0.dist-info/RECORD,,\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in small.items():
            zf.writestr(name, data)
        with zf.open("pkg/zeros.bin", "w") as out:
            for _ in range(BOMB_SIZE >> 20):
                out.write(chunk)
        zf.writestr("pkg-1.0.dist-info/RECORD", record)
    return wheel


def _limit_memory() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_decompression_bomb_under_a_memory_limit(tmp_path: Path) -> None:
    """MemoryError in the worker becomes one line naming the member, in a real process under
    RLIMIT_AS (as ``ulimit -v`` or a container limit would set it)."""
    wheel = _bomb(tmp_path / "wh")
    assert wheel.stat().st_size < BOMB_SIZE // 100
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(wheel)]))
    prefix = _prefix(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "wheelhouse", "install", str(lock), "--wheelhouse",
         str(wheel.parent), "--prefix", str(prefix), "-j", "1"],
        capture_output=True, text=True, env=env, preexec_fn=_limit_memory, timeout=300,
        check=False,
    )  # fmt: skip
    assert_error_line(
        proc.returncode, proc.stderr, 1, wheel.name, "'pkg/zeros.bin'", str(BOMB_SIZE), "memory"
    )
    assert_absent(prefix)


# --- the command line --------------------------------------------------------------------------


def _argv_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    err = capsys.readouterr().err
    code = info.value.code
    assert isinstance(code, int)
    return assert_error_line(code, err, UsageError.exit_code, *(argv[:1]))


@pytest.mark.parametrize("value", ["0", "-1", "two"])
@pytest.mark.parametrize(
    "argv",
    [
        ["fetch", "pylock.toml", "-d", "wh"],
        ["install", "pylock.toml", "-w", "wh", "--prefix", "env"],
        ["build-sdists", "pylock.toml", "-w", "wh", "-o", "out"],
        ["lock", "requests"],
    ],
    ids=lambda argv: argv[0],
)
def test_jobs_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], value: str
) -> None:
    os.chdir(tmp_path)
    message = _argv_error(capsys, *argv, "-j", value)
    assert "--jobs/-j" in message and repr(value) in message and "--help" in message
    assert os.listdir(tmp_path) == []


def test_a_bad_command_line_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's usage block and ``prog: error:`` become our one line."""
    message = _argv_error(capsys, "install", "pylock.toml")
    assert "the following arguments are required: --prefix" in message


# --- the prefix --------------------------------------------------------------------------------


def test_prefix_below_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("mine\n")
    for prefix in (blocker / "env", blocker / "a" / "b" / "env"):
        lock, wheelhouse = wheelhouse_for(tmp_path, [])
        outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
        assert_error(outcome, InstallError, str(prefix), f"{blocker} is not a directory")
    assert blocker.read_text() == "mine\n"


@contextlib.contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    """``directory`` made unwritable for this user, root included (chattr +i: even root gets
    EPERM), undone afterwards."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: no way to make a directory unwritable")
    made = subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"running as root on a filesystem without chattr +i: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


def test_prefix_in_an_unwritable_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, wheelhouse = wheelhouse_for(tmp_path, [])
    locked = tmp_path / "locked"
    locked.mkdir()
    with _unwritable(locked):
        for prefix in (locked / "env", locked / "deeper" / "env"):
            outcome = run_cli(
                capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix
            )
            assert_error(outcome, InstallError, str(prefix), "choose a --prefix")
        assert os.listdir(locked) == []


def test_prefix_on_a_filesystem_that_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/proc accepts no new directory, whoever asks: the failure comes from mkdtemp itself."""
    lock, wheelhouse = wheelhouse_for(tmp_path, [])
    prefix = Path("/proc/wheelhouse-test-env")
    outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix)
    assert_error(outcome, InstallError, str(prefix), "choose a --prefix")


def test_replace_does_not_remove_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock, wheelhouse = wheelhouse_for(tmp_path, [])
    for prefix in (tmp_path / "file", tmp_path / "link"):
        (tmp_path / "file").write_text("mine\n")
        if prefix.name == "link":
            (tmp_path / "target").mkdir()
            prefix.symlink_to("target")
        outcome = run_cli(
            capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix, "--replace"
        )
        assert_error(outcome, InstallError, str(prefix), "not a directory", "remove it yourself")
    assert (tmp_path / "file").read_text() == "mine\n"
    assert os.readlink(tmp_path / "link") == "target" and os.listdir(tmp_path / "target") == []
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


# --- the target interpreter --------------------------------------------------------------------


def _script(tmp_path: Path, name: str, text: str, mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


PYTHONS: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "/bin/true": (lambda _: "/bin/true", ("exited with status 0 without an answer",)),
    "/bin/false": (lambda _: "/bin/false", ("exited with status 1",)),
    "prints garbage": (
        lambda t: str(_script(t, "garbage", "#!/bin/sh\necho 'error: forged'\necho oops >&2\n")),
        ("answered 'error: forged'",),
    ),
    "echoes its input": (
        lambda t: str(_script(t, "echo", "#!/bin/sh\nexec cat\n")),
        ("(expected 'hello')",),
    ),
    "says something else in JSON": (
        lambda t: str(_script(t, "json", "#!/bin/sh\necho '{\"hello\": 42}'\n")),
        ("introduced itself as",),
    ),
    "sends an unknown error kind": (
        lambda t: str(_script(t, "kind", '#!/bin/sh\necho \'{"error": {"kind": "Boom"}}\'\n')),
        ("answered",),
    ),
    "crashes": (
        lambda t: str(_script(t, "crash", "#!/bin/sh\nkill -SEGV $$\n")),
        ("killed by SIGSEGV (signal 11)", "try --no-compile"),
    ),
    "not executable": (
        lambda t: str(_script(t, "plain", "print('hi')\n", 0o644)),
        ("does not exist or is not executable",),
    ),
    "a directory": (lambda t: str(t), ("does not exist or is not executable",)),
}


@pytest.mark.parametrize("case", sorted(PYTHONS))
def test_python_that_is_not_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, needles = PYTHONS[case]
    python = make(tmp_path)
    wheel = make_wheel(tmp_path / "wh", "pkg", "1.0")
    outcome, prefix = _install(capsys, tmp_path, [wheel], "--python", python)
    assert_error(outcome, InstallError, python, *needles)
    assert_absent(prefix)


def test_python_that_never_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program that reads its input and says nothing: install stops waiting for it."""
    monkeypatch.setattr(install, "HELLO_TIMEOUT", 1.0)
    python = str(_script(tmp_path, "mute", "#!/bin/sh\nexec sleep 30\n"))
    wheel = make_wheel(tmp_path / "wh", "pkg", "1.0")
    outcome, prefix = _install(capsys, tmp_path, [wheel], "--python", python, "-j", "1")
    assert_error(outcome, InstallError, python, "did not answer within 1 s")
    assert_absent(prefix)


# --- names holding control characters ----------------------------------------------------------

FORGED = "pkg/x\nerror: forged\r\x1b[2K\x1b[31m.py"


def _one_clean_line(err: str, kind: str) -> None:
    """``err`` is one ``kind:`` line in which the forged name shows, with nothing raw in it."""
    assert err.count("\n") == 1 and err.startswith(f"{kind}: "), err
    assert "\x1b" not in err and "\r" not in err, err
    assert "forged" in err, err


def test_a_warning_cannot_forge_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A member name holding a newline, a CR and ANSI escapes, in a module that is not valid
    Python: the warning naming it (or the refusal of such a name) stays on its own line."""
    wheel = make_wheel(tmp_path / "wh", "pkg", "1.0", {"pkg/__init__.py": "", FORGED: "(\n"})
    outcome, prefix = _install(capsys, tmp_path, [wheel])
    if outcome.rc == 0:
        _one_clean_line(outcome.err, "warning")
        assert (next(prefix.glob("lib/python*/site-packages")) / FORGED).is_file()
    else:  # wheels whose names hold control characters may be refused outright
        assert_error(outcome, UnsafePathError, wheel.name)
        _one_clean_line(outcome.err, "error")
        assert_absent(prefix)


def test_an_error_cannot_forge_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Conflict messages name the destination path as it is: cli escapes it when printing."""
    wheels = [
        make_wheel(tmp_path / "wh", "aaa", "1.0", {FORGED: "X = 1\n"}),
        make_wheel(tmp_path / "wh", "bbb", "1.0", {FORGED: "X = 2\n"}),
    ]
    outcome, prefix = _install(capsys, tmp_path, wheels)
    assert outcome.error in (ConflictError, UnsafePathError), outcome.err
    assert_error_line(outcome.rc, outcome.err, 1, "-1.0-py3-none-any.whl")
    _one_clean_line(outcome.err, "error")
    assert_absent(prefix)


def test_escape() -> None:
    assert escape("a\nb\rc\td\x1b[0m\x00\x7f\x9b\u2028\u202e") == (
        "a\\nb\\rc\\td\\x1b[0m\\x00\\x7f\\x9b\\u2028\\u202e"
    )
    plain = "ünïcødé names, 'quotes' and back\\slashes stay"
    assert escape(plain) == plain


def test_quoted_backend_output_keeps_its_lines_but_nothing_else() -> None:
    message = "building pkg: failed; the backend's last 2 lines of output:\n  | one\n  | two\x1b[1m"
    assert cli.printable(message) == message.replace("\x1b", "\\x1b")
    assert cli.printable("x\nerror: forged") == "x\\nerror: forged"


# --- other inputs that used to crash -----------------------------------------------------------


def test_lock_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_cli(capsys, "install", tmp_path, "-w", tmp_path, "--prefix", tmp_path / "env")
    assert_error(outcome, LockError, str(tmp_path), "cannot read it", "give the path")
    assert_absent(tmp_path / "env")


def test_overrides_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock, wheelhouse = wheelhouse_for(tmp_path, [])
    outcome = run_cli(
        capsys, "build-sdists", lock, "-w", wheelhouse, "-o", tmp_path / "out",
        "--overrides", tmp_path,
    )  # fmt: skip
    assert_error(outcome, UsageError, str(tmp_path), "cannot read it", "give a JSON file")
    assert_absent(tmp_path / "out")


def test_build_output_below_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock, wheelhouse = wheelhouse_for(tmp_path, [])
    blocker = tmp_path / "file"
    blocker.write_text("mine\n")
    outcome = run_cli(capsys, "build-sdists", lock, "-w", wheelhouse, "-o", blocker / "out")
    assert_error(outcome, UsageError, str(blocker), "choose another --output")
    assert blocker.read_text() == "mine\n"


def test_nar_hash_of_a_name_too_long(capsys: pytest.CaptureFixture[str]) -> None:
    """``Path.exists`` raises for ENAMETOOLONG (it only swallows "no such file")."""
    outcome = run_cli(capsys, "nar-hash", "x" * 300)
    assert_error(outcome, UsageError, "x" * 300, "no such file")


def test_nar_hash_error_names_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "a\nerror: forged"
    os.mkfifo(fifo)
    outcome = run_cli(capsys, "nar-hash", tmp_path)
    assert_error(outcome, NarError, "fifo", "forged")


def _wheel_entry(data: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = data["packages"][0]["wheels"][0]
    return entry


LOCKS: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    "url-bad-ipv6": (
        lambda d: _wheel_entry(d).update(url="https://[::1/files/a.whl"),
        ("'https://[::1/files/a.whl' is not valid", "Invalid IPv6 URL"),
    ),
    "url-bad-port": (
        lambda d: _wheel_entry(d).update(url="https://example.org:99999/a.whl"),
        ("is not valid", "Port out of range"),
    ),
    "negative-size": (lambda d: _wheel_entry(d).update(size=-5), ("size -5 is negative",)),
}


@pytest.mark.parametrize("command", ["fetch", "install"])
@pytest.mark.parametrize("case", sorted(LOCKS))
def test_bad_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    edit, needles = LOCKS[case]
    data = good_lock()
    edit(data)
    lock = write_lock(tmp_path / "pylock.toml", data)
    dest = tmp_path / "out" / "dest"
    if command == "fetch":
        outcome = run_cli(capsys, "fetch", lock, "-d", dest)
    else:
        outcome = run_cli(capsys, "install", lock, "-w", tmp_path, "--prefix", dest)
    assert_error(outcome, LockError, str(lock), A_WHEEL, *needles)
    assert_absent(dest)


# --- sdists the fuzz test found -----------------------------------------------------------------


def _sdist_with(tmp_path: Path, edit: Callable[[zipfile.ZipInfo], None]) -> Path:
    path = make_sdist(tmp_path, "pkg", "1.0", fmt="zip")
    rewrite_central_directory(path, edit)
    return path


def test_sdist_member_with_an_empty_name(tmp_path: Path) -> None:
    """zipfile's ``is_dir()`` raises IndexError for an empty name: what lock reads first."""

    def edit(info: zipfile.ZipInfo) -> None:
        if info.filename.endswith("__init__.py"):
            info.filename = ""

    path = _sdist_with(tmp_path, edit)
    with contextlib.suppress(BuildError, UnsafePathError):
        sdist.inspect(path)
        sdist.read_build_system(path)


@pytest.mark.parametrize(
    ("flag", "needle"), [(0x1, "encrypted"), (0x20, "compressed patched data")]
)
def test_sdist_member_zipfile_cannot_read(tmp_path: Path, flag: int, needle: str) -> None:
    """An encrypted or "patched data" member: zipfile raises RuntimeError/NotImplementedError
    while extracting (build-sdists); one BuildError naming the sdist instead."""

    def edit(info: zipfile.ZipInfo) -> None:
        if info.filename.endswith("__init__.py"):
            info.flag_bits |= flag

    path = _sdist_with(tmp_path, edit)
    with pytest.raises(BuildError) as info:
        sdist.extract(path, tmp_path / "src")
    message = cli.printable(info.value.message)
    assert path.name in message and needle in message and "\n" not in message
    assert "fetch it again" in message


def test_wheelhouse_name_too_long(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock, _wheelhouse = wheelhouse_for(tmp_path, [])
    prefix = _prefix(tmp_path)
    outcome = run_cli(capsys, "install", lock, "-w", tmp_path / ("x" * 300), "--prefix", prefix)
    assert_error(outcome, InstallError, "fine-1.0-py3-none-any.whl", "not in the wheelhouse")
    assert_absent(prefix)


def test_extra_site_packages_with_a_line_break(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .pth file is read line by line: the path must reach sys.path whole, not as two entries
    (or as an ``import`` line of its own)."""
    extra = tmp_path / "a\nimport os" / "site-packages"
    extra.mkdir(parents=True)
    outcome, prefix = _install(capsys, tmp_path, [], "--extra-site-packages", extra)
    assert_ok(outcome)
    python = prefix / "bin" / "python"
    shown = subprocess.run(
        [python, "-c", "import sys; print(repr(sys.path))"], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert repr(str(extra)) in shown


# --- lock inputs ---------------------------------------------------------------------------------

PROJECTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "dependencies-not-an-array": (
        '[project]\nname = "p"\ndependencies = 5\n',
        (),
        ("[project] dependencies must be an array of strings, got 5",),
    ),
    "optional-dependencies-not-an-array": (
        '[project]\nname = "p"\n[project.optional-dependencies]\nx = "a"\n',
        ("--extra", "x"),
        ("optional dependencies 'x' must be an array",),
    ),
    "project-not-a-table": ("project = 5\n", (), ("[project] must be a table",)),
    "group-not-an-array": (
        '[project]\nname = "p"\n[dependency-groups]\ng = 5\n',
        ("--group", "g"),
        ("dependency group 'g' must be an array, got 5",),
    ),
    "groups-not-a-table": ("dependency-groups = 5\n", ("--group", "g"), ("must be a table",)),
}


@pytest.mark.parametrize("case", sorted(PROJECTS))
def test_bad_project_table(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    text, args, needles = PROJECTS[case]
    (tmp_path / "pyproject.toml").write_text(text)
    output = tmp_path / "pylock.toml"
    outcome = run_cli(capsys, "lock", "--project", tmp_path, *args, "-o", output)
    assert_error(outcome, UsageError, str(tmp_path / "pyproject.toml"), *needles)
    assert_absent(output)


@pytest.mark.parametrize(
    ("option", "url", "needle"),
    [
        ("--index-url", "https://[::1/simple", "Invalid IPv6 URL"),
        ("--extra-index-url", "https://example.org:99999/simple", "Port out of range"),
        ("--find-links", "https://[example.org/links", "Invalid IPv6 URL"),
    ],
)
def test_unparsable_index_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, url: str, needle: str
) -> None:
    output = tmp_path / "pylock.toml"
    outcome = run_cli(capsys, "lock", "pkg", option, url, "-o", output)
    assert_error(outcome, UsageError, repr(url), needle, "fix the URL")
    assert_absent(output)


def test_out_of_memory_in_wheelhouse_itself(tmp_path: Path) -> None:
    """A MemoryError outside the install workers (here: reading a 1 GiB lock file, sparse, under
    a 256 MiB RLIMIT_AS) is one line too, not a traceback."""
    lock = tmp_path / "pylock.toml"
    with lock.open("wb") as f:
        f.truncate(1 << 30)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "wheelhouse", "fetch", str(lock), "-d", str(tmp_path / "wh")],
        capture_output=True, text=True, env=env, preexec_fn=_limit_memory, timeout=120,
        check=False,
    )  # fmt: skip
    assert_error_line(proc.returncode, proc.stderr, 1, "wheelhouse fetch", "out of memory")
    assert_absent(tmp_path / "wh")


def test_output_to_a_closed_pipe(tmp_path: Path) -> None:
    """``wheelhouse nar-hash . | head -0``: no traceback, the shell's SIGPIPE exit status."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before we write: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "wheelhouse", "nar-hash", str(tmp_path)],
            stdout=write, stderr=subprocess.PIPE, text=True, check=False,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 141, proc.stderr


@pytest.mark.parametrize("command", ["lock", "install"])
@pytest.mark.parametrize("kind", ["a file", "pyproject.toml is a directory", "not UTF-8"])
def test_unreadable_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, kind: str
) -> None:
    project = tmp_path / "proj"
    if kind == "a file":
        project.write_text("x\n")
        needle = "no pyproject.toml"
    elif kind == "pyproject.toml is a directory":
        (project / "pyproject.toml").mkdir(parents=True)
        needle = "cannot read it"
    else:
        project.mkdir()
        (project / "pyproject.toml").write_bytes(b'[project]\nname = "\xff"\n')
        needle = "not valid TOML"
    out = tmp_path / "out"
    if command == "lock":
        outcome = run_cli(capsys, "lock", "--project", project, "-o", out)
    else:
        outcome = run_cli(capsys, "install", "--prefix", out, "--editable", project)
    assert_error(outcome, UsageError, str(project), needle)
    assert_absent(out)


EDITABLE: dict[str, tuple[str, str]] = {
    "name-not-valid": ('name = "p j"\nversion = "1"\n', "name 'p j' is not a valid name"),
    "version-not-pep-440": (
        'name = "pj"\nversion = "one"\n',
        "version 'one' is not a PEP 440 version",
    ),
    "dependencies-not-an-array": (
        'name = "pj"\nversion = "1"\ndependencies = 5\n',
        "dependencies must be an array of strings",
    ),
    "script-not-a-string": (
        'name = "pj"\nversion = "1"\n[project.scripts]\nx = 5\n',
        "[project.scripts] must be a table of strings",
    ),
    "entry-points-not-a-table": (
        'name = "pj"\nversion = "1"\nentry-points = 5\n',
        "[project.entry-points] must be a table",
    ),
    "requires-python-not-a-string": (
        'name = "pj"\nversion = "1"\nrequires-python = 3\n',
        "requires-python must be a string",
    ),
}


@pytest.mark.parametrize("case", sorted(EDITABLE))
def test_bad_editable_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    body, needle = EDITABLE[case]
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\n" + body)
    prefix = _prefix(tmp_path)
    outcome = run_cli(capsys, "install", "--prefix", prefix, "--editable", project)
    assert_error(outcome, UsageError, str(project / "pyproject.toml"), needle)
    assert_absent(prefix)


def test_editable_root_with_a_line_break(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The editable wheel's .pth lists the root on one line: a line break would add another."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "pj"\nversion = "1"\n')
    prefix = _prefix(tmp_path)
    root = "/src\nimport os"
    outcome = run_cli(
        capsys, "install", "--prefix", prefix, "--editable", project, "--editable-root", root
    )
    assert_error(outcome, UsageError, repr(root), "line break")
    assert_absent(prefix)
