"""``python -m wheelhouse``: a thin entrypoint; all that is testable is in ``wheelhouse.cli``."""

import sys

from wheelhouse.cli import main


def entrypoint() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entrypoint()
