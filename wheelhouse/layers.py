"""Which file goes into which image layer: pure decisions, no file system access.

An image layer is re-shipped whenever one byte of it changes, so the layers follow what changes
together: one installed package (its files as its ``.dist-info/RECORD`` lists them, bytecode
included, since install records the ``.pyc`` files it writes), the interpreter and each path of
its closure, and a top layer for what the environment itself owns (``bin/``, ``.pth`` files,
``pyvenv.cfg``, anything no RECORD claims). Registries and ``docker pull`` then move only the
layers whose digest changed: one changed pin is one changed package layer plus the small top.

The layer count is bounded (``streamLayeredImage`` uses 100 as well: overlay filesystems and
some registries limit it). When there are more packages than free layers, the largest packages
keep their own layers (they are the ones worth not re-shipping) and the rest share a few
buckets chosen by a hash of the package name, so a bump moves no package to another layer.
``image.py`` does the I/O: it reads the prefix, calls these functions, and writes tars.
"""

from __future__ import annotations

import csv
import hashlib
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from wheelhouse.errors import ImageError

DEFAULT_MAX_LAYERS = 100
BUCKET_SHARE = 5
"""When packages must share layers, one free layer in this many becomes a shared bucket."""


@dataclass(frozen=True)
class Package:
    """One installed distribution: its canonical name, version and files (prefix-relative)."""

    name: str
    version: str
    files: tuple[str, ...]
    size: int
    """Bytes of its files (as its RECORD states them; ``lstat`` for those it states none for, as
    bytecode); large packages get their own layers first."""


@dataclass(frozen=True)
class LayerPlan:
    """One layer to write: a human label (for the config's history) and what it holds."""

    label: str
    packages: tuple[Package, ...] = ()
    roots: tuple[str, ...] = ()
    """Absolute paths archived whole (closure and extra paths), for non-package layers."""
    top: bool = False
    files: tuple[str, ...] = field(default=())
    """Prefix-relative files of the top layer."""


def record_files(record_text: str, dist_info: str, site: str, owner: str) -> dict[str, int | None]:
    """Prefix-relative paths of the files a RECORD lists, with the size it states for each
    (``None`` where it states none, as for bytecode the installer wrote).

    ``dist_info`` and ``site`` are prefix-relative (``lib/python3.11/site-packages``); RECORD
    entries are relative to ``site`` (console scripts as ``../../../bin/x``). An entry leaving
    the prefix is refused: the image would not hold what the package installed.

    A row without a quote is split at its commas (CSV quotes any path holding one), and a path
    with no ``.`` or ``/`` component to resolve is joined as is: the CSV reader and
    ``normpath`` run only for the few rows that need them (an image reads ~30,000 rows).
    """
    files: dict[str, int | None] = {}
    prefix = f"{site}/"
    for line in record_text.splitlines():
        if '"' in line:
            row = next(csv.reader([line]), None) or [""]
            entry, size = row[0], row[2] if len(row) > 2 else ""
        else:
            entry, _, rest = line.partition(",")
            size = rest.rpartition(",")[2]
        if not entry:
            continue
        stated = int(size) if size.isascii() and size.isdigit() else None
        if entry[0] not in "./" and "/." not in entry and "//" not in entry and entry[-1] != "/":
            files[prefix + entry] = stated
            continue
        rel = posixpath.normpath(posixpath.join(site, entry))
        if rel.startswith("../") or rel == ".." or posixpath.isabs(entry):
            raise ImageError(
                f"{owner}: {dist_info}/RECORD lists {entry!r}, outside the prefix; "
                "rebuild the env with `wheelhouse install`"
            )
        files[rel] = stated
    return files


def is_shared(path: str, site_dirs: Iterable[str]) -> bool:
    """Files the environment owns rather than one package: scripts in ``bin/`` (they name the
    env's interpreter) and ``.pth`` files at the top of a site-packages (they run at start-up for
    every package)."""
    if path.startswith("bin/"):
        return True
    return path.endswith(".pth") and posixpath.dirname(path) in set(site_dirs)


def own_files(paths: Iterable[str], record: str, site_dirs: Iterable[str]) -> tuple[str, ...]:
    """The files of a package that go into its own layer: all but the shared ones, and but its
    RECORD when it lists scripts in ``bin/``: scripts name the env's interpreter in their
    shebang, so their bytes, and the hashes RECORD keeps of them, change with the env's path
    (a Nix store path changes with every pin); they belong with the scripts on top."""
    sites = set(site_dirs)
    paths = list(paths)
    scripts = any(p.startswith("bin/") for p in paths)
    return tuple(
        sorted(p for p in paths if not is_shared(p, sites) and not (scripts and p == record))
    )


def claim(packages: Sequence[tuple[str, str, Sequence[str]]]) -> dict[str, str]:
    """Map each file to the one package (``name version``) listing it; two claimants are an
    error, since a layer per package would then ship the file twice with an undefined winner."""
    owner: dict[str, str] = {}
    for name, version, files in packages:
        label = f"{name} {version}"
        for path in files:
            other = owner.setdefault(path, label)
            if other != label:
                raise ImageError(
                    f"{path} is claimed by the RECORDs of both {other} and {label}; "
                    "rebuild the env with `wheelhouse install`, which refuses such conflicts"
                )
    return owner


def parse_layer_spec(text: str, source: str) -> list[list[str]]:
    """A layer spec: one layer per non-empty line, its packages separated by blanks; ``#``
    starts a comment. Lets a user say which packages are stable together (the framework's
    core, say) so they share one layer below the rest."""
    layers = []
    for line in text.splitlines():
        names = line.split("#", 1)[0].split()
        if names:
            layers.append([str(canonicalize_name(n)) for n in names])
    seen: set[str] = set()
    for names in layers:
        for name in names:
            if name in seen:
                raise ImageError(f"{source}: package {name} is named twice; keep it on one line")
            seen.add(name)
    return layers


def bucket_of(name: str, buckets: int) -> int:
    """A stable bucket for a package: its name's hash, so a version bump keeps it in place."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % buckets


def root_layers(closure: Sequence[str], extra_paths: Sequence[str]) -> list[LayerPlan]:
    """The bottom layers, archived whole from absolute paths: one per closure path, one for
    the extra paths. They depend on no RECORD, so they can be written while the env is read."""
    layers = [LayerPlan(f"closure {p}", roots=(p,)) for p in sorted(closure)]
    if extra_paths:
        layers.append(LayerPlan("extra paths", roots=tuple(sorted(extra_paths))))
    return layers


def plan_layers(
    packages: Sequence[Package],
    *,
    closure: Sequence[str],
    extra_paths: Sequence[str],
    top_files: Sequence[str],
    spec: Sequence[Sequence[str]] = (),
    spec_source: str = "layer spec",
    max_layers: int = DEFAULT_MAX_LAYERS,
) -> list[LayerPlan]:
    """The layers, bottom to top: ``root_layers`` (each closure path, the extra paths), the
    spec's layers, the packages (largest first, each alone while layers last, then hash
    buckets), the top layer. Lower layers change least (docker's local store keys a layer by
    everything below it)."""
    by_name: Mapping[str, Package] = {p.name: p for p in packages}
    for names in spec:
        for name in names:
            if name not in by_name:
                raise ImageError(
                    f"{spec_source}: package {name} is not installed in the env (installed: "
                    f"{', '.join(sorted(by_name)) or 'none'}); remove it from the spec"
                )
    fixed = root_layers(closure, extra_paths)
    fixed += [
        LayerPlan(
            "packages " + " ".join(f"{by_name[n].name} {by_name[n].version}" for n in names),
            packages=tuple(by_name[n] for n in names),
        )
        for names in spec
    ]
    top = LayerPlan("top: bin, .pth, env files", top=True, files=tuple(sorted(top_files)))
    in_spec = {n for names in spec for n in names}
    rest = sorted((p for p in packages if p.name not in in_spec), key=lambda p: (-p.size, p.name))
    free = max_layers - len(fixed) - 1
    if free < (1 if rest else 0):
        raise ImageError(
            f"the layer limit {max_layers} is below the {len(fixed) + 1 + (1 if rest else 0)} "
            f"layers the image needs ({len(closure)} closure paths, "
            f"{1 if extra_paths else 0} extra-path layer, {len(spec)} spec layers, the top layer"
            f"{', one for the remaining packages' if rest else ''}); pass a larger --max-layers"
        )
    if len(rest) <= free:
        own, shared = rest, []
    else:
        n_buckets = max(1, free // BUCKET_SHARE)
        own, shared = rest[: free - n_buckets], rest[free - n_buckets :]
    layers = fixed + [LayerPlan(f"package {p.name} {p.version}", packages=(p,)) for p in own]
    if shared:
        n_buckets = free - len(own)
        buckets: list[list[Package]] = [[] for _ in range(n_buckets)]
        for p in shared:
            buckets[bucket_of(p.name, n_buckets)].append(p)
        layers += [
            LayerPlan(
                f"packages {' '.join(f'{p.name} {p.version}' for p in sorted(b, key=_name))}",
                packages=tuple(sorted(b, key=_name)),
            )
            for b in buckets
            if b
        ]
    return [*layers, top]


def _name(p: Package) -> str:
    return p.name


def parse_references_graph(text: str, source: str) -> list[str]:
    """Store paths of a closure file as Nix's ``exportReferencesGraph`` writes it (the format of
    ``nix-store --register-validity``): per path, its line, its deriver (maybe empty), the
    number N of references, then N reference lines."""
    lines = text.splitlines()
    paths: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        path = lines[i]
        try:
            count = int(lines[i + 2])
        except (IndexError, ValueError):
            raise ImageError(
                f"{source}: line {i + 1} ({path!r}) does not start a closure entry (path, "
                "deriver, reference count); pass the file exportReferencesGraph writes"
            ) from None
        if not path.startswith("/"):
            raise ImageError(
                f"{source}: line {i + 1} ({path!r}) is not an absolute store path; pass the "
                "file exportReferencesGraph writes"
            )
        paths.append(path)
        i += 3 + count
    return sorted(set(paths))
