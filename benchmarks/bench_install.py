"""Benchmark: install the Plone 6 wheel set into an empty prefix, wheelhouse vs pip vs uv.

    .venv/bin/python benchmarks/bench_install.py [--rounds N] [--jobs N] [--keep]

Downloads the wheels once (``pip download Plone --only-binary :all:`` into
``benchmarks/work/plone-wheels``, gitignored), then times interleaved runs (A B C A B C ...), each
in a fresh process and into a new directory; outputs are deleted only after the last run, because
deleting big trees slows the file creations that follow on some filesystems. Tools:

- wheelhouse: ``install_env`` (bytecode on), in a fresh ``python -c`` process;
- pip: ``pip install --no-deps --target NEW --no-index --find-links WHEELS <wheels>``
  (bytecode on by default);
- uv: ``uv pip install --no-deps --target NEW --compile-bytecode --cache-dir FRESH --no-index``
  (cold cache: a new cache directory per run, on the same filesystem).

Prints medians and ratios and writes the section "## Install: Plone 6 wheels into an empty
prefix" of ``benchmarks/RESULTS.md`` (other sections are kept).
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
from importlib import metadata
from pathlib import Path

from bench_plone import write_results

from wheelhouse.resolve import DEFAULT_INDEX

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
WHEELS = WORK / "plone-wheels"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Install: Plone 6 wheels into an empty prefix"

WHEELHOUSE_RUN = """
import json, sys
from pathlib import Path
from wheelhouse.install import install_env
from wheelhouse.model import Artifact
spec = json.loads(Path(sys.argv[1]).read_text())
jobs = int(sys.argv[3]) if sys.argv[3] != "0" else None
report = install_env(
    [(Artifact(**a), Path(p)) for a, p in spec], Path(sys.argv[2]), jobs=jobs
)
print(report.wheels, report.files, report.bytecode, len(report.warnings))
"""


def isolated_env() -> dict[str, str]:
    """Environment for pip/uv that ignores user configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # every tool writes its bytecode
    return env


def download() -> list[Path]:
    wheels = sorted(WHEELS.glob("*.whl"))
    if wheels:
        return wheels
    WHEELS.mkdir(parents=True, exist_ok=True)
    print(f"downloading the Plone wheel set into {WHEELS} ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "Plone",
            "--only-binary",
            ":all:",
            "-d",
            str(WHEELS),
            "--index-url",
            DEFAULT_INDEX,
        ],
        check=True,
        env=isolated_env(),
    )
    return sorted(WHEELS.glob("*.whl"))


def artifacts_file(wheels: list[Path]) -> Path:
    from packaging.utils import parse_wheel_filename

    spec = []
    for wheel in wheels:
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        content = wheel.read_bytes()
        artifact = {
            "filename": wheel.name,
            "package": str(name),
            "version": str(version),
            "sha256": hashlib.sha256(content).hexdigest(),
            "kind": "wheel",
            "path": str(wheel),
            "size": len(content),
        }
        spec.append([artifact, str(wheel)])
    path = WORK / "plone-artifacts.json"
    path.write_text(json.dumps(spec))
    return path


def uv_binary() -> str:
    candidate = Path(sys.executable).with_name("uv")
    return str(candidate) if candidate.exists() else (shutil.which("uv") or "uv")


def commands(tool: str, out: Path, wheels: list[Path], spec: Path, jobs: int) -> list[str]:
    files = [str(w) for w in wheels]
    if tool == "wheelhouse":
        return [sys.executable, "-c", WHEELHOUSE_RUN, str(spec), str(out / "env"), str(jobs)]
    if tool == "pip":
        return [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(out / "env"),
            "--no-index",
            "--find-links",
            str(WHEELS),
            *files,
        ]
    if tool == "uv":
        return [
            uv_binary(),
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(out / "env"),
            "--compile-bytecode",
            "--cache-dir",
            str(out / "uv-cache"),
            "--no-index",
            "--python",
            sys.executable,
            *files,
        ]
    raise ValueError(tool)


def count(tree: Path) -> tuple[int, int]:
    files = pycs = 0
    for _dirpath, _dirnames, filenames in os.walk(tree):
        files += len(filenames)
        pycs += sum(f.endswith(".pyc") for f in filenames)
    return files, pycs


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    uv = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    sys.path.insert(0, str(ROOT))
    import wheelhouse

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pip": version_of("pip"),
        "uv": uv.removeprefix("uv ") or version_of("uv"),
        "installer": version_of("installer"),
        "wheelhouse": wheelhouse.__version__,
        "os": f"{platform.system()} {platform.release()}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=0, help="wheelhouse jobs (0: CPU count)")
    parser.add_argument("--tools", default="wheelhouse,pip,uv")
    parser.add_argument("--keep", action="store_true", help="keep the installed trees")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    tools = args.tools.split(",")

    wheels = download()
    spec = artifacts_file(wheels)
    size = sum(w.stat().st_size for w in wheels)
    runs_dir = WORK / "runs" / time.strftime("%Y%m%d-%H%M%S")
    runs_dir.mkdir(parents=True)
    env = isolated_env()
    env["PYTHONPATH"] = str(ROOT)
    times: dict[str, list[float]] = {t: [] for t in tools}
    cpus: dict[str, list[float]] = {t: [] for t in tools}
    loads: list[float] = []
    shape: dict[str, tuple[int, int]] = {}
    print(f"{len(wheels)} wheels, {size / 1e6:.1f} MB; {args.rounds} rounds of {tools}", flush=True)
    try:
        for round_ in range(args.rounds):
            for tool in tools:
                out = runs_dir / f"{tool}-{round_}"
                out.mkdir()
                cmd = commands(tool, out, wheels, spec, args.jobs)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
                elapsed = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                if proc.returncode != 0:
                    print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"{tool} failed with status {proc.returncode}")
                times[tool].append(elapsed)
                cpus[tool].append(cpu)
                loads.append(os.getloadavg()[0])
                shape[tool] = count(out / "env")
                print(
                    f"round {round_ + 1}: {tool:<10} {elapsed:6.2f} s  (cpu {cpu:6.2f} s, "
                    f"load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(runs_dir, ignore_errors=True)

    medians = {t: statistics.median(v) for t, v in times.items()}
    info = machine()
    lines = [
        SECTION,
        "",
        f"Date: {datetime.date.today().isoformat()}. Command: "
        f"`.venv/bin/python benchmarks/bench_install.py --rounds {args.rounds}`.",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}; {info['python']}; "
        f"pip {info['pip']}, uv {info['uv']}, installer {info['installer']}, "
        f"wheelhouse {info['wheelhouse']}.",
        "",
        f"Input: {len(wheels)} wheels ({size / 1e6:.1f} MB) from `pip download Plone "
        f"--only-binary :all:`. Each run installs all of them, with bytecode, into a new "
        f"directory, in a fresh process; runs are interleaved, outputs deleted at the end.",
        "",
        f"Other load on the machine (1-minute load average after each run): "
        f"{min(loads):.2f} to {max(loads):.2f}.",
        "",
        "| tool | median wall (s) | runs (s) | median CPU user+sys (s) | files | .pyc |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for tool in tools:
        runs = ", ".join(f"{t:.2f}" for t in times[tool])
        files, pycs = shape[tool]
        cpu = statistics.median(cpus[tool])
        lines.append(f"| {tool} | {medians[tool]:.2f} | {runs} | {cpu:.2f} | {files} | {pycs} |")
    lines.append("")
    if "wheelhouse" in medians:
        ours = medians["wheelhouse"]
        for other in ("uv", "pip"):
            if other in medians:
                lines.append(
                    f"- wheelhouse / {other}: {ours / medians[other]:.2f}x the time "
                    f"({medians[other] / ours:.2f}x faster)"
                )
    lines += [
        "",
        "pip: `pip install --no-deps --target NEW --no-index --find-links WHEELS <wheels>`; uv: "
        "`uv pip install --no-deps --target NEW --compile-bytecode --cache-dir FRESH --no-index "
        "<wheels>`; wheelhouse: `install_env(...)` (a full venv, validated against RECORD and "
        "the lock's sha256).",
        "",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        write_results({SECTION: text})
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
