"""Index pages (PEP 503 HTML, PEP 691 JSON) to candidates; credentials never survive."""

from __future__ import annotations

import json
from pathlib import Path

from wheelhouse import index

HTML = b"""<!DOCTYPE html><html><body>
<a href="../../files/demo-1.0-py3-none-any.whl#sha256=AAAA" data-requires-python="&gt;=3.8">w</a>
<a href="https://files.example/demo-1.0.tar.gz" data-yanked="">s</a>
<a href="demo-1.0.exe">ignored</a>
</body></html>"""


def test_html_page_resolves_urls_and_reads_attributes() -> None:
    cands = index.parse_page(HTML, "https://u:p@idx.example/simple/demo/", "text/html")
    wheel, sdist = cands
    assert wheel.url == "https://idx.example/files/demo-1.0-py3-none-any.whl"
    assert wheel.sha256 == "aaaa" and wheel.requires_python == ">=3.8" and not wheel.yanked
    assert sdist.filename == "demo-1.0.tar.gz" and sdist.yanked and sdist.sha256 is None


def test_json_page() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "files": [
                {
                    "filename": "demo-1.0-py3-none-any.whl",
                    "url": "/f/demo-1.0-py3-none-any.whl",
                    "hashes": {"sha256": "BB"},
                    "requires-python": "",
                    "size": 42,
                    "yanked": False,
                }
            ],
        }
    )
    (cand,) = index.parse_page(body.encode(), "http://127.0.0.1:1/simple/demo/", index.JSON_TYPE)
    assert cand.url == "http://127.0.0.1:1/f/demo-1.0-py3-none-any.whl"
    assert cand.sha256 == "bb" and cand.size == 42 and cand.requires_python is None


def test_strip_credentials() -> None:
    assert index.strip_credentials("https://u:tok@h:8443/s/?q#f") == "https://h:8443/s/?q#f"
    assert index.strip_credentials("https://h/s") == "https://h/s"


class Pages:
    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages

    def read(self, url: str, accept: str | None = None) -> tuple[bytes, str, str]:
        from wheelhouse.errors import NotFoundError

        if url not in self.pages:
            raise NotFoundError(f"404 {url}")
        return self.pages[url], url, "text/html"


def test_list_files_merges_indexes_and_find_links(tmp_path: Path) -> None:
    (tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"x")
    (tmp_path / "other-1.0-py3-none-any.whl").write_bytes(b"x")
    reader = Pages({"https://b.example/simple/demo/": HTML})
    cands = index.list_files(
        "Demo", reader, ["https://a.example/simple", "https://b.example/simple/"], [str(tmp_path)]
    )
    names = [c.filename for c in cands]
    assert names == [
        "demo-1.0-cp311-cp311-linux_x86_64.whl",
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
    ]
    assert cands[0].path == str(tmp_path / names[0])
