"""Plone 6 end to end: the committed ``examples/plone/pylock.toml`` built with real ``nix-build``
(one wheelhouse derivation, one env derivation), a WSGI instance made with the env's
``mkwsgiinstance``, served by its ``runwsgi`` on a loopback port, a Plone site created over HTTP
(plone.distribution's REST service ``POST /@sites``) and its front page fetched.

Slow (the first build downloads ~70 MB of wheels from PyPI and installs 27,000 files), so it is
marked ``slow``, ``integration`` and ``network``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, require

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.network]

EXAMPLE = ROOT / "examples" / "plone"
AUTH = "Basic " + base64.b64encode(b"admin:admin").decode()
SITE_ID = "wheelhouse"
SITE_TITLE = "Wheelhouse Plone Check"

BUILD_TIMEOUT = 1800  # a cold build fetches 242 wheels from PyPI
START_TIMEOUT = 240  # Zope loads every package's ZCML before it serves
REQUEST_TIMEOUT = 300  # creating a site runs all of Plone's GenericSetup profiles

# Python files in Plone that are not valid Python (skin scripts, test fixtures): the env build
# must leave them without bytecode and only warn.
INVALID_PY = [
    "Products/CMFPlone/skins/plone_scripts/unique.py",
    "Products/CMFCore/tests/fake_skins/fake_skin/test1.py",
    "App/tests/fixtures/error.py",
]


@pytest.fixture(scope="module")
def plone_env() -> Path:
    require("nix-build")
    env = dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
    built = subprocess.run(
        [
            "nix-build",
            str(EXAMPLE),
            "-A",
            "env",
            "--no-out-link",
            "--option",
            "substituters",
            "",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-5000:]
    # Only warnings: nothing else the install printed may be an error.
    assert not [line for line in built.stderr.splitlines() if line.startswith("error")]
    return Path(built.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


@contextmanager
def serving(
    env: Path, tmp_path: Path, rootfs: Path | None = None, environ: dict[str, str] | None = None
) -> Iterator[str]:
    """A running Plone instance made with ``env``'s ``mkwsgiinstance`` and served by its
    ``runwsgi`` on a free loopback port; its base URL. With ``rootfs`` (an unpacked image that
    holds ``env``), both run inside it with ``chroot``, with ``environ`` (the image's ``Env``)
    as their whole environment, as a container runtime would start them."""
    wrap = [] if rootfs is None else [shutil.which("chroot") or "/usr/sbin/chroot", str(rootfs)]
    inside = tmp_path / "instance" if rootfs is None else Path("/instance")
    instance = inside if rootfs is None else rootfs / "instance"
    subprocess.run(
        [*wrap, env / "bin" / "mkwsgiinstance", "-d", inside, "-u", "admin:admin"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=environ,
    )
    ini = instance / "etc" / "zope.ini"
    port = free_port()
    text, n = re.subn(r"(?m)^port = \d+$", f"port = {port}", ini.read_text())
    assert n == 1, f"no port line in {ini}"
    text, n = re.subn(r"(?m)^host = .*$", "host = 127.0.0.1", text)
    assert n == 1, f"no host line in {ini}"
    ini.write_text(text)
    log = tmp_path / "runwsgi.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*wrap, env / "bin" / "runwsgi", inside / "etc" / "zope.ini"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            start_new_session=True,
            env=environ,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"runwsgi exited with {proc.returncode}:\n{log_tail(log)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Plone did not listen within {START_TIMEOUT} s:\n{log_tail(log)}")
            time.sleep(1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture
def server(plone_env: Path, tmp_path: Path) -> Iterator[str]:
    with serving(plone_env, tmp_path) as base:
        yield base


def test_env_is_one_site_packages_fit_for_its_interpreter(plone_env: Path) -> None:
    assert [p.name for p in (plone_env / "lib").iterdir()] == ["python3.11"]
    site = plone_env / "lib" / "python3.11" / "site-packages"
    for rel in INVALID_PY:
        src = site / rel
        assert src.is_file(), rel
        assert not list((src.parent / "__pycache__").glob(src.stem + ".*.pyc")), rel
    # Every installed distribution accepts the interpreter the env runs on (a lock resolved on
    # a newer 3.11.x could otherwise pick wheels that break on the build's 3.11).
    probe = (
        "import platform, json\n"
        "from importlib.metadata import distributions\n"
        "from packaging.specifiers import SpecifierSet\n"
        "v = platform.python_version()\n"
        "names = [d.metadata['Name'] for d in distributions()]\n"
        "bad = [f\"{d.metadata['Name']} {d.version} needs {d.metadata['Requires-Python']}\"\n"
        "       for d in distributions() if d.metadata['Requires-Python'] and not\n"
        "       SpecifierSet(d.metadata['Requires-Python']).contains(v, prereleases=True)]\n"
        "print(json.dumps([v, len(names), bad]))\n"
    )
    out = subprocess.run(
        [plone_env / "bin" / "python", "-I", "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    version, count, bad = json.loads(out.stdout)
    assert count == 242
    assert bad == [], f"Python {version}: {bad}"


def test_plone_site_is_created_and_served(server: str) -> None:
    create_and_fetch_site(server)


def create_and_fetch_site(server: str) -> None:
    """Create a Classic UI site over plone.distribution's REST service and fetch its page."""
    status, body = request(
        f"{server}/@sites",
        data=json.dumps(
            {
                "distribution": "classic",
                "site_id": SITE_ID,
                "title": SITE_TITLE,
                "description": "built by wheelhouse",
                "default_language": "en",
                "portal_timezone": "UTC",
                "setup_content": False,
            }
        ).encode(),
        headers={
            "Authorization": AUTH,
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    )
    assert status == 200, body[-3000:]
    created = json.loads(body)
    assert created["id"] == SITE_ID
    assert created["@type"] == "Plone Site"

    status, page = request(f"{server}/{SITE_ID}")
    assert status == 200, page[-3000:]
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title is not None, page[:3000]
    assert SITE_TITLE in title.group(1)
    assert "plone" in page.lower()


def test_plone_image_unpacked_serves_a_site(plone_env: Path, tmp_path: Path) -> None:
    """examples/plone's ``image`` target, unpacked with umoci: the same site, served by the
    env's runwsgi inside the image's root filesystem (chroot), the host interpreter added as
    extra paths."""
    from imagetools import chroot_run, host_python_paths, image_layers, umoci_unpack

    options = tmp_path / "image.json"
    options.write_text(json.dumps({"extraPaths": host_python_paths(plone_env)}))
    built = subprocess.run(
        ["nix-build", str(EXAMPLE), "-A", "image", "--no-out-link", "--option", "substituters", "",
         "--arg", "imageOptions", f"builtins.fromJSON (builtins.readFile {options})"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        env=dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt"),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-5000:]
    oci = Path(built.stdout.strip().splitlines()[-1])
    layers = image_layers(oci)
    assert len(layers) == 100  # 242 packages: the largest alone, the rest in name buckets
    assert layers[0][0] == "extra paths" and layers[-1][0].startswith("top")
    rootfs = umoci_unpack(oci, "6.2", tmp_path / "bundle")
    ran = chroot_run(rootfs, f"{plone_env}/bin/python", "-c", "import Products.CMFPlone")
    assert ran.returncode == 0, ran.stderr[-3000:]
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    environ = dict(item.split("=", 1) for item in config["process"]["env"])
    with serving(plone_env, tmp_path, rootfs, environ) as base:
        create_and_fetch_site(base)
