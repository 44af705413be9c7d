"""``lock --resolver uv`` against ``lock`` with pip: the same lock, byte for byte, apart from the
``resolver`` line, on the loopback test sets (real uv, real pip, real HTTP); and its errors.

uv is the one pinned in requirements-dev.txt, in the test interpreter's bin directory, which
these tests put on PATH as a user would.
"""

from __future__ import annotations

import os
import sys
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST_PYTHON
from contract import assert_error, assert_ok, run_cli
from indexserver import IndexServer
from wheelmaker import make_wheel

from wheelhouse import lockfile, resolve, uvresolve
from wheelhouse.errors import ResolutionError, UsageError
from wheelhouse.resolve import Inputs
from wheelhouse.targets import make_target

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _uv_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The pinned uv on PATH; no uv configuration of this machine; uv's own cache per test."""
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.mktemp("uv-cache")))
    for var in uvresolve._INPUT_VARIABLES:
        monkeypatch.delenv(var, raising=False)


def lock_both(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str | Path
) -> tuple[bytes, bytes]:
    """``wheelhouse lock ARGS`` with pip, then with uv; both locks' bytes."""
    locks = []
    for resolver in ("pip", "uv"):
        out = tmp_path / resolver / "pylock.toml"
        out.parent.mkdir(parents=True, exist_ok=True)
        assert_ok(run_cli(capsys, "lock", *args, "-o", out, "--resolver", resolver))
        locks.append(out.read_bytes())
    return locks[0], locks[1]


def assert_same_lock(pip_lock: bytes, uv_lock: bytes) -> dict[str, Any]:
    """Equal bytes, but for the line naming the resolver; the lock, parsed."""
    assert b'\nresolver = "pip"\n' in pip_lock and b'\nresolver = "uv"\n' in uv_lock
    assert uv_lock.replace(b'resolver = "uv"', b'resolver = "pip"') == pip_lock
    return tomllib.loads(uv_lock.decode())


DEMO = ("alpha", "gamma", "epsilon")


@pytest.mark.parametrize(
    ("options", "gamma"),
    [
        pytest.param((), "gamma-1.0-py3-none-any.whl", id="cycle-none-any-over-binary"),
        pytest.param(
            ("--prefer-binary-wheels",),
            "gamma-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            id="prefer-binary",
        ),
        pytest.param(
            ("--python-version", "3.11", "--python-version", "3.12"),
            "gamma-1.0-py3-none-any.whl",
            id="two-targets",
        ),
    ],
)
def test_demo_set_gives_the_same_lock(
    sample_index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    gamma: str,
) -> None:
    args = (*DEMO, "--index-url", sample_index.simple_url, *options)
    data = assert_same_lock(*lock_both(capsys, tmp_path, *args))
    for target in data["tool"]["wheelhouse"]["targets"]:
        assert gamma in target["artifacts"]


def test_a_choice_that_fails_after_resolving_fails_alike(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gamma has no sdist: --no-binary gamma is the same error, whoever resolved."""
    errors = []
    for resolver in ("pip", "uv"):
        out = tmp_path / f"{resolver}.toml"
        outcome = run_cli(capsys, "lock", *DEMO, "--index-url", sample_index.simple_url,
                          "--no-binary", "gamma", "-o", out, "--resolver", resolver)  # fmt: skip
        assert outcome.rc == 1 and not out.exists()
        errors.append(outcome.err)
    assert errors[0] == errors[1] and "gamma 1.0: --no-binary asks for an sdist" in errors[0]


def test_rows_match_pips_report(sample_index: IndexServer) -> None:
    """The rows themselves: uv's list of fitting files narrowed to the one pip installs."""
    inputs = Inputs(requirements=DEMO, index_url=sample_index.simple_url)
    picks = {}
    for spec in (None, "3.12"):
        target = make_target(spec)
        by_pip = resolve.resolve(inputs, target)
        by_uv = uvresolve.resolve(inputs, target)
        assert [(r.name, r.version, r.url, r.sha256, r.is_direct) for r in by_uv] == [
            (r.name, r.version, r.url, r.sha256, r.is_direct) for r in by_pip
        ]
        picks[target.name] = {r.name: r.url.rsplit("/", 1)[1] for r in by_uv}
    # uv lists both of gamma's wheels for 3.11; pip installs the binary one, and so do the rows.
    assert picks["cp311-linux-x86_64"]["gamma"] == "gamma-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert picks["cp312-linux-x86_64"]["gamma"] == "gamma-1.0-py3-none-any.whl"


def test_interpreter_target_respects_its_micro_version(
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "files"
    root.mkdir()
    make_wheel(root, "picky", "1.0")
    make_wheel(root, "picky", "2.0", requires_python=">=3.11.5")
    server = index_server_factory(root)
    args = ("picky", "--python", HOST_PYTHON, "--index-url", server.simple_url)
    data = assert_same_lock(*lock_both(capsys, tmp_path, *args))
    assert [p["version"] for p in data["packages"]] == ["1.0"]


@pytest.fixture
def features(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> tuple[IndexServer, IndexServer]:
    """Extras, markers and versions to constrain, over two indexes; ``base`` 1.0 and 2.0."""
    main_root, extra_root = tmp_path / "main", tmp_path / "extra"
    main_root.mkdir()
    extra_root.mkdir()
    make_wheel(
        main_root,
        "host",
        "1.0",
        requires=[
            "base",
            "plugin[fast]",
            'never ; python_version < "3"',
            'linuxonly ; sys_platform == "linux"',
        ],
    )
    make_wheel(
        main_root,
        "plugin",
        "1.0",
        requires=['speedup ; extra == "fast"'],
        metadata={"Provides-Extra": "fast"},
    )
    for name in ("speedup", "linuxonly", "never"):
        make_wheel(main_root, name, "1.0")
    make_wheel(main_root, "base", "1.0")
    make_wheel(extra_root, "base", "2.0")  # only on the extra index: pip takes the best of both
    make_wheel(extra_root, "base", "2.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    return index_server_factory(main_root), index_server_factory(extra_root)


def test_extras_markers_extra_index_and_constraints(
    features: tuple[IndexServer, IndexServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, extra = features
    indexes = ("--index-url", first.simple_url, "--extra-index-url", extra.simple_url)
    data = assert_same_lock(*lock_both(capsys, tmp_path / "free", "host", *indexes))
    picked = {p["name"]: p["version"] for p in data["packages"]}
    assert picked == {
        "base": "2.0",
        "host": "1.0",
        "linuxonly": "1.0",
        "plugin": "1.0",
        "speedup": "1.0",
    }
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("base<2\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("host\n")
    data = assert_same_lock(
        *lock_both(capsys, tmp_path / "pinned", "-r", requirements, "-c", constraints, *indexes)
    )
    assert {p["name"]: p["version"] for p in data["packages"]}["base"] == "1.0"


def test_find_links_local_and_remote_and_a_direct_url(
    sample_index: IndexServer,
    index_server_factory: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    make_wheel(local, "loner", "1.0")
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = index_server_factory(empty)
    args = (
        "loner",
        "gamma",
        f"alpha @ {sample_index.file_url('alpha-1.0-py3-none-any.whl')}",
        "--index-url",
        nothing.simple_url,
        "--find-links",
        str(local),
        "--find-links",
        sample_index.url + "/simple/gamma/",
        "--find-links",
        sample_index.url + "/simple/delta/",
        "--find-links",
        sample_index.url + "/simple/beta/",
    )
    data = assert_same_lock(*lock_both(capsys, tmp_path, *args))
    names = [p["name"] for p in data["packages"]]
    assert names == ["alpha", "beta", "delta", "gamma", "loner"]


def test_sdists_and_their_build_environments(
    sdist_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Build requirements are resolved by the chosen resolver too, tinyhelper from its sdist."""
    args = ("app", "tinybackend==2.0", "--no-binary", "app", "--index-url", sdist_index.simple_url)
    data = assert_same_lock(*lock_both(capsys, tmp_path, *args))
    (target,) = data["tool"]["wheelhouse"]["targets"]
    assert target["sdist-builds"]["tinyhelper-1.0.tar.gz"] == ["tinybackend-2.0-py3-none-any.whl"]


def test_a_project_and_its_build_system(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lock PROJECT_DIR``: its dependencies, a group, and its own build environment."""
    from test_project import make_sample

    project = make_sample(tmp_path / "sample")
    args = (project, "--group", "dev", "--index-url", sample_index.simple_url)
    data = assert_same_lock(*lock_both(capsys, tmp_path, *args))
    (target,) = data["tool"]["wheelhouse"]["targets"]
    assert target["project-build"] == ["tinybackend-1.0-py3-none-any.whl"]


@pytest.mark.parametrize("source", ["netrc", "env", "url"])
def test_private_index_with_credentials(
    sample_index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    sample_index.require_auth("deploy", secret)
    index_url = sample_index.simple_url
    if source == "netrc":
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1\n  login deploy\n  password {secret}\n")
        monkeypatch.setenv("NETRC", str(netrc))
    elif source == "env":
        monkeypatch.setenv("WHEELHOUSE_AUTH", f"127.0.0.1=deploy:{secret}")
    else:
        index_url = index_url.replace("http://", f"http://deploy:{secret}@")
    pip_lock, uv_lock = lock_both(capsys, tmp_path, *DEMO, "--index-url", index_url)
    assert_same_lock(pip_lock, uv_lock)
    assert secret.encode() not in uv_lock
    # The password reaches uv through its environment only, never its command line.
    inputs = Inputs(requirements=DEMO, index_url=index_url)
    argv = uvresolve.uv_command("uv", inputs, make_target(None), tmp_path / "pylock.toml")
    assert not any(secret in a for a in argv)
    if source != "netrc":
        env, secrets = uvresolve.uv_environment(inputs)
        assert secret in env["UV_INDEX_URL"] and secret in secrets


def test_a_rejected_login_is_one_error_line_without_the_secret(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_index.require_auth("deploy", "right")
    index_url = sample_index.simple_url.replace("http://", "http://deploy:wrong-pw-1234@")
    out = tmp_path / "pylock.toml"
    outcome = run_cli(capsys, "lock", "alpha", "--index-url", index_url, "-o", out,
                      "--resolver", "uv")  # fmt: skip
    message = assert_error(outcome, ResolutionError, "uv could not resolve", "alpha")
    assert "wrong-pw-1234" not in message and "401" in message
    assert not out.exists()


def test_uv_failing_is_one_error_line_with_its_reason_and_no_lock(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "pylock.toml"
    out.parent.mkdir()
    out.write_bytes(b"# the previous lock\n")
    outcome = run_cli(capsys, "lock", "no-such-package", "--index-url", sample_index.simple_url,
                      "-o", out, "--resolver", "uv")  # fmt: skip
    assert_error(
        outcome,
        ResolutionError,
        "uv could not resolve the requirements for cp3",
        "no-such-package was not found",
    )
    assert out.read_bytes() == b"# the previous lock\n"
    assert [p.name for p in out.parent.iterdir()] == ["pylock.toml"]


def test_uv_missing_names_what_to_install(
    sample_index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # pip runs as `python -m pip`: no PATH needed
    out = tmp_path / "pylock.toml"
    outcome = run_cli(capsys, "lock", "alpha", "--index-url", sample_index.simple_url, "-o", out,
                      "--resolver", "uv")  # fmt: skip
    assert_error(outcome, UsageError, "no `uv` on PATH", "pip install uv", "drop --resolver uv")
    assert not out.exists()
    assert_ok(run_cli(capsys, "lock", "alpha", "--index-url", sample_index.simple_url, "-o", out))


def test_a_lock_without_the_resolver_line_still_reads(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Locks written before the key existed load and fetch as before."""
    out = tmp_path / "pylock.toml"
    assert_ok(run_cli(capsys, "lock", *DEMO, "--index-url", sample_index.simple_url, "-o", out,
                      "--resolver", "uv"))  # fmt: skip
    old = tmp_path / "old" / "pylock.toml"
    old.parent.mkdir()
    old.write_bytes(out.read_bytes().replace(b'resolver = "uv"\n', b""))
    assert b"resolver" not in old.read_bytes()
    assert lockfile.load(old).targets == lockfile.load(out).targets
    assert_ok(run_cli(capsys, "fetch", old, "-d", tmp_path / "wh"))


@pytest.mark.network
def test_a_real_set_from_the_real_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``requests`` and its dependencies from the real index (WHEELHOUSE_TEST_INDEX_URL, else
    wheelhouse's default index), locked by both resolvers, two targets."""
    index = os.environ.get("WHEELHOUSE_TEST_INDEX_URL") or Inputs().index_url
    args = ("requests", "--index-url", index, "--python", HOST_PYTHON, "--python-version", "3.12")
    data = assert_same_lock(*lock_both(capsys, tmp_path, *args))
    names = {p["name"] for p in data["packages"]}
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer"} <= names
