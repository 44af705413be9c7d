"""A loopback package index for tests: PEP 503 HTML + PEP 691 JSON, file downloads, faults.

``IndexServer(root)`` serves the files in the flat directory ``root`` (read on every request, so a
test may add files while it runs) on ``127.0.0.1`` with an ephemeral port:

* ``/simple/`` - the project list; ``/simple/<normalized-name>/`` - a project page with
  ``#sha256=`` fragments and ``data-requires-python``; JSON (PEP 691, api-version 1.1) when the
  request's ``Accept`` asks for ``application/vnd.pypi.simple.v1+json``. Non-normalized names and
  missing trailing slashes are redirected (301) as PEP 503 asks.
* ``/files/<filename>`` - the bytes, with ``Content-Length``, ``ETag``, ``Accept-Ranges: bytes`` and
  single ``Range: bytes=a-[b]`` / ``If-Range`` support (switch off with ``ranges=False``).

Every request is recorded (``requests``: method, path, headers) and faults can be injected per
path (exact path or ``fnmatch`` pattern) at run time: ``fail`` (a status for the next K requests,
optionally with ``Retry-After``), ``drop_after`` (cut the body after N bytes), ``corrupt`` (serve
other bytes), ``delay``, ``throttle`` (a slow body), ``redirect`` and ``require_auth`` (HTTP
Basic, 401 otherwise). Accepted connections are counted (``connections``; with TLS, those whose
handshake succeeded), to see that clients keep them alive.

Nothing here depends on pytest; ``server_factory`` makes fixtures a few lines long.
Distributions to serve come from ``wheelmaker``/``sdistmaker``; ``artifact()`` gives the lock's
``Artifact`` for a served file.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import html
import json
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from wheelhouse.model import Artifact

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_filename(filename: str) -> tuple[str, str] | None:
    """``(normalized project, version)`` of a wheel or sdist file name, None for other files."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        if len(parts) < 5:
            return None
        return normalize(parts[0]), parts[1]
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            name, sep, version = filename[: -len(suffix)].rpartition("-")
            return (normalize(name), version) if sep and name else None
    return None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    """The request target as sent (path and query, %-escapes kept)."""
    headers: Message
    """Case-insensitive: ``r.headers.get("Authorization")``."""
    client_port: int


@dataclass
class _Fault:
    kind: str
    pattern: str
    remaining: int | None
    """Requests left to affect; None: every request."""
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        return self.remaining != 0 and (
            path == self.pattern or fnmatch.fnmatchcase(path, self.pattern)
        )


class IndexServer:
    """A threaded PEP 503/691 index over a flat directory, on ``127.0.0.1``; a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        requires_python: Mapping[str, str] | None = None,
        yanked: Mapping[str, str] | None = None,
        json_api: bool = True,
        ranges: bool = True,
        files_base: str | None = None,
        tls: tuple[Path, Path] | None = None,
        hashes: bool = True,
        upload_time: str | None = None,
        core_metadata: bool = False,
    ) -> None:
        """``requires_python``/``yanked``: per file name; ``json_api=False``: HTML only;
        ``ranges=False``: no ``Range`` support; ``files_base``: absolute base URL for file links
        (another server); ``tls``: ``(certfile, keyfile)`` to serve HTTPS; ``hashes=False``:
        file links without hashes (plain HTML indexes, find-links pages); ``upload_time``: an
        ISO 8601 time every file carries as PEP 700 ``upload-time`` in JSON (uv copies it into
        its locks as a TOML datetime); ``core_metadata``: each wheel's METADATA offered next to
        it (PEP 658/714: ``core-metadata`` with its hash, ``/files/<wheel>.metadata``), as the
        public index does."""
        self.root = Path(root)
        self.requires_python: dict[str, str] = dict(requires_python or {})
        self.yanked: dict[str, str] = dict(yanked or {})
        self.json_api = json_api
        self.ranges = ranges
        self.files_base = files_base
        self.tls = tls
        self.hashes = hashes
        self.upload_time = upload_time
        self.core_metadata = core_metadata
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        """TCP connections accepted so far (with TLS: handshakes completed)."""
        self._faults: list[_Fault] = []
        self._auth: list[tuple[str, str]] = []  # (pattern, expected header)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> IndexServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.index = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the IndexServer is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with ``tls``), no trailing slash."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple"

    def file_path(self, filename: str) -> str:
        return "/files/" + urllib.parse.quote(filename)

    def file_url(self, filename: str) -> str:
        return self.url + self.file_path(filename)

    # -- content --

    def artifact(self, file: Path, **changes: Any) -> Artifact:
        """The lock's ``Artifact`` for ``file`` as served here (by URL); ``changes`` override."""
        from wheelmaker import artifact_for

        return artifact_for(file, **{"url": self.file_url(file.name), "path": None, **changes})

    def add_file(self, filename: str, data: bytes) -> Path:
        path = self.root / filename
        path.write_bytes(data)
        return path

    def _files(self) -> dict[str, list[str]]:
        projects: dict[str, list[str]] = {}
        for path in sorted(self.root.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                ident = split_filename(path.name)
                if ident is not None:
                    projects.setdefault(ident[0], []).append(path.name)
        return projects

    # -- faults and auth --

    def _add(self, kind: str, path: str, times: int | None, **params: Any) -> None:
        with self._lock:
            self._faults.append(_Fault(kind, path, times, params))

    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int | None = 1,
        retry_after: str | int | None = None,
    ) -> None:
        """Answer ``status`` to the next ``times`` requests for ``path`` (None: all of them)."""
        self._add("fail", path, times, status=status, retry_after=retry_after)

    def drop_after(
        self, path: str, nbytes: int, *, times: int | None = 1, reset: bool = False
    ) -> None:
        """Send the headers and ``nbytes`` of the body, then close (``reset``: with a TCP RST)."""
        self._add("drop", path, times, nbytes=nbytes, reset=reset)

    def corrupt(self, path: str, data: bytes | None = None, *, times: int | None = None) -> None:
        """Serve ``data`` (default: the real bytes with the last one flipped) as the body."""
        self._add("corrupt", path, times, data=data)

    def delay(self, path: str, seconds: float, *, times: int | None = None) -> None:
        """Wait ``seconds`` before answering."""
        self._add("delay", path, times, seconds=seconds)

    def throttle(self, path: str, chunk: int, interval: float, *, times: int | None = None) -> None:
        """Send the body ``chunk`` bytes at a time, ``interval`` seconds apart (a slow link)."""
        self._add("throttle", path, times, chunk=chunk, interval=interval)

    def redirect(
        self, path: str, location: str, *, status: int = 302, times: int | None = None
    ) -> None:
        """Answer a redirect to ``location`` (absolute URL or path)."""
        self._add("redirect", path, times, location=location, status=status)

    def require_auth(self, user: str, password: str, *, path: str = "*") -> None:
        """Answer 401 to requests for ``path`` without these Basic credentials."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        with self._lock:
            self._auth.append((path, f"Basic {token}"))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._auth.clear()

    def _take(self, kind: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    # -- recording --

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path (without query) is ``path`` or matches the pattern."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (p := urllib.parse.urlsplit(r.path).path) == path or fnmatch.fnmatchcase(p, path)
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- request handling --

    def _handle(self, handler: _Handler) -> None:
        target = handler.path
        path = urllib.parse.urlsplit(target).path
        with self._lock:
            self.requests.append(
                RecordedRequest(handler.command, target, handler.headers, handler.client_address[1])
            )
        fault = self._take("delay", path)
        if fault is not None:
            time.sleep(fault.params["seconds"])
        with self._lock:
            expected = [h for pattern, h in self._auth if fnmatch.fnmatchcase(path, pattern)]
        if expected and handler.headers.get("Authorization") not in expected:
            handler.send_simple(
                401, b"authentication required\n", {"WWW-Authenticate": 'Basic realm="test"'}
            )
            return
        fault = self._take("fail", path)
        if fault is not None:
            extra = {}
            if fault.params["retry_after"] is not None:
                extra["Retry-After"] = str(fault.params["retry_after"])
            handler.send_simple(fault.params["status"], b"injected failure\n", extra)
            return
        fault = self._take("redirect", path)
        if fault is not None:
            handler.send_simple(fault.params["status"], b"", {"Location": fault.params["location"]})
            return
        if path == "/simple":
            handler.send_simple(301, b"", {"Location": "/simple/"})
        elif path == "/simple/":
            self._serve_root(handler)
        elif path.startswith("/simple/"):
            self._serve_project(handler, path[len("/simple/") :])
        elif path.startswith("/files/") and "/" not in path[len("/files/") :]:
            self._serve_file(handler, urllib.parse.unquote(path[len("/files/") :]), path)
        else:
            handler.send_simple(404, b"not found\n")

    def _wants_json(self, handler: _Handler) -> bool:
        if not self.json_api:
            return False
        for item in handler.headers.get("Accept", "").split(","):
            media, *params = (p.strip() for p in item.split(";"))
            if media == JSON_TYPE:
                return not any(p.replace(" ", "") in ("q=0", "q=0.0") for p in params)
        return False

    def _html_type(self, handler: _Handler) -> str:
        return HTML_TYPE if HTML_TYPE in handler.headers.get("Accept", "") else "text/html"

    def _serve_root(self, handler: _Handler) -> None:
        names = sorted(self._files())
        if self._wants_json(handler):
            doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            handler.send_simple(200, json.dumps(doc).encode(), {"Content-Type": JSON_TYPE})
            return
        links = "".join(f'<a href="/simple/{n}/">{html.escape(n)}</a><br/>\n' for n in names)
        body = (
            '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
            f"<title>Simple index</title></head><body>\n{links}</body></html>\n"
        )
        handler.send_simple(200, body.encode(), {"Content-Type": self._html_type(handler)})

    def _serve_project(self, handler: _Handler, rest: str) -> None:
        name, slash, tail = rest.partition("/")
        if tail:
            handler.send_simple(404, b"not found\n")
            return
        if not slash or name != normalize(name):
            handler.send_simple(301, b"", {"Location": f"/simple/{normalize(name)}/"})
            return
        files = self._files().get(name)
        if not files:
            handler.send_simple(404, b"no such project\n")
            return
        entries = []
        for filename in files:
            data = (self.root / filename).read_bytes()
            href = (self.files_base or "") + self.file_path(filename)
            entries.append((filename, href, hashlib.sha256(data).hexdigest(), len(data)))
        if self._wants_json(handler):
            json_files = []
            for filename, href, sha256, size in entries:
                item: dict[str, Any] = {
                    "filename": filename,
                    "url": href,
                    "hashes": {"sha256": sha256} if self.hashes else {},
                    "size": size,
                }
                if filename in self.requires_python:
                    item["requires-python"] = self.requires_python[filename]
                if filename in self.yanked:
                    item["yanked"] = self.yanked[filename] or True
                if self.upload_time is not None:
                    item["upload-time"] = self.upload_time
                if self.core_metadata and filename.endswith(".whl"):
                    meta = hashlib.sha256(self._metadata(filename)).hexdigest()
                    item["core-metadata"] = {"sha256": meta}
                json_files.append(item)
            versions = sorted({v for f in files if (v := (split_filename(f) or ("", ""))[1])})
            doc = {
                "meta": {"api-version": "1.1"},
                "name": name,
                "versions": versions,
                "files": json_files,
            }
            handler.send_simple(200, json.dumps(doc).encode(), {"Content-Type": JSON_TYPE})
            return
        links = []
        for filename, href, sha256, _size in entries:
            fragment = f"#sha256={sha256}" if self.hashes else ""
            attrs = f'href="{html.escape(href + fragment)}"'
            if filename in self.requires_python:
                attrs += f' data-requires-python="{html.escape(self.requires_python[filename])}"'
            if filename in self.yanked:
                attrs += f' data-yanked="{html.escape(self.yanked[filename])}"'
            if self.core_metadata and filename.endswith(".whl"):
                meta = hashlib.sha256(self._metadata(filename)).hexdigest()
                attrs += f' data-core-metadata="sha256={meta}"'
            links.append(f"<a {attrs}>{html.escape(filename)}</a><br/>\n")
        body = (
            '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
            f"<title>Links for {html.escape(name)}</title></head>\n<body><h1>Links for "
            f"{html.escape(name)}</h1>\n{''.join(links)}</body></html>\n"
        )
        handler.send_simple(200, body.encode(), {"Content-Type": self._html_type(handler)})

    def _metadata(self, wheel: str) -> bytes:
        with zipfile.ZipFile(self.root / wheel) as archive:
            (name,) = [
                n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
            ]
            return archive.read(name)

    def _serve_file(self, handler: _Handler, filename: str, path: str) -> None:
        wheel = filename.removesuffix(".metadata")
        if self.core_metadata and wheel != filename and (self.root / wheel).is_file():
            handler.send_simple(200, self._metadata(wheel), {"Content-Type": "text/plain"})
            return
        file = self.root / filename
        if filename.startswith(".") or not file.is_file():
            handler.send_simple(404, b"no such file\n")
            return
        data = file.read_bytes()
        fault = self._take("corrupt", path)
        if fault is not None:
            replacement = fault.params["data"]
            data = replacement if replacement is not None else data[:-1] + bytes([data[-1] ^ 1])
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        status, start, end = 200, 0, len(data)
        headers = {"Content-Type": "application/octet-stream", "ETag": etag}
        if self.ranges:
            headers["Accept-Ranges"] = "bytes"
            wanted = _parse_range(handler.headers.get("Range"))
            if_range = handler.headers.get("If-Range")
            if wanted is not None and (if_range is None or if_range == etag):
                first, last = wanted
                if first >= len(data):
                    headers["Content-Range"] = f"bytes */{len(data)}"
                    handler.send_simple(416, b"", headers)
                    return
                end = len(data) if last is None else min(last + 1, len(data))
                status, start = 206, first
                headers["Content-Range"] = f"bytes {first}-{end - 1}/{len(data)}"
        body = data[start:end]
        if handler.command == "HEAD":
            handler.send_head(status, len(body), headers)
            return
        fault = self._take("drop", path)
        if fault is not None:
            handler.send_head(status, len(body), headers)
            handler.wfile.write(body[: fault.params["nbytes"]])
            handler.wfile.flush()
            handler.abort(reset=fault.params["reset"])
            return
        handler.send_head(status, len(body), headers)
        fault = self._take("throttle", path)
        if fault is not None:
            step = max(1, fault.params["chunk"])
            for offset in range(0, len(body), step):
                handler.wfile.write(body[offset : offset + step])
                handler.wfile.flush()
                time.sleep(fault.params["interval"])
            return
        handler.wfile.write(body)


def _parse_range(value: str | None) -> tuple[int, int | None] | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", value)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    index: IndexServer

    def get_request(self) -> tuple[Any, Any]:
        request = super().get_request()
        with self.index._lock:
            self.index.connections += 1
        return request

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (on purpose, in fault tests) are not errors worth printing."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.index._handle(self)

    do_HEAD = do_GET

    def send_head(self, status: int, length: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def send_simple(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        merged = {"Content-Type": "text/plain"}
        merged.update(headers or {})
        self.send_head(status, len(body), merged)
        if self.command != "HEAD":
            self.wfile.write(body)

    def abort(self, *, reset: bool) -> None:
        """Hang up now: the client sees a short body (FIN) or a connection reset (RST)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if reset:
                time.sleep(0.05)  # let the client read what was sent before the RST hits
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()


# --- distributions -----------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- fixture helper ----------------------------------------------------------------------------


@contextlib.contextmanager
def server_factory(make_root: Callable[[], Path]) -> Iterator[Callable[..., IndexServer]]:
    """Start any number of servers (``factory(root=None, **options)``); all stop at the end.

    Without ``root`` a server serves a fresh directory from ``make_root()``. For pytest::

        @pytest.fixture
        def index_server_factory(tmp_path_factory):
            with server_factory(lambda: tmp_path_factory.mktemp("index")) as factory:
                yield factory
    """
    started: list[IndexServer] = []

    def factory(root: Path | None = None, **options: Any) -> IndexServer:
        server = IndexServer(make_root() if root is None else root, **options).start()
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            server.stop()
