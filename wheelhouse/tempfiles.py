"""Temp names that survive a crash recognisably: ``.<name>.wheelhouse-tmp-<pid>-<random>``.

Every stage writes under a temp name first and renames at the end, so a killed process leaves
only such names behind; the pid in them tells a leftover of a dead run from a live run's, and the
next run removes the leftovers. Shared by fetch (files, the cache) and install (the staging env).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path

TEMP_MARK = ".wheelhouse-tmp-"
"""Temp files/dirs are named ``.<name>.wheelhouse-tmp-<pid>-<random>``, so leftovers of a killed
run can be recognised (their pid is dead) and removed without touching a live run's."""
TEMP_RE = re.compile(r"\..*\.wheelhouse-tmp-(\d+)-.*")


def temp_prefix(name: str) -> str:
    """mkstemp/mkdtemp prefix for a temp standing in for ``name``, marked with our pid."""
    return f".{name}{TEMP_MARK}{os.getpid()}-"


def remove_stale_temps(directory: Path, *, prefix: str, min_age: float = 0.0) -> None:
    """Remove temp files/dirs (starting with ``prefix``) that a killed fetch left behind.

    A temp is stale when the pid in its name is not running (and, with ``min_age``, when it was
    not written for that many seconds: a shared cache may be used from another pid namespace).
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = TEMP_RE.fullmatch(entry.name)
        if not entry.name.startswith(prefix) or match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if min_age and now - entry.stat(follow_symlinks=False).st_mtime < min_age:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
