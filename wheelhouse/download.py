"""Getting bytes: artifacts into verified local files, index pages into memory.

``Downloader.get`` turns a locked ``Artifact`` into a local file whose sha256 (and size) match the
lock, going through the content-addressed cache; ``Downloader.get_many`` does that for many
artifacts in parallel; ``Downloader.read`` fetches small index pages for the index client.

This module only orchestrates; each concern has its own module, and none of them imports this
one:

* ``credentials``: where credentials come from (URL, ``WHEELHOUSE_AUTH``, netrc) and the origin
  they are bound to;
* ``transport``: HTTP over pooled connections with our retry, resume, redirect and TLS rules;
* ``cache``: the content-addressed cache (temp file, fsync, rename; verified hits; eviction);
* ``progress``: the progress line.

Every byte is hashed as it is written (downloaded or copied from a local path) and never read
back for that; a cache hit is read once, to check it. Wrong bytes are downloaded once more (a cut
the server did not announce looks the same), then reported as ``HashMismatchError``.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path

from wheelhouse.cache import Cache, HashingSink, check_filename
from wheelhouse.credentials import CredentialStore, redact
from wheelhouse.errors import FetchError, HashMismatchError, LockError
from wheelhouse.model import Artifact
from wheelhouse.progress import Progress, make_progress
from wheelhouse.transport import CHUNK_SIZE, RETRY_AFTER_CAP, Cancelled, Transport

__all__ = ["Downloader", "unique_by_filename"]

_CANCEL_GRACE = 5.0
"""How long ``get_many`` waits for running downloads to notice a cancellation."""
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class Downloader:
    """Fetches artifacts into a verified, content-addressed cache, and reads index pages.

    ``cache_dir``: the cache directory; ``None`` or ``True`` for the default (see
    ``cache.default_cache_dir``; if it cannot be created, e.g. ``HOME=/homeless-shelter`` in a
    Nix build, a private temp dir is used instead); ``False`` to always use a private temp dir.
    The private temp dir is removed by ``close()`` (or on leaving a ``with`` block, or at garbage
    collection), so paths returned by ``get`` are only valid until then; ``fetch`` copies them
    out before that. ``jobs``: parallel downloads of ``get_many``, and connections kept per host.
    ``base_dir``: the directory relative artifact ``path``s are taken from (default: the current
    directory). ``max_retry_after``: cap on a server's ``Retry-After``, in seconds.

    Every method may be called from several threads at once.
    """

    def __init__(
        self,
        cache_dir: Path | str | bool | None = None,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
        jobs: int = 8,
        progress: bool | None = None,
        base_dir: Path | None = None,
        max_retry_after: float = RETRY_AFTER_CAP,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.jobs = jobs
        self.progress = progress
        self.base_dir = base_dir
        self.max_retry_after = max_retry_after
        self._cache = Cache(cache_dir)
        self._credentials = CredentialStore()
        self._transport = Transport(
            self._credentials,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            max_retry_after=max_retry_after,
            connections=jobs,
        )

    # -- lifecycle --

    @property
    def cache_dir(self) -> Path | None:
        """The persistent cache directory in use, or ``None`` when a private temp dir is used."""
        return self._cache.directory

    def close(self) -> None:
        """Close kept connections; remove the private temp dir, if one was made (paths from
        ``get`` in it go away)."""
        self._transport.close()
        self._cache.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API --

    def remember_credentials(self, url: str) -> None:
        """Use the ``user:password@`` of ``url`` (an index URL given on the command line) for
        every later request to the same origin (scheme, host, port), e.g. the files an index page
        links to, whose URLs carry no credentials. Kept in memory only."""
        self._credentials.remember(url)

    def read(self, url: str, accept: str | None = None) -> tuple[bytes, str, str]:
        """GET a small document (an index page): ``(body, final URL, content type)``."""
        return self._transport.read(url, accept)

    def get(self, artifact: Artifact) -> Path:
        """A verified local file with ``artifact``'s bytes (cached, copied or downloaded)."""
        progress = make_progress(1, self.progress)
        try:
            return self._get(artifact, threading.Event(), progress)
        finally:
            progress.close()

    def get_many(self, artifacts: Sequence[Artifact]) -> dict[str, Path]:
        """``get`` for every artifact, ``jobs`` at a time; keyed by file name.

        The first failure is raised after the other downloads are cancelled.
        """
        unique = unique_by_filename(artifacts)
        for artifact in unique.values():
            _check_sha256(artifact)
        progress = make_progress(len(unique), self.progress)
        cancel = threading.Event()
        results: dict[str, Path] = {}
        try:
            if self.jobs == 1 or len(unique) <= 1:
                for name, artifact in unique.items():
                    results[name] = self._get(artifact, cancel, progress)
            else:
                self._get_parallel(unique, cancel, progress, results)
        finally:
            progress.close()
        return {name: results[name] for name in unique}

    def get_unhashed(self, url: str, filename: str) -> tuple[Path, str]:
        """Download a file its index lists without a hash, once: the cached file and its sha256.

        The locker records that hash; a later ``get`` or ``get_many`` of the artifact then finds
        the file in the cache instead of downloading it a second time.
        """
        name = check_filename(filename)
        cancel = threading.Event()
        progress = make_progress(1, self.progress)

        def fill(sink: HashingSink) -> None:
            self._transport.transfer(url, sink, what=name, accept=None, limit=None, cancel=cancel)

        try:
            root = self._cache.root()
            root.mkdir(parents=True, exist_ok=True)
            staged = self._cache.write(root, name, fill, progress.add_bytes)
            try:
                final = self._cache.commit(staged, name)
            finally:
                staged.discard()
            progress.file_done()
        except OSError as error:
            raise self._cache.error(name, error) from error
        finally:
            progress.close()
        return final, staged.sha256

    def _get_parallel(
        self,
        unique: dict[str, Artifact],
        cancel: threading.Event,
        progress: Progress,
        results: dict[str, Path],
    ) -> None:
        pool = ThreadPoolExecutor(
            max_workers=min(self.jobs, len(unique)), thread_name_prefix="wheelhouse-fetch"
        )
        futures: dict[Future[Path], str] = {}
        try:
            for name, artifact in unique.items():
                futures[pool.submit(self._get, artifact, cancel, progress)] = name
            pending = set(futures)
            while pending:
                done, pending = wait_futures(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:
                        raise _first_error(done)
                    results[futures[future]] = future.result()
        except BaseException:
            cancel.set()
            for future in futures:
                future.cancel()
            wait_futures(futures, timeout=_CANCEL_GRACE)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- one artifact --

    def _get(self, artifact: Artifact, cancel: threading.Event, progress: Progress) -> Path:
        name = check_filename(artifact.filename)
        sha256 = _check_sha256(artifact)
        try:
            hit = self._cache.lookup(sha256, name, artifact.size)
            if hit is not None:
                progress.file_done()
                return hit
            entry_dir = self._cache.entry(sha256, name).parent
            try:
                entry_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise FetchError(
                    f"{name}: cannot create cache directory {entry_dir}: "
                    f"{error.strerror or error}; make it writable, set WHEELHOUSE_CACHE_DIR to "
                    "another directory, or disable the cache"
                ) from None
            path = self._obtain(artifact, sha256, entry_dir, cancel, progress)
            progress.file_done()
            return path
        except OSError as error:
            raise self._cache.error(name, error) from error

    def _source(self, artifact: Artifact) -> str | Path:
        """Where to take the bytes from: a local path (preferred when present) or a URL."""
        local: Path | None = None
        if artifact.path is not None:
            local = Path(artifact.path).expanduser()
            if not local.is_absolute():
                local = (self.base_dir if self.base_dir is not None else Path.cwd()) / local
            if local.is_file() or artifact.url is None:
                return local
        if artifact.url:
            parts = urllib.parse.urlsplit(artifact.url)
            if parts.scheme.lower() == "file":
                return Path(urllib.request.url2pathname(parts.path))
            return artifact.url
        if local is not None:
            return local
        raise LockError(
            f"{artifact.filename} ({artifact.package} {artifact.version}): the lock gives neither "
            "a url nor a path for it; re-lock"
        )

    def _obtain(
        self,
        artifact: Artifact,
        sha256: str,
        directory: Path,
        cancel: threading.Event,
        progress: Progress,
    ) -> Path:
        """Put verified bytes into the cache (via a temp file in ``directory``, its entry's)."""
        source = self._source(artifact)

        def fill(sink: HashingSink) -> None:
            if isinstance(source, Path):
                self._copy_local(artifact, source, sink, cancel)
            else:
                self._transport.transfer(
                    source,
                    sink,
                    what=artifact.filename,
                    accept=None,
                    limit=artifact.size,
                    cancel=cancel,
                )

        actual: tuple[str, int] = ("", 0)
        for _attempt in range(2):
            staged = self._cache.write(directory, artifact.filename, fill, progress.add_bytes)
            try:
                if staged.sha256 == sha256 and artifact.size in (None, staged.size):
                    return self._cache.commit(staged, artifact.filename)
            finally:
                staged.discard()
            actual = (staged.sha256, staged.size)
            if isinstance(source, Path):
                break
        raise HashMismatchError(_mismatch_message(artifact, source, sha256, actual))

    def _copy_local(
        self, artifact: Artifact, source: Path, sink: HashingSink, cancel: threading.Event
    ) -> None:
        try:
            with open(source, "rb") as file:
                while chunk := file.read(CHUNK_SIZE):
                    sink.write(chunk)
                    if artifact.size is not None and sink.size > artifact.size:
                        return
                    if cancel.is_set():
                        raise Cancelled
        except OSError as error:
            shown = artifact.path if artifact.path is not None else redact(artifact.url or "")
            base = self.base_dir if self.base_dir is not None else "the current directory"
            raise FetchError(
                f"{artifact.filename}: cannot read local file {source} (the lock's {shown!r}; "
                f"relative paths are taken from {base}): {error.strerror or error}; run from the "
                "lock file's directory or fix the path"
            ) from None


# --- module helpers ----------------------------------------------------------------------------


def _check_sha256(artifact: Artifact) -> str:
    sha256 = artifact.sha256.lower()
    if not _SHA256_RE.fullmatch(sha256):
        raise LockError(
            f"{artifact.filename} ({artifact.package} {artifact.version}): the lock's sha256 "
            f"{artifact.sha256!r} is not 64 hex digits; fix or re-create the lock"
        )
    return sha256


def unique_by_filename(artifacts: Sequence[Artifact]) -> dict[str, Artifact]:
    """Artifacts by file name (first occurrence's order); the same name twice is fine only with
    the same sha256, since a wheelhouse is one flat directory. Names are checked to be safe."""
    unique: dict[str, Artifact] = {}
    for artifact in artifacts:
        check_filename(artifact.filename)
        previous = unique.get(artifact.filename)
        if previous is None:
            unique[artifact.filename] = artifact
        elif previous.sha256.lower() != artifact.sha256.lower():
            raise LockError(
                f"the lock lists {artifact.filename} twice with different sha256 "
                f"({previous.sha256} for {previous.package} {previous.version}, "
                f"{artifact.sha256} for {artifact.package} {artifact.version}); a wheelhouse is "
                "one flat directory, so each file name must have one content: fix or re-create "
                "the lock"
            )
    return unique


def _first_error(done: set[Future[Path]]) -> BaseException:
    errors = [f.exception() for f in done if f.exception() is not None]
    for error in errors:  # prefer a real error to a cancellation
        if error is not None and not isinstance(error, Cancelled):
            return error
    first = errors[0]
    assert first is not None
    return first


def _mismatch_message(
    artifact: Artifact, source: str | Path, expected: str, actual: tuple[str, int]
) -> str:
    got_hash, got_size = actual
    expected_text = f"sha256 {expected}"
    if artifact.size is not None:
        expected_text += f" and size {artifact.size}"
        if got_size > artifact.size:
            got_text = f"more than {artifact.size} bytes (stopped reading; sha256 of the first "
            got_text += f"{got_size} bytes is {got_hash})"
        else:
            got_text = f"sha256 {got_hash} and size {got_size}"
    else:
        got_text = f"sha256 {got_hash} ({got_size} bytes)"
    if isinstance(source, Path):
        where = f"local file {source}"
        advice = "the file changed since the lock was made: restore it or re-lock"
    else:
        where = redact(source)
        advice = (
            "the lock or the index is wrong (the file was replaced on the index after locking, "
            "or the lock was edited): fix the index or re-lock"
        )
    return (
        f"{artifact.filename} ({artifact.package} {artifact.version}): the bytes from {where} "
        f"have {got_text}, but the lock expects {expected_text}; {advice}. Nothing was kept"
    )
