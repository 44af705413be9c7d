"""The ``image`` stage: an installed env prefix (plus its interpreter) as an OCI image.

Reads the prefix ``wheelhouse install`` made (a venv layout with one site-packages) and each
installed ``.dist-info/RECORD``, asks ``layers.plan_layers`` which file goes where, and writes
each layer as a tar stream whose sha256 (and the gzip stream's) is computed while it is written.
The floor is ``tar`` of the same tree, a syscall-bound C loop; what this adds per file is kept to
a dictionary entry while the env is read, and one header (built with ``%`` formatting, its
checksum by ``zlib.adler32``) plus ``open``/``fstat``/``readv``/``close`` into a reused buffer
when a layer is written; layers go to worker processes (see ``_write_layers``).
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
import gc
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
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
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
    record_files,
    root_layers,
)
from wheelhouse.tempfiles import fsync_dir, temp_prefix

BLOCK = 512
CHUNK = 64 << 10
"""Bytes hashed and written at a time. Not more: the page cache gets folios as large as the
writes (Linux 6.x, ext4), and on the benchmark's virtual machine 1 MiB writes into fresh memory
took up to ten times the system time of 64 KiB writes (tar writes 10 KiB)."""
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
    """Layers written in parallel by this many processes (above 1, one more writes the closure
    and extra-path layers while the env is read)."""


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
    kinds: dict[str, int] = field(default_factory=dict)
    """``stat.S_IFREG`` or ``stat.S_IFLNK`` of every non-directory, by prefix-relative path."""
    top_size: int = 0
    """Bytes of the top layer's files."""


def scan_env(prefix: Path) -> EnvScan:
    """Read every RECORD under the prefix's site-packages and sort the tree's files into
    package files and the env's own files.

    The tree is walked by directory entry types alone; a package's size (which orders the
    layers) adds the sizes its RECORD states, and ``lstat`` runs only for the files it states
    none for (bytecode, RECORD itself): a Plone env's walk makes ~6,000 ``lstat`` calls, not
    ~28,000, on the path before any layer can be written. Modes and sizes in the archive come
    from ``fstat`` of each file when it is read."""
    if not prefix.is_dir():
        raise ImageError(
            f"{prefix} is not a directory; pass the env prefix `wheelhouse install` made"
        )
    kinds, dirs = _walk(str(prefix))
    site_dirs = sorted(
        d
        for d in dirs
        if d.startswith("lib/python") and d.count("/") == 2 and d.endswith("/site-packages")
    )
    records: list[tuple[str, str, list[str]]] = []
    record_of: dict[str, str] = {}
    stated: dict[str, int | None] = {}
    for site in site_dirs:
        for entry in sorted(os.listdir(prefix / site)):
            if not entry.endswith(".dist-info") or f"{site}/{entry}/RECORD" not in kinds:
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
            files = record_files(text, f"{site}/{entry}", site, label)
            if not all(map(kinds.__contains__, files)):
                path = next(p for p in files if p not in kinds)
                raise ImageError(
                    f"{label}: {site}/{entry}/RECORD lists {path}, which is not in {prefix} "
                    "(or is a directory); rebuild the env with `wheelhouse install`"
                )
            records.append((canonicalize_name(name or stem), version, list(files)))
            record_of[records[-1][0]] = f"{site}/{entry}/RECORD"
            stated.update(files)
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

    def size(path: str) -> int:
        if kinds[path] == stat.S_IFLNK:
            return 0  # a symlink's target is in its header
        known = stated.get(path)
        return os.lstat(f"{prefix}/{path}").st_size if known is None else known

    packages = []
    for name, version, paths in records:
        own = own_files(paths, record_of[name], site_dirs)
        packages.append(Package(name, version, own, sum(map(size, own))))
    in_packages = set().union(*(pkg.files for pkg in packages))
    top_files = sorted(kinds.keys() - in_packages)
    covered: set[str] = set()
    for parent in {path.rpartition("/")[0] for path in in_packages}:
        while parent and parent not in covered:
            covered.add(parent)
            parent = parent.rpartition("/")[0]
    top_dirs = sorted(set(dirs) - covered)
    return EnvScan(
        packages,
        top_files,
        top_dirs,
        _python_version(prefix),
        kinds,
        sum(os.lstat(f"{prefix}/{f}").st_size for f in top_files if kinds[f] == stat.S_IFREG),
    )


def _python_version(prefix: Path) -> str:
    with contextlib.suppress(OSError):
        for line in (prefix / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "version":
                return value.strip()
    return ""


def _walk(root: str) -> tuple[dict[str, int], list[str]]:
    """Relative paths of a tree's non-directories (each ``stat.S_IFREG`` or ``stat.S_IFLNK``)
    and directories, told by their directory entries' types (no ``lstat``); refuses the file
    types an image must not carry. Symlinks are entries, never followed."""
    kinds: dict[str, int] = {}
    dirs: list[str] = []
    stack = [""]
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while stack:
            rel = stack.pop()
            base = f"{rel}/" if rel else ""
            fd = os.open(rel or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=top)
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            path = base + entry.name
                            dirs.append(path)
                            stack.append(path)
                        elif entry.is_file(follow_symlinks=False):
                            kinds[base + entry.name] = stat.S_IFREG
                        elif entry.is_symlink():
                            kinds[base + entry.name] = stat.S_IFLNK
                        else:
                            mode = entry.stat(follow_symlinks=False).st_mode
                            raise ImageError(_special(f"{root}/{base}{entry.name}", mode))
            finally:
                os.close(fd)
    finally:
        os.close(top)
    return kinds, dirs


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


Source = tuple[str, int] | Link | None
"""What an archive entry is made from: a file or symlink on disk (its path and kind,
``stat.S_IFREG`` or ``stat.S_IFLNK``), a made-up symlink, or a directory."""


# --- tar writing ----------------------------------------------------------------------------


class _Writer(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


class _Hashing:
    """A write-only stream that hashes and counts what passes through it."""

    def __init__(self, out: _Writer) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        """GzipFile flushes its file object when closed; the real file is flushed by its own
        close."""


_NO_NAME = b"\0" * 100
_IDS = b"0000000\0" * 2  # uid and gid 0
_MAGIC = b"ustar\x0000" + b"\0" * 80  # magic, version; no user, group or device numbers


def _header(name: str, kind: bytes, mode: int, size: int, link: str, epoch: int) -> bytes:
    """One tar header: plain ustar (long names split into its prefix field) where the entry
    fits, else tarfile's pax header. Written by hand because tarfile makes a pax header for
    every name over 100 bytes (most paths below a Nix store path) and a TarInfo per entry:
    it was the slow part of writing ~30,000 small files."""
    if kind == tarfile.DIRTYPE:
        name += "/"  # as tar and tarfile write directories
    # (str.isascii reads a flag; an ASCII name has the same bytes in every encoding)
    if name.isascii() and link.isascii() and size < 8**11 and epoch < 8**11:
        raw = name.encode()
        prefix = b""
        if len(raw) > 100:
            cut = raw.rfind(b"/", 0, min(156, len(raw) - 1))
            if cut > 0 and 0 < len(raw) - cut - 1 <= 100:
                prefix, raw = raw[:cut], raw[cut + 1 :]
        if len(raw) <= 100 and len(link) <= 100:
            head = b"%s%07o\0%s%011o\0%011o\0        %s%s%s%s" % (
                raw.ljust(100, b"\0"), mode, _IDS, size, epoch, kind,
                link.encode().ljust(100, b"\0") if link else _NO_NAME,
                _MAGIC, prefix.ljust(167, b"\0"),
            )  # fmt: skip
            # The checksum is the sum of the header's bytes, its own field counted as blanks.
            # All of them are ASCII, so the sum is at most 512 * 127 = 65024, and Adler-32's
            # low half, 1 + the sum modulo 65521, is 1 + the sum exactly (computed in C).
            checksum = (zlib.adler32(head) & 0xFFFF) - 1
            return head[:148] + b"%06o\0 " % checksum + head[156:]
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname, info.mtime = kind, mode, size, link, epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tar(out: _Writer, entries: Mapping[str, Source], epoch: int) -> None:
    """A tar of ``entries`` (archive name -> source), sorted, with every ancestor directory as
    an entry.

    Headers and file contents go into one reused buffer, files read straight into it, which
    is hashed and written whenever it is full: per file, an ``open``, an ``fstat`` (its mode
    and size, as tar does), one header, one ``readv`` and a ``close``; no bytes object for a
    file's data and no allocation per write (page faults are costly on a virtual machine)."""
    names = set(entries)
    for name in entries:
        parent = name.rpartition("/")[0]
        while parent and parent not in names:
            names.add(parent)
            parent = parent.rpartition("/")[0]
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    pos = 0
    for name in sorted(names):
        source = entries.get(name)
        if source is None:
            head = _header(name, tarfile.DIRTYPE, 0o755, 0, "", epoch)
        elif isinstance(source, Link):
            head = _header(name, tarfile.SYMTYPE, 0o777, 0, source.target, epoch)
        elif source[1] == stat.S_IFLNK:
            head = _header(name, tarfile.SYMTYPE, 0o777, 0, os.readlink(source[0]), epoch)
        else:
            pos = _add_file(out, view, pos, name, source[0], epoch)
            continue
        pos = _put(out, view, pos, head)
    out.write(view[:pos])
    out.write(bytes(2 * BLOCK))


def _put(out: _Writer, view: memoryview, pos: int, data: bytes) -> int:
    """``data`` (a header) into ``view`` at ``pos``, writing the buffer out first if it does not
    fit; the position after it."""
    if pos + len(data) > CHUNK:
        out.write(view[:pos])
        pos = 0
        if len(data) > CHUNK:  # (a pax header for a name of over 60 KiB)
            out.write(data)
            return 0
    view[pos : pos + len(data)] = data
    return pos + len(data)


_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""(``O_NONBLOCK``: a file that became a FIFO since the walk must not block the open.)"""


def _add_file(out: _Writer, view: memoryview, pos: int, name: str, path: str, epoch: int) -> int:
    """A regular file's header, contents and padding to a whole block, into ``view`` from
    ``pos`` on, writing the buffer out whenever it is full; the position after them."""
    fd = os.open(path, _READ)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(_special(path, st.st_mode))
        size = st.st_size
        head = _header(
            name, tarfile.REGTYPE, 0o755 if st.st_mode & 0o111 else 0o644, size, "", epoch
        )
        pos = _put(out, view, pos, head)
        left = size
        while left:
            if pos == CHUNK:
                out.write(view)
                pos = 0
            got = os.readv(fd, [view[pos : pos + left]])
            if not got:
                raise ImageError(f"{path} shrank while it was archived; rebuild the image")
            pos += got
            left -= got
    finally:
        os.close(fd)
    pad = -size % BLOCK
    if pos + pad > CHUNK:
        out.write(view[:pos])
        pos = 0
    view[pos : pos + pad] = _ZEROS[:pad]
    return pos + pad


_ZEROS = memoryview(bytes(BLOCK))


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


def _write_roots(blobs: Path, roots: Sequence[str], opts: ImageOptions) -> Blob:
    """A closure or extra-path layer, walked and written in one go (in a worker process, while
    the main one reads the env)."""
    entries: dict[str, Source] = {}
    for root in roots:
        entries.update(_root_entries(root))
    return _write_layer(blobs, entries, opts)


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
        return {name: (root, stat.S_IFMT(st.st_mode))}
    kinds, dirs = _walk(root)
    entries: dict[str, Source] = {name: None}
    entries.update({f"{name}/{d}": None for d in dirs})
    entries.update({f"{name}/{f}": (f"{root}/{f}", kind) for f, kind in kinds.items()})
    return entries


def layer_entries(
    plan: LayerPlan, prefix: str, scan: EnvScan, image_prefix: str | None = None
) -> dict[str, Source]:
    """Archive names and sources of one layer. With ``image_prefix`` the env's files sit there
    (a path that does not change when a pin does, unlike a Nix store path) and the top layer
    links the env's own path to it, so its scripts' shebangs still resolve."""
    base = (image_prefix or prefix).strip("/")
    kinds = scan.kinds
    entries: dict[str, Source] = {}
    for root in plan.roots:
        entries.update(_root_entries(root))
    for pkg in plan.packages:
        entries.update({f"{base}/{f}": (f"{prefix}/{f}", kinds[f]) for f in pkg.files})
    if plan.top:
        entries[base] = None
        if image_prefix and image_prefix.strip("/") != prefix.strip("/"):
            entries[prefix.strip("/")] = Link(image_prefix)
        entries.update({f"{base}/{d}": None for d in scan.top_dirs})
        entries.update({f"{base}/{f}": (f"{prefix}/{f}", kinds[f]) for f in plan.files})
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
    closure = [p for p in closure if os.path.abspath(p) != prefix_s]
    output = output.absolute()
    made = _make_parents(output)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=temp_prefix(output.name)))
    try:
        tmp.chmod(0o755)
        layout = tmp / "layout" if opts.fmt == "docker-archive" else tmp
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        scan, layers = _write_layers(
            prefix_s, blobs, opts, closure, extra_paths, spec=spec, spec_source=spec_source
        )
        result = _write_layout(layout, layers, prefix_s, scan, opts)
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
        for directory in made:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return result


def _make_parents(path: Path) -> list[Path]:
    """Create the missing directories above ``path``; those created, deepest first (a failed
    build removes them again)."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    return missing


def _write_layers(
    prefix: str,
    blobs: Path,
    opts: ImageOptions,
    closure: Sequence[str],
    extra_paths: Sequence[str],
    *,
    spec: Sequence[Sequence[str]],
    spec_source: str,
) -> tuple[EnvScan, list[tuple[str, Blob]]]:
    """Read the env, plan its layers and write them; each layer's label and blob, bottom to
    top.

    With ``jobs`` above 1, layers are written by processes side by side (the per-file work is
    Python, so threads would queue on the GIL): one forked at the start writes the closure
    and extra-path layers while this process reads the env; then ``jobs`` forked workers
    write the rest, largest first (so the last one to finish is a small one). The workers
    inherit the plan and the scan as they are in memory: a task is a layer's index, and each
    worker makes its layers' entries itself."""
    roots = root_layers(closure, extra_paths)
    early = _RootWriter(blobs, roots, opts) if opts.jobs > 1 and roots else None
    try:
        scan = scan_env(Path(prefix))
        plans = plan_layers(
            scan.packages,
            closure=closure,
            extra_paths=extra_paths,
            top_files=scan.top_files,
            spec=spec,
            spec_source=spec_source,
            max_layers=opts.max_layers,
        )
        written = [] if early is not None else [_write_roots(blobs, p.roots, opts) for p in roots]
        written += _write_planned(_Job(blobs, plans[len(roots) :], prefix, scan, opts))
        if early is not None:
            written = early.result() + written
    except BaseException:
        if early is not None:
            early.stop()
        raise
    return scan, [(p.label, b) for p, b in zip(plans, written, strict=True)]


@dataclass(frozen=True)
class _Job:
    """The package and top layers to write, and what their entries are made from."""

    blobs: Path
    plans: list[LayerPlan]
    prefix: str
    scan: EnvScan
    opts: ImageOptions

    def write(self, index: int) -> Blob:
        plan = self.plans[index]
        entries = layer_entries(plan, self.prefix, self.scan, self.opts.image_prefix)
        return _write_layer(self.blobs, entries, self.opts)

    def estimate(self, index: int) -> int:
        """The bytes of a layer's files, to hand out the largest first."""
        plan = self.plans[index]
        return sum(p.size for p in plan.packages) + (self.scan.top_size if plan.top else 0)


def _write_planned(job: _Job) -> list[Blob]:
    indices = range(len(job.plans))
    if job.opts.jobs == 1 or len(indices) < 2:
        return [job.write(i) for i in indices]
    context = multiprocessing.get_context("fork")
    gc.freeze()  # a worker's collections then skip (and do not copy) the inherited objects
    pool = ProcessPoolExecutor(
        max_workers=job.opts.jobs, mp_context=context, initializer=_adopt, initargs=(job,)
    )
    try:
        futures = {
            i: pool.submit(_write_adopted, i)
            for i in sorted(indices, key=job.estimate, reverse=True)
        }
        return [futures[i].result() for i in indices]
    finally:
        pool.shutdown(cancel_futures=True)
        gc.unfreeze()


_adopted: list[_Job] = []
"""A worker's job, set once when the pool forks it (a forked child's arguments are not
pickled)."""


def _adopt(job: _Job) -> None:
    _adopted.append(job)


def _write_adopted(index: int) -> Blob:
    return _adopted[0].write(index)


class _RootWriter:
    """The closure and extra-path layers, written by a child forked before the env is read
    (they depend on no RECORD). A plain process and a pipe, not a pool: the parent starts no
    thread, so the workers it forks later are forked from a single-threaded process."""

    def __init__(self, blobs: Path, roots: Sequence[LayerPlan], opts: ImageOptions) -> None:
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_write_roots_to, args=(send, blobs, [p.roots for p in roots], opts)
        )
        self._process.start()
        send.close()

    def result(self) -> list[Blob]:
        try:
            outcome = self._receive.recv()
        except EOFError:
            outcome = ImageError("the process writing the closure layers died; run again")
        self._process.join()
        if isinstance(outcome, BaseException):
            raise outcome
        blobs: list[Blob] = outcome
        return blobs

    def stop(self) -> None:
        self._process.terminate()
        self._process.join()


def _write_roots_to(
    send: Connection, blobs: Path, roots: Sequence[Sequence[str]], opts: ImageOptions
) -> None:
    try:
        send.send([_write_roots(blobs, r, opts) for r in roots])
    except BaseException as exc:  # to the parent, which raises it
        send.send(exc)


def _archive_entries(layout: Path) -> dict[str, Source]:
    kinds, dirs = _walk(str(layout))
    entries: dict[str, Source] = {d: None for d in dirs}
    entries.update({f: (f"{layout}/{f}", kind) for f, kind in kinds.items()})
    return entries


def _iso(epoch: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_layout(
    layout: Path,
    layers: list[tuple[str, Blob]],
    prefix: str,
    scan: EnvScan,
    opts: ImageOptions,
) -> ImageResult:
    """The config, manifest and index of the written layers."""
    blobs = layout / "blobs" / "sha256"
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
