"""The RUNPATH pass: manylinux wheels' shared libraries find what they need on NixOS.

A manylinux wheel assumes a classic distribution: libstdc++, libgcc_s, zlib... on the loader's
default path. With nixpkgs' interpreter they are not there, and importing fails with
"libstdc++.so.6: cannot open shared object file". So after the wheels are installed (in the
temp root, before the atomic rename) every ELF file of the env gets a RUNPATH holding the
directories that provide its ``DT_NEEDED`` libraries, looked up in this order:

1. its own RUNPATH/RPATH entries (``$ORIGIN/../numpy.libs`` as auditwheel writes them);
2. the interpreter: libraries its loader already maps (glibc, libpython) need no entry, and the
   directories they come from are searched next (the rest of glibc);
3. ``library_path``: prefixes (``P/lib``) or directories given by the user (nixlib's
   ``manylinuxLibs``).

A library found nowhere fails the install with one message listing each such library and the
wheels needing it, instead of an env that breaks at import time. Deciding the RUNPATHs
(:func:`plan_runpaths`) is pure; reading and writing ELF files is ``patchelf``'s job, so no ELF
parser of our own is needed. The RECORD lines of patched files get their new hash and size.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from wheelhouse.errors import InstallError, LibraryError
from wheelhouse.model import record_hash

_ELF_MAGIC = b"\x7fELF"
_SHARED_OBJECT = re.compile(r"\.so(\.[0-9]+)*$")
_ORIGIN = re.compile(r"\$(ORIGIN\b|\{ORIGIN\})")


@dataclass(frozen=True)
class ElfFile:
    """One ELF file of the env, as ``patchelf`` reports it."""

    path: str
    """Relative to the env root, ``/``-separated."""
    needed: tuple[str, ...]
    runpath: tuple[str, ...]
    """The existing RUNPATH (or RPATH) entries, as written (``$ORIGIN`` unexpanded)."""


@dataclass(frozen=True)
class Interpreter:
    """What the env's interpreter brings: libraries its loader maps, and where they live."""

    loaded: frozenset[str]
    directories: tuple[str, ...]


def _expand(entry: str, root: str, path: str) -> str:
    origin = posixpath.dirname(posixpath.join(root, path))
    return posixpath.normpath(_ORIGIN.sub(lambda _m: origin, entry))


def plan_runpaths(
    files: Iterable[ElfFile],
    interpreter: Interpreter,
    library_path: Sequence[str],
    has: Callable[[str, str], bool],
    root: str,
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """The new RUNPATH of every file that needs one, and the libraries found nowhere.

    ``has(directory, soname)`` says whether a directory holds a library (absolute paths;
    ``$ORIGIN`` entries are expanded against ``root``). A file whose libraries are all found
    through its own entries or the interpreter's loaded set is left alone. The second result
    maps each unresolved soname to the files needing it (sorted).
    """
    search = [*interpreter.directories, *library_path]
    runpaths: dict[str, tuple[str, ...]] = {}
    missing: dict[str, list[str]] = {}
    for elf in files:
        own = [_expand(entry, root, elf.path) for entry in elf.runpath if entry]
        added: list[str] = []
        for soname in elf.needed:
            if soname in interpreter.loaded or any(has(d, soname) for d in own):
                continue
            found = next((d for d in search if has(d, soname)), None)
            if found is None:
                missing.setdefault(soname, []).append(elf.path)
            elif found not in added:
                added.append(found)
        if added:
            runpaths[elf.path] = (*elf.runpath, *added)
    return runpaths, {k: sorted(v) for k, v in sorted(missing.items())}


# --- I/O -----------------------------------------------------------------------------------------


def library_dirs(paths: Iterable[Path]) -> list[str]:
    """``manylinuxLibs`` entries as directories: a prefix's ``lib/`` and the path itself."""
    dirs: list[str] = []
    for path in paths:
        base = os.path.abspath(path)
        if not os.path.isdir(base):
            raise InstallError(
                f"--library-path {path}: not a directory; pass a prefix holding lib/ or a "
                "directory of shared libraries"
            )
        for d in (os.path.join(base, "lib"), base):
            if os.path.isdir(d) and d not in dirs:
                dirs.append(d)
    return dirs


def find_patchelf(patchelf: str | None) -> str:
    found = shutil.which(patchelf or "patchelf")
    if found is None:
        raise InstallError(
            f"patchelf {patchelf or '(from PATH)'} not found; install patchelf or pass "
            "--patchelf PATH (nixlib: patchelf = pkgs.patchelf)"
        )
    return found


def _run(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise InstallError(f"cannot run {argv[0]}: {exc.strerror}; check the path") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(
            f"{argv[0]} failed on {argv[-1]}: {last}; check that the file is a valid ELF object"
        )
    return proc.stdout


def elf_files(root: Path) -> list[str]:
    """Shared objects (``*.so``, ``*.so.N``) and executables in ``bin/`` that are ELF files."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        in_bin = rel_dir == "bin"
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not (in_bin or _SHARED_OBJECT.search(name)):
                continue
            with open(full, "rb") as f:
                if f.read(4) == _ELF_MAGIC:
                    found.append(posixpath.normpath(posixpath.join(rel_dir, name)))
    return found


def read_elf(patchelf: str, root: Path, path: str) -> ElfFile:
    full = str(root / path)
    needed = tuple(_run([patchelf, "--print-needed", full]).split())
    rpath = _run([patchelf, "--print-rpath", full]).strip()
    return ElfFile(path, needed, tuple(e for e in rpath.split(":") if e))


def interpreter_libraries(patchelf: str, python: str) -> Interpreter:
    """Ask the interpreter's own loader (``ld.so --list``) what it maps for the interpreter."""
    real = os.path.realpath(python)
    with open(real, "rb") as f:
        if f.read(4) != _ELF_MAGIC:
            return Interpreter(frozenset(), ())
    loader = subprocess.run(
        [patchelf, "--print-interpreter", real], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not loader:  # statically linked
        return Interpreter(frozenset(), ())
    listing = _run([loader, "--list", real])
    loaded: set[str] = set()
    dirs: list[str] = []
    for line in listing.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if not arrow:
            continue
        target = rest.rsplit(" (", 1)[0].strip()
        if target.startswith("/"):
            loaded.add(name)
            d = os.path.dirname(target)
            if d not in dirs:
                dirs.append(d)
    return Interpreter(frozenset(loaded), tuple(dirs))



def _update_records(root: Path, sp_rel: str, patched: Iterable[str]) -> None:
    """Give patched files their new hash and size in the RECORD of the package owning them."""
    todo = set(patched)
    site = root / sp_rel
    for record in sorted(site.glob("*.dist-info/RECORD")):
        rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
        changed = False
        for row in rows:
            if len(row) == 3 and posixpath.normpath(posixpath.join(sp_rel, row[0])) in todo:
                data = (site / row[0]).read_bytes()
                row[1:] = [record_hash(data), str(len(data))]
                changed = True
        if changed:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            record.write_text(out.getvalue(), encoding="utf-8")


def fix_runpaths(
    root: Path,
    sp_rel: str,
    python: str,
    patchelf: str,
    library_path: Sequence[str],
    owners: Mapping[str, str],
) -> list[str]:
    """Run the pass over the env at ``root`` (final layout, not yet moved into place).

    ``owners`` maps installed paths (relative to ``root``) to the wheel file that wrote them, for
    the error message. Returns the patched paths.
    """
    paths = elf_files(root)
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
        files = list(pool.map(lambda p: read_elf(patchelf, root, p), paths))
    interpreter = interpreter_libraries(patchelf, python)
    cache: dict[str, frozenset[str]] = {}

    def has(directory: str, soname: str) -> bool:
        if directory not in cache:
            try:
                cache[directory] = frozenset(os.listdir(directory))
            except OSError:
                cache[directory] = frozenset()
        return soname in cache[directory]

    runpaths, missing = plan_runpaths(files, interpreter, library_path, has, str(root))
    if missing:
        parts = []
        for soname, needers in missing.items():
            wheels = sorted({owners.get(p, p) for p in needers})
            parts.append(f"{soname} (needed by {', '.join(wheels)})")
        searched = ", ".join(library_path) or "none given"
        raise LibraryError(
            f"shared libraries not found: {', '.join(parts)}; add the packages that provide "
            f"them to manylinuxLibs (or --library-path; searched: {searched})"
        )
    for path, entries in sorted(runpaths.items()):
        _run([patchelf, "--set-rpath", ":".join(entries), str(root / path)])
    _update_records(root, sp_rel, runpaths)
    return sorted(runpaths)
