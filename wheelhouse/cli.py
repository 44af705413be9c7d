"""Command line: ``main(argv) -> exit code``; parsing and wiring only, the work is in the modules.

Every ``WheelhouseError`` becomes one ``error: ...`` line on stderr and a non-zero exit code, never
a traceback: the message is for the person at the terminal or reading a Nix build log.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wheelhouse import __version__, lockfile, nar
from wheelhouse.download import Downloader
from wheelhouse.errors import HashMismatchError, InstallError, UsageError, WheelhouseError
from wheelhouse.fetch import fetch
from wheelhouse.install import install_env
from wheelhouse.lock import Options, build_lock, write_lock
from wheelhouse.model import Artifact
from wheelhouse.resolve import Inputs, project_requirements
from wheelhouse.targets import make_target


def _add_lock_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lock", help="resolve requirements with pip and write pylock.toml")
    p.add_argument(
        "requirements",
        nargs="*",
        metavar="REQ",
        help="requirement specifiers, or a project directory with pyproject.toml",
    )
    p.add_argument("-r", "--requirement", action="append", default=[], type=Path, metavar="FILE")
    p.add_argument("-c", "--constraint", action="append", default=[], type=Path, metavar="FILE")
    p.add_argument("--project", type=Path, help="project directory (its [project] dependencies)")
    p.add_argument("--extra", action="append", default=[], help="project extra to include")
    p.add_argument("--group", action="append", default=[], help="dependency group to include")
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="X.Y",
        help="target Python version (repeatable; default: the running interpreter)",
    )
    p.add_argument("--index-url", "-i", default="https://pypi.org/simple")
    p.add_argument("--extra-index-url", action="append", default=[])
    p.add_argument("--find-links", "-f", action="append", default=[])
    p.add_argument(
        "--prefer-binary-wheels",
        action="store_true",
        help="take the most specific compatible wheel even when a none-any one exists",
    )
    p.add_argument(
        "--no-binary",
        action="append",
        default=[],
        metavar="PKG",
        help="lock PKG's sdist (':all:' for every package)",
    )
    p.add_argument("-o", "--output", type=Path, default=Path("pylock.toml"))
    _add_download_options(p)


def _add_download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, help="artifact cache (default: XDG cache dir)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--jobs", "-j", type=int, default=8, help="parallel downloads")


def _add_target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        "-t",
        help="lock target name (default: the only one, or the one for the running Python)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wheelhouse",
        description="Lock Python requirements to pylock.toml, fetch every artifact into one "
        "wheelhouse directory, install them all into one environment.",
    )
    parser.add_argument("--version", action="version", version=f"wheelhouse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_lock_parser(sub)

    p = sub.add_parser("fetch", help="download a target's artifacts into one flat directory")
    p.add_argument("lock", type=Path)
    p.add_argument("-d", "--dest", type=Path, required=True)
    _add_target_option(p)
    _add_download_options(p)
    p.add_argument(
        "--no-verify-nar",
        action="store_true",
        help="skip comparing the result with the lock's wheelhouse-nar-hash",
    )

    p = sub.add_parser("install", help="install a target's wheels into one prefix")
    p.add_argument("lock", type=Path)
    p.add_argument("--wheelhouse", "-w", type=Path, required=True)
    p.add_argument("--prefix", type=Path, required=True)
    _add_target_option(p)
    p.add_argument("--python", help="interpreter the env runs on (default: this one)")
    p.add_argument("--no-compile", action="store_true", help="do not write .pyc files")
    p.add_argument("--jobs", "-j", type=int, default=None)
    p.add_argument("--replace", action="store_true", help="replace an existing prefix")

    p = sub.add_parser("nar-hash", help="Nix NAR sha256 of a path (like nix-hash --base32)")
    p.add_argument("path", type=Path)
    p.add_argument("--sri", action="store_true", help="print sha256-<base64>")
    return parser


def _downloader(args: argparse.Namespace, base_dir: Path | None) -> Downloader:
    cache: Path | bool | None = False if args.no_cache else args.cache_dir
    return Downloader(cache, jobs=args.jobs, base_dir=base_dir)


def _cmd_lock(args: argparse.Namespace) -> int:
    reqs = list(args.requirements)
    project = args.project
    if project is None and len(reqs) == 1 and Path(reqs[0], "pyproject.toml").is_file():
        project, reqs = Path(reqs[0]), []
    if project is not None:
        reqs += project_requirements(project, args.extra, args.group)
    elif args.extra or args.group:
        raise UsageError("--extra and --group need a project directory")
    inputs = Inputs(
        requirements=tuple(reqs),
        requirement_files=tuple(args.requirement),
        constraint_files=tuple(args.constraint),
        index_url=args.index_url,
        extra_index_urls=tuple(args.extra_index_url),
        find_links=tuple(args.find_links),
        no_binary=tuple(args.no_binary),
    )
    targets = [make_target(v) for v in args.python] or [make_target(None)]
    if len({t.name for t in targets}) != len(targets):
        raise UsageError("--python names the same version twice")
    output = args.output.absolute()
    data = build_lock(
        inputs,
        targets,
        output,
        _downloader(args, output.parent),
        Options(
            prefer_binary=args.prefer_binary_wheels, no_binary=tuple(args.no_binary), jobs=args.jobs
        ),
    )
    write_lock(data, output)
    n = len(data["packages"])
    print(
        f"wrote {args.output}: {n} packages, targets "
        + ", ".join(t["name"] for t in data["tool"]["wheelhouse"]["targets"]),
        file=sys.stderr,
    )
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    lock = lockfile.load(args.lock)
    target = lockfile.choose_target(lock, args.target)
    artifacts = lockfile.artifacts_for(lock, target)
    fetch(artifacts, args.dest, _downloader(args, lock.directory))
    if target is not None and target.nar_hash and not args.no_verify_nar:
        expected = nar.parse_hash(target.nar_hash)
        actual = nar.nar_sha256(args.dest)
        if actual != expected:
            raise HashMismatchError(
                f"{args.lock}: wheelhouse-nar-hash of target {target.name} is stale "
                f"(lock says {target.nar_hash}, the fetched directory {args.dest} hashes to "
                f"{nar.sri(actual)}); the lock was edited by hand: regenerate it with "
                "`wheelhouse lock`"
            )
    return 0


def _verify(art: Artifact, path: Path) -> None:
    if not path.is_file():
        raise InstallError(
            f"{art.filename} ({art.package} {art.version}) is not in the wheelhouse "
            f"{path.parent}; run `wheelhouse fetch` first"
        )
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != art.sha256:
        raise HashMismatchError(
            f"{path}: sha256 {h.hexdigest()} does not match the lock's {art.sha256} for "
            f"{art.package} {art.version}; delete the file and run `wheelhouse fetch` again"
        )


def _cmd_install(args: argparse.Namespace) -> int:
    lock = lockfile.load(args.lock)
    target = lockfile.choose_target(lock, args.target)
    runtime = [a for a in lockfile.artifacts_for(lock, target) if not a.build_only]
    wheels = [(a, args.wheelhouse / a.filename) for a in runtime]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda pair: _verify(*pair), wheels))
    sdists = [a.filename for a in runtime if a.kind == "sdist"]
    if sdists:
        raise InstallError(
            f"{', '.join(sdists)}: only an sdist is locked; build it into a wheel first "
            "(`wheelhouse build-sdists`) or lock a wheel"
        )
    report = install_env(
        wheels,
        args.prefix,
        python=args.python,
        compile_bytecode=not args.no_compile,
        jobs=args.jobs,
        replace=args.replace,
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_nar_hash(args: argparse.Namespace) -> int:
    if not args.path.exists() and not args.path.is_symlink():
        raise UsageError(f"{args.path}: no such file or directory")
    digest = nar.nar_sha256(args.path)
    print(nar.sri(digest) if args.sri else nar.nix_base32(digest))
    return 0


COMMANDS = {
    "lock": _cmd_lock,
    "fetch": _cmd_fetch,
    "install": _cmd_install,
    "nar-hash": _cmd_nar_hash,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except WheelhouseError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
