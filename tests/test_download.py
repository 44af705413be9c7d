"""Downloader against a real HTTP server on 127.0.0.1: get, get_many, get_unhashed, verification.

The concerns behind the Downloader have their own test files: test_transport (retries, resume,
redirects, TLS, proxies, pooled connections), test_credentials, test_cache, test_progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from downloadtools import JSON_TYPE, downloader
from indexserver import IndexServer
from sdistmaker import make_sdist
from wheelmaker import artifact_for, make_wheel

from wheelhouse.errors import FetchError, HashMismatchError, LockError, NotFoundError
from wheelhouse.model import Artifact

Factory = Callable[..., IndexServer]
pytestmark = pytest.mark.usefixtures("download_env")


# --- happy path -----------------------------------------------------------------------------------


def test_get_downloads_verifies_and_caches(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    with downloader(cache) as dl:
        got = dl.get(art)
    assert got.read_bytes() == wheel.read_bytes()
    assert got.name == wheel.name
    assert art.sha256 in got.parts  # content-addressed
    assert got.is_relative_to(cache)
    assert sorted(p.name for p in got.parent.iterdir()) == [wheel.name]  # no temp left

    index_server.clear_requests()
    with downloader(cache) as dl:
        assert dl.get(art) == got
    assert index_server.requests == []  # cache hit: no request at all


def test_get_many_fetches_in_parallel(index_server: IndexServer, cache: Path) -> None:
    wheels = [make_wheel(index_server.root, f"pkg{i}", "1.0") for i in range(6)]
    arts = [index_server.artifact(w) for w in wheels]
    index_server.delay("/files/*", 0.3)
    start = time.monotonic()
    with downloader(cache, jobs=6) as dl:
        got = dl.get_many(arts)
    elapsed = time.monotonic() - start
    assert list(got) == [w.name for w in wheels]
    for wheel in wheels:
        assert got[wheel.name].read_bytes() == wheel.read_bytes()
    assert elapsed < 1.2, f"6 x 0.3 s downloads took {elapsed:.2f} s: not parallel"


def test_same_artifact_twice_is_fetched_once(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    with downloader(cache) as dl:
        got = dl.get_many([art, art])
    assert list(got) == [wheel.name]
    assert len(index_server.requests) == 1


def test_get_unhashed_downloads_once_into_the_cache(index_server: IndexServer, cache: Path) -> None:
    """A file listed without a hash: one download gives its sha256 and fills the cache."""
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    with downloader(cache) as dl:
        path, sha256 = dl.get_unhashed(index_server.file_url(wheel.name), wheel.name)
        assert sha256 == art.sha256
        assert path.read_bytes() == wheel.read_bytes()
        assert path.is_relative_to(cache) and sha256 in path.parts
        assert [p.name for p in cache.iterdir()] == ["sha256"]  # no temp file left
        assert dl.get(art) == path
    assert len(index_server.requests) == 1


def test_get_unhashed_404_names_the_file(index_server: IndexServer, cache: Path) -> None:
    name = "gone-1.0-py3-none-any.whl"
    with downloader(cache) as dl, pytest.raises(NotFoundError) as info:
        dl.get_unhashed(index_server.file_url(name), name)
    assert name in str(info.value) and "404" in str(info.value)
    assert [p.name for p in cache.iterdir()] == []


# --- wrong bytes ----------------------------------------------------------------------------------


def test_wrong_sha256_is_a_hash_mismatch(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    bad = wheel.read_bytes()[:-1] + bytes([wheel.read_bytes()[-1] ^ 1])
    index_server.corrupt(index_server.file_path(wheel.name), bad)
    with downloader(cache) as dl, pytest.raises(HashMismatchError) as info:
        dl.get(art)
    message = str(info.value)
    assert wheel.name in message
    assert art.sha256 in message
    assert hashlib.sha256(bad).hexdigest() in message
    assert "lock" in message and "index" in message
    assert len(index_server.requests) == 2  # one re-download, then fail
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []


def test_wrong_size_is_a_hash_mismatch(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel, size=wheel.stat().st_size + 1)
    with downloader(cache) as dl, pytest.raises(HashMismatchError) as info:
        dl.get(art)
    assert "size" in str(info.value) and wheel.name in str(info.value)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_oversized_body_stops_reading(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    index_server.corrupt(index_server.file_path(wheel.name), b"x" * 20_000_000)
    with downloader(cache) as dl, pytest.raises(HashMismatchError) as info:
        dl.get(art)
    assert f"more than {art.size} bytes" in str(info.value)

    # after a RST the kernel may discard bytes the client had not read yet, so the resume
    # offset varies (and is 0, i.e. no Range, if nothing was read): only the result is fixed


# --- local files ----------------------------------------------------------------------------------


def test_path_artifacts_are_relative_to_base_dir(tmp_path: Path, cache: Path) -> None:
    lock_dir = tmp_path / "project"
    (lock_dir / "wheels").mkdir(parents=True)
    wheel = make_wheel(lock_dir / "wheels", "local", "1.0")
    data = wheel.read_bytes()
    art = artifact_for(wheel, path=f"wheels/{wheel.name}")
    with downloader(cache, base_dir=lock_dir) as dl:
        got = dl.get(art)
        assert got.read_bytes() == data and got != wheel and got.is_relative_to(cache)
        file_url = dataclasses.replace(art, path=None, url=wheel.as_uri())
        assert dl.get(file_url).read_bytes() == data

    with (
        downloader(tmp_path / "cache2", base_dir=tmp_path) as dl,
        pytest.raises(FetchError) as info,
    ):
        dl.get(art)
    assert wheel.name in str(info.value) and "wheels/" in str(info.value)

    wheel.write_bytes(data + b"changed")
    with (
        downloader(tmp_path / "cache3", base_dir=lock_dir) as dl,
        pytest.raises(HashMismatchError) as mismatch,
    ):
        dl.get(art)
    assert "local file" in str(mismatch.value) and wheel.name in str(mismatch.value)


# --- lock problems, get_many failures -------------------------------------------------------------


def test_bad_sha256_and_duplicate_names_are_lock_errors(cache: Path) -> None:
    art = Artifact("x-1-py3-none-any.whl", "x", "1", "abc", "wheel", url="http://127.0.0.1:9/x")
    with downloader(cache) as dl:
        with pytest.raises(LockError):
            dl.get(art)
        one = dataclasses.replace(art, sha256="a" * 64)
        two = dataclasses.replace(art, sha256="b" * 64)
        with pytest.raises(LockError) as info:
            dl.get_many([one, two])
    assert art.filename in str(info.value) and "a" * 64 in str(info.value)


def test_get_many_raises_the_first_failure_and_cancels_the_rest(
    index_server: IndexServer, cache: Path
) -> None:
    wheels = [make_wheel(index_server.root, f"pkg{i}", "1.0") for i in range(8)]
    arts = [index_server.artifact(w) for w in wheels]
    missing = dataclasses.replace(arts[0], url=index_server.file_url("missing.whl"))
    index_server.delay("/files/pkg*", 0.3)
    with downloader(cache, jobs=2) as dl, pytest.raises(NotFoundError) as info:
        dl.get_many([missing, *arts[1:]])
    assert arts[0].filename in str(info.value)
    # at most the downloads already running were made; the queued ones were cancelled
    assert len(index_server.requests_for("/files/pkg*")) <= 2


# --- the test index itself, with a real pip -------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("json_api", [True, False], ids=["json", "html"])
def test_pip_downloads_from_the_index_server(
    index_server_factory: Factory, tmp_path: Path, json_api: bool
) -> None:
    server = index_server_factory(json_api=json_api)
    old = make_wheel(server.root, "Demo.Pkg", "1.0")
    new = make_wheel(server.root, "Demo.Pkg", "2.0", requires_python=">=3.99")
    server.requires_python[new.name] = ">=3.99"
    make_sdist(server.root, "Demo.Pkg", "1.0")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "-d", str(out), "--index-url", server.simple_url, "demo-pkg"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == [old.name]  # 2.0 skipped by requires-python
    assert (out / old.name).read_bytes() == old.read_bytes()
    accept = server.requests_for("/simple/demo-pkg/")[0].headers.get("Accept", "")
    assert JSON_TYPE in accept
