"""Reading locks: every malformed input is one LockError naming the file and the culprit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from contract import A_WHEEL, ADVICE, B_WHEEL, SHA_A, SHA_B, good_lock

from wheelhouse import lockfile
from wheelhouse.errors import LockError, SelectionError
from wheelhouse.targets import make_target


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "pylock.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_good_lock_gives_the_target_artifacts(tmp_path: Path) -> None:
    lock = lockfile.load(write(tmp_path, good_lock()))
    target = lockfile.choose_target(lock, None)
    arts = lockfile.artifacts_for(lock, target)
    assert [(a.filename, a.sha256, a.kind) for a in arts] == [
        (A_WHEEL, SHA_A, "wheel"),
        (B_WHEEL, SHA_B, "wheel"),
    ]
    assert arts[0].url and arts[0].size == 10 and arts[1].path == f"wheels/{B_WHEEL}"


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(good_lock())
    *parents, last = path.split("/")
    node: Any = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


BAD = {
    "unsupported lock-version": (mutate("lock-version", "2.0"), "lock-version"),
    "missing created-by": (mutate("created-by", KeyError), "created-by"),
    "empty hashes": (mutate("packages/0/wheels/0/hashes", {}), "hash"),
    "no sha256": (mutate("packages/0/wheels/0/hashes", {"md5": "0" * 32}), "alpha-1.0"),
    "malformed sha256": (mutate("packages/0/wheels/0/hashes", {"sha256": "xyz"}), "'xyz'"),
    "wheels and vcs": (
        mutate("packages/0/vcs", {"type": "git", "url": "https://g/x", "commit-id": "0" * 40}),
        "alpha",
    ),
    "neither url nor path": (mutate("packages/0/wheels/0/url", KeyError), "path"),
    "filename disagrees": (mutate("packages/0/version", "1.1"), A_WHEEL),
    "credentials in url": (
        mutate("packages/0/wheels/0/url", f"https://user:tok@example.org/{A_WHEEL}"),
        "credentials",
    ),
    "path escaping": (mutate("packages/1/wheels/0/path", f"../../{B_WHEEL}"), "escapes"),
    "target names unknown file": (
        mutate("tool/wheelhouse/targets/0/artifacts", [A_WHEEL, "gamma-1-py3-none-any.whl"]),
        "gamma",
    ),
    "bad tool format": (mutate("tool/wheelhouse/lock-format", 99), "lock-format"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_locks_fail_with_one_clear_error(tmp_path: Path, case: str) -> None:
    data, needle = BAD[case]
    path = write(tmp_path, data)
    with pytest.raises(LockError) as err:
        lock = lockfile.load(path)
        lockfile.artifacts_for(lock, lockfile.choose_target(lock, None))
    message = str(err.value)
    assert str(path) in message and needle in message
    assert "\n" not in message


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text("lock-version = \n")
    with pytest.raises(LockError, match="not valid TOML"):
        lockfile.load(path)
    with pytest.raises(LockError, match="no such lock file"):
        lockfile.load(tmp_path / "missing.toml")


def test_two_files_for_one_package_in_a_target(tmp_path: Path) -> None:
    data = good_lock()
    other = "alpha-1.0-cp311-cp311-linux_x86_64.whl"
    data["packages"][0]["wheels"].append(
        {"name": other, "url": f"https://example.org/{other}", "hashes": {"sha256": SHA_B}}
    )
    data["tool"]["wheelhouse"]["targets"][0]["artifacts"].append(other)
    lock = lockfile.load(write(tmp_path, data))
    with pytest.raises(LockError, match="two files for alpha"):
        lockfile.artifacts_for(lock, lockfile.choose_target(lock, None))


def test_unknown_and_ambiguous_targets(tmp_path: Path) -> None:
    data = good_lock()
    second = dict(
        data["tool"]["wheelhouse"]["targets"][0], name="cp399-x", **{"python-version": "3.99"}
    )
    data["tool"]["wheelhouse"]["targets"].append(second)
    lock = lockfile.load(write(tmp_path, data))
    with pytest.raises(LockError, match="no target 'nope'"):
        lockfile.choose_target(lock, "nope")
    assert lockfile.choose_target(lock, "cp399-x").python_version == "3.99"  # type: ignore[union-attr]


def test_standard_selection_for_locks_without_tool_table(tmp_path: Path) -> None:
    data = good_lock()
    del data["tool"]
    lock = lockfile.load(write(tmp_path, data))
    assert lockfile.choose_target(lock, None) is None
    assert [a.filename for a in lockfile.artifacts_for(lock, None)] == [A_WHEEL, B_WHEEL]
    data["requires-python"] = ">=3.99"
    lock = lockfile.load(write(tmp_path, data))
    with pytest.raises(SelectionError, match="requires-python"):
        lockfile.artifacts_for(lock, None)


def test_render_is_deterministic_and_valid() -> None:
    assert lockfile.render(good_lock()) == lockfile.render(copy.deepcopy(good_lock()))


def foreign(**extra_package: Any) -> dict[str, Any]:
    """good_lock() as another tool writes it (no [tool.wheelhouse]), plus one more package."""
    data = good_lock()
    del data["tool"]
    data["created-by"] = "uv"
    data["packages"].append({"name": "myapp", **extra_package})
    return data


def test_the_projects_own_directory_entry_is_the_project(tmp_path: Path) -> None:
    """uv exports a packaged project as `directory = { path = ".", editable = true }`."""
    lock = lockfile.load(write(tmp_path, foreign(directory={"path": ".", "editable": True})))
    assert lock.project is not None and lock.project.name == "myapp"
    assert [a.package for a in lockfile.artifacts_for(lock, None)] == ["alpha", "beta"]
    # Our own lock records it by name, so it is recognised wherever the lock is copied to.
    data = good_lock()
    data["packages"].append({"name": "myapp", "directory": {"path": "../somewhere"}})
    data["tool"]["wheelhouse"]["project"] = "myapp"
    lock = lockfile.load(write(tmp_path, data))
    assert lock.project is not None and lock.project.name == "myapp"
    assert "myapp" not in {a.package for a in lockfile.artifacts_for(lock, lock.targets[0])}


OTHER_SOURCES = {
    "another directory": (
        {"version": "1.0", "directory": {"path": "libs/helper"}},
        ["package myapp 1.0", "'libs/helper'", "make a wheel", "--no-emit-workspace"],
    ),
    "vcs": (
        {
            "version": "1.0",
            "vcs": {"type": "git", "url": "https://g.example/x.git", "commit-id": "0" * 40},
        },
        ["package myapp 1.0", "git", "https://g.example/x.git", "use a released version"],
    ),
}


@pytest.mark.parametrize("case", sorted(OTHER_SOURCES))
def test_other_sources_are_one_clear_error(tmp_path: Path, case: str) -> None:
    extra, needles = OTHER_SOURCES[case]
    path = write(tmp_path, foreign(**extra))
    with pytest.raises(LockError) as err:
        lockfile.load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and ADVICE.search(message)
    for needle in needles:
        assert needle in message, message


def test_foreign_locks_prefer_none_any_and_respect_environments(tmp_path: Path) -> None:
    """Files of another tool's lock are chosen like wheelhouse's own (a none-any wheel over a
    binary one, which the PEP 751 tag order alone would take); its environments are checked."""
    data = foreign(directory={"path": ".", "editable": True})
    binary = "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    data["packages"][0]["wheels"].append(
        {"name": binary, "url": f"https://example.org/{binary}", "hashes": {"sha256": SHA_B}}
    )
    target = make_target("3.11")
    lock = lockfile.load(write(tmp_path, data))
    assert [a.filename for a in lockfile.artifacts_for(lock, None, target)] == [A_WHEEL, B_WHEEL]
    data["environments"] = ['sys_platform == "win32"']
    lock = lockfile.load(write(tmp_path, data))
    with pytest.raises(SelectionError) as err:
        lockfile.artifacts_for(lock, None, target)
    message = str(err.value)
    assert "created by uv" in message and f"Python {target.full_version}" in message
    assert "re-lock" in message
