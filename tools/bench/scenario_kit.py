"""What every ``shmrt bench`` workload is made of: the :class:`Workload` and
:class:`Row` descriptions the runner reads, and the helpers the workload
modules share (parameter scaling, result checks, display conversions,
target verdicts).  The workloads themselves: scenarios.py (tasks and
scheduling) and scenarios_data.py (map, payload, start-up)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import workloads as wl
from .peers import Peer

__all__ = [
    "Params", "Row", "Sample", "TargetFn", "Workload", "at_least", "calibrate_busy", "check",
    "ident", "ms", "numpy_available", "percentile", "rate", "scaled", "shmrt_value", "speedup",
    "us", "verdict",
]

Sample = dict[str, Any]
Params = dict[str, Any]
#: target(result_of_workload) -> "PASS" / "MISS" / "n/a" (a figure is missing)
#: for the workload, or one of those per row that has a target, in order
TargetFn = Callable[[dict[str, Any]], "str | list[str]"]


@dataclass(frozen=True)
class Row:
    """One line of the result table, derived from one cost key of a sample."""

    label: str
    key: str  # cost key in the samples (lower is better)
    unit: str  # display unit
    display: Callable[[float, Params], float]  # median cost -> shown value
    target: str = ""  # target text shown in this row ("" = none)
    #: shmrt's cost key the ratio is taken against ("" = ``key``); the payload
    #: object-store row (Ray only) is compared with shmrt's per-task payload
    base_key: str = ""
    #: left out of the table when no peer produced this cost
    optional: bool = False


@dataclass
class Workload:
    name: str
    summary: str
    rows: list[Row]
    params: Callable[[float, bool], Params]
    sample: Callable[[Peer, Params, dict[str, Any]], Sample]
    prepare: Callable[[Peer, Params], dict[str, Any]] | None = None
    target: TargetFn | None = None
    peer_note: str = ""  # how peers differ from shmrt in this workload
    fresh_pool: bool = False  # True: sample() builds its own pool (startup)
    needs_numpy: bool = False
    extra_note: Callable[[dict[str, Any]], str] | None = None


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def numpy_available() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def scaled(n: int, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(n * scale))


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(f"wrong result: {what}")


def us(cost: float, _p: Params) -> float:
    return cost * 1e6


def ms(cost: float, _p: Params) -> float:
    return cost * 1e3


def ident(cost: float, _p: Params) -> float:
    return cost


def rate(count_key: str) -> Callable[[float, Params], float]:
    def shown(cost: float, p: Params) -> float:
        return float(p[count_key]) / cost if cost > 0 else math.inf

    return shown


def percentile(sorted_vals: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[k]


_busy_sec_per_iter: float | None = None


def calibrate_busy() -> float:
    """Seconds per iteration of :func:`workloads.busy` (measured once)."""
    global _busy_sec_per_iter
    if _busy_sec_per_iter is None:
        iters = 200_000
        best = min(wl.busy(iters) for _ in range(5))
        _busy_sec_per_iter = best / iters
    return _busy_sec_per_iter


def speedup(res: dict[str, Any], peer: str, row: int = 0) -> float | None:
    val = res["rows"][row]["speedup"].get(peer)
    return None if val is None else float(val)


def shmrt_value(res: dict[str, Any], row: int = 0) -> float | None:
    val = res["rows"][row]["values"].get("shmrt")
    return None if val is None else float(val)


def verdict(ok: list[bool | None]) -> str:
    if any(v is None for v in ok):
        return "n/a"
    return "PASS" if all(ok) else "MISS"


def at_least(x: float | None, bound: float) -> bool | None:
    return None if x is None else x >= bound
