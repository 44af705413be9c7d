"""``wheelhouse init`` and the flake: from a pyproject.toml to a working shell in two commands,
and pure flake evaluation (every derivation takes ``system`` from the interpreter).

nixpkgs is not available here, so the flake tests override the ``nixpkgs`` input with a small
stand-in flake that offers what the flakes use (``python3`` as the host interpreter, ``patchelf``,
``mkShell``...), as plain paths.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, ROOT, require
from contract import assert_error_line, run_cli
from indexserver import IndexServer
from test_project import make_sample, run

from wheelhouse.errors import UsageError

pytestmark = pytest.mark.integration

FLAKES = ["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""]

FAKE_NIXPKGS = """
{
  outputs = { self }: {
    legacyPackages.x86_64-linux = {
      python3 = { outPath = "/usr"; interpreter = "@python@"; pythonVersion = "3.11";
                  system = "x86_64-linux"; };
      cacert = null;
      patchelf = "@patchelf@";
      zlib = "/usr";
      stdenv.cc.cc.lib = "/usr/lib/x86_64-linux-gnu";
      mkShell = { name, shellHook, ... }: derivation {
        inherit name shellHook;
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" "echo \\"$shellHook\\" > $out" ];
      };
    };
  };
}
"""


@pytest.fixture
def fake_nixpkgs(tmp_path: Path) -> str:
    flake = tmp_path / "fake-nixpkgs"
    flake.mkdir()
    (flake / "flake.nix").write_text(
        FAKE_NIXPKGS.replace("@python@", HOST_PYTHON).replace("@patchelf@", require("patchelf"))
    )
    return f"path:{flake}"


def nix(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("nix"), *FLAKES, *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_init_then_develop(
    sample_index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = make_sample(tmp_path / "sample")
    argv = ["init", str(project), "--group", "dev", "--python", HOST_PYTHON,
            "--index-url", sample_index.simple_url]  # fmt: skip
    outcome = run_cli(capsys, *argv)
    assert outcome.rc == 0, outcome.err
    assert (project / "pylock.toml").is_file()
    text = (project / "default.nix").read_text()
    assert f'else "{HOST_PYTHON}")' in text and f"import {ROOT}/nixlib" in text
    assert f"wheelhouse lock . --group dev --python {HOST_PYTHON}`" in text
    shell = subprocess.run(
        [require("nix-shell"), "-A", "develop", "--option", "substituters", "", "--run",
         "sample"],
        capture_output=True, text=True, check=False, cwd=project,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert shell.stdout == "hello from the tree\n"
    # A second init keeps the user's files: one error, nothing rewritten.
    (project / "default.nix").write_text("# mine\n")
    again = run_cli(capsys, *argv)
    assert again.error is UsageError
    assert_error_line(again.rc, again.err, 2, "default.nix", "--force")
    assert (project / "default.nix").read_text() == "# mine\n"


def test_init_without_pyproject_is_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_cli(capsys, "init", str(tmp_path))
    assert_error_line(outcome.rc, outcome.err, 2, str(tmp_path), "pyproject.toml")
    assert list(tmp_path.iterdir()) == []


def test_the_tool_from_the_flake_evaluates_purely(fake_nixpkgs: str, tmp_path: Path) -> None:
    out = tmp_path / "tool"
    built = nix("build", f"git+file://{ROOT}#wheelhouse", "--override-input", "nixpkgs",
                fake_nixpkgs, "-o", str(out), cwd=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert run(out / "bin" / "wheelhouse", "--version").startswith("wheelhouse ")


def test_project_flake_from_init_builds_the_app(
    sample_index: IndexServer,
    fake_nixpkgs: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = make_sample(tmp_path / "sample")
    outcome = run_cli(capsys, "init", str(project), "--flake", "--python", HOST_PYTHON,
                      "--index-url", sample_index.simple_url)  # fmt: skip
    assert outcome.rc == 0, outcome.err
    assert f'inputs.wheelhouse.url = "git+file://{ROOT}";' in (project / "flake.nix").read_text()
    override = ["--override-input", "nixpkgs", fake_nixpkgs,
                "--override-input", "wheelhouse/nixpkgs", fake_nixpkgs]  # fmt: skip
    app = tmp_path / "app"
    built = nix("build", f"path:{project}", *override, "-o", str(app), cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    assert run(app / "bin" / "sample") == "hello from the tree\n"
    shell = nix("eval", "--raw", f"path:{project}#devShells.x86_64-linux.default.shellHook",
                *override, cwd=tmp_path)  # fmt: skip
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert 'export PYTHONPATH="$_wh_root' in shell.stdout  # the working tree, not the copy
