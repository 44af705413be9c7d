"""Real nix-build of projects with sdists: wheelhouse -> ONE sdist-wheels derivation -> env.

Offline: the loopback sdist index (tests/sdistmaker.py), with a per-package override and a
package taken from a fake nixpkgs python package set (``fromNixpkgs``). Network: four real PyPI
sdists forced with ``--no-binary`` (a setup.py-only sdist, setuptools-scm, hatchling + hatch-vcs,
a C extension compiled with the host's gcc) built offline in one nix-build.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, ROOT, require
from indexserver import IndexServer
from sdistmaker import build_sdist_index

from wheelhouse.cli import main
from wheelhouse.resolve import DEFAULT_INDEX

pytestmark = pytest.mark.integration

FAKE_PACKAGE = """
  derivation {{
    name = "python3.11-{name}-nixpkgs";
    system = builtins.currentSystem;
    builder = "{python}";
    args = [ "-c" ''
import os
d = os.path.join(os.environ["out"], "lib", "python3.11", "site-packages", "{name}")
os.makedirs(d)
open(os.path.join(d, "__init__.py"), "w").write("VERSION = 'nixpkgs'\\n")
'' ];
  }}"""

OFFLINE_NIX = """
{{ python ? "{python}" }}:
(import {root}/nixlib).mkProject {{
  lock = ./pylock.toml;
  inherit python;
  src = ./.;
  buildInputs = [ "/usr" ];
  overrides.app.env.APP_FLAVOUR = "from-nix";
  fromNixpkgs = [ "tinybackend" ];
  pythonPackages.tinybackend = {fake};
}}
"""


def nix_build(project: Path, attr: str, env: dict[str, str] | None = None) -> Path:
    require("nix-build")
    built = subprocess.run(
        ["nix-build", str(project), "-A", attr, "--no-out-link", "--option", "substituters", ""],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return Path(built.stdout.strip().splitlines()[-1])


def run(python: Path, code: str) -> str:
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def served_project(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> tuple[IndexServer, Path]:
    """The sdist test index on loopback, and an empty project directory to lock into."""
    root = tmp_path / "files"
    root.mkdir()
    build_sdist_index(root)
    project = tmp_path / "project"
    project.mkdir()
    return index_server_factory(root), project


def test_env_with_sdists_overrides_and_nixpkgs_package(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> None:
    server, project = served_project(index_server_factory, tmp_path)
    fake = FAKE_PACKAGE.format(name="tinybackend", python=HOST_PYTHON)
    (project / "default.nix").write_text(
        OFFLINE_NIX.format(python=HOST_PYTHON, root=ROOT, fake=fake)
    )
    lock_args = ["app", "tinybackend==2.0", "--no-binary", "app", "--index-url", server.simple_url]
    assert main(["lock", *lock_args, "-o", str(project / "pylock.toml")]) == 0

    wheels = nix_build(project, "sdistWheels")
    assert sorted(p.name for p in wheels.iterdir()) == [
        "app-1.0-py3-none-any.whl",
        "tinyhelper-1.0-py3-none-any.whl",
    ]
    # The builder (a nixbld user; sandbox off here) may create user namespaces on this machine.
    log = subprocess.run(
        ["nix-store", "--read-log", str(wheels)], capture_output=True, text=True, check=True
    ).stdout
    assert "building sdists with network isolation: namespace (new user and network" in log, log
    env = nix_build(project, "env")
    probe = (
        "import app, app._built_with as b, tinybackend, importlib.util as u; "
        "print(b.tinyhelper, b.APP_FLAVOUR, b.SOURCE_DATE_EPOCH, tinybackend.VERSION, "
        "u.find_spec('tinyhelper'))"
    )
    # app was built offline in Nix with tinyhelper built first, the override applied; tinybackend
    # comes from the (fake) nixpkgs set through one .pth file, not from the wheelhouse.
    assert run(env / "bin" / "python", probe).split() == [
        "helped",
        "from-nix",
        "315532800",
        "nixpkgs",
        "None",
    ]
    (site,) = env.glob("lib/python3.11/site-packages")
    assert not list(site.glob("tinybackend-*.dist-info"))
    pth = (site / "wheelhouse-extra-site-packages.pth").read_text().splitlines()
    assert len(pth) == 1 and pth[0].startswith("import site; site.addsitedir('/nix/store/")
    assert pth[0].endswith("-python3.11-tinybackend-nixpkgs/lib/python3.11/site-packages')")


def test_project_without_sdists_has_no_sdist_derivation(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> None:
    server, project = served_project(index_server_factory, tmp_path)
    (project / "default.nix").write_text(
        f'(import {ROOT}/nixlib).mkProject {{ lock = ./pylock.toml; python = "{HOST_PYTHON}"; }}'
    )
    assert (
        main(["lock", "app", "--index-url", server.simple_url, "-o", str(project / "pylock.toml")])
        == 0
    )
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--json", str(project), "-A", "sdistWheels"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) is None


REAL_NIX = """
{{ python ? "{python}" }}:
(import {root}/nixlib).mkProject {{
  lock = ./pylock.toml;
  inherit python;
  src = ./.;
  buildInputs = [ "/usr" ];  # the host's gcc (x86_64-linux-gnu-gcc) and Python headers
}}
"""

REAL_SDISTS = {
    "docopt": "0.6.2",  # setup.py only, no pyproject.toml: the legacy setuptools backend
    "pluggy": "1.7.0",  # setuptools + setuptools-scm (version from PKG-INFO)
    "platformdirs": "4.9.6",  # hatchling + hatch-vcs
    "markupsafe": "3.0.4",  # setuptools with a C extension (_speedups)
}
"""Pinned: a new release may change its build system (platformdirs 4.14 needs python-sbom)."""


@pytest.mark.network
@pytest.mark.slow
def test_real_pypi_sdists_build_offline_in_nix(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "default.nix").write_text(REAL_NIX.format(python=HOST_PYTHON, root=ROOT))
    no_binary = [arg for name in REAL_SDISTS for arg in ("--no-binary", name)]
    lock_path = project / "pylock.toml"
    pins = [f"{name}=={version}" for name, version in REAL_SDISTS.items()]
    args = [*pins, *no_binary, "--index-url", DEFAULT_INDEX]
    assert main(["lock", *args, "-o", str(lock_path)]) == 0
    data = tomllib.loads(lock_path.read_text())
    (target,) = data["tool"]["wheelhouse"]["targets"]
    locked = {p["name"]: p["version"] for p in data["packages"] if "marker" not in p}
    sdists = sorted(f for f in target["artifacts"] if f.endswith(".tar.gz"))
    assert [f.split("-")[0] for f in sdists] == ["docopt", "markupsafe", "platformdirs", "pluggy"]
    # platformdirs' build (hatchling) needs pluggy, which --no-binary makes an sdist too: its
    # wheel is built first and used in that build environment.
    (pd,) = [f for f in sdists if f.startswith("platformdirs")]
    assert any(
        f.startswith("pluggy-") and f.endswith(".tar.gz") for f in target["sdist-builds"][pd]
    )

    env_vars = dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
    env = nix_build(project, "env", env_vars)
    python = env / "bin" / "python"
    versions = json.loads(
        run(
            python,
            "import json, importlib.metadata as m; import docopt, pluggy, platformdirs, markupsafe;"
            " from markupsafe import _speedups; print(json.dumps({n: m.version(n) for n in "
            f"{sorted(REAL_SDISTS)!r}}}))",
        )
    )
    assert versions == {name: locked[name] for name in REAL_SDISTS} == REAL_SDISTS
    assert run(python, "import markupsafe._speedups as s; print(s.__file__)").endswith(".so")
    assert run(python, "import docopt; print(docopt.docopt('usage: x [-v]', ['-v']))") == (
        "{'-v': True}"
    )
