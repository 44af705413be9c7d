"""The content-addressed cache (wheelhouse/cache.py) through the Downloader: verified hits read
once, downloads never read back, bad entries evicted, the cache location, and several
Downloaders sharing one cache."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from downloadtools import big_wheel, downloader, reads_below
from indexserver import IndexServer
from wheelmaker import make_wheel

from wheelhouse.cache import check_filename, default_cache_dir
from wheelhouse.errors import FetchError, LockError
from wheelhouse.model import Artifact

pytestmark = pytest.mark.usefixtures("download_env")


def test_download_is_never_read_back_and_a_hit_is_read_once(
    index_server: IndexServer, cache: Path
) -> None:
    """Bytes are hashed as they are written, so a download never opens its cache entry again;
    a later hit (another Downloader: another run) opens it exactly once, to check it."""
    wheel = big_wheel(index_server.root)
    art = index_server.artifact(wheel)
    with downloader(cache) as dl, reads_below(cache) as reads:
        entry = dl.get(art)
    assert entry not in reads and len(index_server.requests) == 1
    index_server.clear_requests()
    with downloader(cache) as dl, reads_below(cache) as reads:
        assert dl.get(art) == entry
    assert reads == [entry] and index_server.requests == []
    assert entry.read_bytes() == wheel.read_bytes()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupt_cache_entry_is_evicted_and_downloaded_again(
    index_server: IndexServer, cache: Path, damage: str
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    with downloader(cache) as dl:
        cached = dl.get(art)
        data = bytearray(cached.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0xFF
        elif damage == "truncate":
            del data[len(data) // 2 :]
        else:
            data.clear()
        cached.write_bytes(bytes(data))
        index_server.clear_requests()
        again = dl.get(art)
    assert again.read_bytes() == wheel.read_bytes()
    assert len(index_server.requests) == 1


def test_disabled_cache_uses_a_private_temp_dir(index_server: IndexServer, tmp_path: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    dl = downloader(False)
    assert dl.cache_dir is None
    got = dl.get(index_server.artifact(wheel))
    assert got.read_bytes() == wheel.read_bytes()
    dl.close()
    assert not got.exists()


def test_default_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "wheelhouse"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "wheelhouse"
    monkeypatch.setenv("WHEELHOUSE_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    with downloader(None) as dl:
        assert dl.cache_dir == tmp_path / "explicit" and dl.cache_dir.is_dir()


def test_uncreatable_default_cache_falls_back_to_temp(
    index_server: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "homeless-shelter"
    blocker.write_text("a file, so nothing can be created below it (even as root)")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    wheel = make_wheel(index_server.root, "demo", "1.0")
    with downloader(None) as dl:
        assert dl.cache_dir is None
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()


def test_explicit_uncreatable_cache_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FetchError) as info:
        downloader(blocker / "cache")
    assert str(blocker / "cache") in str(info.value)


@pytest.mark.parametrize("name", ["../evil.whl", "a/b.whl", ".hidden.whl", "", ".."])
def test_unsafe_filenames_are_refused(cache: Path, name: str) -> None:
    with pytest.raises(LockError):
        check_filename(name)
    art = Artifact(name, "x", "1", "0" * 64, "wheel", url="http://127.0.0.1:9/x")
    with downloader(cache) as dl, pytest.raises(LockError):
        dl.get(art)


def test_two_threads_share_a_cache(index_server: IndexServer, cache: Path) -> None:
    wheel = big_wheel(index_server.root)
    art = index_server.artifact(wheel)
    index_server.delay("/files/*", 0.2)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with downloader(cache) as dl:
                results.append(dl.get(art).read_bytes())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [wheel.read_bytes()] * 4
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [wheel.name]
