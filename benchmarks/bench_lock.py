"""Benchmark: locking Plone 6 (examples/plone/requirements.txt, 242 packages) from the index.

    .venv/bin/python benchmarks/bench_lock.py [--rounds N] [--relock-rounds N] [--keep] [--no-write]

Two parts, each interleaved (A B C A B C ...), medians, every run in a new folder:

- cold (EMPTY caches: new ``WHEELHOUSE_CACHE_DIR``, ``PIP_CACHE_DIR``, ``UV_CACHE_DIR``):
  * ``wheelhouse lock``: pip resolves (against wheelhouse's loopback mirror), then the chosen
    files are downloaded and hashed for the wheelhouse NAR hash (most of them while pip
    resolves);
  * ``wheelhouse lock --resolver uv``: the same with ``uv pip compile`` resolving;
  * ``pip lock``: resolves, takes hashes from the index, downloads nothing it can avoid;
  * ``uv pip compile``: resolves (``--format pylock.toml``), downloads nothing;
  * ``uv pip compile + fetch``: then ``uv pip install --no-deps --target`` of the compiled set
    into a new folder (downloads the same files, and unpacks them too): what wheelhouse lock
    does with uv, done by uv alone.
- re-lock (WARM caches, the previous lock in place): one requirement (``rich``, 4 new packages)
  added to Plone; ``wheelhouse lock`` keeps the previous versions (pip or uv resolving); ``pip
  lock`` and ``uv pip compile`` (which also prefers the versions of its existing output file)
  run with the caches their cold run left.

A last cold ``wheelhouse lock -v`` gives where the time goes (its ``lock:`` lines). Writes the
section "Plone lock" of RESULTS.md; run folders are deleted at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench_plone import VENV, machine, med, runs, timed, write_results

from wheelhouse.resolve import DEFAULT_INDEX

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "lock"
REQ = ROOT / "examples" / "plone" / "requirements.txt"
ADDED = "rich"
SECTION = "## Plone lock: wheelhouse lock vs pip lock vs uv"

Cmd = list[str | Path]


def env_for(caches: Path) -> dict[str, str]:
    """Every tool isolated from this machine's configuration, caches under ``caches``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "WHEELHOUSE_"))}
    env.update(
        PATH=f"{VENV}:{env.get('PATH', '')}",  # `--resolver uv` finds the venv's uv
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CACHE_DIR=str(caches / "pip"),
        WHEELHOUSE_CACHE_DIR=str(caches / "wheelhouse"),
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(caches / "uv"),
    )
    return env


def wheelhouse(*extra: str) -> Callable[[Path, Path], list[Cmd]]:
    return lambda out, req: [
        [VENV / "wheelhouse", "lock", "-r", req, "-o", out, "--index-url", DEFAULT_INDEX, *extra]
    ]


def pip_lock(out: Path, req: Path) -> list[Cmd]:
    return [
        [VENV / "python", "-m", "pip", "lock", "-r", req, "-o", out, "--index-url", DEFAULT_INDEX]
    ]


def uv_compile(out: Path, req: Path) -> list[Cmd]:
    return [
        [VENV / "uv", "pip", "compile", req, "-o", out, "--format", "pylock.toml",
         "--index-url", DEFAULT_INDEX, "--python", VENV / "python", "--quiet"],
    ]  # fmt: skip


def uv_compile_fetch(out: Path, req: Path) -> list[Cmd]:
    txt = out.with_name("requirements.lock.txt")
    return [
        [VENV / "uv", "pip", "compile", req, "-o", txt, "--generate-hashes",
         "--index-url", DEFAULT_INDEX, "--python", VENV / "python", "--quiet"],
        [VENV / "uv", "pip", "install", "--no-deps", "--target", out.with_name("fetched"),
         "-r", txt, "--index-url", DEFAULT_INDEX, "--python", VENV / "python", "--quiet"],
    ]  # fmt: skip


COLD: dict[str, Callable[[Path, Path], list[Cmd]]] = {
    "wheelhouse lock": wheelhouse(),
    "wheelhouse lock --resolver uv": wheelhouse("--resolver", "uv"),
    "pip lock": pip_lock,
    "uv pip compile": uv_compile,
    "uv pip compile + fetch": uv_compile_fetch,
}
RELOCK = {
    "wheelhouse lock": "wheelhouse lock",
    "wheelhouse lock --resolver uv": "wheelhouse lock --resolver uv",
    "pip lock": "pip lock",
    "uv pip compile": "uv pip compile",
}
"""Re-lock rows, each from the folder (lock and caches) of a cold run of the named tool."""


def run_all(cmds: list[Cmd], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU time of ``cmds`` run one after the other."""
    wall = cpu = 0.0
    for cmd in cmds:
        w, c, _ = timed(cmd, env=env, cwd=cwd)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def packages(lock: Path) -> int:
    return lock.read_text().count("[[packages]]") if lock.exists() else 0


def bench(base: Path, rounds: int, relock_rounds: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {"cold": {}, "cpu": {}, "relock": {}, "n": {}}
    last: dict[str, Path] = {}
    for i in range(rounds):
        for n, (tool, make) in enumerate(COLD.items()):
            d = base / f"cold-{i}-{n}"
            d.mkdir(parents=True)
            out = d / "pylock.toml"
            wall, cpu = run_all(make(out, REQ), env_for(d / "caches"), d)
            results["cold"].setdefault(tool, []).append(wall)
            results["cpu"].setdefault(tool, []).append(cpu)
            results["n"][tool] = [float(packages(out))]
            last[tool] = d
            print(f"  cold {tool} #{i}: {wall:.2f} s", flush=True)
    for i in range(relock_rounds):
        for n, (row, source) in enumerate(RELOCK.items()):
            d = base / f"relock-{i}-{n}"
            d.mkdir(parents=True)
            out = d / "pylock.toml"
            shutil.copy2(last[source] / "pylock.toml", out)
            added = d / "requirements.txt"
            added.write_text(f"-r {REQ}\n{ADDED}\n")
            cmds = COLD[source](out, added)
            wall, _ = run_all(cmds, env_for(last[source] / "caches"), d)
            results["relock"].setdefault(row, []).append(wall)
            results["n"][f"relock {row}"] = [float(packages(out))]
            print(f"  re-lock {row} #{i}: {wall:.2f} s", flush=True)
    return results


def breakdown(base: Path) -> list[str]:
    """The ``lock:`` timing lines of one cold ``wheelhouse lock -v``."""
    d = base / "breakdown"
    d.mkdir()
    cmd = [str(c) for c in wheelhouse("-v")(d / "pylock.toml", REQ)[0]]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env_for(d / "caches"), cwd=d, capture_output=True, text=True, check=True
    )
    total = time.perf_counter() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("lock:", "pip for"))]
    return [*lines, f"total: {total:.2f} s"]


def section(
    res: dict[str, dict[str, list[float]]], split: list[str], args: argparse.Namespace
) -> str:
    cold, cpu, relock, n = res["cold"], res["cpu"], res["relock"], res["n"]
    ours = med(cold["wheelhouse lock"])
    cold_rows = "\n".join(
        f"| {t} | {int(n[t][0]) or '-'} | {med(v):.2f} s | {med(cpu[t]):.2f} s | "
        f"{med(v) / ours:.2f}x | {runs(v)} |"
        for t, v in cold.items()
    )
    relock_rows = "\n".join(
        f"| {t} | {int(n['relock ' + t][0])} | {med(v):.2f} s | {runs(v)} |"
        for t, v in relock.items()
    )
    uv_ratio = med(cold["wheelhouse lock --resolver uv"]) / med(cold["uv pip compile + fetch"])
    pip_ratio = ours / med(cold["pip lock"])
    info = "\n".join(machine())
    return f"""{SECTION}

`.venv/bin/python benchmarks/bench_lock.py` ({args.rounds} cold rounds, {args.relock_rounds}
re-lock rounds, interleaved, medians; see the script's docstring for what each row runs).
examples/plone/requirements.txt (`Plone`) against the public index over the network.

{info}

Cold (empty caches). wheelhouse lock / pip lock: **{pip_ratio:.2f}x**; wheelhouse lock
--resolver uv / (uv pip compile + fetch): **{uv_ratio:.2f}x**. CPU is user + sys of all processes.

| tool | packages | wall | CPU | vs wheelhouse lock | runs (s) |
|---|---|---|---|---|---|
{cold_rows}

Re-lock with `{ADDED}` added (warm caches, the previous lock in place):

| tool | packages | wall | runs (s) |
|---|---|---|---|
{relock_rows}

Where a cold `wheelhouse lock` spends its time (`-v`, one more run):

```
{chr(10).join(split)}
```
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold rounds per tool")
    parser.add_argument("--relock-rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    base = WORK / time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True)
    try:
        res = bench(base, args.rounds, args.relock_rounds)
        split = breakdown(base)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    text = section(res, split, args)
    print(text)
    if not args.no_write:
        write_results({SECTION: text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
