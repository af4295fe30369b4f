"""``python -m aiobucket.cli``: the ``aiobucket`` command without the console script."""

import sys

from . import main

sys.exit(main())
