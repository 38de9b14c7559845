"""``python -m skmoe``: see :mod:`skmoe._cli`."""

import sys

from ._cli import main

sys.exit(main())
