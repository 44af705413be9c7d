"""Install every wheel of a wheelhouse into one fresh virtual environment, fast and atomically.

``install_env`` builds a venv layout (``pyvenv.cfg``, ``bin/python*`` symlinks to the interpreter,
one site-packages for purelib and platlib, scripts in ``bin``, headers in
``include/site/pythonX.Y/<name>``, data in the prefix) in a temporary sibling of ``prefix`` and
renames it into place at the end, so ``prefix`` holds a complete environment or nothing.

The work is done by ``jobs`` worker processes of the *target* interpreter
(``wheelhouse/_install_worker.py``, standard library only; the messages both sides exchange are
``wheelhouse/_install_protocol.py``'s), in two steps:

1. plan: each worker reads its share of the wheels (balanced by size), validates them (zip
   structure, RECORD coverage and syntax, member paths, schemes, links) and reports every
   destination path with its RECORD hash. The main process checks names, versions and sha256
   against the ``Artifact``s, generates entry-point scripts with ``installer``, and detects
   conflicts between wheels, all before anything is written.
2. install: the main process hands out wheels most expensive first; a worker installs the wheels
   it planned and then takes over the cheapest ones left to others, so all cores stay busy to the
   end. A worker decompresses every member once, checks size, CRC and RECORD hash on the bytes in
   memory, writes them, and byte-compiles ``.py`` files of site-packages from the same bytes
   (``UNCHECKED_HASH`` pycs, ``co_filename`` = the path relative to the prefix, which the import
   system replaces with the real one on load, so the bytes do not depend on where the env lives),
   so no file is read back.

Workers run with ``PYTHONHASHSEED=0`` and the same imports, and marshal output does not depend on
which worker compiled what, so the tree is byte-for-byte reproducible (and, but for the scripts'
shebangs, independent of the prefix).
Set ``WHEELHOUSE_INSTALL_DEBUG=1`` to get a timeline and per-worker timings on stderr.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion

from wheelhouse import _install_protocol as protocol
from wheelhouse import errors, rpath, ui
from wheelhouse.errors import ConflictError, InstallError, UnsafePathError, UsageError
from wheelhouse.model import Artifact, same_version
from wheelhouse.tempfiles import remove_stale_temps, temp_prefix

__all__ = ["InstallReport", "install_env"]

_WORKER = Path(__file__).with_name("_install_worker.py")
_DEBUG = bool(os.environ.get("WHEELHOUSE_INSTALL_DEBUG"))  # timings on stderr


class _Trace:
    """Timeline on stderr when ``WHEELHOUSE_INSTALL_DEBUG`` is set."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, what: str) -> None:
        if _DEBUG or ui.verbose():
            elapsed = time.perf_counter() - self.start
            print(f"wheelhouse.install {elapsed:7.3f} s: {what}", file=sys.stderr)


_ERROR_KINDS: dict[str, type[errors.WheelhouseError]] = {
    "HashMismatchError": errors.HashMismatchError,
    "InstallError": InstallError,
    "UnsafePathError": UnsafePathError,
    "RecordError": errors.RecordError,
    "ConflictError": ConflictError,
}


@dataclass(frozen=True)
class InstallReport:
    """What ``install_env`` did."""

    prefix: Path
    wheels: int
    """Wheels installed."""
    files: int
    """Files written from wheels, plus generated scripts, INSTALLER and RECORD files."""
    bytecode: int
    """``.pyc`` files written."""
    scripts: int
    """Console/GUI scripts generated from entry points."""
    warnings: tuple[str, ...] = ()
    """Things that did not stop the install, e.g. ``.py`` files that are not valid Python."""


@dataclass(frozen=True)
class RunpathPass:
    """Settings of the RUNPATH pass: the patchelf program and the directories to search."""

    patchelf: str
    library_dirs: tuple[str, ...]


@dataclass
class _Wheel:
    index: int
    artifact: Artifact
    path: Path
    size: int
    summary: protocol.WheelSummary | None = None
    scripts: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class _Unreadable:
    """A line from a worker that is no message of the protocol: ``kind`` is the kind it claimed
    to be (``hello``...) if any."""

    text: str
    kind: str | None


_Message = protocol.Answer | _Unreadable
_Lines = queue.Queue[tuple[int, "_Message | None"]]
_A = TypeVar("_A", protocol.Hello, protocol.Planned, protocol.Installed, protocol.Done)


class _Worker:
    """One worker process; a thread turns its answers into ``(worker index, message)`` items of
    the shared queue (``None`` when it exits), so JSON parsing overlaps with waiting."""

    def __init__(self, python: str, env: dict[str, str], index: int, answers: _Lines) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self.proc = subprocess.Popen(
                [python, "-S", "-B", str(_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                env=env,
                close_fds=True,
            )
        except OSError as e:
            self.stderr.close()
            raise InstallError(
                f"cannot run the target interpreter {python!r}: {e}; pass an existing python"
            ) from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.python = python
        self.index = index
        self.early: list[_Message | None] = []
        self.reader = threading.Thread(target=self._read, args=(answers,), daemon=True)
        self.reader.start()

    def _read(self, answers: _Lines) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self.stdout:
                message: _Message
                try:
                    message = protocol.decode_answer(line)
                except protocol.ProtocolError as e:  # not our worker talking
                    message = _Unreadable(line.decode("utf-8", "replace").strip(), e.kind)
                answers.put((self.index, message))
        answers.put((self.index, None))

    def send(self, message: protocol.Request) -> None:
        try:
            self.stdin.write(protocol.encode(message))
            self.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died; its EOF reports why

    def check(self, message: _Message | None) -> protocol.Answer | _Unreadable:
        """Raise for an error answer or an exit; return other answers."""
        if message is None:
            self.proc.wait()
            self.stderr.seek(0)
            lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
            said = f" (its last words: {_clip(lines[-1])!r})" if lines else ""
            if self.proc.returncode < 0:
                raise InstallError(
                    f"the install worker run by {self.python} was killed by "
                    f"{_signal_name(-self.proc.returncode)}{said}; if memory ran out, free "
                    "memory and run install again; if the interpreter crashed (SIGSEGV) "
                    "compiling a module, try --no-compile"
                )
            raise self.not_python(
                f"exited with status {self.proc.returncode} without an answer{said}"
            )
        if isinstance(message, protocol.Failed):
            if message.kind == "bug":
                raise RuntimeError(f"install worker failed:\n{message.message}")
            if message.kind not in _ERROR_KINDS:
                raise self.not_python(f"answered {_clip(message.message)!r}")
            raise _ERROR_KINDS[message.kind](message.message)
        return message

    def not_python(self, what: str) -> InstallError:
        """The target interpreter did not run our worker: a program that is not Python, a
        Python too old to read the worker, or one that failed before answering."""
        return InstallError(
            f"the target interpreter {self.python} {what}: it did not run wheelhouse's install "
            "worker; is it a working Python >= 3.8? pass the path of the Python the "
            "environment is for with --python"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join()
        with contextlib.suppress(OSError):
            self.stdout.close()
        self.stderr.close()


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"  # reproducible bytecode (set/frozenset constant order)
    return env


def _resolve_python(python: str | None) -> str:
    if python is None:
        return sys.executable
    found = python if os.sep in python else shutil.which(python)
    if not found or not os.access(found, os.X_OK) or os.path.isdir(found):
        raise InstallError(
            f"target interpreter {python!r} does not exist or is not executable; pass the path "
            f"of the Python the environment is for"
        )
    return os.path.abspath(found)


def _job(index: int, artifact: Artifact, path: Path) -> protocol.WheelJob:
    """A wheel for a worker to read, and what its bytes must be: the lock's sha256, and who it
    is for."""
    return protocol.WheelJob(
        index=index,
        path=str(path),
        filename=artifact.filename,
        sha256=artifact.sha256.lower(),
        label=f"{artifact.package} {artifact.version}",
    )


def _file_size(artifact: Artifact, path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError as e:
        raise InstallError(
            f"{artifact.filename}: cannot read the wheel file {path} ({e.strerror}); fetch it again"
        ) from None


def _check_artifacts(
    wheels: Sequence[tuple[Artifact, Path]], sizes: dict[int, int]
) -> list[_Wheel]:
    out: list[_Wheel] = []
    seen: dict[str, str] = {}
    for index, (artifact, path) in enumerate(wheels):
        name = artifact.filename
        if artifact.kind != "wheel":
            raise InstallError(
                f"{name}: is a {artifact.kind}, not a wheel; build it into a wheel before "
                f"installing"
            )
        try:
            w_name, w_version, _build, _tags = parse_wheel_filename(name)
        except (InvalidWheelFilename, InvalidVersion) as e:
            raise InstallError(f"{name}: is not a valid wheel filename ({e})") from None
        package = canonicalize_name(artifact.package)
        if w_name != package or not same_version(str(w_version), artifact.version):
            raise InstallError(
                f"{name}: wheel filename names {w_name} {w_version} but the lock entry is "
                f"{artifact.package} {artifact.version}; the lock and the wheelhouse disagree: "
                f"re-lock or re-fetch"
            )
        if package in seen:
            raise ConflictError(
                f"{seen[package]} and {name} are both wheels of {package}; an environment holds "
                f"one version of a project: drop one of them"
            )
        seen[package] = name
        size = sizes[index]
        if artifact.size is not None and size != artifact.size:
            raise InstallError(
                f"{name}: file {path} is {size} bytes but the lock says {artifact.size}; the "
                f"wheelhouse is stale or damaged: fetch it again"
            )
        out.append(_Wheel(index, artifact, Path(path), size))
    return out


def _balance(items: list[tuple[int, int]], jobs: int) -> list[list[int]]:
    """Split (key, cost) items into ``jobs`` groups of similar total cost (LPT)."""
    groups: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for key, cost in sorted(items, key=lambda kc: (-kc[1], kc[0])):
        i = loads.index(min(loads))
        groups[i].append(key)
        loads[i] += cost
    return groups


def _shebang(interpreter: str) -> str:
    """The shebang ``installer`` writes for ``interpreter`` (handles long paths and spaces)."""
    from installer.scripts import Script  # imported late: overlaps with the workers' start

    _, data = Script("x", "m", "f", "console").generate(interpreter, "posix")
    end = data.find(b"\n# -*- coding: utf-8 -*-")  # the script template follows the shebang
    return data[:end].decode("utf-8") if end > 0 else f"#!{interpreter}"


def _scripts(wheel: _Wheel, interpreter: str) -> tuple[tuple[str, str], ...]:
    from installer.scripts import Script
    from installer.utils import parse_entrypoints

    assert wheel.summary is not None
    text = wheel.summary.entry_points
    if text is None:
        return ()
    name = wheel.artifact.filename
    member = f"{wheel.summary.dist_info}/entry_points.txt"
    try:
        entries = list(parse_entrypoints(text))
    except Exception as e:
        why = " ".join(str(e).split())  # configparser's messages span lines
        raise InstallError(
            f"{name}: {member} cannot be parsed ({type(e).__name__}: {why}); rebuild the wheel"
        ) from None
    out: list[tuple[str, str]] = []
    for script_name, module, attr, section in entries:
        if (
            not script_name
            or "/" in script_name
            or "\\" in script_name
            or ".." in script_name
            or "\x00" in script_name
            or script_name.startswith(".")
        ):
            raise UnsafePathError(
                f"{name}: {section}_scripts entry point {script_name!r} in {member} is not a "
                f"safe script name (it would be written outside bin/); refusing to install: "
                "rebuild the wheel with plain script names"
            )
        _, data = Script(script_name, module, attr, section).generate(interpreter, "posix")
        out.append((f"bin/{script_name}", data.decode("utf-8")))
    return tuple(out)


def _find_conflicts(wheels: list[_Wheel], sp_rel: str, reserved: list[str]) -> dict[int, set[str]]:
    """Map each wheel index to destinations it must not write (identical copy written by another).

    Raises ConflictError for the same path with different content, or a path that is a file in
    one wheel and a directory in another.
    """
    owner: dict[str, tuple[str, str]] = {}  # dest -> (hash, wheel filename)
    for dest in reserved:
        owner[dest] = ("reserved", "the environment layout (wheelhouse)")
    skips: dict[int, set[str]] = {}
    for wheel in wheels:
        assert wheel.summary is not None and wheel.scripts is not None
        name = wheel.artifact.filename
        dist_info = f"{sp_rel}/{wheel.summary.dist_info}/"
        entries: list[tuple[str, str]] = list(wheel.summary.files)
        entries += [
            (d, "script:" + hashlib.sha256(t.encode()).hexdigest()) for d, t in wheel.scripts
        ]
        entries += [(dist_info + "RECORD", "generated"), (dist_info + "INSTALLER", "generated")]
        own: set[str] = set()
        for dest, hash_ in entries:
            if dest in own:  # members were checked by the worker: a script clashes
                raise InstallError(
                    f"{name}: installs {dest} twice (an entry point and a file, or two entry "
                    f"points); the wheel is malformed: rebuild it"
                )
            own.add(dest)
            prev = owner.get(dest)
            if prev is None:
                owner[dest] = (hash_, name)
            elif prev[0] == hash_ and hash_ not in ("generated", "reserved"):
                skips.setdefault(wheel.index, set()).add(dest)
            else:
                raise ConflictError(
                    f"{prev[1]} and {name} both install {dest} with different content; they "
                    f"cannot share one environment: drop or re-pin one of them"
                )
    dirs: dict[str, str] = {}
    for dest, (_hash, name) in owner.items():
        parent = dest.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs[parent] = name
            parent = parent.rpartition("/")[0]
    for dest, (_hash, name) in owner.items():
        if dest in dirs:
            raise ConflictError(
                f"{name} installs a file at {dest} but {dirs[dest]} installs a directory there; "
                f"they cannot share one environment: drop or re-pin one of them"
            )
    return skips


def _write_layout(root: Path, facts: protocol.Facts) -> None:
    short = facts.short
    executable = facts.executable
    (root / "bin").mkdir()
    (root / "lib" / f"python{short}" / "site-packages").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(executable)}\n"
        "include-system-site-packages = false\n"
        f"version = {facts.version}\n",
        encoding="utf-8",
    )
    for link in ("python", "python3", f"python{short}"):
        os.symlink(executable, root / "bin" / link)
    platlibdir = facts.platlibdir
    if platlibdir != "lib" and "/" not in platlibdir:
        os.symlink("lib", root / platlibdir)


HELLO_TIMEOUT = 120.0
"""Seconds a worker may take to start and greet: generous (a loaded machine, a cold disk),
but an interpreter that is not Python and never answers does not hang install forever."""


def _collect(workers: list[_Worker], answers: _Lines, kind: type[_A]) -> list[_A]:
    """Wait for the next answer of every worker, which must be a ``kind``; fails fast on
    errors."""
    got: list[_A | None] = [None] * len(workers)
    for i, worker in enumerate(workers):
        if worker.early:
            got[i] = _expect(worker, worker.early.pop(0), kind)
    pending = got.count(None)
    hello = kind is protocol.Hello
    while pending:
        try:  # a worker greets at once; a program that is not Python may never say a word
            i, message = answers.get(timeout=HELLO_TIMEOUT if hello else None)
        except queue.Empty:
            silent = next(w for w, a in zip(workers, got, strict=True) if a is None)
            raise silent.not_python(f"did not answer within {HELLO_TIMEOUT:g} s") from None
        if got[i] is not None:
            if message is not None:
                workers[i].early.append(message)  # already its next answer
            continue  # EOF of a worker that has answered: it may exit
        got[i] = _expect(workers[i], message, kind)
        pending -= 1
    return [a for a in got if a is not None]


def _expect(worker: _Worker, message: _Message | None, kind: type[_A]) -> _A:
    answer = worker.check(message)
    if isinstance(answer, kind):
        return answer
    if isinstance(answer, _Unreadable):
        if answer.kind == protocol.Hello.KIND:
            raise worker.not_python(f"introduced itself as {_clip(answer.text)!r}")
        text = answer.text
    else:
        text = protocol.encode(answer).decode().strip()
    raise worker.not_python(f"answered {_clip(text)!r} (expected {kind.KIND!r})")


def check_interpreter(python: str) -> None:
    """Start one worker on ``python`` and wait for its greeting, so that a program that is not
    Python (or crashes, or hangs) is named precisely before anything else asks it questions."""
    interpreter = _resolve_python(python)
    answers: _Lines = queue.Queue()
    worker = _Worker(interpreter, _worker_env(), 0, answers)
    try:
        worker.send(protocol.PlanRequest(()))  # what install_env sends first, too
        _collect([worker], answers, protocol.Hello)
    finally:
        worker.close()


def install_env(
    wheels: Sequence[tuple[Artifact, Path]],
    prefix: Path,
    *,
    python: str | None = None,
    compile_bytecode: bool = True,
    jobs: int | None = None,
    replace: bool = False,
    extra_site_packages: Sequence[Path] = (),
    runpath: RunpathPass | None = None,
) -> InstallReport:
    """Install ``wheels`` (artifact, local file) into a new virtual environment at ``prefix``.

    ``python`` is the interpreter the environment is for (default: the running one); bytecode is
    compiled by that interpreter. ``jobs`` worker processes (default: CPU count) share the work.
    If ``prefix`` exists, raise ``InstallError`` unless ``replace`` is true, in which case the new
    environment is swapped in and the old one deleted. On any error nothing is left at ``prefix``
    (an existing one is kept). ``extra_site_packages`` (site-packages dirs, or prefixes holding
    ``lib/pythonX.Y/site-packages`` for the env's Python) join ``sys.path`` after the env's own
    packages through one ``.pth`` file: packages taken from elsewhere, e.g. nixpkgs.
    ``runpath`` runs the RUNPATH pass (``wheelhouse.rpath``) over the env before it is moved into
    place, so binary wheels find their libraries with an interpreter that is not a classic
    distribution's (nixpkgs).
    """
    trace = _Trace()
    prefix = Path(os.path.abspath(prefix))
    if os.path.lexists(prefix) and not replace:
        raise InstallError(f"{prefix} already exists; remove it or pass --replace to replace it")
    if os.path.lexists(prefix) and (os.path.islink(prefix) or not os.path.isdir(prefix)):
        raise InstallError(
            f"{prefix} exists and is not a directory (an environment) but a file or a link; "
            "remove it yourself or choose another --prefix"
        )
    interpreter = _resolve_python(python)
    _check_parent(prefix)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(wheels) or 1))
    workers: list[_Worker] = []
    answers: _Lines = queue.Queue()
    root: Path | None = None
    try:
        env = _worker_env()
        for i in range(jobs):  # start them first: they boot while we check the artifacts
            workers.append(_Worker(interpreter, env, i, answers))
        trace("workers started")
        sizes = [(i, _file_size(artifact, path)) for i, (artifact, path) in enumerate(wheels)]
        groups = _balance(sizes, jobs)
        for worker, group in zip(workers, groups, strict=True):
            todo = tuple(_job(i, *wheels[i]) for i in group)
            worker.send(protocol.PlanRequest(todo))
        trace("plans requested")
        # while the workers plan: check the artifacts, import installer for the scripts
        items = _check_artifacts(wheels, dict(sizes))
        shebang = _shebang(f"{prefix}/bin/python")
        facts = _collect(workers, answers, protocol.Hello)[0].facts
        for answer in _collect(workers, answers, protocol.Planned):
            for summary in answer.wheels:
                items[summary.index].summary = summary
        trace("plans received")
        extra_sites = [_extra_site(path, facts.short) for path in extra_site_packages]
        try:
            prefix.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(prefix.parent, prefix=f".{prefix.name}")
            root = Path(tempfile.mkdtemp(prefix=temp_prefix(prefix.name), dir=prefix.parent))
        except OSError as e:
            raise _cannot_create(prefix, e) from None
        report = _install_planned(
            items, workers, answers, groups, root, prefix, facts, shebang, compile_bytecode, trace
        )
        try:
            if extra_sites:
                site = root / "lib" / f"python{facts.short}" / "site-packages" / EXTRA_SITE_PTH
                site.write_text(
                    "".join(f"import site; site.addsitedir({path!r})\n" for path in extra_sites),
                    encoding="utf-8",
                )
        except OSError as e:
            raise _cannot_create(prefix, e) from None
        if runpath is not None:
            owners = {
                dest: w.artifact.filename
                for w in items
                if w.summary is not None
                for dest, _h in w.summary.files
            }
            patched = rpath.fix_runpaths(
                root,
                f"lib/python{facts.short}/site-packages",
                interpreter,
                runpath.patchelf,
                runpath.library_dirs,
                owners,
            )
            trace(f"RUNPATH set on {len(patched)} files")
        try:
            _move_into_place(root, prefix, replace)
        except OSError as e:
            raise _cannot_create(prefix, e) from None
        trace("moved into place")
        return report
    finally:
        for worker in workers:
            worker.close()
        if root is not None and root.exists():
            shutil.rmtree(root, ignore_errors=True)


def local_artifact(wheel: Path) -> Artifact:
    """A wheel no lock pins (the project's own: built, or made editable), taken as given: its
    name and version from the file name, its hash from its bytes."""
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise UsageError(f"{wheel}: not a wheel file name ({exc}); pass a .whl file") from None
    with wheel.open("rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    return Artifact(
        filename=wheel.name,
        package=name,
        version=str(version),
        sha256=sha256,
        kind="wheel",
        size=wheel.stat().st_size,
    )


def _check_parent(prefix: Path) -> None:
    """Fail before any work when the prefix cannot be created: below a file, or in a directory
    this user cannot write (the staging directory is made next to the prefix)."""
    parent = prefix.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not os.path.isdir(parent):
        raise InstallError(
            f"cannot create the environment {prefix}: {parent} is not a directory; choose a "
            "--prefix below a directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InstallError(
            f"cannot create the environment {prefix}: {parent} is not writable; choose a "
            "--prefix in a directory you can write to"
        )


def _cannot_create(prefix: Path, error: OSError) -> InstallError:
    where = f" ({error.filename})" if error.filename else ""
    return InstallError(
        f"cannot create the environment {prefix}: {error.strerror or error}{where}; choose a "
        "--prefix in a directory you can write to, with free space"
    )


def _check_dist_info(artifact: Artifact, dist_info: str) -> None:
    """``<name>-<version>.dist-info`` must be the wheel's own (the binary distribution format):
    ``importlib.metadata`` finds a distribution by this name, not by METADATA's, so a wrong one
    makes the installed package report another name or version."""
    stem = dist_info[: -len(".dist-info")]
    name, sep, version = stem.rpartition("-")
    if (
        sep
        and name
        and canonicalize_name(name) == canonicalize_name(artifact.package)
        and same_version(version, artifact.version)
    ):
        return
    expected = re.sub(r"[-_.]+", "_", artifact.package) + f"-{artifact.version}.dist-info"
    raise InstallError(
        f"{artifact.filename}: its metadata directory is {dist_info!r} but the wheel filename "
        f"and the lock say {artifact.package} {artifact.version} ({expected!r}); the wheel "
        "is mislabelled: rebuild it or re-lock"
    )


def _check_requires_python(filename: str, requires: str, version: str) -> None:
    """A lock made for another micro version (3.11.7 vs the env's 3.11.2) can pick a release the
    env's interpreter cannot run; refuse it here rather than break at import time."""
    if not requires:
        return
    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier:
        return  # as pip does: an unparsable Requires-Python does not block installation
    if not spec.contains(version, prereleases=True):
        raise InstallError(
            f"{filename}: requires Python {requires}, but the env's interpreter is {version}; "
            f"lock for this interpreter: `wheelhouse lock --python /path/to/python{version[:4]}`"
        )


EXTRA_SITE_PTH = "wheelhouse-extra-site-packages.pth"


def _extra_site(path: Path, short: str) -> str:
    """The site-packages dir ``path`` stands for, for Python ``short`` (e.g. ``3.11``)."""
    if path.name == "site-packages" and path.is_dir():
        return os.path.abspath(path)
    site = path / "lib" / f"python{short}" / "site-packages"
    if site.is_dir():
        return os.path.abspath(site)
    raise InstallError(
        f"extra site-packages {path}: neither a site-packages directory nor a prefix with "
        f"lib/python{short}/site-packages; pass a package built for Python {short}"
    )


def _install_planned(
    items: list[_Wheel],
    workers: list[_Worker],
    answers: _Lines,
    groups: list[list[int]],
    root: Path,
    prefix: Path,
    facts: protocol.Facts,
    shebang: str,
    compile_bytecode: bool,
    trace: _Trace,
) -> InstallReport:
    short = facts.short
    sp_rel = f"lib/python{short}/site-packages"
    interpreter = f"{prefix}/bin/python"
    warnings: list[str] = []
    for wheel in items:
        summary = wheel.summary
        assert summary is not None
        artifact = wheel.artifact
        name = artifact.filename
        meta = f"{summary.dist_info}/METADATA"
        _check_dist_info(artifact, summary.dist_info)
        if canonicalize_name(summary.name) != canonicalize_name(artifact.package):
            raise InstallError(
                f"{name}: {meta} says Name {summary.name!r} but the lock expects package "
                f"{artifact.package!r}; the wheel does not belong to this lock entry: re-lock "
                f"or re-fetch"
            )
        if not same_version(summary.version, artifact.version):
            raise InstallError(
                f"{name}: {meta} says Version {summary.version!r} but the lock expects "
                f"{artifact.version!r}; the wheel does not belong to this lock entry: re-lock "
                f"or re-fetch"
            )
        _check_requires_python(name, summary.requires_python, facts.version)
        wheel.scripts = _scripts(wheel, interpreter)
        warnings.extend(summary.warnings)
    reserved = ["pyvenv.cfg", "bin/python", "bin/python3", f"bin/python{short}"]
    if facts.platlibdir != "lib":
        reserved.append(facts.platlibdir)
    skips = _find_conflicts(items, sp_rel, reserved)
    _write_layout(root, facts)
    setup = protocol.InstallSetup(str(root), str(prefix), shebang, compile_bytecode)
    for worker in workers:
        worker.send(setup)
    trace("checked, installing")
    _schedule(items, workers, answers, groups, skips)
    trace("all wheels installed")
    for worker in workers:
        worker.send(protocol.Finish())
    files = pycs = 0
    for done in _collect(workers, answers, protocol.Done):
        if _DEBUG:
            print(f"wheelhouse.install worker: {done.seconds}", file=sys.stderr)
        files += done.files
        pycs += done.pycs
        warnings.extend(done.warnings)
    return InstallReport(
        prefix=prefix,
        wheels=len(items),
        files=files,
        bytecode=pycs,
        scripts=sum(len(w.scripts or ()) for w in items),
        warnings=tuple(sorted(warnings)),
    )


def _schedule(
    items: list[_Wheel],
    workers: list[_Worker],
    answers: _Lines,
    groups: list[list[int]],
    skips: dict[int, set[str]],
) -> None:
    """Hand out wheels to install, most expensive first, keeping every worker busy.

    A worker installs the wheels it planned (their bytes and plans are in its memory); when it
    runs out, it takes over the cheapest remaining wheel of the busiest other worker (and re-reads
    that wheel itself). Two wheels are in flight per worker so none waits for a round trip.
    """
    by_index = {w.index: w for w in items}

    def cost(i: int) -> int:
        summary = by_index[i].summary
        assert summary is not None
        return summary.cost

    todo = [deque(sorted(group, key=lambda i: (-cost(i), i))) for group in groups]
    left = [sum(cost(i) for i in q) for q in todo]
    in_flight = [0] * len(workers)

    def feed(w: int) -> None:
        while in_flight[w] < 2:
            if todo[w]:
                i = todo[w].popleft()
                owner = w
            else:
                owner = max(range(len(todo)), key=lambda v: (left[v], -v))
                if not todo[owner]:
                    return
                i = todo[owner].pop()
            left[owner] -= cost(i)
            wheel = by_index[i]
            job = _job(i, wheel.artifact, wheel.path)
            skip = tuple(sorted(skips.get(i, ())))
            workers[w].send(protocol.WheelTask(job, skip, wheel.scripts or ()))
            in_flight[w] += 1

    for w in range(len(workers)):
        feed(w)
    while any(in_flight):
        w, message = answers.get()
        _expect(workers[w], message, protocol.Installed)
        in_flight[w] -= 1
        feed(w)


def _move_into_place(root: Path, prefix: Path, replace: bool) -> None:
    os.chmod(root, 0o755)  # mkdtemp made it 0700
    if not os.path.lexists(prefix):
        try:
            os.rename(root, prefix)
            return
        except OSError as e:
            if not os.path.lexists(prefix):
                raise InstallError(f"cannot move the new environment to {prefix}: {e}") from None
    if not replace:
        raise InstallError(f"{prefix} already exists; remove it or pass --replace to replace it")
    if _exchange(root, prefix):
        shutil.rmtree(root, ignore_errors=True)  # root now holds the old env
        return
    old = Path(tempfile.mkdtemp(prefix=temp_prefix(prefix.name), dir=prefix.parent))
    os.rename(prefix, old / "env")
    try:
        os.rename(root, prefix)
    except OSError:
        os.rename(old / "env", prefix)
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so a replaced env is
    never absent, not even for an instant; False where the call is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)
