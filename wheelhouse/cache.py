"""The content-addressed artifact cache: ``<root>/sha256/<ab>/<sha256>/<filename>``.

An entry is found by the sha256 the lock expects, so a hit is trusted only after its bytes were
read once and checked against that hash (a file's times cannot prove it unchanged: they are
coarser than a write on many kernels). A bad entry is evicted and fetched again.

Nothing appears under a final name before it is complete: every write goes to a temp file in
the same directory, hashed as it is written, fsync'ed, then ``os.replace``'d into place. Several
processes (and threads) may share one cache: they only ever rename complete files over each
other, and the leftovers of a killed one are removed by the next.

Without a usable cache directory the entries live in a private temp dir that ``close()`` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import IO

from wheelhouse.errors import FetchError, LockError
from wheelhouse.tempfiles import fsync_dir, remove_stale_temps, temp_prefix

__all__ = [
    "Cache",
    "HashingSink",
    "Staged",
    "WriteError",
    "check_filename",
    "default_cache_dir",
]

_STALE_TEMP_AGE = 600.0
"""A cache temp file of a dead pid is removed once it is this old (seconds)."""


def default_cache_dir() -> Path | None:
    """``$WHEELHOUSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/wheelhouse``, else ``~/.cache/wheelhouse``.

    ``None`` when no home directory can be determined.
    """
    explicit = os.environ.get("WHEELHOUSE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "wheelhouse"
    try:
        return Path.home() / ".cache" / "wheelhouse"
    except (RuntimeError, KeyError):
        return None


def check_filename(filename: str) -> str:
    """Return ``filename`` if it is a plain basename that is safe to create in a directory.

    The name comes from the lock and becomes a path in the cache and the wheelhouse, so anything
    that could escape the directory or name a special entry is refused.
    """
    if (
        not filename
        or filename in {".", ".."}
        or filename.startswith(".")
        or any(c in filename for c in "/\\\0")
        or any(ord(c) < 32 for c in filename)
    ):
        raise LockError(
            f"artifact file name {filename!r} is not a plain file name (it must not be empty, "
            "start with '.', or contain '/', '\\' or control characters); fix or re-create the lock"
        )
    return filename


class WriteError(Exception):
    """Writing the local temp file failed (disk full, permissions): never retried."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class HashingSink:
    """Where a transfer writes: a file, hashed and counted as the bytes go by (never re-read)."""

    def __init__(self, file: IO[bytes], on_bytes: Callable[[int], None] | None = None) -> None:
        self.file = file
        self.on_bytes = on_bytes
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as error:
            raise WriteError(error) from error
        self.hasher.update(data)
        self.size += len(data)
        if self.on_bytes is not None:
            self.on_bytes(len(data))

    def reset(self) -> None:
        """Start over (the server sent the whole body again)."""
        try:
            self.file.seek(0)
            self.file.truncate()
        except OSError as error:
            raise WriteError(error) from error
        self.hasher = hashlib.sha256()
        self.size = 0


@dataclass(frozen=True)
class Staged:
    """A complete, fsynced temp file and the sha256 and size of its bytes."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        """Remove the temp file if it was not committed."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Cache:
    """The cache under ``cache_dir``; safe to use from several threads.

    ``cache_dir``: ``None`` or ``True`` for ``default_cache_dir()`` (a private temp dir if that
    cannot be created, e.g. ``HOME=/homeless-shelter`` in a Nix build); ``False`` for a private
    temp dir always; else that directory (an error if it cannot be created).
    """

    def __init__(self, cache_dir: Path | str | bool | None) -> None:
        self._persistent = self._init(cache_dir)
        self._private: Path | None = None
        self._finalizer: weakref.finalize[..., Cache] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _init(cache_dir: Path | str | bool | None) -> Path | None:
        if cache_dir is False:
            return None
        if cache_dir is not None and cache_dir is not True:
            path = Path(cache_dir).expanduser()
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise FetchError(
                    f"cannot create the download cache directory {path}: "
                    f"{error.strerror or error}; choose a writable cache directory or disable "
                    "the cache"
                ) from error
            return path
        default = default_cache_dir()
        if default is None:
            return None
        try:
            default.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        if not os.access(default, os.W_OK | os.X_OK):
            return None
        return default

    @property
    def directory(self) -> Path | None:
        """The persistent cache directory, or ``None`` when a private temp dir is used."""
        return self._persistent

    def root(self) -> Path:
        """Where entries go: the persistent directory, or the private temp dir (made now)."""
        if self._persistent is not None:
            return self._persistent
        with self._lock:
            if self._private is None or not self._private.is_dir():
                self._private = Path(tempfile.mkdtemp(prefix="wheelhouse-download-"))
                self._finalizer = weakref.finalize(
                    self, shutil.rmtree, self._private, ignore_errors=True
                )
            return self._private

    def close(self) -> None:
        """Remove the private temp dir, if one was made (entries in it go away)."""
        if self._finalizer is not None:
            self._finalizer()

    def entry(self, sha256: str, name: str) -> Path:
        """Where the cache keeps the file ``name`` whose bytes have this sha256."""
        return self.root() / "sha256" / sha256[:2] / sha256 / name

    def lookup(self, sha256: str, name: str, size: int | None) -> Path | None:
        """The entry if it holds these bytes; a wrong entry is evicted (``None`` then)."""
        path = self.entry(sha256, name)
        ok, seen = _file_matches(path, sha256, size)
        if ok:
            return path
        if seen is not None:
            _evict(path, seen)
        return None

    def write(
        self,
        directory: Path,
        name: str,
        fill: Callable[[HashingSink], None],
        on_bytes: Callable[[int], None] | None,
    ) -> Staged:
        """A new fsynced temp file in ``directory`` holding what ``fill`` writes to its sink.

        The caller ``commit``s or ``discard``s it. A local write failure is a ``FetchError``
        (network failures are the transport's to retry or report, inside ``fill``).
        """
        remove_stale_temps(directory, prefix=f".{name}", min_age=_STALE_TEMP_AGE)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=temp_prefix(name))
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w+b") as file:
                sink = HashingSink(file, on_bytes)
                fill(sink)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o644)
        except (WriteError, OSError) as error:
            tmp.unlink(missing_ok=True)
            # Also what the buffered file's flush or close raises (e.g. ENOSPC).
            cause = error.error if isinstance(error, WriteError) else error
            raise FetchError(
                f"{name}: cannot write to the cache ({tmp}): {cause.strerror or cause}; free "
                "some space or choose another cache directory (--cache-dir, or "
                "WHEELHOUSE_CACHE_DIR)"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Staged(tmp, sink.hasher.hexdigest(), sink.size)

    def commit(self, staged: Staged, name: str) -> Path:
        """Move ``staged`` into place as the entry for its sha256; the entry's path."""
        final = self.entry(staged.sha256, name)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, final)
        fsync_dir(final.parent)
        return final

    def error(self, name: str, error: OSError) -> FetchError:
        """The message for a cache directory that cannot be used."""
        where = f" ({error.filename})" if error.filename else ""
        return FetchError(
            f"{name}: {error.strerror or error}{where}; check that the cache directory "
            f"{self._persistent or '(a private temp dir)'} is writable and has room, or choose "
            "another one (--cache-dir, or WHEELHOUSE_CACHE_DIR)"
        )


def _file_matches(path: Path, sha256: str, size: int | None) -> tuple[bool, os.stat_result | None]:
    """Whether ``path`` is a regular file with this content; also its stat (None if absent)."""
    try:
        if not S_ISREG(os.lstat(path).st_mode):
            return False, None
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            if size is not None and stat.st_size != size:
                return False, stat
            return hashlib.file_digest(file, "sha256").hexdigest() == sha256, stat
    except OSError:
        return False, None


def _evict(path: Path, seen: os.stat_result) -> None:
    """Remove a bad entry, unless a concurrent fetcher has already replaced it."""
    with contextlib.suppress(OSError):
        now = os.stat(path)
        if (now.st_ino, now.st_dev, now.st_mtime_ns) == (
            seen.st_ino,
            seen.st_dev,
            seen.st_mtime_ns,
        ):
            os.unlink(path)
