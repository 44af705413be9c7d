"""Catalogue, lock stage: every bad lock gives one clear error through the CLI, nothing written.

One case per failure mode of /work/shared/README.md ("Bad inputs and faults to try", Lock). The
API-level checks live in tests/test_lockfile.py; here each case goes through ``wheelhouse fetch``
and ``wheelhouse install`` as a user would run them (and a few through ``python -m wheelhouse``),
and checks the exact error class, the exit code, the one-line message naming the package or file
and what to do, no traceback, and that no destination was created.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from contract import (
    A_WHEEL,
    B_WHEEL,
    SHA_B,
    TARGET,
    assert_absent,
    assert_error,
    assert_error_line,
    assert_ok,
    good_lock,
    run_cli,
    run_module,
    write_lock,
)
from indexserver import IndexServer
from wheelmaker import make_wheel

from wheelhouse.errors import (
    LockError,
    ResolutionError,
    SelectionError,
    UsageError,
    WheelhouseError,
)

TOKEN = "tok-9f8e7d6c5b4a"


Edit = Callable[[dict[str, Any]], None]


def alpha_wheel(data: dict[str, Any]) -> dict[str, Any]:
    wheel: dict[str, Any] = data["packages"][0]["wheels"][0]
    return wheel


def _set(key: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        alpha_wheel(data)[key] = value

    return edit


def _lock_version(data: dict[str, Any]) -> None:
    data["lock-version"] = "2.0"


def _no_created_by(data: dict[str, Any]) -> None:
    del data["created-by"]


def _wheels_and_vcs(data: dict[str, Any]) -> None:
    data["packages"][0]["vcs"] = {"type": "git", "url": "https://g/x", "commit-id": "0" * 40}


def _no_url_no_path(data: dict[str, Any]) -> None:
    del alpha_wheel(data)["url"]


def _version_disagrees(data: dict[str, Any]) -> None:
    data["packages"][0]["version"] = "1.1"


def _name_disagrees(data: dict[str, Any]) -> None:
    data["packages"][0]["name"] = "alphabet"


def _path_escapes(data: dict[str, Any]) -> None:
    data["packages"][1]["wheels"][0]["path"] = f"wheels/../../{B_WHEEL}"


def _two_files_one_name(data: dict[str, Any]) -> None:
    other = "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    data["packages"][0]["wheels"].append(
        {"name": other, "url": f"https://example.org/{other}", "hashes": {"sha256": SHA_B}}
    )
    data["tool"]["wheelhouse"]["targets"][0]["artifacts"].append(other)


def _two_entries_one_name(data: dict[str, Any]) -> None:
    """A lock of another tool (no [tool.wheelhouse]) whose markers select alpha twice."""
    del data["tool"]
    data["packages"].append(copy.deepcopy(data["packages"][0]))
    data["packages"][-1]["version"] = "1.0.post1"
    alpha_wheel({"packages": [data["packages"][-1]]})["name"] = "alpha-1.0.post1-py3-none-any.whl"


def _requires_python(data: dict[str, Any]) -> None:
    del data["tool"]
    data["requires-python"] = ">=3.99"


def _package_requires_python(data: dict[str, Any]) -> None:
    del data["tool"]
    data["packages"][0]["requires-python"] = "<3"


LOCK_CASES: dict[str, tuple[Edit, type[WheelhouseError], tuple[str, ...]]] = {
    "unsupported-lock-version": (_lock_version, LockError, ("lock-version '2.0'", "regenerate")),
    "missing-created-by": (_no_created_by, LockError, ("created-by", "regenerate")),
    "empty-hashes": (_set("hashes", {}), LockError, ("'alpha' 1.0", "hash", "regenerate")),
    "hashes-not-a-table": (_set("hashes", "abc"), LockError, ("'alpha' 1.0", "hashes", "fix")),
    "md5-only": (_set("hashes", {"md5": "0" * 32}), LockError, (A_WHEEL, "sha256", "regenerate")),
    "sha256-empty": (_set("hashes", {"sha256": ""}), LockError, (A_WHEEL, "''", "regenerate")),
    "sha256-short": (_set("hashes", {"sha256": "ab12"}), LockError, (A_WHEEL, "'ab12'")),
    "sha256-not-hex": (
        _set("hashes", {"sha256": "g" * 64}),
        LockError,
        (A_WHEEL, "64 hex digits", "regenerate"),
    ),
    "wheels-and-vcs": (_wheels_and_vcs, LockError, ("'alpha' 1.0", "vcs", "regenerate")),
    "neither-url-nor-path": (_no_url_no_path, LockError, ("'alpha' 1.0", "path or url")),
    "filename-version-disagrees": (_version_disagrees, LockError, (A_WHEEL, "'1.1'", "fix")),
    "filename-name-disagrees": (_name_disagrees, LockError, (A_WHEEL, "alphabet", "fix")),
    "two-files-for-one-name": (
        _two_files_one_name,
        LockError,
        ("two files for alpha", A_WHEEL, "regenerate"),
    ),
    "two-entries-for-one-name": (
        _two_entries_one_name,
        SelectionError,
        ("'alpha'", "packages[2]", "re-lock"),
    ),
    "credentials-in-url": (
        _set("url", f"https://user:{TOKEN}@example.org/files/{A_WHEEL}"),
        LockError,
        (A_WHEEL, "credentials", "netrc or WHEELHOUSE_AUTH"),
    ),
    "token-in-url": (
        _set("url", f"https://{TOKEN}@example.org/files/{A_WHEEL}"),
        LockError,
        (A_WHEEL, "credentials", "remove"),
    ),
    "path-escapes": (_path_escapes, LockError, (B_WHEEL, "escapes", "keep local files")),
    "requires-python-excludes-interpreter": (
        _requires_python,
        SelectionError,
        (">=3.99", "use a matching interpreter"),
    ),
    "package-requires-python-excludes-interpreter": (
        _package_requires_python,
        SelectionError,
        ("'<3'", "'alpha'", "re-lock"),
    ),
}


@pytest.mark.parametrize("command", ["fetch", "install"])
@pytest.mark.parametrize("case", sorted(LOCK_CASES))
def test_bad_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    edit, error, needles = LOCK_CASES[case]
    data = good_lock()
    edit(data)
    lock = write_lock(tmp_path / "pylock.toml", data)
    dest = tmp_path / "out" / "dest"
    if command == "fetch":
        outcome = run_cli(capsys, "fetch", lock, "-d", dest)
    else:
        wheelhouse = tmp_path / "wh"
        wheelhouse.mkdir()
        outcome = run_cli(capsys, "install", lock, "--wheelhouse", wheelhouse, "--prefix", dest)
    message = assert_error(outcome, error, *needles)
    assert TOKEN not in message  # a credential in the lock is never echoed
    assert str(lock) in message
    assert_absent(dest)


def test_missing_and_unparsable_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    outcome = run_cli(capsys, "fetch", missing, "-d", tmp_path / "wh")
    assert_error(outcome, LockError, str(missing), "wheelhouse lock")
    bad = tmp_path / "pylock.toml"
    bad.write_text("lock-version = \n")
    outcome = run_cli(capsys, "fetch", bad, "-d", tmp_path / "wh")
    assert_error(outcome, LockError, str(bad), "not valid TOML")
    assert_absent(tmp_path / "wh")


def test_bad_lock_through_a_real_process(tmp_path: Path) -> None:
    data = good_lock()
    _set("url", f"https://user:{TOKEN}@example.org/files/{A_WHEEL}")(data)
    lock = write_lock(tmp_path / "pylock.toml", data)
    proc = run_module("fetch", lock, "-d", tmp_path / "wh")
    message = assert_error_line(proc.returncode, proc.stderr, 1, A_WHEEL, "credentials")
    assert TOKEN not in proc.stderr + proc.stdout and TOKEN not in message
    assert proc.stdout == ""
    assert_absent(tmp_path / "wh")


# --- `wheelhouse lock` itself ------------------------------------------------------------------


@pytest.fixture
def index(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> IndexServer:
    root = tmp_path / "index"
    make_wheel(root, "alpha", "1.0", requires=["beta"])
    make_wheel(root, "beta", "1.0")
    old = make_wheel(root, "oldie", "1.0", requires_python="<3.11")
    return index_server_factory(root, requires_python={old.name: "<3.11"})


def test_target_outside_requires_python_fails_and_keeps_the_old_lock(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pylock.toml"
    out.write_bytes(b"# the previous lock\n")
    outcome = run_cli(
        capsys, "lock", "oldie", "--python-version", TARGET.version_string, "--index-url",
        index.simple_url, "-o", out,
    )  # fmt: skip
    assert_error(outcome, ResolutionError, TARGET.name, "oldie", "check")
    assert out.read_bytes() == b"# the previous lock\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "pylock.toml"]


def test_output_in_a_missing_directory_fails_before_resolving(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.clear_requests()
    out = tmp_path / "nowhere" / "pylock.toml"
    outcome = run_cli(capsys, "lock", "oldie", "--index-url", index.simple_url, "-o", out)
    assert_error(outcome, UsageError, "nowhere", "does not exist")
    assert not index.requests
    assert not (tmp_path / "nowhere").exists()


def test_writing_the_lock_twice_gives_identical_bytes(index: IndexServer, tmp_path: Path) -> None:
    """Two real processes, from different working directories, into different files."""
    outs = [tmp_path / "one" / "pylock.toml", tmp_path / "two" / "pylock.toml"]
    for out in outs:
        out.parent.mkdir()
        proc = run_module("lock", "alpha", "--index-url", index.simple_url, "-o", out)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    again = run_module("lock", "alpha", "--index-url", index.simple_url, "-o", outs[0])
    assert again.returncode == 0, again.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert [p.name for p in outs[0].parent.iterdir()] == ["pylock.toml"]  # no temp file left


def test_fetch_and_install_of_a_written_lock_succeed(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control for the cases above: the same commands on a good lock exit 0 silently."""
    out = tmp_path / "pylock.toml"
    assert_ok(run_cli(capsys, "lock", "alpha", "--index-url", index.simple_url, "-o", out))
    outcome = run_cli(capsys, "fetch", out, "-d", tmp_path / "wh")
    assert_ok(outcome)
    assert outcome.err == outcome.out == ""
    assert_ok(run_cli(capsys, "install", out, "--wheelhouse", tmp_path / "wh", "--prefix",
                      tmp_path / "env"))  # fmt: skip
    assert (tmp_path / "env" / "bin" / "python").exists()
