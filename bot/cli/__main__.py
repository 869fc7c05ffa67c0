"""``python -m bot.cli``: the same as ``python -m bot`` and ``jit-bot``."""

import sys

from bot.cli import main

sys.exit(main())
