"""Catalogue, fetch stage: every fault of the index, the network, the cache or the disk gives one
clear error (or a bounded recovery) through ``wheelhouse fetch``, and never a partial wheelhouse.

One case per failure mode of /work/shared/README.md ("Bad inputs and faults to try", Fetch). The
Downloader's mechanics are unit-tested in tests/test_download.py and tests/test_fetch.py; here
each case runs the command a user (or the Nix builder) runs, against a fault-injecting loopback
index, and checks the exit code, the one-line message, what the server saw and what is on disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from contract import (
    ROOT,
    assert_absent,
    assert_error,
    assert_error_line,
    assert_ok,
    lock_data,
    run_cli,
    run_module,
    write_lock,
)
from indexserver import IndexServer
from wheelmaker import make_wheel

from wheelhouse import download, nar
from wheelhouse.download import Downloader
from wheelhouse.errors import FetchError, HashMismatchError, NotFoundError
from wheelhouse.model import Artifact

Factory = Callable[..., IndexServer]
SECRET = "pw-5e1f0c3a-never-shown"


class FastDownloader(Downloader):
    """The CLI's downloader with short backoff, so retry-exhausting cases take milliseconds."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.update(backoff=0.01, timeout=5.0)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "Downloader", FastDownloader)  # what the CLI uses


def wheel_bytes(root: Path, name: str, size: int = 0) -> Path:
    files = {f"{name}/__init__.py": f"NAME = {name!r}\n"}
    payload: dict[str, bytes | str] = dict(files)
    if size:
        payload[f"{name}/blob.bin"] = random.Random(name).randbytes(size)  # incompressible
    return make_wheel(root, name, "1.0", payload)


def artifact(server: IndexServer, wheel: Path, **changes: object) -> Artifact:
    data = wheel.read_bytes()
    art = Artifact(
        filename=wheel.name,
        package=wheel.name.split("-")[0],
        version="1.0",
        sha256=hashlib.sha256(data).hexdigest(),
        kind="wheel",
        url=server.file_url(wheel.name),
        size=len(data),
    )
    return dataclasses.replace(art, **changes)  # type: ignore[arg-type]


@dataclasses.dataclass
class Served:
    server: IndexServer
    wheels: list[Path]
    lock: Path

    @property
    def big(self) -> Path:
        return self.wheels[0]

    def path(self, wheel: Path) -> str:
        return self.server.file_path(wheel.name)


def serve(
    factory: Factory, tmp_path: Path, sizes: Sequence[int] = (300_000, 0, 0), **changes: Any
) -> Served:
    """An index with len(sizes) wheels (the first one big) and a lock for all of them.

    ``changes`` are applied to the first wheel's artifact (e.g. a wrong sha256); the lock's NAR
    hash is the one of the true files.
    """
    server = factory(tmp_path / "index")
    names = ["big", "small", "tiny", "wee", "mini"][: len(sizes)]
    wheels = [wheel_bytes(server.root, n, s) for n, s in zip(names, sizes, strict=True)]
    arts = [artifact(server, w, **(changes if i == 0 else {})) for i, w in enumerate(wheels)]
    data = lock_data(arts, files={w.name: w for w in wheels})
    return Served(server, wheels, write_lock(tmp_path / "project" / "pylock.toml", data))


@pytest.fixture
def served(index_server_factory: Factory, tmp_path: Path) -> Served:
    return serve(index_server_factory, tmp_path)


def assert_wheelhouse(dest: Path, wheels: Sequence[Path]) -> None:
    assert sorted(os.listdir(dest)) == sorted(w.name for w in wheels)
    for wheel in wheels:
        assert (dest / wheel.name).read_bytes() == wheel.read_bytes()


def cache_entries(cache: Path) -> dict[str, Path]:
    """Final-named cache files (temp files start with '.')."""
    return {p.name: p for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")}


# --- wrong bytes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, needle",
    [({"sha256": "0" * 64}, "sha256 " + "0" * 64), ({"size": 12345}, "size 12345")],
    ids=["wrong-sha256", "wrong-size"],
)
def test_wrong_bytes_are_refused_and_nothing_is_kept(
    index_server_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    needle: str,
) -> None:
    s = serve(index_server_factory, tmp_path, **change)
    dest, cache = tmp_path / "out" / "wh", tmp_path / "cache"
    outcome = run_cli(capsys, "fetch", s.lock, "-d", dest, "--cache-dir", cache)
    assert_error(outcome, HashMismatchError, s.big.name, "(big 1.0)", needle, "re-lock")
    assert_absent(dest)
    assert s.big.name not in cache_entries(cache)  # the bad bytes never enter the cache
    assert len(s.server.requests_for(s.path(s.big))) == 2  # downloaded once more, then refused


# --- the network -------------------------------------------------------------------------------


def test_connection_dropped_mid_body_is_resumed(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], fast: None
) -> None:
    served.server.drop_after(served.path(served.big), 100_000, times=2)
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", tmp_path / "wh"))
    assert_wheelhouse(tmp_path / "wh", served.wheels)
    ranges = [r.headers.get("Range") for r in served.server.requests_for(served.path(served.big))]
    assert ranges == [None, "bytes=100000-", "bytes=200000-"]


def test_connection_dropped_every_time_gives_up_after_bounded_retries(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], fast: None
) -> None:
    served.server.drop_after(served.path(served.big), 1000, times=None, reset=True)
    dest = tmp_path / "wh"
    outcome = run_cli(capsys, "fetch", served.lock, "-d", dest)
    assert_error(outcome, FetchError, served.big.name, "giving up", "after 5 attempts")
    assert len(served.server.requests_for(served.path(served.big))) == 5
    assert_absent(dest)


def test_404_fails_at_once_without_swapping_in_another_file(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The index offers another file of the same version: it must not be taken instead.
    make_wheel(served.server.root, "big", "1.0", tag="py2.py3-none-any")
    served.server.fail(served.path(served.big), 404, times=None)
    dest = tmp_path / "wh"
    outcome = run_cli(capsys, "fetch", served.lock, "-d", dest)
    assert_error(outcome, NotFoundError, served.big.name, "HTTP 404", "re-lock")
    big_requests = [r.path for r in served.server.requests if "big" in r.path]
    assert big_requests == [served.path(served.big)]  # asked once, nothing else, no index page
    assert_absent(dest)


@pytest.mark.parametrize(
    "status, retry_after, minimum",
    [(500, None, 0.5), (503, None, 0.5), (429, None, 0.5), (429, 2, 2.0), (503, 1, 1.0)],
)
def test_5xx_and_429_are_retried_with_backoff(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    status: int,
    retry_after: int | None,
    minimum: float,
) -> None:
    """The CLI's real backoff (0.5 s first), or the server's Retry-After when longer."""
    served.server.fail(served.path(served.big), status, times=1, retry_after=retry_after)
    started = time.monotonic()
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", tmp_path / "wh"))
    assert time.monotonic() - started >= minimum
    assert len(served.server.requests_for(served.path(served.big))) == 2
    assert_wheelhouse(tmp_path / "wh", served.wheels)


def test_5xx_forever_gives_up(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], fast: None
) -> None:
    served.server.fail(served.path(served.big), 503, times=None)
    outcome = run_cli(capsys, "fetch", served.lock, "-d", tmp_path / "wh")
    assert_error(outcome, FetchError, served.big.name, "HTTP 503", "after 5 attempts", "run again")
    assert_absent(tmp_path / "wh")


@pytest.mark.parametrize("other_needs_auth", [False, True], ids=["open", "auth"])
def test_redirect_to_another_host_never_forwards_authorization(
    index_server_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    other_needs_auth: bool,
) -> None:
    s = serve(index_server_factory, tmp_path)
    s.server.require_auth("me", SECRET)
    mirror = index_server_factory(s.server.root)  # same files, other origin ("localhost")
    if other_needs_auth:
        mirror.require_auth("me", SECRET)
    elsewhere = mirror.file_url(s.big.name).replace("127.0.0.1", "localhost")
    s.server.redirect(s.path(s.big), elsewhere)
    monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1=me:{SECRET}")
    outcome = run_cli(capsys, "fetch", s.lock, "-d", tmp_path / "wh")
    assert all(r.headers.get("Authorization") for r in s.server.requests)
    assert mirror.requests and not any(r.headers.get("Authorization") for r in mirror.requests)
    if other_needs_auth:
        message = assert_error(
            outcome, FetchError, s.big.name, "redirected to http://localhost:", "HTTP 401",
            "never sent across a redirect to another host (localhost)",
        )  # fmt: skip
        assert SECRET not in message
        assert_absent(tmp_path / "wh")
    else:
        assert_ok(outcome)
        assert_wheelhouse(tmp_path / "wh", s.wheels)


# --- the cache ---------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "empty", "symlink"])
def test_damaged_cache_entry_is_evicted_and_downloaded_again(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    cache = tmp_path / "cache"
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", tmp_path / "first", "--cache-dir", cache))
    entry = cache_entries(cache)[served.big.name]
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        entry.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "empty":
        entry.write_bytes(b"")
    else:  # a link to bad bytes elsewhere is replaced by a regular file
        (tmp_path / "elsewhere").write_bytes(b"not a wheel")
        entry.unlink()
        entry.symlink_to(tmp_path / "elsewhere")
    served.server.clear_requests()
    dest = tmp_path / "second"
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", dest, "--cache-dir", cache))
    assert_wheelhouse(dest, served.wheels)
    assert [r.path for r in served.server.requests] == [served.path(served.big)]
    assert not entry.is_symlink() and entry.read_bytes() == data


# --- processes killed, or two at once ----------------------------------------------------------


def _fetch_process(lock: Path, dest: Path, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wheelhouse", "fetch", str(lock), "-d", str(dest),
         "--cache-dir", str(cache)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_killed_mid_download_leaves_no_partial_file_and_the_next_run_succeeds(
    served: Served, tmp_path: Path
) -> None:
    served.server.throttle(served.path(served.big), 16_384, 0.05, times=1)
    dest, cache = tmp_path / "out" / "wh", tmp_path / "cache"
    proc = _fetch_process(served.lock, dest, cache)
    try:
        # Kill it once the big file is half-way into a temp file of the cache.
        def half_way() -> bool:
            temps = [p for p in cache.rglob(".big-*") if p.is_file()]
            return any(p.stat().st_size > 100_000 for p in temps)

        _wait_for(half_way)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()  # built in a temp sibling: absent until complete
    assert served.big.name not in cache_entries(cache)  # only a temp file, never the final name
    rerun = _fetch_process(served.lock, dest, cache)
    _out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert_wheelhouse(dest, served.wheels)
    assert os.listdir(dest.parent) == ["wh"]  # the dead run's temp dir was cleaned up


def test_two_fetchers_at_once_on_one_cache_and_dest(served: Served, tmp_path: Path) -> None:
    for wheel in served.wheels:
        served.server.throttle(served.path(wheel), 32_768, 0.02)
    dest, cache = tmp_path / "out" / "wh", tmp_path / "cache"
    procs = [_fetch_process(served.lock, dest, cache) for _ in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert err == ""
    assert_wheelhouse(dest, served.wheels)
    assert os.listdir(dest.parent) == ["wh"]
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == sorted(
        w.name for w in served.wheels
    )


# --- the disk ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root); the test is skipped where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; see the RLIMIT_FSIZE variant")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _files_below(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


@pytest.mark.parametrize("full", ["dest", "cache"])
def test_disk_full_is_a_clear_error_and_leaves_nothing(
    index_server_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_disk: Path,
    full: str,
) -> None:
    s = serve(index_server_factory, tmp_path, sizes=(1_500_000, 0))
    dest = (tiny_disk if full == "dest" else tmp_path) / "wh"
    cache = (tiny_disk if full == "cache" else tmp_path) / "cache"
    outcome = run_cli(capsys, "fetch", s.lock, "-d", dest, "--cache-dir", cache)
    message = assert_error(outcome, FetchError, s.big.name, "No space left on device")
    assert "free" in message or "space" in message
    assert_absent(dest)
    left = _files_below(tiny_disk)  # complete verified cache entries only: no temp, no partial
    assert all(name.endswith(s.wheels[1].name) and "/." not in name for name in left), left
    # With room again, the same command succeeds.
    dest2 = tmp_path / "wh2"
    assert_ok(run_cli(capsys, "fetch", s.lock, "-d", dest2, "--cache-dir", tmp_path / "cache2"))
    assert_wheelhouse(dest2, s.wheels)


def _limit_file_size() -> None:  # runs in the child, before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_file_size_limit_is_a_clear_error_and_leaves_nothing(
    index_server_factory: Factory, tmp_path: Path
) -> None:
    """The unprivileged variant of a full disk: RLIMIT_FSIZE makes writes fail mid-file."""
    s = serve(index_server_factory, tmp_path, sizes=(1_000_000, 0))
    dest, cache = tmp_path / "out" / "wh", tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "wheelhouse", "fetch", str(s.lock), "-d", str(dest),
         "--cache-dir", str(cache)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert_error_line(proc.returncode, proc.stderr, 1, s.big.name, "File too large", "free")
    assert_absent(dest)
    files = [p for p in cache.rglob("*") if p.is_file()]
    # No temp file and no partial big wheel. The small wheel is there only if its download ended
    # before the big one's failure cancelled it (under load it often has not).
    assert [p.name for p in files] in ([], [s.wheels[1].name])
    for file in files:
        assert file.read_bytes() == s.wheels[1].read_bytes()


# --- the lock changed, its wheelhouse hash did not ---------------------------------------------


def test_stale_wheelhouse_hash_fails_and_leaves_nothing(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock edited by hand (one wheel replaced, new sha256) but with the old NAR hash."""
    new = make_wheel(served.server.root, "small", "1.0", {"small/__init__.py": "X = 2\n"})
    arts = [artifact(served.server, w) for w in served.wheels]  # "small" now has new bytes
    old_hash = nar.sri(nar.flat_directory_sha256({w.name: w for w in served.wheels[:1]}))
    write_lock(served.lock, lock_data(arts, nar_hash=old_hash))
    dest = tmp_path / "out" / "wh"
    outcome = run_cli(capsys, "fetch", served.lock, "-d", dest)
    assert_error(outcome, HashMismatchError, str(served.lock), "is stale", old_hash, "regenerate")
    assert_absent(dest)
    assert new.exists()
    # --no-verify-nar is the escape hatch (the files themselves are all verified).
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", dest, "--no-verify-nar"))


def test_other_files_in_an_existing_wheelhouse_are_not_a_stale_hash(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock's NAR hash covers the locked files only: a file of the user's and a concurrent
    fetch's temp file in ``dest`` are left alone and do not fail the check."""
    dest = tmp_path / "out" / "wh"
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", dest))
    (dest / "NOTES.txt").write_text("mine\n")
    live = dest / f".{served.wheels[0].name}.wheelhouse-tmp-{os.getpid()}-abc123"
    live.write_bytes(b"another fetch is writing this")
    (dest / served.wheels[1].name).unlink()
    assert_ok(run_cli(capsys, "fetch", served.lock, "-d", dest))
    assert sorted(os.listdir(dest)) == sorted(
        [live.name, "NOTES.txt", *(w.name for w in served.wheels)]
    )
    for wheel in served.wheels:
        assert (dest / wheel.name).read_bytes() == wheel.read_bytes()


# --- TLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "NIX_SSL_CERT_FILE"])
def test_untrusted_certificate_is_refused_until_its_ca_is_given(
    index_server_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    self_signed: tuple[Path, Path],
    variable: str,
) -> None:
    server = index_server_factory(tmp_path / "index", tls=self_signed)
    wheel = wheel_bytes(server.root, "demo")
    lock = write_lock(tmp_path / "pylock.toml", lock_data([artifact(server, wheel)]))
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "NIX_SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    outcome = run_cli(capsys, "fetch", lock, "-d", tmp_path / "wh")
    assert_error(outcome, FetchError, wheel.name, "certificate verification failed", variable[4:])
    assert server.requests == []  # nothing was sent over the unverified connection
    assert_absent(tmp_path / "wh")
    monkeypatch.setenv(variable, str(self_signed[0]))
    assert_ok(run_cli(capsys, "fetch", lock, "-d", tmp_path / "wh"))
    monkeypatch.setenv(variable, str(tmp_path / "missing.pem"))  # a wrong bundle: refused
    outcome = run_cli(capsys, "fetch", lock, "-d", tmp_path / "wh2", "--no-cache")
    assert_error(outcome, FetchError, variable[4:])
    assert_absent(tmp_path / "wh2")


# --- through a real process --------------------------------------------------------------------


def test_404_through_a_real_process(served: Served, tmp_path: Path) -> None:
    served.server.fail(served.path(served.big), 404, times=None)
    proc = run_module("fetch", served.lock, "-d", tmp_path / "wh")
    assert_error_line(proc.returncode, proc.stderr, 1, served.big.name, "404")
    assert proc.stdout == ""
    assert_absent(tmp_path / "wh")
