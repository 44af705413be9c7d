"""Resolution is pip's job: run ``pip install --dry-run --report`` once per target and read it.

Nothing here chooses files; it only turns requirements (specifiers, requirements files, a
project's ``pyproject.toml``) into pip's command line and pip's JSON report into ``Resolved`` rows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pip._internal.models.index import PyPI

from wheelhouse import ui
from wheelhouse.credentials import env_credentials
from wheelhouse.download import Downloader
from wheelhouse.errors import FetchError, NotFoundError, ResolutionError, UsageError
from wheelhouse.index import PageCache
from wheelhouse.mirror import IndexMirror
from wheelhouse.project import read_pyproject
from wheelhouse.targets import Target

DEFAULT_INDEX: str = PyPI.simple_url
"""pip's own default index: where requirements resolve when no index is given."""


@dataclass(frozen=True)
class Inputs:
    """What to lock, independent of the target."""

    requirements: tuple[str, ...] = ()
    requirement_files: tuple[Path, ...] = ()
    constraint_files: tuple[Path, ...] = ()
    index_url: str = DEFAULT_INDEX
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = field(default=())

    @property
    def indexes(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls)


@dataclass(frozen=True)
class Resolved:
    """One package of pip's resolution for one target."""

    name: str
    version: str
    url: str
    sha256: str | None
    requires_python: str | None
    is_direct: bool


def check_url(url: str) -> None:
    """An index or find-links URL must parse (a bad IPv6 literal or port is a ValueError deep in
    urllib otherwise); local find-links directories pass as they are."""
    try:
        urlsplit(url).port  # noqa: B018 - raises for a bad port
    except ValueError as exc:
        raise UsageError(
            f"index or find-links URL {url!r} is not valid ({exc}); fix the URL"
        ) from None


def _strings(value: Any, what: str, path: Path) -> list[str]:
    """A TOML array of strings, or a UsageError naming the key."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{path}: {what} must be an array of strings, got {value!r}; fix it")
    return list(value)


def _group(groups: dict[str, Any], name: str, path: Path, stack: tuple[str, ...]) -> list[str]:
    if not isinstance(groups, dict):
        raise UsageError(f"{path}: [dependency-groups] must be a table; fix it")
    norm = {canonicalize_name(k): v for k, v in groups.items()}
    key = canonicalize_name(name)
    if key not in norm:
        raise UsageError(f"{path}: no dependency group {name!r} (groups: {', '.join(groups)})")
    if key in stack:
        raise UsageError(f"{path}: dependency group {name!r} includes itself")
    if not isinstance(norm[key], list):
        raise UsageError(
            f"{path}: dependency group {name!r} must be an array, got {norm[key]!r}; fix it"
        )
    out: list[str] = []
    for item in norm[key]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and "include-group" in item:
            out.extend(_group(groups, item["include-group"], path, (*stack, key)))
        else:
            raise UsageError(f"{path}: dependency group {name!r} has an invalid entry {item!r}")
    return out


def project_requirements(
    project: Path, extras: Sequence[str] = (), groups: Sequence[str] = ()
) -> list[str]:
    """Runtime requirements of a project directory: dependencies, chosen extras and groups.

    What pip resolves; the project itself (when it is a package) is recorded apart, as a
    ``directory`` entry with its locked build system (``wheelhouse.lock``).
    """
    path, data = read_pyproject(project)
    proj = data.get("project", {})
    if not isinstance(proj, dict):
        raise UsageError(f"{path}: [project] must be a table; fix it")
    reqs = _strings(proj.get("dependencies", []), "[project] dependencies", path)
    table = proj.get("optional-dependencies", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [project.optional-dependencies] must be a table; fix it")
    optional = {
        canonicalize_name(k): _strings(v, f"optional dependencies {k!r}", path)
        for k, v in table.items()
    }
    for extra in extras:
        if canonicalize_name(extra) not in optional:
            raise UsageError(
                f"{path}: no extra {extra!r} (extras: {', '.join(sorted(optional)) or 'none'})"
            )
        reqs.extend(optional[canonicalize_name(extra)])
    for group in groups:
        reqs.extend(_group(data.get("dependency-groups", {}), group, path, ()))
    return reqs


def pip_command(inputs: Inputs, target: Target, report: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        *(["--python", target.interpreter] if target.interpreter else []),
        "install",
        "--dry-run",
        "--ignore-installed",
        "--disable-pip-version-check",
        "--quiet",
        "--no-input",
        "--report",
        str(report),
        # Everything comes from the mirror's memory or our own cache; pip's HTTP cache would
        # only collect entries under a loopback port never used again.
        "--no-cache-dir",
    ]
    # The indexes and remote find-links go to pip through its environment (pip_environment), not
    # its argv: they may carry credentials, and any local user can read a command line.
    for link in inputs.find_links:
        if not _is_remote(link):
            cmd += ["--find-links", link]
    if not target.is_running and target.interpreter is None:
        # pip only resolves for another interpreter from wheels (it cannot run their builds).
        cmd += [
            "--python-version",
            target.full_version,
            "--implementation",
            "cp",
            "--only-binary",
            ":all:",
        ]
    for f in inputs.requirement_files:
        cmd += ["-r", str(f)]
    for f in inputs.constraint_files:
        cmd += ["-c", str(f)]
    cmd += list(inputs.pip_args)
    cmd += list(inputs.requirements)
    return cmd


def _with_env_credentials(url: str) -> tuple[str, str | None]:
    """``url`` with WHEELHOUSE_AUTH's credentials for its host inserted (unless it has some)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return url, parts.password or parts.username
    found = env_credentials(url)
    if found is None:
        return url, None
    user, password = found
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc)), password or user


def with_credentials(inputs: Inputs) -> tuple[list[str], list[str], list[str]]:
    """The indexes and the find-links, remote ones with ``WHEELHOUSE_AUTH``'s credentials for
    their host inserted (unless they carry some); and the secrets in them, longest first, so
    they can be scrubbed from a resolver's messages. Shared by pip and uv (``uvresolve``)."""
    secrets: list[str] = []
    urls = []
    for url in inputs.indexes:
        full, secret = _with_env_credentials(url)
        urls.append(full)
        if secret:
            secrets += [secret, quote(secret, safe=""), unquote(secret)]
    links = []
    for link in inputs.find_links:
        if _is_remote(link):
            link, secret = _with_env_credentials(link)
            if secret:
                secrets += [secret, quote(secret, safe=""), unquote(secret)]
        links.append(link)
    return urls, links, sorted(set(secrets), key=len, reverse=True)


def pip_environment(
    inputs: Inputs,
    environ: Mapping[str, str] | None = None,
    mirror: IndexMirror | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The environment for pip: ``environ`` plus the indexes as ``PIP_INDEX_URL`` and
    ``PIP_EXTRA_INDEX_URL`` and remote find-links in ``PIP_FIND_LINKS``, with credentials from
    ``WHEELHOUSE_AUTH`` (pip reads netrc itself). With a ``mirror``, pip gets its loopback
    stand-ins for the indexes instead, without credentials.

    Also returns the secrets it handed over, so they can be scrubbed from pip's messages.
    """
    env = dict(os.environ if environ is None else environ)
    if mirror is not None:
        # pip (and the backends it runs to prepare an sdist's metadata) need none of them.
        env.pop("WHEELHOUSE_AUTH", None)
    urls, all_links, secrets = with_credentials(inputs)
    if mirror is not None:
        urls = mirror.index_urls
    links = [link for link in all_links if _is_remote(link)]
    env["PIP_INDEX_URL"] = urls[0]
    if urls[1:]:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(urls[1:])
    else:
        env.pop("PIP_EXTRA_INDEX_URL", None)
    if links:  # pip adds these to the --find-links of its argv
        env["PIP_FIND_LINKS"] = " ".join([*env.get("PIP_FIND_LINKS", "").split(), *links])
    env.pop("PIP_NO_INDEX", None)
    return env, secrets


def _is_remote(link: str) -> bool:
    return urlsplit(link).scheme.lower() in ("http", "https")


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


_ACCESS_TROUBLE = re.compile(r"\b(401|403|credentials|certificate|SSL)\b", re.IGNORECASE)
"""pip reports a rejected login or a TLS failure only as a WARNING, then "no matching version"."""


def _pip_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [
        ln
        for ln in lines
        if ln.startswith("ERROR") or (ln.startswith("WARNING") and _ACCESS_TROUBLE.search(ln))
    ] or lines[-3:]
    return " | ".join(errors)[-800:] or "pip failed without a message"


def _index_access_problem(inputs: Inputs) -> str | None:
    """Why pip found nothing, when an index refuses us: for a rejected netrc login pip says only
    "no matching distribution". Asks each index for the first named project's page, once."""
    names = []
    for text in inputs.requirements:
        try:
            names.append(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    if not names:
        return None
    with Downloader(False, retries=0, timeout=15.0, progress=False) as probe:
        for url in inputs.indexes:
            try:
                probe.read(url.rstrip("/") + f"/{names[0]}/")
            except NotFoundError:
                continue
            except FetchError as exc:
                return exc.message
    return None


def resolution_error(tool: str, target: Target, reason: str, inputs: Inputs) -> ResolutionError:
    """A failed resolution: the resolver's reason, and why an index refused us if one did."""
    problem = _index_access_problem(inputs)
    return ResolutionError(
        f"{tool} could not resolve the requirements for {target.name}: {reason}; "
        + (
            f"probably because {problem}"
            if problem
            else "check the requirements, the indexes and their credentials, and the target "
            "Python (--python)"
        )
    )


def resolve(
    inputs: Inputs,
    target: Target,
    mirror: IndexMirror | None = None,
    pins: Mapping[str, str] | None = None,
) -> list[Resolved]:
    """Run pip for ``target`` against ``mirror`` (a private one without); the result is sorted by
    name for deterministic locks. ``pins``: versions ``inputs``' constraints fix (the mirror
    shows pip only their files)."""
    if not (inputs.requirements or inputs.requirement_files):
        raise UsageError("nothing to lock: give requirements, -r FILE or a project directory")
    if mirror is None:
        with Downloader(progress=False) as downloader:
            for url in inputs.indexes:
                downloader.remember_credentials(url)
            with IndexMirror(downloader, inputs.indexes, PageCache(downloader)) as own:
                return resolve(inputs, target, own, pins)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        env, secrets = pip_environment(inputs, mirror=mirror)
        with mirror.resolving(target, pins):
            proc = subprocess.run(
                pip_command(inputs, target, report),
                capture_output=True,
                text=True,
                check=False,
                env=env,
                stdin=subprocess.DEVNULL,
            )
            failure = mirror.failure()
        ui.detail(
            f"pip for {target.name}: {mirror.requests} requests to the mirror, "
            f"{mirror.serving:.2f} s answering them"
        )
        if failure is not None:
            # pip skips an index page it cannot read; a lock must not silently miss an index.
            raise failure
        if proc.returncode != 0 or not report.exists():
            raise resolution_error("pip", target, _pip_error(_scrub(proc.stderr, secrets)), inputs)
        data = json.loads(report.read_text(encoding="utf-8"))
    rows = []
    for item in data.get("install", []):
        meta = item["metadata"]
        info = item.get("download_info", {})
        if "vcs_info" in info or "dir_info" in info:
            raise ResolutionError(
                f"{meta['name']}: resolved to a VCS checkout or a local directory "
                f"({info.get('url')}); wheelhouse locks only files with hashes"
            )
        hashes = info.get("archive_info", {}).get("hashes", {})
        rows.append(
            Resolved(
                name=canonicalize_name(meta["name"]),
                version=meta["version"],
                url=mirror.original(info["url"]) or info["url"],
                sha256=hashes.get("sha256"),
                requires_python=meta.get("requires_python"),
                is_direct=bool(item.get("is_direct")),
            )
        )
    return sorted(rows, key=lambda r: r.name)
