"""Benchmark: Plone 6 (examples/plone, 242 wheels): ONE env derivation vs one per wheel.

    .venv/bin/python benchmarks/bench_plone.py [--rounds N] [--startup-rounds N]
        [--parts build,startup] [--keep] [--no-write]

Parts, each with interleaved variants (A B A B ...) and medians:

- build (sections "Plone env build" and "Plone evaluation"): per round and variant, a fresh
  ``benchRun = "<stamp>-<round>"`` attribute makes new derivations, timed as ``nix-instantiate``
  (evaluation, writing the .drv files) then ``nix-store --realise`` (the builds; the wheels are
  already in the store). Variants:
  * ``ours``: nixlib's ``mkProject`` env (ONE derivation running ``wheelhouse install`` from the
    already fetched wheelhouse FOD) with ``benchRun`` added to its attributes;
  * ``per-package``: one derivation per wheel (source: ``<nix/fetchurl.nix>`` per wheel, as
    nixpkgs' fetchPypi, prefetched), each installing its wheel with ``installer`` into its own
    prefix and compiling bytecode (unchecked-hash pycs, like ours), run by /usr/bin/python3, with
    no dependencies between them (the most parallel case: Plone's cycles would otherwise need
    breaking), combined like ``python.withPackages`` into a symlink tree (one derivation that
    merges the packages' site-packages and bin directories with symlinks).
  Builds run with ``--max-jobs 2`` (this machine has 2 cores). A second set of rounds
  re-instantiates unchanged expressions (every .drv already exists).
- startup (section "Plone start-up"): ``python -c 'import Products.CMFPlone'`` in a fresh process
  with our env (one site-packages), the symlink tree, and the per-package packages with one
  ``sys.path`` entry each (``site.addsitedir`` per package from a .pth file, as nixpkgs' wrappers
  do), plus ``python -c pass``.
Locking is measured by bench_lock.py.

nixlib, the wheelhouse sources and the lock are snapshotted into the run folder first, so edits in
the tree during the run change nothing. Everything a run makes (run folders, the ``bench-*``
store paths) is deleted only after the last run (``--keep`` keeps them). Writes its sections of
``benchmarks/RESULTS.md`` and keeps the others.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "plone"
RESULTS = HERE / "RESULTS.md"
EXAMPLE = ROOT / "examples" / "plone"
PYTHON = "/usr/bin/python3"  # Nix build users cannot read /root, where pyenv's Python lives
VENV = ROOT / ".venv" / "bin"
NIX_OPTS = ["--option", "substituters", ""]
TIMEOUT = 3600

SECTION_BUILD = "## Plone env build: one env derivation vs one derivation per wheel"
SECTION_EVAL = "## Plone evaluation: nix-instantiate"
SECTION_STARTUP = "## Plone start-up: import Products.CMFPlone"

BENCH_NIX = """\
{ variant, run ? "0" }:
let
  nixlib = import ./snapshot/nixlib;
  python = "%(python)s";
  lockPath = ./snapshot/pylock.toml;
  tool = nixlib.mkTool { inherit python; src = ./snapshot/wheelhouse; };
  project = nixlib.mkProject { lock = lockPath; inherit python tool; name = "plone-env"; };
  lock = nixlib.readLock lockPath;
  target = project.wheelhouse.target;
  wheels = builtins.concatMap
    (p: map (w: w // { pname = p.name; version = p.version; }) (p.wheels or [ ])) lock.packages;
  byFile = builtins.listToAttrs (map (w: { name = w.name; value = w; }) wheels);
  fetchWheel = w:
    import <nix/fetchurl.nix> { url = w.url; sha256 = w.hashes.sha256; name = w.name; };
  pkg = file: let w = byFile.${file}; in derivation {
    name = "bench-pkg-${w.pname}-${w.version}";
    system = builtins.currentSystem;
    builder = python;
    args = [ "-I" "-B" ./pkg_builder.py ];
    wheel = fetchWheel w;
    toolLib = "${tool}/lib/wheelhouse";
    inherit python;
    benchRun = run;
  };
  packages = map pkg target.artifacts;
  combine = kind: derivation {
    name = "bench-${kind}-env";
    system = builtins.currentSystem;
    builder = python;
    args = [ "-I" "-B" ./combine_builder.py kind ];
    inherit python packages;
    benchRun = run;
  };
in {
  ours = derivation (project.env.drvAttrs // { name = "bench-plone-env"; benchRun = run; });
  per-package = combine "symlink-tree";
  sys-path = combine "sys-path";
  sources = map fetchWheel (map (f: byFile.${f}) target.artifacts);
  wheelhouse = project.wheelhouse;
}.${variant}
"""

PKG_BUILDER = """\
# One wheel into its own prefix with installer, then bytecode (unchecked-hash pycs, like ours).
import compileall, os, py_compile, sys
sys.path.insert(0, os.environ["toolLib"])
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
out = os.environ["out"]
ver = "python{}.{}".format(*sys.version_info[:2])
site = os.path.join(out, "lib", ver, "site-packages")
scheme = {"purelib": site, "platlib": site, "headers": os.path.join(out, "include", ver),
          "scripts": os.path.join(out, "bin"), "data": out}
dest = SchemeDictionaryDestination(scheme, interpreter=os.environ["python"], script_kind="posix")
wheel = os.path.join(os.environ["TMPDIR"], os.path.basename(os.environ["wheel"]).split("-", 1)[1])
os.symlink(os.environ["wheel"], wheel)  # the file name without the store hash, for installer
with WheelFile.open(wheel) as source:
    install(source, dest, {"INSTALLER": b"bench-per-package\\n"})
compileall.compile_dir(site, quiet=2, workers=1,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""

COMBINE_BUILDER = """\
# Combine per-package prefixes into a venv-layout env, like python.withPackages (symlink-tree:
# buildEnv's merge of site-packages and bin) or like nixpkgs' wrappers (sys-path: one
# site.addsitedir per package, from one .pth file).
import os, sys
kind = sys.argv[1]
out = os.environ["out"]
packages = os.environ["packages"].split()
ver = "python{}.{}".format(*sys.version_info[:2])
site = os.path.join(out, "lib", ver, "site-packages")
os.makedirs(site)
os.makedirs(os.path.join(out, "bin"))
collisions = 0

def merge(src, dst):
    global collisions
    if os.path.islink(dst) and os.path.isdir(dst) and os.path.isdir(src):
        old = os.readlink(dst)
        os.unlink(dst)
        os.mkdir(dst)
        for name in os.listdir(old):
            os.symlink(os.path.join(old, name), os.path.join(dst, name))
    if not os.path.lexists(dst):
        os.symlink(src, dst)
    elif os.path.isdir(dst) and not os.path.islink(dst) and os.path.isdir(src):
        for name in os.listdir(src):
            merge(os.path.join(src, name), os.path.join(dst, name))
    else:
        collisions += 1  # first one wins (identical namespace __init__.py files, mostly)

dirs = [os.path.join(p, "lib", ver, "site-packages") for p in packages]
if kind == "symlink-tree":
    for d in dirs:
        for name in sorted(os.listdir(d)):
            merge(os.path.join(d, name), os.path.join(site, name))
else:
    with open(os.path.join(site, "bench-packages.pth"), "w") as f:
        f.write("import site; list(map(site.addsitedir, %%r))\\n" %% (dirs,))
for p in packages:
    b = os.path.join(p, "bin")
    if os.path.isdir(b):
        for name in sorted(os.listdir(b)):
            if not os.path.lexists(os.path.join(out, "bin", name)):
                os.symlink(os.path.join(b, name), os.path.join(out, "bin", name))
python = os.path.realpath(os.environ["python"])
os.symlink(python, os.path.join(out, "bin", "python"))
with open(os.path.join(out, "pyvenv.cfg"), "w") as f:
    f.write("home = %%s\\ninclude-system-site-packages = false\\nversion = %%s\\n"
            %% (os.path.dirname(python), ".".join(map(str, sys.version_info[:3]))))
print("combined", len(packages), "packages,", collisions, "collisions")
"""


def timed(
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> tuple[float, float, str]:
    """Run ``cmd``: its wall time, the CPU time (user + sys) of its whole process tree (Nix's
    builders included: single-user nix-store forks and reaps them), and its stdout. Fails
    loudly with the stderr tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed:\n{proc.stderr[-4000:]}")
    return elapsed, cpu, proc.stdout


def run(
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> tuple[float, str]:
    """Run ``cmd``; its wall time and stdout."""
    elapsed, _, out = timed(cmd, env=env, cwd=cwd, timeout=timeout)
    return elapsed, out


def first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine() -> list[str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    fs = first_line(["stat", "-f", "-c", "%T", "/nix/store"])
    return [
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu}, {platform.system()} "
        f"{platform.release()}, /nix/store on {fs}",
        f"- {first_line(['nix', '--version'])}, single-user, sandbox off, max-jobs 2",
        f"- Python in the builds and envs: {first_line([PYTHON, '--version'])} "
        f"({PYTHON}); wheelhouse/pip/uv run on Python {platform.python_version()}",
        f"- {first_line([str(VENV / 'python'), '-m', 'pip', '--version']).split(' from ')[0]}, "
        f"{first_line([str(VENV / 'uv'), '--version'])}",
    ]


def med(values: list[float]) -> float:
    return statistics.median(values)


def fmt(values: list[float]) -> str:
    return f"{med(values):.2f} s"


def runs(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def snapshot(dest: Path) -> Path:
    """The expression and everything it imports, copied, so concurrent edits change nothing."""
    snap = dest / "snapshot"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    shutil.copytree(ROOT / "nixlib", snap / "nixlib", ignore=ignore)
    shutil.copytree(ROOT / "wheelhouse", snap / "wheelhouse", ignore=ignore)
    shutil.copy2(EXAMPLE / "pylock.toml", snap / "pylock.toml")
    (dest / "bench.nix").write_text(BENCH_NIX % {"python": PYTHON})
    (dest / "pkg_builder.py").write_text(PKG_BUILDER)
    (dest / "combine_builder.py").write_text(COMBINE_BUILDER % ())
    return dest / "bench.nix"


def instantiate(expr: Path, variant: str, run_id: str) -> tuple[float, str]:
    elapsed, out = run(
        [
            "nix-instantiate",
            expr,
            "--argstr",
            "variant",
            variant,
            "--argstr",
            "run",
            run_id,
            *NIX_OPTS,
        ]
    )
    return elapsed, out.strip().splitlines()[-1]


def realise(drv: str) -> tuple[float, float, str]:
    env = dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
    cmd = ["nix-store", "--realise", drv, "--max-jobs", "2", *NIX_OPTS]
    elapsed, cpu, out = timed(cmd, env=env)
    return elapsed, cpu, out.strip().splitlines()[-1]


def closure_drvs(drv: str) -> list[str]:
    out = run(["nix-store", "-qR", drv])[1].split()
    return [p for p in out if p.endswith(".drv")]


def bench_paths(paths: Sequence[str]) -> list[str]:
    """Store paths this benchmark made (names start with ``bench-``)."""
    return [p for p in paths if Path(p).name.split("-", 1)[1].startswith("bench-")]


@dataclass
class BuildResult:
    inst: dict[str, list[float]]
    build: dict[str, list[float]]
    cpu: dict[str, list[float]]
    again: dict[str, list[float]]
    outs: dict[str, str]
    counts: dict[str, int]
    built: dict[str, int]
    last_run: str
    load: str


def prepare(expr: Path) -> None:
    """The wheelhouse FOD and the per-wheel sources in the store (fetched once, untimed)."""
    for variant in ("wheelhouse", "sources"):
        env = dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
        run(
            [
                "nix-build",
                expr,
                "--argstr",
                "variant",
                variant,
                "--no-out-link",
                "-j",
                "4",
                *NIX_OPTS,
            ],
            env=env,
        )


def bench_build(expr: Path, rounds: int, stamp: str, made: list[str]) -> BuildResult:
    variants = ("ours", "per-package")
    inst: dict[str, list[float]] = {v: [] for v in variants}
    build: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    outs: dict[str, str] = {}
    drvs: dict[str, str] = {}
    load_before = os.getloadavg()[0]
    for i in range(rounds):
        for v in variants:
            run_id = f"{stamp}-{i}"
            t_inst, drv = instantiate(expr, v, run_id)
            t_build, t_cpu, out = realise(drv)
            inst[v].append(t_inst)
            build[v].append(t_build)
            cpu[v].append(t_cpu)
            outs[v], drvs[v] = out, drv
            made.extend(bench_paths(closure_drvs(drv)))
            made.extend(bench_paths(run(["nix-store", "-qR", out])[1].split()))
            print(
                f"  build {v} #{i}: instantiate {t_inst:.2f} s, realise {t_build:.2f} s "
                f"(CPU {t_cpu:.2f} s)",
                flush=True,
            )
    again: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(max(3, rounds)):
        for v in variants:
            again[v].append(instantiate(expr, v, f"{stamp}-{rounds - 1}")[0])
    return BuildResult(
        inst=inst,
        build=build,
        cpu=cpu,
        again=again,
        outs=outs,
        counts={v: len(closure_drvs(drvs[v])) for v in variants},
        built={v: len(bench_paths(closure_drvs(drvs[v]))) for v in variants},
        last_run=f"{stamp}-{rounds - 1}",
        load=f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
    )


def tree_stats(path: str) -> str:
    out = run(["nix-store", "-qR", path])[1].split()
    size = run(["du", "-sbc", *out])[1].strip().splitlines()[-1].split()[0]
    return f"{len(out)} store paths, {int(size) / 1e6:.0f} MB (apparent size)"


def bench_startup(envs: dict[str, str], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Wall times per probe and env, plus CPU times of the import probe (key "cpu")."""
    probes = {"import": "import Products.CMFPlone", "pass": "pass"}
    times: dict[str, dict[str, list[float]]] = {p: {v: [] for v in envs} for p in [*probes, "cpu"]}
    with tempfile.TemporaryDirectory() as cwd:  # no project files on sys.path[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        for prefix in envs.values():  # warm the page cache once
            run([f"{prefix}/bin/python", "-c", probes["import"]], env=env, cwd=Path(cwd))
        for _ in range(rounds):
            for p, code in probes.items():
                for v, prefix in envs.items():
                    wall, cpu, _ = timed(
                        [f"{prefix}/bin/python", "-c", code], env=env, cwd=Path(cwd)
                    )
                    times[p][v].append(wall)
                    if p == "import":
                        times["cpu"][v].append(cpu)
    return times


def sys_path_len(prefix: str) -> int:
    return int(run([f"{prefix}/bin/python", "-c", "import sys; print(len(sys.path))"])[1])


def write_results(sections: dict[str, str]) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    for header, body in sections.items():
        start = text.find(header)
        if start == -1:
            text = text.rstrip("\n") + "\n\n" + body
        else:
            end = text.find("\n## ", start + len(header))
            rest = text[end + 1 :] if end != -1 else ""
            text = text[:start] + body.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    RESULTS.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="build rounds per variant")
    parser.add_argument("--startup-rounds", type=int, default=10)
    parser.add_argument("--parts", default="build,startup")
    parser.add_argument("--keep", action="store_true", help="keep run folders and store paths")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "startup" in parts:
        parts.add("build")  # start-up measures the envs the build part made
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = WORK / stamp
    base.mkdir(parents=True)
    expr = snapshot(base)
    info = machine()
    made: list[str] = []
    sections: dict[str, str] = {}
    started = time.monotonic()
    try:
        if "build" in parts:
            print("prefetching the wheelhouse and the per-wheel sources ...", flush=True)
            prepare(expr)
            res = bench_build(expr, args.rounds, stamp, made)
            sections.update(build_sections(res, info, args.rounds))
            if "startup" in parts:
                _, drv = instantiate(expr, "sys-path", res.last_run)
                sys_path_env = realise(drv)[2]
                made.extend([*bench_paths(closure_drvs(drv)), sys_path_env])
                outs = res.outs
                envs = {
                    "ours": outs["ours"],
                    "symlink tree": outs["per-package"],
                    "per-package sys.path": sys_path_env,
                }
                times = bench_startup(envs, args.startup_rounds)
                lens = {v: sys_path_len(p) for v, p in envs.items()}
                sections[SECTION_STARTUP] = startup_section(times, lens, info, args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
            if made:
                gone = subprocess.run(
                    ["nix-store", "--delete", *sorted(set(made))],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                print(f"cleanup: {(gone.stderr.strip().splitlines() or ['?'])[-1]}")
    total = time.monotonic() - started
    for body in sections.values():
        print(body)
    print(f"total {total / 60:.1f} min")
    if not args.no_write and sections:
        write_results(sections)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def row(label: str, a: list[float], b: list[float]) -> str:
    return f"| {label} | {fmt(a)} | {fmt(b)} | **{med(b) / med(a):.1f}x** |"


def build_sections(res: BuildResult, info: list[str], rounds: int) -> dict[str, str]:
    ours, per = "ours", "per-package"
    inst, build, again = res.inst, res.build, res.again
    total = {v: [a + b for a, b in zip(inst[v], build[v], strict=True)] for v in inst}
    cmd = "`.venv/bin/python benchmarks/bench_plone.py`"
    head = "\n".join(info)
    a = f"""{SECTION_BUILD}

{cmd},
{rounds} interleaved rounds (ours, per-package, ours, ...), medians. Each round adds a new
`benchRun` attribute, so every derivation of the variant is built anew; the wheels are already in
the store (our wheelhouse FOD; per wheel a `<nix/fetchurl.nix>` source). **ours**: the
`mkProject` env, ONE derivation running `wheelhouse install` (242 wheels, bytecode).
**per-package**: one derivation per wheel (installer + unchecked-hash bytecode, /usr/bin/python3,
no inter-package dependencies: the most parallel case) plus one symlink-tree env like
`python.withPackages`; `--max-jobs 2`. Its builders are bare Python: no stdenv, no bash setup
hooks, no wrappers, so this is a lower bound for a nixpkgs-style per-package set.

{head}

| | ours | per-package | per-package / ours |
|---|---|---|---|
| derivations built per change | {res.built[ours]} | {res.built[per]} | |
{row("`nix-store --realise` (build)", build[ours], build[per])}
{row("CPU time of the build (user + sys)", res.cpu[ours], res.cpu[per])}
{row("`nix-instantiate` + realise (= nix-build)", total[ours], total[per])}
| runtime closure | {tree_stats(res.outs[ours])} | {tree_stats(res.outs[per])} | |

Runs (s): ours realise {runs(build[ours])}; per-package realise {runs(build[per])}.
Load average (1 min) before the first and after the last run: {res.load}.
"""
    b = f"""{SECTION_EVAL}

{cmd},
same runs as the build section: `nix-instantiate` of each variant's top expression.
"fresh" adds a new `benchRun` (new .drv files are written, as after a lock change), "unchanged"
re-instantiates the last round's expression (every .drv exists), {len(again[ours])} rounds each.

{head}

| | ours | per-package | per-package / ours |
|---|---|---|---|
| .drv files in the closure | {res.counts[ours]} | {res.counts[per]} | |
{row("`nix-instantiate`, fresh", inst[ours], inst[per])}
{row("`nix-instantiate`, unchanged", again[ours], again[per])}
"""
    return {SECTION_BUILD: a, SECTION_EVAL: b}


def startup_section(
    times: dict[str, dict[str, list[float]]],
    lens: dict[str, int],
    info: list[str],
    args: argparse.Namespace,
) -> str:
    imp, nop, cpu = times["import"], times["pass"], times["cpu"]
    rows = "\n".join(
        f"| {v} | {lens[v]} | {fmt(imp[v])} | {med(imp[v]) / med(imp['ours']):.2f}x "
        f"| {fmt(cpu[v])} | {fmt(nop[v])} |"
        for v in imp
    )
    return f"""{SECTION_STARTUP}

`.venv/bin/python benchmarks/bench_plone.py`, {args.startup_rounds} interleaved rounds, fresh
process each, medians, warm page cache. **ours**: the env's one site-packages; **symlink tree**:
the per-package packages merged like `python.withPackages`; **per-package sys.path**: the same
packages, one `sys.path` entry each (`site.addsitedir` per package, as nixpkgs' wrappers do).

{chr(10).join(info)}
- load average (1 min) when measuring: {os.getloadavg()[0]:.2f}

| env | `len(sys.path)` | `import Products.CMFPlone` | vs ours | its CPU time | `python -c pass` |
|---|---|---|---|---|---|
{rows}
"""


if __name__ == "__main__":
    sys.exit(main())
