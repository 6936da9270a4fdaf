"""``shmrt demo``: a one-minute tour of what shmrt is for, with real numbers.

The demo starts a :class:`shmrt.Pool` on all cores and shows, measured in
this very run:

1. **fork-join** -- ``fib(32)`` computed by recursive ``shmrt.spawn`` /
   ``join`` from inside tasks (sequential below a cutoff), against the same
   ``fib(32)`` computed sequentially in this process;
2. **a burst of tiny tasks** -- 100,000 no-op tasks submitted from this
   process with a live progress bar; the bar is driven by
   ``Future.add_done_callback`` on every future;
3. **the same burst on ProcessPoolExecutor** (spawn start method, same
   worker count) -- a smaller count (10,000) because it is much slower; the
   throughput (tasks/s) of both is printed side by side with the ratio;
4. **a relay** -- 20,000 datagrams through a loopback UDP relay with
   ``blake2b_tag`` on every core, tags and per-flow order checked on
   arrival, with the relay's counters (tools/demo/relay.py).

Both bursts are measured the same way: pools started and warmed first, the
clock runs from the first ``submit`` until the done-callback of the last
future fires, and every future carries the same progress callback.
The whole demo finishes well within a minute on two cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..bench import workloads as wl

__all__ = ["main"]

FIB_N = 32
FIB_CUTOFF = 20
SHMRT_BURST = 100_000
PPE_BURST = 10_000
#: Give up on a burst after this many seconds (the demo must stay short).
BURST_TIMEOUT = 120.0


def _burst(executor: cf.Executor, n: int, label: str, console: Console) -> tuple[float, int]:
    """Submit ``n`` no-op tasks with a progress bar; return (seconds, failures).

    The clock stops inside the done-callback of the ``n``-th completed
    future, so the refresh rate of the bar does not affect the figure.
    """
    done: list[None] = []  # list.append is atomic under the GIL
    finished = threading.Event()
    t_end = [0.0]

    def on_done(_fut: cf.Future[Any]) -> None:
        done.append(None)
        if len(done) == n:
            t_end[0] = time.perf_counter()
            finished.set()

    submit: Callable[..., cf.Future[Any]] = executor.submit
    noop = wl.noop
    futures: list[cf.Future[Any]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=10,
    ) as progress:
        bar = progress.add_task(label, total=n, rate="")
        t0 = time.perf_counter()
        for i in range(n):
            fut = submit(noop)
            fut.add_done_callback(on_done)
            futures.append(fut)
            if i % 4096 == 0:
                progress.update(bar, completed=len(done))
        deadline = t0 + BURST_TIMEOUT
        while not finished.wait(0.05):
            progress.update(bar, completed=len(done))
            if time.perf_counter() > deadline:
                break
        elapsed = (t_end[0] or time.perf_counter()) - t0
        progress.update(bar, completed=len(done), rate=f"{len(done) / elapsed:,.0f} tasks/s")
    failures = n - len(done) + sum(1 for f in futures if f.done() and f.exception() is not None)
    return elapsed, failures


def _warm(executor: cf.Executor, workers: int) -> None:
    """Start every worker and run a task on it before anything is timed."""
    futs = [executor.submit(wl.warm, 0.02) for _ in range(2 * workers)]
    for f in futs:
        f.result(timeout=60)
    executor.submit(wl.noop).result(timeout=60)


def main(workers: int | None = None) -> int:
    """Run the demo; return a process exit code (0 = everything worked)."""
    import shmrt

    workers = workers or os.cpu_count() or 1
    console = Console()
    console.rule("[bold]shmrt demo")
    console.print(
        f"{workers} worker processes per pool; tiny task = a module-level no-op function; "
        "every pool uses the spawn start method."
    )

    # -- 1. fork-join ------------------------------------------------------
    t = time.perf_counter()
    pool = shmrt.Pool(workers)
    try:
        _warm(pool, workers)
        console.print(
            f"shmrt.Pool({workers}) started and warmed in {time.perf_counter() - t:.2f} s"
        )

        console.print(
            f"\n[bold]1. fork-join[/]: fib({FIB_N}) with shmrt.spawn/join inside tasks, "
            f"sequential below n={FIB_CUTOFF}"
        )
        t = time.perf_counter()
        expected = wl.fib_seq(FIB_N)
        t_seq = time.perf_counter() - t
        t = time.perf_counter()
        got = pool.submit(wl.fib_task, FIB_N, FIB_CUTOFF).result(timeout=BURST_TIMEOUT)
        t_par = time.perf_counter() - t
        ok = got == expected
        console.print(
            f"   fib({FIB_N}) = {got}  {'(correct)' if ok else f'[red](WRONG, expected {expected})[/]'}\n"
            f"   shmrt, {workers} workers: {t_par * 1e3:8.1f} ms\n"
            f"   sequential, this process: {t_seq * 1e3:8.1f} ms   "
            f"(speedup {t_seq / t_par:.2f}x)"
        )
        if not ok:
            return 1

        # -- 2. burst on shmrt ---------------------------------------------
        console.print(
            f"\n[bold]2. burst[/]: {SHMRT_BURST:,} tiny tasks submitted one by one, "
            "progress via Future.add_done_callback"
        )
        s_time, s_fail = _burst(pool, SHMRT_BURST, "shmrt", console)
    finally:
        pool.shutdown(wait=True)

    # -- 3. the same burst on ProcessPoolExecutor --------------------------
    console.print(
        f"\n[bold]3. the same burst on ProcessPoolExecutor[/] "
        f"(spawn, {workers} workers, {PPE_BURST:,} tasks: it is much slower)"
    )
    ppe = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        _warm(ppe, workers)
        p_time, p_fail = _burst(ppe, PPE_BURST, "ProcessPoolExecutor", console)
    finally:
        ppe.shutdown(wait=True, cancel_futures=True)

    s_rate = SHMRT_BURST / s_time
    p_rate = PPE_BURST / p_time
    table = Table(title="tiny-task burst: first submit -> last done-callback, warmed pools")
    table.add_column("pool")
    table.add_column("tasks", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("tasks/s", justify="right")
    table.add_column("failed", justify="right")
    table.add_row(
        f"shmrt.Pool({workers})",
        f"{SHMRT_BURST:,}",
        f"{s_time:.3f}",
        f"{s_rate:,.0f}",
        str(s_fail),
    )
    table.add_row(
        f"ProcessPoolExecutor({workers}, spawn)",
        f"{PPE_BURST:,}",
        f"{p_time:.3f}",
        f"{p_rate:,.0f}",
        str(p_fail),
    )
    console.print()
    console.print(table)
    console.print(
        f"shmrt throughput / ProcessPoolExecutor throughput = [bold]{s_rate / p_rate:.1f}x[/] "
        "(different task counts, compared per task)"
    )
    from . import relay as demo_relay

    relay_ok = demo_relay.run(workers, console)
    console.print(
        "More: shmrt bench (Tokio-style workloads against PPE and multiprocessing.Pool), "
        "shmrt bench relay"
    )
    return 0 if s_fail == 0 and p_fail == 0 and relay_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
