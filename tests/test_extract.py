"""Adversarial archives against the one safe extraction (``wheelhouse/_safefs.py``).

Every archive here is built on the fly (``tests/sdistmaker.py``, ``tests/wheelmaker.py``) to
write a canary file outside the extraction root if anything follows it; every test asserts the
canary is untouched (not modified, nothing created next to it). Zip and tar sdists go through
``sdist.read_build_system`` (what ``lock`` reads) and ``sdist.extract`` (what ``lock`` and
``build-sdists`` extract), wheels through ``install``'s worker. The acceptance cases run the CLI
in a real process, on this venv's Python and on Debian's ``/usr/bin/python3`` (3.11.2, without
tarfile's ``data`` filter): a symlink-chain sdist (CVE-2025-4517) at ``lock --no-binary`` and
in ``build-sdists`` ends in exactly one ``error:`` line.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, ROOT
from indexserver import IndexServer
from sdistmaker import (
    RawMember,
    make_backend_wheel,
    make_sdist,
    swap_locked_file,
    symlink_chain,
    tiny_pyproject,
)
from wheelmaker import Member, artifact_for, make_wheel

from wheelhouse import _safefs, sdist
from wheelhouse.errors import BuildError, InstallError, UnsafePathError
from wheelhouse.install import install_env

FORMATS = ["tar.gz", "zip"]
TOP = "demo-1.0"
PWNED = b"PWNED by the archive\n"


@dataclass(frozen=True)
class Canary:
    """A file outside every extraction root, and what it held before the test."""

    dir: Path
    file: Path
    content: bytes
    mtime_ns: int

    def assert_untouched(self) -> None:
        assert sorted(p.name for p in self.dir.iterdir()) == [self.file.name]
        assert self.file.read_bytes() == self.content
        assert self.file.stat().st_mtime_ns == self.mtime_ns


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    where = tmp_path / "outside"
    where.mkdir()
    file = where / "canary"
    file.write_bytes(b"untouched\n")
    return Canary(where, file, b"untouched\n", file.stat().st_mtime_ns)


def climb(target: Path) -> str:
    """A relative path from anywhere below / to ``target`` (enough ``..`` to reach /)."""
    return "../" * 40 + str(target).lstrip("/")


# Each case: members after the sdist's own, the formats it applies to (a zip has no hardlinks
# and no pax headers), and what the error says.
Case = Callable[[Canary], Sequence[RawMember]]
CASES: dict[str, tuple[Case, Sequence[str], str]] = {
    "symlink-chain": (
        lambda c: [
            *symlink_chain(TOP, str(c.dir)),
            RawMember(f"{TOP}/escape/canary", data=PWNED),
        ],
        FORMATS,
        "would be written through the symlink member",
    ),
    "symlink-chain-real-paths": (
        lambda c: symlink_chain(TOP, str(c.dir), through=False),
        FORMATS,
        "leads outside the archive (following the archive's own symlinks)",
    ),
    "symlink-then-file": (
        lambda c: [
            RawMember(f"{TOP}/link", tarfile.SYMTYPE, linkname=climb(c.dir)),
            RawMember(f"{TOP}/link/canary", data=PWNED),
        ],
        FORMATS,
        "would be written through the symlink member 'demo-1.0/link'",
    ),
    "symlink-inside-then-file": (
        lambda c: [
            RawMember(f"{TOP}/sub", tarfile.DIRTYPE, mode=0o755),
            RawMember(f"{TOP}/alias", tarfile.SYMTYPE, linkname="sub"),
            RawMember(f"{TOP}/alias/x.py", data=b""),
        ],
        FORMATS,
        "would be written through the symlink member 'demo-1.0/alias'",
    ),
    "symlink-loop": (
        lambda c: [
            RawMember(f"{TOP}/a", tarfile.SYMTYPE, linkname="b"),
            RawMember(f"{TOP}/b", tarfile.SYMTYPE, linkname="a"),
        ],
        FORMATS,
        "is a chain of more than 40 symlinks",
    ),
    "symlink-absolute": (
        lambda c: [RawMember(f"{TOP}/link", tarfile.SYMTYPE, linkname=str(c.file))],
        FORMATS,
        "is a symlink to the absolute path",
    ),
    "hardlink-to-symlink": (
        lambda c: [
            RawMember(f"{TOP}/s", tarfile.SYMTYPE, linkname=climb(c.file)),
            RawMember(f"{TOP}/h", tarfile.LNKTYPE, linkname=f"{TOP}/s"),
        ],
        ["tar.gz"],
        "is a hardlink to 'demo-1.0/s', which is a symlink",
    ),
    "hardlink-to-missing": (
        lambda c: [RawMember(f"{TOP}/h", tarfile.LNKTYPE, linkname=f"{TOP}/nothing")],
        ["tar.gz"],
        "which is not a member before it",
    ),
    "hardlink-to-later-file": (
        lambda c: [
            RawMember(f"{TOP}/h", tarfile.LNKTYPE, linkname=f"{TOP}/later"),
            RawMember(f"{TOP}/later", data=b"x"),
        ],
        ["tar.gz"],
        "which is not a member before it",
    ),
    "hardlink-outside": (
        lambda c: [RawMember(f"{TOP}/h", tarfile.LNKTYPE, linkname=str(c.file))],
        ["tar.gz"],
        "outside the archive",
    ),
    "pax-path": (
        lambda c: [
            RawMember(f"{TOP}/innocent.txt", data=PWNED, pax={"path": f"{TOP}/{climb(c.file)}"})
        ],
        ["tar.gz"],
        "contains a '..' component",
    ),
    "pax-linkpath": (
        lambda c: [
            RawMember(
                f"{TOP}/link", tarfile.SYMTYPE, linkname="ok", pax={"linkpath": climb(c.dir)}
            ),
            RawMember(f"{TOP}/link/canary", data=PWNED),
        ],
        ["tar.gz"],
        "would be written through the symlink member",
    ),
    "file-then-dir": (
        lambda c: [
            RawMember(f"{TOP}/x", data=b"x"),
            RawMember(f"{TOP}/x", tarfile.DIRTYPE, mode=0o755),
        ],
        FORMATS,
        "is listed twice in the archive (a file, then a directory)",
    ),
    "dir-then-file": (
        lambda c: [
            RawMember(f"{TOP}/x", tarfile.DIRTYPE, mode=0o755),
            RawMember(f"{TOP}/x", data=b"x"),
        ],
        FORMATS,
        "is listed twice in the archive (a directory, then a file)",
    ),
    "file-then-file-below-it": (
        lambda c: [RawMember(f"{TOP}/x", data=b"x"), RawMember(f"{TOP}/x/y", data=b"y")],
        FORMATS,
        "needs a directory where the archive has 'demo-1.0/x', a file",
    ),
    "file-below-then-file": (
        lambda c: [RawMember(f"{TOP}/x/y", data=b"y"), RawMember(f"{TOP}/x", data=b"x")],
        FORMATS,
        "is a file but the archive has members below it ('demo-1.0/x/y')",
    ),
    "same-file-twice": (
        lambda c: [RawMember(f"{TOP}/f", data=b"x"), RawMember(f"{TOP}/f", data=b"x")],
        FORMATS,
        "is listed twice in the archive (a file, then a file)",
    ),
    "same-symlink-twice": (
        lambda c: [
            RawMember(f"{TOP}/l", tarfile.SYMTYPE, linkname="PKG-INFO"),
            RawMember(f"{TOP}/l", tarfile.SYMTYPE, linkname="PKG-INFO"),
        ],
        FORMATS,
        "is listed twice in the archive (a symlink, then a symlink)",
    ),
    "file-then-symlink": (
        lambda c: [
            RawMember(f"{TOP}/f", data=b"x"),
            RawMember(f"{TOP}/f", tarfile.SYMTYPE, linkname=climb(c.file)),
        ],
        FORMATS,
        "is listed twice in the archive (a file, then a symlink)",
    ),
    "dot-slash-duplicate": (
        lambda c: [RawMember(f"{TOP}/f", data=b"x"), RawMember(f"./{TOP}//f", data=b"y")],
        FORMATS,
        "is listed twice in the archive",
    ),
    "empty-name": (
        lambda c: [RawMember("", data=PWNED)],
        FORMATS,
        "is a file with an empty name",
    ),
    "absolute": (
        lambda c: [RawMember(str(c.file), data=PWNED)],
        FORMATS,
        "is an absolute path",
    ),
    "dotdot": (
        lambda c: [RawMember(f"{TOP}/{climb(c.file)}", data=PWNED)],
        FORMATS,
        "contains a '..' component",
    ),
    "char-device": (
        lambda c: [RawMember(f"{TOP}/null", tarfile.CHRTYPE)],
        FORMATS,
        "is a device file or FIFO",
    ),
    "block-device": (
        lambda c: [RawMember(f"{TOP}/disk", tarfile.BLKTYPE)],
        FORMATS,
        "is a device file or FIFO",
    ),
    "fifo": (
        lambda c: [RawMember(f"{TOP}/fifo", tarfile.FIFOTYPE)],
        FORMATS,
        "is a device file or FIFO",
    ),
}
PARAMS = [(case, fmt) for case, (_m, fmts, _w) in sorted(CASES.items()) for fmt in fmts]


def bad_sdist(directory: Path, canary: Canary, case: str, fmt: str, name: str = "demo") -> Path:
    members, _fmts, _why = CASES[case]
    raw = [
        RawMember(m.name.replace(TOP, f"{name}-1.0", 1), m.type, m.data, m.linkname, m.mode, m.pax)
        for m in members(canary)
    ]
    return make_sdist(
        directory, name, "1.0", pyproject=tiny_pyproject(name, "1.0"), raw=raw, fmt=fmt
    )


@pytest.mark.parametrize(("case", "fmt"), PARAMS)
def test_unsafe_sdist_is_refused_before_anything_is_written(
    tmp_path: Path, canary: Canary, case: str, fmt: str
) -> None:
    why = CASES[case][2]
    path = bad_sdist(tmp_path, canary, case, fmt)
    for action in (sdist.inspect, sdist.read_build_system):
        with pytest.raises(UnsafePathError) as info:
            action(path)
        message = str(info.value)
        assert message.startswith(f"demo-1.0.{fmt}: member "), message
        assert why in message, message
        assert "\n" not in message
    dest = tmp_path / "out"
    with pytest.raises(UnsafePathError) as info:
        sdist.extract(path, dest)
    assert why in str(info.value)
    assert not dest.exists() or list(dest.iterdir()) == []
    canary.assert_untouched()


def test_the_symlink_chain_escapes_a_naive_extractor(tmp_path: Path, canary: Canary) -> None:
    """Control: the chain archive is a real attack. Extracted with nothing but ``os`` calls that
    follow links (what any extractor that trusts a realpath check ends up doing), it overwrites
    the canary; so the tests above would see it if our extraction followed links."""
    root = tmp_path / "naive"
    root.mkdir()
    for member in [*symlink_chain(TOP, str(canary.dir)), RawMember(f"{TOP}/escape/canary")]:
        path = os.path.join(root, member.name)
        if member.type == tarfile.DIRTYPE:
            os.makedirs(path, exist_ok=True)
        elif member.type == tarfile.SYMTYPE:
            os.symlink(member.linkname, path)
        else:
            Path(path).write_bytes(PWNED)
    assert canary.file.read_bytes() == PWNED


@pytest.mark.parametrize("fmt", FORMATS)
def test_member_names_are_printed_escaped(tmp_path: Path, fmt: str) -> None:
    """A name holding a newline and ANSI escapes cannot forge an ``error:`` line."""
    name = f"{TOP}/../\nerror: all is fine\x1b[2K\x1b[1A\u202e.py"
    path = make_sdist(tmp_path, "demo", "1.0", raw=[RawMember(name, data=b"")], fmt=fmt)
    with pytest.raises(UnsafePathError) as info:
        sdist.read_build_system(path)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "\u202e" not in message
    assert "'demo-1.0/../\\nerror: all is fine\\x1b[2K\\x1b[1A\\u202e.py'" in message


def test_identical_directory_entries_are_harmless(tmp_path: Path) -> None:
    """The one duplicate accepted: a directory listed again (tar often lists parents), and the
    extraction directory itself (``tar -C dir .`` lists ``./``)."""
    raw = [RawMember(f"{TOP}/demo", tarfile.DIRTYPE, mode=0o755)] * 2
    raw += [RawMember("./", tarfile.DIRTYPE, mode=0o755), RawMember(".", tarfile.DIRTYPE)]
    for fmt in FORMATS:
        path = make_sdist(tmp_path, "demo", "1.0", raw=raw, fmt=fmt)
        source = sdist.extract(path, tmp_path / fmt)
        assert (source / "demo" / "__init__.py").read_text() == "VERSION = '1.0'\n"


def test_links_inside_the_tree_are_extracted_as_links(tmp_path: Path) -> None:
    raw = [
        RawMember(f"{TOP}/pkg/alias.py", tarfile.SYMTYPE, linkname="../demo/__init__.py"),
        RawMember(f"{TOP}/up", tarfile.SYMTYPE, linkname=".."),  # the root itself: inside
        RawMember(f"{TOP}/chain", tarfile.SYMTYPE, linkname="pkg/alias.py"),
        RawMember(f"{TOP}/hard.py", tarfile.LNKTYPE, linkname=f"./{TOP}//demo/__init__.py"),
        RawMember(f"{TOP}/dangling", tarfile.SYMTYPE, linkname="nothing/here"),
    ]
    for fmt in FORMATS:
        members = raw if fmt == "tar.gz" else raw[:-2] + raw[-1:]
        source = sdist.extract(
            make_sdist(tmp_path, "demo", "1.0", raw=members, fmt=fmt), tmp_path / fmt
        )
        assert (source / "chain").read_text() == "VERSION = '1.0'\n"
        assert os.readlink(source / "pkg" / "alias.py") == "../demo/__init__.py"
        assert os.readlink(source / "dangling") == "nothing/here"
        if fmt == "tar.gz":
            hard = source / "hard.py"
            assert hard.read_text() == "VERSION = '1.0'\n" and not hard.is_symlink()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_name_too_long_for_the_file_system_is_a_clear_error(tmp_path: Path, fmt: str) -> None:
    path = make_sdist(tmp_path, "demo", "1.0", {"x" * 300: ""}, fmt=fmt)
    with pytest.raises(BuildError) as info:
        sdist.extract(path, tmp_path / "out")
    assert f"demo-1.0.{fmt}: cannot extract member 'demo-1.0/{'x' * 300}'" in str(info.value)
    assert "this file system cannot hold it" in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_member_data_is_a_read_error(tmp_path: Path, fmt: str) -> None:
    """Damage in a member's data (a zip CRC found wrong while copying it, a truncated tar
    stream) is reported as the archive's, not as an error writing the extracted file."""
    path = make_sdist(tmp_path, "demo", "1.0", {"big.bin": os.urandom(1 << 16)}, fmt=fmt)
    data = bytearray(path.read_bytes())
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{TOP}/big.bin")
        data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF  # CRC no longer matches
    else:
        data = data[: len(data) * 2 // 3]  # the gzip stream ends inside big.bin
    path.write_bytes(bytes(data))
    with pytest.raises(BuildError, match=rf"demo-1.0.{fmt}: cannot read the sdist archive"):
        sdist.extract(path, tmp_path / "out")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_symlink_planted_on_disk_cannot_redirect_a_write(
    tmp_path: Path, canary: Canary, fmt: str
) -> None:
    """The second layer: writes go through O_NOFOLLOW directory fds, so a link that is not in
    the archive (planted by someone else meanwhile) fails the write instead of following it."""
    path = make_sdist(tmp_path, "demo", "1.0", fmt=fmt)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / TOP).symlink_to(canary.dir)
    with pytest.raises(UnsafePathError, match=r"a link or another file is in the way on disk"):
        sdist.extract(path, dest)
    canary.assert_untouched()


def test_tree_never_follows_links_on_disk(tmp_path: Path, canary: Canary) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "dir").symlink_to(canary.dir)
    (root / "file").symlink_to(canary.file)
    with _safefs.Tree(str(root)) as tree:
        for action in (
            lambda: tree.write("dir/canary", PWNED, 0o644),
            lambda: tree.write("dir/new", PWNED, 0o644),
            lambda: tree.write("file", PWNED, 0o644),
            lambda: tree.mkdir("dir/sub"),
            lambda: tree.symlink("dir/l", "x"),
        ):
            with pytest.raises(OSError) as info:
                action()
            assert info.value.errno in _safefs.BLOCKED
        with pytest.raises(ValueError, match="not a normalized path"):
            tree.write("a/../b", b"", 0o644)
        tree.write("a/b/c", b"ok", 0o644)
    assert (root / "a" / "b" / "c").read_bytes() == b"ok"
    canary.assert_untouched()
    assert errno.ELOOP in _safefs.BLOCKED


def test_check_entries_follows_chains_lexically() -> None:
    E = _safefs.Entry
    links = {"t/a": "b/c", "t/b": "x", "t/x/c": "../../.."}
    assert _safefs.resolve_link("t/l", "a", links) is None  # t/a -> t/x/c -> ../../.. : out
    assert _safefs.resolve_link("t/l", "b/../b", links) == "t/x"
    assert _safefs.resolve_link("t/d/l", "../..", {}) == ""  # the extraction root: inside
    checked = _safefs.check_entries(
        [E("t/", "dir"), E("./t/f", "file"), E("t/h", "hardlink", "t/f")]
    )
    assert [norm for _e, norm in checked] == ["t", "t/f", "t/h"]


# --- wheels (install's worker) -----------------------------------------------------------------


def install_bad_wheel(
    tmp_path: Path, extra: Sequence[Member], error: type[InstallError] = UnsafePathError
) -> str:
    wheel = make_wheel(tmp_path / "wheels", "evil", "1.0", extra_members=extra)
    prefix = tmp_path / "env"
    with pytest.raises(InstallError) as info:
        install_env([(artifact_for(wheel), wheel)], prefix)
    assert type(info.value) is error
    assert not prefix.exists()
    return str(info.value)


def test_wheel_symlink_chain_is_refused(tmp_path: Path, canary: Canary) -> None:
    chain = [
        Member.symlink(m.name, m.linkname)
        if m.type == tarfile.SYMTYPE
        else Member(m.name + "/" if m.type == tarfile.DIRTYPE else m.name, PWNED)
        for m in [*symlink_chain("evil", str(canary.dir)), RawMember("evil/escape/canary")]
    ]
    message = install_bad_wheel(tmp_path, chain)
    assert "is a symbolic link" in message
    canary.assert_untouched()


def test_wheel_with_the_same_symlink_twice_is_refused(tmp_path: Path, canary: Canary) -> None:
    link = Member.symlink("evil/l", climb(canary.file))
    message = install_bad_wheel(tmp_path, [link, link], InstallError)
    assert "member 'evil/l' more than once" in message
    canary.assert_untouched()


def test_wheel_member_name_with_control_characters_is_refused(tmp_path: Path) -> None:
    message = install_bad_wheel(tmp_path, [Member("evil/\nerror: forged\x1b[2K.py", b"")])
    assert "contains a control character" in message
    assert "'evil/\\nerror: forged\\x1b[2K.py'" in message
    assert "\n" not in message and "\x1b" not in message


# --- acceptance: the CLI, on this venv's Python and on Debian's /usr/bin/python3 --------------

PYTHONS = [
    pytest.param(sys.executable, id="venv"),
    pytest.param(
        HOST_PYTHON,
        id="usr-bin-python3",
        marks=pytest.mark.skipif(not Path(HOST_PYTHON).exists(), reason=f"needs {HOST_PYTHON}"),
    ),
]


def wheelhouse(
    python: str, *argv: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m wheelhouse argv`` in a real process. Another interpreter gets this checkout
    and this venv's pure-Python dependencies (pip, packaging, installer, ...) on PYTHONPATH."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])
    return subprocess.run(
        [python, "-m", "wheelhouse", *(str(a) for a in argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def sdist_index(root: Path, sdist_file: Callable[[Path], Path]) -> None:
    """app 1.0 as a wheel (what pip resolves with) and as the sdist ``sdist_file(root)`` makes
    (what --no-binary takes), built with tinybackend."""
    make_backend_wheel(root)
    make_wheel(root, "app", "1.0")
    sdist_file(root)


LOCK_CASES = [
    *(
        pytest.param(
            "symlink-chain", fmt, *py.values, id=f"symlink-chain-{fmt}-{py.id}", marks=py.marks
        )
        for fmt in FORMATS
        for py in PYTHONS
    ),
    # archives that ended in a traceback before (extraction at lock time, on this Python)
    pytest.param("hardlink-to-missing", "tar.gz", sys.executable, id="hardlink-to-missing"),
    *(
        pytest.param(case, fmt, sys.executable, id=f"{case}-{fmt}")
        for case in ("file-then-dir", "dir-then-file", "same-symlink-twice")
        for fmt in FORMATS
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("case", "fmt", "python"), LOCK_CASES)
def test_unsafe_sdist_at_lock_no_binary(
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    canary: Canary,
    case: str,
    fmt: str,
    python: str,
) -> None:
    """``lock --no-binary app`` reads the sdist (and would extract it to ask its backend) before
    any of its code runs: it refuses, and leaves no lock and no temp directory."""
    root = tmp_path / "files"
    root.mkdir()
    sdist_index(root, lambda d: bad_sdist(d, canary, case, fmt, name="app"))
    server = index_server_factory(root)
    out, tmp = tmp_path / "pylock.toml", tmp_path / "tmp"
    tmp.mkdir()
    proc = wheelhouse(
        python,
        "lock", "app", "--no-binary", "app", "--index-url", server.simple_url, "-o", out,
        env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    canary.assert_untouched()
    assert_one_error_line(proc, f"error: app-1.0.{fmt}: member ", CASES[case][2])
    assert not out.exists() and list(tmp.iterdir()) == []


@pytest.mark.integration
@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_symlink_chain_sdist_in_build_sdists(
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    canary: Canary,
    fmt: str,
    python: str,
) -> None:
    """A lock made with a harmless sdist, whose bytes (and hash in the lock) are then swapped for
    the chain's, as a hostile index would serve them on a later lock: build-sdists (with this
    interpreter as the build Python too) installs the build environment, then extracts, which
    must refuse."""
    root = tmp_path / "files"
    root.mkdir()
    pyproject = tiny_pyproject("app", "1.0")
    sdist_index(root, lambda d: make_sdist(d, "app", "1.0", pyproject=pyproject, fmt=fmt))
    server = index_server_factory(root)
    lock, wh = tmp_path / "pylock.toml", tmp_path / "wh"
    locked = wheelhouse(
        python, "lock", "app", "--no-binary", "app", "--index-url", server.simple_url, "-o", lock
    )
    assert locked.returncode == 0, locked.stderr
    assert wheelhouse(python, "fetch", lock, "-d", wh).returncode == 0
    name = f"app-1.0.{fmt}"
    evil = bad_sdist(tmp_path, canary, "symlink-chain", fmt, name="app")
    swap_locked_file(lock, wh / name, evil.read_bytes())
    out = tmp_path / "out"
    proc = wheelhouse(
        python, "build-sdists", lock, "-w", wh, "-o", out, "--python", python, "--jobs", "1"
    )
    canary.assert_untouched()
    assert_one_error_line(proc, f"error: {name}: member 'app-1.0/a/", "through the symlink member")
    assert not out.exists()
