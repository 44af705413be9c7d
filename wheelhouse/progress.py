"""The download progress line: one ``\\r``-rewritten line on stderr, or nothing.

Shown only on a terminal (or when asked for) and never with ``--quiet``, so logs and Nix build
output stay free of carriage returns. Several download threads report to one ``Progress``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from wheelhouse import ui

__all__ = ["Progress", "make_progress"]


class Progress:
    """Files done out of ``total`` and bytes downloaded; redrawn at most every 0.1 s."""

    _INTERVAL = 0.1

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._drawn = False

    def add_bytes(self, count: int) -> None:
        if self.enabled:
            with self._lock:
                self.bytes += count
                self._draw(force=False)

    def file_done(self) -> None:
        if self.enabled:
            with self._lock:
                self.done += 1
                self._draw(force=self.done == self.total)

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._INTERVAL:
            return
        self._last = now
        mib = self.bytes / (1024 * 1024)
        line = f"wheelhouse: fetched {self.done}/{self.total} files, {mib:.1f} MiB downloaded"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"\r{line}\x1b[K")
            sys.stderr.flush()
            self._drawn = True

    def close(self) -> None:
        """End the line (if one was drawn), so the next message starts on its own line."""
        if self.enabled and self._drawn:
            with self._lock, contextlib.suppress(OSError, ValueError):
                self._draw(force=True)
                sys.stderr.write("\n")
                sys.stderr.flush()
                self._drawn = False


def make_progress(total: int, enabled: bool | None) -> Progress:
    """A ``Progress`` for ``total`` files; ``enabled=None``: only if stderr is a terminal."""
    if enabled is None:
        try:
            enabled = sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):
            enabled = False
    return Progress(total, enabled and not ui.quiet())
