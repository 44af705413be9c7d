"""wheelhouse.rpath: the RUNPATH pass that lets binary wheels find their libraries.

The real tests compile a library ``libfoo.so.1`` outside the env and a wheel whose extension
module needs it (and a vendored ``libbar.so.1`` found through ``$ORIGIN``, as auditwheel lays
them out), install the wheel for ``/usr/bin/python3`` with the pass on, and ask the interpreter's
own loader (``ld.so --list``) where each library comes from.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, ROOT, require
from contract import assert_absent, assert_error, assert_ok, lock_data, run_cli, write_lock
from indexserver import IndexServer
from wheelmaker import artifact_for, make_wheel

from wheelhouse.cli import main
from wheelhouse.errors import LibraryError
from wheelhouse.rpath import ElfFile, Interpreter, plan_runpaths

# --- the pure plan -------------------------------------------------------------------------------

DIRS = {
    "/glibc": {"libc.so.6", "libm.so.6", "libdl.so.2"},
    "/gcc/lib": {"libstdc++.so.6", "libgcc_s.so.1"},
    "/zlib/lib": {"libz.so.1"},
    "/env/site/pkg.libs": {"libvendored.so"},
}
PYTHON = Interpreter(loaded=frozenset({"libc.so.6", "libm.so.6"}), directories=("/glibc",))


def has(directory: str, soname: str) -> bool:
    return soname in DIRS.get(directory, set())


def plan(*files: ElfFile, libs: tuple[str, ...] = ("/gcc/lib", "/zlib/lib")) -> tuple[
    dict[str, tuple[str, ...]], dict[str, list[str]]
]:
    return plan_runpaths(files, PYTHON, libs, has, "/env")


def test_libraries_the_interpreter_maps_need_no_runpath() -> None:
    assert plan(ElfFile("site/a.so", ("libc.so.6", "libm.so.6"), ())) == ({}, {})


def test_the_rest_of_the_interpreters_directories_is_searched() -> None:
    assert plan(ElfFile("site/a.so", ("libdl.so.2",), ())) == ({"site/a.so": ("/glibc",)}, {})


def test_origin_entries_are_kept_first_and_library_path_appended_in_order() -> None:
    elf = ElfFile(
        "site/pkg/_ext.so",
        ("libvendored.so", "libz.so.1", "libstdc++.so.6", "libgcc_s.so.1"),
        ("$ORIGIN/../pkg.libs",),
    )
    assert plan(elf) == (
        {"site/pkg/_ext.so": ("$ORIGIN/../pkg.libs", "/zlib/lib", "/gcc/lib")},
        {},
    )


def test_missing_libraries_are_reported_with_every_file_needing_them() -> None:
    files = (
        ElfFile("site/b.so", ("libssl.so.3", "libz.so.1"), ()),
        ElfFile("site/a.so", ("libssl.so.3",), ()),
        ElfFile("site/c.so", ("libstdc++.so.6",), ()),
    )
    runpaths, missing = plan(*files, libs=("/zlib/lib",))
    assert missing == {"libssl.so.3": ["site/a.so", "site/b.so"], "libstdc++.so.6": ["site/c.so"]}
    assert runpaths == {"site/b.so": ("/zlib/lib",)}


# --- the real thing: gcc, patchelf, the interpreter's loader -------------------------------------

EXT = """
#include <Python.h>
int foo_answer(void);
int bar_answer(void);
static PyObject *answer(PyObject *self, PyObject *args) {
    return PyLong_FromLong(foo_answer() + bar_answer());
}
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_demo", NULL, -1, methods};
PyMODINIT_FUNC PyInit__demo(void) { return PyModule_Create(&module); }
"""


def _host_config() -> tuple[str, str]:
    out = subprocess.run(
        [HOST_PYTHON, "-c", "import sysconfig as s; print(s.get_paths()['include']); "
         "print(s.get_config_var('EXT_SUFFIX'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return out[0], out[1]


def _gcc(*args: str | Path) -> None:
    cc = require("gcc")
    proc = subprocess.run([cc, *map(str, args)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def _shared_lib(directory: Path, soname: str, function: str, value: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / f"{function}.c"
    src.write_text(f"int {function}(void) {{ return {value}; }}\n")
    out = directory / soname
    _gcc("-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", out, src)
    src.unlink()
    return out


@pytest.fixture
def binary_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """(the wheel, a prefix whose lib/ holds libfoo.so.1): the extension needs both libs."""
    include, suffix = _host_config()
    outside = tmp_path / "foo-prefix"
    _shared_lib(outside / "lib", "libfoo.so.1", "foo_answer", 40)
    build = tmp_path / "build"
    bar = _shared_lib(build / "demo.libs", "libbar.so.1", "bar_answer", 2)
    (build / "ext.c").write_text(EXT)
    ext = build / f"_demo{suffix}"
    _gcc(
        "-shared", "-fPIC", f"-I{include}", "-o", ext, build / "ext.c",
        f"-L{outside / 'lib'}", "-l:libfoo.so.1", f"-L{bar.parent}", "-l:libbar.so.1",
        "-Wl,-rpath,$ORIGIN/demo.libs",
    )  # fmt: skip
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = make_wheel(
        wheels,
        "demo",
        "1.0",
        {ext.name: ext.read_bytes(), "demo.libs/libbar.so.1": bar.read_bytes()},
        tag="cp311-cp311-linux_x86_64",
    )
    return wheel, outside


def _install(tmp_path: Path, wheel: Path, *extra: str | Path) -> tuple[Path, list[str | Path]]:
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(wheel)]))
    prefix = tmp_path / "env"
    argv: list[str | Path] = [
        "install", lock, "--wheelhouse", wheel.parent, "--prefix", prefix,
        "--python", HOST_PYTHON, *extra,
    ]  # fmt: skip
    return prefix, argv


def _loader_list(path: Path) -> dict[str, str]:
    loader = subprocess.run(
        [require("patchelf"), "--print-interpreter", HOST_PYTHON],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    listing = subprocess.run([loader, "--list", str(path)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    resolved = {}
    for line in listing.stdout.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow:
            resolved[name] = rest.rsplit(" (", 1)[0]
    return resolved


def test_extension_finds_a_library_given_as_a_plain_path(
    tmp_path: Path, binary_wheel: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, outside = binary_wheel
    prefix, argv = _install(tmp_path, wheel, "--library-path", outside)
    assert_ok(run_cli(capsys, *argv, "--patchelf", require("patchelf")))
    ext = next((prefix / "lib").glob("python3.11/site-packages/_demo.*.so"))
    runpath = subprocess.run(
        [require("patchelf"), "--print-rpath", ext], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert runpath == f"$ORIGIN/demo.libs:{outside / 'lib'}"
    resolved = _loader_list(ext)
    assert resolved["libfoo.so.1"] == str(outside / "lib" / "libfoo.so.1")
    assert resolved["libbar.so.1"] == str(ext.parent / "demo.libs" / "libbar.so.1")
    assert all(path.startswith("/") for path in resolved.values()), resolved
    out = subprocess.run(
        [prefix / "bin" / "python", "-c", "import _demo; print(_demo.answer())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out == "42\n"
    # The patched file's RECORD line tells its new bytes.
    record = next(prefix.glob("lib/python3.11/site-packages/demo-1.0.dist-info/RECORD"))
    rows = {row[0]: row[1:] for row in csv.reader(record.read_text().splitlines())}
    data = ext.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert rows[ext.name] == [f"sha256={digest}", str(len(data))]


def test_without_the_pass_the_extension_does_not_load(
    tmp_path: Path, binary_wheel: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the pass is for: the same env without it cannot import the module."""
    wheel, _outside = binary_wheel
    prefix, argv = _install(tmp_path, wheel)
    assert_ok(run_cli(capsys, *argv))
    proc = subprocess.run(
        [prefix / "bin" / "python", "-c", "import _demo"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "libfoo.so.1" in proc.stderr


def test_a_library_found_nowhere_is_one_error_naming_it_and_the_wheel(
    tmp_path: Path, binary_wheel: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, _outside = binary_wheel
    empty = tmp_path / "empty"
    empty.mkdir()
    prefix, argv = _install(tmp_path, wheel, "--library-path", empty)
    outcome = run_cli(capsys, *argv, "--patchelf", require("patchelf"))
    message = assert_error(outcome, LibraryError, "libfoo.so.1", wheel.name, "manylinuxLibs")
    assert "libbar.so.1" not in message  # found through $ORIGIN
    assert_absent(prefix)


def test_missing_patchelf_is_one_error(
    tmp_path: Path, binary_wheel: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, outside = binary_wheel
    prefix, argv = _install(tmp_path, wheel, "--library-path", outside)
    outcome = run_cli(capsys, *argv, "--patchelf", tmp_path / "no-patchelf")
    assert outcome.rc != 0 and outcome.err.startswith("error: patchelf ")
    assert outcome.err.count("\n") == 1
    assert_absent(prefix)


NIX_PROJECT = """
(import {root}/nixlib).mkProject {{
  lock = ./pylock.toml; python = "{python}"; src = ./.;
  patchelf = "{patchelf}";
  manylinuxLibs = [ ./foo-prefix ];
}}
"""


@pytest.mark.integration
def test_nix_env_with_manylinux_libs(
    tmp_path: Path,
    binary_wheel: tuple[Path, Path],
    index_server_factory: Callable[..., IndexServer],
) -> None:
    """mkProject's env runs the pass: the store copy of ``manylinuxLibs`` is in the RUNPATH."""
    from test_nix import nix_build

    wheel, outside = binary_wheel
    server = index_server_factory(wheel.parent)
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["cp", "-r", str(outside), str(project / "foo-prefix")], check=True)
    (project / "default.nix").write_text(
        NIX_PROJECT.format(root=ROOT, python=HOST_PYTHON, patchelf=require("patchelf"))
    )
    lock = project / "pylock.toml"
    assert main(["lock", "demo", "--python", HOST_PYTHON, "--index-url", server.simple_url,
                 "-o", str(lock)]) == 0  # fmt: skip
    built = nix_build(project, "env")
    assert built.returncode == 0, built.stderr[-3000:]
    env = Path(built.stdout.strip().splitlines()[-1])
    ext = next(env.glob("lib/python3.11/site-packages/_demo.*.so"))
    resolved = _loader_list(ext)
    assert resolved["libfoo.so.1"].startswith("/nix/store/")
    assert resolved["libfoo.so.1"].endswith("-foo-prefix/lib/libfoo.so.1")
    out = subprocess.run(
        [env / "bin" / "python", "-c", "import _demo; print(_demo.answer())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out == "42\n"
    # The library is a runtime dependency of the env: Nix found its path in the RUNPATH.
    closure = subprocess.run(
        ["nix-store", "-qR", str(env)], capture_output=True, text=True, check=True
    ).stdout
    assert "-foo-prefix\n" in closure

