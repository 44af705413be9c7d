"""HTTP(S) GETs with our own rules, over pooled keep-alive connections (urllib3).

One ``Transport`` keeps, per host, up to ``connections`` open connections (the number of download
workers), so a worker makes one TCP connection and one TLS handshake per host, not one per file.
urllib3 does the connection handling only: its retries and redirects are switched off, because
the rules about them are ours:

* Redirects are followed here (at most ``MAX_REDIRECTS``); ``Authorization`` is sent again only
  while the redirect stays on the same origin (scheme, host, port). Nothing is sent after a
  redirect to another origin, not even credentials configured for the new one: a redirect must
  not choose where secrets go.
* Transient failures (5xx, 408/425/429, resets, timeouts, a body cut short) are retried a bounded
  number of times with exponential backoff, honouring a capped ``Retry-After``; a cut body resumes
  with a ``Range`` request (guarded by ``If-Range``) when the server advertises ``Accept-Ranges:
  bytes``. Other 4xx fail at once with a message saying what to do.
* TLS always verifies, with ``ssl.create_default_context()`` (so ``SSL_CERT_FILE`` works, and
  ``NIX_SSL_CERT_FILE`` when ``SSL_CERT_FILE`` is not set). There is no way to turn it off.
* Proxies come from the environment as the standard library reads them (``http_proxy``,
  ``https_proxy``, ``no_proxy``; ``user:pass@`` in a proxy URL becomes ``Proxy-Authorization``).
* Bodies arrive as sent (``Accept-Encoding: identity``, nothing decoded): the bytes are what the
  lock's hash is about.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import re
import ssl
import string
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import LocationValueError, ProxySchemeUnknown

from wheelhouse import __version__
from wheelhouse.credentials import Credentials, CredentialStore, origin, redact, split_credentials
from wheelhouse.errors import FetchError, NotFoundError

__all__ = ["Cancelled", "Sink", "Transport", "ssl_context"]

USER_AGENT = f"wheelhouse/{__version__}"
CHUNK_SIZE = 256 * 1024
MAX_BACKOFF = 30.0
"""Upper bound of one exponential-backoff sleep, in seconds."""
RETRY_AFTER_CAP = 60.0
"""Default upper bound of a server's ``Retry-After``, in seconds."""
MAX_REDIRECTS = 10
"""As many redirects as the standard library follows."""
PAGE = "index page"
"""The ``what`` of an index page (as opposed to a file name), for messages."""

_NUM_POOLS = 100
"""Hosts whose connections are kept. Beyond that urllib3 closes the least recently used host's
pool, and a thread waiting there for a free connection would wait for good: far more hosts than
any set of indexes and file hosts uses."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_DRAIN_LIMIT = 64 * 1024
"""A redirect or error body up to this size is read to keep its connection; a larger one is
dropped with the connection."""
_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE)


class Cancelled(Exception):
    """The caller gave up on this transfer (another download of the same batch failed)."""


class Sink(Protocol):
    """Where a body goes; ``reset`` when the server starts over with the whole body."""

    size: int

    def write(self, data: bytes) -> None: ...

    def reset(self) -> None: ...


class _Buffer:
    """A ``Sink`` in memory, for index pages."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.data += data
        self.size += len(data)

    def reset(self) -> None:
        self.data.clear()
        self.size = 0


class _Transient(Exception):
    """A failure worth retrying that is not an exception of the HTTP stack (e.g. a short body)."""


class _Status(Exception):
    """A final answer that is not 2xx (after redirects), at ``url``."""

    def __init__(self, status: int, reason: str, url: str, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status
        self.url = url
        self.retry_after = retry_after


def ssl_context() -> ssl.SSLContext:
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


class Transport:
    """GETs into sinks, with retries, resumption, redirects and credentials; thread-safe.

    ``connections``: connections kept per host; a thread that finds them all busy waits for one.
    """

    def __init__(
        self,
        credentials: CredentialStore,
        *,
        retries: int,
        backoff: float,
        timeout: float,
        max_retry_after: float,
        connections: int,
    ) -> None:
        self.credentials = credentials
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._ssl = ssl_context()
        self._connections = connections
        self._direct = urllib3.PoolManager(
            num_pools=_NUM_POOLS, maxsize=connections, block=True, ssl_context=self._ssl
        )
        # As urllib.request's ProxyHandler: proxies read once, no_proxy at each request.
        self._proxies = urllib.request.getproxies()
        self._proxy_managers: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the kept connections (a later request opens new ones)."""
        with self._lock:
            managers = [self._direct, *self._proxy_managers.values()]
        for manager in managers:
            manager.clear()

    # -- public --

    def read(self, url: str, accept: str | None) -> tuple[bytes, str, str]:
        """GET a small document (an index page): ``(body, final URL, content type)``."""
        buffer = _Buffer()
        final_url, content_type = self.transfer(
            url, buffer, what=PAGE, accept=accept, limit=None, cancel=threading.Event()
        )
        return bytes(buffer.data), final_url, content_type

    def transfer(
        self,
        url: str,
        sink: Sink,
        *,
        what: str,
        accept: str | None,
        limit: int | None,
        cancel: threading.Event,
    ) -> tuple[str, str]:
        """GET ``url`` into ``sink`` with retries and resumption; return (final URL, type).

        ``what`` names the thing for messages (a file name or ``PAGE``); ``limit`` stops
        reading once more than that many bytes arrived (the caller's verification then fails).
        """
        bare, url_creds = split_credentials(url)
        shown = redact(url)
        scheme = urllib.parse.urlsplit(bare).scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(
                f"{what}: cannot fetch {shown}: only http, https and file URLs are supported; "
                "fix the URL in the lock or the index"
            )
        creds = url_creds or self.credentials.for_url(bare)
        resumable = False
        validator: str | None = None
        attempts = 0
        while True:
            if cancel.is_set():
                raise Cancelled
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
                response, final_url = self._open(bare, headers, creds, what=what, shown=shown)
                complete = False
                try:
                    content_type = response.headers.get("Content-Type", "")
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
                        expected_end = _int_header(response.headers.get("Content-Length"))
                    over_limit = _copy_body(response, sink, limit, cancel)
                    complete = not over_limit
                    if not over_limit and expected_end is not None and sink.size < expected_end:
                        raise _Transient(
                            f"connection closed after {sink.size} of {expected_end} bytes"
                        )
                finally:
                    _release(response, reusable=complete)
                return final_url, content_type
            except _Status as error:
                if error.status == 416 and resume_from:
                    resumable = False
                    reason = "HTTP 416 for a resumed download"
                elif not _retryable_status(error.status):
                    raise self._status_error(error, what=what, shown=shown, creds=creds) from None
                else:
                    reason = str(error)
                    if error.status in _RETRY_AFTER_STATUSES:
                        retry_after = _parse_retry_after(error.retry_after)
            except _Transient as error:
                reason = str(error)
            except (OSError, http.client.HTTPException, Urllib3Error) as error:
                cause = _cause(error)
                if isinstance(cause, ssl.SSLCertVerificationError):
                    host = urllib.parse.urlsplit(bare).hostname
                    raise FetchError(
                        f"{what}: TLS certificate verification failed for {host} ({shown}): "
                        f"{cause.verify_message or cause}; if the index uses a private CA, set "
                        "SSL_CERT_FILE to a CA bundle that contains it"
                    ) from None
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
                raise Cancelled

    # -- one request, redirects followed --

    def _open(
        self,
        url: str,
        headers: Mapping[str, str],
        creds: Credentials | None,
        *,
        what: str,
        shown: str,
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """The 2xx response for ``url`` (the caller releases it) and the URL that gave it."""
        auth = creds.header() if creds is not None else None
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            sent = {"User-Agent": USER_AGENT, **headers}
            if auth is not None:
                sent["Authorization"] = auth
            response = self._request(current, sent, what=what, shown=shown)
            location = response.headers.get("Location")
            if response.status in _REDIRECT_STATUSES and location:
                _release(response, reusable=_drainable(response))
                target = urllib.parse.urljoin(current, _quote_location(location))
                if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise FetchError(
                        f"{what}: {shown} redirected to {redact(target)}, which is not an http "
                        "or https URL; fix the URL in the lock or the index"
                    )
                if auth is not None and origin(target) != origin(current):
                    auth = None  # and never again on this chain: see the module docstring
                current = target
                continue
            if not 200 <= response.status < 300:
                status = _Status(
                    response.status,
                    response.reason or "",
                    current,
                    response.headers.get("Retry-After"),
                )
                _release(response, reusable=_drainable(response))
                raise status
            return response, current
        raise FetchError(
            f"{what}: {shown} redirected more than {MAX_REDIRECTS} times (the last time to "
            f"{redact(current)}); fix the URL in the lock or the index"
        )

    def _request(
        self, url: str, headers: Mapping[str, str], *, what: str, shown: str
    ) -> urllib3.BaseHTTPResponse:
        manager = self._manager(url, what=what, shown=shown)
        try:
            return manager.urlopen(
                "GET",
                url,
                headers=headers,
                redirect=False,
                retries=False,
                timeout=self._timeout,
                preload_content=False,
                decode_content=False,
                enforce_content_length=False,  # a short body is resumed (see transfer)
            )
        except LocationValueError as error:
            raise FetchError(f"{what}: cannot fetch {shown}: {error}") from None

    def _manager(self, url: str, *, what: str, shown: str) -> urllib3.PoolManager:
        """The direct pools, or those through the proxy the environment gives for ``url``."""
        parts = urllib.parse.urlsplit(url)
        proxy = self._proxies.get(parts.scheme.lower())
        host = parts.netloc.rpartition("@")[2]
        if not proxy or urllib.request.proxy_bypass(host):
            return self._direct
        with self._lock:
            manager = self._proxy_managers.get(proxy)
            if manager is None:
                manager = self._proxy_managers[proxy] = self._proxy_manager(proxy, what, shown)
            return manager

    def _proxy_manager(self, proxy: str, what: str, shown: str) -> urllib3.ProxyManager:
        if "://" not in proxy:
            proxy = f"http://{proxy}"
        bare, creds = split_credentials(proxy)
        headers = {"Proxy-Authorization": creds.header()} if creds is not None else {}
        try:
            return urllib3.ProxyManager(
                bare,
                num_pools=_NUM_POOLS,
                proxy_headers=headers,
                proxy_ssl_context=self._ssl,
                maxsize=self._connections,
                block=True,
                ssl_context=self._ssl,
            )
        except (ProxySchemeUnknown, LocationValueError):
            raise FetchError(
                f"{what}: cannot fetch {shown} through the proxy {redact(proxy)}: only http and "
                "https proxies are supported; fix the *_proxy variable, or list the host in "
                "no_proxy"
            ) from None

    def _status_error(
        self, error: _Status, *, what: str, shown: str, creds: Credentials | None
    ) -> FetchError:
        status = str(error)
        head = f"{what}: {shown} answered {status}"
        page = what == PAGE
        if origin(error.url) != origin(shown):  # a redirect to another origin failed
            head = f"{what}: {shown} redirected to {redact(error.url)}, which answered {status}"
            if error.status in (401, 403):
                host = urllib.parse.urlsplit(error.url).hostname or "?"
                return FetchError(
                    f"{head}; credentials are never sent across a redirect to another host "
                    f"({host}): use an index URL on the host that serves the files, or make "
                    "them readable there without credentials"
                )
        if error.status in (401, 403):
            return FetchError(f"{head}; {self.credentials.hint(shown, creds)}")
        if error.status in (404, 410):
            advice = (
                "check the index URL and the project name"
                if page
                else "the file is not (or no longer) at that URL: check the URL or index, or "
                "re-lock"
            )
            return NotFoundError(f"{head}; {advice}")
        return FetchError(f"{head}; this is not retried: check the URL and the index")


# --- helpers -----------------------------------------------------------------------------------


def _copy_body(
    response: urllib3.BaseHTTPResponse, sink: Sink, limit: int | None, cancel: threading.Event
) -> bool:
    """Copy the body into ``sink``; True if it stopped because ``limit`` was exceeded."""
    while True:
        chunk = response.read(CHUNK_SIZE, decode_content=False)
        if not chunk:
            return False
        sink.write(chunk)
        if limit is not None and sink.size > limit:
            return True
        if cancel.is_set():
            raise Cancelled


def _drainable(response: urllib3.BaseHTTPResponse) -> bool:
    """Read a small unwanted body (a redirect's, an error's), so its connection can be reused."""
    remaining = response.length_remaining if isinstance(response, urllib3.HTTPResponse) else None
    if remaining is None or remaining > _DRAIN_LIMIT:
        return False
    try:
        response.drain_conn()
    except Exception:  # a broken connection is simply not reused
        return False
    return True


def _release(response: urllib3.BaseHTTPResponse, *, reusable: bool) -> None:
    """Give the connection back to its pool; closed first unless the body was read to its end
    (a connection with unread bytes on it must not carry the next request)."""
    if not reusable:
        response.close()
    response.release_conn()


def _quote_location(location: str) -> str:
    """Quote what servers leave raw in ``Location`` (spaces...), as urllib does."""
    return urllib.parse.quote(location, encoding="iso-8859-1", safe=string.punctuation)


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


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total)`` of a ``Content-Range: bytes first-last/total`` header."""
    if value is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(value)
    if match is None:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _validator(headers: Mapping[str, str]) -> str | None:
    """A value for ``If-Range``: a strong ETag, else ``Last-Modified``."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _cause(error: BaseException) -> BaseException:
    """The standard library's exception inside urllib3's wrappers (a reset, a timeout...)."""
    seen = 0
    while isinstance(error, Urllib3Error) and seen < 8:
        seen += 1
        inner = error.__cause__ or next(
            (a for a in error.args if isinstance(a, BaseException)), None
        )
        if inner is None:
            break
        error = inner
    return error


def _describe(error: BaseException) -> str:
    cause = _cause(error)
    if isinstance(cause, TimeoutError | urllib3.exceptions.TimeoutError) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    ):
        return "timed out"
    if isinstance(cause, http.client.IncompleteRead):
        return f"connection closed in the middle of a chunk ({len(cause.partial)} bytes read)"
    if isinstance(cause, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__
