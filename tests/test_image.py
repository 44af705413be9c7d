"""``wheelhouse image``: layered, byte-reproducible OCI images of an installed env.

Envs are made with the real install engine from wheels built on the fly; images are checked with
the real tools (``skopeo inspect``/``copy``, ``umoci unpack``) and run with ``chroot`` from the
unpacked root filesystem, the host interpreter added as extra paths.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import HOST_PYTHON, require
from contract import run_cli
from imagetools import chroot_run, host_python_paths, image_layers, skopeo_inspect, umoci_unpack
from wheelmaker import artifact_for, make_wheel

from wheelhouse.errors import ImageError
from wheelhouse.image import Link, Source, _header, write_tar
from wheelhouse.install import install_env
from wheelhouse.layers import (
    LayerPlan,
    Package,
    bucket_of,
    own_files,
    parse_layer_spec,
    parse_references_graph,
    plan_layers,
    record_files,
)

EPOCH = 1_700_000_000


def make_env(prefix: Path, wheels_dir: Path, pins: dict[str, str]) -> list[str]:
    """An env from small wheels: ``big`` (one large module), ``small`` (a console script),
    ``withpth`` (a .pth file) and ``bumped`` at ``pins['bumped']``; returns the import names."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheels = [
        make_wheel(wheels_dir, "big", "1.0", {"big/__init__.py": "DATA = " + repr("x" * 200_000)}),
        make_wheel(
            wheels_dir,
            "small",
            "1.0",
            {"small/__init__.py": "", "small/cli.py": "def main():\n    print('small says hi')\n"},
            entry_points={"console_scripts": {"small": "small.cli:main"}},
        ),
        make_wheel(
            wheels_dir,
            "withpth",
            "1.0",
            {"withpth_pkg/__init__.py": "", "withpth.pth": "import withpth_pkg\n"},
        ),
        make_wheel(
            wheels_dir,
            "bumped",
            pins["bumped"],
            {"bumped/__init__.py": f"VERSION = {pins['bumped']!r}\n"},
        ),
    ]
    install_env([(artifact_for(w), w) for w in wheels], prefix, python=HOST_PYTHON, replace=True)
    return ["big", "small", "withpth_pkg", "bumped"]


def build(prefix: Path, output: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_cli(capsys, "image", prefix, "--output", output, *extra)
    assert outcome.rc == 0, outcome.err


@pytest.fixture(scope="module")
def host_paths() -> list[str]:
    return host_python_paths()


def tar_members(blob: Path) -> list[tarfile.TarInfo]:
    raw = blob.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return tf.getmembers()


# --- pure layering ------------------------------------------------------------------------------


def pkg(name: str, size: int, version: str = "1") -> Package:
    return Package(name, version, (f"lib/{name}/x.py",), size)


def test_every_package_gets_its_own_layer_while_layers_last() -> None:
    plans = plan_layers(
        [pkg("a", 10), pkg("b", 30)], closure=["/nix/store/x-py"], extra_paths=[], top_files=["f"]
    )
    assert [p.label for p in plans] == [
        "closure /nix/store/x-py",
        "package b 1",
        "package a 1",
        "top: bin, .pth, env files",
    ]


def test_over_the_limit_largest_alone_rest_in_stable_buckets() -> None:
    packages = [pkg(f"p{i:03}", 1000 - i) for i in range(40)]
    plans = plan_layers(packages, closure=[], extra_paths=["/usr"], top_files=[], max_layers=12)
    assert len(plans) == 12
    own = [p for p in plans if p.label.startswith("package ")]
    shared = [p for p in plans if p.label.startswith("packages ")]
    # 12 - extra - top = 10 free: 2 buckets (one in five), the 8 largest alone
    assert [p.packages[0].name for p in own] == [f"p{i:03}" for i in range(8)]
    assert sum(len(p.packages) for p in shared) == 32
    # a version bump keeps every package in the layer it was in
    bumped = [pkg(p.name, p.size, "2") if p.name == "p020" else p for p in packages]
    after = plan_layers(bumped, closure=[], extra_paths=["/usr"], top_files=[], max_layers=12)

    def names(ps: list[LayerPlan]) -> list[list[str]]:
        return [[q.name for q in p.packages] for p in ps]

    assert names(after) == names(plans)
    assert bucket_of("p020", 2) == bucket_of("p020", 2)


def test_layer_spec_layers_come_first_and_reference_graph_parses() -> None:
    spec = parse_layer_spec("# core\nB a\n\n", "spec.txt")
    assert spec == [["b", "a"]]
    plans = plan_layers(
        [pkg("a", 1), pkg("b", 2), pkg("c", 3)], closure=[], extra_paths=[], top_files=[], spec=spec
    )
    assert [p.label for p in plans][:2] == ["packages b 1 a 1", "package c 1"]
    graph = "/nix/store/a-env\n\n2\n/nix/store/a-env\n/nix/store/b-py\n/nix/store/b-py\n/d\n0\n"
    assert parse_references_graph(graph, "g") == ["/nix/store/a-env", "/nix/store/b-py"]


def test_record_rows_give_paths_and_the_sizes_they_state() -> None:
    """The fast row split (no CSV reader, no normpath for plain paths) reads what the CSV
    reader reads: quoted paths, script paths out of site-packages, rows without a size."""
    site = "lib/python3.11/site-packages"
    record = (
        "a/__init__.py,sha256=x,12\n"
        '"a/we,ird.txt",sha256=y,7\n'
        "a/__pycache__/__init__.cpython-311.pyc,,\n"
        "../../../bin/a,sha256=z,40\n"
        "./a/./b.py,sha256=w,3\n"
        "a-1.dist-info/RECORD,,\n"
        "\n"
    )
    assert record_files(record, f"{site}/a-1.dist-info", site, "a 1") == {
        f"{site}/a/__init__.py": 12,
        f"{site}/a/we,ird.txt": 7,
        f"{site}/a/__pycache__/__init__.cpython-311.pyc": None,
        "bin/a": 40,
        f"{site}/a/b.py": 3,
        f"{site}/a-1.dist-info/RECORD": None,
    }
    with pytest.raises(ImageError, match="outside the prefix"):
        record_files("../../../../etc/passwd,,\n", f"{site}/a-1.dist-info", site, "a 1")


def test_record_listing_scripts_goes_on_top_with_them() -> None:
    site = "lib/python3.11/site-packages"
    record = f"{site}/a-1.dist-info/RECORD"
    paths = [f"{site}/a/__init__.py", record, "bin/a", f"{site}/a.pth"]
    assert own_files(paths, record, [site]) == (f"{site}/a/__init__.py",)
    assert own_files(paths[:2], record, [site]) == (record, f"{site}/a/__init__.py")


@pytest.mark.parametrize(
    ("name", "kind", "mode", "size", "link"),
    [
        ("a/b.py", tarfile.REGTYPE, 0o644, 123, ""),
        ("d", tarfile.DIRTYPE, 0o755, 0, ""),
        ("l", tarfile.SYMTYPE, 0o777, 0, "/x/y"),
        ("l", tarfile.SYMTYPE, 0o777, 0, "/" + "t" * 120),  # target too long for ustar
        ("x" * 90 + "/" + "y" * 60, tarfile.REGTYPE, 0o755, 5, ""),
        ("x" * 90 + "/" + "y" * 60, tarfile.DIRTYPE, 0o755, 0, ""),
        ("x" * 200 + "/" + "y" * 60, tarfile.REGTYPE, 0o644, 1, ""),  # too long for ustar
        ("caf\u00e9.py", tarfile.REGTYPE, 0o644, 1, ""),  # not ASCII
    ],
)
def test_tar_headers_are_what_tarfile_writes(
    name: str, kind: bytes, mode: int, size: int, link: str
) -> None:
    """Our fast header writer gives tarfile's ustar header where ustar fits, else pax."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname, info.mtime = kind, mode, size, link, EPOCH
    info.uname = info.gname = ""
    try:
        if not name.isascii():  # pax says its path is UTF-8; ustar has no encoding
            raise ValueError(name)
        expected = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError:
        expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert _header(name, kind, mode, size, link, EPOCH) == expected


def test_tar_entries_around_the_write_buffer_read_back(tmp_path: Path) -> None:
    """Headers, contents and padding split across the writer's buffer, and a pax header larger
    than the whole buffer, come out as tarfile reads them."""
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 1000 + b"!")  # several buffers, not whole blocks
    entries: dict[str, Source] = {
        "d" * 70_000: None,
        "lib/big": (str(big), stat.S_IFREG),
        "lib/link": Link("big"),
    }
    entries.update({f"lib/small{i}": (str(big), stat.S_IFREG) for i in range(3)})
    out = io.BytesIO()
    write_tar(out, entries, EPOCH)
    # the same members written by tarfile: the same bytes (tarfile then pads to a record)
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(["lib", *entries]):
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname = EPOCH, "", ""
            source = entries.get(name)
            if isinstance(source, tuple):
                info.size, info.mode = big.stat().st_size, 0o644
                tf.addfile(info, big.open("rb"))
            else:
                info.type = tarfile.SYMTYPE if source else tarfile.DIRTYPE
                info.mode = 0o777 if source else 0o755
                info.linkname = source.target if source else ""
                tf.addfile(info)
    written = out.getvalue()
    assert written == expected.getvalue()[: len(written)]
    assert not expected.getvalue()[len(written) :].strip(b"\0")


# --- real images --------------------------------------------------------------------------------


def test_image_passes_skopeo_and_umoci_and_runs_every_package(
    tmp_path: Path,
    host_paths: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    prefix = tmp_path / "env"
    modules = make_env(prefix, tmp_path / "wheels", {"bumped": "1.0"})
    # A setuid file the env does not own: its bits must not enter the image.
    (prefix / "tool").write_text("#!/bin/sh\n")
    (prefix / "tool").chmod(0o4755)
    oci = tmp_path / "oci"
    extra = [a for p in host_paths for a in ("--extra-path", p)]
    build(prefix, oci, *extra, "--name", "demo", "--tag", "1.0", "--user", "1000",
          "--env", "LANG=C.UTF-8", capsys=capsys)  # fmt: skip

    info = skopeo_inspect(f"oci:{oci}:1.0")
    assert info["Labels"]["org.opencontainers.image.title"] == "demo"  # type: ignore[index]
    assert "PYTHONDONTWRITEBYTECODE=1" in info["Env"]  # type: ignore[operator]
    labels = [label for label, _ in image_layers(oci)]
    # interpreter at the bottom, the largest package next, the env's own files on top
    assert labels[:2] == ["extra paths", "package big 1.0"]
    assert labels[-1] == "top: bin, .pth, env files"
    assert sorted(labels[2:5]) == ["package bumped 1.0", "package small 1.0", "package withpth 1.0"]
    config = json.loads(
        (oci / "blobs/sha256" / json.loads(
            (oci / "blobs/sha256" / json.loads((oci / "index.json").read_text())["manifests"][0][
                "digest"][7:]).read_text())["config"]["digest"][7:]).read_text()
    )  # fmt: skip
    assert config["config"]["Entrypoint"] == [f"{prefix}/bin/python"]
    assert config["config"]["User"] == "1000"
    assert config["created"] == "2023-11-14T22:13:20Z"

    # Every layer: sorted, numeric root owner, no names, fixed mtime, no setuid, links kept.
    by_name: dict[str, tarfile.TarInfo] = {}
    for _, digest in image_layers(oci):
        members = tar_members(oci / "blobs" / "sha256" / digest[7:])
        names = [m.name for m in members]
        assert names == sorted(names)
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH), m.name
            assert not m.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), m.name
            assert not m.pax_headers.keys() - {"path", "linkpath"}, m.pax_headers
            by_name[m.name] = m
    rel = str(prefix).strip("/")
    assert by_name[f"{rel}/bin/python"].issym()
    assert by_name[f"{rel}/bin/python"].linkname == os.readlink(prefix / "bin" / "python")
    assert by_name[f"{rel}/tool"].mode == 0o755

    rootfs = umoci_unpack(oci, "1.0", tmp_path / "bundle")
    code = f"import {', '.join(modules)}; print(bumped.VERSION, len(big.DATA))"
    ran = chroot_run(rootfs, f"{prefix}/bin/python", "-c", code)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["1.0", "200000"]
    # bytecode names its source relative to the prefix; import gives it the real path
    code = "import small.cli; print(small.cli.main.__code__.co_filename)"
    ran = chroot_run(rootfs, f"{prefix}/bin/python", "-c", code)
    assert ran.stdout.strip() == f"{prefix}/lib/python3.11/site-packages/small/cli.py", ran.stderr
    ran = chroot_run(rootfs, f"{prefix}/bin/small")
    assert (ran.returncode, ran.stdout) == (0, "small says hi\n"), ran.stderr

    archive = tmp_path / "copied.tar"
    copied = subprocess.run(
        [require("skopeo"), "copy", f"oci:{oci}:1.0", f"docker-archive:{archive}:demo:1.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr
    # docker-archive stores layers uncompressed: their digests are the config's diff_ids
    assert skopeo_inspect(f"docker-archive:{archive}")["Layers"] == config["rootfs"]["diff_ids"]


def test_two_builds_are_byte_identical_and_docker_archive_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    prefix = tmp_path / "env"
    make_env(prefix, tmp_path / "wheels", {"bumped": "1.0"})
    outputs = []
    for i in range(2):
        out = tmp_path / f"oci{i}"
        build(prefix, out, "--extra-path", HOST_PYTHON, capsys=capsys)
        outputs.append(
            {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        )
        archive = tmp_path / f"image{i}.tar"
        build(prefix, archive, "--format", "docker-archive", "--tag", "t",
              "--extra-path", HOST_PYTHON, capsys=capsys)  # fmt: skip
    assert outputs[0] == outputs[1]
    assert (tmp_path / "image0.tar").read_bytes() == (tmp_path / "image1.tar").read_bytes()
    with tarfile.open(tmp_path / "image0.tar") as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["python-env:t"]
    info = skopeo_inspect(f"docker-archive:{tmp_path / 'image0.tar'}")
    assert len(info["Layers"]) == 6  # type: ignore[arg-type]
    copied = subprocess.run(
        [require("skopeo"), "copy", f"docker-archive:{tmp_path / 'image0.tar'}",
         f"oci:{tmp_path / 'fromarchive'}:t"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr


def test_bumping_one_pin_changes_only_that_package_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    prefix = tmp_path / "env"
    images = []
    for version in ("1.0", "1.1"):
        make_env(prefix, tmp_path / f"wheels-{version}", {"bumped": version})
        out = tmp_path / f"oci-{version}"
        build(prefix, out, "--extra-path", HOST_PYTHON, capsys=capsys)
        images.append(dict(image_layers(out)))
    before, after = images
    assert before.pop("package bumped 1.0") != after.pop("package bumped 1.1")
    # the top layer holds bin/ and .pth files, which this bump does not touch: all the same
    assert before == after
