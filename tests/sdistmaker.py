"""Build sdists on the fly for tests, and a tiny PEP 517 backend (as a wheel) to build them with.

``make_sdist`` writes a byte-reproducible ``<name>-<version>.tar.gz`` (or ``.zip``): a top
directory with ``PKG-INFO``, an optional ``pyproject.toml`` (from a dict) and the given files;
``raw`` members are added as given, after the others (names, types, link targets and pax
headers not touched; in a zip, a symlink's target is its content and a directory's name ends
with ``/``), which is how the unsafe-archive tests make ``../``, absolute, link, device and
duplicate members; ``symlink_chain`` makes CVE-2025-4517's chain of symlinks.

``make_backend_wheel`` writes ``tinybackend``, a real build backend configured per sdist through
``[tool.tinybackend]`` in its pyproject.toml:

* ``packages``: directories of the sdist that go into the wheel (default: the module name);
  a source tree without ``PKG-INFO`` (a project) takes name and version from ``[project]``,
  and ``[project.scripts]`` become console scripts;
* ``dynamic-requires``: what ``get_requires_for_build_wheel`` returns;
* ``imports``: modules imported at build time, whose ``VALUE`` is written into the wheel as
  ``<module>/_built_with.py`` (proving what the build environment held);
* ``print`` (lines printed while building), ``fail`` (exit status 3 after printing),
  ``wheel-name``/``wheel-version`` (build a wheel that disagrees with PKG-INFO),
  ``record-env`` (environment variables written into ``_built_with.py``).

No timestamps leak: archives use mtime 0 (wheels built by tinybackend use SOURCE_DATE_EPOCH).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from wheelmaker import make_wheel

__all__ = [
    "APP_PYPROJECT",
    "BACKEND_SOURCE",
    "RawMember",
    "build_sdist_index",
    "make_backend_wheel",
    "make_sdist",
    "module_name",
    "swap_locked_file",
    "symlink_chain",
    "tiny_pyproject",
]


@dataclass(frozen=True)
class RawMember:
    """An archive member written exactly as given (for unsafe-archive tests).

    ``pax`` headers go into a tar member's pax header as given (``{"path": "../x"}`` overrides
    the name in the ustar header); a zip has no hardlinks and no pax headers.
    """

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    pax: Mapping[str, str] | None = None

    def zip_info(self) -> tuple[zipfile.ZipInfo, bytes]:
        kinds = {
            tarfile.REGTYPE: stat.S_IFREG,
            tarfile.DIRTYPE: stat.S_IFDIR,
            tarfile.SYMTYPE: stat.S_IFLNK,
            tarfile.CHRTYPE: stat.S_IFCHR,
            tarfile.BLKTYPE: stat.S_IFBLK,
            tarfile.FIFOTYPE: stat.S_IFIFO,
        }
        if self.type not in kinds or self.pax:
            raise ValueError(f"a zip cannot hold {self}")
        name = self.name + "/" if self.type == tarfile.DIRTYPE else self.name
        info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
        info.create_system = 3  # unix: the mode bits count
        info.external_attr = (kinds[self.type] | self.mode) << 16
        return info, self.linkname.encode() if self.type == tarfile.SYMTYPE else self.data

    def tar_info(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type, info.linkname, info.mode, info.mtime = self.type, self.linkname, self.mode, 0
        info.size = len(self.data) if self.type == tarfile.REGTYPE else 0
        if self.pax:
            info.pax_headers = dict(self.pax)
        return info


def symlink_chain(
    top: str, target: str, *, steps: int = 16, length: int = 247, through: bool = True
) -> list[RawMember]:
    """CVE-2025-4517's members: ``top/escape`` is a symlink that, followed on disk, leads to
    ``target`` (an absolute path, reached with ``..`` from an extraction directory at most
    ``steps`` levels deep), while every member, link targets included, stays inside ``top`` when
    read lexically (without following links).

    How: ``top/a`` -> ``ddd...``, ``top/ddd.../b`` -> ``ddd...``, ... (``steps`` links to
    directories with ``length``-character names) make ``top/a/b/.../p`` really
    ``top/ddd.../ddd.../...``, longer than PATH_MAX, so ``os.path.realpath`` stops resolving it;
    ``top/a/.../p/lll...`` -> ``../`` x ``steps`` is lexically deep but really ``top``, so the
    ``..`` after it climb out of the tree on disk and not on paper. Writing ``top/escape/<name>``
    then writes ``<target>/<name>``. ``through=False`` lists each member under its real path
    (``top/ddd.../b``, not ``top/a/b``): then only following the links shows the escape.
    """
    comp = "d" * length
    members: list[RawMember] = []
    path = real = top
    for i in range(steps):
        step = chr(ord("a") + i)
        where = path if through else real
        members.append(RawMember(f"{where}/{comp}", tarfile.DIRTYPE, mode=0o755))
        members.append(RawMember(f"{where}/{step}", tarfile.SYMTYPE, linkname=comp))
        path, real = f"{path}/{step}", f"{real}/{comp}"
    up = "l" * 254
    where = path if through else real
    members.append(RawMember(f"{where}/{up}", tarfile.SYMTYPE, linkname="../" * steps))
    climb = "../" * (steps + 2)  # lexically still inside the archive's root
    link = f"{path[len(top) + 1 :]}/{up}/{climb}{target.strip('/')}"
    members.append(RawMember(f"{top}/escape", tarfile.SYMTYPE, linkname=link))
    return members


def swap_locked_file(lock: Path, file: Path, new: bytes) -> None:
    """Replace a locked file's bytes, and its sha256 and size in the lock, as a hostile index
    would serve other bytes on a later lock."""
    old = file.read_bytes()
    old_sha = hashlib.sha256(old).hexdigest()
    text = lock.read_text()
    assert old_sha in text, f"{file.name} is not in {lock}"
    text = text.replace(old_sha, hashlib.sha256(new).hexdigest())
    text = text.replace(f"size = {len(old)}\n", f"size = {len(new)}\n")
    lock.write_text(text)
    file.write_bytes(new)


def module_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes | str] | None = None,
    *,
    pyproject: Mapping[str, Any] | None = None,
    pkg_info: bool = True,
    raw: Sequence[RawMember] = (),
    fmt: str = "tar.gz",
    filename: str | None = None,
) -> Path:
    """Write ``directory/<name>-<version>.tar.gz`` (``fmt="zip"``: a zip) and return it.

    ``files`` are relative to the sdist's top directory (default: ``<module>/__init__.py`` with
    ``VERSION``); ``pyproject`` is rendered with tomli-w (None: no pyproject.toml at all).
    """
    dist = module_name(name)
    top = f"{dist}-{version}"
    members: dict[str, bytes] = {}
    if pkg_info:
        members["PKG-INFO"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    if pyproject is not None:
        members["pyproject.toml"] = tomli_w.dumps(dict(pyproject)).encode()
    content = files if files is not None else {f"{dist}/__init__.py": f"VERSION = {version!r}\n"}
    for path, data in content.items():
        members[path] = data.encode() if isinstance(data, str) else data
    out = Path(directory) / (filename or f"{top}.{fmt}")
    if fmt == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicate names are added on purpose
            for path in sorted(members):
                info = zipfile.ZipInfo(f"{top}/{path}", (1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o100644 << 16
                zf.writestr(info, members[path])
            for member in raw:
                zf.writestr(*member.zip_info())
        return out
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({f"{top}/{p}".rsplit("/", 1)[0] for p in members} | {top})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path in sorted(members):
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode, info.mtime = len(members[path]), 0o644, 0
            tar.addfile(info, io.BytesIO(members[path]))
        for member in raw:
            info = member.tar_info()
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())
    return out


BACKEND_SOURCE = r'''
"""tinybackend: a minimal PEP 517 backend for wheelhouse's tests (pure-Python wheels only)."""
import base64
import hashlib
import importlib
import os
import re
import sys
import time
import tomllib
import zipfile


def _config():
    try:
        with open("pyproject.toml", "rb") as f:
            return tomllib.load(f).get("tool", {}).get("tinybackend", {})
    except FileNotFoundError:
        return {}


def _project():
    try:
        with open("pyproject.toml", "rb") as f:
            return tomllib.load(f).get("project", {})
    except FileNotFoundError:
        return {}


def _pkg_info():
    if not os.path.exists("PKG-INFO"):  # a project's source tree, not an sdist
        return {"Name": _project()["name"], "Version": _project()["version"]}
    meta = {}
    with open("PKG-INFO", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            meta[key.strip()] = value.strip()
    return meta


def get_requires_for_build_wheel(config_settings=None):
    return list(_config().get("dynamic-requires", []))


def get_requires_for_build_sdist(config_settings=None):
    return []


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "sha256=" + digest


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    cfg = _config()
    for line in cfg.get("print", []):
        print(line, flush=True)
    if cfg.get("fail"):
        sys.exit(3)
    meta = _pkg_info()
    name = cfg.get("wheel-name", meta["Name"])
    version = cfg.get("wheel-version", meta["Version"])
    dist = re.sub(r"[-_.]+", "_", name)
    module = dist.lower()
    members = {}
    for package in cfg.get("packages", [module]):
        for root, dirs, files in os.walk(package):
            dirs.sort()
            for filename in sorted(files):
                path = os.path.join(root, filename)
                with open(path, "rb") as f:
                    members[path.replace(os.sep, "/")] = f.read()
    built_with = []
    for mod in cfg.get("imports", []):
        value = importlib.import_module(mod).VALUE
        built_with.append(f"{mod} = {value!r}\n")
    for var in cfg.get("record-env", []):
        built_with.append(f"{var} = {os.environ.get(var)!r}\n")
    if built_with:
        members[f"{module}/_built_with.py"] = "".join(built_with).encode()
    info = f"{dist}-{version}.dist-info"
    scripts = _project().get("scripts", {})
    if scripts:
        points = "".join(f"{k} = {v}\n" for k, v in sorted(scripts.items()))
        members[f"{info}/entry_points.txt"] = ("[console_scripts]\n" + points).encode()
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tinybackend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in members.items())
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    date = time.gmtime(max(epoch, 315532800))[:6]
    filename = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, data in members.items():
            zinfo = zipfile.ZipInfo(path, date)
            zinfo.external_attr = 0o644 << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zinfo, data)
    return filename
'''


def make_backend_wheel(directory: Path, version: str = "1.0") -> Path:
    """``tinybackend-<version>-py3-none-any.whl``: the backend above as an installable wheel."""
    return make_wheel(
        directory,
        "tinybackend",
        version,
        {"tinybackend/__init__.py": BACKEND_SOURCE + f"\nVERSION = {version!r}\n"},
    )


def tiny_pyproject(
    name: str,
    version: str,
    *,
    requires: Sequence[str] = ("tinybackend",),
    backend: str = "tinybackend",
    backend_path: Sequence[str] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """A pyproject.toml (as a dict) building with tinybackend, ``config`` as [tool.tinybackend]
    (keys with ``_`` spelled with ``-``)."""
    system: dict[str, Any] = {"requires": list(requires), "build-backend": backend}
    if backend_path is not None:
        system["backend-path"] = list(backend_path)
    data: dict[str, Any] = {
        "build-system": system,
        "project": {"name": name, "version": version},
    }
    if config:
        data["tool"] = {"tinybackend": {k.replace("_", "-"): v for k, v in config.items()}}
    return data


APP_PYPROJECT = tiny_pyproject(
    "app",
    "1.0",
    requires=["tinybackend<2"],
    dynamic_requires=["tinyhelper>=1"],
    imports=["tinyhelper"],
    record_env=["SOURCE_DATE_EPOCH", "APP_FLAVOUR"],
)


def build_sdist_index(root: Path) -> None:
    """The sdist demo index of tests/test_build.py and tests/test_lock.py (see there)."""
    make_backend_wheel(root, "1.0")
    make_backend_wheel(root, "2.0")
    make_sdist(
        root,
        "tinyhelper",
        "1.0",
        {"tinyhelper/__init__.py": "VALUE = 'helped'\n"},
        pyproject=tiny_pyproject("tinyhelper", "1.0"),
    )
    make_sdist(root, "app", "1.0", {"app/__init__.py": "X = 1\n"}, pyproject=APP_PYPROJECT)
    make_wheel(root, "app", "1.0")  # a wheel exists: the sdist is there by --no-binary
    make_sdist(
        root,
        "netpkg",
        "1.0",
        {
            "netpkg/__init__.py": "",
            "_backend/netbackend.py": (
                "import urllib.request\n"
                "import os\n"
                "def get_requires_for_build_wheel(config_settings=None):\n"
                "    return []\n"
                "def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):\n"
                "    info = os.path.join(metadata_directory, 'netpkg-1.0.dist-info')\n"
                "    os.mkdir(info)\n"
                "    with open(os.path.join(info, 'METADATA'), 'w') as f:\n"
                "        f.write('Metadata-Version: 2.1\\nName: netpkg\\nVersion: 1.0\\n')\n"
                "    return 'netpkg-1.0.dist-info'\n"
                "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
                "    urllib.request.urlopen('https://example.org/', timeout=10)\n"
            ),
        },
        pyproject={
            "build-system": {
                "requires": [],
                "build-backend": "netbackend",
                "backend-path": ["_backend"],
            }
        },
    )
