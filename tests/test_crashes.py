"""Concurrency and crashes: `fetch` and `install` SIGKILLed at random points, many times over.

After every kill: the cache never holds a bad file under a final name, a wheelhouse never holds a
file under its final name with the wrong sha256, a prefix is either absent or a complete
environment (byte for byte the reference one); and the next run succeeds. A slow loopback index
(``IndexServer.throttle``) keeps the fetches mid-body for most of their run.

The kill time is drawn uniformly over a measured run, with a fixed seed (printed on failure).
Half of the kills hit only the main process, as a crash would; the others the whole process
group, as Nix or a CI runner ending a build does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from contract import ROOT, lock_data, write_lock
from indexserver import IndexServer
from test_catalogue_install import tree_digest
from wheelmaker import artifact_for, make_wheel

from wheelhouse import nar
from wheelhouse.model import Artifact
from wheelhouse.tempfiles import TEMP_RE

FETCH_KILLS = 24
INSTALL_KILLS = 24
SEED = int(os.environ.get("WHEELHOUSE_CRASH_SEED", "20261127"))


def start(*argv: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "wheelhouse", *map(str, argv)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the test can end all of it
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    _out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


def kill_at(proc: subprocess.Popen[bytes], delay: float, whole_group: bool) -> bool:
    """SIGKILL after ``delay`` seconds (main process or group); True if it was still running."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=delay)
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    # Always end what is left of the group (orphaned install workers), by the group's id.
    if whole_group or running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return running


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_temp(name: str) -> bool:
    return TEMP_RE.fullmatch(name) is not None


# --- fetch -------------------------------------------------------------------------------------


def check_cache(cache: Path) -> None:
    """Every final-named entry ``sha256/xx/<digest>/<name>`` has exactly that digest."""
    for path in cache.rglob("*"):
        if path.is_file() and not is_temp(path.name):
            assert sha256(path) == path.parent.name, f"bad cache entry {path}"


def check_wheelhouse(dest: Path, arts: Sequence[Artifact]) -> None:
    """Absent, or only final-named artifact files with their locked bytes (and temp files)."""
    if not dest.exists():
        return
    expected = {a.filename: a.sha256 for a in arts}
    for path in dest.iterdir():
        if is_temp(path.name):
            continue
        assert path.name in expected, f"unexpected file {path}"
        assert sha256(path) == expected[path.name], f"partial or wrong file {path}"


@pytest.fixture
def slow_index(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> IndexServer:
    server = index_server_factory(tmp_path / "index")
    rng = random.Random(1)
    for name, size in [("big", 400_000), ("mid", 150_000), ("small", 20_000), ("tiny", 0)]:
        payload: dict[str, bytes | str] = {f"{name}/__init__.py": ""}
        if size:
            payload[f"{name}/blob.bin"] = rng.randbytes(size)
        make_wheel(server.root, name, "1.0", payload)
    server.throttle("/files/*", 16_384, 0.01)  # ~1.5 MB/s: a download takes a few tenths
    return server


def test_fetch_killed_at_random_points(slow_index: IndexServer, tmp_path: Path) -> None:
    wheels = sorted(slow_index.root.iterdir())
    arts = [artifact_for(w, url=slow_index.file_url(w.name), path=None) for w in wheels]
    lock = write_lock(tmp_path / "pylock.toml", lock_data(arts, files={w.name: w for w in wheels}))
    dest, cache = tmp_path / "out" / "wh", tmp_path / "cache"
    argv = ("fetch", lock, "-d", dest, "--cache-dir", cache, "-j", "2")

    started = time.monotonic()
    finish(start(*argv))
    full_run = time.monotonic() - started
    shutil.rmtree(dest)
    shutil.rmtree(cache)
    rng = random.Random(SEED)
    killed = 0
    for i in range(FETCH_KILLS):
        if i % 4 != 3:
            shutil.rmtree(cache, ignore_errors=True)  # make it download again (mostly)
        if i % 2 == 0:
            shutil.rmtree(dest, ignore_errors=True)  # a new wheelhouse (built in a temp sibling)
        elif dest.is_dir():
            for path in rng.sample(sorted(dest.iterdir()), k=2):  # an existing one, to repair
                path.unlink()
        delay = rng.uniform(0.1, full_run * 0.9)
        killed += kill_at(start(*argv), delay, whole_group=bool(i % 2))
        context = f"seed {SEED}, iteration {i}, killed after {delay:.2f}s"
        try:
            check_cache(cache)
            check_wheelhouse(dest, arts)
        except AssertionError as exc:
            raise AssertionError(f"{context}: {exc}") from None
        if i % 6 == 5:  # the next run succeeds and leaves no temp files
            finish(start(*argv))
            assert sorted(os.listdir(dest)) == sorted(a.filename for a in arts), context
            assert sorted(os.listdir(dest.parent)) == ["wh"], context
            check_wheelhouse(dest, arts)
    assert killed >= FETCH_KILLS // 3, "the runs ended before the kills: make them slower"
    shutil.rmtree(dest)
    finish(start(*argv))
    assert (
        nar.sri(nar.nar_sha256(dest))
        == lock_data(arts, files={w.name: w for w in wheels})["tool"]["wheelhouse"]["targets"][0][
            "wheelhouse-nar-hash"
        ]
    )


def test_two_fetch_processes_on_one_cache_and_dest(slow_index: IndexServer, tmp_path: Path) -> None:
    wheels = sorted(slow_index.root.iterdir())
    arts = [artifact_for(w, url=slow_index.file_url(w.name), path=None) for w in wheels]
    lock = write_lock(tmp_path / "pylock.toml", lock_data(arts, files={w.name: w for w in wheels}))
    dest, cache = tmp_path / "out" / "wh", tmp_path / "cache"
    for round_ in range(3):  # new dest and cold cache; existing dest; new dest and warm cache
        if round_ != 1:
            shutil.rmtree(dest, ignore_errors=True)
        if round_ == 1:
            (dest / wheels[0].name).unlink()
        procs = [start("fetch", lock, "-d", dest, "--cache-dir", cache) for _ in range(2)]
        for proc in procs:
            finish(proc)
        assert sorted(os.listdir(dest)) == sorted(w.name for w in wheels)
        check_wheelhouse(dest, arts)
        check_cache(cache)
        assert not [p for p in cache.rglob(".*") if p.is_file()]  # no temp files in the cache
        assert os.listdir(dest.parent) == ["wh"]


# --- install -----------------------------------------------------------------------------------


def test_install_killed_at_random_points(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wh"
    modules = {f"many/m{i}.py": f"def f{i}(x):\n    return x * {i}\n" * 20 for i in range(300)}
    wheels = [
        make_wheel(wheelhouse, "many", "1.0", {"many/__init__.py": "", **modules}),
        make_wheel(
            wheelhouse,
            "app",
            "1.0",
            {"app/__init__.py": "", "app/cli.py": "def main(): pass\n"},
            entry_points={"console_scripts": {"app": "app.cli:main"}},
            data={"data": {"share/app/x.txt": "x\n"}},
        ),
        make_wheel(wheelhouse, "lib", "2.0", {"lib/__init__.py": "X = 1\n"}),
    ]
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(w) for w in wheels]))
    prefix = tmp_path / "out" / "env"
    argv = ("install", lock, "--wheelhouse", wheelhouse, "--prefix", prefix, "-j", "2")

    started = time.monotonic()
    finish(start(*argv))
    full_run = time.monotonic() - started
    reference = tree_digest(prefix)
    rng = random.Random(SEED)
    killed = 0
    for i in range(INSTALL_KILLS):
        replace = i % 3 == 2 and prefix.exists()  # swap a complete env for a new one
        if not replace:
            shutil.rmtree(prefix, ignore_errors=True)
        delay = rng.uniform(0.1, full_run * 0.9)
        proc = start(*argv, *(["--replace"] if replace else []))
        killed += kill_at(proc, delay, whole_group=bool(i % 2))
        context = f"seed {SEED}, iteration {i}, killed after {delay:.2f}s"
        if os.path.lexists(prefix):  # absent, or complete: never half an environment
            assert tree_digest(prefix) == reference, context
    assert killed >= INSTALL_KILLS // 3, "the runs ended before the kills: make them slower"
    proc = start(*argv, *(["--replace"] if prefix.exists() else []))
    finish(proc)
    assert tree_digest(prefix) == reference
    done = subprocess.run(
        [prefix / "bin" / "python", "-c", "import many.m299, app, lib"], check=False
    )
    assert done.returncode == 0
