"""Command line: ``main(argv) -> exit code``; parsing and wiring only, the work is in the modules.

Every ``WheelhouseError`` becomes one ``error: ...`` line on stderr and a non-zero exit code, never
a traceback: the message is for the person at the terminal or reading a Nix build log.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from wheelhouse import __version__, isolation, ui
from wheelhouse.errors import (
    HashMismatchError,
    InstallError,
    LockError,
    NarError,
    UsageError,
    WheelhouseError,
    escape,
)

if TYPE_CHECKING:
    from wheelhouse import lockfile
    from wheelhouse.download import Downloader
    from wheelhouse.install import RunpathPass
    from wheelhouse.model import Artifact
    from wheelhouse.overrides import Overrides
    from wheelhouse.project import ProjectInfo
    from wheelhouse.targets import Target

# Each command imports the stages it runs when it runs: `wheelhouse image` or `nar-hash` need not
# load pip's resolver plumbing, urllib3 and the install engine (0.1 s on every start).
RESOLVER_CHOICES = ("pip", "uv")
"""``--resolver``: ``wheelhouse.lock.RESOLVERS``' keys (tests/test_cli.py keeps them equal)."""
EXPORT_FORMATS = ("requirements",)
"""``export --format``: ``wheelhouse.export.FORMATS`` (tests/test_cli.py keeps them equal)."""


class _Help(argparse.HelpFormatter):
    """Help that states each option's default where it has one (a value, not "off")."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100, max_help_position=32)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = "%(default)" in text or "default:" in text
        if action.option_strings and not shown and action.default not in _NO_DEFAULT:
            text += " (default: %(default)s)"
        return text


_NO_DEFAULT: tuple[object, ...] = (None, False, [], argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one ``error:`` line like every other error (argparse
    prints the usage block and ``prog: error: ...``), and help states the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(
            UsageError.exit_code,
            f"error: {self.prog}: {escape(message)}; run `{self.prog} --help` for usage\n",
        )


def _jobs(text: str) -> int:
    """``-j N``: a count of parallel workers, at least one (0 used to hang or mean "default")."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _add_lock_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("lock", help="resolve requirements with pip and write pylock.toml")
    p.add_argument(
        "requirements",
        nargs="*",
        metavar="REQ",
        help="requirement specifiers, or a project directory with pyproject.toml",
    )
    p.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a requirements file (repeatable)",
    )
    p.add_argument(
        "-c",
        "--constraint",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a constraints file (repeatable)",
    )
    p.add_argument(
        "--project",
        type=Path,
        metavar="DIR",
        help="project directory: its [project] dependencies, and the project itself when it "
        "declares a [build-system]",
    )
    p.add_argument(
        "-o", "--output", type=Path, default=Path("pylock.toml"), metavar="FILE", help="the lock"
    )
    p.add_argument(
        "--from",
        dest="from_lock",
        type=Path,
        metavar="PYLOCK",
        help="keep the pins of another tool's PEP 751 lock (uv, pip, pdm) and add "
        "[tool.wheelhouse]: files per --python target, sdists' build environments, NAR hashes",
    )
    p.add_argument(
        "-U",
        "--upgrade",
        action="store_true",
        help="resolve afresh (default: keep the versions of the existing --output lock that "
        "the requirements still allow)",
    )
    p.add_argument(
        "-P",
        "--upgrade-package",
        action="append",
        default=[],
        metavar="NAME",
        help="let this package move to its newest allowed version (repeatable)",
    )
    _add_resolution_options(p)


def _add_resolution_options(p: argparse.ArgumentParser) -> None:
    """What ``lock`` and ``init`` share: how to resolve and for which Pythons."""
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME",
        help="project extra to include (repeatable)",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="dependency group to include (repeatable)",
    )
    p.add_argument(
        "--python",
        action="append",
        default=[],
        type=_interpreter,
        metavar="PATH",
        help="a target: the interpreter the env will run on, the best choice (repeatable; "
        "default: the running interpreter)",
    )
    p.add_argument(
        "--python-version",
        action="append",
        default=[],
        type=_version,
        metavar="X.Y[.Z]",
        help="a target given by version only: resolved from wheels, for this platform (repeatable)",
    )
    p.add_argument(
        "--index-url",
        "-i",
        metavar="URL",
        help="the package index (default: the public index; with --from: the indexes the lock "
        "names, if any)",
    )
    p.add_argument(
        "--extra-index-url",
        action="append",
        default=[],
        metavar="URL",
        help="another index to search (repeatable)",
    )
    p.add_argument(
        "--find-links",
        "-f",
        action="append",
        default=[],
        metavar="DIR|URL",
        help="a directory or page of files to search too (repeatable)",
    )
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
    p.add_argument(
        "--resolver",
        choices=list(RESOLVER_CHOICES),
        default="pip",
        help="what resolves the requirements: pip, or uv (the `uv` on PATH; faster, same lock)",
    )
    _add_download_options(p)


def _add_download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="artifact cache (default: $WHEELHOUSE_CACHE_DIR, else $XDG_CACHE_HOME/wheelhouse)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--jobs", "-j", type=_jobs, default=8, metavar="N", help="parallel downloads")


def _add_isolation_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--isolation",
        choices=isolation.REQUESTS,
        default="auto",
        help="keep backends off the network with a new network namespace: where possible "
        "(auto, default), or required (namespace: an error where the OS forbids it); the "
        "advisory block (proxies, PIP_NO_INDEX, a socket hook) applies in every mode",
    )


def _add_target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        "-t",
        metavar="NAME",
        help="lock target (default: the only one, or the one for --python's version)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wheelhouse",
        description="Lock Python requirements to pylock.toml, fetch every artifact into one "
        "wheelhouse directory, install them all into one environment.",
    )
    parser.add_argument("--version", action="version", version=f"wheelhouse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_lock_parser(sub)

    p = sub.add_parser("fetch", help="download a target's artifacts into one flat directory")
    p.add_argument("lock", type=Path, metavar="PYLOCK", help="the lock (pylock.toml)")
    _add_wheelhouse_option(
        p, "the wheelhouse directory to fill (created if missing)", required=False
    )
    p.add_argument(
        "-d", "--dest", type=Path, dest="wheelhouse", metavar="DIR", help=argparse.SUPPRESS
    )
    _add_target_option(p)
    p.add_argument(
        "--python",
        metavar="PATH",
        help="interpreter the env runs on: picks its lock target, or, in a lock without "
        "[tool.wheelhouse], the files for it (default: this one)",
    )
    _add_download_options(p)
    p.add_argument(
        "--no-verify-nar",
        action="store_true",
        help="skip comparing the result with the lock's wheelhouse-nar-hash",
    )

    p = sub.add_parser("install", help="install a target's wheels into one prefix")
    p.add_argument(
        "lock",
        type=Path,
        nargs="?",
        metavar="PYLOCK",
        help="the lock (omit it to install only --wheel/--editable)",
    )
    _add_wheelhouse_option(p, "the fetched wheelhouse (with a lock)", required=False)
    p.add_argument(
        "--wheel",
        action="append",
        default=[],
        type=Path,
        metavar="FILE|DIR",
        help="a local wheel not in the lock, e.g. the project's own from `build-project` (a "
        "directory: every wheel in it); repeatable",
    )
    p.add_argument(
        "--editable",
        type=Path,
        metavar="PROJECT_DIR",
        help="install the project of PROJECT_DIR editable: its [project] metadata and entry "
        "points, and a .pth pointing at its source",
    )
    p.add_argument(
        "--editable-root",
        metavar="PATH",
        help="the working tree the editable .pth points at (default: PROJECT_DIR; its src/ in a "
        "src layout)",
    )
    p.add_argument(
        "--prefix", type=Path, required=True, metavar="DIR", help="the env to create (venv layout)"
    )
    _add_target_option(p)
    p.add_argument(
        "--python", metavar="PATH", help="interpreter the env runs on (default: this one)"
    )
    p.add_argument("--no-compile", action="store_true", help="do not write .pyc files")
    p.add_argument(
        "--jobs", "-j", type=_jobs, metavar="N", help="worker processes (default: CPU count)"
    )
    p.add_argument("--replace", action="store_true", help="replace an existing prefix")
    p.add_argument(
        "--built",
        type=Path,
        metavar="DIR",
        help="wheels built by `wheelhouse build-sdists`: installed in place of the locked sdists",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PKG",
        help="do not install PKG (it comes from elsewhere, see --extra-site-packages)",
    )
    p.add_argument(
        "--extra-site-packages",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="a site-packages dir, or a prefix holding lib/pythonX.Y/site-packages, to put on "
        "the env's sys.path (one .pth file)",
    )
    p.add_argument(
        "--library-path",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a prefix (its lib/) or directory of shared libraries for binary wheels; enables the "
        "RUNPATH pass (repeatable)",
    )
    p.add_argument(
        "--patchelf",
        metavar="PATH",
        help="patchelf program for the RUNPATH pass (enables it; default: patchelf on PATH when "
        "--library-path is given)",
    )

    p = sub.add_parser(
        "build-sdists", help="build a target's sdists into wheels, offline, from the wheelhouse"
    )
    p.add_argument("lock", type=Path, metavar="PYLOCK", help="the lock (pylock.toml)")
    _add_wheelhouse_option(p, "the fetched wheelhouse: the sdists and their build systems")
    p.add_argument(
        "--output", "-o", type=Path, required=True, metavar="DIR", help="directory for the wheels"
    )
    _add_target_option(p)
    p.add_argument("--python", metavar="PATH", help="interpreter to build for (default: this one)")
    p.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N", help="parallel builds")
    p.add_argument("--overrides", type=Path, metavar="FILE.json", help="per-package build inputs")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PKG",
        help="do not build PKG's sdist (unless another build needs it)",
    )
    _add_isolation_option(p)

    p = sub.add_parser(
        "build-project",
        help="build the locked project into a wheel, offline, with its locked build system",
    )
    p.add_argument("lock", type=Path, metavar="PYLOCK", help="the project's lock (pylock.toml)")
    p.add_argument("--project", type=Path, required=True, metavar="DIR", help="project source")
    _add_wheelhouse_option(p, "the fetched wheelhouse: the project's locked build system")
    p.add_argument(
        "--output", "-o", type=Path, required=True, metavar="DIR", help="directory for the wheel"
    )
    _add_target_option(p)
    p.add_argument("--python", metavar="PATH", help="interpreter to build for (default: this one)")
    p.add_argument(
        "--jobs", "-j", type=_jobs, default=1, metavar="N", help="parallel builds of its sdists"
    )
    p.add_argument("--overrides", type=Path, metavar="FILE.json", help="per-package build inputs")
    _add_isolation_option(p)

    p = sub.add_parser(
        "init",
        help="start a project: write its default.nix (and flake.nix) and its first lock",
    )
    p.add_argument(
        "project",
        type=Path,
        nargs="?",
        default=Path("."),
        metavar="PROJECT_DIR",
        help="project directory (default: .)",
    )
    p.add_argument("--flake", action="store_true", help="write flake.nix too")
    p.add_argument("--force", action="store_true", help="overwrite existing Nix files")
    p.add_argument(
        "--nixlib",
        type=Path,
        metavar="DIR",
        help="wheelhouse's nixlib for default.nix (default: the one beside this wheelhouse)",
    )
    p.add_argument(
        "--wheelhouse-url",
        metavar="URL",
        help="flake input URL of wheelhouse (default: git+file:// of this wheelhouse's checkout)",
    )
    _add_resolution_options(p)

    p = sub.add_parser(
        "export", help="write a target's runtime files as a requirements.txt with hashes"
    )
    p.add_argument("lock", type=Path, metavar="PYLOCK", help="the lock (pylock.toml)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="requirements", help="output format")
    _add_target_option(p)
    p.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here (default: standard output)"
    )
    p.add_argument(
        "--urls",
        action="store_true",
        help="pin each file by its URL (`name @ URL`) instead of `name==version` on an index",
    )
    p = sub.add_parser("image", help="an env prefix as a layered, reproducible OCI image")
    p.add_argument(
        "prefix", type=Path, metavar="PREFIX", help="env prefix made by `wheelhouse install`"
    )
    p.add_argument(
        "--output", "-o", type=Path, required=True, metavar="PATH", help="new OCI layout dir or tar"
    )
    p.add_argument(
        "--format",
        choices=["oci", "docker-archive"],
        default="oci",
        help="an OCI image layout directory, or a tar `docker load` takes",
    )
    p.add_argument("--compression", choices=["gzip", "none"], help="default: gzip for oci")
    p.add_argument(
        "--closure",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="interpreter closure as exportReferencesGraph writes it (one layer per path)",
    )
    p.add_argument(
        "--extra-path",
        action="append",
        default=[],
        metavar="PATH",
        help="absolute path to add as is, e.g. an interpreter outside the Nix store",
    )
    p.add_argument("--layers", type=Path, metavar="FILE", help="layer spec: packages per line")
    p.add_argument(
        "--max-layers", type=_jobs, default=100, metavar="N", help="most layers the image may have"
    )
    p.add_argument("--name", default="python-env", metavar="NAME", help="image name")
    p.add_argument("--tag", default="latest", metavar="TAG", help="image tag")
    p.add_argument(
        "--entrypoint", action="append", metavar="ARG", help="default: PREFIX/bin/python"
    )
    p.add_argument(
        "--cmd", action="append", default=[], metavar="ARG", help="Cmd argument (repeatable)"
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable of the image (repeatable)",
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="image label / OCI annotation (repeatable)",
    )
    p.add_argument("--workdir", default="/", metavar="DIR", help="working directory")
    p.add_argument("--user", metavar="USER[:GROUP]", help="user the image runs as (default: root)")
    p.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="layers written in parallel",
    )
    p.add_argument(
        "--image-prefix",
        metavar="PATH",
        help="put the env's files at PATH in the image (its own path becomes a symlink to it): "
        "a stable path keeps package layers unchanged when a Nix env's store path changes",
    )

    p = sub.add_parser("nar-hash", help="Nix NAR sha256 of a path (like nix-hash --base32)")
    p.add_argument("path", type=Path, metavar="PATH", help="a file, directory or symlink")
    p.add_argument("--sri", action="store_true", help="print sha256-<base64>")
    for command in sub.choices.values():
        command.add_argument(
            "-q", "--quiet", action="count", default=0, help="say less: errors and warnings only"
        )
        command.add_argument(
            "-v", "--verbose", action="count", default=0, help="say more: timings, details"
        )
    return parser


def synopsis() -> str:
    """Every command's usage, as the README lists them (``scripts/synopsis`` writes them there
    and a test keeps the two equal): made from the parser, so they cannot drift apart."""
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    blocks = []
    for name, command in sub.choices.items():
        shown = [
            a
            for a in command._actions
            if not isinstance(a, argparse._HelpAction) and a.dest not in ("quiet", "verbose")
        ]
        formatter = _Help(f"wheelhouse {name}")
        formatter.add_usage(None, shown, command._mutually_exclusive_groups, prefix="")
        blocks.append(formatter.format_help().strip())
    blocks.append("(every command also takes -h/--help, -q/--quiet and -v/--verbose)")
    return "\n".join(blocks) + "\n"


def _add_wheelhouse_option(p: argparse.ArgumentParser, text: str, required: bool = True) -> None:
    """``--wheelhouse/-w``: the one name of the wheelhouse directory in every command."""
    p.add_argument("--wheelhouse", "-w", type=Path, required=required, metavar="DIR", help=text)


def _interpreter(text: str) -> str:
    """``--python`` names an interpreter; a bare version is ``--python-version``."""
    if re.fullmatch(r"\d+(\.\d+){0,2}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a version; --python takes an interpreter path (use "
            f"--python-version {text} for a version-only target)"
        )
    return text


def _version(text: str) -> str:
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected X.Y or X.Y.Z, got {text!r}")
    return text


def _downloader(args: argparse.Namespace, base_dir: Path | None) -> Downloader:
    from wheelhouse.download import Downloader
    cache: Path | bool | None = False if args.no_cache else args.cache_dir
    return Downloader(cache, jobs=args.jobs, base_dir=base_dir)


def _index_options(args: argparse.Namespace, named: Sequence[str] = ()) -> dict[str, Any]:
    """Index options for ``Inputs``; without --index-url, the indexes a lock names (if any)."""
    urls: list[str] = [args.index_url] if args.index_url else list(named)
    first, others = (urls[0], urls[1:]) if urls else (None, [])
    options: dict[str, Any] = {
        "extra_index_urls": tuple(dict.fromkeys([*others, *args.extra_index_url])),
        "find_links": tuple(args.find_links),
    }
    if first is not None:
        options["index_url"] = first
    return options


def _cmd_lock(args: argparse.Namespace) -> int:
    from wheelhouse.lock import Options, build_lock, previous_pins
    from wheelhouse.project import has_build_system, read_project
    from wheelhouse.resolve import Inputs, project_requirements
    if getattr(args, "from_lock", None) is not None:  # `init` has no --from
        return _cmd_lock_from(args)
    reqs = list(args.requirements)
    project = args.project
    if project is None and len(reqs) == 1 and os.path.isfile(Path(reqs[0], "pyproject.toml")):
        project, reqs = Path(reqs[0]), []
    info: ProjectInfo | None = None
    if project is not None:
        reqs += project_requirements(project, args.extra, args.group)
        if has_build_system(project):  # a package, not just a list of dependencies
            info = read_project(project.absolute())
    elif args.extra or args.group:
        raise UsageError("--extra and --group need a project directory")
    inputs = Inputs(
        requirements=tuple(reqs),
        requirement_files=tuple(args.requirement),
        constraint_files=tuple(args.constraint),
        no_binary=tuple(args.no_binary),
        **_index_options(args),
    )
    targets = _lock_targets(args)
    output = _lock_output(args.output)
    data = build_lock(
        inputs,
        targets,
        output,
        _downloader(args, output.parent),
        Options(
            prefer_binary=args.prefer_binary_wheels,
            no_binary=tuple(args.no_binary),
            jobs=args.jobs,
            resolver=args.resolver,
            pins=previous_pins(
                output, getattr(args, "upgrade", False), getattr(args, "upgrade_package", ())
            ),
        ),
        project=info,
    )
    _report_lock(data, output, args.output)
    return 0


def _lock_targets(args: argparse.Namespace) -> list[Target]:
    from wheelhouse.targets import make_target
    given = [*args.python, *args.python_version]
    targets = [make_target(v) for v in given] or [make_target(None)]
    if len({t.name for t in targets}) != len(targets):
        raise UsageError(
            f"--python/--python-version name one Python version twice ({', '.join(given)}); "
            "give each target once"
        )
    return targets


def _lock_output(path: Path) -> Path:
    """Where the lock goes; its directory must exist before minutes of resolving, not after."""
    output = path.absolute()
    if not output.parent.is_dir():
        raise UsageError(
            f"-o {path}: directory {output.parent} does not exist; create it or choose another"
        )
    return output


def _report_lock(data: dict[str, Any], output: Path, shown: Path) -> None:
    from wheelhouse.lock import write_lock
    write_lock(data, output)
    n = len(data["packages"])
    ui.info(
        f"wrote {shown}: {n} packages, targets "
        + ", ".join(t["name"] for t in data["tool"]["wheelhouse"]["targets"])
    )


def _cmd_lock_from(args: argparse.Namespace) -> int:
    from wheelhouse import lockfile
    from wheelhouse.lock import Options, build_lock_from
    from wheelhouse.resolve import Inputs
    given = [
        opt
        for opt, value in [
            ("requirements", args.requirements),
            ("-r", args.requirement),
            ("-c", args.constraint),
            ("--project", args.project),
            ("--extra", args.extra),
            ("--group", args.group),
        ]
        if value
    ]
    if given:
        raise UsageError(
            f"--from keeps the pins of {args.from_lock} and resolves nothing; drop "
            f"{', '.join(given)} (or lock them without --from)"
        )
    foreign = lockfile.load(args.from_lock)
    inputs = Inputs(no_binary=tuple(args.no_binary), **_index_options(args, foreign.indexes))
    output = _lock_output(args.output)
    data = build_lock_from(
        foreign,
        inputs,
        _lock_targets(args),
        output,
        _downloader(args, foreign.directory),
        Options(
            prefer_binary=args.prefer_binary_wheels,
            no_binary=tuple(args.no_binary),
            jobs=args.jobs,
            resolver=args.resolver,
        ),
    )
    _report_lock(data, output, args.output)
    _say_project(foreign)
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from wheelhouse import scaffold
    project = args.project.absolute()
    if not (project / "pyproject.toml").is_file():
        raise UsageError(f"{project}: no pyproject.toml; create one with a [project] table first")
    files = {
        "default.nix": scaffold.default_nix(
            nixlib=args.nixlib or scaffold.own_nixlib(),
            python=_first_interpreter(args.python),
            lock_args=scaffold.lock_arguments(
                args.group, args.extra, args.python, args.python_version
            ),
        )
    }
    if args.flake:
        files["flake.nix"] = scaffold.flake_nix(args.wheelhouse_url or scaffold.own_flake_url())
    scaffold.check_free(project, files, force=args.force)
    args.requirements, args.requirement, args.constraint = [], [], []
    args.project, args.output = project, project / "pylock.toml"
    _cmd_lock(args)
    for written in scaffold.write(project, files):
        ui.info(f"wrote {written}")
    return 0


def _first_interpreter(pythons: Sequence[str]) -> str:
    """The interpreter default.nix falls back to without nixpkgs: the first ``--python`` path."""
    for python in pythons:
        if "/" in python:
            return os.path.abspath(python)
    return os.path.realpath(sys.executable)


def _say_project(lock: lockfile.Lock) -> None:
    """One line for the project's ``directory`` entry in another tool's lock (uv exports one)."""
    if lock.project is not None and lock.is_foreign:
        ui.info(
            f"info: {lock.path}: {lock.project.name} is the project itself (a directory entry): "
            "it is not fetched or installed as a dependency"
        )


def _cmd_fetch(args: argparse.Namespace) -> int:
    from wheelhouse import lockfile, nar
    from wheelhouse.fetch import fetch
    from wheelhouse.targets import make_target
    if args.wheelhouse is None:
        raise UsageError("fetch: the wheelhouse directory is missing; pass --wheelhouse DIR")
    lock = lockfile.load(args.lock)
    python = make_target(args.python) if args.python else None
    target = lockfile.choose_target(lock, args.target, python.version_string if python else None)
    artifacts = lockfile.artifacts_for(lock, target, python)
    expected: bytes | None = None
    if target is not None and target.nar_hash and not args.no_verify_nar:
        try:
            expected = nar.parse_hash(target.nar_hash)
        except NarError as exc:
            raise LockError(
                f"{args.lock}: wheelhouse-nar-hash of target {target.name}: {exc}; regenerate "
                "the lock with `wheelhouse lock`"
            ) from None
    created = not os.path.lexists(args.wheelhouse)
    paths = fetch(artifacts, args.wheelhouse, _downloader(args, lock.directory))
    if target is not None and expected is not None:
        # The hash of the locked files as the wheelhouse derivation holds them: other files in
        # an existing ``dest`` (a concurrent fetch's temp file, the user's own) are not the lock's.
        actual = nar.flat_directory_sha256({p.name: p for p in paths})
        if actual != expected:
            if created:  # a wheelhouse that is not the locked one is not left behind
                shutil.rmtree(args.wheelhouse, ignore_errors=True)
            raise HashMismatchError(
                f"{args.lock}: wheelhouse-nar-hash of target {target.name} is stale "
                f"(lock says {target.nar_hash}, the fetched files in {args.wheelhouse} hash to "
                f"{nar.sri(actual)}); the lock was edited by hand: regenerate it with "
                "`wheelhouse lock`"
            )
    _say_project(lock)
    return 0


def _require_file(art: Artifact, path: Path) -> None:
    """Fail early and by name; the bytes are checked against the lock while installing."""
    if not os.path.isfile(path):  # (Path.is_file raises for a name too long)
        raise InstallError(
            f"{art.filename} ({art.package} {art.version}) is not in the wheelhouse "
            f"{path.parent}; run `wheelhouse fetch` first"
        )


def _cmd_install(args: argparse.Namespace) -> int:
    from wheelhouse.install import install_env, local_artifact
    from wheelhouse.project import editable_wheel, import_root, read_project
    wheels: list[tuple[Artifact, Path]] = []
    lock = None
    if args.lock is not None:
        if args.wheelhouse is None:
            raise UsageError("install: --wheelhouse DIR is needed with a lock; pass it")
        locked, lock = _locked_wheels(args)
        wheels += locked
    elif not (args.wheel or args.editable):
        raise UsageError("install: nothing to install; give a lock, --wheel or --editable")
    for given in args.wheel:
        wheels += [(local_artifact(w), w) for w in _wheel_files(given)]
    with tempfile.TemporaryDirectory(prefix="wheelhouse-editable-") as tmp:
        if args.editable is not None:
            info = read_project(args.editable)
            root = args.editable_root or str(import_root(args.editable.absolute()))
            wheel = editable_wheel(info, root, Path(tmp))
            wheels.append((local_artifact(wheel), wheel))
        report = install_env(
            wheels,
            args.prefix,
            python=args.python,
            compile_bytecode=not args.no_compile,
            jobs=args.jobs,
            replace=args.replace,
            extra_site_packages=args.extra_site_packages,
            runpath=_runpath_pass(args),
        )
    for warning in report.warnings:
        print(f"warning: {escape(warning)}", file=sys.stderr)
    if lock is not None:
        _say_project(lock)
    return 0


def _locked_wheels(
    args: argparse.Namespace,
) -> tuple[list[tuple[Artifact, Path]], lockfile.Lock]:
    from wheelhouse import lockfile
    from wheelhouse.build import wheels_for_sdists
    from wheelhouse.install import check_interpreter
    from wheelhouse.selection import fits
    from wheelhouse.targets import make_target
    lock = lockfile.load(args.lock)
    if args.python:  # the install engine's own check says best what is wrong with it
        check_interpreter(args.python)
    python = make_target(args.python) if args.python else make_target(None)
    version = python.version_string if args.python else None
    target = lockfile.choose_target(lock, args.target, version)
    runtime = [a for a in lockfile.artifacts_for(lock, target, python) if not a.build_only]
    runtime = _exclude(runtime, args.exclude, args.lock)
    wheels = [(a, args.wheelhouse / a.filename) for a in runtime if a.kind == "wheel"]
    for art, path in wheels:
        _require_file(art, path)
    sdists = [a for a in runtime if a.kind == "sdist"]
    if sdists and args.built is None:
        names = ", ".join(f"{a.package} {a.version} ({a.filename})" for a in sdists)
        if target is None:
            raise InstallError(
                f"{args.lock} locks only an sdist for {names}, and a lock from "
                f"{lock.created_by} records no build environment; run `wheelhouse lock --from "
                f"{args.lock}` (it locks the build requirements), then `wheelhouse fetch`, "
                "`wheelhouse build-sdists` and `install --built DIR` (or build with nixlib's "
                "mkProject)"
            )
        raise InstallError(
            f"{', '.join(a.filename for a in sdists)}: only an sdist is locked; build it into a "
            "wheel first (`wheelhouse build-sdists`, then `install --built DIR`) or lock a wheel"
        )
    if sdists:
        wheels += wheels_for_sdists(sdists, args.built)
    for art, _path in wheels:
        if not fits(art.filename, python):
            made = f"lock target {target.name}" if target else "it"
            raise InstallError(
                f"{art.filename} ({art.package} {art.version}) is not for {python.description}, "
                f"{made} was made for another interpreter; choose this one's target with "
                "--target, or lock for it with `wheelhouse lock --python PATH`"
            )
    return wheels, lock


def _wheel_files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(path.glob("*.whl"))
        if not found:
            raise UsageError(f"--wheel {path}: the directory holds no .whl file; build one first")
        return found
    if not path.is_file():
        raise UsageError(f"--wheel {path}: no such file; pass a wheel or a directory of wheels")
    return [path]


def _build_inputs(
    args: argparse.Namespace, no_targets: str
) -> tuple[lockfile.Lock, lockfile.LockTarget, Overrides, isolation.Isolation]:
    """What build-sdists and build-project both start from: the lock's target (``no_targets``
    says why a lock without one cannot do), the overrides and the isolation mode."""
    from wheelhouse import lockfile
    from wheelhouse.overrides import Overrides, load_overrides

    lock = lockfile.load(args.lock)
    target = lockfile.choose_target(lock, args.target)
    if target is None:
        raise UsageError(f"{args.lock} has no [tool.wheelhouse] targets, so {no_targets}")
    overrides = load_overrides(args.overrides) if args.overrides else Overrides()
    return lock, target, overrides, isolation.choose(args.isolation, args.python)


def _cmd_build_project(args: argparse.Namespace) -> int:
    from wheelhouse.build import build_project
    lock, target, overrides, chosen = _build_inputs(
        args,
        "it records no build environment for the project; create it with `wheelhouse lock "
        f"PROJECT_DIR`, or, keeping another tool's pins, `wheelhouse lock --from {args.lock}`",
    )
    wheel = build_project(
        lock,
        target,
        args.project,
        args.wheelhouse,
        args.output,
        python=args.python,
        jobs=args.jobs,
        overrides=overrides,
        isolation=chosen,
    )
    ui.info(chosen.describe("the project"))
    ui.info(f"built {wheel}")
    return 0


def _runpath_pass(args: argparse.Namespace) -> RunpathPass | None:
    from wheelhouse import rpath
    from wheelhouse.install import RunpathPass
    if args.patchelf is None and not args.library_path:
        return None
    return RunpathPass(
        patchelf=rpath.find_patchelf(args.patchelf),
        library_dirs=tuple(rpath.library_dirs(args.library_path)),
    )


def _exclude(runtime: list[Artifact], names: Sequence[str], lock: Path) -> list[Artifact]:
    from packaging.utils import canonicalize_name
    excluded = {canonicalize_name(n) for n in names}
    unknown = sorted(excluded - {canonicalize_name(a.package) for a in runtime})
    if unknown:
        raise UsageError(
            f"--exclude {', '.join(unknown)}: {lock} installs no such package; check the name"
        )
    return [a for a in runtime if canonicalize_name(a.package) not in excluded]


def _cmd_build_sdists(args: argparse.Namespace) -> int:
    from wheelhouse.build import build_sdists
    lock, target, overrides, chosen = _build_inputs(
        args,
        "it records no build environments; add them, keeping its pins, with `wheelhouse lock "
        f"--from {args.lock}`",
    )
    built = build_sdists(
        lock,
        target,
        args.wheelhouse,
        args.output,
        python=args.python,
        jobs=args.jobs,
        overrides=overrides,
        exclude=args.exclude,
        isolation=chosen,
    )
    # After the builds: a failure stays one `error:` line (a backend's says if it ran namespaced).
    ui.info(chosen.describe())
    ui.info(f"built {len(built)} wheels into {args.output}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from wheelhouse import export, lockfile
    lock = lockfile.load(args.lock)
    target = lockfile.choose_target(lock, args.target)
    output = args.output.absolute() if args.output is not None else None
    text = export.render_requirements(
        export.entries(lock, target),
        lock_name=args.lock.name,
        target=target.name if target is not None else None,
        lock_dir=str(lock.directory.absolute()),
        output_dir=str(output.parent if output is not None else Path.cwd()),
        urls=args.urls,
        project=lock.project.name if lock.project is not None else None,
    )
    if output is None:
        sys.stdout.write(text)
    else:
        export.write_output(text, output)
    return 0


def _cmd_image(args: argparse.Namespace) -> int:
    from wheelhouse.image import ImageOptions, build_image, iter_layer_labels
    from wheelhouse.layers import parse_layer_spec, parse_references_graph

    def pairs(items: list[str], option: str) -> dict[str, str]:
        bad = [i for i in items if "=" not in i]
        if bad:
            raise UsageError(f"{option} {bad[0]!r}: give NAME=VALUE")
        return dict(i.split("=", 1) for i in items)

    epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not epoch_text.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={epoch_text!r}: set it to whole seconds since 1970")
    if args.format == "docker-archive" and args.compression == "gzip":
        raise UsageError("--format docker-archive stores layers uncompressed; drop --compression")
    closure: list[str] = []
    for path in args.closure:
        closure += parse_references_graph(_read_text(path), str(path))
    entrypoint = tuple(args.entrypoint) if args.entrypoint else None
    opts = ImageOptions(
        name=args.name, tag=args.tag, entrypoint=entrypoint,
        cmd=tuple(args.cmd), env=pairs(args.env, "--env"), labels=pairs(args.label, "--label"),
        workdir=args.workdir, user=args.user, epoch=int(epoch_text),
        compression=args.compression or ("none" if args.format == "docker-archive" else "gzip"),
        fmt=args.format, max_layers=args.max_layers, image_prefix=args.image_prefix,
        jobs=max(1, args.jobs),
    )  # fmt: skip
    spec = parse_layer_spec(_read_text(args.layers), str(args.layers)) if args.layers else []
    result = build_image(
        args.prefix, args.output, opts, closure=closure, extra_paths=args.extra_path,
        spec=spec, spec_source=str(args.layers),
    )  # fmt: skip
    for line in iter_layer_labels(result):
        ui.detail(line)
    ui.info(f"wrote {args.output}: {len(result.layers)} layers, {result.manifest_digest}")
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}; give an existing file") from None


def _cmd_nar_hash(args: argparse.Namespace) -> int:
    from wheelhouse import nar
    if not os.path.lexists(args.path):  # (Path.exists raises for a path it may not stat)
        raise UsageError(f"{args.path}: no such file or directory; give an existing path")
    digest = nar.nar_sha256(args.path)
    print(nar.sri(digest) if args.sri else nar.nix_base32(digest))
    return 0


COMMANDS = {
    "lock": _cmd_lock,
    "init": _cmd_init,
    "fetch": _cmd_fetch,
    "install": _cmd_install,
    "build-sdists": _cmd_build_sdists,
    "build-project": _cmd_build_project,
    "export": _cmd_export,
    "nar-hash": _cmd_nar_hash,
    "image": _cmd_image,
}


QUOTED = "\n  | "
"""How a message quotes another program's output (a backend's last lines): the only line breaks
that are printed as line breaks."""


def printable(message: str) -> str:
    """``message`` with control characters escaped, except the line breaks of quoted output:
    a name holding a newline or an ANSI escape cannot forge an ``error:`` line, wherever it
    entered the message."""
    return QUOTED.join(escape(part) for part in message.split(QUOTED))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ui.set_verbosity(args.verbose - args.quiet)
    try:
        return COMMANDS[args.command](args)
    except WheelhouseError as exc:
        print(f"error: {printable(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print(
            f"error: wheelhouse {args.command} ran out of memory; free memory or raise the "
            "limit (ulimit -v), and check the inputs are what you expect",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever reads our output went away (`wheelhouse nar-hash . | head -0`): like any Unix
        # tool, stop quietly; stdout goes to /dev/null so the exit-time flush cannot fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
