"""Benchmark: a one-line change in a Plone add-on, with the project targets (issue: develop/build).

    .venv/bin/python benchmarks/bench_project.py [--rounds N] [--keep] [--no-write]

A Plone add-on style project (setuptools, ``dependencies = ["Plone"]``, a console script, src
layout) is locked once for /usr/bin/python3 (untimed, like the first build of every target that
fetches the wheelhouse). Then, per round, interleaved:

- ``full env``: the dependency env built again from the fetched wheelhouse (a fresh
  ``benchRun`` attribute makes a new derivation: 242+ wheels installed and compiled), which is
  what a per-project env would cost on every change;
- ``build after a change``: one line of the add-on's source changed, then ``nix-build -A
  build``: the project's wheel is rebuilt offline and installed over the reused env;
- ``develop re-entry``: after the same change, ``nix-shell -A develop --run true``.

Each row gives the median wall time, every run and the number of derivations Nix built (read
from its "will be built" list). Writes the section "Project targets" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_plone import NIX_OPTS, PYTHON, ROOT, VENV, machine, med, runs, timed, write_results

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "project"
SECTION = "## Project targets: a one-line change in a Plone add-on (`bench_project.py`)"

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "collective.benchaddon"
version = "1.0"
dependencies = ["Plone"]

[project.scripts]
benchaddon = "collective.benchaddon:main"
"""

MODULE = """\
def main():
    import Products.CMFPlone  # noqa: F401
    print("add-on ready")
"""

DEFAULT_NIX = """\
{ run ? "0" }:
let
  p = (import %(root)s/nixlib).mkProject {
    src = ./.; lock = ./pylock.toml; python = "%(python)s"; name = "bench-addon-env";
  };
in {
  inherit (p) build develop;
  env = derivation (p.env.drvAttrs // { benchRun = run; });
}
"""

BUILT = re.compile(r"these (\d+) derivations? will be built")


def isolated() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "WHEELHOUSE_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env["SSL_CERT_FILE"] = "/etc/ssl/certs/ca-certificates.crt"
    return env


def built_count(stderr: str) -> int:
    match = BUILT.search(stderr)
    if match:
        return int(match.group(1))
    return 1 if "this derivation will be built" in stderr else 0


def nix(cmd: list[str], project: Path) -> tuple[float, int]:
    """Wall time and derivations built of a Nix command in ``project``."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, *NIX_OPTS], capture_output=True, text=True, cwd=project, env=isolated(), check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    return elapsed, built_count(proc.stderr)


def make_project(base: Path) -> Path:
    project = base / "addon"
    pkg = project / "src" / "collective" / "benchaddon"
    pkg.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "__init__.py").write_text(MODULE)
    (project / "default.nix").write_text(DEFAULT_NIX % {"root": ROOT, "python": PYTHON})
    print("locking the add-on (Plone) ...", flush=True)
    timed([VENV / "wheelhouse", "lock", project, "--python", PYTHON, "-o",
           project / "pylock.toml"], env=isolated())  # fmt: skip
    print("first builds (fetching the wheelhouse) ...", flush=True)
    for attr in ("build", "develop"):
        cmd = ["nix-build", "-A", attr, "--no-out-link"]
        if attr == "develop":
            cmd = ["nix-shell", "-A", "develop", "--run", "true"]
        nix(cmd, project)
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = WORK / stamp
    base.mkdir(parents=True)
    info = machine()
    times: dict[str, list[float]] = {"full env": [], "build after a change": [],
                                     "develop re-entry": []}  # fmt: skip
    counts: dict[str, list[int]] = {k: [] for k in times}
    try:
        project = make_project(base)
        module = project / "src" / "collective" / "benchaddon" / "__init__.py"
        for i in range(args.rounds):
            t, n = nix(["nix-build", "-A", "env", "--no-out-link", "--argstr", "run",
                        f"{stamp}-{i}"], project)  # fmt: skip
            times["full env"].append(t)
            counts["full env"].append(n)
            module.write_text(MODULE + f"# change {stamp}-{i}\n")
            t, n = nix(["nix-build", "-A", "build", "--no-out-link"], project)
            times["build after a change"].append(t)
            counts["build after a change"].append(n)
            module.write_text(MODULE + f"# another change {stamp}-{i}\n")
            t, n = nix(["nix-shell", "-A", "develop", "--run", "true"], project)
            times["develop re-entry"].append(t)
            counts["develop re-entry"].append(n)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    full = med(times["full env"])
    lines = [
        SECTION,
        "",
        *info,
        f"- load average after the run: {' '.join(load)}",
        "",
        "| step | median | runs (s) | derivations built | vs full env |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step, values in times.items():
        built = ", ".join(map(str, counts[step]))
        lines.append(
            f"| {step} | {med(values):.2f} s | {runs(values)} | {built} | "
            f"{med(values) / full:.2f}x |"
        )
    lines += [
        "",
        "The add-on's change rebuilds two derivations (its wheel, built offline by setuptools "
        "from the locked build system, and the small app prefix over the env); the env with "
        "Plone's compiled dependencies is reused. Re-entering the develop shell after an edit "
        "builds nothing: the project is on `sys.path` from the working tree.",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_results({SECTION: body})
    return 0


if __name__ == "__main__":
    sys.exit(main())
