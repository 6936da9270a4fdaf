"""The ``shmrt`` command group; the commands register on it from their
modules (run, listing, hooks, relay), which ``shmrt.cli`` imports."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shmrt", prog_name="shmrt")
def main() -> None:
    """shmrt: a multiprocess shared-memory work-stealing runtime."""
