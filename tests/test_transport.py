"""HTTP transport (wheelhouse/transport.py) through the Downloader, against real loopback servers:
status handling, retries and Retry-After, Range resume, redirects, TLS, proxies from the
environment, and keep-alive connections reused across files."""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from downloadtools import JSON_TYPE, big_wheel, downloader
from indexserver import IndexServer
from sdistmaker import make_sdist
from wheelmaker import make_wheel

from wheelhouse.errors import FetchError, NotFoundError
from wheelhouse.model import Artifact

Factory = Callable[..., IndexServer]
pytestmark = pytest.mark.usefixtures("download_env")


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


# --- connections and proxies -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_connections_are_kept_per_worker_not_per_file(
    index_server_factory: Factory,
    cache: Path,
    self_signed: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    """12 files and their index pages from one host, 3 workers: at most 3 TCP connections (and
    TLS handshakes), each carrying several requests."""
    server = index_server_factory(tls=self_signed if scheme == "https" else None)
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed[0]))
    wheels = [make_wheel(server.root, f"pkg{i}", "1.0") for i in range(12)]
    with downloader(cache, jobs=3) as dl:
        for wheel in wheels[:4]:
            dl.read(f"{server.simple_url}/{wheel.name.split('-')[0]}/", JSON_TYPE)
        got = dl.get_many([server.artifact(w) for w in wheels])
        dl.get(server.artifact(big_wheel(server.root)))
    assert all(got[w.name].read_bytes() == w.read_bytes() for w in wheels)
    assert len(server.requests) == 17
    assert 1 <= server.connections <= 3, f"{server.connections} connections for 17 requests"


def test_every_outcome_gives_its_connection_back(index_server: IndexServer, cache: Path) -> None:
    """With one connection per host, a connection not given back after a 404, a retried 503, a
    redirect, a cut body or a body stopped early would make the next request wait forever."""
    wheels = {k: make_wheel(index_server.root, k, "1.0") for k in ("big", "cut", "moved", "ok")}
    big = index_server.file_path(wheels["big"].name)
    index_server.corrupt(big, b"x" * 5_000_000)  # more than the lock's size: reading stops
    index_server.fail(index_server.file_path(wheels["ok"].name), 503, times=1)
    index_server.drop_after(index_server.file_path(wheels["cut"].name), 500)
    index_server.redirect("/old.whl", index_server.file_url(wheels["moved"].name))
    arts = {k: index_server.artifact(w) for k, w in wheels.items()}
    arts["moved"] = index_server.artifact(wheels["moved"], url=index_server.url + "/old.whl")
    arts["gone"] = Artifact("no.whl", "no", "1", "1" * 64, "wheel", url=index_server.url + "/no")
    wheels["gone"] = wheels["ok"]
    outcome: list[object] = []

    def run() -> None:
        with downloader(cache, jobs=1, retries=1) as dl:
            for kind in ("big", "cut", "gone", "moved", "ok"):
                try:
                    outcome.append(dl.get(arts[kind]).read_bytes() == wheels[kind].read_bytes())
                except FetchError as error:
                    outcome.append(type(error).__name__)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), f"stuck waiting for a connection after {outcome}"
    assert outcome == ["HashMismatchError", True, "NotFoundError", True, True]
    assert index_server.connections < len(index_server.requests)  # and some were reused


def test_proxy_from_the_environment(
    index_server_factory: Factory, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http_proxy is used, with its user:password as Proxy-Authorization; no_proxy is honoured."""
    proxy = index_server_factory()  # answers absolute-form requests from its own files
    origin = index_server_factory(root=proxy.root)
    wheel = make_wheel(proxy.root, "demo", "1.0")
    monkeypatch.setenv("http_proxy", f"http://pxuser:pxpass@127.0.0.1:{proxy.port}")
    unreachable = "http://files.invalid/files/" + wheel.name  # only the proxy can answer
    with downloader(cache) as dl:
        art = proxy.artifact(wheel, url=unreachable)
        assert dl.get(art).read_bytes() == wheel.read_bytes()
    (through,) = proxy.requests
    assert through.path == unreachable
    assert through.headers.get("Proxy-Authorization", "").startswith("Basic ")
    assert origin.requests == []

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    proxy.clear_requests()
    with downloader(tmp_cache := cache.parent / "cache2") as dl:
        assert dl.get(origin.artifact(wheel)).is_relative_to(tmp_cache)
    assert proxy.requests == [] and len(origin.requests) == 1
