"""Benchmark: Plone 6 (examples/plone, 242 packages) as a layered OCI image.

    .venv/bin/python benchmarks/bench_image.py [--rounds N] [--bump PKG==VERSION]... [--no-write]
    .venv/bin/python benchmarks/bench_image.py --build-only --rounds 9   # build time only

Parts (section "Plone image" of ``benchmarks/RESULTS.md``):

- one-pin bump: the Plone wheels (the wheelhouse derivation of ``examples/plone``) installed
  with ``install_env`` into ``benchmarks/work/image/<run>/env-base``, imaged with
  ``--image-prefix /opt/plone`` (as ``mkImage`` does); then the same set with one package at
  another version (``pip download --no-deps``) installed into ANOTHER prefix (as a Nix rebuild
  gets a new store path) and imaged the same way. Reported per bump: the layers
  whose digest changed, their bytes and the share of the image's bytes (the goal is < 5%; an
  image with the env in one layer re-ships 100%).
- build time: ``wheelhouse image`` of the Nix-built Plone env plus the host interpreter's files
  (uncompressed layers, and gzip) against ``tar --sort=name -cf`` of the same paths (the I/O
  floor; and ``tar | gzip -6``), interleaved (A B C D A B C D ...), each run a fresh process
  writing a new folder, medians of wall and CPU time; image size against the env's size.

Needs Nix (the env and wheelhouse of examples/plone, built once untimed) and PyPI for the bumped
wheels. Writes its section of RESULTS.md and keeps the others.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench_plone import write_results

from wheelhouse.resolve import DEFAULT_INDEX

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "image"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Plone image: layers after a one-pin bump, build time against tar"
EXAMPLE = ROOT / "examples" / "plone"
PYTHON = "/usr/bin/python3"
DEFAULT_BUMPS = ["plone.restapi==10.0.3", "certifi==2026.10.18"]

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

INSTALL = """
import json, sys
from pathlib import Path
from wheelhouse.install import install_env
from wheelhouse.model import Artifact
spec = json.loads(Path(sys.argv[1]).read_text())
install_env([(Artifact(**a), Path(p)) for a, p in spec], Path(sys.argv[2]),
            python=sys.argv[3], replace=True)
"""


def timed(cmd: Sequence[str | Path], *, shell: bool = False) -> tuple[float, float]:
    """Wall and CPU time (user + sys of the process tree) of a command that must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd if shell else [str(c) for c in cmd],  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        shell=shell,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"error: {cmd} failed:\n{proc.stderr[-4000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def nix_build(attr: str) -> Path:
    out = subprocess.run(
        ["nix-build", str(EXAMPLE), "-A", attr, "--no-out-link", "--option", "substituters", ""],
        capture_output=True,
        text=True,
        env=dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt"),
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"error: nix-build -A {attr} failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def tree_bytes(paths: Sequence[str | Path]) -> int:
    total = 0
    for root in paths:
        if os.path.islink(root) or not os.path.isdir(root):
            total += os.lstat(root).st_size
            continue
        for dirpath, _dirs, files in os.walk(root):
            total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total


def blob_bytes(oci: Path) -> int:
    return sum(p.stat().st_size for p in (oci / "blobs" / "sha256").iterdir())


def spec_file(wheels: Sequence[Path], path: Path) -> Path:
    from packaging.utils import parse_wheel_filename

    spec = []
    for wheel in sorted(wheels):
        name, version, _b, _t = parse_wheel_filename(wheel.name)
        content = wheel.read_bytes()
        spec.append([
            {"filename": wheel.name, "package": str(name), "version": str(version),
             "sha256": hashlib.sha256(content).hexdigest(), "kind": "wheel",
             "path": str(wheel), "size": len(content)},
            str(wheel),
        ])  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


def image(
    prefix: Path, out: Path, extra: Sequence[str], compression: str, at: str | None = None
) -> tuple[float, float]:
    args = [a for p in extra for a in ("--extra-path", p)]
    args += ["--image-prefix", at] if at else []
    return timed([sys.executable, "-m", "wheelhouse", "image", prefix, "-o", out,
                  "--compression", compression, "--tag", "b", *args])  # fmt: skip


def layer_sizes(oci: Path) -> dict[str, tuple[str, int]]:
    """Layer label (without versions) -> (digest, size)."""
    from imagetools import image_layers

    sizes = {}
    for label, digest in image_layers(oci):
        words = label.split()
        # "package NAME VERSION" / "packages N1 V1 N2 V2 ...": the names identify the layer
        key = " ".join(words[:1] + words[1::2]) if words[0].startswith("package") else label
        sizes[key] = (digest, (oci / "blobs" / "sha256" / digest[7:]).stat().st_size)
    return sizes


def install(spec: Path, prefix: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", INSTALL, spec, prefix, PYTHON],
        check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def bump_part(wheelhouse: Path, extra: list[str], bumps: list[str], run: Path) -> list[str]:
    from packaging.utils import canonicalize_name, parse_wheel_filename

    wheels = sorted(wheelhouse.glob("*.whl"))
    prefix = run / "env-base"
    install(spec_file(wheels, run / "base.json"), prefix)
    base = run / "oci-base"
    image(prefix, base, extra, "gzip", "/opt/plone")
    before = layer_sizes(base)
    total = blob_bytes(base)
    lines = [
        f"Image of the Plone env (gzip): {total / 1e6:.1f} MB in {len(before)} layers "
        f"(242 packages; the host interpreter's files are one layer).",
        "",
        "| bump | changed layers | changed bytes | share of image |",
        "| --- | --- | --- | --- |",
    ]
    for i, bump in enumerate(bumps):
        name = canonicalize_name(bump.split("==")[0])
        dest = run / f"bump{i}"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             bump, "-d", dest, "--index-url", DEFAULT_INDEX],
            check=True, capture_output=True,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
                 "PIP_CONFIG_FILE": os.devnull},
        )  # fmt: skip
        (new,) = dest.glob("*.whl")
        bumped = [w for w in wheels if parse_wheel_filename(w.name)[0] != name] + [new]
        install(spec_file(bumped, dest / "s.json"), run / f"env-bump{i}")
        after_oci = run / f"oci-bump{i}"
        image(run / f"env-bump{i}", after_oci, extra, "gzip", "/opt/plone")
        after = layer_sizes(after_oci)
        changed = sorted(k for k in after if before.get(k, ("", 0))[0] != after[k][0])
        changed_bytes = sum(after[k][1] for k in changed)
        share = changed_bytes / blob_bytes(after_oci)
        old = [str(parse_wheel_filename(w.name)[1]) for w in wheels if w not in bumped]
        lines.append(
            f"| {name} {'/'.join(old)} -> {parse_wheel_filename(new.name)[1]} "
            f"| {len(changed)}: {', '.join(changed)} | {changed_bytes / 1e6:.2f} MB | "
            f"{share:.2%} |"
        )
    lines += [
        "",
        "(Changed bytes: the compressed layers a registry push or pull moves again; the config "
        "and manifest, a few KB, change too.)",
    ]
    return lines


def time_part(env: Path, extra: list[str], rounds: int, run: Path) -> list[str]:
    # An installed wheelhouse has its bytecode; a dev shell's PYTHONDONTWRITEBYTECODE would
    # have every timed run compile the CLI's modules again (tar does not compile itself).
    subprocess.run([sys.executable, "-m", "compileall", "-q", ROOT / "wheelhouse"], check=True)
    paths = [str(env), *extra]
    rel = " ".join(p.lstrip("/") for p in paths)
    variants = {
        "wheelhouse image (uncompressed)": lambda out: image(env, out, extra, "none"),
        "tar --sort=name -cf": lambda out: timed(
            f"tar --sort=name -cf {out}.tar -C / {rel}", shell=True
        ),
        "wheelhouse image (gzip)": lambda out: image(env, out, extra, "gzip"),
        "tar --sort=name -c \\| gzip -6": lambda out: timed(
            f"tar --sort=name -c -C / {rel} | gzip -6 > {out}.tar.gz", shell=True
        ),
    }
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for i, (name, fn) in enumerate(variants.items()):
            wall, cpu = fn(run / f"t{r}-{i}")
            walls[name].append(wall)
            cpus[name].append(cpu)
            print(f"round {r}: {name}: {wall:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    env_bytes = tree_bytes([env])
    all_bytes = tree_bytes(paths)
    oci_none, oci_gz = run / "t0-0", run / "t0-2"
    lines = [
        f"| variant | wall (median of {rounds}) | CPU | runs |",
        "| --- | --- | --- | --- |",
    ]
    for k in variants:
        lines.append(
            f"| {k} | {med[k]:.2f} s | {statistics.median(cpus[k]):.2f} s | "
            f"{', '.join(f'{v:.2f}' for v in walls[k])} |"
        )
    ratio = med["wheelhouse image (uncompressed)"] / med["tar --sort=name -cf"]
    ratio_gz = med["wheelhouse image (gzip)"] / med["tar --sort=name -c \\| gzip -6"]
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    cpu_ratio = cpu["wheelhouse image (uncompressed)"] / cpu["tar --sort=name -cf"]
    lines += [
        "",
        f"Ratio image / tar (same run, medians): **{ratio:.2f}x** uncompressed, "
        f"**{ratio_gz:.2f}x** with gzip (goal: within 1.5x); CPU time {cpu_ratio:.2f}x "
        "uncompressed. The image also computes each "
        "layer's sha256 (tar computes nothing), reads every RECORD and writes 100 layer files "
        f"plus the JSON; layers are written by {min(2, os.cpu_count() or 1)} processes "
        "(`--jobs` default), the interpreter's while the env is read by one more. Per-run "
        "ratios (uncompressed): "
        + ", ".join(
            f"{a / b:.2f}"
            for a, b in zip(
                walls["wheelhouse image (uncompressed)"], walls["tar --sort=name -cf"], strict=True
            )
        )
        + ".",
        "",
        f"Sizes: env {env_bytes / 1e6:.1f} MB of files; env + host interpreter "
        f"{all_bytes / 1e6:.1f} MB; image uncompressed {blob_bytes(oci_none) / 1e6:.1f} MB "
        f"(tar headers and padding), gzip {blob_bytes(oci_gz) / 1e6:.1f} MB; plain tar "
        f"{os.path.getsize(run / 't0-1.tar') / 1e6:.1f} MB.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bump", action="append", help=f"default: {DEFAULT_BUMPS}")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/work/image/<run>")
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="only the build-time part (no PyPI), printed; RESULTS.md is not written",
    )
    args = parser.parse_args()
    from imagetools import host_python_paths

    env = nix_build("env")
    wheelhouse = nix_build("wheelhouse")
    extra = host_python_paths(env)
    run = WORK / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True)
    load_before = os.getloadavg()
    timing = time_part(env, extra, args.rounds, run)
    if args.build_only:
        print("\n".join(timing), f"\nload average {load_before[0]:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after", sep="")  # fmt: skip
        if not args.keep:
            shutil.rmtree(run)
        return 0
    bumps = bump_part(wheelhouse, extra, args.bump or DEFAULT_BUMPS, run)
    load_after = os.getloadavg()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "?",
    )  # fmt: skip
    tar_version = subprocess.run(["tar", "--version"], capture_output=True, text=True).stdout
    import wheelhouse as wh

    text = "\n".join([
        SECTION,
        "",
        f"- date: {datetime.date.today().isoformat()}; machine: {os.cpu_count()} CPUs, {cpu}, "
        f"{platform.system()} {platform.release()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (a shared machine)",
        f"- wheelhouse {wh.__version__} on Python {platform.python_version()}; "
        f"{tar_version.splitlines()[0]}; env {env}",
        "- `.venv/bin/python benchmarks/bench_image.py` (see benchmarks/README.md)",
        "",
        "### One-pin bump",
        "",
        *bumps,
        "",
        "### Build time and size (the Nix-built env plus the host interpreter's files)",
        "",
        *timing,
        "",
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        write_results({SECTION: text})
    if not args.keep:
        shutil.rmtree(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
