"""``shmrt bench``: shmrt.Pool against ProcessPoolExecutor and multiprocessing.Pool.

Tokio-style scheduler workloads (round-trip latency, spawn throughput,
spawn from inside tasks, chained spawn, fork-join, skewed work with
stealing, ``map``, bulk payload, startup), each run on all three pools with
the same worker count and the ``spawn`` start method, warmed up, repeated
with the pools interleaved, and reported as medians plus the speedup of
shmrt over each peer.  See :mod:`.scenarios` for what each workload measures
and :mod:`.runner` for the method.

Entry points: ``python -m shmrt.tools.bench``, :func:`main`, :func:`run`,
:func:`format_table`.
"""

from __future__ import annotations

from .runner import DEFAULT_REPEAT, QUICK_REPEAT, format_table, main, run
from .scenarios import WORKLOADS

__all__ = ["DEFAULT_REPEAT", "QUICK_REPEAT", "WORKLOADS", "format_table", "main", "run"]
