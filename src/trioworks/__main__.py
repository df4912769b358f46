"""``python -m trioworks``: the ``trioworks`` command."""

import sys

from .cli import main

# The guard matters: worker processes (process=True nodes) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
