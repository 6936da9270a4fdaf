"""Client-side drivers of the ``shmrt bench`` workloads (after Tokio's
scheduler benchmarks).

Each workload is described by a :class:`Workload`: how to derive its
parameters, an optional per-peer preparation step (untimed), how to take one
timed *sample* on one peer, which rows it contributes to the result table
and which target the shmrt runtime must meet.

A sample is a dict of *costs* (lower is better, seconds or a ratio); the
runner takes the median of every cost over the repeats and derives the
displayed number (µs, tasks/s, GB/s, ...) from that median, so the ratio
column is always ``peer_cost / shmrt_cost`` (> 1 means shmrt is faster).

What is measured and why:

* ``rtt``              -- latency of one ``submit(f).result()`` round trip
  with nothing else in flight: the fixed cost a caller pays per task
  (5,000 calls, or as many as fit in 5 s for the slow peers: Dask, Ray).
* ``spawn_many``       -- 10,000 tiny tasks submitted one by one from the
  client, then all awaited: submission + scheduling throughput.
* ``spawn_many_local`` -- one task spawns 10,000 children with
  ``shmrt.spawn`` and joins them (children start on that worker's local
  queue; the other workers must steal).  Peers cannot spawn from a task,
  their closest equivalent is 10,000 client submits.
* ``chained_spawn``    -- a chain of 1,000 tasks, each spawning (and
  joining) the next: latency of the spawn -> run -> complete path.
  Peers: the client submits the next link after each result.
* ``fork_join``        -- recursive fib(n) with a sequential cutoff using
  spawn + join; peers get the leaves of the same recursion submitted by the
  client.
* ``skewed``           -- 2,000 busy-loop tasks, 1% of them 100x longer,
  all spawned from one task onto one worker (shmrt) so only stealing can
  balance them; reports makespan / ideal, ideal = measured work / workers.
* ``map``              -- ``map`` over 100,000 tiny items, given as
  ``range(N)`` and as a list (shmrt sends a range's chunks as ranges, so
  the list row is the one where every item is pickled both ways, as in
  every peer); shmrt with automatic batching, each peer with its best
  chunksize of a few tried.
* ``payload``          -- a 16 MiB numpy array sent to a worker, checksummed
  there, the checksum returned: bulk data transport (GB/s).  A peer with an
  object store (Ray) gets a second, labelled row: the array put once
  (``ray.put``, untimed) and every task handed the stored reference.
* ``startup``          -- a fresh pool per repeat: construction until the
  first result is back; cold (nothing kept from an earlier pool of the
  process), then a second pool right after (warm).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import workloads as wl
from .peers import Peer

__all__ = [
    "WORKLOADS",
    "Row",
    "Sample",
    "Workload",
    "calibrate_busy",
    "numpy_available",
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


def _scaled(n: int, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(n * scale))


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(f"wrong result: {what}")


def _us(cost: float, _p: Params) -> float:
    return cost * 1e6


def _ms(cost: float, _p: Params) -> float:
    return cost * 1e3


def _ident(cost: float, _p: Params) -> float:
    return cost


def _rate(count_key: str) -> Callable[[float, Params], float]:
    def rate(cost: float, p: Params) -> float:
        return float(p[count_key]) / cost if cost > 0 else math.inf

    return rate


def _percentile(sorted_vals: list[float], q: float) -> float:
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


def _speedup(res: dict[str, Any], peer: str, row: int = 0) -> float | None:
    val = res["rows"][row]["speedup"].get(peer)
    return None if val is None else float(val)


def _shmrt_value(res: dict[str, Any], row: int = 0) -> float | None:
    val = res["rows"][row]["values"].get("shmrt")
    return None if val is None else float(val)


def _verdict(ok: list[bool | None]) -> str:
    if any(v is None for v in ok):
        return "n/a"
    return "PASS" if all(ok) else "MISS"


def _at_least(x: float | None, bound: float) -> bool | None:
    return None if x is None else x >= bound


# --------------------------------------------------------------------------
# rtt
# --------------------------------------------------------------------------


#: a rtt sample stops after this long (Dask: ~10 ms per call) once it has RTT_MIN_CALLS
RTT_BUDGET_S = 5.0
RTT_MIN_CALLS = 50


def _rtt_params(scale: float, quick: bool) -> Params:
    return {"calls": _scaled(5000, scale, 50), "budget_s": RTT_BUDGET_S}


def _rtt_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    submit, result, fn = peer.submit, peer.result, wl.noop
    n = p["calls"]
    pc = time.perf_counter_ns
    lat: list[int] = []
    add = lat.append
    t_start = pc()
    deadline = t_start + int(p.get("budget_s", RTT_BUDGET_S) * 1e9)
    for i in range(n):
        t0 = pc()
        result(submit(fn))
        t1 = pc()
        add(t1 - t0)
        if t1 > deadline and i + 1 >= RTT_MIN_CALLS:
            break
    total = pc() - t_start
    us = sorted(x / 1e3 for x in lat)
    return {
        "median_s": statistics.median(us) / 1e6,
        "p99_s": _percentile(us, 0.99) / 1e6,
        "mean_s": statistics.fmean(us) / 1e6,
        "min_s": us[0] / 1e6,
        "max_s": us[-1] / 1e6,
        "total_s": total / 1e9,
        "calls": len(lat),
        "raw_latencies_us": [round(x / 1e3, 2) for x in lat],
    }


def _rtt_target(res: dict[str, Any]) -> str:
    med = _shmrt_value(res)
    x_ppe = _speedup(res, "ppe")
    ok = [None if med is None else med <= 15.0, _at_least(x_ppe, 8.0)]
    return _verdict(ok)


# --------------------------------------------------------------------------
# spawn_many / spawn_many_local
# --------------------------------------------------------------------------


def _spawn_params(scale: float, quick: bool) -> Params:
    return {"tasks": _scaled(10_000, scale, 100)}


def _client_burst(peer: Peer, n: int) -> float:
    """Submit ``n`` no-op tasks one by one, then wait for all; seconds."""
    submit, result, fn = peer.submit, peer.result, wl.noop
    t0 = time.perf_counter()
    hs = [submit(fn) for _ in range(n)]
    for h in hs:
        result(h)
    return time.perf_counter() - t0


def _spawn_many_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    return {"time_s": _client_burst(peer, p["tasks"])}


def _spawn_many_target(res: dict[str, Any]) -> str:
    return _verdict([_at_least(_shmrt_value(res), 400_000.0),
                     _at_least(_speedup(res, "ppe"), 10.0), _at_least(_speedup(res, "mp"), 4.0)])


def _spawn_local_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    n = p["tasks"]
    if not peer.can_spawn:
        return {"time_s": _client_burst(peer, n)}
    t0 = time.perf_counter()
    got = peer.call(wl.spawn_many_local_root, n)
    dt = time.perf_counter() - t0
    _check(got == n, f"spawn_many_local_root returned {got!r}, expected {n}")
    return {"time_s": dt}


def _spawn_local_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    if peer.can_spawn:
        peer.call(wl.spawn_many_local_root, 10)
    return {}


# --------------------------------------------------------------------------
# chained_spawn
# --------------------------------------------------------------------------


def _chain_params(scale: float, quick: bool) -> Params:
    return {"links": _scaled(1000, scale, 10)}


def _chain_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    if peer.can_spawn:
        peer.call(wl.chain_root, 10)
    else:
        peer.call(wl.chain_step, 1)
    return {}


def _chain_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    n = p["links"]
    if peer.can_spawn:
        t0 = time.perf_counter()
        got = peer.call(wl.chain_root, n)
        dt = time.perf_counter() - t0
        _check(got == n, f"chain_root returned {got!r}, expected {n}")
        return {"time_s": dt}
    submit, result, step = peer.submit, peer.result, wl.chain_step
    t0 = time.perf_counter()
    k = n
    while k > 0:
        k = result(submit(step, k))
    return {"time_s": time.perf_counter() - t0}


def _chain_target(res: dict[str, Any]) -> str:
    return _verdict([_at_least(_speedup(res, "ppe"), 10.0)])


# --------------------------------------------------------------------------
# fork_join
# --------------------------------------------------------------------------


def _fib_params(scale: float, quick: bool) -> Params:
    if scale >= 0.5:
        n, cutoff = 30, 18
    else:
        n, cutoff = 24, 14
    return {
        "n": n,
        "cutoff": cutoff,
        "expected": wl.fib_seq(n),
        "leaves": len(wl.fib_leaves(n, cutoff)),
    }


def _fib_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    c = p["cutoff"]
    if peer.can_spawn:
        peer.call(wl.fib_task, c + 3, c)
    else:
        peer.call(wl.fib_seq, c)
    return {}


def _fib_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    n, cutoff, expected = p["n"], p["cutoff"], p["expected"]
    if peer.can_spawn:
        t0 = time.perf_counter()
        got = peer.call(wl.fib_task, n, cutoff)
        dt = time.perf_counter() - t0
    else:
        submit, result, leaf = peer.submit, peer.result, wl.fib_seq
        t0 = time.perf_counter()
        hs = [submit(leaf, m) for m in wl.fib_leaves(n, cutoff)]
        got = sum(result(h) for h in hs)
        dt = time.perf_counter() - t0
    _check(got == expected, f"fib({n}) = {got!r}, expected {expected}")
    return {"time_s": dt}


# --------------------------------------------------------------------------
# skewed
# --------------------------------------------------------------------------


def _skewed_params(scale: float, quick: bool) -> Params:
    tasks = _scaled(2000, scale, 100)
    n_long = max(1, tasks // 100)
    short_us, long_us = 50.0, 5000.0
    sec_per_iter = calibrate_busy()
    short_it = max(1, round(short_us * 1e-6 / sec_per_iter))
    long_it = max(1, round(long_us * 1e-6 / sec_per_iter))
    rng = random.Random(20240601)
    long_idx = set(rng.sample(range(tasks), n_long))
    iters = [long_it if i in long_idx else short_it for i in range(tasks)]
    return {
        "tasks": tasks,
        "long_tasks": n_long,
        "short_us": short_us,
        "long_us": long_us,
        "short_iterations": short_it,
        "long_iterations": long_it,
        "_iterations": iters,  # underscore: not written to the JSON params
    }


def _skewed_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    it = p["short_iterations"]
    if peer.can_spawn:
        peer.call(wl.skewed_root, [it, it])
    else:
        peer.call(wl.busy, it)
    return {}


def _skewed_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    iters: list[int] = p["_iterations"]
    if peer.can_spawn:
        t0 = time.perf_counter()
        durations = peer.call(wl.skewed_root, iters)
        makespan = time.perf_counter() - t0
    else:
        submit, result, busy = peer.submit, peer.result, wl.busy
        t0 = time.perf_counter()
        hs = [submit(busy, it) for it in iters]
        durations = [result(h) for h in hs]
        makespan = time.perf_counter() - t0
    _check(
        len(durations) == len(iters),
        f"{len(durations)} durations for {len(iters)} tasks",
    )
    work = float(sum(durations))
    ideal = max(work / peer.workers, max(durations))
    return {
        "makespan_s": makespan,
        "ratio": makespan / ideal,
        "ideal_s": ideal,
        "work_s": work,
    }


def _skewed_target(res: dict[str, Any]) -> str:
    ratio = _shmrt_value(res, 1)
    return _verdict([None if ratio is None else ratio <= 1.15])


def _skewed_note(res: dict[str, Any]) -> str:
    ideal = res["peers"].get("shmrt", {}).get("median", {}).get("ideal_s")
    if ideal is None:
        return ""
    return f"shmrt ideal = measured work / workers = {ideal * 1e3:.1f} ms"


# --------------------------------------------------------------------------
# map
# --------------------------------------------------------------------------

MAP_CHUNKSIZES = (100, 1000, 5000)
#: the inputs map is timed on, one cost key each: ``range(N)`` (shmrt sends
#: each chunk as a range: nothing to pickle) and the same items in a list
#: (every item pickled both ways, as in every peer)
MAP_INPUTS = (("range", "time_s"), ("list", "time_list_s"))


def _map_params(scale: float, quick: bool) -> Params:
    n = _scaled(100_000, scale, 100)
    return {
        "items": n,
        "expected_sum": n * (n + 1) // 2,
        "peer_chunksizes": list(MAP_CHUNKSIZES),
    }


def _map_once(peer: Peer, p: Params, chunksize: int | None, kind: str = "range") -> float:
    n = p["items"]
    items = range(n) if kind == "range" else list(range(n))  # built before the clock
    t0 = time.perf_counter()
    out = peer.map(wl.inc, items, chunksize)
    dt = time.perf_counter() - t0
    _check(len(out) == n and sum(out) == p["expected_sum"], "map output")
    return dt


def _map_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    small = {**p, "items": 1000, "expected_sum": 1000 * 1001 // 2}
    for cs in [None] if peer.key == "shmrt" else p["peer_chunksizes"]:
        for kind, _key in MAP_INPUTS:
            _map_once(peer, small, cs, kind)
    return {}


def _map_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    """shmrt: one run per input with automatic batching.  Peers: one run per
    input and candidate chunksize in this same repeat, the fastest one counts
    (so a noisy moment cannot lock a peer into a bad chunksize; biased in the
    peers' favour)."""
    sample: Sample = {}
    for kind, key in MAP_INPUTS:
        if peer.key == "shmrt":
            sample[key] = _map_once(peer, p, None, kind)
            continue
        tried = {cs: _map_once(peer, p, cs, kind) for cs in p["peer_chunksizes"]}
        best = min(tried, key=lambda cs: tried[cs])
        sample[key] = tried[best]
        if kind == "range":
            sample["chunksize"] = best
            sample.update({f"time_cs{k}_s": v for k, v in tried.items()})
    return sample


def _map_target(res: dict[str, Any]) -> list[str]:
    """Per input: ≥ 1.5x the best peer."""
    out = []
    for row in res["rows"][:len(MAP_INPUTS)]:
        xs = [x for k, x in row["speedup"].items() if k != "shmrt"]
        if not xs or any(x is None for x in xs):
            out.append("n/a")
        else:
            out.append(_verdict([_at_least(min(float(x) for x in xs if x is not None), 1.5)]))
    return out


def _map_note(res: dict[str, Any]) -> str:
    from .peers_more import ALL_PEER_CLASSES

    parts = []
    for key, st in res["peers"].items():
        wins = [s["chunksize"] for s in st.get("samples", []) if "chunksize" in s]
        if wins:
            best = max(set(wins), key=wins.count)
            label = ALL_PEER_CLASSES[key].label
            parts.append(f"{label} {best} ({wins.count(best)}/{len(wins)} repeats)")
    tried = "/".join(str(c) for c in MAP_CHUNKSIZES)
    return (
        f"shmrt chunksize=auto (one run per repeat); peers: fastest of chunksize {tried} "
        "in each repeat; most frequent winner: " + ", ".join(parts)
    )


# --------------------------------------------------------------------------
# payload
# --------------------------------------------------------------------------

_payload_cache: dict[int, tuple[Any, int]] = {}


def _payload_array(nbytes: int) -> tuple[Any, int]:
    if nbytes not in _payload_cache:
        import numpy as np

        a = np.random.default_rng(7).integers(0, 2**63, size=nbytes // 8, dtype=np.uint64)
        _payload_cache.clear()
        _payload_cache[nbytes] = (a, wl.checksum(a))
    return _payload_cache[nbytes]


def _payload_params(scale: float, quick: bool) -> Params:
    nbytes = 16 * 1024 * 1024 if scale >= 0.25 else 1024 * 1024
    return {"bytes": nbytes, "ops": 5 if quick else 10}


def payload_store(peer: Peer, a: Any, expected: int) -> dict[str, Any]:
    """Put ``a`` once in the peer's object store (untimed for the rows, but
    its time is kept); ``{}`` when the peer has no store."""
    t0 = time.perf_counter()
    stored = peer.put(a)
    put_s = time.perf_counter() - t0
    if stored is None:
        return {}
    _check(peer.call(wl.checksum, stored) == expected, "checksum (stored)")
    return {"_stored": stored, "put_s": put_s}


def payload_ops(peer: Peer, arg: Any, expected: int, ops: int) -> float:
    """Seconds per ``checksum(arg)`` round trip, ``ops`` of them."""
    submit, result, fn = peer.submit, peer.result, wl.checksum
    t0 = time.perf_counter()
    got = [result(submit(fn, arg)) for _ in range(ops)]
    dt = time.perf_counter() - t0
    _check(all(g == expected for g in got), "checksum")
    return dt / ops


def payload_warm(peer: Peer) -> None:
    """Import numpy on every worker (a burst of held tasks reaches them all)."""
    hs = [peer.submit(wl.warm_numpy, 0.05) for _ in range(2 * peer.workers)]
    for h in hs:
        peer.result(h)


def _payload_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    a, expected = _payload_array(p["bytes"])
    payload_warm(peer)
    for _ in range(3):
        _check(peer.call(wl.checksum, a) == expected, "checksum")
    return payload_store(peer, a, expected)


def _payload_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    a, expected = _payload_array(p["bytes"])
    out = {"time_per_op_s": payload_ops(peer, a, expected, p["ops"])}
    if "_stored" in prep:
        out["store_time_per_op_s"] = payload_ops(peer, prep["_stored"], expected, p["ops"])
    return out


def _payload_note(res: dict[str, Any]) -> str:
    from .peers_more import ALL_PEER_CLASSES

    parts = []
    for key, st in res["peers"].items():
        put_s = st.get("prepare", {}).get("put_s")
        if put_s is not None:
            label = ALL_PEER_CLASSES[key].store_label or key
            parts.append(f"{label}: the put took {put_s * 1e3:.1f} ms once, outside the timing")
    return "; ".join(parts)


def _payload_target(res: dict[str, Any]) -> str:
    return _verdict([_at_least(_shmrt_value(res), 20.0), _at_least(_speedup(res, "ppe"), 10.0)])


def _gbps(cost: float, p: Params) -> float:
    return p["bytes"] / cost / 1e9 if cost > 0 else math.inf


# --------------------------------------------------------------------------
# startup
# --------------------------------------------------------------------------


def _startup_params(scale: float, quick: bool) -> Params:
    return {}


def _first_result(peer: Peer) -> tuple[float, float]:
    """Start ``peer`` (not yet started), run one task: (seconds to the
    result, seconds to shut it down)."""
    t0 = time.perf_counter()
    try:
        peer.start()
        peer.call(wl.noop)
        dt = time.perf_counter() - t0
    finally:
        t1 = time.perf_counter()
        err = peer.close()
        shutdown = time.perf_counter() - t1
    if err:
        raise RuntimeError(err)
    return dt, shutdown


def _startup_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    """``peer`` is a *not yet started* instance.  Cold: nothing kept from an
    earlier pool of this process (``forget_warm``: shmrt's zygote is
    stopped, untimed); then a second pool right after it (warm)."""
    peer.forget_warm()
    dt, shutdown = _first_result(peer)
    warm, _ = _first_result(type(peer)(peer.workers, **peer.options))
    return {"time_s": dt, "shutdown_s": shutdown, "warm_s": warm}


def _startup_target(res: dict[str, Any]) -> list[str]:
    """Per row: the first pool ≤ 0.8x PPE's time, a second one ≤ 0.3x."""
    out = [_verdict([_at_least(_speedup(res, "ppe"), 1.25)])]
    if len(res["rows"]) > 1:
        out.append(_verdict([_at_least(_speedup(res, "ppe", 1), 1 / 0.3)]))
    return out


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------

_CLIENT_SUBMITS = "peers cannot spawn from a task: {n} client submits instead"

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "rtt",
            "one tiny task submitted and awaited, repeatedly (per-call latency)",
            [
                Row("median latency", "median_s", "µs", _us, "≤15 µs & ≥8x PPE"),
                Row("p99 latency", "p99_s", "µs", _us),
            ],
            _rtt_params,
            _rtt_sample,
            target=_rtt_target,
        ),
        Workload(
            "spawn_many",
            "tiny tasks submitted one by one from the client, then all awaited",
            [
                Row(
                    "throughput",
                    "time_s",
                    "tasks/s",
                    _rate("tasks"),
                    "≥400k/s, ≥10x PPE & ≥4x mp.Pool",
                )
            ],
            _spawn_params,
            _spawn_many_sample,
            target=_spawn_many_target,
        ),
        Workload(
            "spawn_many_local",
            "one task spawns tiny children with shmrt.spawn and joins them",
            [Row("throughput", "time_s", "tasks/s", _rate("tasks"))],
            _spawn_params,
            _spawn_local_sample,
            prepare=_spawn_local_prepare,
            peer_note=_CLIENT_SUBMITS.format(n="{tasks}"),
        ),
        Workload(
            "chained_spawn",
            "chain of tasks, each spawning (and joining) the next",
            [Row("chain time", "time_s", "ms", _ms, "≥10x PPE")],
            _chain_params,
            _chain_sample,
            prepare=_chain_prepare,
            target=_chain_target,
            peer_note="peers: client submits the next link after each result ({links} round trips)",
        ),
        Workload(
            "fork_join",
            "recursive fib with a sequential cutoff via spawn + join",
            [Row("time", "time_s", "ms", _ms)],
            _fib_params,
            _fib_sample,
            prepare=_fib_prepare,
            peer_note="fib({n}) cutoff {cutoff}; peers: client expands the recursion, submits the {leaves} leaves",
        ),
        Workload(
            "skewed",
            "busy tasks, 1% 100x longer, all spawned onto one worker",
            [
                Row("makespan", "makespan_s", "ms", _ms),
                Row("makespan / ideal", "ratio", "x", _ident, "≤1.15x ideal"),
            ],
            _skewed_params,
            _skewed_sample,
            prepare=_skewed_prepare,
            target=_skewed_target,
            peer_note="{tasks} tasks ({long_tasks} x {long_us:.0f} µs, rest {short_us:.0f} µs); "
            "shmrt spawns all from one task (stealing must balance), peers: client submits",
            extra_note=_skewed_note,
        ),
        Workload(
            "map",
            "map over tiny items; shmrt auto batching, peers their best chunksize",
            [
                Row("range(N)", "time_s", "items/s", _rate("items"), "≥1.5x best peer"),
                Row("list", "time_list_s", "items/s", _rate("items"), "≥1.5x best peer"),
            ],
            _map_params,
            _map_sample,
            prepare=_map_prepare,
            target=_map_target,
            extra_note=_map_note,
        ),
        Workload(
            "payload",
            "numpy array to a worker, checksum computed there and returned",
            [
                Row("throughput", "time_per_op_s", "GB/s", _gbps, "≥20 GB/s & ≥10x PPE"),
                Row(
                    "object store",
                    "store_time_per_op_s",
                    "GB/s",
                    _gbps,
                    base_key="time_per_op_s",
                    optional=True,
                ),
            ],
            _payload_params,
            _payload_sample,
            prepare=_payload_prepare,
            target=_payload_target,
            needs_numpy=True,
            extra_note=_payload_note,
            peer_note="{bytes} B uint64 array per call, XOR checksum in the worker; GB/s = bytes / round trip",
        ),
        Workload(
            "startup",
            "fresh pool: construction until the first result",
            [
                Row("to 1st result", "time_s", "ms", _ms, "≤0.8x PPE"),
                Row("2nd pool (warm)", "warm_s", "ms", _ms, "≤0.3x PPE"),
            ],
            _startup_params,
            _startup_sample,
            target=_startup_target,
            fresh_pool=True,
            peer_note="fresh pool per repeat (not warmed; shmrt's process zygote stopped "
            "first), then a second fresh pool in the same process (warm: shmrt forks its "
            "workers from the zygote the first one left); PPE starts workers on demand",
        ),
    ]
}
