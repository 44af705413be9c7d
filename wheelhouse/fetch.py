"""Fill the wheelhouse: one flat directory holding exactly the locked artifact files.

The directory becomes (part of) a Nix fixed-output derivation, so its NAR hash must be exactly
reproducible: every file is a verified copy (never a link into the cache, which could change
later), mode 0644, and no temp or lock file is ever left behind.

* ``dest`` missing: it is built in a sibling temp dir and renamed into place at the end, so a
  failure leaves nothing under ``dest``. (If no sibling can be created, ``dest`` is filled in
  place.)
* ``dest`` present: each missing or wrong file is replaced atomically (temp file in ``dest``,
  fsync, ``os.replace``); a correct file is kept as is. Files that are not artifacts are left
  alone; temp files of earlier runs that died are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from wheelhouse.download import Downloader, unique_by_filename
from wheelhouse.errors import FetchError, HashMismatchError
from wheelhouse.model import Artifact
from wheelhouse.tempfiles import fsync_dir, remove_stale_temps, temp_prefix

__all__ = ["fetch"]

FILE_MODE = 0o644
DIR_MODE = 0o755
_CHUNK = 1024 * 1024


def fetch(artifacts: Sequence[Artifact], dest: Path, downloader: Downloader) -> list[Path]:
    """Place every artifact at ``dest/<filename>``; return those paths in the input order."""
    wanted = unique_by_filename(artifacts)
    dest = Path(dest)
    try:
        if dest.is_dir():
            remove_stale_temps(dest, prefix="")
            _fill(dest, wanted, downloader, keep_existing=True)
            fsync_dir(dest)
        elif dest.exists() or dest.is_symlink():
            raise FetchError(
                f"the wheelhouse destination {dest} exists and is not a directory; remove it or "
                "choose another destination"
            )
        else:
            _create(dest, wanted, downloader)
    except OSError as error:
        raise FetchError(
            f"cannot write the wheelhouse {dest}: {error.strerror or error}; check the "
            "destination's permissions and free space"
        ) from None
    return [dest / name for name in wanted]


def _create(dest: Path, wanted: dict[str, Artifact], downloader: Downloader) -> None:
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(
            f"cannot create {parent} for the wheelhouse {dest}: {error.strerror or error}; "
            "choose a writable destination"
        ) from None
    remove_stale_temps(parent, prefix=f".{dest.name}")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(dest.name), dir=parent))
    except OSError:
        # No sibling possible (e.g. only dest itself may be created): fill it in place.
        _mkdir(dest)
        _fill(dest, wanted, downloader, keep_existing=True)
        fsync_dir(dest)
        return
    try:
        _fill(tmp, wanted, downloader, keep_existing=False)
        os.chmod(tmp, DIR_MODE)
        fsync_dir(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
            # A concurrent fetch created dest first: merge into it, keeping its correct files.
            _fill(dest, wanted, downloader, keep_existing=True)
            fsync_dir(dest)
        fsync_dir(parent)
    except OSError as error:
        raise FetchError(
            f"cannot create the wheelhouse {dest}: {error.strerror or error}; check the "
            "destination's permissions and free space"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(mode=DIR_MODE, exist_ok=True)
    except OSError as error:
        raise FetchError(
            f"cannot create the wheelhouse {path}: {error.strerror or error}; choose a writable "
            "destination"
        ) from None


def _fill(
    directory: Path, wanted: dict[str, Artifact], downloader: Downloader, *, keep_existing: bool
) -> None:
    todo: list[Artifact] = []
    for name, artifact in wanted.items():
        target = directory / name
        if keep_existing and _is_correct(target, artifact):
            with contextlib.suppress(OSError):
                if stat.S_IMODE(target.stat().st_mode) != FILE_MODE:
                    os.chmod(target, FILE_MODE)
            continue
        todo.append(artifact)
    if not todo:
        return
    sources = downloader.get_many(todo)
    for artifact in todo:
        _place(sources[artifact.filename], directory, artifact, downloader)


def _place(source: Path, directory: Path, artifact: Artifact, downloader: Downloader) -> None:
    """Copy ``source`` to ``directory/<filename>`` atomically, verifying the bytes copied."""
    target = directory / artifact.filename
    for attempt in range(2):
        if attempt:
            # The cache entry vanished or changed after get(): get() re-verifies (and evicts).
            source = downloader.get(artifact)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=temp_prefix(artifact.filename))
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    correct = _copy_verified(source, out, artifact)
                except FileNotFoundError:
                    continue
                except OSError as error:
                    raise FetchError(
                        f"{artifact.filename}: cannot copy it into {directory}: "
                        f"{error.strerror or error}; check free space and permissions"
                    ) from None
            if correct:
                os.chmod(tmp, FILE_MODE)
                os.replace(tmp, target)
                return
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    raise HashMismatchError(
        f"{artifact.filename} ({artifact.package} {artifact.version}): the copy placed in "
        f"{directory} does not have the lock's sha256 {artifact.sha256}, even after re-reading "
        f"it from the cache ({source}); the cache or the disk is being modified or is failing: "
        "clear the cache and run again"
    )


def _copy_verified(source: Path, out: BinaryIO, artifact: Artifact) -> bool:
    """Copy ``source`` into ``out`` (then fsync it), hashing the bytes on their way: whether
    they are the artifact's. The copy is never read back, and a change of ``source`` after it
    was verified is caught here."""
    hasher = hashlib.sha256()
    size = 0
    with open(source, "rb") as file:
        while chunk := file.read(_CHUNK):
            size += len(chunk)
            if artifact.size is not None and size > artifact.size:
                return False
            hasher.update(chunk)
            out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
    return artifact.size in (None, size) and hasher.hexdigest() == artifact.sha256.lower()


def _is_correct(path: Path, artifact: Artifact) -> bool:
    """Whether ``path`` is a regular file (not a link) with the artifact's bytes."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # also: never open a FIFO (it would block)
            return False
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if artifact.size is not None and info.st_size != artifact.size:
                return False
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return False
    return digest == artifact.sha256.lower()
