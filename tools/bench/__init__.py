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

The names are imported lazily: every worker process imports
``shmrt.tools.bench.workloads`` (the task functions), and that must not pay
for the runner's imports (~30 ms), which would inflate the startup figures.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cli import main
    from .runner import DEFAULT_REPEAT, QUICK_REPEAT, format_table, run
    from .scenarios import WORKLOADS

__all__ = ["DEFAULT_REPEAT", "QUICK_REPEAT", "WORKLOADS", "format_table", "main", "run"]

_LAZY = {name: ".runner" for name in __all__} | {"WORKLOADS": ".scenarios", "main": ".cli"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
