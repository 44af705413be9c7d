"""wheelhouse/_offline_hook.py: the module ``build.install_offline_hook`` puts into every build
environment, run the way a build runs it (a ``.pth`` in a site directory, in a new interpreter).

The end-to-end proof - a backend that downloads fails naming its package - is
tests/test_build.py's ``test_network_access_during_a_build_fails_naming_the_package``.
"""

from __future__ import annotations

import ast
import errno
import socket
import subprocess
import sys
from pathlib import Path

from wheelhouse import _offline_hook, build

PROBE = """\
import site, socket, sys, urllib.parse
site.addsitedir(sys.argv[1])
proxy = urllib.parse.urlsplit(sys.argv[2])
for target in [("example.org", 443), (proxy.hostname, proxy.port)]:
    try:
        socket.create_connection(target, timeout=5)
    except OSError as e:
        print(e)
try:
    socket.socket().connect(("192.0.2.1", 443))  # a numeric address: no name lookup to stop
except OSError as e:
    print(e)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
socket.create_connection(s.getsockname(), timeout=5).close(); print("loopback ok")
"""


def probe(site: Path) -> list[str]:
    return subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(site), build.BLACKHOLE_PROXY],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def test_installed_hook_is_the_source_file_and_blocks_all_but_loopback(tmp_path: Path) -> None:
    build.install_offline_hook(tmp_path, "demo")
    installed = tmp_path / "_wheelhouse_offline.py"
    assert installed.read_bytes() == Path(_offline_hook.__file__).read_bytes()
    out = probe(tmp_path)
    assert len(out) == 4 and out[3] == "loopback ok"
    assert out[0] == (
        f"[Errno {socket.EAI_NONAME}] network access is not allowed while building demo "
        "(wheelhouse builds sdists offline from the locked wheelhouse; lock what the build "
        "downloads as a build requirement, or lock a wheel of demo)"
    )
    # The address the build's proxies point at (loopback, but nothing a build may reach) and a
    # plain connect() are refused with the same words.
    words = out[0].removeprefix(f"[Errno {socket.EAI_NONAME}] ")
    assert out[1:3] == [f"[Errno {errno.ECONNREFUSED}] {words}"] * 2


def test_without_its_package_file_the_hook_still_blocks(tmp_path: Path) -> None:
    build.install_offline_hook(tmp_path, "demo")
    (tmp_path / _offline_hook.PACKAGE_FILE).unlink()
    out = probe(tmp_path)
    assert "network access is not allowed while building this package" in out[0]
    assert out[3] == "loopback ok"


def test_importing_the_module_changes_nothing() -> None:
    """wheelhouse itself imports it (build.BLACKHOLE_PROXY): only ``install()`` patches."""
    code = (
        "import socket; before = (socket.socket.connect, socket.getaddrinfo)\n"
        "import wheelhouse._offline_hook, wheelhouse.build\n"
        "print(before == (socket.socket.connect, socket.getaddrinfo))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == "True\n"
    assert socket.getaddrinfo.__module__ == "socket"


def test_source_keeps_to_python_3_8_syntax() -> None:
    """Build environments may run an older interpreter than wheelhouse's own."""
    source = Path(_offline_hook.__file__).read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
