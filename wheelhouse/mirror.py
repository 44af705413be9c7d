"""A loopback index in front of the real ones, so pip's resolution does not wait on the network.

pip resolves one package at a time and asks the network one question at a time: the project's
page, then the metadata of the file it would install, then the next project. On a 242-package
stack that is about 500 round trips in a row, most of the time a lock takes. pip is pointed at
this mirror instead, which answers from memory and reads ahead while pip works:

* every metadata file it hands to pip names the dependencies pip will ask about next; their pages
  and the metadata of the version pip will most likely take (the newest allowed, the previous
  lock's pin when there is one) are fetched in parallel before pip asks for them;
* the file the lock will take for each version pip looks at starts downloading at once, so the
  downloads the lock needs (for hashes and the wheelhouse's NAR hash) overlap the resolution.

A wrong guess costs a request, never a different result: pip still makes every choice from the
same pages and metadata it would get from the index. pip gets no credentials at all (it talks
only to the loopback address); upstream requests go through ``Downloader`` (credentials, TLS,
retries, same-origin redirects). An upstream failure on a request pip made is remembered and
raised after pip returns (``failure``), so an index that failed is never silently skipped.
"""

from __future__ import annotations

import contextlib
import email.parser
import hashlib
import json
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wheelhouse import index
from wheelhouse.download import Downloader
from wheelhouse.errors import FetchError, NotFoundError, WheelhouseError
from wheelhouse.index import PageCache
from wheelhouse.memo import Memo
from wheelhouse.model import Artifact
from wheelhouse.selection import Candidate, candidate_identity, python_ok
from wheelhouse.targets import Target

Choose = Callable[[str, str, Sequence[Candidate], Target], Candidate]
"""The lock's own file choice for ``name==version`` on a target (``selection.select``)."""

READ_AHEAD_JOBS = 16
"""Pages and metadata files fetched at once ahead of pip: small requests, latency-bound."""


class IndexMirror:
    """The loopback index pip resolves against; see the module docstring.

    ``indexes``: the real index URLs, in pip's order (``index_urls`` are their loopback
    stand-ins). ``choose``: the lock's file choice, for downloading during the resolution (no
    downloads without it).
    """

    def __init__(
        self,
        downloader: Downloader,
        indexes: Sequence[str],
        pages: PageCache,
        choose: Choose | None = None,
    ) -> None:
        self._downloader = downloader
        self._indexes = list(indexes)
        self.pages = pages
        self._choose = choose
        self._pins: dict[NormalizedName, str] = {}
        self._target: Target | None = None
        self._lock = threading.Lock()
        self._files: list[tuple[NormalizedName, Candidate]] = []
        self._ids: dict[str, int] = {}
        self._metadata: Memo[str, bytes] = Memo()
        self._rendered: Memo[
            tuple[int, NormalizedName, frozenset[str], str | None], bytes | None
        ] = Memo()
        self._unhashed: Memo[str, tuple[Path, str]] = Memo()
        self._ahead: set[NormalizedName] = set()
        self._considered: set[tuple[NormalizedName, str]] = set()
        self._downloads: Memo[tuple[str, str], Path] = Memo()
        """(file name, sha256) -> the file, downloaded during the resolution."""
        self._failure: WheelhouseError | None = None
        self.requests = 0
        self.serving = 0.0
        """pip's requests and the time spent answering them (waiting upstream, mostly)."""
        self._closed = False
        self._ahead_pool = ThreadPoolExecutor(READ_AHEAD_JOBS, thread_name_prefix="wh-ahead")
        self._download_pool = ThreadPoolExecutor(downloader.jobs, thread_name_prefix="wh-early")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def index_urls(self) -> list[str]:
        """What pip gets instead of ``indexes``: loopback URLs, no credentials."""
        return [f"{self.base_url}/i/{n}/" for n in range(len(self._indexes))]

    def close(self) -> None:
        """Stop serving and reading ahead; downloads already started are waited for."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._ahead_pool.shutdown(wait=True, cancel_futures=True)
        self._download_pool.shutdown(wait=True)

    def __enter__(self) -> IndexMirror:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def resolving(self, target: Target, pins: Mapping[str, str] | None = None) -> Iterator[None]:
        """Serve one pip run for ``target`` (the read-ahead guesses for it); a failure pip saw
        is cleared first so each run reports its own.

        ``pins``: name -> version constraints pip runs with (a re-lock keeping the previous
        lock's versions). Pages of those packages list only that version's files: pip would
        drop the others anyway, after parsing hundreds of them for a long-lived package.
        """
        with self._lock:
            self._target = target
            self._pins = {canonicalize_name(k): v for k, v in (pins or {}).items()}
            self._failure = None
            self._ahead.clear()
            self._considered.clear()
        try:
            yield
        finally:
            with self._lock:
                self._target = None

    # -- what the lock asks after pip is done --

    def failure(self) -> WheelhouseError | None:
        """The first upstream failure on a request pip made during this run."""
        return self._failure

    def original(self, url: str) -> str | None:
        """The real URL of a file pip reported by its loopback URL; None for other URLs."""
        if not url.startswith(self.base_url + "/f/"):
            return None
        found = self._file(urlsplit(url).path)
        return found[1].url if found else None

    def downloaded(self, artifact: Artifact) -> Path | None:
        """The local file of ``artifact`` if its download started during the resolution (waiting
        for it to end); None when there was none or it failed (the lock then downloads it
        itself, and reports what goes wrong)."""
        try:
            return self._downloads.wait((artifact.filename, artifact.sha256))
        except WheelhouseError:
            return None

    @property
    def early_downloads(self) -> int:
        return len(self._downloads)

    # -- serving pip --

    def _file(self, path: str) -> tuple[NormalizedName, Candidate] | None:
        parts = path.split("/")  # "", "f", id, filename[.metadata]
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        number = int(parts[2])
        with self._lock:
            return self._files[number] if number < len(self._files) else None

    def _remember(self, name: NormalizedName, cand: Candidate) -> int:
        assert cand.url is not None
        with self._lock:
            number = self._ids.get(cand.url)
            if number is None:
                number = self._ids[cand.url] = len(self._files)
                self._files.append((name, cand))
            return number

    def _count(self, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.serving += seconds

    def _fail(self, error: WheelhouseError) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = error

    def page(self, number: int, project: str) -> bytes | None:
        """Index ``number``'s page for ``project`` as PEP 691 JSON with loopback file URLs;
        None when the index has no such project. Made once (the read-ahead usually has)."""
        name = canonicalize_name(project)
        target = self._target
        platforms = frozenset(t.platform for t in target.tags) if target else frozenset()
        pin = self._pins.get(name)
        return self._rendered.get(
            (number, name, platforms, pin), lambda: self._render(number, name, platforms, pin)
        )

    def _render(
        self, number: int, name: NormalizedName, platforms: frozenset[str], pin: str | None
    ) -> bytes | None:
        url = self._indexes[number].rstrip("/") + f"/{name}/"
        try:
            cands = self.pages.candidates(url)
        except NotFoundError:
            return None
        pinned = _version(pin) if pin else None
        files = []
        for cand in cands:
            if cand.url is None or (platforms and not _may_fit(cand.filename, platforms)):
                continue
            if (
                pinned is not None
                and (candidate_identity(cand.filename) or ("", None))[1] != pinned
            ):
                continue
            entry: dict[str, object] = {
                "filename": cand.filename,
                "url": f"/f/{self._remember(name, cand)}/{quote(cand.filename)}",
                "hashes": {"sha256": cand.sha256} if cand.sha256 else {},
                "yanked": cand.yanked,
            }
            if cand.requires_python:
                entry["requires-python"] = cand.requires_python
            if cand.metadata:
                entry["core-metadata"] = {"sha256": cand.metadata}
            elif cand.metadata is not None or (cand.is_wheel and cand.sha256):
                # Without metadata from the index the mirror reads it from the verified wheel:
                # pip reads it the same way, after downloading the whole file to its own disk.
                entry["core-metadata"] = True
            files.append(entry)
        return json.dumps({"meta": {"api-version": "1.0"}, "name": name, "files": files}).encode()

    def metadata(self, name: NormalizedName, cand: Candidate) -> bytes:
        """The file's PEP 658 metadata, fetched once and checked against the page's hash (or
        read from the verified wheel when the index offers none)."""
        assert cand.url is not None
        url = cand.url
        return self._metadata.get(url, lambda: self._fetch_metadata(url, name, cand))

    def _fetch_metadata(self, url: str, name: NormalizedName, cand: Candidate) -> bytes:
        if cand.metadata is None:  # offered by the mirror itself (``_render``)
            return wheel_metadata(self._downloaded(name, cand))
        body = self._downloader.read(url + ".metadata")[0]
        if cand.metadata and hashlib.sha256(body).hexdigest() != cand.metadata:
            raise FetchError(
                f"{cand.filename}.metadata: its sha256 is not the one the index page "
                f"gives ({cand.metadata}); the index serves inconsistent data"
            )
        return body

    def whole_file(self, name: NormalizedName, cand: Candidate) -> Path:
        """A file pip downloads itself (no PEP 658 metadata, or an sdist to prepare)."""
        assert cand.url is not None
        if cand.sha256:
            return self._downloaded(name, cand)
        url = cand.url
        return self._unhashed.get(url, lambda: self._downloader.get_unhashed(url, cand.filename))[0]

    def sha256_of(self, url: str) -> str | None:
        """The sha256 of a file the index lists without one, if pip downloaded it already."""
        done = self._unhashed.done(url)
        return done[1] if done else None

    def looked_at(self, name: NormalizedName, cand: Candidate, metadata: bytes | None) -> None:
        """pip took ``cand``'s metadata (or the whole file): download the lock's file for that
        version, and read ahead from the metadata."""
        ident = candidate_identity(cand.filename)
        if ident is not None:
            self._submit(self._consider, name, str(ident[1]))
        if metadata is not None:
            self._submit(self._read_ahead, metadata)

    # -- reading ahead --

    def _submit(self, fn: Callable[..., object], *args: object) -> None:
        if self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the pool shut down meanwhile
            self._ahead_pool.submit(_quietly, fn, *args)

    def _listing(self, name: NormalizedName) -> list[Candidate]:
        """Every index's files for ``name``; their pages for pip are made meanwhile, so that
        pip's request finds them ready."""
        for number in range(len(self._indexes)):
            with contextlib.suppress(WheelhouseError):
                self.page(number, name)
        return index.list_files(name, self.pages, self._indexes)

    def _download(self, name: NormalizedName, cand: Candidate) -> None:
        """Queue ``cand``'s download for the download workers, once."""
        key, art = self._artifact(name, cand)
        self._downloads.start(key, lambda: self._downloader.get(art), self._download_pool.submit)

    def _downloaded(self, name: NormalizedName, cand: Candidate) -> Path:
        """``cand``'s local file, for pip or the read-ahead waiting for it: downloaded in this
        thread unless its download is already under way or queued."""
        key, art = self._artifact(name, cand)
        return self._downloads.get(key, lambda: self._downloader.get(art))

    @staticmethod
    def _artifact(name: NormalizedName, cand: Candidate) -> tuple[tuple[str, str], Artifact]:
        assert cand.url is not None and cand.sha256 is not None
        ident = candidate_identity(cand.filename)
        art = Artifact(
            filename=cand.filename,
            package=name,
            version=str(ident[1]) if ident else "",
            sha256=cand.sha256,
            kind="wheel" if cand.is_wheel else "sdist",
            url=cand.url,
            size=cand.size,
        )
        return (cand.filename, cand.sha256), art

    def _consider(self, name: NormalizedName, version: str) -> None:
        target = self._target
        if target is None or self._choose is None or (name, version) in self._considered:
            return
        self._considered.add((name, version))
        cand = self._choose(name, version, self._listing(name), target)
        if cand.url is not None and cand.sha256 is not None:
            self._download(name, cand)

    def _read_ahead(self, metadata: bytes) -> None:
        target = self._target
        if target is None:
            return
        message = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
        env = {**target.environment(), "extra": ""}
        for text in message.get_all("Requires-Dist") or []:
            try:
                req = Requirement(str(text))
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidRequirement, UndefinedComparison, UndefinedEnvironmentName):
                continue
            name = canonicalize_name(req.name)
            with self._lock:
                if name in self._ahead:
                    continue
                self._ahead.add(name)
            self._submit(self._fetch_ahead, name, req.specifier, target)

    def _fetch_ahead(self, name: NormalizedName, spec: SpecifierSet, target: Target) -> None:
        cand = guess(self._listing(name), name, spec, target, self._pins.get(name))
        if cand is None or cand.url is None:
            return
        if cand.metadata is not None or (cand.is_wheel and cand.sha256 is not None):
            self._read_ahead(self.metadata(name, cand))
        elif cand.sha256 is not None:
            self._download(name, cand)  # an sdist: pip prepares its metadata from the file


def wheel_metadata(wheel: Path) -> bytes:
    """The ``METADATA`` of a wheel (its ``.dist-info`` directory named as the spec says)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            top, _, rest = member.partition("/")
            if rest == "METADATA" and top.endswith(".dist-info"):
                return archive.read(member)
    raise FetchError(f"{wheel.name}: no .dist-info/METADATA in the wheel")


def guess(
    cands: Sequence[Candidate],
    name: NormalizedName,
    spec: SpecifierSet,
    target: Target,
    pinned: str | None = None,
) -> Candidate | None:
    """The file pip most likely takes for a requirement: the pinned version if allowed, else the
    newest allowed one; of its files, the wheel whose best tag ranks first for the target (pip's
    order), else the sdist when pip may build for the target."""
    rank = {tag: i for i, tag in enumerate(target.tags)}
    usable: dict[Version, list[tuple[int, Candidate]]] = {}
    for cand in cands:
        ident = candidate_identity(cand.filename)
        if ident is None or ident[0] != name or cand.yanked or not python_ok(cand, target):
            continue
        if cand.is_wheel:
            ranks = [rank[t] for t in parse_wheel_filename(cand.filename)[3] if t in rank]
            if not ranks:
                continue
            usable.setdefault(ident[1], []).append((min(ranks), cand))
        elif target.is_running or target.interpreter is not None:
            usable.setdefault(ident[1], []).append((len(rank), cand))
    allowed = list(spec.filter(usable))
    if not allowed:
        return None
    pin = _version(pinned) if pinned is not None else None
    best = pin if pin in allowed else max(allowed)
    return min(usable[best], key=lambda pair: (pair[0], pair[1].filename))[1]


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _may_fit(filename: str, platforms: Collection[str]) -> bool:
    """Whether a file could install on a target with these platform tags: sdists always, wheels
    built for a platform of the target or for any. pip would drop the others after parsing
    them; the mirror leaves them out (a Windows and macOS wheel for every Python version
    makes some pages ten times as long as what pip can use)."""
    if not filename.endswith(".whl"):
        return True
    return any(p == "any" or p in platforms for p in filename[:-4].rsplit("-", 1)[-1].split("."))


def _quietly(fn: Callable[..., object], *args: object) -> None:
    """Read-ahead work: a failure only means pip will ask itself (and see it then)."""
    with contextlib.suppress(Exception):
        fn(*args)


def _handler(mirror: IndexMirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

        def log_message(self, format: str, *args: object) -> None:
            pass  # pip's requests are ours; nothing to log

        def do_GET(self) -> None:
            started = time.monotonic()
            try:
                self._get()
            finally:
                mirror._count(time.monotonic() - started)

        def _get(self) -> None:
            path = unquote(urlsplit(self.path).path)
            try:
                if path.startswith("/i/"):
                    self._page(path)
                elif path.startswith("/f/"):
                    self._file(path)
                else:
                    self._send(404, b"not found", "text/plain")
            except NotFoundError:
                self._send(404, b"not found", "text/plain")
            except WheelhouseError as exc:
                mirror._fail(exc)
                self._send(502, str(exc).encode(), "text/plain")

        def _page(self, path: str) -> None:
            parts = path.split("/")  # "", "i", number, project, ""
            if len(parts) < 4 or not parts[2].isdigit() or int(parts[2]) >= len(mirror._indexes):
                self._send(404, b"not found", "text/plain")
                return
            body = mirror.page(int(parts[2]), parts[3])
            if body is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, body, index.JSON_TYPE)

        def _file(self, path: str) -> None:
            found = mirror._file(path.removesuffix(".metadata"))
            if found is None:
                self._send(404, b"not found", "text/plain")
                return
            name, cand = found
            if path.endswith(".metadata"):
                body = mirror.metadata(name, cand)
                self._send(200, body, "application/octet-stream")
                mirror.looked_at(name, cand, body)
                return
            local = mirror.whole_file(name, cand)
            mirror.looked_at(name, cand, None)
            with local.open("rb") as f:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(local.stat().st_size))
                self.end_headers()
                shutil.copyfileobj(f, self.wfile)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
