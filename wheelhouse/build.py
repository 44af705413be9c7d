"""Running PEP 517 backends: build requirements at lock time, wheels from sdists offline.

``wheelhouse build-sdists`` turns every sdist of a lock target into a wheel, using nothing but
the wheelhouse: each sdist gets a fresh environment holding exactly its locked build requirements
(installed with ``wheelhouse.install.install_env``), sdists whose environment holds another sdist
wait for that one's wheel (``sdist.build_order``), and independent builds run in parallel. The
backend is called through ``pyproject_hooks`` in a new network namespace where the OS allows it
(``wheelhouse.isolation``), and in any case with the network blocked three ways: proxies point
at a closed loopback port, ``PIP_NO_INDEX=1``, and a ``.pth`` hook in the build environment makes
``socket.connect``/``getaddrinfo`` to anything but loopback fail with "network access is not
allowed while building <pkg>" (a ``.pth``, not ``sitecustomize``: Debian's interpreter ships its
own ``sitecustomize`` in the standard library, which would shadow ours). ``SOURCE_DATE_EPOCH``
is fixed, so rebuilding gives the same wheel bytes.

At lock time, ``query_build_requires`` asks a backend for its extra requirements
(``get_requires_for_build_wheel``) in a throw-away venv filled by pip (network allowed there).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import venv
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyproject_hooks
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelhouse import lockfile, sdist
from wheelhouse.errors import (
    BuildError,
    HashMismatchError,
    InstallError,
    ResolutionError,
    UsageError,
)
from wheelhouse.install import install_env
from wheelhouse.isolation import ADVISORY, Isolation
from wheelhouse.isolation import choose as choose_isolation
from wheelhouse.model import Artifact, same_version
from wheelhouse.project import read_project
from wheelhouse.resolve import Inputs, pip_environment

__all__ = [
    "SOURCE_DATE_EPOCH",
    "Overrides",
    "PackageOverride",
    "build_environment",
    "build_sdists",
    "load_overrides",
    "query_build_requires",
    "wheels_for_sdists",
]

SOURCE_DATE_EPOCH = "315532800"
"""1980-01-01T00:00:00Z: the earliest date a zip (wheel) can hold; fixed so rebuilds match."""
BLACKHOLE_PROXY = "http://127.0.0.1:9"
"""Proxies point here (the discard port, closed): clients that honour proxies fail at once, and
the offline hook recognises the address to name the package in its message."""
TAIL_LINES = 15
"""Backend output lines a BuildError shows: enough for a compiler error, short for a Nix log."""
_DROP_ENV_PREFIXES = ("PYTHON", "PIP_", "VIRTUAL_ENV", "CONDA")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

OFFLINE_HOOK = '''\
"""Installed by wheelhouse into a build environment: no network access while building."""
import socket

_PACKAGE = {package!r}
_MESSAGE = (
    "network access is not allowed while building " + _PACKAGE + " (wheelhouse builds sdists "
    "offline from the locked wheelhouse; lock what the build downloads as a build requirement, "
    "or lock a wheel of " + _PACKAGE + ")"
)
_BLACKHOLE = ("127.0.0.1", 9)


def _loopback(host):
    host = str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")


def _check(sock, address):
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if not isinstance(address, tuple) or not _loopback(address[0]) or (
        tuple(address[:2]) == _BLACKHOLE
    ):
        raise ConnectionRefusedError(111, _MESSAGE)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
        raise socket.gaierror(socket.EAI_NONAME, _MESSAGE)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


# --- overrides -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageOverride:
    """Extra build inputs for one package (from Nix: its ``nativeBuildInputs`` and ``env``)."""

    path: tuple[str, ...] = ()
    pkg_config_path: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Overrides:
    """``--overrides FILE.json``: inputs for every build, and per package.

    ``{"path": [...], "pkg_config_path": [...], "env": {...},
    "packages": {"<name>": {"path": [...], "pkg_config_path": [...], "env": {...}}}}``
    (every key optional). Paths are prepended to ``PATH``/``PKG_CONFIG_PATH``.
    """

    common: PackageOverride = PackageOverride()
    packages: Mapping[NormalizedName, PackageOverride] = field(default_factory=dict)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where} must be a list of strings, got {value!r}")
    return tuple(value)


def _package_override(data: Any, where: str) -> PackageOverride:
    if not isinstance(data, dict):
        raise UsageError(f"{where} must be an object, got {data!r}")
    unknown = sorted(set(data) - {"path", "pkg_config_path", "env", "packages"})
    if unknown:
        raise UsageError(f"{where} has unknown keys {unknown}; allowed: path, pkg_config_path, env")
    env = data.get("env", {})
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise UsageError(f"{where}.env must map names to strings, got {env!r}")
    return PackageOverride(
        path=_strings(data.get("path", []), f"{where}.path"),
        pkg_config_path=_strings(data.get("pkg_config_path", []), f"{where}.pkg_config_path"),
        env=dict(env),
    )


def parse_overrides(data: Any, where: str = "overrides") -> Overrides:
    """Validate the overrides JSON document (see ``Overrides``); errors name the bad entry."""
    common = _package_override(data, where)
    packages = data.get("packages", {})
    if not isinstance(packages, dict):
        raise UsageError(f"{where}.packages must be an object, got {packages!r}")
    per: dict[NormalizedName, PackageOverride] = {}
    for name, value in packages.items():
        entry = _package_override(value, f"{where}.packages.{name}")
        if "packages" in value:
            raise UsageError(f"{where}.packages.{name} cannot hold packages")
        per[canonicalize_name(name)] = entry
    return Overrides(common, per)


def load_overrides(path: Path) -> Overrides:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such overrides file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:  # a directory, no permission...
        raise UsageError(f"{path}: cannot read it ({exc.strerror}); give a JSON file") from None
    return parse_overrides(data, str(path))


# --- environment (pure) --------------------------------------------------------------------------


def _join(*groups: Sequence[str]) -> str:
    return os.pathsep.join(p for group in groups for p in group if p)


def build_environment(
    base: Mapping[str, str],
    *,
    package: str,
    env_bin: str,
    home: str,
    overrides: Overrides = Overrides(),
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


# --- running hooks -------------------------------------------------------------------------------


class _HookFailed(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode


class _Runner:
    """A ``pyproject_hooks`` runner that captures the backend's output for error messages, and
    runs the backend through ``isolation`` (a new network namespace, where the OS allows)."""

    def __init__(self, env: Mapping[str, str], isolation: Isolation = ADVISORY) -> None:
        self.env = dict(env)
        self.isolation = isolation
        self.output: list[str] = []

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        env = {**self.env, **(extra_environ or {})}
        proc = subprocess.run(
            self.isolation.command(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        self.output.extend(proc.stdout.decode("utf-8", "replace").splitlines())
        if proc.returncode != 0:
            raise _HookFailed(proc.returncode)

    def tail(self) -> str:
        lines = [ln.rstrip() for ln in self.output if ln.strip()][-TAIL_LINES:]
        if not lines:
            return " (the backend printed nothing)"
        return f"; the backend's last {len(lines)} lines of output:\n" + "\n".join(
            "  | " + ln for ln in lines
        )


def _call_hook(what: str, package: str, runner: _Runner, call: Any, *args: Any) -> Any:
    """Call a hook; every way it can fail becomes a BuildError naming the package."""
    try:
        return call(*args)
    except _HookFailed as exc:
        raise BuildError(
            f"building {package}: {what} failed (exit status {exc.returncode})"
            f"{' in a network namespace' if runner.isolation.namespaced else ''}{runner.tail()}"
        ) from None
    except pyproject_hooks.BackendUnavailable as exc:
        raise BuildError(
            f"building {package}: the build backend {exc.backend_name or ''} cannot be imported "
            f"({(exc.traceback.strip().splitlines() or ['no traceback'])[-1]}); is it in the "
            f"build requirements?{runner.tail()}"
        ) from None
    except (
        pyproject_hooks.HookMissing,
        pyproject_hooks.UnsupportedOperation,
        pyproject_hooks.BackendInvalid,
        ValueError,
    ) as exc:
        raise BuildError(f"building {package}: {what} failed: {exc!r}{runner.tail()}") from None


def _hook_caller(
    source: Path, system: sdist.BuildSystem, python: str, runner: _Runner
) -> pyproject_hooks.BuildBackendHookCaller:
    return pyproject_hooks.BuildBackendHookCaller(
        str(source),
        system.backend,
        backend_path=list(system.backend_path) or None,
        runner=runner,
        python_executable=python,
    )


def source_build_system(source: Path, filename: str) -> sdist.BuildSystem:
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return sdist.LEGACY_BUILD_SYSTEM
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{filename}: pyproject.toml is not valid TOML ({exc})") from None
    return sdist.build_system(data, filename)


def query_build_requires(path: Path, system: sdist.BuildSystem, inputs: Inputs) -> list[str]:
    """Ask the sdist's backend ``get_requires_for_build_wheel`` (lock time, network allowed).

    The backend runs in a fresh venv holding only ``system.requires``, installed by pip from the
    lock's indexes, so what it answers does not depend on this machine's packages.
    """
    with tempfile.TemporaryDirectory(prefix="wheelhouse-requires-") as tmp:
        if path.is_dir():  # a project: its backend may write (egg-info), so it gets a copy
            source = copy_source(path, Path(tmp, "src"))
        else:
            source = sdist.extract(path, Path(tmp, "src"))
        env_dir = Path(tmp, "env")
        venv.EnvBuilder(symlinks=True, with_pip=False, clear=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        environ, secrets = pip_environment(inputs)
        environ = {k: v for k, v in environ.items() if not k.startswith("PYTHON")}
        if system.requires:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "--python",
                python,
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ]
            for link in inputs.find_links:
                cmd += ["--find-links", link]
            proc = subprocess.run(
                [*cmd, *system.requires],
                env=environ,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                detail = proc.stderr
                for secret in secrets:
                    detail = detail.replace(secret, "****")
                lines = [ln for ln in detail.splitlines() if ln.strip()][-5:]
                raise ResolutionError(
                    f"{path.name}: pip cannot install its build requirements "
                    f"{', '.join(system.requires)} (needed to ask its backend for more): "
                    + " | ".join(lines)
                )
        runner = _Runner({**environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
        caller = _hook_caller(source, system, python, runner)
        reqs = _call_hook(
            "get_requires_for_build_wheel",
            path.name,
            runner,
            caller.get_requires_for_build_wheel,
        )
    if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
        raise BuildError(
            f"{path.name}: get_requires_for_build_wheel returned {reqs!r}, not a list of strings"
        )
    return reqs


def copy_source(project: Path, dest: Path) -> Path:
    """A project's tree as a backend should see it: no VCS data, caches or Nix result links."""
    skip = {".git", ".hg", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in skip or n.startswith("result")}

    shutil.copytree(project, dest, symlinks=True, ignore=ignore)
    # A source in the Nix store is read-only, and backends write (egg-info, build/): the copy is
    # the user's to write.
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, os.stat(root).st_mode | stat.S_IWUSR)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    return dest


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
    site = _site_packages(prefix)
    (site / "_wheelhouse_offline.py").write_text(OFFLINE_HOOK.format(package=package))
    (site / "_wheelhouse_offline.pth").write_text("import _wheelhouse_offline\n")
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
    runner = _Runner(env, isolation)
    env_python = str(prefix / "bin" / "python")
    caller = _hook_caller(source, system, env_python, runner)
    asked = _call_hook(
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
    name = _call_hook("build_wheel", package, runner, caller.build_wheel, str(outdir))
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
    overrides: Overrides = Overrides(),
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
    overrides: Overrides = Overrides(),
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
