"""Cost growth: does the cost per task, per item and per byte stay flat as work grows?

Three series, each run on every selected pool (warmed once, kept for the
whole series, peers interleaved within every repeat):

* ``spawn_many`` -- N no-op tasks submitted one by one from the client, then
  all awaited, N = 10^3, 10^4, 10^5, 10^6.  Cost: seconds per task.  Flat
  means submission and completion cost O(1) per task at any backlog (no
  queue that degrades, no per-task state that piles up).
* ``map``        -- ``map(inc, range(N))``, N = 10^3 ... 10^6; shmrt with
  automatic batching, every peer with the fastest of a few chunk sizes
  (100, 1,000, 10,000 and N / (4 x workers), multiprocessing's own default)
  tried in the same repeat.  Cost: seconds per item.
* ``payload``    -- a numpy uint64 array of S = 1 KiB, 16 KiB, 256 KiB,
  4 MiB, 64 MiB, 256 MiB sent to a worker, checksummed there (every byte
  read), the checksum returned.  Cost: seconds per byte of one round trip
  (small arrays measure the round trip, large ones the copy).  Ray also gets
  a separate series, labelled, with the array put once in its object store.
  shmrt's pool gets a 1 GiB arena here (``Pool(arena_size=1 << 30)``): the
  default 64 MiB arena caps a payload at 32 MiB (``PayloadTooLarge``).

A series at a size can take minutes on a slow peer (10^6 tasks on Dask
would take half an hour), so each peer has a *time budget* per size
(``--growth-budget``, default 120 s): a size is skipped for a peer (and so
are all larger ones) when the previous size's median sample, scaled by the
size ratio, predicts more than the budget; and the repeats at a size stop
early once that peer has spent the budget there (at least one sample).
Skips are recorded with their reason in the JSON and shown in the table.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import workloads as wl
from .peers import Peer
from .peers_more import ALL_PEER_CLASSES
from .progress import Progress
from .runner import render_grid
from .scenario_kit import numpy_available
from .scenarios import client_burst
from .scenarios_data import payload_array, payload_ops, payload_store, payload_warm

__all__ = ["DEFAULT_BUDGET_S", "SERIES", "format_growth", "run_growth", "series_steps"]

DEFAULT_BUDGET_S = 120.0
KIB, MIB = 1024, 1024 * 1024
TASK_SIZES = (10**3, 10**4, 10**5, 10**6)
PAYLOAD_SIZES = (KIB, 16 * KIB, 256 * KIB, 4 * MIB, 64 * MIB, 256 * MIB)
#: a payload sample runs up to PAYLOAD_MAX_OPS round trips, or PAYLOAD_TIME_S of them
PAYLOAD_MAX_OPS, PAYLOAD_MIN_OPS, PAYLOAD_TIME_S = 200, 3, 2.0
SHMRT_PAYLOAD_ARENA = 1 << 30
STORE_SUFFIX = ":store"


@dataclass(frozen=True)
class Series:
    name: str
    summary: str
    unit: str  # what a size counts ("tasks", "items", "bytes")
    cost_unit: str  # display unit of the cost per unit
    scale_cost: float  # seconds per unit -> display unit
    sizes: tuple[int, ...]
    #: (peer, size, state) -> sample dict with "time_s" (wall) and "per_unit_s"
    sample: Callable[[Peer, int, dict[str, Any]], dict[str, Any]]
    prepare: Callable[[Peer, dict[str, Any]], None] | None = None
    needs_numpy: bool = False
    #: one untimed round at a new size (payload: first touch of new buffers)
    warm_size: Callable[[Peer, int, dict[str, Any]], None] | None = None


def _spawn_sample(peer: Peer, n: int, st: dict[str, Any]) -> dict[str, Any]:
    dt = client_burst(peer, n)
    return {"time_s": dt, "per_unit_s": dt / n}


def _map_chunksizes(n: int, workers: int) -> list[int]:
    cands = {100, 1000, 10_000, max(1, math.ceil(n / (4 * workers)))}
    return sorted(c for c in cands if c <= max(n, 100))


def _map_once(peer: Peer, n: int, chunksize: int | None) -> float:
    t0 = time.perf_counter()
    out = peer.map(wl.inc, range(n), chunksize)
    dt = time.perf_counter() - t0
    if len(out) != n or sum(out) != n * (n + 1) // 2:
        raise AssertionError("wrong result: map output")
    return dt


def _map_prepare(peer: Peer, st: dict[str, Any]) -> None:
    for cs in [None] if peer.key == "shmrt" else [100, 1000]:
        for n in (100, 1000, 1000):
            _map_once(peer, n, cs)


def _map_sample(peer: Peer, n: int, st: dict[str, Any]) -> dict[str, Any]:
    if peer.key == "shmrt":
        dt = _map_once(peer, n, None)
        return {"time_s": dt, "per_unit_s": dt / n}
    tried = {cs: _map_once(peer, n, cs) for cs in _map_chunksizes(n, peer.workers)}
    best = min(tried, key=lambda cs: tried[cs])
    return {
        "time_s": sum(tried.values()),
        "per_unit_s": tried[best] / n,
        "chunksize": best,
        "tried_s": {str(k): v for k, v in tried.items()},
    }


def _payload_prepare(peer: Peer, st: dict[str, Any]) -> None:
    payload_warm(peer)
    a, expected = payload_array(KIB)
    payload_ops(peer, a, expected, 3)


def _payload_sample(peer: Peer, size: int, st: dict[str, Any]) -> dict[str, Any]:
    a, expected = payload_array(size)
    arg = a
    if st.get("store"):
        if st.get("stored_size") != size:
            st.pop("stored", None)
            got = payload_store(peer, a, expected)
            st["stored"], st["stored_size"] = got["_stored"], size
            st.setdefault("put_s", {})[str(size)] = got["put_s"]
        arg = st["stored"]
    t0 = time.perf_counter()
    ops = 0
    per_op: list[float] = []
    while ops < PAYLOAD_MAX_OPS:
        per_op.append(payload_ops(peer, arg, expected, 1))
        ops += 1
        if ops >= PAYLOAD_MIN_OPS and time.perf_counter() - t0 > PAYLOAD_TIME_S:
            break
    dt = time.perf_counter() - t0
    return {"time_s": dt, "per_unit_s": dt / ops / size, "ops": ops,
            "median_op_s": statistics.median(per_op)}


def _payload_warm_size(peer: Peer, size: int, st: dict[str, Any]) -> None:
    a, expected = payload_array(size)
    if st.get("store"):
        st.pop("stored", None)
        got = payload_store(peer, a, expected)
        st["stored"], st["stored_size"] = got["_stored"], size
        st.setdefault("put_s", {})[str(size)] = got["put_s"]
        a = st["stored"]
    payload_ops(peer, a, expected, 1)


SERIES: dict[str, Series] = {
    s.name: s
    for s in (
        Series("spawn_many", "N no-op tasks submitted one by one, then awaited", "tasks",
               "µs/task", 1e6, TASK_SIZES, _spawn_sample),
        Series("map", "map(inc, range(N)); peers: best chunksize per repeat", "items",
               "µs/item", 1e6, TASK_SIZES, _map_sample, _map_prepare),
        Series("payload", "uint64 array of S bytes to a worker, checksummed there", "bytes",
               "ns/byte", 1e9, PAYLOAD_SIZES, _payload_sample, _payload_prepare,
               needs_numpy=True, warm_size=_payload_warm_size),
    )
}


def sizes_for(series: Series, scale: float) -> list[int]:
    """The sizes of a series at ``scale`` (tests: tiny; payload >= 1 KiB)."""
    if scale >= 1.0:
        return list(series.sizes)
    floor = KIB if series.unit == "bytes" else 10
    out = sorted({max(floor, int(s * scale)) for s in series.sizes})
    return out


def _lines(series: Series, peer_keys: Sequence[str]) -> list[tuple[str, str]]:
    """(line key, peer key): Ray's object-store variant is a line of its own."""
    out = [(k, k) for k in peer_keys]
    if series.name == "payload":
        out += [(k + STORE_SUFFIX, k) for k in peer_keys if ALL_PEER_CLASSES[k].store_label]
    return out


def series_steps(names: Sequence[str], peer_keys: Sequence[str], repeat: int,
                 scale: float) -> int:
    """Progress steps of the growth run (an upper bound: skips advance too)."""
    n = 0
    for name in names:
        s = SERIES[name]
        n += len(_lines(s, peer_keys)) * (1 + repeat * len(sizes_for(s, scale)))
    return n


def _label(line: str) -> str:
    key, _, variant = line.partition(":")
    cls = ALL_PEER_CLASSES[key]
    return cls.store_label if variant else cls.label


def _run_series(series: Series, peer_keys: Sequence[str], workers: int, repeat: int,
                scale: float, budget_s: float, prog: Progress) -> dict[str, Any]:
    sizes = sizes_for(series, scale)
    lines = _lines(series, peer_keys)
    out: dict[str, Any] = {"summary": series.summary, "unit": series.unit,
                           "cost_unit": series.cost_unit, "scale_cost": series.scale_cost,
                           "sizes": sizes, "lines": {}}
    if series.needs_numpy and not numpy_available():
        out["skipped"] = "numpy is not installed"
        prog.advance(len(lines) * (1 + repeat * len(sizes)))
        return out
    peers: dict[str, Peer] = {}
    st: dict[str, dict[str, Any]] = {}
    for line, key in lines:
        st[line] = {"label": _label(line), "peer": key, "error": None, "store": line != key,
                    "points": {str(n): {"size": n, "samples": []} for n in sizes}}
    out["lines"] = st
    try:
        for line, key in lines:
            prog.update(f"growth {series.name}: starting {_label(line)}")
            try:
                if key not in peers:
                    opts = ({"arena_size": SHMRT_PAYLOAD_ARENA}
                            if key == "shmrt" and series.name == "payload" else {})
                    peer = peers[key] = ALL_PEER_CLASSES[key](workers, **opts)
                    peer.start()
                    peer.warm()
                    if series.prepare is not None:
                        series.prepare(peer, st[line])
            except Exception as exc:  # noqa: BLE001 - reported in the table
                st[line]["error"] = f"{type(exc).__name__}: {exc}"
                st[line]["traceback"] = traceback.format_exc()
            prog.advance()
        for i, n in enumerate(sizes):
            for line, _key in lines:  # decide who runs this size
                s = st[line]
                pt = s["points"][str(n)]
                if s["error"]:
                    pt["skipped"] = "error"
                    continue
                if i > 0:
                    prev = s["points"][str(sizes[i - 1])]
                    if prev.get("skipped"):
                        pt["skipped"] = prev["skipped"] if "budget" in prev["skipped"] else "skipped"
                        continue
                    walls = [x["time_s"] for x in prev["samples"]]
                    if not walls:
                        pt["skipped"] = "skipped"
                        continue
                    predicted = statistics.median(walls) * n / sizes[i - 1]
                    if series.unit == "bytes":  # time-capped: an op, at least PAYLOAD_MIN_OPS
                        per_op = statistics.median(x["median_op_s"] for x in prev["samples"])
                        predicted = per_op * n / sizes[i - 1] * PAYLOAD_MIN_OPS
                    if predicted > budget_s:
                        pt["skipped"] = (f"over budget: predicted {predicted:.0f} s per sample "
                                         f"> {budget_s:.0f} s")
                        pt["predicted_s"] = predicted
            for line, key in lines:
                s = st[line]
                if series.warm_size is None or s["error"] or s["points"][str(n)].get("skipped"):
                    continue
                prog.update(f"growth {series.name}: {n:,} {series.unit}, warming {s['label']}")
                try:
                    series.warm_size(peers[key], n, s)
                except Exception as exc:  # noqa: BLE001
                    s["error"] = f"{type(exc).__name__}: {exc} (at {n:,} {series.unit})"
                    s["traceback"] = traceback.format_exc()
            for r in range(repeat):
                for line, key in lines:
                    s = st[line]
                    pt = s["points"][str(n)]
                    spent = sum(x["time_s"] for x in pt["samples"])
                    if pt.get("skipped") or s["error"] or (pt["samples"] and spent > budget_s):
                        prog.advance()
                        continue
                    prog.update(f"growth {series.name}: {n:,} {series.unit}, "
                                f"repeat {r + 1}/{repeat} {s['label']}")
                    gc.collect()
                    try:
                        pt["samples"].append(series.sample(peers[key], n, s))
                    except Exception as exc:  # noqa: BLE001
                        s["error"] = f"{type(exc).__name__}: {exc} (at {n:,} {series.unit})"
                        s["traceback"] = traceback.format_exc()
                    prog.advance()
    finally:
        for line, _key in lines:
            st[line].pop("stored", None)
        for key, peer in peers.items():
            msg = peer.close()
            for line, k in lines:
                if k == key and msg and st[line]["error"] is None:
                    st[line]["error"] = msg
    for s in st.values():
        for pt in s["points"].values():
            per = [x["per_unit_s"] for x in pt["samples"]]
            pt["median_per_unit_s"] = statistics.median(per) if per else None
            pt["repeats"] = len(per)
    return out


def run_growth(names: Sequence[str], peer_keys: Sequence[str], workers: int, repeat: int,
               scale: float, budget_s: float, prog: Progress) -> dict[str, Any]:
    """Run the growth ``names`` (keys of :data:`SERIES`); the ``growth`` part of the JSON."""
    res: dict[str, Any] = {
        "config": {"repeat": repeat, "budget_s": budget_s, "scale": scale,
                   "payload_max_ops": PAYLOAD_MAX_OPS, "payload_time_s": PAYLOAD_TIME_S,
                   "shmrt_payload_arena": SHMRT_PAYLOAD_ARENA,
                   "rule": "skip a size when the previous size's median sample x size ratio > "
                           "budget; stop repeating a size after budget seconds there"},
        "series": {},
    }
    for name in names:
        t0 = time.perf_counter()
        sres = res["series"][name] = _run_series(SERIES[name], peer_keys, workers, repeat,
                                                 scale, budget_s, prog)
        sres["wall_s"] = time.perf_counter() - t0
        prog.line(f"growth {name}: {_one_line(sres)}  [{sres['wall_s']:.0f}s]")
    return res


def _fmt_size(n: int, unit: str) -> str:
    if unit == "bytes":
        for div, name in ((MIB, "MiB"), (KIB, "KiB")):
            if n >= div:
                return f"{n // div} {name}" if n % div == 0 else f"{n / div:.1f} {name}"
        return f"{n} B"
    exp = math.log10(n) if n > 0 else 0
    return f"10^{exp:.0f}" if exp == int(exp) else f"{n:,}"


def _fmt_cost(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 \
        else f"{v:.2g}"


def _last_step(vals: Sequence[float | None]) -> str:
    """Cost at the largest measured size / cost at the size before it."""
    got = [v for v in vals if v is not None]
    return f"{got[-1] / got[-2]:.2f}x" if len(got) > 1 and got[-2] > 0 else "-"


def _one_line(sres: dict[str, Any]) -> str:
    if sres.get("skipped"):
        return f"skipped ({sres['skipped']})"
    last = str(sres["sizes"][-1])
    parts = []
    for s in sres["lines"].values():
        m = s["points"][last]["median_per_unit_s"]
        parts.append(f"{s['label'].split(',')[0]} "
                     + (_fmt_cost(m * sres["scale_cost"]) if m is not None else "-"))
    return f"{sres['cost_unit']} at the largest size: " + " | ".join(parts)


def format_growth(growth: dict[str, Any], markdown: bool = False) -> str:
    """One table per series: cost per unit at every size, per pool."""
    out: list[str] = []
    budget = growth["config"]["budget_s"]
    for name, sres in growth["series"].items():
        out.append(f"growth {name}: {sres['summary']}; cost per {sres['unit'][:-1]} "
                   f"({sres['cost_unit']}), median")
        if sres.get("skipped"):
            out += [f"skipped: {sres['skipped']}", ""]
            continue
        sizes = sres["sizes"]
        header = ["pool"] + [_fmt_size(n, sres["unit"]) for n in sizes] + ["last step"]
        table = []
        notes: list[str] = []
        for s in sres["lines"].values():
            row = [s["label"]]
            vals: list[float | None] = []
            for n in sizes:
                pt = s["points"][str(n)]
                m = pt["median_per_unit_s"]
                vals.append(m)
                if m is None:
                    row.append("skip" if pt.get("skipped") else "ERR" if s["error"] else "-")
                else:
                    row.append(_fmt_cost(m * sres["scale_cost"]))
            row.append(_last_step(vals))
            if s["error"]:
                notes.append(f"{s['label']} failed: {s['error']}")
            table.append(row)
        out += render_grid(header, table, set(range(1, len(header))), markdown)
        first: dict[str, str] = {}
        for s in sres["lines"].values():
            for n in sizes:
                if str(s["points"][str(n)].get("skipped", "")).startswith("over budget"):
                    first[s["label"]] = _fmt_size(n, sres["unit"])
                    break
        if first:
            notes.append(f"skip = over the time budget ({budget:.0f} s per sample): "
                         + ", ".join(f"{lbl} from {sz}" for lbl, sz in first.items()))
        notes.append("last step = cost per unit at the largest size run / at the size before "
                     "it (1.00x: flat)")
        out += ([""] if markdown else []) + notes + [""]
    return "\n".join(out).rstrip() + "\n"
