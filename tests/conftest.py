"""Shared fixtures: pip isolated from this machine's configuration, a private artifact cache per
test, and loopback indexes (tests/indexserver.py) serving wheels built on the fly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from indexserver import IndexServer, server_factory

ROOT = Path(__file__).resolve().parent.parent
HOST_PYTHON = "/usr/bin/python3"
"""Interpreter for Nix builds: build users cannot read /root, where pyenv's Python lives."""


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests must test the code, not the machine: no pip config, no extra indexes, own cache."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    for var in (
        "PIP_FIND_LINKS",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "WHEELHOUSE_AUTH",
        "NETRC",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WHEELHOUSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def download_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxies, credentials or caches from the developer's environment leak into a download
    test (``pytestmark = pytest.mark.usefixtures("download_env")``)."""
    for var in (
        "WHEELHOUSE_AUTH",
        "WHEELHOUSE_CACHE_DIR",
        "XDG_CACHE_HOME",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-such-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A download cache directory of this test's own (not yet created)."""
    return tmp_path / "cache"


@pytest.fixture
def index_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., IndexServer]]:
    with server_factory(lambda: tmp_path_factory.mktemp("index")) as factory:
        yield factory


@pytest.fixture
def index_server(index_server_factory: Callable[..., IndexServer]) -> IndexServer:
    return index_server_factory()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def require(tool: str) -> str:
    """Path of an external tool the suite installs (scripts/setup); its absence is a failure."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; run scripts/setup")
    return path


BINARY_TAG = "cp311-cp311-manylinux_2_17_x86_64"


def build_demo_index(root: Path, token: str) -> None:
    """The acceptance set for the core engine, as wheels in ``root``:

    * ``alpha`` and ``beta`` require each other (a cycle); alpha has a console script;
    * ``gamma`` has a ``py3-none-any`` AND a binary wheel (the none-any one must be chosen);
    * ``delta`` has only binary wheels (cp311 and cp312), so each target takes its own;
    * ``epsilon`` ships a ``.pth`` file, as Paste and setuptools do.

    ``token`` goes into alpha's bytes so each test session makes a new wheelhouse hash, and the
    Nix fixed-output derivation is really built, not reused from an earlier run.
    """
    from wheelmaker import make_wheel

    make_wheel(
        root,
        "alpha",
        "1.0",
        {
            "alpha/__init__.py": f"TOKEN = {token!r}\n",
            "alpha/cli.py": "def main():\n    print('alpha says hi')\n",
        },
        requires=["beta==1.0"],
        entry_points={"console_scripts": {"alpha": "alpha.cli:main"}},
    )
    make_wheel(root, "beta", "1.0", requires=["alpha>=1"])
    make_wheel(root, "gamma", "1.0", {"gamma/__init__.py": "KIND = 'pure'\n"}, requires=["delta"])
    make_wheel(
        root,
        "gamma",
        "1.0",
        {"gamma/__init__.py": "KIND = 'binary'\n"},
        tag=BINARY_TAG,
        requires=["delta"],
    )
    for tag in (BINARY_TAG, "cp312-cp312-manylinux_2_17_x86_64"):
        make_wheel(root, "delta", "1.0", {"delta/__init__.py": f"TAG = {tag!r}\n"}, tag=tag)
    make_wheel(
        root,
        "epsilon",
        "2.0",
        {
            "epsilon_pkg/__init__.py": "",
            "epsilon.pth": "import epsilon_pkg; epsilon_pkg.LOADED = 1\n",
        },
    )


@pytest.fixture
def sample_index(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> IndexServer:
    """The demo wheels (build_demo_index) and tinybackend: what the sample project of
    test_project.py needs, to lock and build it offline."""
    import uuid

    from sdistmaker import make_backend_wheel

    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    make_backend_wheel(root)
    return index_server_factory(root)


@pytest.fixture
def sdist_index(index_server_factory: Callable[..., IndexServer], tmp_path: Path) -> IndexServer:
    """The sdist demo index (sdistmaker.build_sdist_index): sdists with build environments."""
    from sdistmaker import build_sdist_index

    root = tmp_path / "sdist-files"
    root.mkdir()
    build_sdist_index(root)
    return index_server_factory(root)
