"""The one value that flows between stages: a locked artifact.

``lockfile`` produces ``Artifact`` lists from a pylock.toml, ``download``/``fetch`` turn them into
verified files, ``install`` consumes the files. Keeping this type free of I/O lets each stage be
tested without the others.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

ArtifactKind = Literal["wheel", "sdist"]


@dataclass(frozen=True, order=True)
class Artifact:
    """One file of the resolved set, exactly as the lock pins it."""

    filename: str
    """Basename the file has in the wheelhouse directory (unique within a target)."""
    package: str
    """Normalized project name (PEP 503), as in the lock's ``[[packages]] name``."""
    version: str
    sha256: str
    """Lower-case hex digest; nothing enters a build unless its bytes hash to this."""
    kind: ArtifactKind
    url: str | None = None
    """Download URL without credentials (credentials come from netrc/env at fetch time)."""
    path: str | None = None
    """Local file, absolute or relative to the lock file's directory (PEP 751 ``path``)."""
    size: int | None = None
    build_only: bool = False
    """Needed only to build an sdist: enters the wheelhouse, never the env."""

    @property
    def location(self) -> str:
        """Where the bytes come from, for messages."""
        return self.url or self.path or self.filename


def record_hash(data: bytes) -> str:
    """``data``'s hash as a wheel's RECORD spells it (``sha256=`` urlsafe base64, unpadded):
    for the files wheelhouse writes or rewrites itself (editable wheels, patched ELF files)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def same_version(a: str, b: str) -> bool:
    """PEP 440 equality (``1.0`` is ``1.0.0``): how a wheel's own version meets the lock's."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b
