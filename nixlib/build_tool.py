"""Builder of the wheelhouse tool derivation (tool.nix): stdlib only, run by the target Python.

Unpacks the pinned pure-Python dependency wheels and copies the wheelhouse package into
``$out/lib/wheelhouse`` (one directory for PYTHONPATH), and writes ``$out/bin/wheelhouse``.
No pip, no installer: this is what bootstraps them.
"""

import os
import shutil
import sys
import zipfile
from pathlib import Path

out = Path(os.environ["out"])
site = out / "lib" / "wheelhouse"
site.mkdir(parents=True)
for wheel in os.environ["wheels"].split():
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith("/") or ".." in member.split("/"):
                sys.exit(f"error: unsafe member {member!r} in {wheel}")
        zf.extractall(site)
shutil.copytree(
    os.environ["src"], site / "wheelhouse", ignore=shutil.ignore_patterns("__pycache__")
)
bindir = out / "bin"
bindir.mkdir()
script = bindir / "wheelhouse"
script.write_text(
    f"#!/bin/sh\nPYTHONPATH={site}${{PYTHONPATH:+:$PYTHONPATH}} "
    f'exec {os.environ["python"]} -m wheelhouse "$@"\n'
)
script.chmod(0o755)
for path in sorted(out.rglob("*")):
    if not path.is_symlink():
        path.chmod(0o755 if path.is_dir() or path == script else 0o644)
