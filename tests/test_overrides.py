"""wheelhouse.overrides: the ``--overrides FILE.json`` document, read and validated before any
build (applying it is tests/test_build.py's ``build_environment`` test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wheelhouse.errors import UsageError
from wheelhouse.overrides import (
    NO_OVERRIDES,
    PackageOverride,
    load_overrides,
    parse_overrides,
)

DOCUMENT = {
    "path": ["/cc/bin"],
    "env": {"CC": "cc"},
    "packages": {
        "Psycopg2_Binary": {"path": ["/pg/bin"], "pkg_config_path": ["/pg/lib/pkgconfig"]},
        "lxml": {"env": {"STATIC_DEPS": "false"}},
    },
}


def test_a_file_is_read_with_package_names_normalized(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps(DOCUMENT), encoding="utf-8")
    read = load_overrides(path)
    assert read.common == PackageOverride(path=("/cc/bin",), env={"CC": "cc"})
    assert dict(read.packages) == {
        "psycopg2-binary": PackageOverride(
            path=("/pg/bin",), pkg_config_path=("/pg/lib/pkgconfig",)
        ),
        "lxml": PackageOverride(env={"STATIC_DEPS": "false"}),
    }
    assert parse_overrides({}) == NO_OVERRIDES


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ([], "must be an object"),
        ({"paths": []}, "unknown keys ['paths']"),
        ({"packages": []}, "overrides.packages must be an object"),
        ({"packages": {"x": {"env": {"A": 1}}}}, "overrides.packages.x.env must map"),
        ({"packages": {"x": {"path": "/bin"}}}, "overrides.packages.x.path must be a list"),
        ({"packages": {"x": {"packages": {}}}}, "overrides.packages.x cannot hold packages"),
    ],
)
def test_bad_overrides_are_usage_errors(document: object, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_overrides(document)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no such overrides file"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"path": "/bin"}', "overrides.json.path must be a list of strings"),
    ],
)
def test_unusable_files_are_one_usage_error_naming_the_file(
    tmp_path: Path, content: bytes | None, needle: str
) -> None:
    path = tmp_path / "overrides.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        load_overrides(path)
    assert str(info.value).startswith(str(path)) and needle in str(info.value)
