"""The loopback mirror pip resolves against: same answers as the index, read ahead, failures
surfaced (real pip, real HTTP on loopback)."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from indexserver import IndexServer
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from wheelmaker import make_wheel

from wheelhouse.download import Downloader
from wheelhouse.errors import FetchError
from wheelhouse.index import PageCache
from wheelhouse.lock import Options
from wheelhouse.mirror import Choose, IndexMirror, guess
from wheelhouse.resolve import Inputs, resolve
from wheelhouse.selection import Candidate
from wheelhouse.targets import make_target

TARGET = make_target(None)


@dataclass(frozen=True)
class Chain:
    root: Path
    serve: Callable[..., IndexServer]


def chain_index(root: Path) -> None:
    """top -> mid -> leaf (leaf only on Python 3 and in two versions), and a lone package."""
    make_wheel(root, "top", "1.0", requires=["mid>=1", "nowhere; python_version < '3'"])
    make_wheel(root, "mid", "1.0", requires=["leaf<2"])
    make_wheel(root, "mid", "2.0", requires=["leaf<2"])
    make_wheel(root, "leaf", "1.0")
    make_wheel(root, "leaf", "1.5")
    make_wheel(root, "leaf", "2.0")
    make_wheel(root, "lone", "1.0")


@pytest.fixture
def chain(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> Chain:
    """Loopback index servers of ``chain_index``'s files (one folder, any number of servers)."""
    root = tmp_path / "files"
    root.mkdir()
    chain_index(root)
    return Chain(root, lambda **options: index_server_factory(root, **options))


def pip_direct(server: IndexServer, tmp_path: Path, *reqs: str) -> set[tuple[str, str, str]]:
    report = tmp_path / "direct.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--no-cache-dir", "--report", str(report), "--index-url", server.simple_url, *reqs],
        check=True,
    )  # fmt: skip
    data = json.loads(report.read_text())
    return {
        (
            canonicalize_name(i["metadata"]["name"]),
            i["metadata"]["version"],
            i["download_info"]["url"],
        )
        for i in data["install"]
    }


@pytest.mark.parametrize("core_metadata", [True, False], ids=["pep658", "wheels-only"])
def test_pip_through_the_mirror_resolves_as_against_the_index(
    chain: Chain, tmp_path: Path, core_metadata: bool
) -> None:
    server = chain.serve(core_metadata=core_metadata)
    rows = resolve(Inputs(requirements=("top", "lone"), index_url=server.simple_url), TARGET)
    # pip asked the mirror only: every upstream request is ours, and each page came once.
    pages = [r.path for r in server.requests if r.path.startswith("/simple/")]
    assert all("wheelhouse" in r.headers.get("user-agent", "") for r in server.requests)
    assert sorted(pages) == sorted(set(pages))
    metadata = [r.path for r in server.requests if r.path.endswith(".metadata")]
    assert bool(metadata) == core_metadata
    # ... and resolved exactly as it does against the index itself.
    assert {(r.name, r.version, r.url) for r in rows} == pip_direct(server, tmp_path, "top", "lone")
    assert {(r.name, r.version) for r in rows} == {
        ("top", "1.0"), ("mid", "2.0"), ("leaf", "1.5"), ("lone", "1.0")
    }  # fmt: skip


@contextlib.contextmanager
def mirror_of(
    server: IndexServer, downloader: Downloader | None = None, choose: Choose | None = None
) -> Iterator[IndexMirror]:
    """A mirror of ``server`` (with a private downloader unless one is given)."""
    with contextlib.ExitStack() as stack:
        if downloader is None:
            downloader = stack.enter_context(Downloader(False, progress=False))
        yield stack.enter_context(
            IndexMirror(downloader, [server.simple_url], PageCache(downloader), choose)
        )


def get(mirror: IndexMirror, path: str) -> tuple[int, bytes]:
    host, port = mirror.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_metadata_names_the_pages_to_read_before_pip_asks(chain: Chain) -> None:
    server = chain.serve(core_metadata=True)
    with mirror_of(server) as mirror, mirror.resolving(TARGET):
        status, body = get(mirror, "/i/0/top/")
        assert status == 200
        (wheel,) = json.loads(body)["files"]
        assert wheel["core-metadata"]["sha256"]
        status, body = get(mirror, wheel["url"] + ".metadata")
        assert status == 200 and b"Requires-Dist: mid>=1" in body
        # Only the client above asked for top; mid's page, mid 2.0's metadata and then leaf's
        # page (leaf<2, named in mid's metadata) follow without anyone asking.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not server.requests_for("/simple/leaf/"):
            time.sleep(0.05)
        assert server.requests_for("/simple/mid/")
        assert server.requests_for("/files/mid-2.0-py3-none-any.whl.metadata")
        assert server.requests_for("/simple/leaf/")
        assert not server.requests_for("/simple/nowhere/")  # its marker is false here
        assert not server.requests_for("/simple/lone/")
        # Now pip's request for mid's page is answered without asking the index again.
        before = len(server.requests)
        assert get(mirror, "/i/0/mid/")[0] == 200
        assert len(server.requests) == before


def test_a_failing_index_fails_the_lock_even_when_pip_would_go_on(chain: Chain) -> None:
    """pip skips an index page it cannot read and resolves from the others; a lock made that
    way would silently depend on which index answered."""
    good, bad = chain.serve(), chain.serve()
    bad.fail("/simple/lone/", 403, times=None)
    inputs = Inputs(
        requirements=("lone",), index_url=good.simple_url, extra_index_urls=(bad.simple_url,)
    )
    with pytest.raises(FetchError, match=r"/simple/lone/.*HTTP 403"):
        resolve(inputs, TARGET)


def test_pages_for_pip_leave_out_wheels_no_target_platform_can_use(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> None:
    root = tmp_path / "files"
    root.mkdir()
    for tag in [
        "cp311-cp311-win_amd64",
        "cp311-cp311-macosx_11_0_arm64",
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "py3-none-any",
    ]:
        make_wheel(root, "multi", "1.0", tag=tag)  # fmt: skip
    (root / "multi-1.0.tar.gz").write_bytes(b"not really an sdist")
    server = index_server_factory(root)
    with mirror_of(server) as mirror, mirror.resolving(TARGET):
        files = {f["filename"] for f in json.loads(get(mirror, "/i/0/multi/")[1])["files"]}
        assert get(mirror, "/i/0/absent/")[0] == 404
    assert files == {
        "multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "multi-1.0-py3-none-any.whl",
        "multi-1.0.tar.gz",
    }


def test_files_of_the_versions_pip_looks_at_download_during_the_resolution(chain: Chain) -> None:
    server = chain.serve(core_metadata=True)
    with Downloader(False, progress=False) as downloader:
        with mirror_of(server, downloader, Options().choose) as mirror:
            rows = resolve(
                Inputs(requirements=("top",), index_url=server.simple_url), TARGET, mirror
            )
        # The mirror is closed: what it started has finished; pip itself downloaded no wheel.
        assert mirror.early_downloads >= len(rows)
        for row in rows:
            art = server.artifact(chain.root / row.url.rsplit("/", 1)[1], package=row.name)
            path = mirror.downloaded(art)
            assert (
                path is not None and path.read_bytes() == (chain.root / art.filename).read_bytes()
            )
            assert mirror.downloaded(art.__class__(**{**art.__dict__, "sha256": "0" * 64})) is None


def cand(filename: str, **kw: object) -> Candidate:
    return Candidate(filename=filename, url="https://example.org/" + filename, **kw)  # type: ignore[arg-type]


def test_guess_takes_the_pin_else_the_newest_allowed_file_pip_would_take() -> None:
    name = canonicalize_name("pkg")
    cands = [
        cand("pkg-1.0-py3-none-any.whl"),
        cand("pkg-2.0-py3-none-any.whl"),
        cand("pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        cand("pkg-2.0-cp311-cp311-win_amd64.whl"),
        cand("pkg-3.0-py3-none-any.whl", yanked=True),
        cand("pkg-4.0b1-py3-none-any.whl"),
        cand("pkg-5.0-py3-none-any.whl", requires_python=">=4"),
        cand("pkg-2.5.tar.gz"),
    ]
    best = guess(cands, name, SpecifierSet(), TARGET)
    assert best is not None and best.filename == "pkg-2.5.tar.gz"  # newest usable, an sdist
    best = guess(cands, name, SpecifierSet("<2.5"), TARGET)
    # pip ranks the binary wheel above the pure one (the lock itself may still take none-any).
    assert best is not None and best.filename == "pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    best = guess(cands, name, SpecifierSet(), TARGET, pinned="1.0")
    assert best is not None and best.filename == "pkg-1.0-py3-none-any.whl"
    best = guess(cands, name, SpecifierSet(">=1.5"), TARGET, pinned="1.0")  # pin not allowed
    assert best is not None and best.filename == "pkg-2.5.tar.gz"
    assert guess(cands, name, SpecifierSet(">=6"), TARGET) is None
    assert guess(cands, canonicalize_name("other"), SpecifierSet(), TARGET) is None


def test_pages_of_pinned_packages_show_pip_only_the_pinned_version(chain: Chain) -> None:
    """A re-lock runs pip with the previous versions as constraints: the other versions' files
    would be parsed by pip only to be dropped."""
    server = chain.serve()
    with mirror_of(server) as mirror:
        with mirror.resolving(TARGET, {"leaf": "1.0"}):
            pinned = {f["filename"] for f in json.loads(get(mirror, "/i/0/leaf/")[1])["files"]}
            other = {f["filename"] for f in json.loads(get(mirror, "/i/0/mid/")[1])["files"]}
        with mirror.resolving(TARGET):
            full = {f["filename"] for f in json.loads(get(mirror, "/i/0/leaf/")[1])["files"]}
    assert pinned == {"leaf-1.0-py3-none-any.whl"}
    assert other == {"mid-1.0-py3-none-any.whl", "mid-2.0-py3-none-any.whl"}
    assert full == {f"leaf-{v}-py3-none-any.whl" for v in ("1.0", "1.5", "2.0")}
