"""``python -m shmrt.cli``: the ``shmrt`` command."""

from . import main

main(prog_name="shmrt")
