"""The data-moving workloads of ``shmrt bench``: ``map`` over tiny items,
``payload`` (a numpy array to a worker and back) and ``startup`` (a fresh
pool to its first result).  What each measures and why: scenarios.py's
module docstring; the parts they are made of: scenario_kit.py."""

from __future__ import annotations

import math
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
    check,
    ms,
    rate,
    scaled,
    shmrt_value,
    speedup,
    verdict,
)

__all__ = ["DATA_WORKLOADS", "MAP_CHUNKSIZES", "MAP_INPUTS", "payload_array", "payload_ops",
           "payload_store", "payload_warm"]

# --------------------------------------------------------------------------
# map
# --------------------------------------------------------------------------

MAP_CHUNKSIZES = (100, 1000, 5000)
#: the inputs map is timed on, one cost key each: ``range(N)`` (shmrt sends
#: each chunk as a range: nothing to pickle) and the same items in a list
#: (every item pickled both ways, as in every peer)
MAP_INPUTS = (("range", "time_s"), ("list", "time_list_s"))


def _map_params(scale: float, quick: bool) -> Params:
    n = scaled(100_000, scale, 100)
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
    check(len(out) == n and sum(out) == p["expected_sum"], "map output")
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
            out.append(verdict([at_least(min(float(x) for x in xs if x is not None), 1.5)]))
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


def payload_array(nbytes: int) -> tuple[Any, int]:
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
    check(peer.call(wl.checksum, stored) == expected, "checksum (stored)")
    return {"_stored": stored, "put_s": put_s}


def payload_ops(peer: Peer, arg: Any, expected: int, ops: int) -> float:
    """Seconds per ``checksum(arg)`` round trip, ``ops`` of them."""
    submit, result, fn = peer.submit, peer.result, wl.checksum
    t0 = time.perf_counter()
    got = [result(submit(fn, arg)) for _ in range(ops)]
    dt = time.perf_counter() - t0
    check(all(g == expected for g in got), "checksum")
    return dt / ops


def payload_warm(peer: Peer) -> None:
    """Import numpy on every worker (a burst of held tasks reaches them all)."""
    hs = [peer.submit(wl.warm_numpy, 0.05) for _ in range(2 * peer.workers)]
    for h in hs:
        peer.result(h)


def _payload_prepare(peer: Peer, p: Params) -> dict[str, Any]:
    a, expected = payload_array(p["bytes"])
    payload_warm(peer)
    for _ in range(3):
        check(peer.call(wl.checksum, a) == expected, "checksum")
    return payload_store(peer, a, expected)


def _payload_sample(peer: Peer, p: Params, prep: dict[str, Any]) -> Sample:
    a, expected = payload_array(p["bytes"])
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
    return verdict([at_least(shmrt_value(res), 20.0), at_least(speedup(res, "ppe"), 10.0)])


def gbps(cost: float, p: Params) -> float:
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
    out = [verdict([at_least(speedup(res, "ppe"), 1.25)])]
    if len(res["rows"]) > 1:
        out.append(verdict([at_least(speedup(res, "ppe", 1), 1 / 0.3)]))
    return out


# --------------------------------------------------------------------------
# registry (scenarios.py's WORKLOADS takes these after its own)
# --------------------------------------------------------------------------

DATA_WORKLOADS: list[Workload] = [
        Workload(
            "map",
            "map over tiny items; shmrt auto batching, peers their best chunksize",
            [
                Row("range(N)", "time_s", "items/s", rate("items"), "≥1.5x best peer"),
                Row("list", "time_list_s", "items/s", rate("items"), "≥1.5x best peer"),
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
                Row("throughput", "time_per_op_s", "GB/s", gbps, "≥20 GB/s & ≥10x PPE"),
                Row(
                    "object store",
                    "store_time_per_op_s",
                    "GB/s",
                    gbps,
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
                Row("to 1st result", "time_s", "ms", ms, "≤0.8x PPE"),
                Row("2nd pool (warm)", "warm_s", "ms", ms, "≤0.3x PPE"),
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
