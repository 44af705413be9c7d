"""What wheelhouse says besides errors and warnings, and how much: ``-q`` and ``-v``.

Errors and warnings always print (the CLI does that); progress and ``info`` lines are for a
person at a terminal and go away with ``-q``; ``-v`` adds the details (timings, the install
timeline) that help when something is slow.
"""

from __future__ import annotations

import sys

_level = 0


def set_verbosity(level: int) -> None:
    """``-v`` counts up, ``-q`` down; 0 is the default."""
    global _level
    _level = level


def quiet() -> bool:
    return _level < 0


def verbose() -> bool:
    return _level > 0


def info(message: str) -> None:
    """A line for the person running the command (what was written, which mode ran)."""
    if _level >= 0:
        print(message, file=sys.stderr)


def detail(message: str) -> None:
    """A line only ``-v`` shows."""
    if _level > 0:
        print(message, file=sys.stderr)
