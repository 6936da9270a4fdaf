"""``python -m shmrt.tools.bench``: run the benchmark (see :mod:`.runner`)."""

from __future__ import annotations

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
