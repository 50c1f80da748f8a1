"""``python -m cdcd`` is the ``cdcd`` command."""

import sys

from .cli import main

sys.exit(main())
