"""Helpers of the Downloader's tests (test_download, test_transport, test_credentials,
test_cache, test_progress, test_fetch): a Downloader with fast retries, a big incompressible
wheel, and which files a block of code opens."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from wheelmaker import make_wheel

from wheelhouse.download import Downloader

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PASSWORD = "s3cret-Pa55"
WRONG = "hunter2-wrong"


def downloader(cache: Path | bool | None, **options: object) -> Downloader:
    """A Downloader with millisecond backoff, short timeouts and no progress line."""
    settings: dict[str, object] = {"backoff": 0.01, "timeout": 5.0, "progress": False}
    settings.update(options)
    return Downloader(cache, **settings)  # type: ignore[arg-type]


def big_wheel(directory: Path, name: str = "big", size: int = 300_000) -> Path:
    payload = random.Random(1).randbytes(size)  # incompressible: the wheel is ~size bytes
    return make_wheel(directory, name, "1.0", files={f"{name}/data.bin": payload})


_reads: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _reads is not None and isinstance(args[0], str | Path):
        flags = args[2]
        if isinstance(flags, int) and flags & os.O_ACCMODE == os.O_RDONLY:
            _reads.append(os.fspath(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed: this one does nothing outside reads_below


@contextlib.contextmanager
def reads_below(directory: Path) -> Iterator[list[Path]]:
    """The paths below ``directory`` this process opens read-only inside the block, once per
    open (from the interpreter's audit events: every ``open``, whoever calls it)."""
    global _reads
    seen: list[str] = []
    found: list[Path] = []
    _reads = seen
    try:
        yield found
    finally:
        _reads = None
        found.extend(Path(p) for p in seen if Path(p).is_relative_to(directory))
