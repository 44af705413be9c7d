"""``wheelhouse.nar`` must agree with Nix byte for byte, so every tree is checked against Nix.

A hash that differs from Nix's by one bit makes every fixed-output build fail, and no unit
expectation written by hand would catch a misreading of the format; hence ``nix-hash`` and
``nix-store --dump`` are the oracles here, not hard-coded digests.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wheelhouse import nar
from wheelhouse.errors import NarError
from wheelhouse.nar import dump, nar_sha256, nix_base32, parse_hash, sri

NIX_COMMAND = ["nix", "--extra-experimental-features", "nix-command"]


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not on PATH; the NAR oracle tests need Nix installed")
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def nix_hash_base32(path: Path) -> str:
    return _run(["nix-hash", "--type", "sha256", "--base32", str(path)])


def nix_store_dump(path: Path) -> bytes:
    if shutil.which("nix-store") is None:
        pytest.skip("nix-store is not on PATH; the NAR oracle tests need Nix installed")
    argv = ["nix-store", "--dump", str(path)]
    return subprocess.run(argv, check=True, capture_output=True).stdout


def our_dump(path: Path) -> bytes:
    chunks: list[bytes] = []
    dump(path, chunks.append)
    return b"".join(chunks)


def assert_matches_nix(path: Path) -> None:
    expected = nix_hash_base32(path)
    assert nix_base32(nar_sha256(path)) == expected


def write(path: Path, data: bytes = b"", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


# --- fixed trees against nix-hash --------------------------------------------------------------


def build_empty_dir(root: Path) -> Path:
    root.mkdir()
    return root


def build_regular_file(root: Path) -> Path:
    return write(root, b"just one file, not a directory\n")


def build_empty_file(root: Path) -> Path:
    return write(root)


def build_executable_root(root: Path) -> Path:
    return write(root, b"#!/bin/sh\necho hi\n", 0o755)


def build_symlink_root(root: Path) -> Path:
    root.symlink_to("/nix/store/does-not-exist")
    return root


def build_exec_bits(root: Path) -> Path:
    write(root / "rwx", b"x", 0o755)
    write(root / "owner-x-only", b"x", 0o744)
    write(root / "group-other-x", b"not executable for Nix", 0o655)
    write(root / "plain", b"x", 0o600)
    write(root / "readonly-exec", b"x", 0o555)
    return root


def build_symlinks(root: Path) -> Path:
    write(root / "target.txt", b"target\n")
    (root / "dir").mkdir(parents=True)
    write(root / "dir" / "inner", b"inner")
    (root / "to-file").symlink_to("target.txt")
    (root / "dangling").symlink_to("nowhere/at/all")
    (root / "to-dir").symlink_to("dir")
    (root / "absolute").symlink_to("/etc/passwd")
    (root / "dotdot").symlink_to("../outside")
    (root / "dir" / "up").symlink_to("..")
    (root / "odd target").symlink_to("with space/ä/-x")
    return root


def build_nested(root: Path) -> Path:
    write(root / "a" / "b" / "c" / "d" / "deep.txt", b"deep")
    (root / "a" / "empty").mkdir()
    (root / "x" / "y").mkdir(parents=True)
    write(root / "a" / "b" / "sibling", b"s", 0o755)
    write(root / "top", b"top")
    return root


def build_odd_names(root: Path) -> Path:
    # Byte order (what Nix uses) differs from locale and case-insensitive orders, and, for
    # non-UTF-8 names decoded with surrogateescape, from Python's str order.
    for name in ["B", "a", "Ä", "_", "with space", "-dash", ".hidden", "a.b", "Z9", "~", "\ue000"]:
        write(root / name, name.encode())
    (root / "ünïcødé dir").mkdir()
    write(root / "ünïcødé dir" / "ß", b"sz")
    with open(os.path.join(os.fsencode(root), b"\xff-not-utf8"), "wb") as f:
        f.write(b"raw bytes name")
    return root


def build_sizes(root: Path) -> Path:
    write(root / "empty")
    write(root / "eight", b"12345678")
    write(root / "sixteen", b"0123456789abcdef")
    write(root / "thirteen", b"0123456789abc")
    write(root / "one", b"1")
    write(root / "big", os.urandom(2 * nar.CHUNK_SIZE + 3))
    write(root / "exact-chunk", os.urandom(nar.CHUNK_SIZE), 0o755)
    return root


def build_deep(root: Path) -> Path:
    """Deeper than Python's recursion limit, with siblings at several levels."""
    here = root
    for level in range(1500):
        here = here / "d"
        here.mkdir(parents=True)
        if level % 500 == 0:
            write(here / "f", str(level).encode())
    os.symlink("../d", here / "up")
    return root


BUILDERS: list[Callable[[Path], Path]] = [
    build_empty_dir,
    build_regular_file,
    build_empty_file,
    build_executable_root,
    build_symlink_root,
    build_exec_bits,
    build_symlinks,
    build_nested,
    build_odd_names,
    build_sizes,
    build_deep,
]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__.removeprefix("build_"))
def test_hash_matches_nix_hash(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    assert_matches_nix(build(tmp_path / "root"))


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__.removeprefix("build_"))
def test_dump_matches_nix_store_dump(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    root = build(tmp_path / "root")
    assert our_dump(root) == nix_store_dump(root)


def test_sri_matches_nix(tmp_path: Path) -> None:
    root = build_symlinks(tmp_path / "root")
    digest = nar_sha256(root)
    hex_digest = _run(["nix-hash", "--type", "sha256", str(root)])
    assert sri(digest) == "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()
    # nix-hash 2.8 has no --sri; the new CLI prints SRI by default.
    assert sri(digest) == _run([*NIX_COMMAND, "hash", "path", "--type", "sha256", str(root)])
    to_sri = [*NIX_COMMAND, "hash", "to-sri", "--type", "sha256", nix_base32(digest)]
    assert sri(digest) == _run(to_sri)


def test_small_chunks_still_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = build_sizes(tmp_path / "root")
    monkeypatch.setattr(nar, "CHUNK_SIZE", 3)
    write(root / "odd", b"x" * 1001)
    assert_matches_nix(root)


def test_big_file_is_streamed_in_bounded_chunks(tmp_path: Path) -> None:
    big = write(tmp_path / "big", os.urandom(3 * nar.CHUNK_SIZE + 5))
    sizes: list[int] = []
    digest = hashlib.sha256()

    def sink(chunk: bytes) -> None:
        sizes.append(len(chunk))
        digest.update(chunk)

    dump(big, sink)
    assert max(sizes) <= nar.CHUNK_SIZE
    assert digest.digest() == nar_sha256(big)


def test_exec_bit_of_others_is_ignored(tmp_path: Path) -> None:
    a = write(tmp_path / "a", b"same", 0o655)
    b = write(tmp_path / "b", b"same", 0o600)
    c = write(tmp_path / "c", b"same", 0o700)
    assert nar_sha256(a) == nar_sha256(b) != nar_sha256(c)


# --- random trees against nix-hash -------------------------------------------------------------

names = st.text(
    st.characters(codec="utf-8", exclude_characters="/\0"),
    min_size=1,
    max_size=12,
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 200)

leaves = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=64), st.booleans()),
    st.tuples(
        st.just("link"),
        st.text(
            st.characters(codec="utf-8", exclude_characters="\0"),
            min_size=1,
            max_size=30,
        ),
    ),
)
trees = st.recursive(
    leaves,
    lambda children: st.tuples(st.just("dir"), st.dictionaries(names, children, max_size=5)),
    max_leaves=15,
)


def materialise(path: Path, node: Any) -> None:
    kind = node[0]
    if kind == "file":
        write(path, node[1], 0o755 if node[2] else 0o644)
    elif kind == "link":
        path.symlink_to(node[1])
    else:
        path.mkdir()
        for name, child in node[1].items():
            materialise(path / name, child)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_random_trees_match_nix_hash(tree: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        materialise(root, tree)
        assert_matches_nix(root)


# --- hash spellings ----------------------------------------------------------------------------

digests = st.binary(min_size=32, max_size=32)


@given(digest=digests)
def test_parse_hash_round_trips(digest: bytes) -> None:
    b32 = nix_base32(digest)
    assert len(b32) == 52
    for spelling in [
        sri(digest),
        b32,
        "sha256:" + b32,
        digest.hex(),
        digest.hex().upper(),
        "sha256:" + digest.hex(),
        f"  {sri(digest)}\n",
    ]:
        assert parse_hash(spelling) == digest, spelling


@pytest.mark.parametrize("digest", [bytes(32), b"\xff" * 32, bytes(range(32)), os.urandom(32)])
def test_nix_base32_matches_nix_hash_to_base32(digest: bytes) -> None:
    expected = _run(["nix-hash", "--type", "sha256", "--to-base32", digest.hex()])
    assert nix_base32(digest) == expected


def test_known_vectors() -> None:
    empty = hashlib.sha256(b"").digest()
    assert nix_base32(empty) == "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
    assert sri(empty) == "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha256-",
        "sha256-not*base64*at*all",
        "sha256-" + base64.b64encode(bytes(31)).decode(),
        "sha512-" + base64.b64encode(bytes(64)).decode(),
        "md5:" + "0" * 32,
        "sha1:" + "0" * 40,
        "0" * 63,
        "g" * 64,
        "0" * 31 + " " + "0" * 32,
        "e" * 52,  # 'e' is not in Nix's alphabet
        "z" * 52,  # 260 bits: more than a sha256 holds
        "sha256:" + "0" * 51,
    ],
)
def test_parse_hash_rejects(bad: str) -> None:
    with pytest.raises(NarError) as excinfo:
        parse_hash(bad)
    assert repr(bad) in str(excinfo.value)


# --- unsupported files -------------------------------------------------------------------------


def test_fifo_is_rejected_with_its_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write(root / "ok", b"ok")
    fifo = root / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NarError, match="fifo") as excinfo:
        nar_sha256(root)
    assert str(fifo) in str(excinfo.value)
    with pytest.raises(NarError, match="fifo"):
        nar_sha256(fifo)


def test_missing_path_is_a_nar_error(tmp_path: Path) -> None:
    with pytest.raises(NarError, match="does-not-exist"):
        nar_sha256(tmp_path / "does-not-exist")


def test_flat_directory_sha256_matches_a_real_directory(tmp_path: Path) -> None:
    """The lock computes the wheelhouse hash from cached files; it must equal the fetched dir's."""
    sources = tmp_path / "cache"
    sources.mkdir()
    files = {}
    for i, name in enumerate(["b-1-py3-none-any.whl", "a-2.tar.gz", "Z-1-py3-none-any.whl"]):
        src = sources / f"blob{i}"
        src.write_bytes(os.urandom(1000 + i))
        src.chmod(0o755 if i == 0 else 0o644)  # the cache's mode must not leak into the hash
        files[name] = src
    flat = tmp_path / "flat"
    flat.mkdir()
    for name, src in files.items():
        (flat / name).write_bytes(src.read_bytes())
        (flat / name).chmod(0o644)
    assert nar.flat_directory_sha256(files) == nar.nar_sha256(flat)
