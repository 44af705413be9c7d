"""``python -m wheelhouse``: the thin entrypoint; everything testable lives in ``wheelhouse.cli``."""

import sys

from wheelhouse.cli import main


def entrypoint() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entrypoint()
