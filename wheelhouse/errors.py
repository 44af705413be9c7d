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


# --- nar ---------------------------------------------------------------------------------------


class NarError(WheelhouseError):
    """A tree cannot be serialised as a NAR (unsupported file type)."""


# --- printing ----------------------------------------------------------------------------------

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_UNSAFE = {
    code: _escaped(chr(code))
    for code in [
        *range(0x00, 0x20),  # C0: newline, carriage return, ESC (terminal escape sequences)...
        *range(0x7F, 0xA0),  # DEL and C1 (0x9b is a one-byte CSI on some terminals)
        0x200E, 0x200F, 0x2028, 0x2029,  # direction marks, line/paragraph separators
        *range(0x202A, 0x202F), *range(0x2066, 0x206A),  # bidi overrides ("Trojan source")
    ]
}  # fmt: skip


def escape(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\n``, ``\\x1b``).

    Names inside messages come from archives and locks that anyone may have written: a member
    name holding a newline or an ANSI escape must not be able to print a line of its own (a
    forged ``error:``) or recolour the terminal. Backslashes are kept as they are, so text that
    already went through ``repr`` reads the same.
    """
    return text.translate(_UNSAFE)
