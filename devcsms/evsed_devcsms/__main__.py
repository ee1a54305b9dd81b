"""``python -m evsed_devcsms``: see :mod:`evsed_devcsms.cli`."""

import sys

from evsed_devcsms.cli import main

if __name__ == "__main__":
    sys.exit(main())
