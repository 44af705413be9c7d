"""Credentials (wheelhouse/credentials.py) through the Downloader, against real loopback servers:
netrc, WHEELHOUSE_AUTH and URL credentials, messages that never show a password, and the
same-origin rule on redirects, also with kept-alive connections."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from downloadtools import PASSWORD, WRONG, downloader
from indexserver import IndexServer
from wheelmaker import make_wheel

from wheelhouse.credentials import env_credentials, redact
from wheelhouse.errors import FetchError, NotFoundError

Factory = Callable[..., IndexServer]
pytestmark = pytest.mark.usefixtures("download_env")


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


def test_pooled_connections_never_carry_credentials_across_origins(
    index_server_factory: Factory, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of an index that requires credentials, half of them redirected to another origin,
    fetched by 2 workers over kept-alive connections: every request to the index carries the
    credentials, none to the other origin does (not even on a connection that served many)."""
    index = index_server_factory()
    other = index_server_factory(root=index.root)  # same files, another port = another origin
    wheels = [make_wheel(index.root, f"pkg{i}", "1.0") for i in range(8)]
    index.require_auth("alice", PASSWORD)
    arts = []
    for i, wheel in enumerate(wheels):
        if i % 2:
            index.redirect(f"/moved/{wheel.name}", other.file_url(wheel.name))
            arts.append(index.artifact(wheel, url=f"{index.url}/moved/{wheel.name}"))
        else:
            arts.append(index.artifact(wheel))
    monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1=alice:{PASSWORD}")
    with downloader(cache, jobs=2) as dl:
        got = dl.get_many(arts)
    assert all(got[w.name].read_bytes() == w.read_bytes() for w in wheels)
    assert len(index.requests) == 8 and len(other.requests) == 4
    assert all(r.headers.get("Authorization") for r in index.requests)
    assert not any(r.headers.get("Authorization") for r in other.requests)
    assert index.connections <= 2 and other.connections <= 2  # the connections were reused


def test_env_credentials_for_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELHOUSE_AUTH", "idx.example=bob:pw idx.example:8443=carol:a:b")
    assert env_credentials("https://idx.example/simple/") == ("bob", "pw")
    assert env_credentials("https://IDX.example:8443/simple/") == ("carol", "a:b")
    assert env_credentials("https://idx.example:9000/simple/") == ("bob", "pw")
    assert env_credentials("https://other.example/simple/") is None
