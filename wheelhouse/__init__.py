"""wheelhouse: lock Python requirements to one PEP 751 pylock.toml, fetch every artifact into one
wheelhouse directory, and install them all into one environment.

The stages only ever feed forward: lock -> fetch -> (build sdists) -> install.
Each stage is a module with one job; the CLI (``wheelhouse.cli``) joins them.
"""

__version__ = "0.1.0"
