"""Helpers for image tests: the host interpreter as extra paths, and the real image tools
(``skopeo``, ``umoci``, ``chroot``) run on what ``wheelhouse image`` wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from conftest import require

HOST_PYTHON_REAL = os.path.realpath("/usr/bin/python3")


def _with_links(path: str) -> list[str]:
    """``path`` with its directory resolved, and every symlink hop from it to a file (a
    library's soname link and the file it names both have to be in the image)."""
    out = []
    current = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    for _ in range(10):
        out.append(current)
        if not os.path.islink(current):
            break
        target = os.readlink(current)
        current = os.path.join(os.path.dirname(current), target)
        current = os.path.join(
            os.path.realpath(os.path.dirname(current)), os.path.basename(current)
        )
    return out


def _ldd(files: Iterable[str]) -> set[str]:
    libs: set[str] = set()
    files = list(files)
    for i in range(0, len(files), 200):
        out = subprocess.run(
            ["ldd", *files[i : i + 200]], capture_output=True, text=True, check=False
        ).stdout
        libs.update(re.findall(r"=> (/\S+)", out))
        libs.update(re.findall(r"^\s+(/\S+) \(", out, re.M))
    return libs


def host_python_paths(*envs: Path, interpreter: bool = True) -> list[str]:
    """The host's /usr/bin/python3 as image paths: the interpreter, its stdlib, every shared
    library it, its extension modules and the env's extension modules load, the loader, and
    Debian's merged-/usr links (/lib -> usr/lib). This is what exportReferencesGraph gives for
    a Nix store interpreter; outside the store it has to be listed by hand. Without
    ``interpreter``: only the libraries and links (the interpreter is a store path)."""
    stdlib = f"/usr/lib/python{HOST_PYTHON_REAL.rsplit('python', 1)[1]}"
    objects = [HOST_PYTHON_REAL, *(str(p) for p in Path(stdlib, "lib-dynload").glob("*.so"))]
    for env in envs:
        objects += [str(p) for p in env.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    paths = {"/usr/bin/python3", HOST_PYTHON_REAL, stdlib} if interpreter else set()
    for name in ("/lib", "/lib64", "/bin", "/sbin"):
        if os.path.islink(name):
            paths.add(name)
    for lib in _ldd(objects):
        paths.update(_with_links(lib))
    # Paths inside the stdlib or the envs are there already.
    roots = [stdlib, *(str(e) for e in envs)]
    return sorted(p for p in paths if not any(p.startswith(r + "/") for r in roots))


def skopeo_inspect(ref: str) -> dict[str, object]:
    out = subprocess.run(
        [require("skopeo"), "inspect", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data: dict[str, object] = json.loads(out.stdout)
    return data


def umoci_unpack(oci: Path, tag: str, bundle: Path) -> Path:
    out = subprocess.run(
        [require("umoci"), "unpack", "--image", f"{oci}:{tag}", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return bundle / "rootfs"


def chroot_run(rootfs: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("running the unpacked image needs chroot, which needs root")
    return subprocess.run(
        [shutil.which("chroot") or "/usr/sbin/chroot", str(rootfs), *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        timeout=timeout,
        check=False,
    )


def image_layers(oci: Path) -> list[tuple[str, str]]:
    """(history label, layer digest) of the one image in an OCI layout, bottom to top."""
    blobs = oci / "blobs" / "sha256"
    index = json.loads((oci / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    labels = [h["created_by"].removeprefix("wheelhouse image: ") for h in config["history"]]
    return list(zip(labels, (layer["digest"] for layer in manifest["layers"]), strict=True))
