"""``python -m deapnn``: the ``deapnn`` command line."""

import sys

from deapnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
