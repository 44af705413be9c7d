"""fetch(): a flat wheelhouse of verified copies, built atomically, over a real loopback index."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from downloadtools import reads_below
from indexserver import IndexServer
from sdistmaker import make_sdist
from wheelmaker import artifact_for, make_wheel

from wheelhouse.download import Downloader
from wheelhouse.errors import FetchError, HashMismatchError, LockError, NotFoundError
from wheelhouse.fetch import fetch
from wheelhouse.model import Artifact

Factory = Callable[..., IndexServer]
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("download_env")


@pytest.fixture
def dl(tmp_path: Path) -> Iterator[Downloader]:
    with Downloader(tmp_path / "cache", backoff=0.01, timeout=5.0, progress=False) as downloader:
        yield downloader


def some_artifacts(server: IndexServer, count: int = 3) -> list[Artifact]:
    paths = [make_wheel(server.root, f"pkg{i}", "1.0") for i in range(count)]
    paths.append(make_sdist(server.root, "source-only", "2.0"))
    return [server.artifact(p) for p in paths]


def assert_wheelhouse(dest: Path, artifacts: Sequence[Artifact], server_root: Path) -> None:
    """dest holds exactly the artifacts, as single-link 0644 regular files with the right bytes."""
    assert sorted(os.listdir(dest)) == sorted({a.filename for a in artifacts})
    for art in artifacts:
        info = os.lstat(dest / art.filename)
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o644
        assert info.st_nlink == 1
        assert (dest / art.filename).read_bytes() == (server_root / art.filename).read_bytes()


# --- the happy paths ---------------------------------------------------------------------------


def test_fetch_builds_a_new_flat_wheelhouse(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    arts = some_artifacts(index_server)
    dest = tmp_path / "out" / "wheelhouse"
    paths = fetch(arts, dest, dl)
    assert paths == [dest / a.filename for a in arts]
    assert_wheelhouse(dest, arts, index_server.root)
    assert os.listdir(dest.parent) == ["wheelhouse"]  # no temp sibling left


def test_fetch_copies_instead_of_linking_the_cache(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    (art,) = some_artifacts(index_server, 1)[:1]
    dest = tmp_path / "wh"
    fetch([art], dest, dl)
    cached = dl.get(art)
    assert os.stat(cached).st_ino != os.stat(dest / art.filename).st_ino
    cached.write_bytes(b"corrupted later")
    assert (dest / art.filename).read_bytes() == (index_server.root / art.filename).read_bytes()


def test_fetch_reads_each_download_once_and_never_reads_a_copy_back(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    """Bytes are hashed as they are downloaded and as they are copied: a cold fetch opens each
    cache entry once (to copy it) and writes each wheelhouse file without reading it."""
    arts = some_artifacts(index_server)
    with reads_below(tmp_path) as reads:
        fetch(arts, tmp_path / "wh", dl)
    assert_wheelhouse(tmp_path / "wh", arts, index_server.root)
    files = [p for p in reads if any(a.filename in p.name for a in arts)]  # also temp names
    assert sorted(p.name for p in files) == sorted(a.filename for a in arts)
    assert all(p.is_relative_to(tmp_path / "cache") for p in files)


def test_fetch_into_existing_dir_keeps_correct_files_and_fixes_wrong_ones(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    good, bad, missing, _sdist = some_artifacts(index_server)
    dest = tmp_path / "wh"
    dest.mkdir()
    (dest / good.filename).write_bytes((index_server.root / good.filename).read_bytes())
    os.chmod(dest / good.filename, 0o600)
    good_inode = os.stat(dest / good.filename).st_ino
    (dest / bad.filename).write_bytes(b"not the wheel")
    (dest / "unrelated.txt").write_text("not ours: left alone")
    fetch([good, bad, missing], dest, dl)
    assert os.stat(dest / good.filename).st_ino == good_inode  # kept, not rewritten
    assert index_server.requests_for(f"/files/{good.filename}") == []  # not even downloaded
    assert sorted(os.listdir(dest)) == sorted(
        [good.filename, bad.filename, missing.filename, "unrelated.txt"]
    )
    for art in (good, bad, missing):
        path = dest / art.filename
        assert path.read_bytes() == (index_server.root / art.filename).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_links_in_an_existing_dir_are_replaced_by_files(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    (art, *_) = some_artifacts(index_server, 1)
    dest = tmp_path / "wh"
    dest.mkdir()
    (dest / art.filename).symlink_to(index_server.root / art.filename)  # right bytes, wrong type
    fetch([art], dest, dl)
    assert_wheelhouse(dest, [art], index_server.root)


def test_fetch_twice_is_idempotent_and_reproducible(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    arts = some_artifacts(index_server)
    fetch(arts, tmp_path / "a", dl)
    fetch(arts, tmp_path / "a", dl)
    with Downloader(False, backoff=0.01, progress=False) as private:
        fetch(arts, tmp_path / "b", private)
    for art in arts:
        a, b = tmp_path / "a" / art.filename, tmp_path / "b" / art.filename
        assert a.read_bytes() == b.read_bytes()
        assert a.stat().st_mode == b.stat().st_mode
    assert sorted(os.listdir(tmp_path / "a")) == sorted(os.listdir(tmp_path / "b"))


def test_duplicate_entries_with_the_same_hash_are_one_file(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    (art, *_) = some_artifacts(index_server, 1)
    dest = tmp_path / "wh"
    assert fetch([art, art], dest, dl) == [dest / art.filename]
    assert os.listdir(dest) == [art.filename]


def test_empty_artifact_list_makes_an_empty_wheelhouse(dl: Downloader, tmp_path: Path) -> None:
    assert fetch([], tmp_path / "wh", dl) == []
    assert os.listdir(tmp_path / "wh") == []


def test_path_artifacts_are_taken_relative_to_base_dir(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "vendor").mkdir(parents=True)
    wheel = make_wheel(project / "vendor", "vendored", "0.1")
    data = wheel.read_bytes()
    art = artifact_for(wheel, path=f"vendor/{wheel.name}", size=None)
    with Downloader(tmp_path / "cache", base_dir=project, progress=False) as downloader:
        fetch([art], tmp_path / "wh", downloader)
    assert os.listdir(tmp_path / "wh") == [wheel.name]
    assert (tmp_path / "wh" / wheel.name).read_bytes() == data


# --- failures leave nothing behind -------------------------------------------------------------


def test_hash_mismatch_leaves_no_new_dest(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    arts = some_artifacts(index_server)
    arts[1] = dataclasses.replace(arts[1], sha256="0" * 64)
    dest = tmp_path / "out" / "wh"
    with pytest.raises(HashMismatchError) as info:
        fetch(arts, dest, dl)
    assert arts[1].filename in str(info.value) and "0" * 64 in str(info.value)
    assert not dest.exists()
    assert os.listdir(dest.parent) == []


def test_hash_mismatch_leaves_existing_dest_unchanged(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    arts = some_artifacts(index_server)
    index_server.corrupt(f"/files/{arts[2].filename}", b"evil bytes")
    dest = tmp_path / "wh"
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    with pytest.raises(HashMismatchError):
        fetch(arts, dest, dl)
    assert os.listdir(dest) == ["keep.txt"]


def test_404_leaves_nothing(index_server: IndexServer, dl: Downloader, tmp_path: Path) -> None:
    arts = some_artifacts(index_server)
    (index_server.root / arts[0].filename).unlink()
    dest = tmp_path / "wh"
    with pytest.raises(NotFoundError) as info:
        fetch(arts, dest, dl)
    assert arts[0].filename in str(info.value)
    assert os.listdir(tmp_path) == ["cache"]


def test_same_filename_with_different_hashes_is_refused(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    (art, *_) = some_artifacts(index_server, 1)
    other = dataclasses.replace(art, sha256="f" * 64, package="impostor")
    with pytest.raises(LockError) as info:
        fetch([art, other], tmp_path / "wh", dl)
    message = str(info.value)
    assert art.filename in message and art.sha256 in message and "f" * 64 in message
    assert index_server.requests == []
    assert not (tmp_path / "wh").exists()


def test_dest_that_is_a_file_is_refused(dl: Downloader, tmp_path: Path) -> None:
    (tmp_path / "wh").write_text("")
    with pytest.raises(FetchError) as info:
        fetch([], tmp_path / "wh", dl)
    assert str(tmp_path / "wh") in str(info.value)


def test_stale_temp_files_of_dead_runs_are_removed(
    index_server: IndexServer, dl: Downloader, tmp_path: Path
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    live_pid = os.getppid()
    (art, *_) = some_artifacts(index_server, 1)
    dest = tmp_path / "wh"
    dest.mkdir()
    stale = dest / f".{art.filename}.wheelhouse-tmp-{dead_pid}-abc123"
    stale.write_bytes(b"half a wheel")
    live = dest / f".{art.filename}.wheelhouse-tmp-{live_pid}-def456"
    live.write_bytes(b"another run's temp file")
    fetch([art], dest, dl)
    assert not stale.exists() and live.exists()
    live.unlink()
    assert os.listdir(dest) == [art.filename]

    new = tmp_path / "new"
    stale_dir = tmp_path / f".new.wheelhouse-tmp-{dead_pid}-xyz"
    stale_dir.mkdir()
    (stale_dir / art.filename).write_bytes(b"partial")
    fetch([art], new, dl)
    assert not stale_dir.exists()


def test_cache_changing_between_get_and_copy_is_recovered(
    index_server: IndexServer, tmp_path: Path
) -> None:
    (art, *_) = some_artifacts(index_server, 1)

    class Flaky(Downloader):
        """Returns a corrupt file from get_many, as if the cache changed after verification."""

        def get_many(self, artifacts: Sequence[Artifact]) -> dict[str, Path]:
            result = super().get_many(artifacts)
            for path in result.values():
                path.write_bytes(b"changed behind our back")
            return result

    with Flaky(tmp_path / "cache", backoff=0.01, progress=False) as downloader:
        fetch([art], tmp_path / "wh", downloader)
    data = (index_server.root / art.filename).read_bytes()
    assert (tmp_path / "wh" / art.filename).read_bytes() == data


def test_dest_created_concurrently_is_merged_into(
    index_server: IndexServer, tmp_path: Path
) -> None:
    arts = some_artifacts(index_server)
    dest = tmp_path / "wh"
    first = arts[0]
    inodes: list[int] = []

    class Racing(Downloader):
        """Another fetch creates dest (with one correct file) while this one downloads."""

        def get_many(self, artifacts: Sequence[Artifact]) -> dict[str, Path]:
            result = super().get_many(artifacts)
            if not dest.exists():
                dest.mkdir()
                data = (index_server.root / first.filename).read_bytes()
                (dest / first.filename).write_bytes(data)
                os.chmod(dest / first.filename, 0o644)
                inodes.append(os.stat(dest / first.filename).st_ino)
            return result

    with Racing(tmp_path / "cache", backoff=0.01, progress=False) as downloader:
        fetch(arts, dest, downloader)
    assert_wheelhouse(dest, arts, index_server.root)
    assert inodes == [os.stat(dest / first.filename).st_ino]  # the other run's file was kept
    assert sorted(os.listdir(tmp_path)) == ["cache", "wh"]


# --- concurrency -------------------------------------------------------------------------------

FETCH_SCRIPT = """
import json, sys
from pathlib import Path
from wheelhouse.download import Downloader
from wheelhouse.fetch import fetch
from wheelhouse.model import Artifact

cache, dest, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with Downloader(Path(cache), backoff=0.01, timeout=10, progress=False) as downloader:
    fetch([Artifact(**item) for item in spec], Path(dest), downloader)
"""


@pytest.mark.parametrize("same_dest", [False, True], ids=["two-dests", "one-dest"])
def test_two_processes_share_a_cache(
    index_server: IndexServer, tmp_path: Path, same_dest: bool
) -> None:
    arts = some_artifacts(index_server, 4)
    index_server.delay("/files/*", 0.2)  # both processes are mid-download at the same time
    spec = json.dumps([dataclasses.asdict(a) for a in arts])
    cache = tmp_path / "cache"
    dests = [tmp_path / "wh", tmp_path / "wh"] if same_dest else [tmp_path / "a", tmp_path / "b"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FETCH_SCRIPT, str(cache), str(dest), spec],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for dest in dests
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    for dest in set(dests):
        assert_wheelhouse(dest, arts, index_server.root)
    cache_files = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert cache_files == sorted(a.filename for a in arts)  # no temp files left in the cache
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == sorted({"cache", *(d.name for d in dests)})
