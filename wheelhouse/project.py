"""The project under development: who it is (from ``pyproject.toml``) and its editable wheel.

A lock made from a project directory records the project itself as a PEP 751 ``directory``
package, so the lock says what it is for; its files are never fetched. ``develop`` puts the
project on ``sys.path`` straight from the working tree: :func:`editable_wheel` writes a small
wheel holding a ``.pth`` file that points at the source, the project's metadata and its entry
points, which the ordinary install engine then installs (console scripts included). It is
made from the static ``[project]`` table alone, so it does not change when a source file is
edited, and a Nix shell built from it needs no rebuild after an edit.
"""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelhouse.errors import UsageError
from wheelhouse.model import record_hash

_DATE = (1980, 1, 1, 0, 0, 0)
EDITABLE_VERSION = "0+editable"
"""Version of an editable project whose ``[project] version`` is dynamic (set by its backend)."""


@dataclass(frozen=True)
class ProjectInfo:
    directory: Path
    name: str
    version: str | None
    """None when ``version`` is dynamic: only the backend knows it."""
    entry_points: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    requires_python: str | None = None


def read_pyproject(directory: Path) -> tuple[Path, dict[str, Any]]:
    """``directory/pyproject.toml`` (its path and content); one clear error when unusable."""
    path = directory / "pyproject.toml"
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{directory}: no pyproject.toml; give requirements instead") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix it") from None
    except OSError as exc:  # a directory named pyproject.toml, no permission...
        raise UsageError(f"{path}: cannot read it ({exc.strerror}); fix it") from None


def read_project(directory: Path) -> ProjectInfo:
    """The ``[project]`` table of ``directory/pyproject.toml``; a clear error when unusable."""
    path, data = read_pyproject(directory)
    proj = data.get("project")
    if not isinstance(proj, dict) or not isinstance(proj.get("name"), str):
        raise UsageError(
            f"{path}: no [project] name; add a [project] table with name and version (PEP 621)"
        )
    if not _NAME.fullmatch(proj["name"]):
        raise UsageError(f"{path}: [project] name {proj['name']!r} is not a valid name; fix it")
    version = proj.get("version")
    if version is not None and not isinstance(version, str):
        raise UsageError(f"{path}: [project] version must be a string; fix it")
    if version is not None:
        try:
            Version(version)
        except InvalidVersion:
            raise UsageError(
                f"{path}: [project] version {version!r} is not a PEP 440 version; fix it"
            ) from None
    groups: dict[str, dict[str, str]] = {}
    for key, group in (("scripts", "console_scripts"), ("gui-scripts", "gui_scripts")):
        if proj.get(key):
            groups[group] = _strings_table(proj[key], f"[project.{key}]", path)
    entry_points = proj.get("entry-points") or {}
    if not isinstance(entry_points, dict):
        raise UsageError(f"{path}: [project.entry-points] must be a table; fix it")
    for group, points in entry_points.items():
        groups[str(group)] = _strings_table(points, f"[project.entry-points.{group}]", path)
    dependencies = proj.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise UsageError(f"{path}: [project] dependencies must be an array of strings; fix it")
    requires_python = proj.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise UsageError(f"{path}: [project] requires-python must be a string; fix it")
    return ProjectInfo(
        directory=directory,
        name=proj["name"],
        version=version,
        entry_points=groups,
        dependencies=tuple(dependencies),
        requires_python=requires_python,
    )


_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
"""A valid project name (the core metadata specification)."""


def _strings_table(value: object, where: str, path: Path) -> dict[str, str]:
    """A TOML table of strings (entry points), or a UsageError naming the table."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UsageError(f"{path}: {where} must be a table of strings; fix it")
    return {str(k): v for k, v in value.items()}


def has_build_system(directory: Path) -> bool:
    """Whether the project is a package (it declares ``[build-system]``), not only a list of
    dependencies: only a package is recorded in the lock and built."""
    try:
        _path, data = read_pyproject(directory)
    except UsageError:  # reading its dependencies reports that
        return False
    return isinstance(data.get("build-system"), dict)


def import_root(source: Path) -> Path:
    """Where the project's packages live: ``src/`` in a src layout, else the project root."""
    return source / "src" if (source / "src").is_dir() else source



def _entry_points_txt(groups: Mapping[str, Mapping[str, str]]) -> str:
    return "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(points.items())) + "\n"
        for group, points in sorted(groups.items())
    )


def editable_wheel(info: ProjectInfo, root: str, directory: Path) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` into ``directory``: a ``.pth`` adding
    ``root`` (an absolute path: the working tree, not a copy) to ``sys.path``, plus the
    project's METADATA, entry points and a PEP 610 ``direct_url.json`` marking it editable."""
    if not root.startswith("/"):
        raise UsageError(f"editable root {root!r} must be an absolute path; pass the full path")
    if "\n" in root or "\r" in root:  # the .pth file lists one path per line
        raise UsageError(f"editable root {root!r} holds a line break; pass a path without one")
    version = info.version or EDITABLE_VERSION
    dist = re.sub(r"[-_.]+", "_", canonicalize_name(info.name))
    dist_info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {info.name}", f"Version: {version}"]
    if info.requires_python:
        meta.append(f"Requires-Python: {info.requires_python}")
    meta += [f"Requires-Dist: {d}" for d in info.dependencies]
    members: dict[str, bytes] = {
        f"__editable__.{dist}.pth": f"{root}\n".encode(),
        f"{dist_info}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: wheelhouse\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/direct_url.json": json.dumps(
            {"url": Path(root).as_uri(), "dir_info": {"editable": True}}, sort_keys=True
        ).encode(),
    }
    if info.entry_points:
        members[f"{dist_info}/entry_points.txt"] = _entry_points_txt(info.entry_points).encode()
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zinfo = zipfile.ZipInfo(name, _DATE)
            zinfo.external_attr = 0o644 << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zinfo, data)
    return wheel
