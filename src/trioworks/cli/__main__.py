"""``python -m trioworks.cli``."""

import sys

from . import main

# The guard matters: worker processes (process=True nodes) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
