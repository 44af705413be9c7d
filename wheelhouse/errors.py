"""Every error a user can cause, in one hierarchy.

The CLI catches ``WheelhouseError`` and prints ``error: <message>`` on one line, with no traceback,
and exits with ``exit_code``. Messages therefore name the offending package/file and say what to do;
anything that is not a ``WheelhouseError`` is a bug in wheelhouse and keeps its traceback.
"""

from __future__ import annotations


class WheelhouseError(Exception):
    """Base class: a problem with the user's input or environment, reported as one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(WheelhouseError):
    """Command-line arguments that do not make sense together."""

    exit_code = 2


# --- lock stage --------------------------------------------------------------------------------


class LockError(WheelhouseError):
    """A pylock.toml that cannot be read, is not valid PEP 751, or disagrees with itself."""


class ResolutionError(WheelhouseError):
    """pip could not resolve the requirements, or the index lacks a usable artifact."""


class SelectionError(WheelhouseError):
    """No artifact of a locked package fits the requested target."""


# --- fetch stage -------------------------------------------------------------------------------


class FetchError(WheelhouseError):
    """An artifact could not be downloaded (HTTP error, connection failure, bad credentials)."""


class NotFoundError(FetchError):
    """The server says the file does not exist (404/410): never retried, never swapped."""


class HashMismatchError(FetchError):
    """Bytes (downloaded, or found in a wheelhouse) do not match the lock's sha256 or size."""


# --- install stage -----------------------------------------------------------------------------


class InstallError(WheelhouseError):
    """A wheel cannot be installed (bad wheel, metadata disagreeing with the lock, ...)."""


class UnsafePathError(InstallError):
    """An archive member would be written outside its destination (``../``, absolute, link)."""


class RecordError(InstallError):
    """A wheel's RECORD is missing, or a file's content disagrees with it."""


class LibraryError(InstallError):
    """Shared libraries that installed extension modules need are found nowhere (RUNPATH pass)."""


class ConflictError(InstallError):
    """Two wheels write different content to the same path."""


# --- build stage -------------------------------------------------------------------------------


class BuildError(WheelhouseError):
    """An sdist cannot be turned into a wheel: invalid sdist, backend failure, wrong result.

    The message names the package and, for a backend failure, ends with the last lines the
    backend printed, since that is where the cause (a missing compiler, header, ...) shows.
    """


# --- image stage -------------------------------------------------------------------------------


class ImageError(WheelhouseError):
    """An env prefix cannot become an image (no RECORDs, a file two packages claim, a file type
    an image must not carry, a layer spec or limit that does not fit)."""


# --- nar ---------------------------------------------------------------------------------------


class NarError(WheelhouseError):
    """A tree cannot be serialised as a NAR (unsupported file type)."""


# --- printing ----------------------------------------------------------------------------------

# One escaping rule for every message: names inside messages come from archives and locks that
# anyone may have written, and a name holding a newline or an ANSI escape must not print a line
# of its own (a forged ``error:``) or recolour the terminal. The rule lives in ``_safefs``
# (standard library only, so the install worker run by the target interpreter shares it).
from wheelhouse._safefs import escape as escape  # noqa: E402 - re-exported
