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

import random
import statistics
import time
from typing import Any

from . import workloads as wl
from .peers import Peer
from .scenario_kit import (
    Params,
    Row,
    Sample,
    Workload,
    at_least,
    calibrate_busy,
    check,
    ident,
    ms,
    numpy_available,
    percentile,
    rate,
    scaled,
    shmrt_value,
    speedup,
    us,
    verdict,
)
from .scenarios_data import DATA_WORKLOADS

__all__ = [
    "WORKLOADS",
    "Row",
    "Sample",
    "Workload",
    "calibrate_busy",
    "client_burst",
    "numpy_available",
]

# --------------------------------------------------------------------------
# rtt
# --------------------------------------------------------------------------


#: a rtt sample stops after this long (Dask: ~10 ms per call) once it has RTT_MIN_CALLS
RTT_BUDGET_S = 5.0
RTT_MIN_CALLS = 50


def _rtt_params(scale: float, quick: bool) -> Params:
    return {"calls": scaled(5000, scale, 50), "budget_s": RTT_BUDGET_S}


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
    lat_us = sorted(x / 1e3 for x in lat)
    return {
        "median_s": statistics.median(lat_us) / 1e6,
        "p99_s": percentile(lat_us, 0.99) / 1e6,
        "mean_s": statistics.fmean(lat_us) / 1e6,
        "min_s": lat_us[0] / 1e6,
        "max_s": lat_us[-1] / 1e6,
        "total_s": total / 1e9,
        "calls": len(lat),
        "raw_latencies_us": [round(x / 1e3, 2) for x in lat],
    }


def _rtt_target(res: dict[str, Any]) -> str:
    med = shmrt_value(res)
    x_ppe = speedup(res, "ppe")
    ok = [None if med is None else med <= 15.0, at_least(x_ppe, 8.0)]
    return verdict(ok)


# --------------------------------------------------------------------------
# spawn_many / spawn_many_local
# --------------------------------------------------------------------------


def _spawn_params(scale: float, quick: bool) -> Params:
    return {"tasks": scaled(10_000, scale, 100)}


def client_burst(peer: Peer, n: int) -> float:
    """Submit ``n`` no-op tasks one by one, then wait for all; seconds."""
    submit, result, fn = peer.submit, peer.result, wl.noop
    t0 = time.perf_counter()
    hs = [submit(fn) for _ in range(n)]
    for h in hs:
        result(h)
    return time.perf_counter() - t0


def _spawn_many_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    return {"time_s": client_burst(peer, p["tasks"])}


def _spawn_many_target(res: dict[str, Any]) -> str:
    return verdict([at_least(shmrt_value(res), 400_000.0),
                     at_least(speedup(res, "ppe"), 10.0), at_least(speedup(res, "mp"), 4.0)])


def _spawn_local_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    n = p["tasks"]
    if not peer.can_spawn:
        return {"time_s": client_burst(peer, n)}
    t0 = time.perf_counter()
    got = peer.call(wl.spawn_many_local_root, n)
    dt = time.perf_counter() - t0
    check(got == n, f"spawn_many_local_root returned {got!r}, expected {n}")
    return {"time_s": dt}


def _spawn_local_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    if peer.can_spawn:
        peer.call(wl.spawn_many_local_root, 10)
    return {}


# --------------------------------------------------------------------------
# chained_spawn
# --------------------------------------------------------------------------


def _chain_params(scale: float, quick: bool) -> Params:
    return {"links": scaled(1000, scale, 10)}


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
        check(got == n, f"chain_root returned {got!r}, expected {n}")
        return {"time_s": dt}
    submit, result, step = peer.submit, peer.result, wl.chain_step
    t0 = time.perf_counter()
    k = n
    while k > 0:
        k = result(submit(step, k))
    return {"time_s": time.perf_counter() - t0}


def _chain_target(res: dict[str, Any]) -> str:
    return verdict([at_least(speedup(res, "ppe"), 10.0)])


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
    check(got == expected, f"fib({n}) = {got!r}, expected {expected}")
    return {"time_s": dt}


# --------------------------------------------------------------------------
# skewed
# --------------------------------------------------------------------------


def _skewed_params(scale: float, quick: bool) -> Params:
    tasks = scaled(2000, scale, 100)
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
    check(
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
    ratio = shmrt_value(res, 1)
    return verdict([None if ratio is None else ratio <= 1.15])


def _skewed_note(res: dict[str, Any]) -> str:
    ideal = res["peers"].get("shmrt", {}).get("median", {}).get("ideal_s")
    if ideal is None:
        return ""
    return f"shmrt ideal = measured work / workers = {ideal * 1e3:.1f} ms"


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
                Row("median latency", "median_s", "µs", us, "≤15 µs & ≥8x PPE"),
                Row("p99 latency", "p99_s", "µs", us),
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
                    rate("tasks"),
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
            [Row("throughput", "time_s", "tasks/s", rate("tasks"))],
            _spawn_params,
            _spawn_local_sample,
            prepare=_spawn_local_prepare,
            peer_note=_CLIENT_SUBMITS.format(n="{tasks}"),
        ),
        Workload(
            "chained_spawn",
            "chain of tasks, each spawning (and joining) the next",
            [Row("chain time", "time_s", "ms", ms, "≥10x PPE")],
            _chain_params,
            _chain_sample,
            prepare=_chain_prepare,
            target=_chain_target,
            peer_note="peers: client submits the next link after each result ({links} round trips)",
        ),
        Workload(
            "fork_join",
            "recursive fib with a sequential cutoff via spawn + join",
            [Row("time", "time_s", "ms", ms)],
            _fib_params,
            _fib_sample,
            prepare=_fib_prepare,
            peer_note="fib({n}) cutoff {cutoff}; peers: client expands the recursion, submits the {leaves} leaves",
        ),
        Workload(
            "skewed",
            "busy tasks, 1% 100x longer, all spawned onto one worker",
            [
                Row("makespan", "makespan_s", "ms", ms),
                Row("makespan / ideal", "ratio", "x", ident, "≤1.15x ideal"),
            ],
            _skewed_params,
            _skewed_sample,
            prepare=_skewed_prepare,
            target=_skewed_target,
            peer_note="{tasks} tasks ({long_tasks} x {long_us:.0f} µs, rest {short_us:.0f} µs); "
            "shmrt spawns all from one task (stealing must balance), peers: client submits",
            extra_note=_skewed_note,
        ),

    ] + DATA_WORKLOADS
}
