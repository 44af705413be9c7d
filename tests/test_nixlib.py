"""nixlib's pure functions, evaluated by real Nix: the { expr; expected; } suites in nixlib/tests
and the `throw` messages users see (each must include the offending data)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = sorted((ROOT / "nixlib" / "tests").glob("*.nix"))


def nix_eval(expr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def suite_cases() -> list[tuple[Path, str]]:
    cases = []
    for suite in SUITES:
        proc = nix_eval(f"builtins.attrNames (import {suite})")
        assert proc.returncode == 0, proc.stderr
        cases += [(suite, name) for name in json.loads(proc.stdout)]
    return cases


@pytest.mark.parametrize(("suite", "name"), suite_cases(), ids=lambda v: getattr(v, "stem", v))
def test_nixlib_suite(suite: Path, name: str) -> None:
    proc = nix_eval(f"let t = (import {suite}).{name}; in {{ inherit (t) expr expected; }}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["expr"] == result["expected"]


LOCK = """{ lock-version = "1.0"; packages = [ { name = "a"; version = "1";
  wheels = [ { name = "a-1-py3-none-any.whl"; hashes.sha256 = "aa"; } ]; } ];
  tool.wheelhouse.targets = [ { name = "cp311-x"; python-version = "3.11";
  artifacts = [ "a-1-py3-none-any.whl" "ghost-1-py3-none-any.whl" ]; } ]; }"""

THROWS = {
    "unknown target": (
        f'(import ./nixlib).selectTarget {{ lock = {LOCK}; target = "cp399"; }}',
        ['no target "cp399"', '"cp311-x"'],
    ),
    "python version mismatch": (
        f'(import ./nixlib).selectTarget {{ lock = {LOCK}; pythonVersion = "3.12"; }}',
        ["cp311-x", "3.11", "3.12"],
    ),
    "artifact not in packages": (
        f"(import ./nixlib).targetDigest {{ lock = {LOCK}; "
        f"target = builtins.head ({LOCK}).tool.wheelhouse.targets; }}",
        ["ghost-1-py3-none-any.whl", "wheelhouse lock"],
    ),
    "lock without targets": (
        '(import ./nixlib).selectTarget { lock = { lock-version = "1.0"; created-by = "uv"; '
        'packages = []; }; lockPath = "/p/pylock.toml"; }',
        [
            "/p/pylock.toml has no [tool.wheelhouse] targets",
            "created by uv",
            "wheelhouse lock --from /p/pylock.toml",
        ],
    ),
    "bad python argument": ("(import ./nixlib).toInterpreter 3", ["a int"]),
    "override of a package that is not an sdist": (
        '(import ./nixlib).buildOverrides { sdists = [ "docopt" ]; '
        'overrides.psycopg2.env.A = "1"; }',
        ["overrides.psycopg2", "psycopg2 is not built from an sdist", '["docopt"]'],
    ),
    "override with an unknown attribute": (
        '(import ./nixlib).buildOverrides { sdists = [ "docopt" ]; '
        "overrides.docopt.buildInputs = [ ]; }",
        ["overrides.docopt", '["buildInputs"]', "nativeBuildInputs, env"],
    ),
    "build input of a wrong type": (
        "(import ./nixlib).inputPaths [ 42 ]",
        ["a build input must be a derivation or a path", "a int: 42"],
    ),
    "fromNixpkgs package not in the lock": (
        f"(import ./nixlib).nixpkgsPackages {{ lock = {LOCK}; "
        f"target = builtins.head ({LOCK}).tool.wheelhouse.targets; "
        'fromNixpkgs = [ "numpy" ]; pythonPackages = { }; }',
        ['fromNixpkgs names "numpy"', "cp311-x does not install", '"a"'],
    ),
    "fromNixpkgs package not in the set": (
        f"(import ./nixlib).nixpkgsPackages {{ lock = {LOCK}; "
        f"target = builtins.head ({LOCK}).tool.wheelhouse.targets; "
        'fromNixpkgs = [ "a" ]; pythonPackages = { }; }',
        ['fromNixpkgs names "a"', "pythonPackages does not have", "pkgs.python3.pkgs"],
    ),
    "lock without a project": (
        f'(import ./nixlib).lockedProject {{ lock = {LOCK}; lockPath = "/p/pylock.toml"; }}',
        ["/p/pylock.toml records no project", "wheelhouse lock PROJECT_DIR"],
    ),
    "manylinuxLibs without patchelf": (
        '(import ./nixlib).runpathArgs { patchelf = null; manylinuxLibs = [ "/opt/zlib" ]; }',
        ['manylinuxLibs (["/opt/zlib"])', "pass patchelf = pkgs.patchelf"],
    ),
    "unknown isolation": (
        '(import ./nixlib).isolationArgs "sandbox"',
        ['isolation = "sandbox" is not one of', '"namespace"'],
    ),
    "image format": (
        '(import ./nixlib).imageArgs { name = "a"; tag = "1"; imagePrefix = null; '
        'entrypoint = null; cmd = [ ]; env = { }; labels = { }; user = null; workdir = "/"; '
        "extraPaths = [ ]; maxLayers = 9; "
        'layers = [ ]; format = "tar"; compression = null; }',
        ['format "tar"', '["oci","docker-archive"]'],
    ),
}


@pytest.mark.parametrize("case", sorted(THROWS))
def test_nixlib_throws_name_the_offending_data(case: str) -> None:
    expr, needles = THROWS[case]
    proc = nix_eval(expr)
    assert proc.returncode != 0
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
