"""wheelhouse.sdist: build-system reading, member checks, safe extraction, build order (no I/O
beyond temp files, no subprocesses)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from sdistmaker import RawMember, make_sdist, tiny_pyproject

from wheelhouse import sdist
from wheelhouse.errors import BuildError, UnsafePathError

# --- build system ---------------------------------------------------------------------------------


def test_no_pyproject_means_legacy_setuptools() -> None:
    assert sdist.build_system(None, "x") == sdist.LEGACY_BUILD_SYSTEM
    assert sdist.build_system({"project": {}}, "x").requires == ("setuptools>=40.8.0", "wheel")


def test_build_system_is_read_as_declared() -> None:
    system = sdist.build_system(
        {
            "build-system": {
                "requires": ["a>=1", "b"],
                "build-backend": "a.api",
                "backend-path": ["."],
            }
        },
        "x",
    )
    assert system == sdist.BuildSystem(("a>=1", "b"), "a.api", (".",))
    # No build-backend: the legacy setuptools backend, with the declared requirements.
    assert sdist.build_system({"build-system": {"requires": []}}, "x").backend == (
        "setuptools.build_meta:__legacy__"
    )


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({}, "must be a list of strings"),
        ({"requires": "setuptools"}, "must be a list of strings"),
        ({"requires": ["not a requirement!"]}, "'not a requirement!'"),
        ({"requires": [], "build-backend": 3}, "build-backend"),
        ({"requires": [], "backend-path": ["../up"]}, "'../up' leaves the source tree"),
        ({"requires": [], "backend-path": ["/abs"]}, "'/abs' leaves the source tree"),
    ],
)
def test_invalid_build_system_names_sdist_and_problem(
    table: dict[str, object], needle: str
) -> None:
    with pytest.raises(BuildError, match=r"pkg-1.tar.gz") as info:
        sdist.build_system({"build-system": table}, "pkg-1.tar.gz")
    assert needle in str(info.value)


def test_read_build_system_from_tar_and_zip(tmp_path: Path) -> None:
    py = tiny_pyproject("demo", "1.0", requires=["tinybackend>=1"], dynamic_requires=["x"])
    for fmt in ("tar.gz", "zip"):
        path = make_sdist(tmp_path, "demo", "1.0", pyproject=py, fmt=fmt)
        assert sdist.read_build_system(path) == sdist.BuildSystem(
            ("tinybackend>=1",), "tinybackend"
        )
    legacy = make_sdist(tmp_path, "old", "0.1", {"setup.py": "", "old/__init__.py": ""})
    assert sdist.read_build_system(legacy) == sdist.LEGACY_BUILD_SYSTEM


def test_invalid_pyproject_toml_is_a_build_error(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "bad", "1", {"pyproject.toml": "[build-system\n"})
    with pytest.raises(BuildError, match=r"bad-1.tar.gz: bad-1/pyproject.toml is not valid TOML"):
        sdist.read_build_system(path)


# --- member checks --------------------------------------------------------------------------------

UNSAFE = {
    "dotdot": (RawMember("demo-1.0/../../evil.py", data=b"x"), "'..' component"),
    "absolute": (RawMember("/tmp/evil.py", data=b"x"), "absolute path"),
    "symlink": (
        RawMember("demo-1.0/link", tarfile.SYMTYPE, linkname="../../etc/passwd"),
        "outside the archive",
    ),
    "absolute-symlink": (
        RawMember("demo-1.0/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
        "absolute path",
    ),
    "hardlink": (
        RawMember("demo-1.0/hard", tarfile.LNKTYPE, linkname="../outside"),
        "outside the archive",
    ),
    "device": (RawMember("demo-1.0/dev", tarfile.CHRTYPE), "device file"),
    "fifo": (RawMember("demo-1.0/fifo", tarfile.FIFOTYPE), "device file or FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused_naming_sdist_and_member(tmp_path: Path, case: str) -> None:
    member, why = UNSAFE[case]
    path = make_sdist(
        tmp_path, "demo", "1.0", pyproject=tiny_pyproject("demo", "1.0"), raw=[member]
    )
    for action in (sdist.inspect, sdist.read_build_system):
        with pytest.raises(UnsafePathError) as info:
            action(path)
        message = str(info.value)
        assert message.startswith("demo-1.0.tar.gz: member ")
        assert repr(member.name) in message and why in message
    dest = tmp_path / "out"
    with pytest.raises(UnsafePathError):
        sdist.extract(path, dest)
    assert not dest.exists() or not any(dest.iterdir())


def test_symlink_through_an_inner_symlink_is_caught_on_extraction(tmp_path: Path) -> None:
    """Each link is lexically inside, but following them leaves the tree: the check follows the
    archive's own links."""
    members = [
        RawMember("demo-1.0/up", tarfile.SYMTYPE, linkname=".."),
        RawMember("demo-1.0/escape", tarfile.SYMTYPE, linkname="up/.."),
    ]
    path = make_sdist(tmp_path, "demo", "1.0", raw=members)
    with pytest.raises(UnsafePathError, match=r"demo-1.0.tar.gz: member"):
        sdist.extract(path, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_missing_pkg_info_is_a_clear_error(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "demo", "1.0", pyproject={}, pkg_info=False)
    with pytest.raises(BuildError, match=r"demo-1.0.tar.gz: has no demo-1.0/PKG-INFO"):
        sdist.inspect(path)


def test_two_top_level_directories_are_not_an_sdist(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "demo", "1.0", raw=[RawMember("other/x.py", data=b"")])
    with pytest.raises(BuildError, match=r"one top-level directory.*demo-1.0, other"):
        sdist.inspect(path)


def test_corrupt_archive_is_a_build_error(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(BuildError, match=r"demo-1.0.tar.gz: cannot read the sdist archive"):
        sdist.inspect(path)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_extract_returns_the_source_tree_with_inner_links(tmp_path: Path, fmt: str) -> None:
    raw = [RawMember("demo-1.0/alias.py", tarfile.SYMTYPE, linkname="demo/__init__.py")]
    path = make_sdist(
        tmp_path,
        "demo",
        "1.0",
        {"demo/__init__.py": "X = 1\n", "bin/tool": "#!/bin/sh\n"},
        raw=raw if fmt == "tar.gz" else (),
        fmt=fmt,
    )
    source = sdist.extract(path, tmp_path / "out")
    assert source == (tmp_path / "out" / "demo-1.0").resolve()
    assert (source / "demo" / "__init__.py").read_text() == "X = 1\n"
    assert (source / "PKG-INFO").is_file()
    if fmt == "tar.gz":
        assert os.readlink(source / "alias.py") == "demo/__init__.py"


def test_extraction_does_not_need_tarfiles_data_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One extraction on every Python: interpreters without tarfile filters (Debian's 3.11.2 in
    Nix builds) extract and refuse the same (tests/test_extract.py has the adversarial cases)."""
    raw = [
        RawMember("demo-1.0/alias.py", tarfile.SYMTYPE, linkname="demo/__init__.py"),
        RawMember("demo-1.0/hard.py", tarfile.LNKTYPE, linkname="demo-1.0/demo/__init__.py"),
    ]
    path = make_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": "X = 1\n"}, raw=raw)
    monkeypatch.delattr(tarfile, "data_filter")
    source = sdist.extract(path, tmp_path / "out")
    assert (source / "hard.py").read_text() == "X = 1\n"
    assert os.readlink(source / "alias.py") == "demo/__init__.py"
    escape = [
        RawMember("demo-1.0/up", tarfile.SYMTYPE, linkname=".."),
        RawMember("demo-1.0/escape", tarfile.SYMTYPE, linkname="up/.."),
    ]
    (tmp_path / "bad").mkdir()
    bad = make_sdist(tmp_path / "bad", "demo", "1.0", raw=escape)
    with pytest.raises(UnsafePathError, match=r"member 'demo-1.0/escape'"):
        sdist.extract(bad, tmp_path / "out2")


# --- build order ----------------------------------------------------------------------------------


def test_build_order_puts_dependencies_first_deterministically() -> None:
    deps = {
        "app.tar.gz": ["helper.tar.gz", "base.tar.gz"],
        "helper.tar.gz": ["base.tar.gz"],
        "base.tar.gz": [],
        "other.tar.gz": [],
    }
    assert sdist.build_order(deps) == ["base.tar.gz", "other.tar.gz", "helper.tar.gz", "app.tar.gz"]


def test_build_order_cycle_names_it() -> None:
    deps = {"a.tar.gz": ["b.tar.gz"], "b.tar.gz": ["a.tar.gz"], "c.tar.gz": []}
    with pytest.raises(BuildError, match=r"a.tar.gz needs b.tar.gz needs a.tar.gz"):
        sdist.build_order(deps)


def test_build_order_unknown_dependency() -> None:
    with pytest.raises(BuildError, match=r"holds ghost.tar.gz"):
        sdist.build_order({"a.tar.gz": ["ghost.tar.gz"]})


# --- requirement check ----------------------------------------------------------------------------


def test_unmet_requirements() -> None:
    env = {"python_version": "3.11", "sys_platform": "linux"}
    available = {"setuptools": "70.0", "wheel": "0.43"}
    assert sdist.unmet_requirements(["setuptools>=60", "Wheel"], available, env) == []
    assert sdist.unmet_requirements(["cython; python_version < '3'"], available, env) == []
    assert sdist.unmet_requirements(["setuptools>=80", "cython"], available, env) == [
        "setuptools>=80 (the lock has 70.0)",
        "cython",
    ]
