"""The ``shmrt`` console script's entry point, apart from ``shmrt.cli``.

Why a module of its own: with the spawn start method every worker imports
the program's ``__main__``, and for a ``shmrt`` command (``shmrt demo``,
``shmrt run``, ``shmrt bench``) that is the console script, which imports
its entry point's module.  ``shmrt.cli`` imports click and every command
module (~12 ms); this imports nothing until the command runs in the
process that was asked to run it.
"""

from __future__ import annotations

from typing import Any


def main() -> Any:
    from .cli import main as cli

    return cli()
