"""Getting bytes: the only module that talks HTTP or reads artifacts from their source.

``Downloader.get`` turns a locked ``Artifact`` into a local file whose sha256 (and size) match the
lock, going through a content-addressed cache; ``Downloader.get_many`` does that for many artifacts
in parallel; ``Downloader.read`` fetches small index pages for the index client.

Design rules:

* Nothing appears under a final name before it is complete and verified: every write goes to a
  temp file in the same directory, is fsync'ed, then ``os.replace``'d into place.
* Credentials never live in the lock. They come from the URL's ``user:pass@`` (stripped before the
  request and from every message), ``WHEELHOUSE_AUTH`` or netrc, are sent with
  ``add_unredirected_header`` and re-added on a redirect only when it stays on the same origin
  (scheme, host, port).
* Transient failures (5xx, 408/429, resets, timeouts, a body cut short) are retried a bounded
  number of times with exponential backoff, honouring a capped ``Retry-After``; a cut body resumes
  with a ``Range`` request when the server advertises ``Accept-Ranges: bytes``. Other 4xx fail at
  once. Wrong bytes are downloaded once more (a cut the server did not announce looks the same),
  then reported as ``HashMismatchError``.
* TLS always verifies, with ``ssl.create_default_context()`` (so ``SSL_CERT_FILE`` works, and
  ``NIX_SSL_CERT_FILE`` when ``SSL_CERT_FILE`` is not set).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import http.client
import io
import netrc
import os
import re
import shutil
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from stat import S_ISREG
from typing import IO, cast

from wheelhouse import __version__, ui
from wheelhouse.errors import FetchError, HashMismatchError, LockError, NotFoundError
from wheelhouse.model import Artifact
from wheelhouse.tempfiles import fsync_dir, remove_stale_temps, temp_prefix

__all__ = ["Downloader", "check_filename", "default_cache_dir", "env_credentials", "redact"]

USER_AGENT = f"wheelhouse/{__version__}"
CHUNK_SIZE = 256 * 1024
MAX_BACKOFF = 30.0
"""Upper bound of one exponential-backoff sleep, in seconds."""
RETRY_AFTER_CAP = 60.0
"""Default upper bound of a server's ``Retry-After``, in seconds."""
_CANCEL_GRACE = 5.0
"""How long ``get_many`` waits for running downloads to notice a cancellation."""

_STALE_CACHE_TEMP_AGE = 600.0
"""A cache temp file of a dead pid is removed once it is this old (seconds)."""
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_PAGE = "index page"


# --- small public helpers ----------------------------------------------------------------------


def redact(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


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


# --- internals: errors, credentials ------------------------------------------------------------


class _Cancelled(Exception):
    """Another download of the same ``get_many`` failed; this one stops quietly."""


class _Transient(Exception):
    """A failure worth retrying that is not an exception of the HTTP stack (e.g. a short body)."""


class _WriteError(Exception):
    """Writing the local temp file failed (disk full, permissions): never retried."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Credentials:
    user: str
    password: str = field(repr=False)
    source: str
    """Where they came from, for messages: never the credentials themselves."""

    def header(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def _split_credentials(url: str) -> tuple[str, _Credentials | None]:
    """Split ``scheme://user:pass@host/...`` into the bare URL and the credentials."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    creds = _Credentials(
        urllib.parse.unquote(user), urllib.parse.unquote(password), "the URL's user:password@"
    )
    return bare, creds


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _parse_auth_env(value: str) -> dict[str, _Credentials]:
    """Parse ``WHEELHOUSE_AUTH``: whitespace-separated ``host[:port]=user:password`` entries."""
    entries: dict[str, _Credentials] = {}
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
        entries[host.lower()] = _Credentials(user, password, "WHEELHOUSE_AUTH")
    return entries


def env_credentials(url: str) -> tuple[str, str] | None:
    """``(user, password)`` that ``WHEELHOUSE_AUTH`` gives for ``url``'s host[:port], if any.

    For handing credentials to pip (through its environment, never its command line)."""
    entries = _parse_auth_env(os.environ.get("WHEELHOUSE_AUTH", ""))
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    found = entries.get(f"{host}:{port}") if port is not None else None
    found = found or entries.get(host)
    return (found.user, found.password) if found is not None else None


def _ssl_context() -> ssl.SSLContext:
    """A verifying context: the system's CAs, or ``SSL_CERT_FILE``, or else (the variable Nix
    and nixpkgs' cacert set) ``NIX_SSL_CERT_FILE``. There is no way to turn verification off."""
    nix_bundle = os.environ.get("NIX_SSL_CERT_FILE")
    if os.environ.get("SSL_CERT_FILE") or not nix_bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=nix_bundle)
    except (OSError, ssl.SSLError) as error:
        raise FetchError(
            f"cannot load the CA bundle NIX_SSL_CERT_FILE={nix_bundle}: {_describe(error)}; "
            "point it (or SSL_CERT_FILE) at a PEM bundle of CA certificates"
        ) from None


def _netrc_path() -> Path:
    explicit = os.environ.get("NETRC")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.path.expanduser("~")) / ".netrc"


# --- internals: HTTP ---------------------------------------------------------------------------


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects; re-send ``Authorization`` only if the redirect stays on the same origin.

    urllib drops unredirected headers on every redirect, which is right for another host but
    breaks indexes that redirect within themselves (``/simple/Foo`` -> ``/simple/foo/``).
    Nothing is sent after a redirect to another origin (scheme, host or port), not even
    credentials configured for the new one: a redirect must not choose where secrets go.
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            auth = req.unredirected_hdrs.get("Authorization")
            if auth is not None and _origin(req.full_url) == _origin(new.full_url):
                new.add_unredirected_header("Authorization", auth)
        return new


def _retryable_status(code: int) -> bool:
    return code in (408, 425, 429) or 500 <= code <= 599


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _int_header(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE)


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total)`` of a ``Content-Range: bytes first-last/total`` header."""
    if value is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(value)
    if match is None:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _validator(headers: Message) -> str | None:
    """A value for ``If-Range``: a strong ETag, else ``Last-Modified``."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed in the middle of a chunk ({len(error.partial)} bytes read)"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


# --- internals: files --------------------------------------------------------------------------


class _Sink:
    """The temp file a transfer writes to, hashing and counting as it goes."""

    def __init__(self, file: IO[bytes], progress: _Progress | None) -> None:
        self.file = file
        self.progress = progress
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as error:
            raise _WriteError(error) from error
        self.hasher.update(data)
        self.size += len(data)
        if self.progress is not None:
            self.progress.add_bytes(len(data))

    def reset(self) -> None:
        try:
            self.file.seek(0)
            self.file.truncate()
        except OSError as error:
            raise _WriteError(error) from error
        self.hasher = hashlib.sha256()
        self.size = 0


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
    """Remove a bad cache entry, unless a concurrent fetcher has already replaced it."""
    with contextlib.suppress(OSError):
        now = os.stat(path)
        if (now.st_ino, now.st_dev, now.st_mtime_ns) == (
            seen.st_ino,
            seen.st_dev,
            seen.st_mtime_ns,
        ):
            os.unlink(path)


# --- progress ----------------------------------------------------------------------------------


class _Progress:
    """A one-line ``\\r``-rewritten progress indicator on stderr (or nothing)."""

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
        if self.enabled and self._drawn:
            with self._lock, contextlib.suppress(OSError, ValueError):
                self._draw(force=True)
                sys.stderr.write("\n")
                sys.stderr.flush()
                self._drawn = False


# --- the downloader ----------------------------------------------------------------------------


class Downloader:
    """Fetches artifacts into a verified, content-addressed cache, and reads index pages.

    ``cache_dir``: the cache directory; ``None`` or ``True`` for the default (see
    ``default_cache_dir``; if it cannot be created, e.g. ``HOME=/homeless-shelter`` in a Nix build,
    a private temp dir is used instead); ``False`` to always use a private temp dir. The private
    temp dir is removed by ``close()`` (or on leaving a ``with`` block, or at garbage collection),
    so paths returned by ``get`` are only valid until then; ``fetch`` copies them out before that.
    ``base_dir``: the directory relative artifact ``path``s are taken from (default: the current
    directory). ``max_retry_after``: cap on a server's ``Retry-After``, in seconds.
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

        self._cache_root: Path | None = self._init_cache(cache_dir)
        self._private_dir: Path | None = None
        self._private_finalizer: weakref.finalize[..., Downloader] | None = None
        self._lock = threading.Lock()

        self._env_auth = _parse_auth_env(os.environ.get("WHEELHOUSE_AUTH", ""))
        self._url_auth: dict[tuple[str, str, int | None], _Credentials] = {}
        self._netrc_loaded = False
        self._netrc: netrc.netrc | None = None
        self._netrc_file = _netrc_path()

        self._ssl_context = _ssl_context()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._ssl_context), _RedirectHandler()
        )

    # -- lifecycle --

    @staticmethod
    def _init_cache(cache_dir: Path | str | bool | None) -> Path | None:
        if cache_dir is False:
            return None
        if cache_dir is not None and cache_dir is not True:
            path = Path(cache_dir).expanduser()
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise FetchError(
                    f"cannot create the download cache directory {path}: {_describe(error)}; "
                    "choose a writable cache directory or disable the cache"
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
    def cache_dir(self) -> Path | None:
        """The persistent cache directory in use, or ``None`` when a private temp dir is used."""
        return self._cache_root

    def close(self) -> None:
        """Remove the private temp dir, if one was made (paths from ``get`` in it go away)."""
        if self._private_finalizer is not None:
            self._private_finalizer()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _root(self) -> Path:
        if self._cache_root is not None:
            return self._cache_root
        with self._lock:
            if self._private_dir is None or not self._private_dir.is_dir():
                self._private_dir = Path(tempfile.mkdtemp(prefix="wheelhouse-download-"))
                self._private_finalizer = weakref.finalize(
                    self, shutil.rmtree, self._private_dir, ignore_errors=True
                )
            return self._private_dir

    # -- credentials --

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
                            f"cannot read netrc file {path}: {_describe(error)}; fix its "
                            "permissions (a Nix build reads it as a build user: e.g. `chgrp "
                            "nixbld FILE; chmod 640 FILE`) or point NETRC at another file"
                        ) from None
                self._netrc_loaded = True
            return self._netrc

    def remember_credentials(self, url: str) -> None:
        """Use the ``user:password@`` of ``url`` (an index URL given on the command line) for
        every later request to the same origin (scheme, host, port), e.g. the files an index page
        links to, whose URLs carry no credentials. Kept in memory only."""
        _bare, creds = _split_credentials(url)
        if creds is not None:
            self._url_auth[_origin(url)] = creds

    def _credentials_for(self, url: str) -> _Credentials | None:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            return None
        remembered = self._url_auth.get(_origin(url))
        if remembered is not None:
            return remembered
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is not None and f"{host}:{port}" in self._env_auth:
            return self._env_auth[f"{host}:{port}"]
        if host in self._env_auth:
            return self._env_auth[host]
        rc = self._load_netrc()
        if rc is not None:
            found = rc.authenticators(host)
            if found is not None:
                login, _account, password = found
                return _Credentials(login or "", password or "", f"netrc file {self._netrc_file}")
        return None

    def _auth_hint(self, url: str, creds: _Credentials | None) -> str:
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

    # -- HTTP --

    def _open(
        self, url: str, headers: dict[str, str], creds: _Credentials | None
    ) -> http.client.HTTPResponse:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        if creds is not None:
            request.add_unredirected_header("Authorization", creds.header())
        return cast(http.client.HTTPResponse, self._opener.open(request, timeout=self.timeout))

    def _transfer(
        self,
        url: str,
        sink: _Sink,
        *,
        what: str,
        accept: str | None,
        limit: int | None,
        cancel: threading.Event,
    ) -> tuple[str, str]:
        """GET ``url`` into ``sink`` with retries and resumption; return (final URL, type).

        ``what`` names the thing for messages (a file name or "index page"); ``limit`` stops
        reading once more than that many bytes arrived (the verification then fails).
        """
        bare, url_creds = _split_credentials(url)
        shown = redact(url)
        scheme = urllib.parse.urlsplit(bare).scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(
                f"{what}: cannot fetch {shown}: only http, https and file URLs are supported; "
                "fix the URL in the lock or the index"
            )
        creds = url_creds or self._credentials_for(bare)
        resumable = False
        validator: str | None = None
        attempts = 0
        while True:
            if cancel.is_set():
                raise _Cancelled
            headers = {"Accept-Encoding": "identity"}
            if accept:
                headers["Accept"] = accept
            resume_from = sink.size if resumable else 0
            if resume_from:
                headers["Range"] = f"bytes={resume_from}-"
                if validator:
                    headers["If-Range"] = validator
            retry_after: float | None = None
            try:
                with self._open(bare, headers, creds) as response:
                    final_url = response.geturl()
                    content_type = response.headers.get("Content-Type", "")
                    length = _int_header(response.headers.get("Content-Length"))
                    crange = _content_range(response.headers.get("Content-Range"))
                    if response.status == 206:
                        if not resume_from or crange is None or crange[0] != resume_from:
                            resumable = False
                            raise _Transient("the server sent a partial response that does not fit")
                        # a server may send less than asked: the total says what is missing
                        expected_end: int | None = crange[1] + 1 if crange[2] is None else crange[2]
                    else:
                        sink.reset()
                        accept_ranges = response.headers.get("Accept-Ranges", "")
                        resumable = accept_ranges.strip().lower() == "bytes"
                        validator = _validator(response.headers)
                        expected_end = length
                    over_limit = self._copy_body(response, sink, limit, cancel)
                    if not over_limit and expected_end is not None and sink.size < expected_end:
                        raise _Transient(
                            f"connection closed after {sink.size} of {expected_end} bytes"
                        )
                return final_url, content_type
            except urllib.error.HTTPError as error:
                with contextlib.suppress(Exception):
                    error.close()
                if error.code == 416 and resume_from:
                    resumable = False
                    reason = "HTTP 416 for a resumed download"
                elif not _retryable_status(error.code):
                    raise self._status_error(error, what=what, shown=shown, creds=creds) from None
                else:
                    reason = f"HTTP {error.code} {error.reason}"
                    if error.code in _RETRY_AFTER_STATUSES:
                        retry_after = _parse_retry_after(error.headers.get("Retry-After"))
            except urllib.error.URLError as error:
                cause = error.reason
                if isinstance(cause, ssl.SSLCertVerificationError):
                    host = urllib.parse.urlsplit(bare).hostname
                    raise FetchError(
                        f"{what}: TLS certificate verification failed for {host} ({shown}): "
                        f"{cause.verify_message or cause}; if the index uses a private CA, set "
                        "SSL_CERT_FILE to a CA bundle that contains it"
                    ) from None
                if not isinstance(cause, OSError):
                    raise FetchError(f"{what}: cannot fetch {shown}: {cause}") from None
                reason = _describe(cause)
            except _Transient as error:
                reason = str(error)
            except (OSError, http.client.HTTPException) as error:
                reason = _describe(error)
            attempts += 1
            if attempts > self.retries:
                raise FetchError(
                    f"{what}: giving up on {shown} after {attempts} attempts; last error: "
                    f"{reason}. Check the network and the index, then run again"
                )
            delay = min(self.backoff * 2 ** (attempts - 1), MAX_BACKOFF)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_retry_after))
            if cancel.wait(delay):
                raise _Cancelled

    @staticmethod
    def _copy_body(
        response: http.client.HTTPResponse,
        sink: _Sink,
        limit: int | None,
        cancel: threading.Event,
    ) -> bool:
        """Copy the body into ``sink``; True if it stopped because ``limit`` was exceeded."""
        while True:
            chunk = response.read(CHUNK_SIZE)
            if not chunk:
                return False
            sink.write(chunk)
            if limit is not None and sink.size > limit:
                return True
            if cancel.is_set():
                raise _Cancelled

    def _status_error(
        self,
        error: urllib.error.HTTPError,
        *,
        what: str,
        shown: str,
        creds: _Credentials | None,
    ) -> FetchError:
        status = f"HTTP {error.code} {error.reason}".rstrip()
        head = f"{what}: {shown} answered {status}"
        failed = error.url if isinstance(error.url, str) and error.url else shown
        page = what == _PAGE
        if _origin(failed) != _origin(shown):  # a redirect to another origin failed
            head = f"{what}: {shown} redirected to {redact(failed)}, which answered {status}"
            if error.code in (401, 403):
                host = urllib.parse.urlsplit(failed).hostname or "?"
                return FetchError(
                    f"{head}; credentials are never sent across a redirect to another host "
                    f"({host}): use an index URL on the host that serves the files, or make "
                    "them readable there without credentials"
                )
        if error.code in (401, 403):
            return FetchError(f"{head}; {self._auth_hint(shown, creds)}")
        if error.code in (404, 410):
            advice = (
                "check the index URL and the project name"
                if page
                else "the file is not (or no longer) at that URL: check the URL or index, or "
                "re-lock"
            )
            return NotFoundError(f"{head}; {advice}")
        return FetchError(f"{head}; this is not retried: check the URL and the index")

    # -- public API --

    def read(self, url: str, accept: str | None = None) -> tuple[bytes, str, str]:
        """GET a small document (an index page): ``(body, final URL, content type)``."""
        buffer = io.BytesIO()
        sink = _Sink(buffer, None)
        final_url, content_type = self._transfer(
            url, sink, what=_PAGE, accept=accept, limit=None, cancel=threading.Event()
        )
        return buffer.getvalue(), final_url, content_type

    def get(self, artifact: Artifact) -> Path:
        """A verified local file with ``artifact``'s bytes (cached, copied or downloaded)."""
        progress = self._make_progress(1)
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
        progress = self._make_progress(len(unique))
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
        progress = self._make_progress(1)
        root = self._root()

        def fill(sink: _Sink) -> None:
            self._transfer(url, sink, what=name, accept=None, limit=None, cancel=cancel)

        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp, (sha256, _size) = self._fill_temp(root, name, fill, progress)
            try:
                final = self._cache_path(sha256, name)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                fsync_dir(final.parent)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            progress.file_done()
        except OSError as error:
            raise self._cache_error(name, error) from error
        finally:
            progress.close()
        return final, sha256

    def _get_parallel(
        self,
        unique: dict[str, Artifact],
        cancel: threading.Event,
        progress: _Progress,
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

    def _make_progress(self, total: int) -> _Progress:
        enabled = self.progress
        if enabled is None:
            try:
                enabled = sys.stderr is not None and sys.stderr.isatty()
            except (AttributeError, ValueError):
                enabled = False
        return _Progress(total, enabled and not ui.quiet())

    # -- one artifact --

    def _get(self, artifact: Artifact, cancel: threading.Event, progress: _Progress) -> Path:
        name = check_filename(artifact.filename)
        sha256 = _check_sha256(artifact)
        try:
            final = self._cache_path(sha256, name)
            entry_dir = final.parent
            ok, stat = _file_matches(final, sha256, artifact.size)
            if ok:
                progress.file_done()
                return final
            if stat is not None:
                _evict(final, stat)
            try:
                entry_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise FetchError(
                    f"{name}: cannot create cache directory {entry_dir}: {_describe(error)}; make "
                    "it writable, set WHEELHOUSE_CACHE_DIR to another directory, or disable the "
                    "cache"
                ) from None
            path = self._obtain(artifact, sha256, final, cancel, progress)
            progress.file_done()
            return path
        except OSError as error:
            raise self._cache_error(name, error) from error

    def _cache_path(self, sha256: str, name: str) -> Path:
        """Where the cache keeps the file ``name`` whose bytes have this sha256."""
        return self._root() / "sha256" / sha256[:2] / sha256 / name

    def _cache_error(self, name: str, error: OSError) -> FetchError:
        where = f" ({error.filename})" if error.filename else ""
        return FetchError(
            f"{name}: {_describe(error)}{where}; check that the cache directory "
            f"{self._cache_root or '(a private temp dir)'} is writable and has room, or choose "
            "another one (--cache-dir, or WHEELHOUSE_CACHE_DIR)"
        )

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
        final: Path,
        cancel: threading.Event,
        progress: _Progress,
    ) -> Path:
        """Put verified bytes at ``final`` (via a temp file in its directory)."""
        source = self._source(artifact)

        def fill(sink: _Sink) -> None:
            if isinstance(source, Path):
                self._copy_local(artifact, source, sink, cancel)
            else:
                self._transfer(
                    source,
                    sink,
                    what=artifact.filename,
                    accept=None,
                    limit=artifact.size,
                    cancel=cancel,
                )

        actual: tuple[str, int] = ("", 0)
        for _attempt in range(2):
            tmp, actual = self._fill_temp(final.parent, artifact.filename, fill, progress)
            try:
                if actual[0] == sha256 and artifact.size in (None, actual[1]):
                    os.replace(tmp, final)
                    fsync_dir(final.parent)
                    return final
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            if isinstance(source, Path):
                break
        raise HashMismatchError(_mismatch_message(artifact, source, sha256, actual))

    @staticmethod
    def _fill_temp(
        directory: Path, name: str, fill: Callable[[_Sink], None], progress: _Progress
    ) -> tuple[Path, tuple[str, int]]:
        """A new fsynced temp file in ``directory`` holding what ``fill`` writes: the file, and
        the sha256 and size of its bytes. The caller moves or deletes the file."""
        remove_stale_temps(directory, prefix=f".{name}", min_age=_STALE_CACHE_TEMP_AGE)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=temp_prefix(name))
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w+b") as file:
                sink = _Sink(file, progress)
                fill(sink)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o644)
        except (_WriteError, OSError) as error:
            tmp.unlink(missing_ok=True)
            # Also what the buffered file's flush or close raises (e.g. ENOSPC): the network's
            # OSErrors are handled (retried) inside _transfer.
            cause = error.error if isinstance(error, _WriteError) else error
            raise FetchError(
                f"{name}: cannot write to the cache ({tmp}): {_describe(cause)}; free some space "
                "or choose another cache directory (--cache-dir, or WHEELHOUSE_CACHE_DIR)"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, (sink.hasher.hexdigest(), sink.size)

    def _copy_local(
        self, artifact: Artifact, source: Path, sink: _Sink, cancel: threading.Event
    ) -> None:
        try:
            with open(source, "rb") as file:
                while chunk := file.read(CHUNK_SIZE):
                    sink.write(chunk)
                    if artifact.size is not None and sink.size > artifact.size:
                        return
                    if cancel.is_set():
                        raise _Cancelled
        except OSError as error:
            shown = artifact.path if artifact.path is not None else redact(artifact.url or "")
            base = self.base_dir if self.base_dir is not None else "the current directory"
            raise FetchError(
                f"{artifact.filename}: cannot read local file {source} (the lock's {shown!r}; "
                f"relative paths are taken from {base}): {_describe(error)}; run from the lock "
                "file's directory or fix the path"
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
        if error is not None and not isinstance(error, _Cancelled):
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
