"""The ``image`` stage: an installed env prefix (plus its interpreter) as an OCI image.

Reads the prefix ``wheelhouse install`` made (a venv layout with one site-packages) and each
installed ``.dist-info/RECORD``, asks ``layers.plan_layers`` which file goes where, and writes
each layer as a tar stream whose sha256 (and the gzip stream's) is computed while it is written.
Output is an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/``) or a
``docker-archive`` tar (the same blobs plus ``manifest.json``, as ``docker load`` reads it).

Byte-reproducible by construction: entries sorted, every mtime ``SOURCE_DATE_EPOCH``, uid/gid 0
with no user or group names, no xattrs, modes reduced to 0755/0644 (so setuid/setgid/sticky
bits never enter an image), symlinks archived as symlinks and never followed, hard links stored
as plain files, gzip with mtime 0 and no file name. Device files, FIFOs and sockets are refused.

This stage reads only the installed tree: it imports nothing of lock, fetch or install.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packaging.utils import canonicalize_name

from wheelhouse import __version__
from wheelhouse.errors import ImageError
from wheelhouse.layers import (
    DEFAULT_MAX_LAYERS,
    LayerPlan,
    Package,
    claim,
    own_files,
    plan_layers,
    record_paths,
)
from wheelhouse.tempfiles import fsync_dir, temp_prefix

BLOCK = 512
CHUNK = 1 << 20
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
}
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True)
class ImageOptions:
    """What the image says about itself, and how it is written."""

    name: str = "python-env"
    tag: str = "latest"
    entrypoint: tuple[str, ...] | None = None
    """Default: the env's ``bin/python``."""
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    epoch: int = 0
    compression: str = "gzip"
    fmt: str = "oci"
    max_layers: int = DEFAULT_MAX_LAYERS
    image_prefix: str | None = None
    """Where the env's files go in the image (default: its own path)."""
    jobs: int = 1
    """Layers written in parallel by this many processes."""


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    diff_id: str = ""


@dataclass(frozen=True)
class ImageResult:
    manifest_digest: str
    layers: list[tuple[str, Blob]]
    """Label and blob of each layer, bottom to top."""


@dataclass
class EnvScan:
    """What the prefix holds: installed packages, and the files no package layer takes."""

    packages: list[Package]
    top_files: list[str]
    top_dirs: list[str]
    python_version: str


def scan_env(prefix: Path) -> EnvScan:
    """Read every RECORD under the prefix's site-packages and sort the tree's files into
    package files and the env's own files."""
    if not prefix.is_dir():
        raise ImageError(
            f"{prefix} is not a directory; pass the env prefix `wheelhouse install` made"
        )
    files, dirs = _walk(prefix)
    site_dirs = sorted(
        d
        for d in dirs
        if d.startswith("lib/python") and d.count("/") == 2 and d.endswith("/site-packages")
    )
    records: list[tuple[str, str, list[str]]] = []
    record_of: dict[str, str] = {}
    for site in site_dirs:
        for entry in sorted(os.listdir(prefix / site)):
            if not entry.endswith(".dist-info") or f"{site}/{entry}/RECORD" not in files:
                continue
            stem = entry[: -len(".dist-info")]
            name, _, version = stem.rpartition("-")
            label = f"{canonicalize_name(name or stem)} {version}"
            try:
                text = (prefix / site / entry / "RECORD").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ImageError(
                    f"{label}: cannot read {prefix / site / entry / 'RECORD'} ({exc}); "
                    "rebuild the env with `wheelhouse install`"
                ) from None
            paths = record_paths(text, f"{site}/{entry}", site, label)
            for path in paths:
                if path not in files:
                    raise ImageError(
                        f"{label}: {site}/{entry}/RECORD lists {path}, which is not in {prefix} "
                        "(or is a directory); rebuild the env with `wheelhouse install`"
                    )
            records.append((canonicalize_name(name or stem), version, paths))
            record_of[records[-1][0]] = f"{site}/{entry}/RECORD"
    if not records:
        raise ImageError(
            f"{prefix} has no .dist-info/RECORD under lib/python*/site-packages, so nothing says "
            "which file belongs to which package; pass an env made by `wheelhouse install`"
        )
    names = [r[0] for r in records]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ImageError(
            f"{prefix}: {', '.join(dupes)} installed twice (two .dist-info directories); "
            "rebuild the env with `wheelhouse install`"
        )
    claim(records)
    packages = []
    for name, version, paths in records:
        own = own_files(paths, record_of[name], site_dirs)
        packages.append(Package(name, version, own, sum(files[p] for p in own)))
    in_packages = {p for pkg in packages for p in pkg.files}
    top_files = sorted(f for f in files if f not in in_packages)
    covered: set[str] = set()
    for path in in_packages:
        parent = path.rpartition("/")[0]
        while parent and parent not in covered:
            covered.add(parent)
            parent = parent.rpartition("/")[0]
    top_dirs = sorted(d for d in dirs if d not in covered)
    return EnvScan(packages, top_files, top_dirs, _python_version(prefix))


def _python_version(prefix: Path) -> str:
    with contextlib.suppress(OSError):
        for line in (prefix / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "version":
                return value.strip()
    return ""


def _walk(root: Path) -> tuple[dict[str, int], set[str]]:
    """Relative paths of a tree's non-directories (with sizes) and directories; refuses the
    file types an image must not carry. Symlinks are entries, never followed."""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for entry in it:
                path = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    dirs.add(path)
                    stack.append(path)
                elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    files[path] = st.st_size if stat.S_ISREG(st.st_mode) else 0
                else:
                    raise ImageError(_special(root / path, st.st_mode))
    return files, dirs


def _special(path: Path | str, mode: int) -> str:
    kind = (
        "a device file"
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file, directory or symlink"
    )
    return f"{path} is {kind}, which an image must not carry; remove it from the tree"


@dataclass(frozen=True)
class Link:
    """A symlink the image adds (the env's own path pointing to where the image puts it)."""

    target: str


Source = str | Link | None
"""What an archive entry is made from: a path on disk, a made-up symlink, or a directory."""


# --- tar writing ----------------------------------------------------------------------------


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Hashing:
    """A write-only stream that hashes and counts what passes through it."""

    def __init__(self, out: _Writer) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        """GzipFile flushes its file object when closed; the real file is flushed by its own
        close."""


def _header(name: str, kind: bytes, mode: int, size: int, link: str, epoch: int) -> bytes:
    """One tar header: plain ustar (long names split into its prefix field) where the entry
    fits, else tarfile's pax header. Written by hand because tarfile makes a pax header for
    every name over 100 bytes (most paths below a Nix store path) and is the slow part of
    writing ~30,000 small files."""
    if kind == tarfile.DIRTYPE:
        name += "/"  # as tar and tarfile write directories
    raw, target = name.encode("utf-8", "surrogateescape"), link.encode("utf-8", "surrogateescape")
    prefix = b""
    if len(raw) > 100:
        cut = raw.rfind(b"/", 0, min(156, len(raw) - 1))
        if cut > 0 and 0 < len(raw) - cut - 1 <= 100:
            prefix, raw = raw[:cut], raw[cut + 1 :]
    if (
        len(raw) > 100
        or len(target) > 100
        or size >= 8**11
        or epoch >= 8**11
        or not (raw + prefix + target).isascii()
    ):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname, info.mtime = kind, mode, size, link, epoch
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    head = b"".join([
        raw.ljust(100, b"\0"), b"%07o\0" % mode, b"0000000\0", b"0000000\0",
        b"%011o\0" % size, b"%011o\0" % epoch, b"        ", kind, target.ljust(100, b"\0"),
        b"ustar\x0000", b"\0" * 80, prefix.ljust(155, b"\0"),
        b"\0" * 12,
    ])  # fmt: skip
    return head[:148] + b"%06o\0 " % sum(head) + head[156:]


def write_tar(out: _Writer, entries: Mapping[str, Source], epoch: int) -> None:
    """A tar of ``entries`` (archive name -> source), sorted, with every ancestor directory as
    an entry. Headers and small files are gathered into ~1 MiB writes (one hash update and one
    write call each, not three per file); large files are streamed in chunks."""
    names = set(entries)
    for name in entries:
        parent = name.rpartition("/")[0]
        while parent and parent not in names:
            names.add(parent)
            parent = parent.rpartition("/")[0]
    buf: list[bytes] = []
    pending = 0
    for name in sorted(names):
        source = entries.get(name)
        if source is None:
            data = _header(name, tarfile.DIRTYPE, 0o755, 0, "", epoch)
        elif isinstance(source, Link):
            data = _header(name, tarfile.SYMTYPE, 0o777, 0, source.target, epoch)
        else:
            st = os.lstat(source)
            if stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                header = _header(name, tarfile.REGTYPE, mode, st.st_size, "", epoch)
                if st.st_size > CHUNK:
                    out.write(b"".join(buf))
                    buf.clear()
                    pending = 0
                    out.write(header)
                    _stream_file(out, source, st.st_size)
                    continue
                data = header + _read_file(source, st.st_size) + b"\0" * (-st.st_size % BLOCK)
            elif stat.S_ISDIR(st.st_mode):
                data = _header(name, tarfile.DIRTYPE, 0o755, 0, "", epoch)
            elif stat.S_ISLNK(st.st_mode):
                data = _header(name, tarfile.SYMTYPE, 0o777, 0, os.readlink(source), epoch)
            else:
                raise ImageError(_special(source, st.st_mode))
        buf.append(data)
        pending += len(data)
        if pending >= CHUNK:
            out.write(b"".join(buf))
            buf.clear()
            pending = 0
    buf.append(b"\0" * (2 * BLOCK))
    out.write(b"".join(buf))


def _shrank(source: str) -> ImageError:
    return ImageError(f"{source} shrank while it was archived; rebuild the image")


def _read_file(source: str, size: int) -> bytes:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        data = os.read(fd, size) if size else b""
    finally:
        os.close(fd)
    if len(data) != size:
        raise _shrank(source)
    return data


def _stream_file(out: _Writer, source: str, size: int) -> None:
    with open(source, "rb", buffering=0) as f:
        remaining = size
        while remaining:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                raise _shrank(source)
            out.write(chunk)
            remaining -= len(chunk)
    out.write(b"\0" * (-size % BLOCK))


def _write_layer(blobs: Path, entries: Mapping[str, Source], opts: ImageOptions) -> Blob:
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as raw:
            outer = _Hashing(raw)
            if opts.compression == "gzip":
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=outer, mtime=0, compresslevel=6
                ) as gz:
                    inner = _Hashing(gz)
                    write_tar(inner, entries, opts.epoch)
                diff_id = inner.sha.hexdigest()
            else:
                write_tar(outer, entries, opts.epoch)
                diff_id = outer.sha.hexdigest()
        digest = outer.sha.hexdigest()
        os.replace(tmp, blobs / digest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Blob(f"sha256:{digest}", outer.size, f"sha256:{diff_id}")


def _write_json(blobs: Path, data: Any) -> Blob:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (blobs / digest).write_bytes(raw)
    return Blob(f"sha256:{digest}", len(raw))


# --- the image ------------------------------------------------------------------------------


def _root_entries(root: str) -> dict[str, Source]:
    """Everything at and below an absolute path (closure or extra path), by archive name."""
    name = root.strip("/")
    try:
        st = os.lstat(root)
    except OSError as exc:
        raise ImageError(
            f"{root}: {exc.strerror}; pass existing absolute paths as closure or extra paths"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise ImageError(_special(root, st.st_mode))
        return {name: root}
    files, dirs = _walk(Path(root))
    entries: dict[str, Source] = {name: None}
    entries.update({f"{name}/{d}": None for d in dirs})
    entries.update({f"{name}/{f}": f"{root}/{f}" for f in files})
    return entries


def layer_entries(
    plan: LayerPlan, prefix: str, scan: EnvScan, image_prefix: str | None = None
) -> dict[str, Source]:
    """Archive names and sources of one layer. With ``image_prefix`` the env's files sit there
    (a path that does not change when a pin does, unlike a Nix store path) and the top layer
    links the env's own path to it, so its scripts' shebangs still resolve."""
    base = (image_prefix or prefix).strip("/")
    entries: dict[str, Source] = {}
    for root in plan.roots:
        entries.update(_root_entries(root))
    for pkg in plan.packages:
        entries.update({f"{base}/{f}": f"{prefix}/{f}" for f in pkg.files})
    if plan.top:
        entries[base] = None
        if image_prefix and image_prefix.strip("/") != prefix.strip("/"):
            entries[prefix.strip("/")] = Link(image_prefix)
        entries.update({f"{base}/{d}": None for d in scan.top_dirs})
        entries.update({f"{base}/{f}": f"{prefix}/{f}" for f in plan.files})
    return entries


def build_image(
    prefix: Path,
    output: Path,
    opts: ImageOptions,
    *,
    closure: Sequence[str] = (),
    extra_paths: Sequence[str] = (),
    spec: Sequence[Sequence[str]] = (),
    spec_source: str = "layer spec",
) -> ImageResult:
    """Write the image of ``prefix`` to ``output`` (a new OCI layout directory, or a new
    docker-archive file), via a temp sibling renamed at the end: nothing is left on failure."""
    prefix_s = os.path.abspath(prefix)
    if os.path.lexists(output):
        raise ImageError(f"{output} already exists; remove it or choose another output path")
    if opts.image_prefix is not None and not opts.image_prefix.startswith("/"):
        raise ImageError(f"--image-prefix {opts.image_prefix}: give an absolute path")
    for path in [*closure, *extra_paths]:
        if not os.path.isabs(path):
            raise ImageError(
                f"{path} is not an absolute path; pass closure and extra paths absolute"
            )
    scan = scan_env(Path(prefix_s))
    closure = [p for p in closure if os.path.abspath(p) != prefix_s]
    plans = plan_layers(
        scan.packages,
        closure=closure,
        extra_paths=extra_paths,
        top_files=scan.top_files,
        spec=spec,
        spec_source=spec_source,
        max_layers=opts.max_layers,
    )
    output = output.absolute()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=temp_prefix(output.name)))
    try:
        tmp.chmod(0o755)
        layout = tmp / "layout" if opts.fmt == "docker-archive" else tmp
        result = _write_layout(layout, plans, prefix_s, scan, opts)
        if opts.fmt == "docker-archive":
            archive = tmp / "image.tar"
            with open(archive, "wb") as f:
                write_tar(f, _archive_entries(layout), opts.epoch)
            os.replace(archive, output)
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, output)
        fsync_dir(output.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _archive_entries(layout: Path) -> dict[str, Source]:
    files, dirs = _walk(layout)
    entries: dict[str, Source] = {d: None for d in dirs}
    entries.update({f: str(layout / f) for f in files})
    return entries


def _iso(epoch: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_layout(
    layout: Path, plans: list[LayerPlan], prefix: str, scan: EnvScan, opts: ImageOptions
) -> ImageResult:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    entries = [layer_entries(p, prefix, scan, opts.image_prefix) for p in plans]
    if opts.jobs > 1 and len(plans) > 1:
        # Layers are independent streams: worker processes write them side by side (the
        # per-file work is Python, so threads would queue on the GIL).
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=opts.jobs, mp_context=context) as pool:
            futures = [pool.submit(_write_layer, blobs, e, opts) for e in entries]
            written = [f.result() for f in futures]
    else:
        written = [_write_layer(blobs, e, opts) for e in entries]
    layers = [(p.label, b) for p, b in zip(plans, written, strict=True)]
    home = opts.image_prefix or prefix
    created = _iso(opts.epoch)
    labels = {
        "org.opencontainers.image.title": opts.name,
        "org.opencontainers.image.version": opts.tag,
        "org.opencontainers.image.created": created,
        "io.wheelhouse.version": __version__,
        "io.wheelhouse.python": scan.python_version,
        **opts.labels,
    }
    env = {"PATH": f"{home}/bin:/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(opts.env)
    config: dict[str, Any] = {
        "Entrypoint": list(opts.entrypoint or (f"{home}/bin/python",)),
        "Env": [f"{k}={v}" for k, v in env.items()],
        "WorkingDir": opts.workdir,
        "Labels": labels,
    }
    if opts.cmd:
        config["Cmd"] = list(opts.cmd)
    if opts.user:
        config["User"] = opts.user
    config_blob = _write_json(
        blobs,
        {
            "created": created,
            "architecture": ARCH.get(platform.machine(), platform.machine()),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [b.diff_id for _, b in layers]},
            "history": [
                {"created": created, "created_by": f"wheelhouse image: {label}"}
                for label, _ in layers
            ],
        },
    )
    media = MEDIA_LAYER["none" if opts.fmt == "docker-archive" else opts.compression]
    manifest = _write_json(
        blobs,
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {
                "mediaType": MEDIA_CONFIG,
                "digest": config_blob.digest,
                "size": config_blob.size,
            },
            "layers": [{"mediaType": media, "digest": b.digest, "size": b.size} for _, b in layers],
            "annotations": {k: v for k, v in labels.items() if k.startswith("org.opencontainers")},
        },
    )
    ref = f"{opts.name}:{opts.tag}"
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest.digest,
                "size": manifest.size,
                "annotations": {
                    "org.opencontainers.image.ref.name": opts.tag,
                    "io.containerd.image.name": ref,
                },
            }
        ],
    }
    _dump(layout / "index.json", index)
    _dump(layout / "oci-layout", {"imageLayoutVersion": "1.0.0"})
    if opts.fmt == "docker-archive":
        _dump(
            layout / "manifest.json",
            [
                {
                    "Config": f"blobs/sha256/{config_blob.digest[7:]}",
                    "RepoTags": [ref],
                    "Layers": [f"blobs/sha256/{b.digest[7:]}" for _, b in layers],
                }
            ],
        )
    return ImageResult(manifest.digest, layers)


def _dump(path: Path, data: Any) -> None:
    path.write_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def iter_layer_labels(result: ImageResult) -> Iterator[str]:
    for label, blob in result.layers:
        yield f"{blob.digest[7:19]} {blob.size:>12} {label}"
