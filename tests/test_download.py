"""Downloader against a real HTTP server on 127.0.0.1: cache, retries, resume, auth, TLS, errors."""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from indexserver import IndexServer
from sdistmaker import make_sdist
from wheelmaker import artifact_for, make_wheel

from wheelhouse.download import Downloader, check_filename, default_cache_dir, redact
from wheelhouse.errors import FetchError, HashMismatchError, LockError, NotFoundError
from wheelhouse.model import Artifact

Factory = Callable[..., IndexServer]
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PASSWORD = "s3cret-Pa55"
WRONG = "hunter2-wrong"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxies, credentials or caches from the developer's environment leak into a test."""
    for var in (
        "WHEELHOUSE_AUTH",
        "WHEELHOUSE_CACHE_DIR",
        "XDG_CACHE_HOME",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-such-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def downloader(cache: Path | bool | None, **options: object) -> Downloader:
    settings: dict[str, object] = {"backoff": 0.01, "timeout": 5.0, "progress": False}
    settings.update(options)
    return Downloader(cache, **settings)  # type: ignore[arg-type]


def big_wheel(directory: Path, name: str = "big", size: int = 300_000) -> Path:
    payload = random.Random(1).randbytes(size)  # incompressible: the wheel is ~size bytes
    return make_wheel(directory, name, "1.0", files={f"{name}/data.bin": payload})


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# --- happy path and cache ----------------------------------------------------------------------


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


# --- wrong bytes -------------------------------------------------------------------------------


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


# --- HTTP errors and retries -------------------------------------------------------------------


def test_404_is_not_retried_and_names_the_file(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    art = index_server.artifact(wheel)
    wheel.unlink()
    with downloader(cache) as dl, pytest.raises(NotFoundError) as info:
        dl.get(art)
    assert isinstance(info.value, FetchError)
    assert wheel.name in str(info.value) and art.url is not None and art.url in str(info.value)
    assert "404" in str(info.value)
    assert len(index_server.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 410])
def test_other_4xx_are_not_retried(index_server: IndexServer, cache: Path, status: int) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.fail(index_server.file_path(wheel.name), status, times=None)
    with downloader(cache) as dl, pytest.raises(FetchError) as info:
        dl.get(index_server.artifact(wheel))
    assert str(status) in str(info.value) and wheel.name in str(info.value)
    assert len(index_server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_ok_is_retried(index_server: IndexServer, cache: Path, status: int) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.fail(index_server.file_path(wheel.name), status, times=2)
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    assert len(index_server.requests) == 3


def test_429_retry_after_is_honoured(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.fail(index_server.file_path(wheel.name), 429, retry_after=1)
    start = time.monotonic()
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    assert time.monotonic() - start >= 0.95
    assert len(index_server.requests) == 2


def test_retry_after_is_capped(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.fail(index_server.file_path(wheel.name), 503, retry_after=3600)
    start = time.monotonic()
    with downloader(cache, max_retry_after=0.2) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    assert 0.2 <= time.monotonic() - start < 3


def test_retry_after_may_be_an_http_date(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    index_server.fail(index_server.file_path(wheel.name), 503, retry_after=later)
    start = time.monotonic()
    with downloader(cache, max_retry_after=0.3) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    assert 0.3 <= time.monotonic() - start < 3  # parsed (else ~0.01 s) and capped


def test_retries_are_bounded(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.fail(index_server.file_path(wheel.name), 500, times=None)
    with downloader(cache, retries=2) as dl, pytest.raises(FetchError) as info:
        dl.get(index_server.artifact(wheel))
    assert "3 attempts" in str(info.value) and "500" in str(info.value)
    assert wheel.name in str(info.value)
    assert len(index_server.requests) == 3


def test_timeout_is_retried(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.delay(index_server.file_path(wheel.name), 1.5, times=1)
    with downloader(cache, timeout=0.3) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    assert len(index_server.requests) == 2


def test_connection_refused_gives_up_with_a_clear_error(cache: Path) -> None:
    wheel_name = "demo-1.0-py3-none-any.whl"
    with IndexServer(cache.parent) as server:
        url = server.file_url(wheel_name)
    # the server is stopped: nothing listens on that port any more
    art = Artifact(wheel_name, "demo", "1.0", "0" * 64, "wheel", url=url)
    with downloader(cache, retries=1) as dl, pytest.raises(FetchError) as info:
        dl.get(art)
    assert "2 attempts" in str(info.value) and wheel_name in str(info.value)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_body_cut_short_is_resumed_with_range(
    index_server: IndexServer, cache: Path, reset: bool
) -> None:
    wheel = big_wheel(index_server.root)
    path = index_server.file_path(wheel.name)
    index_server.drop_after(path, 100_000, reset=reset)
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    first, second = index_server.requests_for(path)
    assert first.headers.get("Range") is None
    if not reset:
        assert second.headers.get("Range") == "bytes=100000-"
        assert second.headers.get("If-Range") is not None
    # after a RST the kernel may discard bytes the client had not read yet, so the resume
    # offset varies (and is 0, i.e. no Range, if nothing was read): only the result is fixed


def test_body_cut_short_without_range_support_restarts(
    index_server_factory: Factory, cache: Path, tmp_path: Path
) -> None:
    server = index_server_factory(ranges=False)
    wheel = big_wheel(server.root)
    path = server.file_path(wheel.name)
    server.drop_after(path, 100_000, times=2)
    with downloader(cache) as dl:
        assert dl.get(server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    requests = server.requests_for(path)
    assert len(requests) == 3
    assert all(r.headers.get("Range") is None for r in requests)


def test_unusable_partial_response_restarts(index_server: IndexServer, cache: Path) -> None:
    """The file changed between the cut and the resume: If-Range makes the server send it all."""
    wheel = big_wheel(index_server.root)
    path = index_server.file_path(wheel.name)
    index_server.drop_after(path, 50_000)
    index_server.corrupt(path, wheel.read_bytes()[:-1] + b"!", times=1)  # first answer only
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    assert len(index_server.requests_for(path)) == 2


# --- credentials -------------------------------------------------------------------------------


def write_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str) -> Path:
    netrc = tmp_path / "netrc"
    netrc.write_text(
        f"machine other.invalid login bob password nope\n"
        f"machine 127.0.0.1\n  login alice\n  password {password}\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_netrc_credentials(
    index_server: IndexServer, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", PASSWORD)
    write_netrc(tmp_path, monkeypatch, PASSWORD)
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()
    (request,) = index_server.requests
    assert request.headers.get("Authorization", "").startswith("Basic ")


@pytest.mark.parametrize("with_port", [False, True])
def test_env_credentials(
    index_server: IndexServer, cache: Path, monkeypatch: pytest.MonkeyPatch, with_port: bool
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", PASSWORD)
    host = f"127.0.0.1:{index_server.port}" if with_port else "127.0.0.1"
    monkeypatch.setenv("WHEELHOUSE_AUTH", f"other.invalid=x:y\n {host}=alice:{PASSWORD}")
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()


def test_env_password_may_contain_colons_and_equals(
    index_server: IndexServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", "a:b=c")
    monkeypatch.setenv("WHEELHOUSE_AUTH", "127.0.0.1=alice:a:b=c")
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel)).read_bytes() == wheel.read_bytes()


def test_url_credentials_are_used_and_never_shown(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", PASSWORD)
    url = f"http://alice:{PASSWORD}@127.0.0.1:{index_server.port}/files/{wheel.name}"
    with downloader(cache) as dl:
        assert dl.get(index_server.artifact(wheel, url=url)).read_bytes() == wheel.read_bytes()
        missing = index_server.artifact(
            wheel, url=url.replace(wheel.name, "gone.whl"), sha256="1" * 64
        )
        with pytest.raises(NotFoundError) as info:
            dl.get(missing)
    assert PASSWORD not in str(info.value) and "alice" not in str(info.value)
    assert f"127.0.0.1:{index_server.port}/files/gone.whl" in str(info.value)


@pytest.mark.parametrize("source", ["netrc", "env", "url"])
def test_wrong_credentials_fail_without_leaking_the_password(
    index_server: IndexServer,
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", PASSWORD)
    art = index_server.artifact(wheel)
    if source == "netrc":
        write_netrc(tmp_path, monkeypatch, WRONG)
    elif source == "env":
        monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1=alice:{WRONG}")
    else:
        assert art.url is not None
        art = dataclasses.replace(art, url=art.url.replace("://", f"://alice:{WRONG}@"))
    with downloader(cache) as dl, pytest.raises(FetchError) as info:
        dl.get(art)
    message = str(info.value)
    assert "401" in message and "127.0.0.1" in message and wheel.name in message
    assert "netrc" in message and "WHEELHOUSE_AUTH" in message
    assert WRONG not in message and PASSWORD not in message
    assert WRONG not in repr(info.value)
    assert len(index_server.requests) == 1  # not retried


def test_missing_credentials_say_where_to_put_them(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", PASSWORD)
    with downloader(cache) as dl, pytest.raises(FetchError) as info:
        dl.get(index_server.artifact(wheel))
    assert "no credentials" in str(info.value) and "127.0.0.1=user:password" in str(info.value)
    (request,) = index_server.requests
    assert request.headers.get("Authorization") is None


def test_malformed_auth_env_is_reported_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    monkeypatch.setenv("WHEELHOUSE_AUTH", "127.0.0.1=aliceTOPSECRET")
    with pytest.raises(FetchError) as info:
        downloader(cache)
    assert "127.0.0.1" in str(info.value) and "TOPSECRET" not in str(info.value)
    monkeypatch.setenv("WHEELHOUSE_AUTH", "TOPSECRET")
    with pytest.raises(FetchError) as info:
        downloader(cache)
    assert "TOPSECRET" not in str(info.value)


def test_malformed_netrc_is_reported_without_the_secret(
    index_server: IndexServer, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password pw\nTOPSECRET oops\n")
    monkeypatch.setenv("NETRC", str(netrc))
    with downloader(cache) as dl, pytest.raises(FetchError) as info:
        dl.get(index_server.artifact(wheel))
    assert str(netrc) in str(info.value) and "TOPSECRET" not in str(info.value)


def test_redirect_to_another_host_does_not_forward_credentials(
    index_server_factory: Factory, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = index_server_factory()
    other = index_server_factory(root=origin.root)  # same files, another port = another origin
    wheel = make_wheel(origin.root, "demo", "1.0")
    path = origin.file_path(wheel.name)
    origin.require_auth("alice", PASSWORD)
    origin.redirect(path, other.file_url(wheel.name))
    monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1=alice:{PASSWORD}")
    with downloader(cache) as dl:
        assert dl.get(origin.artifact(wheel)).read_bytes() == wheel.read_bytes()
    (sent,) = origin.requests
    assert sent.headers.get("Authorization") is not None
    (received,) = other.requests
    assert received.headers.get("Authorization") is None


def test_redirect_within_the_same_origin_keeps_credentials(
    index_server: IndexServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(index_server.root, "demo", "1.0")
    index_server.require_auth("alice", PASSWORD)
    index_server.redirect("/old/location.whl", index_server.file_url(wheel.name), status=301)
    monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1=alice:{PASSWORD}")
    art = index_server.artifact(wheel, url=index_server.url + "/old/location.whl")
    with downloader(cache) as dl:
        assert dl.get(art).read_bytes() == wheel.read_bytes()
    assert [r.path for r in index_server.requests] == ["/old/location.whl", f"/files/{wheel.name}"]
    assert all(r.headers.get("Authorization") for r in index_server.requests)


def test_redact() -> None:
    assert redact("https://u:p@h.example:8443/a/b?q=1#f") == "https://h.example:8443/a/b?q=1#f"
    assert redact("https://tok@h.example/x") == "https://h.example/x"
    assert redact("https://h.example/x@y") == "https://h.example/x@y"
    assert redact("/local/path") == "/local/path"


# --- index pages (read) ------------------------------------------------------------------------


def test_read_json_and_html_pages(index_server: IndexServer, cache: Path) -> None:
    wheel = make_wheel(index_server.root, "Demo.Pkg", "1.0")
    sdist = make_sdist(index_server.root, "Demo.Pkg", "1.0")
    index_server.requires_python[wheel.name] = ">=3.8"
    with downloader(cache) as dl:
        body, final, ctype = dl.read(index_server.simple_url + "/Demo_Pkg", JSON_TYPE)
        assert final == index_server.simple_url + "/demo-pkg/"  # redirects followed
        assert ctype == JSON_TYPE
        doc = json.loads(body)
        assert doc["meta"]["api-version"].startswith("1.")
        files = {f["filename"]: f for f in doc["files"]}
        assert set(files) == {wheel.name, sdist.name}
        assert (
            files[wheel.name]["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        )
        assert files[wheel.name]["requires-python"] == ">=3.8"

        body, final, ctype = dl.read(index_server.simple_url + "/demo-pkg/", "text/html")
        assert ctype.startswith("text/html")
        page = body.decode()
        assert f"#sha256={hashlib.sha256(sdist.read_bytes()).hexdigest()}" in page
        assert 'data-requires-python="&gt;=3.8"' in page

        body, _, _ = dl.read(index_server.simple_url + "/")
        assert b'href="/simple/demo-pkg/"' in body

        with pytest.raises(NotFoundError) as info:
            dl.read(index_server.simple_url + "/nothing-here/")
    assert "nothing-here" in str(info.value)


def test_read_retries_too(index_server: IndexServer, cache: Path) -> None:
    make_wheel(index_server.root, "demo", "1.0")
    index_server.fail("/simple/demo/", 503, times=1)
    with downloader(cache) as dl:
        body, _, _ = dl.read(index_server.simple_url + "/demo/")
    assert b"demo-1.0-py3-none-any.whl" in body


# --- local files, cache location ---------------------------------------------------------------


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


# --- lock problems, get_many failures ----------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.whl", "a/b.whl", ".hidden.whl", "", ".."])
def test_unsafe_filenames_are_refused(cache: Path, name: str) -> None:
    with pytest.raises(LockError):
        check_filename(name)
    art = Artifact(name, "x", "1", "0" * 64, "wheel", url="http://127.0.0.1:9/x")
    with downloader(cache) as dl, pytest.raises(LockError):
        dl.get(art)


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


# --- TLS, progress -----------------------------------------------------------------------------


def test_tls_is_verified_and_ssl_cert_file_is_honoured(
    index_server_factory: Factory,
    cache: Path,
    self_signed: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = index_server_factory(tls=self_signed)
    wheel = make_wheel(server.root, "demo", "1.0")
    art = server.artifact(wheel)
    assert art.url is not None and art.url.startswith("https://127.0.0.1:")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with downloader(cache) as dl, pytest.raises(FetchError) as info:
        dl.get(art)
    assert "certificate" in str(info.value) and "SSL_CERT_FILE" in str(info.value)
    assert server.requests == []  # the handshake failed: nothing was sent, and not retried
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed[0]))
    with downloader(cache) as dl:
        assert dl.get(art).read_bytes() == wheel.read_bytes()


def test_progress_only_when_asked_or_on_a_tty(
    index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = [make_wheel(index_server.root, f"pkg{i}", "1.0") for i in range(3)]
    arts = [index_server.artifact(w) for w in wheels]
    with downloader(tmp_path / "c1", progress=None) as dl:
        dl.get_many(arts)
    assert capsys.readouterr().err == ""  # stderr is not a TTY under pytest
    with downloader(tmp_path / "c2", progress=True) as dl:
        dl.get_many(arts)
    err = capsys.readouterr().err
    assert "3/3 files" in err and err.endswith("\n")


# --- the test index itself, with a real pip ----------------------------------------------------


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
