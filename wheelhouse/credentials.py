"""Credentials for index and file URLs: where they come from, and where they may go.

Credentials never live in the lock. They come from a URL's ``user:pass@`` (stripped before the
request and from every message), ``WHEELHOUSE_AUTH`` or netrc, in that order, and belong to one
origin (scheme, host, port): the transport re-sends them after a redirect only when the redirect
stays on that origin, so a redirect never chooses where secrets go.

No message made here quotes a password: not the entry of a malformed ``WHEELHOUSE_AUTH``, not the
line of a netrc file that does not parse.
"""

from __future__ import annotations

import base64
import netrc
import os
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from wheelhouse.errors import FetchError

__all__ = [
    "CredentialStore",
    "Credentials",
    "env_credentials",
    "origin",
    "redact",
    "split_credentials",
]

Origin = tuple[str, str, int | None]
"""(scheme, lower-case host, port with the scheme's default filled in)."""


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)
    source: str
    """Where they came from, for messages: never the credentials themselves."""

    def header(self) -> str:
        """The ``Authorization`` header value (HTTP Basic)."""
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def redact(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """Split ``scheme://user:pass@host/...`` into the bare URL and the credentials."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    creds = Credentials(
        urllib.parse.unquote(user), urllib.parse.unquote(password), "the URL's user:password@"
    )
    return bare, creds


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def origin(url: str) -> Origin:
    """The origin credentials are bound to: a redirect keeps them only if this is unchanged."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = _port(parts)
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _parse_auth_env(value: str) -> dict[str, Credentials]:
    """Parse ``WHEELHOUSE_AUTH``: whitespace-separated ``host[:port]=user:password`` entries."""
    entries: dict[str, Credentials] = {}
    for index, entry in enumerate(value.split(), start=1):
        host, sep, userpass = entry.partition("=")
        if not sep or not host:
            # Never echo the entry: it probably contains a password.
            raise FetchError(
                f"WHEELHOUSE_AUTH entry {index} is not of the form host=user:password; "
                "fix the variable (entries are separated by whitespace)"
            )
        user, colon, password = userpass.partition(":")
        if not colon:
            raise FetchError(
                f"WHEELHOUSE_AUTH entry for host {host} has no ':' between user and password; "
                "write it as host=user:password (host=TOKEN: for a token with no password)"
            )
        entries[host.lower()] = Credentials(user, password, "WHEELHOUSE_AUTH")
    return entries


def _env_entry(entries: dict[str, Credentials], url: str) -> Credentials | None:
    """The ``WHEELHOUSE_AUTH`` entry for ``url``: ``host:port`` first, then ``host``."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    port = _port(parts)
    found = entries.get(f"{host}:{port}") if port is not None else None
    return found or entries.get(host)


def env_credentials(url: str) -> tuple[str, str] | None:
    """``(user, password)`` that ``WHEELHOUSE_AUTH`` gives for ``url``'s host[:port], if any.

    For handing credentials to pip (through its environment, never its command line)."""
    found = _env_entry(_parse_auth_env(os.environ.get("WHEELHOUSE_AUTH", "")), url)
    return (found.user, found.password) if found is not None else None


def _netrc_path() -> Path:
    explicit = os.environ.get("NETRC")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.path.expanduser("~")) / ".netrc"


class CredentialStore:
    """Which credentials go with a URL; safe to use from several threads.

    ``WHEELHOUSE_AUTH`` is read (and checked) when the store is made; the netrc file only when
    a URL first needs it, so a broken netrc does not stop fetches that need no credentials.
    """

    def __init__(self) -> None:
        self._env = _parse_auth_env(os.environ.get("WHEELHOUSE_AUTH", ""))
        self._remembered: dict[Origin, Credentials] = {}
        self._netrc_file = _netrc_path()
        self._netrc: netrc.netrc | None = None
        self._netrc_loaded = False
        self._lock = threading.Lock()

    def remember(self, url: str) -> None:
        """Use the ``user:password@`` of ``url`` for every later request to its origin."""
        _bare, creds = split_credentials(url)
        if creds is not None:
            with self._lock:
                self._remembered[origin(url)] = creds

    def for_url(self, url: str) -> Credentials | None:
        """Credentials for ``url`` (which carries none itself): remembered, env, then netrc."""
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        if not host:
            return None
        with self._lock:
            remembered = self._remembered.get(origin(url))
        if remembered is not None:
            return remembered
        found = _env_entry(self._env, url)
        if found is not None:
            return found
        rc = self._load_netrc()
        if rc is not None:
            entry = rc.authenticators(host)
            if entry is not None:
                login, _account, password = entry
                return Credentials(login or "", password or "", f"netrc file {self._netrc_file}")
        return None

    def hint(self, url: str, creds: Credentials | None) -> str:
        """What to do about a 401/403 from ``url``: where credentials go, or which were wrong."""
        host = urllib.parse.urlsplit(url).hostname or "?"
        if creds is None:
            return (
                f"no credentials were found for host {host}; add them to the netrc file "
                f"({self._netrc_file}, or $NETRC) or to WHEELHOUSE_AUTH as {host}=user:password"
            )
        return (
            f"the credentials for host {host} from {creds.source} were rejected; check the entry "
            f"for {host} in the netrc file ({self._netrc_file}, or $NETRC) or in WHEELHOUSE_AUTH"
        )

    def _load_netrc(self) -> netrc.netrc | None:
        with self._lock:
            if not self._netrc_loaded:
                path = self._netrc_file
                if path.is_file():
                    try:
                        self._netrc = netrc.netrc(os.fspath(path))
                    except netrc.NetrcParseError as error:
                        # error.msg may quote a token from the file, i.e. a password: omit it.
                        raise FetchError(
                            f"cannot parse netrc file {path} (line {error.lineno}); fix it or "
                            "point NETRC at another file"
                        ) from None
                    except OSError as error:
                        raise FetchError(
                            f"cannot read netrc file {path}: {error.strerror or error}; fix its "
                            "permissions (a Nix build reads it as a build user: e.g. `chgrp "
                            "nixbld FILE; chmod 640 FILE`) or point NETRC at another file"
                        ) from None
                self._netrc_loaded = True
            return self._netrc
