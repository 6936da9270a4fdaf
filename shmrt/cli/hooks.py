"""``shmrt inspect``, ``demo`` and ``bench``: commands whose modules are
imported only when they run (a missing optional tool breaks nothing else)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import click

from .app import main
from .common import (
    _PASSTHROUGH,
)


def _import_tool(module: str, what: str) -> Any:
    """Import a tool's module only when its command runs (a missing or broken
    optional tool must not break the other commands)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise click.ClickException(f"{what} is not available in this installation "
                                       f"({module} is missing)") from None
        raise


def _run_tool(ctx: click.Context, module: str, what: str, argv: list[str]) -> None:
    ctx.exit(int(_import_tool(module, what).main(argv) or 0))


# HOOK(inspect): `shmrt inspect NAME [OPTIONS]` passes its arguments through to
# shmrt.tools.inspect.main(argv: list[str]) -> int, the inspector of DESIGN.md
# ("Inspection": read-only, --json, --check, --watch).  Its options are the
# inspector's own; nothing here needs to change when it lands.
@main.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def inspect(ctx: click.Context, argv: tuple[str, ...]) -> None:
    """Show a runtime's slots, queues and workers (shmrt.tools.inspect)."""
    _run_tool(ctx, "shmrt.tools.inspect", "shmrt inspect", list(argv))


@main.command()
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: number of CPUs).")
@click.pass_context
def demo(ctx: click.Context, workers: int | None) -> None:
    """A one-minute tour of shmrt, with real numbers from this machine."""
    ctx.exit(int(_import_tool("shmrt.tools.demo", "shmrt.tools.demo").main(workers) or 0))


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("workloads", nargs=-1, type=click.UNPROCESSED, metavar="[WORKLOAD]...")
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes per pool.")
@click.option("--repeat", type=click.IntRange(min=1), default=None, help="Timed repeats per pool.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Write raw samples and summary as JSON.")
@click.option("--quick", is_flag=True, help="Fewer repeats, for a quick look.")
@click.pass_context
def bench(ctx: click.Context, workloads: tuple[str, ...], workers: int | None,
          repeat: int | None, json_file: str | None, quick: bool) -> None:
    """Benchmark shmrt.Pool against ProcessPoolExecutor and multiprocessing.Pool.

    Other options (--scale, --peers, --list, --check, ...) are passed through
    to `python -m shmrt.tools.bench`.
    """
    _run_tool(ctx, "shmrt.tools.bench", "shmrt bench",
              list(_bench_argv(workloads, workers, repeat, json_file, quick)))


def _bench_argv(workloads: Sequence[str], workers: int | None, repeat: int | None,
                json_file: str | None, quick: bool) -> Iterator[str]:
    yield from workloads
    if workers is not None:
        yield from ("--workers", str(workers))
    if repeat is not None:
        yield from ("--repeat", str(repeat))
    if json_file is not None:
        yield from ("--json", json_file)
    if quick:
        yield "--quick"
