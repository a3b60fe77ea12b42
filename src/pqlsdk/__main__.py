"""``python -m pqlsdk``: the same as the ``pqlsdk`` command."""

import sys

from .cli import main

sys.exit(main())
