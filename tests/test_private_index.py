"""A private index end to end: `lock` and `fetch` with credentials from netrc, WHEELHOUSE_AUTH or
the index URL, then a real nix-build of the wheelhouse with NETRC as an impure variable; and the
secret appears nowhere: not in the lock, the .drv files, the store, the logs or error messages.

The loopback index answers 401 to every request without the right Basic credentials, so a
successful run proves that every request (pip's, the index pages', the downloads') had them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST_PYTHON, build_demo_index, require
from contract import ROOT, assert_error, assert_error_line, assert_ok, run_cli, run_module
from indexserver import IndexServer

import wheelhouse.resolve
from wheelhouse.errors import FetchError

USER = "deploy"
PipCall = tuple[list[str], dict[str, str]]


@pytest.fixture
def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


def forms(*passwords: str) -> list[str]:
    """How a password could leak: as is, or inside a Basic Authorization header."""
    out = []
    for password in passwords:
        out += [password, base64.b64encode(f"{USER}:{password}".encode()).decode()]
    return out


def assert_clean(texts: Iterable[str], *passwords: str) -> None:
    for text in texts:
        for form in forms(*passwords):
            assert form not in text


@pytest.fixture
def private(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path, secret: str
) -> IndexServer:
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)  # a new wheelhouse hash per run: Nix really builds
    server = index_server_factory(root)
    server.require_auth(USER, secret)
    return server


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the Nix build users can read (pytest's temp dirs are private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="wheelhouse-netrc-", dir="/tmp"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def write_netrc(directory: Path, password: str) -> Path:
    path = directory / f"netrc-{uuid.uuid4().hex[:8]}"
    path.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {password}\n")
    os.chmod(path, 0o644)  # the Nix build user must read it
    return path


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[PipCall]:
    """Every pip run of `lock`, with its argv and environment."""
    calls: list[PipCall] = []

    def run(cmd: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        calls.append((list(cmd), dict(kwargs.get("env") or {})))
        return subprocess.run(cmd, *args, **kwargs)

    spy = types.SimpleNamespace(run=run, DEVNULL=subprocess.DEVNULL)
    monkeypatch.setattr(wheelhouse.resolve, "subprocess", spy)
    return calls


def lock_args(server: IndexServer, out: Path, index_url: str | None = None) -> list[str]:
    return ["lock", "alpha", "gamma", "--index-url", index_url or server.simple_url, "-o", str(out)]


# --- lock and fetch, in-process ----------------------------------------------------------------


@pytest.mark.parametrize("source", ["netrc", "env", "url"])
def test_lock_and_fetch_with_credentials(
    private: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pip_calls: list[PipCall],
    secret: str,
    source: str,
) -> None:
    out = tmp_path / "pylock.toml"
    index_url = None
    if source == "netrc":
        monkeypatch.setenv("NETRC", str(write_netrc(tmp_path, secret)))
    elif source == "env":
        monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1={USER}:{secret}")
    else:
        index_url = private.simple_url.replace("http://", f"http://{USER}:{secret}@")
    locked = run_cli(capsys, *lock_args(private, out, index_url))
    assert_ok(locked)
    assert private.requests_for("/files/*") and private.requests_for("/simple/*")
    assert all(r.headers.get("Authorization") for r in private.requests)
    # pip resolved against the loopback mirror: it never had the credentials, argv or env.
    ((argv, env),) = pip_calls
    assert_clean([*argv, *env.values()], secret)
    assert env["PIP_INDEX_URL"].startswith("http://127.0.0.1:")
    lock_text = out.read_text()
    assert_clean([lock_text, locked.out, locked.err], secret)
    assert private.simple_url.split("/simple")[0] + "/files/" in lock_text

    # fetch: credentials only at fetch time; the lock has none.
    if source == "url":
        missing = run_cli(capsys, "fetch", out, "-d", tmp_path / "denied", "--no-cache")
        assert_error(missing, FetchError, "HTTP 401", "no credentials were found for host")
        monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1={USER}:{secret}")
    fetched = run_cli(capsys, "fetch", out, "-d", tmp_path / "wh")
    assert_ok(fetched)
    assert_clean([fetched.out, fetched.err], secret)
    assert len(os.listdir(tmp_path / "wh")) == 4  # alpha, beta (its cycle), gamma, delta


@pytest.mark.parametrize("source", ["netrc", "env", "url"])
def test_wrong_password_is_a_clear_error_without_any_secret(
    private: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
    source: str,
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    good_lock = tmp_path / "good.toml"
    monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1={USER}:{secret}")
    assert_ok(run_cli(capsys, *lock_args(private, good_lock)))
    monkeypatch.delenv("WHEELHOUSE_AUTH")
    index_url = None
    if source == "netrc":
        monkeypatch.setenv("NETRC", str(write_netrc(tmp_path, wrong)))
    elif source == "env":
        monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1={USER}:{wrong}")
    else:
        index_url = private.simple_url.replace("http://", f"http://{USER}:{wrong}@")
        monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1={USER}:{wrong}")  # for the fetch
    out = tmp_path / "pylock.toml"
    locked = run_cli(capsys, *lock_args(private, out, index_url))
    assert_error(locked, FetchError, "HTTP 401", "were rejected", "/simple/alpha/")
    assert not out.exists()
    fetched = run_cli(capsys, "fetch", good_lock, "-d", tmp_path / "wh", "--no-cache")
    assert_error(fetched, FetchError, "HTTP 401", "were rejected", "127.0.0.1")
    assert not (tmp_path / "wh").exists()
    assert_clean([locked.out, locked.err, fetched.out, fetched.err], secret, wrong)
    # The same through a real process (its whole stdout and stderr).
    proc = run_module("fetch", good_lock, "-d", tmp_path / "wh", "--no-cache")
    assert_error_line(proc.returncode, proc.stderr, 1, "were rejected")
    assert_clean([proc.stdout, proc.stderr], secret, wrong)


# --- the Nix side ------------------------------------------------------------------------------

PROJECT_NIX = """
{{ python ? "{python}" }}:
(import {root}/nixlib).mkProject {{ lock = ./pylock.toml; inherit python; src = ./.; }}
"""


def _nix(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args, "--option", "substituters", ""],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def grep_secret(needles: Sequence[str], paths: Sequence[str | Path]) -> list[str]:
    """``grep -r -l -F`` for any needle below ``paths``: the files that contain one."""
    patterns = [arg for needle in needles for arg in ("-e", needle)]
    found = subprocess.run(
        ["grep", "-r", "-l", "-F", "-a", *patterns, "--", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode in (0, 1), found.stderr  # 1: nothing found; 2: an error
    return found.stdout.splitlines()


@pytest.mark.integration
def test_nix_build_with_netrc_leaks_the_secret_nowhere(
    private: IndexServer, tmp_path: Path, shared_dir: Path, secret: str
) -> None:
    require("nix-build")
    wrong = f"wrong-{uuid.uuid4().hex}"
    good_netrc, wrong_netrc = write_netrc(shared_dir, secret), write_netrc(shared_dir, wrong)
    base = {
        k: v for k, v in os.environ.items() if k not in ("NETRC", "WHEELHOUSE_AUTH", "PYTHONPATH")
    }
    logs: list[str] = []

    project = tmp_path / "project"
    project.mkdir()
    (project / "default.nix").write_text(PROJECT_NIX.format(python=HOST_PYTHON, root=ROOT))
    lock = project / "pylock.toml"
    locked = run_module(*lock_args(private, lock), env={**base, "NETRC": str(good_netrc)})
    assert locked.returncode == 0, locked.stderr
    fetched = run_module(
        "fetch", lock, "-d", tmp_path / "wh", env={**base, "NETRC": str(good_netrc)}
    )
    assert fetched.returncode == 0, fetched.stderr
    logs += [locked.stdout, locked.stderr, fetched.stdout, fetched.stderr]

    # A wrong password first: the build fails, saying why, without either password.
    denied = _nix("nix-build", str(project), "-A", "wheelhouse", "--no-out-link",
                  env={**base, "NETRC": str(wrong_netrc)})  # fmt: skip
    assert denied.returncode != 0
    assert "answered HTTP 401" in denied.stderr and "were rejected" in denied.stderr
    assert f"netrc file {wrong_netrc}" in denied.stderr
    logs += [denied.stdout, denied.stderr]

    # A netrc the build user cannot read: said so, with what to do.
    unreadable = write_netrc(shared_dir, secret)
    os.chmod(unreadable, 0o600)
    refused = _nix("nix-build", str(project), "-A", "wheelhouse", "--no-out-link",
                   env={**base, "NETRC": str(unreadable)})  # fmt: skip
    assert refused.returncode != 0
    assert f"error: cannot read netrc file {unreadable}: Permission denied" in refused.stderr
    assert "chmod 640" in refused.stderr
    logs += [refused.stdout, refused.stderr]

    # The right one through NETRC, then a rebuild (--check) with WHEELHOUSE_AUTH instead.
    built = _nix("nix-build", str(project), "-A", "wheelhouse", "--no-out-link",
                 env={**base, "NETRC": str(good_netrc)})  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    wheelhouse_out = built.stdout.strip().splitlines()[-1]
    rebuilt = _nix("nix-build", str(project), "-A", "wheelhouse", "--no-out-link", "--check",
                   env={**base, "WHEELHOUSE_AUTH": f"127.0.0.1={USER}:{secret}"})  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "building '" in built.stderr and "checking outputs of" in rebuilt.stderr  # real builds
    env_built = _nix("nix-build", str(project), "-A", "env", "--no-out-link", env=base)
    assert env_built.returncode == 0, env_built.stderr[-3000:]
    env_out = env_built.stdout.strip().splitlines()[-1]
    logs += [built.stdout, built.stderr, rebuilt.stdout, rebuilt.stderr]
    logs += [env_built.stdout, env_built.stderr]
    probe = subprocess.run([f"{env_out}/bin/python", "-c", "import alpha, gamma"], check=False)
    assert probe.returncode == 0

    drvs = []
    for attr in ("wheelhouse", "env"):
        inst = _nix("nix-instantiate", str(project), "-A", attr, env=base)
        assert inst.returncode == 0, inst.stderr
        drvs.append(inst.stdout.strip().splitlines()[-1])
    closure = subprocess.run(
        ["nix-store", "-qR", *drvs, wheelhouse_out, env_out],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert drvs[0] in closure and wheelhouse_out in closure and len(closure) > 4
    for drv in drvs:
        read = subprocess.run(["nix-store", "--read-log", drv], capture_output=True, text=True,
                              check=False)  # fmt: skip
        logs += [read.stdout, read.stderr]

    scratch = tmp_path / "scan"
    scratch.mkdir()
    (scratch / "lock.toml").write_bytes(lock.read_bytes())
    (scratch / "logs.txt").write_text("\n".join(logs))
    needles = forms(secret, wrong)
    # Negative control: the same scan finds a secret that is there, in any of its forms.
    for form in needles:
        control = tmp_path / "control"
        control.mkdir(exist_ok=True)
        (control / "leak.txt").write_text(f"prefix {form} suffix\n")
        assert grep_secret(needles, [scratch, control, *closure]) == [str(control / "leak.txt")]
        shutil.rmtree(control)
    assert grep_secret(needles, [scratch, *closure]) == []
