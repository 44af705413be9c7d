"""Real nix-build of the wheelhouse (fixed-output) and env derivations.

The interpreter inside Nix builds is the host's /usr/bin/python3: build users cannot read /root.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w
from conftest import HOST_PYTHON, ROOT, build_demo_index, require
from indexserver import IndexServer
from wheelmaker import make_wheel

from wheelhouse.cli import main
from wheelhouse.resolve import DEFAULT_INDEX

pytestmark = pytest.mark.integration

PROJECT_NIX = """
{{ python ? "{python}" }}:
(import {root}/nixlib).mkProject {{ lock = ./pylock.toml; inherit python; src = ./.; }}
"""


def nix_build(project: Path, attr: str, *extra: str) -> subprocess.CompletedProcess[str]:
    require("nix-build")
    return subprocess.run(
        [
            "nix-build",
            str(project),
            "-A",
            attr,
            "--no-out-link",
            "--option",
            "substituters",
            "",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def make_project(tmp_path: Path, lock_args: list[str]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "default.nix").write_text(PROJECT_NIX.format(python=HOST_PYTHON, root=ROOT))
    assert main(["lock", *lock_args, "-o", str(project / "pylock.toml")]) == 0
    return project


@pytest.fixture
def demo_project(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> tuple[Path, IndexServer]:
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    server = index_server_factory(root)
    project = make_project(
        tmp_path, ["alpha", "gamma", "epsilon", "--index-url", server.simple_url]
    )
    server.clear_requests()
    return project, server


def test_env_from_loopback_index_with_cycle_and_none_any(
    demo_project: tuple[Path, IndexServer],
) -> None:
    project, server = demo_project
    built = nix_build(project, "env")
    assert built.returncode == 0, built.stderr[-3000:]
    env = Path(built.stdout.strip().splitlines()[-1])
    probe = "import alpha, beta, gamma, delta, epsilon_pkg, sys; print(gamma.KIND, sys.prefix)"
    out = subprocess.run(
        [env / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["pure", str(env)]
    assert (
        subprocess.run([env / "bin" / "alpha"], capture_output=True, text=True, check=True).stdout
        == "alpha says hi\n"
    )
    # One site-packages for everything, and the wheels were fetched by the FOD, not the env.
    assert [p.name for p in (env / "lib").iterdir()] == ["python3.11"]
    fetched = sorted(r.path.rsplit("/", 1)[-1] for r in server.requests if r.path.endswith(".whl"))
    assert fetched == [
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "delta-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "epsilon-2.0-py3-none-any.whl",
        "gamma-1.0-py3-none-any.whl",
    ]
    # The wheelhouse is not in the env's runtime closure (only the interpreter and the env).
    closure = subprocess.run(
        ["nix-store", "-qR", str(env)], capture_output=True, text=True, check=True
    ).stdout
    assert "wheelhouse-cp311" not in closure


def test_lock_edited_without_new_hash_fails_the_build(
    demo_project: tuple[Path, IndexServer],
) -> None:
    """A stale fixed-output hash must never silently reuse an old store path."""
    project, server = demo_project
    assert nix_build(project, "wheelhouse").returncode == 0
    lock_path = project / "pylock.toml"
    data = tomllib.loads(lock_path.read_text())
    # Swap beta's wheel for another file (new bytes, new sha256) but keep the old NAR hash.
    other = make_wheel(
        server.root,
        "beta",
        "1.0",
        {"beta/__init__.py": "X = 2\n"},
        filename="beta-1.0-py3-none-any.whl",
    )
    (beta,) = [p for p in data["packages"] if p["name"] == "beta"]
    beta["wheels"][0]["hashes"]["sha256"] = hashlib.sha256(other.read_bytes()).hexdigest()
    beta["wheels"][0]["size"] = other.stat().st_size
    lock_path.write_text(tomli_w.dumps(data))
    built = nix_build(project, "wheelhouse")
    assert built.returncode != 0
    assert "wheelhouse-nar-hash of target cp311-linux-x86_64 is stale" in built.stderr


@pytest.mark.network
def test_env_for_requests_from_real_pypi(tmp_path: Path) -> None:
    project = make_project(tmp_path, ["requests", "--index-url", DEFAULT_INDEX])
    env_vars = dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
    built = subprocess.run(
        ["nix-build", str(project), "-A", "env", "--no-out-link", "--option", "substituters", ""],
        capture_output=True,
        text=True,
        env=env_vars,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    env = Path(built.stdout.strip().splitlines()[-1])
    out = subprocess.run(
        [
            env / "bin" / "python",
            "-c",
            "import requests, urllib3, idna, certifi, charset_normalizer; "
            "print(requests.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip()
