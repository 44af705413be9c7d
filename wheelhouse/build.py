"""Offline builds: wheels from the locked sdists (and the locked project), from the wheelhouse only.

``wheelhouse build-sdists`` turns every sdist of a lock target into a wheel, using nothing but
the wheelhouse: each sdist gets a fresh environment holding exactly its locked build requirements
(installed with ``wheelhouse.install.install_env``), sdists whose environment holds another sdist
wait for that one's wheel (``sdist.build_order``), and independent builds run in parallel. The
backend is called (``wheelhouse.backend``) in a new network namespace where the OS allows it
(``wheelhouse.isolation``), and in any case with the network blocked three ways: proxies point
at a closed loopback port, ``PIP_NO_INDEX=1``, and a ``.pth`` hook in the build environment
(``wheelhouse/_offline_hook.py``, copied in by ``install_offline_hook``) makes
``socket.connect``/``getaddrinfo`` to anything but loopback fail with "network access is not
allowed while building <pkg>" (a ``.pth``, not ``sitecustomize``: Debian's interpreter ships its
own ``sitecustomize`` in the standard library, which would shadow ours). ``SOURCE_DATE_EPOCH``
is fixed, so rebuilding gives the same wheel bytes. ``--overrides`` (``wheelhouse.overrides``)
add paths and environment variables per build.

What a build environment must hold is decided at lock time (``wheelhouse.buildreqs``); nothing
here runs then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelhouse import _offline_hook, lockfile, sdist
from wheelhouse.backend import (
    SOURCE_DATE_EPOCH,
    Runner,
    call_hook,
    copy_source,
    hook_caller,
    source_build_system,
)
from wheelhouse.errors import BuildError, HashMismatchError, InstallError, UsageError
from wheelhouse.install import install_env
from wheelhouse.isolation import Isolation
from wheelhouse.isolation import choose as choose_isolation
from wheelhouse.model import Artifact, same_version
from wheelhouse.overrides import NO_OVERRIDES, Overrides, PackageOverride
from wheelhouse.project import read_project

__all__ = [
    "BLACKHOLE_PROXY",
    "build_environment",
    "build_project",
    "build_sdists",
    "install_offline_hook",
    "wheels_for_sdists",
]

BLACKHOLE_PROXY = "http://{}:{}".format(*_offline_hook.BLACKHOLE)
"""Proxies point here (the discard port, closed): clients that honour proxies fail at once, and
the offline hook recognises the address to name the package in its message."""
_DROP_ENV_PREFIXES = ("PYTHON", "PIP_", "VIRTUAL_ENV", "CONDA")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

# --- environment (pure) --------------------------------------------------------------------------


def _join(*groups: Sequence[str]) -> str:
    return os.pathsep.join(p for group in groups for p in group if p)


def build_environment(
    base: Mapping[str, str],
    *,
    package: str,
    env_bin: str,
    home: str,
    overrides: Overrides = NO_OVERRIDES,
) -> dict[str, str]:
    """The process environment of one offline build.

    From ``base`` only what is not Python/pip/proxy configuration is kept; then the build
    environment's ``bin``, the package's and the common override paths go first on ``PATH``, and
    the reproducibility and no-network settings are fixed. The package's ``env`` override is
    applied last, so it can change anything (its author knows that build best).
    """
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith(_DROP_ENV_PREFIXES)
        and k not in _PROXY_VARS
        and k.lower() not in ("no_proxy",)
    }
    own = overrides.packages.get(canonicalize_name(package), PackageOverride())
    env["PATH"] = _join(
        [env_bin], own.path, overrides.common.path, base.get("PATH", "").split(os.pathsep)
    )
    pkg_config = _join(
        own.pkg_config_path,
        overrides.common.pkg_config_path,
        base.get("PKG_CONFIG_PATH", "").split(os.pathsep),
    )
    if pkg_config:
        env["PKG_CONFIG_PATH"] = pkg_config
    else:
        env.pop("PKG_CONFIG_PATH", None)
    env.update(
        {
            "HOME": home,
            "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
            "PYTHONHASHSEED": "0",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PIP_NO_INDEX": "1",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "WHEELHOUSE_BUILDING": package,
        }
    )
    env.update(dict.fromkeys(_PROXY_VARS, BLACKHOLE_PROXY))
    env.update(overrides.common.env)
    env.update(own.env)
    return env


# --- building ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _verify(art: Artifact, wheelhouse: Path) -> Path:
    path = wheelhouse / art.filename
    if not path.is_file():
        raise BuildError(
            f"{art.filename} ({art.package} {art.version}) is not in the wheelhouse {wheelhouse}; "
            "run `wheelhouse fetch` first"
        )
    digest = _sha256(path)
    if digest != art.sha256:
        raise HashMismatchError(
            f"{path}: sha256 {digest} does not match the lock's {art.sha256} for "
            f"{art.package} {art.version}; delete the file and run `wheelhouse fetch` again"
        )
    return path


def install_offline_hook(site: Path, package: str) -> None:
    """Block the network for every Python process started with ``site`` (a site-packages dir):
    the hook module, its ``.pth`` and the name of the package it reports (see _offline_hook)."""
    module = _offline_hook.MODULE
    shutil.copyfile(_offline_hook.__file__, site / f"{module}.py")
    (site / _offline_hook.PACKAGE_FILE).write_text(package, encoding="utf-8")
    (site / f"{module}.pth").write_text(f"import {module}; {module}.install()\n")


def _site_packages(prefix: Path) -> Path:
    found = sorted(prefix.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise BuildError(f"{prefix}: expected one lib/python*/site-packages, found {found}")
    return found[0]


@dataclass(frozen=True)
class _Job:
    sdist: Artifact
    path: Path
    env: tuple[Artifact, ...]


def _build_one(
    job: _Job,
    built: Mapping[str, tuple[Artifact, Path]],
    wheelhouse: Path,
    work: Path,
    python: str,
    overrides: Overrides,
    base_env: Mapping[str, str],
    isolation: Isolation,
) -> tuple[Artifact, Path]:
    art = job.sdist
    root = Path(tempfile.mkdtemp(prefix=f"{art.package}-", dir=work))
    wheels = _env_wheels(job.env, built, wheelhouse)
    return _build_wheel(
        art.package,
        art.version,
        art.filename,
        lambda: sdist.extract(job.path, root / "src"),
        wheels,
        root,
        python,
        overrides,
        base_env,
        isolation,
    )


def _env_wheels(
    env: Sequence[Artifact], built: Mapping[str, tuple[Artifact, Path]], wheelhouse: Path
) -> list[tuple[Artifact, Path]]:
    """A build environment's files as wheels to install: sdists replaced by what they built."""
    return [
        built[dep.filename]
        if dep.kind == "sdist"
        else (replace(dep, build_only=False), wheelhouse / dep.filename)
        for dep in env
    ]


def _build_wheel(
    package: str,
    version: str | None,
    origin: str,
    unpack: Callable[[], Path],
    wheels: list[tuple[Artifact, Path]],
    root: Path,
    python: str,
    overrides: Overrides,
    base_env: Mapping[str, str],
    isolation: Isolation,
) -> tuple[Artifact, Path]:
    """Build ``package`` from the tree ``unpack`` lays out below ``root``, offline, in a fresh
    environment holding exactly ``wheels``; check the wheel is ``package`` (and ``version``,
    unless the project's version is dynamic). ``origin`` names the source in messages."""
    prefix = root / "env"
    try:
        install_env(wheels, prefix, python=python, compile_bytecode=False, jobs=1)
    except InstallError as exc:
        raise BuildError(
            f"building {package}: cannot install its build environment: {exc}"
        ) from None
    install_offline_hook(_site_packages(prefix), package)
    source = unpack()
    system = source_build_system(source, origin)
    (root / "home").mkdir()
    env = build_environment(
        base_env,
        package=package,
        env_bin=str(prefix / "bin"),
        home=str(root / "home"),
        overrides=overrides,
    )
    runner = Runner(env, isolation)
    env_python = str(prefix / "bin" / "python")
    caller = hook_caller(source, system, env_python, runner)
    asked = call_hook(
        "get_requires_for_build_wheel", package, runner, caller.get_requires_for_build_wheel
    )
    available: dict[str, str] = {canonicalize_name(a.package): a.version for a, _ in wheels}
    unmet = sdist.unmet_requirements(list(asked), available, _marker_environment(env_python))
    if unmet:
        raise BuildError(
            f"building {package}: its backend asks for {', '.join(unmet)}, which the lock's build "
            f"environment for {origin} lacks; regenerate the lock with `wheelhouse lock`"
        )
    outdir = root / "out"
    outdir.mkdir()
    name = call_hook("build_wheel", package, runner, caller.build_wheel, str(outdir))
    wheel = outdir / str(name)
    if not isinstance(name, str) or "/" in name or not wheel.is_file():
        raise BuildError(
            f"building {package}: the backend reported {name!r}, which is not a wheel it wrote"
        )
    try:
        w_name, w_version, _, _ = parse_wheel_filename(name)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise BuildError(f"building {package}: the backend wrote {name}: {exc}") from None
    if w_name != canonicalize_name(package) or (
        version is not None and not same_version(str(w_version), version)
    ):
        raise BuildError(
            f"building {package}: the backend built {name} ({w_name} {w_version}) from "
            f"{origin}, but the lock says {package} {version}; the metadata disagrees with the "
            "lock: lock a wheel of this package, or re-lock the project"
        )
    result = Artifact(
        filename=name,
        package=package,
        version=str(w_version) if version is None else version,
        sha256=_sha256(wheel),
        kind="wheel",
        size=wheel.stat().st_size,
    )
    shutil.rmtree(source, ignore_errors=True)
    return result, wheel


_MARKER_CACHE: dict[str, dict[str, str]] = {}
_MARKER_LOCK = threading.Lock()


def _marker_environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of the build interpreter (the requirement check must use its)."""
    with _MARKER_LOCK:
        if python not in _MARKER_CACHE:
            code = (
                "import json, os, platform, sys\n"
                "v = sys.implementation.version\n"
                "iv = f'{v.major}.{v.minor}.{v.micro}'\n"
                "print(json.dumps({'implementation_name': sys.implementation.name,"
                " 'implementation_version': iv, 'os_name': os.name,"
                " 'platform_machine': platform.machine(), 'platform_release': platform.release(),"
                " 'platform_system': platform.system(), 'platform_version': platform.version(),"
                " 'python_full_version': platform.python_version(),"
                " 'platform_python_implementation': platform.python_implementation(),"
                " 'python_version': '.'.join(platform.python_version_tuple()[:2]),"
                " 'sys_platform': sys.platform}))"
            )
            out = subprocess.run(
                [python, "-I", "-c", code], capture_output=True, text=True, check=True
            ).stdout
            _MARKER_CACHE[python] = json.loads(out)
        return dict(_MARKER_CACHE[python])


def _plan(envs: Mapping[str, Sequence[Artifact]], wanted: Collection[str]) -> list[str]:
    """The sdists to build: ``wanted`` and every sdist their build environments need, in order."""
    todo: set[str] = set()
    stack = list(wanted)
    while stack:
        s = stack.pop()
        if s in todo:
            continue
        todo.add(s)
        stack.extend(a.filename for a in envs[s] if a.kind == "sdist")
    return sdist.build_order({s: [a.filename for a in envs[s] if a.kind == "sdist"] for s in todo})


def build_sdists(
    lock: lockfile.Lock,
    target: lockfile.LockTarget,
    wheelhouse: Path,
    output: Path,
    *,
    python: str | None = None,
    jobs: int = 1,
    overrides: Overrides = NO_OVERRIDES,
    exclude: Collection[str] = (),
    isolation: Isolation | None = None,
) -> list[Path]:
    """Build every sdist of ``target`` the env needs; put the wheels (only) into ``output``.

    ``exclude`` names runtime packages that will not be installed (taken from elsewhere, e.g.
    nixpkgs), so their sdists are not built unless another build needs them. Nothing is written
    to ``output`` unless every build succeeded. ``isolation`` (default: probed, namespaces where
    possible) is how backends are kept off the network, on top of the advisory block.
    """
    python = python or sys.executable
    isolation = isolation or choose_isolation("auto", python)
    envs = lockfile.build_envs(lock, target)
    by_filename = {a.filename: a for a in lockfile.artifacts_for(lock, target)}
    excluded = {canonicalize_name(n) for n in exclude}
    runtime_sdists = [
        a.filename
        for a in by_filename.values()
        if a.kind == "sdist" and not a.build_only and canonicalize_name(a.package) not in excluded
    ]
    known = {canonicalize_name(a.package) for a in by_filename.values() if a.kind == "sdist"}
    unknown = sorted(set(overrides.packages) - known)
    if unknown:
        raise UsageError(
            f"overrides name {', '.join(unknown)}, which target {target.name} does not build from "
            f"an sdist (its sdists: {', '.join(sorted(known)) or 'none'}); drop those overrides"
        )
    order = _plan(envs, runtime_sdists)
    output = _output_parent(output)
    work = Path(tempfile.mkdtemp(prefix="wheelhouse-build-"))
    try:
        built = _build_sdists(
            order, envs, by_filename, wheelhouse, work, python, overrides, jobs, isolation
        )
        return _publish([built[f][1] for f in order], output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _output_parent(output: Path) -> Path:
    """``output`` made absolute, with its parent directory created (or one error line)."""
    output = Path(os.path.abspath(output))
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--output {output}: cannot create {exc.filename or output.parent} "
            f"({exc.strerror}); choose another --output"
        ) from None
    return output


def _build_sdists(
    order: Sequence[str],
    envs: Mapping[str, Sequence[Artifact]],
    by_filename: Mapping[str, Artifact],
    wheelhouse: Path,
    work: Path,
    python: str,
    overrides: Overrides,
    jobs: int,
    isolation: Isolation,
) -> dict[str, tuple[Artifact, Path]]:
    """Build the sdists of ``order`` (dependencies first, independent ones in parallel)."""
    for filename in order:
        for dep in [by_filename[filename], *envs[filename]]:
            if dep.kind == "wheel" or dep.filename == filename:
                _verify(dep, wheelhouse)
    jobs_by_name = {f: _Job(by_filename[f], wheelhouse / f, tuple(envs[f])) for f in order}
    deps = {f: {a.filename for a in envs[f] if a.kind == "sdist"} for f in order}
    return _run_parallel(
        order,
        deps,
        lambda f, done: _build_one(
            jobs_by_name[f], done, wheelhouse, work, python, overrides, dict(os.environ), isolation
        ),
        max(1, jobs),
    )


def build_project(
    lock: lockfile.Lock,
    target: lockfile.LockTarget,
    source: Path,
    wheelhouse: Path,
    output: Path,
    *,
    python: str | None = None,
    jobs: int = 1,
    overrides: Overrides = NO_OVERRIDES,
    isolation: Isolation | None = None,
) -> Path:
    """Build the locked project from ``source`` into a wheel in ``output``, offline, with the
    build environment the lock recorded for it (``project-build``), like an sdist's (and the
    same network isolation)."""
    python = python or sys.executable
    isolation = isolation or choose_isolation("auto", python)
    project = lock.project
    if project is None or target.project_build is None:
        raise UsageError(
            f"{lock.path} records no project (or no build environment for it in target "
            f"{target.name}); lock the project directory: `wheelhouse lock PROJECT_DIR`"
        )
    info = read_project(source)
    if canonicalize_name(info.name) != canonicalize_name(project.name):
        raise UsageError(
            f"{source} is project {info.name}, but {lock.path} is the lock of {project.name}; "
            "pass the project's own directory or re-lock"
        )
    envs = lockfile.build_envs(lock, target)
    by_filename = {a.filename: a for a in lockfile.artifacts_for(lock, target)}
    missing = [f for f in target.project_build if f not in by_filename]
    if missing:
        raise UsageError(
            f"{lock.path}: project-build of target {target.name} names {', '.join(missing)}, "
            "which the target's wheelhouse lacks; regenerate the lock with `wheelhouse lock`"
        )
    env = [by_filename[f] for f in target.project_build]
    for dep in env:
        if dep.kind == "wheel":
            _verify(dep, wheelhouse)
    order = _plan(envs, [a.filename for a in env if a.kind == "sdist"])
    output = _output_parent(output)
    work = Path(tempfile.mkdtemp(prefix="wheelhouse-build-"))
    try:
        built = _build_sdists(
            order, envs, by_filename, wheelhouse, work, python, overrides, jobs, isolation
        )
        root = work / "project"
        root.mkdir()
        _art, wheel = _build_wheel(
            project.name,
            info.version,
            f"the project directory {source}",
            lambda: copy_source(source, root / "src"),
            _env_wheels(env, built, wheelhouse),
            root,
            python,
            overrides,
            dict(os.environ),
            isolation,
        )
        return _publish([wheel], output)[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_parallel(
    order: Sequence[str],
    deps: Mapping[str, Collection[str]],
    build: Any,
    jobs: int,
) -> dict[str, tuple[Artifact, Path]]:
    """Run ``build(name, done)`` for each name once its deps are done; first error wins."""
    done: dict[str, tuple[Artifact, Path]] = {}
    running: dict[Future[tuple[Artifact, Path]], str] = {}
    pending = list(order)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            while pending or running:
                for name in [n for n in pending if set(deps[n]) <= set(done)]:
                    if len(running) >= jobs:
                        break
                    pending.remove(name)
                    running[pool.submit(build, name, dict(done))] = name
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: order.index(running[f])):
                    name = running.pop(future)
                    done[name] = future.result()
        finally:
            for future in running:
                future.cancel()
            # Let running builds finish (they only write to the work dir), then report.
            wait(list(running))
    return done


def _publish(wheels: Sequence[Path], output: Path) -> list[Path]:
    """Move the built wheels into ``output`` (created atomically when it does not exist)."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a directory; choose another --output")
    if output.is_dir():
        final = []
        for wheel in wheels:
            tmp = output / f".{wheel.name}.tmp-{os.getpid()}"
            shutil.copyfile(wheel, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, output / wheel.name)
            final.append(output / wheel.name)
        return final
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        for wheel in wheels:
            shutil.copyfile(wheel, tmpdir / wheel.name)
            os.chmod(tmpdir / wheel.name, 0o644)
        os.chmod(tmpdir, 0o755)
        os.rename(tmpdir, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmpdir)
    return [output / w.name for w in wheels]


def wheels_for_sdists(artifacts: Sequence[Artifact], built: Path) -> list[tuple[Artifact, Path]]:
    """``(artifact, file)`` to install: each sdist replaced by its wheel from ``built``.

    A built wheel is matched by package name and version (its tags are whatever the backend
    produced); its hash is taken from the file, since the lock cannot know it.
    """
    out: list[tuple[Artifact, Path]] = []
    try:
        names = sorted(p.name for p in built.iterdir() if p.name.endswith(".whl") and p.is_file())
    except OSError as exc:
        raise InstallError(
            f"--built {built}: cannot list it ({exc.strerror or exc}); run "
            "`wheelhouse build-sdists` first"
        ) from None
    index: dict[tuple[NormalizedName, str], list[str]] = {}
    for name in names:
        try:
            w_name, w_version, _, _ = parse_wheel_filename(name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        index.setdefault((w_name, str(w_version)), []).append(name)
    for art in artifacts:
        if art.kind != "sdist":
            continue
        try:
            key = (canonicalize_name(art.package), str(Version(art.version)))
        except InvalidVersion:
            key = (canonicalize_name(art.package), art.version)
        found = index.get(key, [])
        if len(found) != 1:
            what = "no wheel" if not found else f"{len(found)} wheels ({', '.join(found)})"
            raise InstallError(
                f"{art.filename}: only an sdist of {art.package} {art.version} is locked and "
                f"--built {built} has {what} of it; run `wheelhouse build-sdists` for this lock "
                "and target"
            )
        path = built / found[0]
        try:
            sha256, size = _sha256(path), path.stat().st_size
        except OSError as exc:
            raise InstallError(
                f"--built {built}: cannot read {found[0]} ({exc.strerror}); run "
                "`wheelhouse build-sdists` again"
            ) from None
        out.append(
            (
                Artifact(
                    filename=found[0],
                    package=art.package,
                    version=art.version,
                    sha256=sha256,
                    kind="wheel",
                    size=size,
                ),
                path,
            )
        )
    return out
