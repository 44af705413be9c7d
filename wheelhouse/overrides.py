"""``--overrides FILE.json``: extra build inputs (paths, ``PKG_CONFIG_PATH``, environment) for
every offline build and per package, as nixlib's ``overrides`` hands them to ``build-sdists``.

Read and validated here, once, before any build starts, so a typo is one ``error:`` line naming
the entry; ``wheelhouse.build`` only applies them (``build_environment``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from wheelhouse.errors import UsageError

__all__ = ["NO_OVERRIDES", "Overrides", "PackageOverride", "load_overrides", "parse_overrides"]


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


NO_OVERRIDES = Overrides()


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
    """``--overrides FILE``: read and validated; an unreadable file is one usage error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such overrides file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:  # a directory, no permission...
        raise UsageError(f"{path}: cannot read it ({exc.strerror}); give a JSON file") from None
    return parse_overrides(data, str(path))
