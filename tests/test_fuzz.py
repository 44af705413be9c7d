"""Fuzzing the archive readers: mutated wheels through ``wheelhouse install``, mutated sdists
through what ``wheelhouse lock`` and ``build-sdists`` call on them, mutated locks through
``install``.

Every mutated archive must end in success, or in exactly one ``error: ...`` line and a non-zero
exit code: never a traceback, never a raw control character on the terminal, and nothing left
at the destination (no prefix, no staging directory, nothing written outside it).

Mutations: byte flips and truncations of the archive; member names changed in place (both
headers, and RECORD when it is stored uncompressed) or in the central directory alone; RECORD
lines dropped, duplicated, edited or replaced by garbage; zip header fields (sizes, CRC, offsets,
flags, method, mode) in the central directory and in local headers; for tar sdists, the same on
the uncompressed tar stream. The base archives are built on the fly (tests/wheelmaker.py,
tests/sdistmaker.py), plus one real wheel where the interpreter bundles one (ensurepip).

Bounded for CI: a fixed number of examples per test, no deadline, most examples in-process
(``cli.main`` with captured stderr; the install workers are real processes), and a small sample
through a real ``python -m wheelhouse`` process.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from contract import lock_data, run_module, write_lock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdistmaker import make_sdist
from wheelmaker import artifact_for, make_wheel, rewrite_central_directory

from wheelhouse import cli, sdist
from wheelhouse.errors import WheelhouseError

FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# --- base archives -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    name: str
    data: bytes
    filename: str
    rebuild: Callable[[str], bytes] | None = None
    """Build the same wheel with this RECORD text (for RECORD line mutations)."""


def _wheel_spec(compression: int) -> dict[str, Any]:
    return {
        "files": {
            "pkg/__init__.py": "from pkg.m import x\n",
            "pkg/m.py": "x = 1\n" * 20,
            "pkg/data.txt": "some data\n",
        },
        "entry_points": {"console_scripts": {"pkg": "pkg.m:main"}},
        "data": {"scripts": {"tool": "#!python\nprint(1)\n"}, "data": {"share/pkg/x": "x"}},
        "compression": compression,
    }


def _built(directory: Path, compression: int, record: str | None = None) -> bytes:
    path = make_wheel(directory, "pkg", "1.0", record=record, **_wheel_spec(compression))
    data = path.read_bytes()
    path.unlink()
    return data


def _record_of(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read("pkg-1.0.dist-info/RECORD").decode()


def _real_wheel() -> Path | None:
    """A wheel as a real build tool made it: the setuptools wheel ensurepip bundles."""
    try:
        import ensurepip
    except ImportError:
        return None
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    return next(iter(sorted(bundled.glob("setuptools-*.whl"))), None)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Base]:
    work = tmp_path_factory.mktemp("bases")
    bases = []
    for label, method in (("stored", zipfile.ZIP_STORED), ("deflated", zipfile.ZIP_DEFLATED)):
        bases.append(
            Base(
                label,
                _built(work, method),
                "pkg-1.0-py3-none-any.whl",
                lambda record, method=method: _built(work, method, record),  # type: ignore[misc]
            )
        )
    return bases


@pytest.fixture(scope="module")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> list[Base]:
    work = tmp_path_factory.mktemp("sdists")
    pyproject = {"build-system": {"requires": ["setuptools>=61"], "build-backend": "x.y"}}
    files = {"pkg/__init__.py": "X = 1\n", "pkg/sub/m.py": "Y = 2\n", "README": "hi\n"}
    bases = []
    for fmt in ("tar.gz", "zip"):
        path = make_sdist(work, "pkg", "1.0", files, pyproject=pyproject, fmt=fmt)
        bases.append(Base(fmt, path.read_bytes(), path.name))
    return bases


# --- mutations -----------------------------------------------------------------------------------

NAME_CHARS = st.sampled_from(["/", ".", "..", "\\", "\x00", "\n", "\r", "\x1b", "é", "a", " ", ""])
U16 = st.one_of(st.sampled_from([0, 1, 0xFFFF]), st.integers(0, 0xFFFF))
U32 = st.one_of(st.sampled_from([0, 1, 0xFFFFFFFF, 0x7FFFFFFF]), st.integers(0, 0xFFFFFFFF))
U64 = st.one_of(st.sampled_from([2**32, 2**63 - 1, 2**64 - 1]), st.integers(0, 2**64 - 1))


def flip(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        # half the flips land in the last 600 bytes: the central directory and end records
        tail = draw(st.booleans())
        low = max(0, len(out) - 600) if tail else 0
        pos = draw(st.integers(low, len(out) - 1))
        out[pos] ^= draw(st.integers(1, 255))
    return bytes(out)


def truncate(draw: st.DrawFn, data: bytes) -> bytes:
    start = draw(st.integers(0, len(data) - 1))
    if draw(st.booleans()):
        return data[:start]
    end = draw(st.integers(start, min(len(data), start + 200)))
    return data[:start] + data[end:]


def _names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist()


def rename_in_place(draw: st.DrawFn, data: bytes) -> bytes:
    """Change one character of a member's name everywhere its bytes appear (both headers, and
    RECORD where it is stored uncompressed): same length, so every offset still holds."""
    names = [n for n in _names(data) if len(n.encode()) > 1]
    name = draw(st.sampled_from(names)).encode()
    pos = draw(st.integers(0, len(name) - 1))
    char = draw(st.sampled_from([b"/", b".", b"\\", b"\x00", b"\n", b"\x1b", b"\xff", b"_"]))
    return data.replace(name, name[:pos] + char + name[pos + 1 :])


def _rewrite(data: bytes, edit: Callable[[zipfile.ZipInfo], None]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "w.zip")
        path.write_bytes(data)
        rewrite_central_directory(path, edit)
        return path.read_bytes()


def central_field(draw: st.DrawFn, data: bytes) -> bytes:
    """One field of one member's central directory record (zip64 where it needs it)."""
    names = _names(data)
    target = draw(st.sampled_from(names))
    field = draw(
        st.sampled_from(
            ["file_size", "compress_size", "CRC", "header_offset", "flag_bits",
             "compress_type", "external_attr", "create_system", "filename"]
        )
    )  # fmt: skip
    if field in ("file_size", "compress_size", "header_offset"):
        value: Any = draw(st.one_of(U32, U64))
    elif field in ("CRC", "external_attr"):
        value = draw(U32)
    elif field == "filename":
        value = target + draw(NAME_CHARS) if draw(st.booleans()) else draw(NAME_CHARS)
    elif field == "create_system":
        value = draw(st.integers(0, 255))
    else:
        value = draw(U16)

    def edit(info: zipfile.ZipInfo) -> None:
        if info.filename == target:
            setattr(info, field, value)
            if field == "flag_bits":
                info.flag_bits &= ~0x08  # zipfile cannot write a data descriptor flag itself

    return _rewrite(data, edit)


_LOCAL_FIELDS = {  # offset in the local header, struct format
    "version": (4, "<H"),
    "flags": (6, "<H"),
    "method": (8, "<H"),
    "crc": (14, "<L"),
    "csize": (18, "<L"),
    "size": (22, "<L"),
    "name_length": (26, "<H"),
    "extra_length": (28, "<H"),
}


def local_field(draw: st.DrawFn, data: bytes) -> bytes:
    headers = []
    pos = data.find(b"PK\x03\x04")
    while pos >= 0:
        headers.append(pos)
        pos = data.find(b"PK\x03\x04", pos + 1)
    header = draw(st.sampled_from(headers))
    offset, fmt = _LOCAL_FIELDS[draw(st.sampled_from(sorted(_LOCAL_FIELDS)))]
    value = draw(U16 if fmt == "<H" else U32)
    out = bytearray(data)
    struct.pack_into(fmt, out, header + offset, value)
    return bytes(out)


def record_line(draw: st.DrawFn, base: Base) -> bytes:
    assert base.rebuild is not None
    lines = _record_of(base.data).splitlines(keepends=True)
    i = draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(["drop", "duplicate", "edit", "garbage", "swap-hash"]))
    if how == "drop":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    elif how == "swap-hash":
        j = draw(st.integers(0, len(lines) - 1))
        a, b = lines[i].split(","), lines[j].split(",")
        if len(a) == len(b) == 3:
            a[1], b[1] = b[1], a[1]
            lines[i], lines[j] = ",".join(a), ",".join(b)
    else:
        text = draw(
            st.one_of(
                st.text(max_size=40),
                st.sampled_from(["\r", '"', '"a\nb"', "\x00", ",,,,", "x" * 140_000, "sha256=",
                                 "md5=abc", "-1", "1e9", "sha256=" + "A" * 43]),
            )
        )  # fmt: skip
        if how == "garbage":
            lines.insert(i, text + "\n")
        else:
            fields = lines[i].rstrip("\n").split(",")
            fields[draw(st.integers(0, len(fields) - 1))] = text
            lines[i] = ",".join(fields) + "\n"
    return base.rebuild("".join(lines))


@st.composite
def mutated_wheel(draw: st.DrawFn, bases: list[Base]) -> tuple[str, bytes]:
    base = draw(st.sampled_from(bases))
    how = draw(
        st.sampled_from(["flip", "truncate", "rename", "central", "local", "record", "twice"])
    )
    data = base.data
    if how == "flip":
        data = flip(draw, data)
    elif how == "truncate":
        data = truncate(draw, data)
    elif how == "rename":
        data = rename_in_place(draw, data)
    elif how == "central":
        data = central_field(draw, data)
    elif how == "local":
        data = local_field(draw, data)
    elif how == "record" and base.rebuild is not None:
        data = record_line(draw, base)
    else:  # two structural mutations on top of each other
        data = local_field(draw, central_field(draw, data))
    return base.filename, data


# --- running and checking ------------------------------------------------------------------------


def _check_output(rc: int, err: str) -> None:
    """The contract: success (warnings allowed), or one ``error:`` line; nothing raw."""
    assert "Traceback" not in err, err
    assert "\x1b" not in err and "\r" not in err, err
    if rc == 0:
        assert all(line.startswith("warning: ") for line in err.splitlines()), err
    else:
        assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err


def _check_destination(rc: int, out: Path, prefix: Path) -> None:
    listing = sorted(os.listdir(out))
    if rc == 0:
        assert listing == [prefix.name] and prefix.is_dir(), listing
    else:
        assert listing == [], listing  # no prefix, no staging directory


@contextlib.contextmanager
def _lock_for(filename: str, data: bytes) -> Iterator[tuple[Path, Path, Path]]:
    """A wheelhouse holding ``data`` as ``filename``, a lock pinning its sha256, and an empty
    directory for the prefix."""
    with tempfile.TemporaryDirectory(prefix="wheelhouse-fuzz-") as tmp:
        wheelhouse = Path(tmp, "wh")
        wheelhouse.mkdir()
        wheel = wheelhouse / filename
        wheel.write_bytes(data)
        lock = write_lock(Path(tmp, "pylock.toml"), lock_data([artifact_for(wheel)]))
        out = Path(tmp, "out")
        out.mkdir()
        yield lock, wheelhouse, out


def _install_in_process(filename: str, data: bytes, *extra: str) -> None:
    with _lock_for(filename, data) as (lock, wheelhouse, out):
        prefix = out / "env"
        stderr, stdout = io.StringIO(), io.StringIO()
        argv = ["install", str(lock), "-w", str(wheelhouse), "--prefix", str(prefix), "-j", "1"]
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            rc = cli.main([*argv, *extra])  # any other exception fails the test, as it should
        _check_output(rc, stderr.getvalue())
        assert stdout.getvalue() == ""
        _check_destination(rc, out, prefix)


@given(data=st.data())
@settings(FUZZ, max_examples=100)
def test_mutated_wheels_install_or_fail_in_one_line(
    wheels: list[Base], data: st.DataObject
) -> None:
    filename, mutated = data.draw(mutated_wheel(wheels))
    _install_in_process(filename, mutated)


@given(data=st.data())
@settings(FUZZ, max_examples=6)
def test_mutated_wheels_through_a_real_process(wheels: list[Base], data: st.DataObject) -> None:
    """The same contract where nothing catches what cli.main lets through: the interpreter's own
    traceback printing, and stdout/stderr as the process writes them."""
    filename, mutated = data.draw(mutated_wheel(wheels))
    with _lock_for(filename, mutated) as (lock, wheelhouse, out):
        prefix = out / "env"
        proc = run_module("install", lock, "-w", wheelhouse, "--prefix", prefix, "-j", "1")
        _check_output(proc.returncode, proc.stderr)
        assert proc.stdout == ""
        _check_destination(proc.returncode, out, prefix)


REAL_WHEEL = _real_wheel()


@pytest.mark.skipif(REAL_WHEEL is None, reason="this Python bundles no wheel (no ensurepip)")
@given(data=st.data())
@settings(FUZZ, max_examples=15)
def test_mutated_real_wheel(data: st.DataObject) -> None:
    assert REAL_WHEEL is not None
    base = REAL_WHEEL.read_bytes()
    how = data.draw(st.sampled_from(["flip", "truncate", "central", "local"]))
    mutate = {"flip": flip, "truncate": truncate, "central": central_field, "local": local_field}
    mutated = mutate[how](data.draw, base)
    _install_in_process(REAL_WHEEL.name, mutated, "--no-compile")


# --- sdists --------------------------------------------------------------------------------------


def _tar_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Mutate the tar stream inside the gzip, so the tar parser (not gzip's CRC) meets it."""
    tar = gzip.decompress(data)
    how = draw(st.sampled_from(["flip", "truncate", "rename"]))
    if how == "flip":
        tar = flip(draw, tar)
    elif how == "truncate":
        tar = truncate(draw, tar)
    else:
        name = draw(st.sampled_from([b"pkg/__init__.py", b"pkg/sub", b"pyproject.toml", b"pkg-1"]))
        char = draw(st.sampled_from([b"/", b".", b"\x00", b"\n", b"\x1b", b"\xff"]))
        pos = draw(st.integers(0, len(name) - 1))
        tar = tar.replace(name, name[:pos] + char + name[pos + 1 :])
    return gzip.compress(tar, mtime=0)


@st.composite
def mutated_sdist(draw: st.DrawFn, bases: list[Base]) -> tuple[str, bytes]:
    base = draw(st.sampled_from(bases))
    data = base.data
    if base.name == "zip":
        how = draw(st.sampled_from(["flip", "truncate", "rename", "central", "local"]))
        mutate = {
            "flip": flip, "truncate": truncate, "rename": rename_in_place,
            "central": central_field, "local": local_field,
        }  # fmt: skip
        data = mutate[how](draw, data)
    elif draw(st.booleans()):
        data = _tar_mutation(draw, data)
    else:
        data = draw(st.sampled_from([flip, truncate]))(draw, data)
    return base.filename, data


def _one_error(call: Callable[[], object]) -> None:
    """``call`` succeeds or raises a WheelhouseError that prints as one clean line."""
    try:
        call()
    except WheelhouseError as exc:
        line = cli.printable(exc.message)
        assert "\n" not in line and "\x1b" not in line and "\r" not in line, line


@given(data=st.data())
@settings(FUZZ, max_examples=200)
def test_mutated_sdists_are_read_or_refused_in_one_line(
    sdists: list[Base], data: st.DataObject
) -> None:
    """What ``lock`` (``read_build_system``) and ``build-sdists`` (``extract``) do with an sdist
    before any of its code runs: a result or one error, and extraction writes only below its
    destination."""
    filename, mutated = data.draw(mutated_sdist(sdists))
    with tempfile.TemporaryDirectory(prefix="wheelhouse-fuzz-") as tmp:
        path = Path(tmp, filename)
        path.write_bytes(mutated)
        canary = Path(tmp, "canary")
        canary.write_text("untouched\n")
        _one_error(lambda: sdist.inspect(path))
        _one_error(lambda: sdist.read_build_system(path))
        dest = Path(tmp, "work", "src")
        dest.parent.mkdir()
        _one_error(lambda: sdist.extract(path, dest))
        assert sorted(os.listdir(tmp)) == sorted([filename, "canary", "work"])
        assert os.listdir(Path(tmp, "work")) in ([], ["src"])
        assert canary.read_text() == "untouched\n"
        inside = os.path.realpath(dest)
        for root, dirs, files in os.walk(Path(tmp, "work")):
            for name in dirs + files:
                real = os.path.realpath(os.path.join(root, name))
                assert real == inside or real.startswith(inside + os.sep), real
        shutil.rmtree(Path(tmp, "work"))


# --- locks ---------------------------------------------------------------------------------------

VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=30),
    st.sampled_from(["", "1.0", "../x", "/etc/passwd", "https://[::1", "sha256-x", "\n", "a b"]),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in a lock document, tables and arrays included."""
    children = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in children:
        yield (*at, key)
        if isinstance(value, (dict, list)):
            yield from _paths(value, (*at, key))


@given(data=st.data())
@settings(FUZZ, max_examples=150)
def test_mutated_locks_are_read_or_refused_in_one_line(data: st.DataObject) -> None:
    """Any value of any type at any key of a valid lock (or the key removed): ``install`` reads
    it or refuses it in one line, before touching anything."""
    import tomli_w
    from contract import good_lock

    lock = good_lock()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(lock))))
        parent = lock
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(VALUES)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-fuzz-") as tmp:
        lock_file = Path(tmp, "pylock.toml")
        lock_file.write_text(tomli_w.dumps(lock))
        out = Path(tmp, "out")
        out.mkdir()
        stderr = io.StringIO()
        argv = ["install", str(lock_file), "-w", tmp, "--prefix", str(out / "env")]
        with contextlib.redirect_stderr(stderr):
            rc = cli.main(argv)
        _check_output(rc, stderr.getvalue())
        _check_destination(rc, out, out / "env")
