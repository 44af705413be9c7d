"""``lock --resolver uv``: the resolution done by ``uv pip compile --format pylock.toml``, read
back as the ``Resolved`` rows pip's report gives, so choosing, downloading and hashing stay as
they are and the lock comes out the same, byte for byte, apart from its ``resolver`` line.

uv's output names every file of a resolved version that fits the target, where pip's report
names the one file pip would install. That file is recomputed with pip's own preference (the
wheel whose tag ranks first for the target, else the sdist: ``select(prefer_binary=True)``),
so ``lock._must_list`` and ``lock._with_resolved_file`` decide as they do after pip.

uv gets pip's inputs the way pip gets them: indexes and find-links (``WHEELHOUSE_AUTH``'s
credentials inserted) through its environment, never its argv, where any local user could read
them; uv reads netrc itself. ``--no-config`` keeps a ``uv.toml`` or a ``[tool.uv]`` table in
the working directory from adding indexes, and ``--index-strategy unsafe-best-match`` takes
the best version over all indexes, as pip does (uv's default stops at the first index naming
the project).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

from packaging.pylock import Package, PackageSdist, PackageWheel, Pylock, PylockValidationError
from packaging.utils import canonicalize_name

from wheelhouse.errors import ResolutionError, UsageError
from wheelhouse.resolve import (
    Inputs,
    Resolved,
    _scrub,
    resolution_error,
    with_credentials,
)
from wheelhouse.selection import Candidate, select
from wheelhouse.targets import Target

_INPUT_VARIABLES = (
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_EXCLUDE",
)
"""uv's variables that add to or take from the lock's inputs: the lock's own replace them."""


def find_uv() -> str:
    """The ``uv`` on PATH, or an error saying what to install."""
    uv = shutil.which("uv")
    if uv is None:
        raise UsageError(
            "--resolver uv needs uv, and there is no `uv` on PATH; install uv (e.g. "
            "`pip install uv`) and put it on PATH, or lock with pip (drop --resolver uv)"
        )
    return uv


def uv_environment(
    inputs: Inputs, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The environment for uv: ``environ`` with the indexes as ``UV_INDEX_URL`` and
    ``UV_EXTRA_INDEX_URL`` and every find-links location in ``UV_FIND_LINKS`` (uv ignores that
    variable when its argv has ``--find-links``, so local ones go there too).

    Also returns the secrets it handed over, so they can be scrubbed from uv's messages.
    """
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if k not in _INPUT_VARIABLES}
    urls, links, secrets = with_credentials(inputs)
    env["UV_INDEX_URL"] = urls[0]
    if urls[1:]:
        env["UV_EXTRA_INDEX_URL"] = " ".join(urls[1:])
    for link in links:
        if "," in link:
            raise UsageError(
                f"find-links location {_scrub(link, secrets)!r} has a comma, which uv reads as "
                "a separator; rename or percent-encode it, or lock with pip"
            )
    if links:
        env["UV_FIND_LINKS"] = ",".join(links)
    return env, secrets


def uv_command(uv: str, inputs: Inputs, target: Target, output: Path) -> list[str]:
    """``uv pip compile`` for ``target``; requirement specifiers come on its stdin (``-``)."""
    cmd = [
        uv,
        "--no-config",
        "pip",
        "compile",
        "--format",
        "pylock.toml",
        "--output-file",
        str(output),
        "--quiet",
        "--color",
        "never",
        "--index-strategy",
        "unsafe-best-match",
        # pip resolves in the interpreter that runs it, or in the one given by --python.
        "--python",
        target.interpreter or sys.executable,
    ]
    if not target.is_running and target.interpreter is None:
        # As pip: another version is resolved from wheels only (nothing of it can be built).
        cmd += ["--python-version", target.full_version, "--only-binary", ":all:"]
    for f in inputs.constraint_files:
        cmd += ["--constraints", str(f)]
    cmd += [str(f) for f in inputs.requirement_files]
    if inputs.requirements:
        cmd.append("-")
    return cmd


def _uv_error(stderr: str) -> str:
    """uv's ``error:``/``cause:``/``hint:`` lines as one line: the reason, then its causes."""
    parts: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        head, sep, rest = line.partition(": ")
        if sep and head in ("error", "cause"):
            parts.append(rest)
        elif sep and head == "hint":
            parts.append(f"hint: {rest}")
        elif parts and raw[:1].isspace():
            parts[-1] += " " + line  # a cause wrapped onto the next line
        else:
            parts.append(line)
    return ": ".join(parts).rstrip(".")[-800:] or "uv failed without a message"


def _location(url: str | None, path: str | None, directory: Path) -> str:
    """A file of uv's lock as a URL, as pip reports it (``file://`` for local files)."""
    if url is not None:
        return url
    assert path is not None  # packaging.pylock checks that a file has a url or a path
    return (directory / path).resolve().as_uri()


def _candidate(dist: PackageWheel | PackageSdist, directory: Path) -> Candidate:
    return Candidate(
        filename=dist.filename,
        url=_location(dist.url, dist.path, directory),
        sha256=(dist.hashes or {}).get("sha256"),
        size=dist.size,
    )


def _row(pkg: Package, directory: Path, target: Target) -> Resolved:
    name = canonicalize_name(pkg.name)
    if pkg.version is None or pkg.vcs is not None or pkg.directory is not None:
        where = pkg.vcs or pkg.directory
        raise ResolutionError(
            f"{name}: resolved to a VCS checkout or a local directory "
            f"({getattr(where, 'url', None) or getattr(where, 'path', None)}); wheelhouse locks "
            "only files with hashes"
        )
    requires_python = str(pkg.requires_python) if pkg.requires_python else None
    if pkg.archive is not None:  # a direct reference: `name @ URL`, or a file's path
        return Resolved(
            name=name,
            version=str(pkg.version),
            url=_location(pkg.archive.url, pkg.archive.path, directory),
            sha256=(pkg.archive.hashes or {}).get("sha256"),
            requires_python=requires_python,
            is_direct=True,
        )
    files = [_candidate(w, directory) for w in pkg.wheels or ()]
    if pkg.sdist is not None:
        files.append(_candidate(pkg.sdist, directory))
    pick = select(name, str(pkg.version), files, target, prefer_binary=True)
    assert pick.url is not None
    return Resolved(
        name=name,
        version=str(pkg.version),
        url=pick.url,
        sha256=pick.sha256,
        requires_python=requires_python,
        is_direct=False,
    )


def read_rows(text: str, directory: Path, target: Target) -> list[Resolved]:
    """uv's ``pylock.toml`` (written in ``directory``) as pip-like rows, sorted by name."""
    try:
        pylock = Pylock.from_dict(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, PylockValidationError) as exc:
        raise ResolutionError(
            f"uv wrote a pylock.toml wheelhouse cannot read ({exc}); lock with pip (drop "
            "--resolver uv) and report this uv version"
        ) from None
    return sorted((_row(p, directory, target) for p in pylock.packages), key=lambda r: r.name)


def resolve(inputs: Inputs, target: Target) -> list[Resolved]:
    """Run ``uv pip compile`` for ``target``; the rows ``resolve.resolve`` would give."""
    if not (inputs.requirements or inputs.requirement_files):
        raise UsageError("nothing to lock: give requirements, -r FILE or a project directory")
    if inputs.pip_args:
        raise UsageError(
            f"pip options ({' '.join(inputs.pip_args)}) cannot be given to uv; lock with pip"
        )
    uv = find_uv()
    with tempfile.TemporaryDirectory(prefix="wheelhouse-uv-") as tmp:
        output = Path(tmp) / "pylock.toml"
        env, secrets = uv_environment(inputs)
        proc = subprocess.run(
            uv_command(uv, inputs, target, output),
            input="".join(f"{r}\n" for r in inputs.requirements),
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if proc.returncode != 0 or not output.exists():
            # Taking the best version over all indexes, uv (as pip) reads a refused login as
            # "not found": resolution_error asks the indexes for the real reason.
            raise resolution_error("uv", target, _uv_error(_scrub(proc.stderr, secrets)), inputs)
        return read_rows(output.read_text(encoding="utf-8"), Path(tmp), target)
