"""``python -m evsed.devcsms``: see :mod:`evsed.devcsms.cli`."""

import sys

from evsed.devcsms.cli import main

if __name__ == "__main__":
    sys.exit(main())
