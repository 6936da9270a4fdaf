"""Task functions executed *inside worker processes* by ``shmrt bench``.

Every function here is a module-level function so that a worker started
with the ``spawn`` method can import it by its qualified name
(``shmrt.tools.bench.workloads.<name>``); no lambdas or closures are ever
sent to a pool.  The module is deliberately light: it imports nothing heavy
at module level (numpy and the ``shmrt`` runtime are imported lazily inside
the functions that need them), so importing it in a freshly spawned worker
costs the same for every pool under test.

What each function is for:

* ``noop`` / ``inc`` / ``chain_step`` -- the "tiny task": the cost of
  running it is negligible, so timing it measures pure runtime overhead
  (submission, scheduling, result transport).
* ``spawn_many_local_root`` / ``chain_link`` / ``fib_task`` /
  ``skewed_root`` -- shmrt-only drivers that use ``shmrt.spawn`` *from
  inside a task* (Tokio's ``spawn_many_local``, ``chained_spawn`` and a
  fork-join recursion).  Other pools cannot spawn from a task; the client
  side drives their equivalent (see ``scenarios.py``).
* ``warm`` / ``warm_numpy`` -- hold a worker for a moment so that a burst
  of them reaches every worker (``warm_numpy`` also imports numpy there).
* ``busy`` -- a calibrated CPU busy loop that returns the time it actually
  took, so the skew benchmark can compare makespan against the sum of the
  work really done.
* ``apply_chunk`` -- runs a tiny task over a chunk of items in one task:
  how ``map`` is batched on the peers whose ``map`` would otherwise make one
  task per item (Dask, Ray), the same chunking every other pool does itself.
* ``checksum`` -- reads every byte of a (large) numpy array in the worker,
  so the payload benchmark cannot be satisfied without the data arriving.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = [
    "apply_chunk",
    "busy",
    "busy_loop",
    "chain_link",
    "chain_root",
    "chain_step",
    "checksum",
    "fib_leaves",
    "fib_seq",
    "fib_task",
    "inc",
    "noop",
    "skewed_root",
    "spawn_many_local_root",
    "warm",
    "warm_numpy",
]


# --------------------------------------------------------------------------
# tiny tasks
# --------------------------------------------------------------------------


def noop() -> None:
    """The smallest possible task: measures pure per-task overhead."""


def inc(x: int) -> int:
    """Tiny task with one argument and a result (used by ``map``)."""
    return x + 1


def apply_chunk(fn: Any, items: list[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` in one task (a ``map`` chunk for Dask / Ray)."""
    return [fn(x) for x in items]


def chain_step(k: int) -> int:
    """One link of a client-driven chain: return the next link's number."""
    return k - 1


def warm(seconds: float = 0.0) -> int:
    """Warm-up task: optionally hold the worker for a moment, return its pid.

    Submitting several of these at once forces pools that start workers
    lazily (``ProcessPoolExecutor`` with ``spawn``) to start all of them.
    """
    import os

    if seconds > 0:
        time.sleep(seconds)
    return os.getpid()


def warm_numpy(seconds: float = 0.0) -> int:
    """:func:`warm` that also imports numpy (~30 ms the first time in a worker).

    The payload workloads run this on every worker before timing, so that no
    sample pays a worker's first numpy import.
    """
    import numpy  # noqa: F401

    return warm(seconds)


# --------------------------------------------------------------------------
# CPU work
# --------------------------------------------------------------------------


def busy_loop(iterations: int) -> None:
    """Burn CPU for ``iterations`` loop turns (calibrated by the client)."""
    for _ in range(iterations):
        pass


def busy(iterations: int) -> float:
    """Burn CPU for ``iterations`` turns; return the seconds it really took."""
    t0 = time.perf_counter()
    for _ in range(iterations):
        pass
    return time.perf_counter() - t0


def fib_seq(n: int) -> int:
    """Plain sequential (exponential) Fibonacci: the leaf work of fork_join."""
    if n < 2:
        return n
    return fib_seq(n - 1) + fib_seq(n - 2)


def fib_leaves(n: int, cutoff: int) -> list[int]:
    """Leaves of the fork-join recursion tree of ``fib_task(n, cutoff)``.

    Peers cannot spawn from inside a task, so the client expands the
    recursion down to the cutoff with this function and submits the leaves.
    """
    out: list[int] = []
    stack = [n]
    while stack:
        m = stack.pop()
        if m <= cutoff:
            out.append(m)
        else:
            stack.append(m - 1)
            stack.append(m - 2)
    return out


def checksum(a: Any) -> int:
    """XOR of the array viewed as uint64 words (touches every byte)."""
    import numpy as np

    return int(np.bitwise_xor.reduce(a.view(np.uint64)))


# --------------------------------------------------------------------------
# shmrt-only: spawn from inside a task
# --------------------------------------------------------------------------


def spawn_many_local_root(n: int) -> int:
    """Spawn ``n`` tiny children from inside this task, then join them all.

    The children go to this worker's local queue; idle workers must steal.
    """
    import shmrt

    spawn = shmrt.spawn
    handles = [spawn(noop) for _ in range(n)]
    for h in handles:
        h.join()
    return len(handles)


def chain_link(remaining: int) -> int:
    """Each link spawns the next and returns its result (Tokio's chain)."""
    if remaining <= 0:
        return 0
    import shmrt

    return int(shmrt.spawn(chain_link, remaining - 1).join()) + 1


def chain_root(length: int) -> int:
    """Run a chain of ``length`` links, each spawned by the previous one.

    Every link joins its successor, so the chain nests ``length`` joins deep
    in the worker; the recursion limit is raised for the duration (pure
    Python frames do not use the C stack on 3.11+).
    """
    old = sys.getrecursionlimit()
    need = 20 * length + 1000
    if need > old:
        sys.setrecursionlimit(need)
    try:
        return chain_link(length)
    finally:
        if need > old:
            sys.setrecursionlimit(old)


def fib_task(n: int, cutoff: int) -> int:
    """Fork-join Fibonacci: spawn one branch, compute the other, join."""
    if n <= cutoff:
        return fib_seq(n)
    import shmrt

    h = shmrt.spawn(fib_task, n - 1, cutoff)
    b = fib_task(n - 2, cutoff)
    return int(h.join()) + b


def skewed_root(iterations: list[int]) -> list[float]:
    """Spawn one ``busy`` child per entry onto *this* worker, join them all.

    All children land in the local queue of the worker running this task,
    so the other workers only get work by stealing it.  Returns the measured
    duration of every child.
    """
    import shmrt

    spawn = shmrt.spawn
    handles = [spawn(busy, it) for it in iterations]
    return [float(h.join()) for h in handles]
