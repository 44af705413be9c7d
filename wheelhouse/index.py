"""Ask package indexes (PEP 503 HTML, PEP 691 JSON) and find-links locations what files exist.

pip resolves, but it reports only the one file it would install. Choosing a ``none-any`` wheel
where pip would take a binary one needs every file of the resolved version, so this module lists
them. Network access goes through ``Downloader.read`` (auth, retries, TLS in one place).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urldefrag, urljoin, urlsplit, urlunsplit

from packaging.utils import canonicalize_name

from wheelhouse.errors import NotFoundError
from wheelhouse.memo import Memo
from wheelhouse.selection import Candidate, candidate_identity

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


class PageReader(Protocol):
    def read(self, url: str, accept: str | None = None) -> tuple[bytes, str, str]: ...


class PageCache:
    """Project pages read and parsed once per lock, shared by pip (through the loopback
    mirror), the mirror's read-ahead and the lock's own file listings. Failures are kept too:
    asking again gives the same error."""

    def __init__(self, reader: PageReader) -> None:
        self._reader = reader
        self._pages: Memo[tuple[str, str | None], tuple[bytes, str, str]] = Memo()
        self._parsed: Memo[str, list[Candidate]] = Memo()

    def read(self, url: str, accept: str | None = None) -> tuple[bytes, str, str]:
        return self._pages.get((url, accept), lambda: self._reader.read(url, accept))

    def candidates(self, url: str) -> list[Candidate]:
        """The files on the page at ``url`` (asked for with ``ACCEPT``)."""
        return self._parsed.get(url, lambda: parse_page(*self.read(url, ACCEPT)))


def strip_credentials(url: str) -> str:
    """The URL without ``user:password@``: what may be written to a lock or printed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def _from_url(href: str, base: str, **extra: object) -> Candidate | None:
    url, fragment = urldefrag(urljoin(base, href))
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if candidate_identity(filename) is None:
        return None
    sha256 = None
    if fragment.startswith("sha256="):
        sha256 = fragment.split("=", 1)[1].lower()
    hashes = extra.pop("hashes", None)
    if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
        sha256 = hashes["sha256"].lower()
    size = extra.get("size")
    rp = extra.get("requires_python")
    metadata = _metadata_hash(extra.get("metadata"))
    return Candidate(
        filename=filename,
        url=strip_credentials(url),
        sha256=sha256,
        size=size if isinstance(size, int) else None,
        requires_python=rp if isinstance(rp, str) and rp else None,
        yanked=bool(extra.get("yanked")),
        metadata=metadata,
    )


def _metadata_hash(value: object) -> str | None:
    """PEP 658/714 ``core-metadata``: JSON ``true`` or ``{"sha256": ...}``, HTML ``"true"`` or
    ``"sha256=..."``; None when absent or false."""
    if value is None or value is False or value == "false":
        return None
    if isinstance(value, dict):
        digest = value.get("sha256")
        return digest.lower() if isinstance(digest, str) else ""
    if isinstance(value, str) and value.startswith("sha256="):
        return value.split("=", 1)[1].lower()
    return ""


def parse_page(body: bytes, url: str, content_type: str) -> list[Candidate]:
    """Candidates on one project page (JSON or HTML), URLs absolute and credential-free."""
    found: list[Candidate | None] = []
    if content_type.split(";")[0].strip() == JSON_TYPE:
        data = json.loads(body)
        for f in data.get("files", []):
            found.append(
                _from_url(
                    f["url"],
                    url,
                    hashes=f.get("hashes"),
                    size=f.get("size"),
                    requires_python=f.get("requires-python"),
                    yanked=f.get("yanked"),
                    metadata=f.get("core-metadata", f.get("dist-info-metadata")),
                )
            )
    else:
        parser = _Anchors()
        parser.feed(body.decode("utf-8", "replace"))
        for attrs in parser.anchors:
            href = attrs.get("href")
            if href:
                found.append(
                    _from_url(
                        href,
                        url,
                        requires_python=attrs.get("data-requires-python"),
                        yanked="data-yanked" in attrs,
                        metadata=attrs.get(
                            "data-core-metadata", attrs.get("data-dist-info-metadata")
                        ),
                    )
                )
    return [c for c in found if c is not None]


def _local_dir(directory: Path) -> list[Candidate]:
    return [
        Candidate(filename=p.name, path=str(p.resolve()))
        for p in sorted(directory.iterdir())
        if p.is_file() and candidate_identity(p.name) is not None
    ]


def list_files(
    name: str,
    reader: PageReader,
    indexes: Sequence[str],
    find_links: Sequence[str] = (),
) -> list[Candidate]:
    """Every file offered for ``name`` by the indexes and find-links, first location wins a name.

    A missing project page (404) on one index is normal when several are configured; any other
    failure is an error, since silently skipping an index could change what gets locked.
    """
    norm = canonicalize_name(name)
    pages = reader if isinstance(reader, PageCache) else PageCache(reader)
    seen: dict[str, Candidate] = {}

    def add(cands: Iterable[Candidate]) -> None:
        for c in cands:
            ident = candidate_identity(c.filename)
            if ident is not None and ident[0] == norm:
                seen.setdefault(c.filename, c)

    for index in indexes:
        try:
            add(pages.candidates(index.rstrip("/") + f"/{norm}/"))
        except NotFoundError:
            continue
    for link in find_links:
        if "://" not in link or link.startswith("file://"):
            directory = Path(unquote(urlsplit(link).path) if "://" in link else link)
            if directory.is_dir():
                add(_local_dir(directory))
            continue
        add(parse_page(*pages.read(link, "text/html")))
    return sorted(seen.values(), key=lambda c: c.filename)
