"""Network isolation of ``build-sdists`` (wheelhouse/isolation.py, wheelhouse/_netns.py): real
builds of a real sdist whose backend tries to get out the two ways the advisory block cannot stop,
``_socket`` directly and a ``python -S`` subprocess.

The canary is a TCP listener of this test process on all host addresses (so on the host's
``127.0.0.1``, which the advisory hook allows, and on a non-loopback address where the host has
one). In a namespace the backend must see its connections refused or unreachable and the canary
must record nothing; with ``--isolation advisory`` (the control) the canary records the backend's
connections, which proves the canary works and that the advisory block is only advice. The
no-namespace fallback is real too: the CLI runs in a user namespace whose namespace limits
(``/proc/sys/user/max_*_namespaces``, per user namespace) are set to 0.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require
from contract import assert_error, run_cli
from indexserver import IndexServer
from sdistmaker import make_backend_wheel, make_sdist

from wheelhouse import isolation
from wheelhouse.cli import main
from wheelhouse.errors import UsageError

pytestmark = pytest.mark.integration

PROBE_BACKEND = r'''
"""Tries to reach every address in $CANARY, records what it saw, then builds with tinybackend."""
import errno
import os
import socket
import subprocess
import sys

import _socket
import tinybackend
from tinybackend import get_requires_for_build_sdist, get_requires_for_build_wheel

CHILD = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, repr(e)))
"""


SETNS = """
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
except OSError as e:
    print(errno.errorcode[e.errno]); sys.exit()
if libc.setns(fd, 0x40000000) != 0:
    print(errno.errorcode[ctypes.get_errno()]); sys.exit()
socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10).close()
print("joined")
"""


def _direct(host, port):
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect((host, port))
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, repr(e))
    finally:
        s.close()


def _own_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=10):
            return "ok"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    seen = {"own loopback": _own_loopback()}
    for address in filter(None, os.environ.get("CANARY", "").split(",")):  # unset: pip, at lock
        host, port = address.rsplit(":", 1)
        seen["_socket " + host] = _direct(host, int(port))
        child = subprocess.run(
            [sys.executable, "-S", "-c", CHILD, host, port], capture_output=True, text=True
        )
        seen["python -S " + host] = (child.stdout + child.stderr).strip()
    if os.environ.get("CANARY_NETNS"):  # rejoin the host's network namespace, then connect
        host, port = os.environ["CANARY"].split(",")[0].rsplit(":", 1)
        child = subprocess.run(
            [sys.executable, "-S", "-c", SETNS, os.environ["CANARY_NETNS"], host, port],
            capture_output=True,
            text=True,
        )
        seen["setns"] = (child.stdout + child.stderr).strip()
    with open(os.path.join("netprobe", "_seen.py"), "w") as f:
        f.write("SEEN = " + repr(seen) + "\n")
    return tinybackend.build_wheel(wheel_directory, config_settings, metadata_directory)
'''


@dataclass(frozen=True)
class Project:
    lock: Path
    wheelhouse: Path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("files")
    make_backend_wheel(root)
    make_sdist(
        root,
        "netprobe",
        "1.0",
        {"netprobe/__init__.py": "", "_backend/probebackend.py": PROBE_BACKEND},
        pyproject={
            "build-system": {
                "requires": ["tinybackend"],
                "build-backend": "probebackend",
                "backend-path": ["_backend"],
            }
        },
    )
    base = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp, IndexServer(root) as server:
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("WHEELHOUSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
            mp.delenv(var, raising=False)
        lock = base / "pylock.toml"
        args = ["netprobe", "--no-binary", "netprobe", "--index-url", server.simple_url]
        assert main(["lock", *args, "-o", str(lock)]) == 0
        assert main(["fetch", str(lock), "-d", str(base / "wh")]) == 0
        yield Project(lock, base / "wh")


class Canary:
    """Accepts and records every TCP connection on all host addresses, on one port."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("0.0.0.0", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
        self.sock.close()
        self.thread.join()


def host_address() -> str | None:
    """This host's non-loopback IPv4 address (the source of its default route), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # UDP: picks a route, sends nothing
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Canary, list[str]]]:
    c = Canary()
    hosts = ["127.0.0.1"] + [a for a in [host_address()] if a]
    monkeypatch.setenv("CANARY", ",".join(f"{h}:{c.port}" for h in hosts))
    monkeypatch.setenv("CANARY_NETNS", f"/proc/{os.getpid()}/ns/net")
    try:
        yield c, hosts
    finally:
        c.close()


def seen(out: Path) -> dict[str, str]:
    with zipfile.ZipFile(out / "netprobe-1.0-py3-none-any.whl") as zf:
        text = zf.read("netprobe/_seen.py").decode()
    value = ast.literal_eval(text.removeprefix("SEEN = "))
    assert isinstance(value, dict)
    return value


def build_cmd(p: Project, out: Path, *extra: str) -> list[str]:
    return ["build-sdists", str(p.lock), "-w", str(p.wheelhouse), "-o", str(out), *extra]


def mode_line(err: str) -> str:
    """The mode line, printed once after the builds (so that a failure stays one error line)."""
    *_, line, last = err.splitlines()
    assert last.startswith("built 1 wheels into "), err
    return line


NAMESPACE_LINE = (
    "wheelhouse: building sdists with network isolation: namespace (new user and network "
    "namespaces)"
)


def test_namespace_keeps_socket_and_python_s_off_the_host(
    project: Project,
    tmp_path: Path,
    canary: tuple[Canary, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    c, hosts = canary
    out = tmp_path / "out"
    assert main(build_cmd(project, out, "--isolation", "namespace")) == 0
    assert mode_line(capsys.readouterr().err) == NAMESPACE_LINE
    assert c.peers == []
    got = seen(out)
    # Its own loopback is up; the host's 127.0.0.1 is another machine's, nobody listens there.
    assert got.pop("own loopback") == "ok"
    # No capability outside: the host's namespace cannot even be opened (as root: EACCES).
    assert got.pop("setns") in ("EACCES", "EPERM")
    expected = {}
    for host in hosts:
        answer = "ECONNREFUSED" if host == "127.0.0.1" else "ENETUNREACH"
        expected[f"_socket {host}"] = expected[f"python -S {host}"] = answer
    assert got == expected


def test_advisory_mode_is_reported_and_only_advice(
    project: Project,
    tmp_path: Path,
    canary: tuple[Canary, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    c, hosts = canary
    out = tmp_path / "out"
    assert main(build_cmd(project, out, "--isolation", "advisory")) == 0
    assert mode_line(capsys.readouterr().err) == (
        "wheelhouse: building sdists with network isolation: advisory (--isolation advisory)"
    )
    got = seen(out)
    # The control: both escapes reach the canary on every address; the hook itself is there
    # (the backend's own `socket` module refuses non-loopback addresses, not tested here).
    assert got.pop("setns") == "joined"  # it is in the host's namespace already
    assert {k: v for k, v in got.items() if k != "own loopback"} == {
        f"{how} {host}": "connected" for host in hosts for how in ("_socket", "python -S")
    }
    assert sorted(c.peers) == sorted([*(2 * hosts), "127.0.0.1"])


def run_limited(
    project: Project, out: Path, limits: dict[str, int], *extra: str
) -> subprocess.CompletedProcess[str]:
    """The CLI in a user namespace of its own whose namespace limits are ``limits``."""
    writes = "".join(f"echo {n} > /proc/sys/user/max_{k}_namespaces && " for k, n in limits.items())
    script = writes + 'exec "$@"'
    cmd = [sys.executable, "-m", "wheelhouse", *build_cmd(project, out, *extra)]
    return subprocess.run(
        [require("unshare"), "--user", "--map-root-user", "sh", "-c", script, "sh", *cmd],
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_namespaces_auto_falls_back_and_namespace_is_an_error(
    project: Project, tmp_path: Path, canary: tuple[Canary, list[str]]
) -> None:
    no_ns = {"user": 0, "net": 0}
    proc = run_limited(project, tmp_path / "out", no_ns)
    assert proc.returncode == 0, proc.stderr
    assert mode_line(proc.stderr) == (
        "wheelhouse: building sdists with network isolation: advisory (no user/network "
        "namespaces: user: unshare: namespace limit reached (/proc/sys/user/max_*_namespaces); "
        "net: unshare: namespace limit reached (/proc/sys/user/max_*_namespaces))"
    )
    proc = run_limited(project, tmp_path / "out2", no_ns, "--isolation", "namespace")
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: --isolation namespace: this system does not let wheelhouse ")
    assert "--isolation auto" in line
    assert not (tmp_path / "out2").exists()


def test_root_without_user_namespaces_gets_a_network_namespace(
    project: Project, tmp_path: Path, canary: tuple[Canary, list[str]]
) -> None:
    c, _ = canary
    proc = run_limited(project, tmp_path / "out", {"user": 0}, "--isolation", "namespace")
    assert proc.returncode == 0, proc.stderr
    assert mode_line(proc.stderr) == (
        "wheelhouse: building sdists with network isolation: namespace (network namespace only: "
        "a backend running as root could leave it)"
    )
    got = seen(tmp_path / "out")
    assert got["_socket 127.0.0.1"] == got["python -S 127.0.0.1"] == "ECONNREFUSED"
    # Root here is root of the user namespace around the CLI only: no way back to the host.
    assert got["setns"] in ("EACCES", "EPERM")
    assert c.peers == []


def test_network_namespace_alone_stops_accidents_not_real_root(
    tmp_path: Path, canary: tuple[Canary, list[str]]
) -> None:
    """What the ``net`` mode line warns about: a process with CAP_SYS_ADMIN in the host's user
    namespace (real root, as this test runs) can join the host's network namespace again."""
    if os.geteuid() != 0:
        pytest.skip("needs real root: an unprivileged user cannot create a bare network namespace")
    c, _ = canary
    setns = PROBE_BACKEND.split('SETNS = """', 1)[1].split('"""', 1)[0]
    netns = os.environ["CANARY_NETNS"]
    cmd = [sys.executable, "-S", "-c", setns, netns, "127.0.0.1", str(c.port)]
    proc = subprocess.run(
        isolation.Isolation("net", python=sys.executable).command(cmd),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "joined\n", "")
    assert c.peers == ["127.0.0.1"]


def test_a_failing_namespace_setup_fails_the_build_naming_it(tmp_path: Path) -> None:
    """What a backend call shows if the namespace cannot be entered after the probe said yes."""
    proc = subprocess.run(
        [require("unshare"), "--user", "--map-root-user", "sh", "-c",
         'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh",
         *isolation.Isolation("user", python=sys.executable).command(["true"])],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 125
    assert proc.stderr == (
        "wheelhouse: cannot enter a network namespace (user): unshare: namespace limit reached "
        "(/proc/sys/user/max_*_namespaces)\n"
    )


def test_namespace_with_an_interpreter_that_cannot_run(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, python = tmp_path / "out", tmp_path / "no-python"
    args = build_cmd(project, out, "--isolation", "namespace", "--python", str(python))
    outcome = run_cli(capsys, *args)
    assert_error(outcome, UsageError, f"cannot run {python}", "give a working --python")
    assert not out.exists()


def test_unknown_request_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="choose one of auto, namespace, advisory"):
        isolation.choose("sandbox")
