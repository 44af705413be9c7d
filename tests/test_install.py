"""wheelhouse.install: one fresh venv from many wheels, validated, atomic, reproducible."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import marshal
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wheelmaker import Member, artifact_for, corrupt_member, make_wheel

from wheelhouse._install_protocol import Facts
from wheelhouse.errors import (
    ConflictError,
    HashMismatchError,
    InstallError,
    RecordError,
    UnsafePathError,
)
from wheelhouse.install import InstallReport, install_env
from wheelhouse.model import Artifact

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
SP = f"lib/python{PY}/site-packages"
DEBIAN_PYTHON = "/usr/bin/python3"


def pairs(*wheels: Path) -> list[tuple[Artifact, Path]]:
    return [(artifact_for(w), w) for w in wheels]


def install(prefix: Path, *wheels: Path, **kwargs: Any) -> InstallReport:
    return install_env(pairs(*wheels), prefix, **kwargs)


def run(prefix: Path, code: str) -> str:
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    return out.stdout.strip()


def tree_digest(root: Path) -> str:
    """Hash of every path, type, mode and content below root (links by target)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            info = path.lstat()
            h.update(f"{path.relative_to(root)}\0{info.st_mode:o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                h.update(path.read_bytes())
    return h.hexdigest()


def assert_nothing_left(prefix: Path) -> None:
    assert not os.path.lexists(prefix)
    if not prefix.parent.exists():
        return
    leftovers = [p.name for p in prefix.parent.iterdir() if p.name.startswith(f".{prefix.name}.")]
    assert leftovers == []


# --- happy paths -------------------------------------------------------------------------------


@pytest.fixture
def rich_wheel(tmp_path: Path) -> Path:
    return make_wheel(
        tmp_path / "wheels",
        "Rich.Pkg",
        "1.0",
        {
            "rich_pkg/__init__.py": "VALUE = 42\n",
            "rich_pkg/cli.py": "def main():\n    print('hello from cli')\n",
            "rich_pkg/skin.py": "## Script (Python) 'x'\nreturn context.foo()\n",
            "rich_pkg/data.txt": b"\x00\x01binary",
            "rich_pkg/run.sh": "#!/bin/sh\necho hi\n",
            "rich_ext.pth": "rich_extra\n",
            "rich_extra/hidden_mod.py": "HIDDEN = 'yes'\n",
        },
        executable=["rich_pkg/run.sh"],
        entry_points={
            "console_scripts": {"rich-cli": "rich_pkg.cli:main"},
            "gui_scripts": {"rich-gui": "rich_pkg.cli:main"},
            "rich.plugins": {"ignored": "rich_pkg:VALUE"},
        },
        data={
            "scripts": {"rich-tool": "#!python\nimport rich_pkg\nprint(rich_pkg.VALUE)\n"},
            "data": {"share/rich/readme.txt": "data file\n"},
            "headers": {"rich.h": "#define RICH 1\n"},
            "purelib": {"rich_pure.py": "PURE = 1\n"},
        },
    )


def test_install_everything_lands_and_works(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    report = install(prefix, rich_wheel)

    assert report.wheels == 1 and report.scripts == 2 and report.bytecode == 4
    cfg = (prefix / "pyvenv.cfg").read_text()
    assert f"home = {os.path.dirname(os.path.realpath(sys._base_executable))}\n" in cfg
    assert "include-system-site-packages = false\n" in cfg
    assert f"version = {'.'.join(map(str, sys.version_info[:3]))}\n" in cfg
    for link in ("python", "python3", f"python{PY}"):
        assert os.path.realpath(prefix / "bin" / link) == os.path.realpath(sys._base_executable)

    out = run(
        prefix,
        "import sys, rich_pkg, rich_pure, hidden_mod; "
        "print(rich_pkg.VALUE, rich_pure.PURE, hidden_mod.HIDDEN, sys.prefix)",
    )
    assert out == f"42 1 yes {prefix}"

    cli = prefix / "bin" / "rich-cli"
    assert cli.read_text().startswith(f"#!{prefix}/bin/python\n")
    assert os.access(cli, os.X_OK)
    assert subprocess.run([cli], capture_output=True, text=True, check=True).stdout == (
        "hello from cli\n"
    )
    assert (prefix / "bin" / "rich-gui").exists()
    assert not (prefix / "bin" / "ignored").exists()

    tool = prefix / "bin" / "rich-tool"
    assert tool.read_text().startswith(f"#!{prefix}/bin/python\nimport rich_pkg")
    assert subprocess.run([tool], capture_output=True, text=True, check=True).stdout == "42\n"

    assert (prefix / "share/rich/readme.txt").read_text() == "data file\n"
    assert (prefix / f"include/site/python{PY}/Rich.Pkg/rich.h").read_text() == "#define RICH 1\n"
    assert (prefix / SP / "rich_pkg/data.txt").read_bytes() == b"\x00\x01binary"
    assert os.access(prefix / SP / "rich_pkg/run.sh", os.X_OK)
    assert not os.access(prefix / SP / "rich_pkg/data.txt", os.X_OK)
    assert (prefix / SP / "Rich_Pkg-1.0.dist-info/INSTALLER").read_text() == "wheelhouse\n"


def test_record_is_rewritten_sorted_and_complete(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    install(prefix, rich_wheel)
    record_file = prefix / SP / "Rich_Pkg-1.0.dist-info/RECORD"
    rows = list(csv.reader(record_file.read_text().splitlines()))
    paths = [r[0] for r in rows]
    assert paths == sorted(paths)
    entries = {r[0]: r for r in rows}
    assert entries["Rich_Pkg-1.0.dist-info/RECORD"] == ["Rich_Pkg-1.0.dist-info/RECORD", "", ""]
    assert "Rich_Pkg-1.0.dist-info/INSTALLER" in entries
    assert f"rich_pkg/__pycache__/__init__.{sys.implementation.cache_tag}.pyc" in entries
    assert "../../../bin/rich-cli" in entries
    assert "../../../bin/rich-tool" in entries
    assert f"../../../include/site/python{PY}/Rich.Pkg/rich.h" in entries
    # every listed file exists and hashes as listed
    for path, hash_, size in rows:
        target = (record_file.parent.parent / path).resolve()
        assert target.is_file(), path
        if hash_:
            from wheelmaker import record_hash

            data = target.read_bytes()
            assert (record_hash(data), str(len(data))) == (hash_, size), path


def test_bytecode_is_unchecked_hash_with_final_paths(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    report = install(prefix, rich_wheel)
    pycs = sorted((prefix / SP).rglob("*.pyc"))
    assert len(pycs) == report.bytecode
    for pyc in pycs:
        data = pyc.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked
        source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
        assert data[8:16] == importlib.util.source_hash(source.read_bytes())
        code = marshal.loads(data[16:])
        # relative to the prefix, so the bytes do not depend on it; import fixes it up on load
        assert code.co_filename == str(source.relative_to(prefix))
    # the staging directory's name never leaks into the environment
    for path in prefix.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b".env.tmp-" not in path.read_bytes(), path


def test_invalid_python_is_skipped_with_a_warning(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    report = install(prefix, rich_wheel)
    assert not list((prefix / SP / "rich_pkg/__pycache__").glob("skin.*"))
    assert (prefix / SP / "rich_pkg/skin.py").exists()
    assert any("rich_pkg/skin.py" in w and rich_wheel.name in w for w in report.warnings)


def test_no_bytecode_when_disabled(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    report = install(prefix, rich_wheel, compile_bytecode=False)
    assert report.bytecode == 0
    assert not list(prefix.rglob("*.pyc"))
    assert run(prefix, "import rich_pkg; print(rich_pkg.VALUE)") == "42"


def test_identical_shared_file_is_fine(tmp_path: Path) -> None:
    init = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    a = make_wheel(tmp_path / "w", "ns.a", "1.0", {"ns/__init__.py": init, "ns/a.py": "A = 1\n"})
    b = make_wheel(tmp_path / "w", "ns.b", "2.0", {"ns/__init__.py": init, "ns/b.py": "B = 2\n"})
    prefix = tmp_path / "env"
    report = install(prefix, a, b)
    assert run(prefix, "import ns.a, ns.b; print(ns.a.A + ns.b.B)") == "3"
    assert (prefix / SP / "ns/__init__.py").read_text() == init
    for dist in ("ns_a-1.0", "ns_b-2.0"):
        record = (prefix / SP / f"{dist}.dist-info/RECORD").read_text()
        assert "ns/__init__.py,sha256=" in record
    assert report.bytecode == 3


def test_install_twice_is_byte_identical(tmp_path: Path, rich_wheel: Path) -> None:
    others = [
        make_wheel(tmp_path / "w", f"dist{i}", "1.0", {f"dist{i}/m.py": f"X = {{'a{i}', 'b'}}\n"})
        for i in range(5)
    ]
    prefix = tmp_path / "env"
    install(prefix, rich_wheel, *others, jobs=2)
    first = tree_digest(prefix)
    install(prefix, rich_wheel, *others, jobs=1, replace=True)
    assert tree_digest(prefix) == first
    install(prefix, *reversed([rich_wheel, *others]), jobs=3, replace=True)
    assert tree_digest(prefix) == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".env")] == []


def test_existing_prefix_needs_replace(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    prefix.mkdir()
    (prefix / "keep").write_text("mine")
    with pytest.raises(InstallError, match=r"already exists.*--replace") as info:
        install(prefix, rich_wheel)
    assert str(prefix) in str(info.value)
    assert (prefix / "keep").read_text() == "mine"
    install(prefix, rich_wheel, replace=True)
    assert not (prefix / "keep").exists()
    assert run(prefix, "import rich_pkg; print(rich_pkg.VALUE)") == "42"


def test_failed_replace_keeps_the_old_environment(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "env"
    install(prefix, rich_wheel)
    before = tree_digest(prefix)
    bad = make_wheel(tmp_path / "w", "bad", "1.0", record=False)
    with pytest.raises(RecordError):
        install(prefix, rich_wheel, bad, replace=True)
    assert tree_digest(prefix) == before


def test_empty_environment(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    report = install_env([], prefix)
    assert report.wheels == 0
    assert run(prefix, "import sys; print(sys.prefix != sys.base_prefix)") == "True"


def _oldest_python() -> str | None:
    """A Python 3.8 (the oldest the worker supports) from PATH or pyenv, if there is one."""
    root = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    found = [shutil.which("python3.8"), *map(str, sorted(root.glob("versions/3.8*/bin/python3.8")))]
    for python in found:
        if python and subprocess.run([python, "-c", ""], capture_output=True).returncode == 0:
            return python
    return None


OLDEST_PYTHON = _oldest_python()


@pytest.mark.skipif(OLDEST_PYTHON is None, reason="needs a Python 3.8")
def test_worker_runs_on_the_oldest_supported_python(tmp_path: Path, rich_wheel: Path) -> None:
    """The worker and the _safefs module it imports keep to Python 3.8's syntax and library."""
    assert OLDEST_PYTHON is not None
    prefix = tmp_path / "env"
    report = install(prefix, rich_wheel, python=OLDEST_PYTHON)
    assert report.bytecode > 0
    assert run(prefix, "import sys, rich_pkg; print(sys.version_info[:2], rich_pkg.VALUE)") == (
        "(3, 8) 42"
    )


@pytest.mark.skipif(not os.path.exists(DEBIAN_PYTHON), reason=f"needs {DEBIAN_PYTHON}")
def test_other_interpreter(tmp_path: Path, rich_wheel: Path) -> None:
    facts = subprocess.run(
        [
            DEBIAN_PYTHON,
            "-c",
            "import sys, importlib.util as u, os; print('%d.%d.%d' % sys.version_info[:3]); "
            "print(u.MAGIC_NUMBER.hex()); print(os.path.realpath(sys.executable)); "
            "print(sys.implementation.cache_tag)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    version, magic, real, tag = facts
    short = ".".join(version.split(".")[:2])
    prefix = tmp_path / "env"
    report = install(prefix, rich_wheel, python=DEBIAN_PYTHON)
    assert f"version = {version}\n" in (prefix / "pyvenv.cfg").read_text()
    assert f"home = {os.path.dirname(real)}\n" in (prefix / "pyvenv.cfg").read_text()
    assert os.path.realpath(prefix / "bin/python") == real
    pycs = list((prefix / f"lib/python{short}/site-packages").rglob(f"*.{tag}.pyc"))
    assert len(pycs) == report.bytecode > 0
    assert all(p.read_bytes()[:4].hex() == magic for p in pycs)
    out = run(prefix, "import sys, rich_pkg, hidden_mod; print(sys.version.split()[0])")
    assert out == version


# --- failure modes: each names the wheel and the member, and leaves nothing at prefix ----------


Case = Callable[[Path], tuple[list[tuple[Artifact, Path]], type[Exception], Sequence[str]]]


def _one(wheel: Path, exc: type[Exception], *names: str, **overrides: Any) -> Any:
    return [(artifact_for(wheel, **overrides), wheel)], exc, [wheel.name, *names]


def _record_missing(d: Path) -> Any:
    return _one(make_wheel(d, "pkg", "1.0", record=False), RecordError, "pkg-1.0.dist-info/RECORD")


def _hash_mismatch(d: Path) -> Any:
    files = {"pkg/__init__.py": "", "pkg/mod.py": "x = 1\n"}
    w = make_wheel(d, "pkg", "1.0", files, tamper={"pkg/mod.py": b"x = 2\n"})
    return _one(w, RecordError, "pkg/mod.py", "RECORD hash")


def _size_mismatch(d: Path) -> Any:
    files = {"pkg/__init__.py": "", "pkg/mod.py": "x = 1\n"}
    w = make_wheel(d, "pkg", "1.0", files, tamper={"pkg/mod.py": b"x = 22\n"})
    return _one(w, RecordError, "pkg/mod.py")


def _not_in_record(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", extra_members=[Member("pkg/sneaky.py", b"import os\n")])
    return _one(w, RecordError, "pkg/sneaky.py", "not listed")


def _record_lists_missing(d: Path) -> Any:
    files = {"pkg/__init__.py": "", "pkg/mod.py": "x = 1\n"}
    w = make_wheel(d, "pkg", "1.0", files, drop=["pkg/mod.py"])
    return _one(w, RecordError, "pkg/mod.py", "no such member")


def _unsafe(name: str, **kwargs: Any) -> Any:
    def case(d: Path) -> Any:
        files = kwargs.pop("files", {name: "x = 1\n"})
        return _one(make_wheel(d, "pkg", "1.0", files, **kwargs), UnsafePathError, name)

    return case


def _unknown_scheme(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", data={"bogus": {"x.txt": "x"}})
    return _one(w, InstallError, "pkg-1.0.data/bogus/x.txt", "bogus")


def _entry_point(script: str) -> Callable[[Path], Any]:
    def case(d: Path) -> Any:
        eps = {"console_scripts": {script: "pkg:main"}}
        w = make_wheel(d, "pkg", "1.0", entry_points=eps)
        return _one(w, UnsafePathError, "entry_points.txt", script)

    return case


def _symlink(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", extra_members=[Member.symlink("pkg/link", "/etc/passwd")])
    return _one(w, UnsafePathError, "pkg/link", "symbolic link")


def _duplicate(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", extra_members=[Member("pkg/__init__.py", b"evil = 1\n")])
    return _one(w, InstallError, "pkg/__init__.py", "more than once")


def _truncated(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", raw=lambda data: data[: len(data) // 2])
    return _one(w, InstallError, "zip")


def _crc(d: Path) -> Any:
    files = {"pkg/__init__.py": "", "pkg/mod.py": "x = 1\n" * 20}
    w = make_wheel(d, "pkg", "1.0", files, compression=0)
    corrupt_member(w, "pkg/mod.py")
    return _one(w, InstallError, "pkg/mod.py", "CRC")


def _crc_deflated(d: Path) -> Any:
    files = {"pkg/__init__.py": "", "pkg/mod.py": "".join(f"x{i} = {i}\n" for i in range(200))}
    w = make_wheel(d, "pkg", "1.0", files)
    corrupt_member(w, "pkg/mod.py")
    return _one(w, InstallError, "pkg/mod.py")


def _crc_metadata(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", compression=0)
    corrupt_member(w, "pkg-1.0.dist-info/METADATA")
    return _one(w, InstallError, "pkg-1.0.dist-info/METADATA")


def _metadata_name(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", metadata={"Name": "other-pkg"})
    return _one(w, InstallError, "METADATA", "other-pkg")


def _metadata_version(d: Path) -> Any:
    w = make_wheel(d, "pkg", "1.0", metadata={"Version": "1.1"})
    return _one(w, InstallError, "METADATA", "1.1")


def _filename_package(d: Path) -> Any:
    return _one(make_wheel(d, "pkg", "1.0"), InstallError, "other", package="other")


def _filename_version(d: Path) -> Any:
    return _one(make_wheel(d, "pkg", "1.0"), InstallError, "2.0", version="2.0")


def _sha256(d: Path) -> Any:
    return _one(make_wheel(d, "pkg", "1.0"), HashMismatchError, "sha256", sha256="0" * 64)


def _conflict(d: Path) -> Any:
    a = make_wheel(d, "a", "1.0", {"shared/x.py": "X = 1\n", "a.py": ""})
    b = make_wheel(d, "b", "1.0", {"shared/x.py": "X = 2\n", "b.py": ""})
    return pairs(a, b), ConflictError, [a.name, b.name, f"{SP}/shared/x.py"]


def _conflict_file_dir(d: Path) -> Any:
    a = make_wheel(d, "a", "1.0", {"shared": "X = 1\n"})
    b = make_wheel(d, "b", "1.0", {"shared/x.py": "X = 2\n"})
    return pairs(a, b), ConflictError, [a.name, b.name, f"{SP}/shared"]


def _conflict_script(d: Path) -> Any:
    a = make_wheel(d, "a", "1.0", entry_points={"console_scripts": {"tool": "a:main"}})
    b = make_wheel(d, "b", "1.0", data={"scripts": {"tool": "#!/bin/sh\n"}})
    return pairs(a, b), ConflictError, [a.name, b.name, "bin/tool"]


def _conflict_layout(d: Path) -> Any:
    a = make_wheel(d, "a", "1.0", data={"data": {"pyvenv.cfg": "home = /evil\n"}})
    return pairs(a), ConflictError, [a.name, "pyvenv.cfg"]


def _same_project_twice(d: Path) -> Any:
    a = make_wheel(d, "a", "1.0")
    b = make_wheel(d / "other", "a", "2.0")
    return pairs(a, b), ConflictError, [a.name, b.name]


FAILURES: dict[str, Case] = {
    "record-missing": _record_missing,
    "hash-mismatch": _hash_mismatch,
    "size-mismatch": _size_mismatch,
    "member-not-in-record": _not_in_record,
    "record-entry-not-in-zip": _record_lists_missing,
    "dotdot": _unsafe("../evil.py"),
    "absolute": _unsafe("/tmp/evil.py"),
    "data-scripts-dotdot": _unsafe(
        "pkg-1.0.data/scripts/../../evil", files={}, data={"scripts": {"../../evil": "x"}}
    ),
    "backslash": _unsafe("pkg\\..\\..\\evil.py"),
    "dot-component": _unsafe("pkg/./x.py"),
    "unknown-data-scheme": _unknown_scheme,
    "entry-point-slash": _entry_point("a/b"),
    "entry-point-dotdot": _entry_point("..evil"),
    "symlink-member": _symlink,
    "duplicate-member": _duplicate,
    "truncated-zip": _truncated,
    "crc-stored": _crc,
    "crc-deflated": _crc_deflated,
    "crc-metadata": _crc_metadata,
    "metadata-name": _metadata_name,
    "metadata-version": _metadata_version,
    "filename-package": _filename_package,
    "filename-version": _filename_version,
    "sha256": _sha256,
    "conflict": _conflict,
    "conflict-file-vs-dir": _conflict_file_dir,
    "conflict-script": _conflict_script,
    "conflict-layout": _conflict_layout,
    "same-project-twice": _same_project_twice,
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_failure(tmp_path: Path, case: Case) -> None:
    wheels, exc, names = case(tmp_path / "wheels")
    ok = make_wheel(tmp_path / "wheels", "fine", "1.0")  # a good wheel alongside
    prefix = tmp_path / "out" / "env"
    with pytest.raises(exc) as info:
        install_env([*wheels, (artifact_for(ok), ok)], prefix)
    assert type(info.value) is exc
    for name in names:  # names may be quoted with repr() (backslashes doubled)
        assert name in str(info.value) or repr(name)[1:-1] in str(info.value)
    assert_nothing_left(prefix)


def test_conflict_detected_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conflict raises before any worker is told to write (no staging content at all)."""
    import wheelhouse.install as mod

    seen: list[list[str]] = []
    real = mod._write_layout

    def spy(root: Path, facts: Facts) -> None:
        seen.append(os.listdir(root))
        real(root, facts)

    monkeypatch.setattr(mod, "_write_layout", spy)
    wheels, exc, _ = _conflict(tmp_path / "wheels")
    with pytest.raises(exc):
        install_env(wheels, tmp_path / "env")
    assert seen == []


def test_missing_interpreter(tmp_path: Path, rich_wheel: Path) -> None:
    with pytest.raises(InstallError, match="nope/python"):
        install(tmp_path / "env", rich_wheel, python=str(tmp_path / "nope/python"))
    assert_nothing_left(tmp_path / "env")


# --- zip reading -------------------------------------------------------------------------------


def test_zip64_and_prepended_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zip64 end records and per-member zip64 extras, and bytes before the archive, all read."""
    import zipfile

    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)  # members above 16 bytes get zip64 extras
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)  # and the zip64 end records
    files = {"big/__init__.py": "VALUE = 'x' * 3\n" * 20, "big/small.py": "A=1\n"}
    w = make_wheel(tmp_path / "w", "big", "1.0", files)
    monkeypatch.undo()
    data = w.read_bytes()
    assert b"PK\x06\x06" in data
    shifted = make_wheel(tmp_path / "w2", "shifted", "1.0", raw=lambda d: b"#!junk\n" * 9 + d)
    prefix = tmp_path / "env"
    install(prefix, w, shifted)
    assert run(prefix, "import big, big.small, shifted; print(len(big.VALUE))") == "3"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_wheels_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    """Flipped bytes or truncation give an InstallError (or a valid install), never a crash."""
    base = tmp_path_factory.mktemp("fuzz")
    good = make_wheel(base / "src", "fuzz", "1.0", {"fuzz/__init__.py": "X = 1\n" * 50})
    raw = bytearray(good.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            raw[data.draw(st.integers(0, len(raw) - 1), label="at")] ^= data.draw(
                st.integers(1, 255), label="xor"
            )
    bad = base / "bad" / good.name
    bad.parent.mkdir()
    bad.write_bytes(bytes(raw))
    prefix = base / "env"
    try:
        install(prefix, bad)
    except InstallError as e:
        assert bad.name in str(e)
        assert_nothing_left(prefix)
    else:
        assert run(prefix, "import fuzz; print(fuzz.X)") == "1"


def test_wheel_writing_one_path_twice(tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", "pkg", "1.0", data={"purelib": {"pkg/__init__.py": "X = 2\n"}})
    with pytest.raises(
        InstallError, match=r"pkg/__init__\.py.*pkg-1\.0\.data/purelib/pkg/__init__"
    ):
        install(tmp_path / "env", w)
    assert_nothing_left(tmp_path / "env")


def test_shipped_installer_file_is_replaced(tmp_path: Path) -> None:
    w = make_wheel(
        tmp_path / "w",
        "pkg",
        "1.0",
        {"pkg/__init__.py": "", "pkg-1.0.dist-info/INSTALLER": "pip\n"},
    )
    prefix = tmp_path / "env"
    install(prefix, w)
    assert (prefix / SP / "pkg-1.0.dist-info/INSTALLER").read_text() == "wheelhouse\n"


def test_wheel_with_script_twice(tmp_path: Path) -> None:
    eps = {"console_scripts": {"tool": "pkg:main"}}
    w = make_wheel(tmp_path / "w", "pkg", "1.0", entry_points=eps, data={"scripts": {"tool": "x"}})
    with pytest.raises(InstallError, match="bin/tool twice"):
        install(tmp_path / "env", w)
    assert_nothing_left(tmp_path / "env")


def test_scripts_work_with_a_long_prefix_with_spaces(tmp_path: Path, rich_wheel: Path) -> None:
    prefix = tmp_path / "with space" / ("long" * 30) / "env"
    install(prefix, rich_wheel)
    cli = prefix / "bin" / "rich-cli"
    assert cli.read_text().startswith("#!/bin/sh\n")  # installer's trick for such paths
    assert subprocess.run([cli], capture_output=True, text=True, check=True).stdout == (
        "hello from cli\n"
    )
    tool = prefix / "bin" / "rich-tool"
    assert subprocess.run([tool], capture_output=True, text=True, check=True).stdout == "42\n"


@settings(max_examples=300, deadline=None)
@given(
    cuts=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=6),
    truncate=st.integers(0, 10_000) | st.none(),
)
def test_zip_reader_only_raises_worker_errors(
    cuts: list[tuple[int, int]], truncate: int | None
) -> None:
    """The worker's zip reading (zipfile and its checks) turns any damage into a WorkerError
    (no crash, no hang)."""
    from wheelhouse import _install_worker as worker

    raw = bytearray(_FUZZ_WHEEL)
    for at, xor in cuts:
        raw[at % len(raw)] ^= xor
    if truncate is not None:
        raw = raw[: truncate % len(raw)]
    data = bytes(raw)
    try:
        archive, members = worker.open_archive(data, "w.whl")
        for info in members:
            worker.extract(archive, info, "w.whl")
    except worker.WorkerError as e:
        assert e.kind == "InstallError" and "w.whl" in e.message


def _fuzz_wheel() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        files = {"z/__init__.py": "X = 1\n" * 40, "z/raw.bin": b"\x00" * 100}
        return make_wheel(Path(d), "z", "1.0", files, data={"data": {"x": "y"}}).read_bytes()


_FUZZ_WHEEL = _fuzz_wheel()


def test_extra_site_packages_join_sys_path_in_one_step(tmp_path: Path) -> None:
    """Packages taken from elsewhere (nixpkgs) are one .pth line each, after the env's own."""
    short = f"{sys.version_info[0]}.{sys.version_info[1]}"
    outside = tmp_path / "nixpkgs-numpy" / "lib" / f"python{short}" / "site-packages"
    (outside / "fakenumpy").mkdir(parents=True)
    (outside / "fakenumpy" / "__init__.py").write_text("WHERE = 'outside'\n")
    plain = tmp_path / "plain" / "site-packages"
    (plain / "fakeplain").mkdir(parents=True)
    (plain / "fakeplain" / "__init__.py").write_text("")
    prefix = tmp_path / "env"
    install(
        prefix,
        make_wheel(tmp_path, "inside", "1.0"),
        extra_site_packages=[tmp_path / "nixpkgs-numpy", plain],
    )
    assert run(prefix, "import inside, fakeplain, fakenumpy; print(fakenumpy.WHERE)") == "outside"


def test_extra_site_packages_for_another_python_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "pkg" / "lib" / "python2.7" / "site-packages"
    other.mkdir(parents=True)
    prefix = tmp_path / "env"
    with pytest.raises(InstallError, match="neither a site-packages") as info:
        install(
            prefix, make_wheel(tmp_path, "inside", "1.0"), extra_site_packages=[other.parents[2]]
        )
    assert "pkg" in str(info.value)
    assert_nothing_left(prefix)


def test_staging_dirs_of_killed_installs_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".env.wheelhouse-tmp-999999999-abc"
    dead.mkdir()
    (dead / "half-written").write_text("x")
    install(tmp_path / "env", make_wheel(tmp_path, "inside", "1.0"))
    assert not dead.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_wheel_whose_requires_python_excludes_the_interpreter_is_refused(tmp_path: Path) -> None:
    """A lock made on 3.11.7 may pick a release needing >=3.11.5 for an env on 3.11.2."""
    wheel = make_wheel(tmp_path, "picky", "1.0", requires_python=">=3.99")
    prefix = tmp_path / "env"
    with pytest.raises(InstallError) as info:
        install(prefix, wheel)
    assert wheel.name in str(info.value) and ">=3.99" in str(info.value)
    assert "--python" in str(info.value)
    assert_nothing_left(prefix)
