"""``python -m cdcd`` is the ``cdcd`` command."""

import sys

from cdcd.cli import main

sys.exit(main())
