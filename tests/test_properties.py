"""Property-based tests (hypothesis): lock writing and reading, wheel file names and selection,
and the archive path checks of install. NAR serialisation has its own in tests/test_nar.py.

Each property runs a bounded number of examples (well under a few seconds each) with no
deadline, since some examples write files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from wheelmaker import make_wheel

from wheelhouse import _install_protocol as protocol
from wheelhouse import _install_worker as worker
from wheelhouse import _safefs, install, lockfile
from wheelhouse.errors import InstallError, SelectionError, UnsafePathError
from wheelhouse.model import Artifact
from wheelhouse.selection import Candidate, candidate_identity, select
from wheelhouse.targets import Target, make_target

SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- lock: writer and reader -------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,3})?", fullmatch=True)
VERSIONS = st.lists(st.integers(0, 30).map(str), min_size=1, max_size=3).map(".".join)
TAGS = [
    "py3-none-any",
    "py2.py3-none-any",
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp312-abi3-manylinux_2_28_aarch64",
    "cp311-cp311-win_amd64",
    "cp39-abi3-macosx_11_0_arm64",
]
SHA256 = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def location(draw: st.DrawFn, filename: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["url", "path", "abs", "both"]))
    url = f"https://files.example.org/packages/{draw(st.sampled_from(['a', 'b/c']))}/{filename}"
    path = f"{draw(st.sampled_from(['wheels', 'vendor/dists', '.']))}/{filename}"
    return {
        "url": {"url": url},
        "path": {"path": path},
        "abs": {"path": f"/srv/dists/{filename}"},
        "both": {"url": url, "path": path},
    }[kind]


@st.composite
def package_files(draw: st.DrawFn, name: str) -> list[Artifact]:
    version = draw(VERSIONS)
    stem = f"{name.replace('-', '_')}-{version}"
    tags = draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=3))
    files = [(f"{stem}-{tag}.whl", "wheel") for tag in tags]
    if draw(st.booleans()) or not files:
        files.append((f"{stem}.tar.gz", "sdist"))
    return [
        Artifact(
            filename=filename,
            package=name,
            version=version,
            sha256=draw(SHA256),
            kind=kind,  # type: ignore[arg-type]
            size=draw(st.none() | st.integers(0, 10**10)),
            **draw(location(filename)),
        )
        for filename, kind in files
    ]


@st.composite
def package_sets(draw: st.DrawFn) -> list[list[Artifact]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique_by=canonicalize_name))
    return [draw(package_files(name)) for name in names]


def lock_dict(
    packages: Sequence[Sequence[Artifact]], chosen: Sequence[str], shuffle: Any = None
) -> dict[str, Any]:
    """A lock whose one target takes the ``chosen`` files (one per package)."""
    entries = []
    for files in sorted(packages, key=lambda fs: fs[0].package):
        wheels = [a for a in files if a.kind == "wheel"]
        if shuffle is not None:
            wheels = shuffle(wheels)
        sdists = [a for a in files if a.kind == "sdist"]
        entries.append(
            lockfile.package_entry(
                files[0].package, files[0].version, wheels, sdists[0] if sdists else None
            )
        )
    return {
        "lock-version": "1.0",
        "created-by": "wheelhouse",
        "packages": entries,
        "tool": {
            "wheelhouse": {
                "lock-format": lockfile.TOOL_FORMAT,
                "targets": [
                    {
                        "name": "t",
                        "python-version": "3.11",
                        "marker": "python_version == '3.11'",
                        "artifacts": sorted(chosen),
                    }
                ],
            }
        },
    }


def load(content: bytes) -> lockfile.Lock:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "pylock.toml")
        path.write_bytes(content)
        return lockfile.load(path)


@SETTINGS
@given(packages=package_sets(), data=st.data())
def test_lock_round_trip_and_determinism(packages: list[list[Artifact]], data: Any) -> None:
    chosen = [files[0].filename for files in packages]
    content = lockfile.render(lock_dict(packages, chosen))
    # Deterministic: the order of the files given to package_entry does not matter.
    shuffled = lock_dict(packages, chosen, shuffle=lambda ws: data.draw(st.permutations(ws)))
    assert lockfile.render(shuffled) == content
    lock = load(content)
    every = {a.filename: a for files in packages for a in files}
    assert dict(lock.by_filename) == every
    target = lockfile.choose_target(lock, None)
    assert target is not None
    arts = lockfile.artifacts_for(lock, target)
    assert arts == sorted((every[f] for f in chosen), key=lambda a: a.filename)
    # Re-rendering what was read gives the same bytes.
    again: dict[str, list[Artifact]] = {}
    for art in lock.by_filename.values():
        again.setdefault(art.package, []).append(art)
    assert lockfile.render(lock_dict(list(again.values()), target.artifacts)) == content


# --- wheel file names and selection ------------------------------------------------------------

TARGETS = {"3.11": make_target("3.11"), "3.12": make_target("3.12")}
SELECT_TAGS = [
    *TAGS,
    "py2-none-any",
    "py311-none-any",
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp311-abi3-manylinux_2_17_x86_64",
    "cp311-none-any",
    "py3-none-manylinux_2_17_x86_64",
]


@SETTINGS
@given(name=NAMES, version=VERSIONS, tag=st.sampled_from(SELECT_TAGS), build=st.booleans())
def test_candidate_identity_round_trips(name: str, version: str, tag: str, build: bool) -> None:
    stem = f"{name.replace('-', '_')}-{version}"
    expected = (canonicalize_name(name), Version(version))
    assert candidate_identity(f"{stem}{'-1' if build else ''}-{tag}.whl") == expected
    assert candidate_identity(f"{stem}.tar.gz") == expected
    assert candidate_identity(f"{stem}.zip") == expected
    assert candidate_identity(f"{stem}.txt") is None
    assert candidate_identity(f"{stem}.whl") is None  # no tags: not a wheel name


LINUX_TAGS = [  # compatible with one of the targets on the machines the suite runs on
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp311-abi3-manylinux_2_17_x86_64",
    "cp311-cp311-linux_x86_64",
    "py3-none-manylinux_2_17_x86_64",
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
]


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    def one() -> Candidate:
        name = draw(st.sampled_from(["demo", "Demo", "Demo_Pkg", "demo.pkg", "other"]))
        version = draw(st.sampled_from(["1.0", "1.0.0", "1", "2.0"]))
        stem = f"{name}-{version}"
        filename = draw(
            st.sampled_from([f"{stem}.tar.gz", f"{stem}.zip", f"{stem}.txt"])
            | st.sampled_from(SELECT_TAGS).map(lambda t: f"{stem}-{t}.whl")
            | st.sampled_from(LINUX_TAGS).map(lambda t: f"{stem}-{t}.whl")
        )
        rp = draw(st.sampled_from([None, None, None, ">=3.12", "<3.12", ">=3", "!!bad"]))
        return Candidate(filename=filename, url=f"https://x/{filename}", requires_python=rp)

    return [one() for _ in range(draw(st.integers(0, 10)))]


def python_ok(cand: Candidate, target: Target) -> bool:
    if cand.requires_python is None:
        return True
    try:
        return SpecifierSet(cand.requires_python).contains(f"{target.version_string}.0")
    except InvalidSpecifier:
        return True


def fits(cand: Candidate, target: Target, name: str, version: str) -> bool:
    ident = candidate_identity(cand.filename)
    return ident == (canonicalize_name(name), Version(version)) and python_ok(cand, target)


def wheel_tags(cand: Candidate) -> frozenset[Any]:
    return parse_wheel_filename(cand.filename)[3]


def compatible(cand: Candidate, target: Target) -> bool:
    return cand.is_wheel and bool(wheel_tags(cand) & set(target.tags))


def pure(cand: Candidate) -> bool:
    return any(t.abi == "none" and t.platform == "any" for t in wheel_tags(cand))


@settings(SETTINGS, max_examples=150)
@given(
    cands=candidates(),
    name=st.sampled_from(["demo", "demo-pkg"]),
    version=st.sampled_from(["1.0", "1"]),
    target_version=st.sampled_from(sorted(TARGETS)),
    prefer_binary=st.booleans(),
    no_binary=st.sampled_from([(), (), (), ("demo",), (":all:",), ("other",)]),
)
def test_select_invariants(
    cands: list[Candidate],
    name: str,
    version: str,
    target_version: str,
    prefer_binary: bool,
    no_binary: tuple[str, ...],
) -> None:
    target = TARGETS[target_version]
    usable = [c for c in cands if fits(c, target, name, version)]
    wheels = [c for c in usable if compatible(c, target)]
    sdists = [c for c in usable if not c.is_wheel]
    wants_sdist = canonicalize_name(name) in no_binary or ":all:" in no_binary
    try:
        chosen = select(
            name, version, cands, target, prefer_binary=prefer_binary, no_binary=no_binary
        )
    except SelectionError as exc:
        assert canonicalize_name(name) in str(exc)
        assert not sdists and (wants_sdist or not wheels)
        return
    # The chosen file is always of this name and version, fits the target's Python and tags.
    assert chosen in usable
    if chosen.is_wheel:
        assert compatible(chosen, target) and not wants_sdist
        if not prefer_binary and any(pure(w) for w in wheels):
            assert pure(chosen)  # none-any whenever the version has a compatible one
        if prefer_binary:
            rank = {tag: i for i, tag in enumerate(target.tags)}
            best = min(min(rank[t] for t in wheel_tags(w) if t in rank) for w in wheels)
            assert min(rank[t] for t in wheel_tags(chosen) if t in rank) == best
    else:
        assert wants_sdist or not wheels


# --- install: archive member paths -------------------------------------------------------------

SEGMENTS = st.sampled_from(["..", ".", "", "a", "pkg", "x.py", "C:", "~", "...", "a..b", " "])
SEPARATORS = st.sampled_from(["/", "/", "/", "\\"])


@st.composite
def member_names(draw: st.DrawFn) -> str:
    parts = draw(st.lists(SEGMENTS | st.text("ab./\\:", max_size=4), min_size=1, max_size=5))
    name = parts[0]
    for part in parts[1:]:
        name += draw(SEPARATORS) + part
    return draw(st.sampled_from(["", "", "/", "\\"])) + name


def escapes(name: str, root: str = "/prefix/site") -> bool:
    """Independent of the implementation: could this name land outside ``root``?"""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return True
    if ".." in name.split("/"):
        return True
    return not os.path.normpath(os.path.join(root, name)).startswith(root + "/")


def inside(dest: str, root: str = "/prefix") -> bool:
    return os.path.normpath(os.path.join(root, dest)).startswith(root + "/")


@SETTINGS
@given(name=member_names())
def test_member_path_check(name: str) -> None:
    try:
        worker._check_member_path("w-1.0-py3-none-any.whl", name)
    except worker.WorkerError as exc:
        assert exc.kind == "UnsafePathError" and repr(name)[1:-1] in exc.message
        return
    assert not escapes(name), name  # unsafe names are always rejected
    assert inside(name, "/prefix/site")  # safe ones land inside


DATA_SCHEMES = st.sampled_from([*worker.SCHEMES, "etc", "lib", "..", "scripts/..", "Data"])


SAFE_PATHS = st.lists(
    st.sampled_from(["a", "pkg", "x.py", "share", "b.txt"]), min_size=1, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(scheme=DATA_SCHEMES, path=member_names() | SAFE_PATHS.map("/".join))
def test_data_scheme_members_land_in_the_prefix_or_are_rejected(scheme: str, path: str) -> None:
    assume(path and not path.endswith(("/", "\\")))
    sp_rel = "lib/python3.11/site-packages"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = make_wheel(
            Path(tmp), "pkg", "1.0", {"pkg/__init__.py": ""}, data={scheme: {path: "x"}}
        )
        member = f"pkg-1.0.data/{scheme}/{path}"
        try:
            sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
            job = protocol.WheelJob(0, str(wheel), wheel.name, sha256, "pkg 1.0")
            plan = worker.plan_wheel(job, sp_rel, "3.11")
        except worker.WorkerError as exc:
            assert exc.kind in ("UnsafePathError", "InstallError"), exc.message
            assert wheel.name in exc.message
            return
    assert scheme in worker.SCHEMES  # an unknown scheme is always rejected
    assert not escapes(member, "/prefix/wheel")
    for _info, dest, *_rest in plan.files:
        assert inside(dest), dest  # everything lands inside the prefix
        if dest.endswith(path.rsplit("/", 1)[-1]) and "pkg/__init__.py" not in dest:
            expected = {
                "purelib": sp_rel + "/",
                "platlib": sp_rel + "/",
                "scripts": "bin/",
                "headers": "include/",
                "data": "",
            }[scheme]
            assert dest.startswith(expected)


SCRIPT_NAMES = st.sampled_from(["..", "../x", "a/../b", ".hidden", "ok-name", "a\\b", "x/y"]) | (
    st.text("ab.-_~/\\", min_size=1, max_size=6)
)


def _wheel_with_entry_points(text: str) -> install._Wheel:
    art = Artifact("pkg-1.0-py3-none-any.whl", "pkg", "1.0", "0" * 64, "wheel")
    summary = protocol.WheelSummary(
        index=0,
        name="pkg",
        version="1.0",
        requires_python="",
        sha256=art.sha256,
        dist_info="pkg-1.0.dist-info",
        entry_points=text,
        files=(),
        cost=0,
        warnings=(),
    )
    return install._Wheel(index=0, artifact=art, path=Path(art.filename), size=0, summary=summary)


@SETTINGS
@given(script=SCRIPT_NAMES, section=st.sampled_from(["console_scripts", "gui_scripts"]))
def test_entry_point_names_stay_in_bin(script: str, section: str) -> None:
    wheel = _wheel_with_entry_points(f"[{section}]\n{script} = pkg.cli:main\n")
    try:
        scripts = install._scripts(wheel, "/prefix/bin/python")
    except (UnsafePathError, InstallError) as exc:
        assert wheel.artifact.filename in str(exc)
        return
    assert not escapes(script, "/prefix/bin") and ".." not in script
    for dest, _text in scripts:
        full = os.path.normpath(os.path.join("/prefix", dest))
        assert os.path.dirname(full) == "/prefix/bin", dest


@pytest.mark.parametrize("script", ["../x", "..", "a/b", "a\\b"])
def test_entry_point_examples_are_rejected(script: str) -> None:
    wheel = _wheel_with_entry_points(f"[console_scripts]\n{script} = pkg.cli:main\n")
    with pytest.raises(UnsafePathError, match="entry point"):
        install._scripts(wheel, "/prefix/bin/python")


# --- archive checks against the kernel (wheelhouse/_safefs.py) ----------------------------------

COMPONENTS = st.sampled_from(["a", "b", "c"])
LINK_PARTS = st.sampled_from(["a", "b", "c", "..", ".", ""])


@st.composite
def archives(draw: st.DrawFn) -> list[_safefs.Entry]:
    """Small archives of files, directories and symlinks with relative targets, over three
    names, so that links to links, links through links and climbs out are frequent."""
    entries = []
    for _ in range(draw(st.integers(1, 8))):
        name = "/".join(draw(st.lists(COMPONENTS, min_size=1, max_size=3)))
        kind = draw(st.sampled_from([_safefs.FILE, _safefs.DIR, _safefs.SYMLINK]))
        target = ""
        if kind == _safefs.SYMLINK:
            target = "/".join(draw(st.lists(LINK_PARTS, min_size=1, max_size=5)))
        entries.append(_safefs.Entry(name, kind, target))
    return entries


@settings(SETTINGS, max_examples=300)
@given(entries=archives())
def test_accepted_archives_extract_and_their_links_stay_inside(
    entries: list[_safefs.Entry],
) -> None:
    """What ``check_entries`` accepts (decided on names only) extracts without an error, and the
    kernel, resolving every symlink on disk (os.path.realpath: the paths are short here), never
    leaves the root: the lexical resolution is at least as strict as the real one."""
    try:
        checked = _safefs.check_entries(entries)
    except _safefs.UnsafeMember:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.realpath(os.path.join(tmp, "root"))
        os.mkdir(root)
        with _safefs.Tree(root) as tree:
            for entry, rel in checked:
                if entry.kind == _safefs.DIR:
                    tree.mkdir(rel)
                elif entry.kind == _safefs.FILE:
                    tree.write(rel, b"x", 0o644)
                else:
                    tree.symlink(rel, entry.linkname)
        assert os.listdir(tmp) == ["root"]
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    real = os.path.realpath(path)
                    assert real == root or real.startswith(root + os.sep), (entries, path, real)


def _sdist_bytes(fmt: str) -> bytes:
    """A small sdist with a directory, a symlink and (in tar) a hardlink: the mutation seed. A
    tar.gz is returned uncompressed, so mutations hit tar headers, not the gzip CRC."""
    import gzip
    import tarfile

    from sdistmaker import RawMember, make_sdist

    raw = [RawMember("demo-1.0/alias.py", tarfile.SYMTYPE, linkname="demo/__init__.py")]
    if fmt == "tar.gz":
        raw.append(RawMember("demo-1.0/hard.py", tarfile.LNKTYPE, linkname="demo-1.0/PKG-INFO"))
    with tempfile.TemporaryDirectory() as d:
        data = make_sdist(Path(d), "demo", "1.0", {"demo/__init__.py": "X = 1\n"}, raw=raw,
                          fmt=fmt).read_bytes()  # fmt: skip
    return gzip.decompress(data) if fmt == "tar.gz" else data


_SDISTS = {fmt: _sdist_bytes(fmt) for fmt in ("tar.gz", "zip")}


@settings(SETTINGS, max_examples=200)
@given(
    fmt=st.sampled_from(sorted(_SDISTS)),
    cuts=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), min_size=1, max_size=4),
    truncate=st.integers(0, 1 << 16) | st.none(),
)
def test_damaged_sdists_extract_or_fail_in_one_error(
    fmt: str, cuts: list[tuple[int, int]], truncate: int | None
) -> None:
    """Any damage to an sdist's headers or data gives a ``WheelhouseError`` (one line at the CLI)
    or a clean extraction, never another exception, and nothing outside the destination."""
    import gzip

    from wheelhouse import sdist
    from wheelhouse.errors import WheelhouseError

    raw = bytearray(_SDISTS[fmt])
    for at, xor in cuts:
        raw[at % len(raw)] ^= xor
    if truncate is not None:
        raw = raw[: truncate % len(raw)]
    data = gzip.compress(bytes(raw), mtime=0) if fmt == "tar.gz" else bytes(raw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, f"demo-1.0.{fmt}")
        path.write_bytes(data)
        for action in (sdist.read_build_system, lambda p: sdist.extract(p, Path(tmp, "out"))):
            try:
                action(path)
            except WheelhouseError as exc:
                assert "\n" not in str(exc) and path.name in str(exc)
        assert sorted(os.listdir(tmp)) in ([path.name], [path.name, "out"])
