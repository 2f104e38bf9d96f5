"""``python -m segdet`` runs the command line (see :mod:`segdet.cli`)."""

import sys

from segdet.cli import main

if __name__ == "__main__":
    sys.exit(main())
