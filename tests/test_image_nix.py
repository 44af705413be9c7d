"""``mkImage`` / ``mkProject``'s ``image`` (``bdist_docker``): a real ``nix-build`` of the demo
project's image (one derivation, no nixpkgs, no docker daemon), checked with skopeo, umoci and
chroot, and rebuilt with ``nix-build --check`` to show it is bit-for-bit reproducible.

With nixpkgs' python the interpreter's closure comes from ``exportReferencesGraph`` (one layer
per store path); here the interpreter is the host's ``/usr/bin/python3``, outside the store, so
it is passed as ``imageOptions.extraPaths``.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, ROOT, build_demo_index
from contract import assert_ok, run_cli
from imagetools import chroot_run, host_python_paths, image_layers, skopeo_inspect, umoci_unpack
from indexserver import IndexServer
from test_nix import nix_build
from test_project import make_sample
from wheelmaker import make_wheel

from wheelhouse.cli import main

pytestmark = pytest.mark.integration

PROJECT_NIX = """
{{ python ? {python} }}:
(import {root}/nixlib).mkProject {{
  lock = ./pylock.toml; inherit python; src = ./.; name = "demo";
  imageOptions = builtins.fromJSON (builtins.readFile ./image.json);
}}
"""


@pytest.fixture
def served_project(
    index_server_factory: Callable[..., IndexServer], tmp_path: Path
) -> tuple[Path, IndexServer]:
    root = tmp_path / "files"
    root.mkdir()
    build_demo_index(root, uuid.uuid4().hex)
    server = index_server_factory(root)
    project = tmp_path / "project"
    project.mkdir()
    (project / "default.nix").write_text(PROJECT_NIX.format(python=f'"{HOST_PYTHON}"', root=ROOT))
    lock = ["lock", "alpha", "gamma", "epsilon", "--index-url", server.simple_url]
    assert main([*lock, "-o", str(project / "pylock.toml")]) == 0
    return project, server


@pytest.fixture
def image_project(served_project: tuple[Path, IndexServer]) -> Path:
    return served_project[0]


def write_options(
    project: Path, env: Path | None, *, interpreter: bool = True, **options: object
) -> None:
    extra = host_python_paths(*([env] if env else []), interpreter=interpreter)
    (project / "image.json").write_text(json.dumps({"extraPaths": extra, **options}))


def test_mk_image_builds_a_reproducible_image_that_runs(
    image_project: Path, tmp_path: Path
) -> None:
    built = nix_build(image_project, "env")
    assert built.returncode == 0, built.stderr[-3000:]
    env = Path(built.stdout.strip().splitlines()[-1])
    write_options(
        image_project, env, tag="1.0", layers=[["alpha", "beta"]], entrypoint=[f"{env}/bin/alpha"]
    )
    built = nix_build(image_project, "bdist_docker")
    assert built.returncode == 0, built.stderr[-3000:]
    oci = Path(built.stdout.strip().splitlines()[-1])
    assert oci.name.endswith("-demo-image")

    info = skopeo_inspect(f"oci:{oci}:1.0")
    assert info["Labels"]["org.opencontainers.image.title"] == "demo"  # type: ignore[index]
    labels = [label for label, _ in image_layers(oci)]
    # host interpreter; the spec's layer; one per remaining package; the env's own files
    assert labels == [
        "extra paths",
        "packages alpha 1.0 beta 1.0",
        *labels[2:5],
        "top: bin, .pth, env files",
    ]
    assert sorted(labels[2:5]) == ["package delta 1.0", "package epsilon 2.0", "package gamma 1.0"]

    rootfs = umoci_unpack(oci, "1.0", tmp_path / "bundle")
    probe = "import alpha, beta, gamma, delta, epsilon_pkg, sys; print(gamma.KIND, sys.prefix)"
    ran = chroot_run(rootfs, f"{env}/bin/python", "-c", probe)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["pure", str(env)]
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["args"] == [f"{env}/bin/alpha"]
    ran = chroot_run(rootfs, *config["process"]["args"])
    assert (ran.returncode, ran.stdout) == (0, "alpha says hi\n"), ran.stderr

    # Nix builds it again and compares bit for bit.
    again = nix_build(image_project, "image", "--check")
    assert again.returncode == 0, again.stderr[-3000:]


def test_mk_image_docker_archive(image_project: Path, tmp_path: Path) -> None:
    write_options(image_project, None, format="docker-archive", tag="t")
    built = nix_build(image_project, "image")
    assert built.returncode == 0, built.stderr[-3000:]
    archive = Path(built.stdout.strip().splitlines()[-1])
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["demo:t"]
    info = skopeo_inspect(f"docker-archive:{archive}")
    assert len(info["Layers"]) == 7  # type: ignore[arg-type]  # extra paths, 5 packages, top
    copied = subprocess.run(
        ["skopeo", "copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'copy'}:t"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr


STORE_PYTHON = """(derivation {
  name = "python3-from-host";
  system = builtins.currentSystem;
  builder = "/usr/bin/python3";
  args = [ "-I" "-c" ''
import os, shutil
out = os.environ["out"]
os.makedirs(out + "/bin")
shutil.copy2("/usr/bin/python3.11", out + "/bin/python3.11")
os.symlink("python3.11", out + "/bin/python3")
shutil.copytree("/usr/lib/python3.11", out + "/lib/python3.11", symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "test", "dist-packages"))
'' ];
})"""


def test_store_interpreter_closure_becomes_its_own_layer(
    image_project: Path, tmp_path: Path
) -> None:
    """An interpreter in the store (as nixpkgs' python is): the env references it, and the image
    takes it from exportReferencesGraph as one layer of its own; only its shared libraries,
    which come from the host here, are extra paths."""
    (image_project / "default.nix").write_text(PROJECT_NIX.format(python=STORE_PYTHON, root=ROOT))
    built = nix_build(image_project, "env")
    assert built.returncode == 0, built.stderr[-3000:]
    env = Path(built.stdout.strip().splitlines()[-1])
    python = Path((env / "pyvenv.cfg").read_text().split("home = ")[1].split()[0]).parent
    assert python.name.endswith("-python3-from-host"), python
    write_options(image_project, env, interpreter=False)
    built = nix_build(image_project, "image")
    assert built.returncode == 0, built.stderr[-3000:]
    oci = Path(built.stdout.strip().splitlines()[-1])
    labels = [label for label, _ in image_layers(oci)]
    assert labels[:2] == [f"closure {python}", "extra paths"]
    rootfs = umoci_unpack(oci, "latest", tmp_path / "bundle")
    ran = chroot_run(rootfs, f"{env}/bin/python", "-c", "import alpha, os; print(os.__file__)")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"{python}/lib/python3.11/os.py"


def test_one_pin_bump_in_the_lock_changes_one_package_layer(
    served_project: tuple[Path, IndexServer],
) -> None:
    """Bumping epsilon in the lock gives a new env store path, but the image puts the env at
    its imagePrefix and bytecode does not name the prefix: only epsilon's layer and the top
    layer (scripts' shebangs, the store path's symlink) change."""
    project, server = served_project
    write_options(project, None)
    images = []
    for pin in ("epsilon", "epsilon==2.1"):
        if pin != "epsilon":
            make_wheel(
                server.root,
                "epsilon",
                "2.1",
                {"epsilon_pkg/__init__.py": "VERSION = '2.1'\n",
                 "epsilon.pth": "import epsilon_pkg; epsilon_pkg.LOADED = 1\n"},
            )  # fmt: skip
            lock = ["lock", "alpha", "gamma", pin, "--index-url", server.simple_url]
            assert main([*lock, "-o", str(project / "pylock.toml")]) == 0
        built = nix_build(project, "image")
        assert built.returncode == 0, built.stderr[-3000:]
        images.append(dict(image_layers(Path(built.stdout.strip().splitlines()[-1]))))
    before, after = images
    assert before.pop("package epsilon 2.0") != after.pop("package epsilon 2.1")
    assert [k for k in before if before[k] != after[k]] == ["top: bin, .pth, env files"]
    assert before.keys() == after.keys()


APP_NIX = """
{{ python ? "{python}" }}:
(import {root}/nixlib).mkProject {{
  src = ./.; lock = ./pylock.toml; inherit python; name = "sample";
  imageOptions = builtins.fromJSON (builtins.readFile {options});
}}
"""


def test_bdist_docker_of_a_project_is_its_app_over_the_env_layers(
    sample_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """For a locked project, bdist_docker images `build` (the project installed over the env):
    the app prefix is one layer (from its closure), the env's packages keep theirs, and the
    project's console script runs from the unpacked image."""
    project = make_sample(tmp_path / "sample")
    # the options live outside the source: a change there must not rebuild the app
    app_nix = APP_NIX.format(python=HOST_PYTHON, root=ROOT, options=tmp_path / "image.json")
    (project / "default.nix").write_text(app_nix)
    assert_ok(
        run_cli(capsys, "lock", project, "--python", HOST_PYTHON,
                "--index-url", sample_index.simple_url, "-o", project / "pylock.toml")
    )  # fmt: skip
    write_options(tmp_path, None)
    built = nix_build(project, "build")
    assert built.returncode == 0, built.stderr[-3000:]
    app = Path(built.stdout.strip().splitlines()[-1])
    write_options(tmp_path, None, tag="1", entrypoint=[f"{app}/bin/sample"])
    built = nix_build(project, "bdist_docker")
    assert built.returncode == 0, built.stderr[-3000:]
    oci = Path(built.stdout.strip().splitlines()[-1])
    labels = [label for label, _ in image_layers(oci)]
    assert labels[0] == f"closure {app}"
    assert {"package alpha 1.0", "package beta 1.0"} <= set(labels)
    assert not [label for label in labels if "sample" in label.split(" ")[1:2]]
    rootfs = umoci_unpack(oci, "1", tmp_path / "bundle")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    ran = chroot_run(rootfs, *config["process"]["args"])
    assert (ran.returncode, ran.stdout) == (0, "hello from the tree\n"), ran.stderr
