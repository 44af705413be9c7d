"""The lock stage end to end with real pip against a loopback index (offline, fast)."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
import sys
import tomllib
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import build_demo_index
from indexserver import IndexServer
from packaging.pylock import Pylock
from wheelmaker import make_wheel

from wheelhouse import nar
from wheelhouse.cli import main


@pytest.fixture
def demo(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> IndexServer:
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    return index_server_factory(root)


def lock(server: IndexServer, out: Path, *extra: str) -> dict[str, Any]:
    rc = main(
        [
            "lock",
            "alpha",
            "gamma",
            "epsilon",
            "--index-url",
            server.simple_url,
            "-o",
            str(out),
            *extra,
        ]
    )
    assert rc == 0
    return tomllib.loads(out.read_text())


def no_datetimes(value: Any) -> bool:
    if isinstance(value, dict):
        return all(no_datetimes(v) for v in value.values())
    if isinstance(value, list):
        return all(no_datetimes(v) for v in value)
    return not isinstance(value, datetime.date | datetime.time)


def chosen(data: dict[str, Any], target: int = 0) -> list[str]:
    return list(data["tool"]["wheelhouse"]["targets"][target]["artifacts"])


def test_lock_is_valid_deterministic_and_prefers_none_any(
    demo: IndexServer, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    data = lock(demo, out)
    Pylock.from_dict(data).validate()
    assert no_datetimes(data)
    first = out.read_bytes()
    lock(demo, out)
    assert out.read_bytes() == first
    assert chosen(data) == [
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "delta-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "epsilon-2.0-py3-none-any.whl",
        "gamma-1.0-py3-none-any.whl",
    ]
    assert "127.0.0.1" in data["packages"][0]["wheels"][0]["url"]


def test_prefer_binary_wheels_takes_pips_choice(demo: IndexServer, tmp_path: Path) -> None:
    data = lock(demo, tmp_path / "pylock.toml", "--prefer-binary-wheels")
    assert "gamma-1.0-cp311-cp311-manylinux_2_17_x86_64.whl" in chosen(data)


def test_two_pythons_in_one_lock(demo: IndexServer, tmp_path: Path) -> None:
    data = lock(
        demo, tmp_path / "pylock.toml", "--python-version", "3.11", "--python-version", "3.12"
    )
    names = [t["name"] for t in data["tool"]["wheelhouse"]["targets"]]
    assert names == ["cp311-linux-x86_64", "cp312-linux-x86_64"]
    assert "delta-1.0-cp312-cp312-manylinux_2_17_x86_64.whl" in chosen(data, 1)
    (delta,) = [p for p in data["packages"] if p["name"] == "delta"]
    assert len(delta["wheels"]) == 2
    hashes = {t["wheelhouse-nar-hash"] for t in data["tool"]["wheelhouse"]["targets"]}
    assert len(hashes) == 2
    Pylock.from_dict(data).validate()


def test_fetch_produces_the_locked_nar_hash_and_install_imports_everything(
    demo: IndexServer, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    data = lock(demo, out)
    wh = tmp_path / "wheelhouse"
    assert main(["fetch", str(out), "-d", str(wh), "--no-cache"]) == 0
    expected = data["tool"]["wheelhouse"]["targets"][0]["wheelhouse-nar-hash"]
    assert nar.sri(nar.nar_sha256(wh)) == expected
    nix_hash = subprocess.run(
        ["nix-hash", "--type", "sha256", "--base32", str(wh)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert nar.parse_hash(nix_hash) == nar.parse_hash(expected)
    prefix = tmp_path / "env"
    assert main(["install", str(out), "--wheelhouse", str(wh), "--prefix", str(prefix)]) == 0
    probe = (
        "import alpha, beta, gamma, delta, epsilon_pkg; print(gamma.KIND, delta.TAG, "
        "epsilon_pkg.LOADED)"
    )
    result = subprocess.run(
        [prefix / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["pure", "cp311-cp311-manylinux_2_17_x86_64", "1"]
    script = subprocess.run([prefix / "bin" / "alpha"], capture_output=True, text=True, check=True)
    assert script.stdout == "alpha says hi\n"


def test_a_pip_written_lock_fetches_and_installs(demo: IndexServer, tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "lock",
            "alpha",
            "--index-url",
            demo.simple_url,
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    wh, prefix = tmp_path / "wh", tmp_path / "env"
    assert main(["fetch", str(out), "-d", str(wh)]) == 0
    assert sorted(p.name for p in wh.iterdir()) == [
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
    ]
    assert main(["install", str(out), "--wheelhouse", str(wh), "--prefix", str(prefix)]) == 0
    subprocess.run([prefix / "bin" / "python", "-c", "import alpha, beta"], check=True)


def test_unresolvable_requirement_is_one_clear_error(
    demo: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pylock.toml"
    rc = main(["lock", "no-such-package", "--index-url", demo.simple_url, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert err.startswith("error: pip could not resolve") and "no-such-package" in err
    assert err.count("\n") == 1


# --- sdists and their build environments ----------------------------------------------------------


def test_lock_records_build_envs_as_build_only_pep751_packages(
    sdist_index: IndexServer, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    args = ["lock", "app", "tinybackend==2.0", "--no-binary", "app"]
    assert main([*args, "--index-url", sdist_index.simple_url, "-o", str(out)]) == 0
    first = out.read_bytes()
    assert main([*args, "--index-url", sdist_index.simple_url, "-o", str(out)]) == 0
    assert out.read_bytes() == first  # byte-identical, no datetimes
    data = tomllib.loads(first.decode())
    assert no_datetimes(data)
    (target,) = data["tool"]["wheelhouse"]["targets"]
    assert target["artifacts"] == ["app-1.0.tar.gz", "tinybackend-2.0-py3-none-any.whl"]
    # app's build env: its static requirement (tinybackend<2) plus what its backend asked for
    # (tinyhelper, only an sdist: it gets a build env of its own, with the newest tinybackend).
    assert target["build-artifacts"] == [
        "tinybackend-1.0-py3-none-any.whl",
        "tinyhelper-1.0.tar.gz",
    ]
    assert target["sdist-builds"] == {
        "app-1.0.tar.gz": ["tinybackend-1.0-py3-none-any.whl", "tinyhelper-1.0.tar.gz"],
        "tinyhelper-1.0.tar.gz": ["tinybackend-2.0-py3-none-any.whl"],
    }
    markers = {(p["name"], p["version"]): p.get("marker") for p in data["packages"]}
    assert markers == {
        ("app", "1.0"): None,
        ("tinybackend", "1.0"): "'wheelhouse-build' in dependency_groups",
        ("tinybackend", "2.0"): None,
        ("tinyhelper", "1.0"): "'wheelhouse-build' in dependency_groups",
    }
    # The NAR hash covers build-only files too: they are in the fixed-output wheelhouse.
    wh = tmp_path / "wh"
    assert main(["fetch", str(out), "-d", str(wh)]) == 0
    assert len(list(wh.iterdir())) == 4
    assert nar.sri(nar.nar_sha256(wh)) == target["wheelhouse-nar-hash"]

    # Without [tool.wheelhouse], a standard PEP 751 reader sees the runtime packages only.
    del data["tool"]
    pylock = Pylock.from_dict(data)
    pylock.validate()
    picked = sorted((p.name, str(p.version)) for p, _ in pylock.select())
    assert picked == [("app", "1.0"), ("tinybackend", "2.0")]


def test_build_dependency_cycle_is_a_clear_error(
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sdistmaker import make_backend_wheel, make_sdist, tiny_pyproject
    from wheelmaker import make_wheel

    root = tmp_path / "files"
    root.mkdir()
    make_backend_wheel(root)
    for name, other in (("ping", "pong"), ("pong", "ping")):
        py = tiny_pyproject(name, "1.0", requires=["tinybackend", other])
        make_sdist(root, name, "1.0", pyproject=py)
        make_wheel(root, name, "1.0")  # what pip resolves with; --no-binary takes the sdist
    server = index_server_factory(root)
    out = tmp_path / "pylock.toml"
    no_binary = ["--no-binary", "ping", "--no-binary", "pong"]
    rc = main(["lock", "ping", *no_binary, "--index-url", server.simple_url, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert "ping-1.0.tar.gz needs pong-1.0.tar.gz needs ping-1.0.tar.gz" in err
    assert "drop it from --no-binary" in err


def test_lock_for_a_named_interpreter_respects_its_micro_version(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> None:
    """The env's interpreter (Debian's 3.11.2 here) decides, not the one running wheelhouse."""
    from wheelmaker import make_wheel

    root = tmp_path / "files"
    root.mkdir()
    make_wheel(root, "picky", "1.0")
    make_wheel(root, "picky", "2.0", requires_python=">=3.11.5")
    server = index_server_factory(root)
    out = tmp_path / "pylock.toml"
    assert (
        main(
            [
                "lock",
                "picky",
                "--python",
                "/usr/bin/python3",
                "--index-url",
                server.simple_url,
                "-o",
                str(out),
            ]
        )
        == 0
    )
    data = tomllib.loads(out.read_text())
    assert chosen(data) == ["picky-1.0-py3-none-any.whl"]
    target = data["tool"]["wheelhouse"]["targets"][0]
    assert target["python-full-version"] == "3.11.2"


def test_each_page_is_read_once_and_pip_never_reaches_the_index(
    demo: IndexServer, tmp_path: Path
) -> None:
    """pip resolves against the loopback mirror: the index sees only wheelhouse, and each
    project page once (pip's read and the lock's own listing share it)."""
    demo.clear_requests()
    data = lock(demo, tmp_path / "pylock.toml")
    pages = [r for r in demo.requests if r.path.startswith("/simple/")]
    assert all("wheelhouse" in r.headers.get("user-agent", "") for r in demo.requests)
    assert sorted(r.path for r in pages) == sorted({r.path for r in pages})
    assert {f"/simple/{p['name']}/" for p in data["packages"]} <= {r.path for r in pages}


def test_files_listed_without_hashes_are_downloaded_once(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> None:
    """Plain HTML indexes and find-links pages give no hashes: the locker hashes each such file
    from ONE download, which the wheelhouse NAR hash then reads from the cache."""
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    server = index_server_factory(root, hashes=False, json_api=False)
    data = lock(server, tmp_path / "pylock.toml")
    wheels = {w["name"]: w for p in data["packages"] for w in p.get("wheels", [])}
    for name in chosen(data):
        assert (
            wheels[name]["hashes"]["sha256"]
            == hashlib.sha256((root / name).read_bytes()).hexdigest()
        )
    ours = [
        urllib.parse.unquote(r.path.rpartition("/")[2])
        for r in server.requests
        if r.path.startswith("/files/") and "wheelhouse" in r.headers.get("user-agent", "")
    ]
    assert ours, "the locker downloaded nothing itself: the test no longer covers hashless files"
    assert sorted(ours) == sorted(set(ours)), f"downloaded more than once: {sorted(ours)}"


def versions(data: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["version"] for p in data["packages"]}


def test_relock_keeps_the_previous_versions_and_downloads_only_new_files(
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "files"
    root.mkdir()
    make_wheel(root, "app", "1.0", requires=["lib"])
    make_wheel(root, "lib", "1.0")
    make_wheel(root, "tool", "1.0", requires=["lib"])
    server = index_server_factory(root)
    out = tmp_path / "pylock.toml"

    def relock(*args: str) -> dict[str, Any]:
        argv = ["lock", *args, "--index-url", server.simple_url, "-o", str(out)]
        assert main(argv) == 0
        return tomllib.loads(out.read_text())

    assert versions(relock("app")) == {"app": "1.0", "lib": "1.0"}
    make_wheel(root, "lib", "2.0")  # released after the first lock
    server.clear_requests()
    assert versions(relock("app", "tool")) == {"app": "1.0", "lib": "1.0", "tool": "1.0"}
    downloads = [r.path for r in server.requests if r.path.startswith("/files/")]
    assert downloads == ["/files/tool-1.0-py3-none-any.whl"]  # the rest is in the cache

    assert versions(relock("app", "tool", "-P", "lib"))["lib"] == "2.0"
    relock("app", "tool", "-U", "-P", "nothing")
    make_wheel(root, "lib", "3.0")
    make_wheel(root, "app", "2.0", requires=["lib"])
    assert versions(relock("app", "tool")) == {"app": "1.0", "lib": "2.0", "tool": "1.0"}
    assert versions(relock("app", "tool", "--upgrade")) == {
        "app": "2.0",
        "lib": "3.0",
        "tool": "1.0",
    }
    # A requirement the pins cannot meet: resolved afresh, and said so.
    relock("app==1.0", "tool")  # pins app 1.0 again
    capsys.readouterr()
    assert versions(relock("app>=2", "tool")) == {"app": "2.0", "lib": "3.0", "tool": "1.0"}
    assert "resolving afresh" in capsys.readouterr().err
