"""Catalogue, image: inputs ``wheelhouse image`` must refuse with one ``error:`` line, leaving
nothing at the output path (the image is written under a temp name and renamed at the end)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, ROOT
from contract import Outcome, assert_absent, assert_error, assert_ok, run_cli
from wheelmaker import artifact_for, make_wheel

from wheelhouse.errors import ImageError, UsageError
from wheelhouse.install import install_env

SP = "lib/python3.11/site-packages"


@pytest.fixture
def env(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    made = [
        make_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": "A = 1\n"}),
        make_wheel(wheels, "beta", "2.0", {"beta/__init__.py": "B = 2\n"}),
    ]
    prefix = tmp_path / "env"
    install_env([(artifact_for(w), w) for w in made], prefix, python=HOST_PYTHON)
    return prefix


def image(
    capsys: pytest.CaptureFixture[str], prefix: Path, out: Path, *extra: str | Path
) -> Outcome:
    return run_cli(capsys, "image", prefix, "--output", out, *extra)


def test_good_env_builds(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The fixture itself is fine: each test below breaks one thing."""
    assert_ok(image(capsys, env, tmp_path / "oci"))
    assert (tmp_path / "oci" / "index.json").is_file()


def test_unknown_package_in_layer_spec(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "layers.txt"
    spec.write_text("alpha\nGhost_Pkg beta\n")
    out = tmp_path / "oci"
    outcome = image(capsys, env, out, "--layers", spec)
    assert_error(outcome, ImageError, str(spec), "ghost-pkg", "alpha, beta", "remove it")
    assert_absent(out)


def test_prefix_without_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "plain"
    (prefix / SP / "mod").mkdir(parents=True)
    (prefix / SP / "mod" / "__init__.py").write_text("")
    (prefix / SP / "mod-1.0.dist-info").mkdir()  # metadata, but no RECORD
    out = tmp_path / "oci"
    outcome = image(capsys, prefix, out)
    assert_error(outcome, ImageError, str(prefix), "RECORD", "wheelhouse install")
    assert_absent(out)


def test_file_claimed_by_two_packages(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = env / SP / "beta-2.0.dist-info" / "RECORD"
    record.chmod(0o644)
    with record.open("a") as f:
        f.write("alpha/__init__.py,,\n")
    out = tmp_path / "oci"
    outcome = image(capsys, env, out)
    assert_error(outcome, ImageError, f"{SP}/alpha/__init__.py", "alpha 1.0", "beta 2.0")
    assert_absent(out)


def test_record_lists_a_missing_file(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / SP / "beta" / "__init__.py").unlink()
    out = tmp_path / "oci"
    outcome = image(capsys, env, out)
    assert_error(outcome, ImageError, "beta 2.0", f"{SP}/beta/__init__.py", "rebuild the env")
    assert_absent(out)


def test_record_entry_outside_the_prefix(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (env / SP / "beta-2.0.dist-info" / "RECORD").open("a") as f:
        f.write("../../../../etc/passwd,,\n")
    out = tmp_path / "oci"
    outcome = image(capsys, env, out)
    assert_error(outcome, ImageError, "beta 2.0", "../../../../etc/passwd", "outside the prefix")
    assert_absent(out)


def test_layer_limit_below_the_fixed_layers(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "oci"
    outcome = image(capsys, env, out, "--extra-path", HOST_PYTHON, "--max-layers", "2")
    assert_error(outcome, ImageError, "layer limit 2", "3 layers", "--max-layers")
    assert_absent(out)


@pytest.mark.parametrize(
    ("kind", "word"), [("fifo", "FIFO"), ("socket", "socket"), ("device", "device")]
)
def test_special_file_in_the_env(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, word: str
) -> None:
    special = env / "lib" / "thing"
    if kind == "fifo":
        os.mkfifo(special)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(special))
        sock.close()
    else:
        if os.geteuid() != 0:
            pytest.skip("making a device file needs root")
        os.mknod(special, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    out = tmp_path / "oci"
    outcome = image(capsys, env, out)
    assert_error(outcome, ImageError, str(special), word, "remove it")
    assert_absent(out)


def test_image_stage_imports_no_earlier_stage() -> None:
    """One direction of data: the image stage reads the installed tree, never lock, fetch,
    build or install code (``_safefs`` is the shared, stage-less escaping and safe-write code)."""
    probe = (
        "import sys, wheelhouse.image, wheelhouse.layers; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('wheelhouse'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(out.stdout.split())
    assert loaded <= {
        "wheelhouse", "wheelhouse._safefs", "wheelhouse.errors", "wheelhouse.image",
        "wheelhouse.layers", "wheelhouse.tempfiles",
    }, loaded  # fmt: skip


def test_output_exists(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "oci"
    out.mkdir()
    (out / "mine").write_text("keep me")
    outcome = image(capsys, env, out)
    assert_error(outcome, ImageError, str(out), "already exists", "choose another")
    assert [p.name for p in out.iterdir()] == ["mine"]


def test_closure_file_not_a_references_graph(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closure = tmp_path / "closure"
    closure.write_text("/nix/store/abc-python\n\nnot-a-number\n")
    out = tmp_path / "oci"
    outcome = image(capsys, env, out, "--closure", closure)
    assert_error(
        outcome, ImageError, str(closure), "/nix/store/abc-python", "exportReferencesGraph"
    )
    assert_absent(out)


def test_missing_extra_path(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "oci"
    outcome = image(capsys, env, out, "--extra-path", "/nonexistent/python")
    assert_error(outcome, ImageError, "/nonexistent/python", "No such file")
    assert_absent(out)


def test_gzip_docker_archive_is_a_usage_error(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "image.tar"
    outcome = image(capsys, env, out, "--format", "docker-archive", "--compression", "gzip")
    assert_error(outcome, UsageError, "docker-archive", "uncompressed")
    assert_absent(out)
