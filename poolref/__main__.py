"""``python -m poolref`` is the ``poolref`` command."""

import sys

from .cli import main

sys.exit(main())
