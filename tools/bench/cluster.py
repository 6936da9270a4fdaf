"""``python -m shmrt.tools.bench.cluster``: shmrt on Ray against Ray itself.

What it measures, on one Ray cluster (by default a simulated one started
here: ``ray.cluster_utils.Cluster``, 2 nodes of 1 CPU, on loopback; or a
real one with ``--address``), each pool in turn, warmed, median of
``--repeat`` samples:

* ``spawn_many``  -- 10,000 tiny tasks (``noop``) submitted one by one from
  the driver, then every result awaited;
* ``map``         -- ``inc`` over 100,000 items (every pool chunks: shmrt
  and Ray's Pool by themselves, plain Ray tasks one task per chunk);
* ``fork_join``   -- fine-grained fork-join: fib(24) with a sequential
  cutoff of 8 (2,584 leaves of ~2 us): shmrt runs the recursion with
  ``shmrt.spawn``/``join`` inside one task on a node; Ray's pools cannot
  spawn from a task cheaply (a nested ``ray.get`` blocks a worker), so the
  driver expands the recursion and submits the leaves, their best case;
* ``fork_join_coarse`` -- the same with fib(30), cutoff 18 (377 leaves of
  ~0.3 ms; the local benchmark's size): compute-bound, for context.

Pools: ``shmrt-ray`` (``shmrt.Pool(backend="ray")``, one runtime per node
sized to its CPUs), ``ray`` (``@ray.remote`` tasks), ``ray-mp``
(``ray.util.multiprocessing.Pool`` with a process per CPU), and
``shmrt-local`` (``shmrt.Pool(2)`` on the driver's machine: what the
cluster costs over one machine).  Target: shmrt-ray >= 20x plain Ray tasks
on ``spawn_many`` and ``fork_join``.

``--json FILE`` keeps every sample; ``--plot FILE`` draws a bar chart
(matplotlib).  On a real cluster: ``ray start --head`` on one machine,
``ray start --address=HEAD:6379`` on the others (shmrt installed on every
node), then ``python -m shmrt.tools.bench.cluster --address auto`` on the
head.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# Before Ray is imported: no usage reporting, and a simulated cluster stays
# on loopback (Ray reads this at import).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from . import workloads as wl  # noqa: E402

PEERS = ("shmrt-ray", "ray", "ray-mp", "shmrt-local")
LABELS = {"shmrt-ray": "shmrt on Ray", "ray": "Ray tasks", "ray-mp": "Ray mp.Pool",
          "shmrt-local": "shmrt.Pool(2)"}
TARGET = 20.0
TARGETED = ("spawn_many", "fork_join")
WAIT_S = 600.0


class Peer:
    """A pool under test: ``submit(fn, *args)`` -> handle, ``results(handles)``,
    ``map(fn, items, chunksize)``, ``call(fn, *args)``."""

    key = ""
    can_spawn = False

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.results([self.submit(fn, *args)])[0]


class ShmrtPeer(Peer):
    can_spawn = True

    def __init__(self, key: str):
        self.key = key

    def start(self) -> None:
        import shmrt

        self.pool = shmrt.Pool(backend="ray") if self.key == "shmrt-ray" else shmrt.Pool(2)
        self.submit = self.pool.submit
        self.workers = self.pool.workers if self.key == "shmrt-ray" else 2

    def results(self, hs: list[Any]) -> list[Any]:
        return [h.result(WAIT_S) for h in hs]

    def map(self, fn: Callable[..., Any], items: list[Any], chunksize: int) -> list[Any]:
        return list(self.pool.map(fn, items, timeout=WAIT_S))

    def stop(self) -> None:
        self.pool.shutdown(wait=True)


class RayTasksPeer(Peer):
    key = "ray"

    def start(self) -> None:
        import ray

        self.ray = ray
        self.fns: dict[Any, Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        rfn = self.fns.get(fn)
        if rfn is None:
            rfn = self.fns[fn] = self.ray.remote(fn)
        return rfn.remote(*args)

    def results(self, hs: list[Any]) -> list[Any]:
        return self.ray.get(hs, timeout=WAIT_S)

    def map(self, fn: Callable[..., Any], items: list[Any], chunksize: int) -> list[Any]:
        hs = [self.submit(wl.apply_chunk, fn, items[i:i + chunksize])
              for i in range(0, len(items), chunksize)]
        return [x for chunk in self.results(hs) for x in chunk]


class RayMpPeer(Peer):
    key = "ray-mp"

    def start(self) -> None:
        import ray
        from ray.util.multiprocessing import Pool

        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.pool = Pool(processes=cpus)
        self.workers = cpus

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.apply_async(fn, args)

    def results(self, hs: list[Any]) -> list[Any]:
        return [h.get(WAIT_S) for h in hs]

    def map(self, fn: Callable[..., Any], items: list[Any], chunksize: int) -> list[Any]:
        return self.pool.map(fn, items, chunksize=chunksize)

    def stop(self) -> None:
        self.pool.terminate()
        self.pool.join()


# ---- workloads ----------------------------------------------------------------------------


def _spawn_many(peer: Peer, n: int) -> float:
    submit, fn = peer.submit, wl.noop
    t0 = time.perf_counter()
    hs = [submit(fn) for _ in range(n)]
    peer.results(hs)
    return time.perf_counter() - t0


def _map(peer: Peer, n: int) -> float:
    items = list(range(n))
    chunk = max(1, -(-n // (2 * 4)))
    t0 = time.perf_counter()
    got = peer.map(wl.inc, items, chunk)
    dt = time.perf_counter() - t0
    if len(got) != n or got[0] != 1 or got[-1] != n:
        raise AssertionError(f"{peer.key}: map returned a wrong result")
    return dt


def _fork_join(peer: Peer, n: int, cutoff: int) -> float:
    t0 = time.perf_counter()
    if peer.can_spawn:
        got = peer.call(wl.fib_task, n, cutoff)
    else:
        got = sum(peer.results([peer.submit(wl.fib_seq, m) for m in wl.fib_leaves(n, cutoff)]))
    dt = time.perf_counter() - t0
    if got != wl.fib_seq(n):
        raise AssertionError(f"{peer.key}: fib({n}) = {got}")
    return dt


def workloads(scale: float) -> dict[str, tuple[str, str, float, Callable[[Peer], float]]]:
    """name -> (metric, unit, amount per sample, sample function)."""
    tasks = max(100, int(10_000 * scale))
    items = max(1_000, int(100_000 * scale))
    fine = (24, 8) if scale >= 0.5 else (18, 8)
    coarse = (30, 18) if scale >= 0.5 else (22, 14)
    return {
        "spawn_many": ("throughput", "tasks/s", tasks, lambda p: _spawn_many(p, tasks)),
        "map": ("throughput", "items/s", items, lambda p: _map(p, items)),
        "fork_join": ("time", "ms", 0, lambda p: _fork_join(p, *fine)),
        "fork_join_coarse": ("time", "ms", 0, lambda p: _fork_join(p, *coarse)),
    }


def _warm(peer: Peer) -> None:
    peer.results([peer.submit(wl.noop) for _ in range(4 * getattr(peer, "workers", 2))])
    _fork_join(peer, 12, 8)


def run(scale: float = 1.0, repeat: int = 3, peers: tuple[str, ...] = PEERS,
        address: str | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every workload on every peer; returns times and the table data.
    Starts (and stops) a simulated 2-node cluster unless Ray is already
    initialized in this process or ``address`` names a cluster."""
    import ray

    cluster = None
    if not ray.is_initialized():
        if address is None:
            from ray.cluster_utils import Cluster

            args = {"num_cpus": 1, "object_store_memory": 100 << 20,
                    "node_ip_address": "127.0.0.1"}
            cluster = Cluster(initialize_head=True,
                              head_node_args=dict(args, include_dashboard=False))
            cluster.add_node(**args)
            address = cluster.address
        ray.init(address=address, log_to_driver=False)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        work = workloads(scale)
        samples: dict[str, dict[str, list[float]]] = {w: {} for w in work}
        for key in peers:
            peer = ShmrtPeer(key) if key.startswith("shmrt") else (
                RayTasksPeer() if key == "ray" else RayMpPeer())
            progress(f"[{key}] starting")
            peer.start()
            try:
                _warm(peer)
                for name, (_m, _u, _amount, fn) in work.items():
                    samples[name][key] = [fn(peer) for _ in range(repeat)]
                    progress(f"[{key}] {name}: "
                             + ", ".join(f"{s * 1e3:.1f} ms" for s in samples[name][key]))
            finally:
                peer.stop()
    finally:
        if cluster is not None:
            ray.shutdown()
            cluster.shutdown()
    return {"config": {"scale": scale, "repeat": repeat, "peers": list(peers),
                       "nodes": len(nodes), "cpus": sum(int(n["Resources"].get("CPU", 0))
                                                        for n in nodes),
                       "simulated": cluster is not None, "python": sys.version.split()[0]},
            "workloads": {name: {"metric": m, "unit": u, "amount": a, "samples": samples[name]}
                          for name, (m, u, a, _f) in work.items()}}


def _value(w: dict[str, Any], key: str) -> float | None:
    s = w["samples"].get(key)
    if not s:
        return None
    t = statistics.median(s)
    return w["amount"] / t if w["unit"] != "ms" else t * 1e3


def _ratio(w: dict[str, Any], a: str, b: str) -> float | None:
    """How many times better ``a`` is than ``b``."""
    va, vb = _value(w, a), _value(w, b)
    if va is None or vb is None:
        return None
    return va / vb if w["unit"] != "ms" else vb / va


def format_table(result: dict[str, Any]) -> str:
    peers = result["config"]["peers"]
    head = ["workload", "unit", *[LABELS[p] for p in peers], "vs Ray tasks", "vs Ray mp.Pool",
            "cost vs local", "target", "result"]
    rows = [head]
    for name, w in result["workloads"].items():
        vals = [_value(w, p) for p in peers]
        cells = [name, w["unit"], *[_fmt(v) for v in vals]]
        for other in ("ray", "ray-mp"):
            r = _ratio(w, "shmrt-ray", other)
            cells.append("-" if r is None else f"{r:.1f}x")
        r = _ratio(w, "shmrt-local", "shmrt-ray")  # > 1: the cluster is slower by that much
        cells.append("-" if r is None else f"{r:.2f}x")
        if name in TARGETED:
            r = _ratio(w, "shmrt-ray", "ray")
            cells += [f">={TARGET:.0f}x Ray tasks", "-" if r is None else
                      ("PASS" if r >= TARGET else "MISS")]
        else:
            cells += ["", ""]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(widths[i]) if i > 1 else c.ljust(widths[i])
                       for i, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def plot(result: dict[str, Any], path: str) -> None:
    """One panel per workload: each pool's figure, log scale, higher or
    lower is better as labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = result["config"]["peers"]
    names = list(result["workloads"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8))
    colours = {"shmrt-ray": "#1f77b4", "ray": "#d62728", "ray-mp": "#ff7f0e",
               "shmrt-local": "#2ca02c"}
    for ax, name in zip(axes, names, strict=True):
        w = result["workloads"][name]
        vals = [_value(w, p) or 0.0 for p in peers]
        ax.bar([LABELS[p] for p in peers], vals, color=[colours[p] for p in peers])
        ax.set_yscale("log")
        ax.set_ylim(bottom=min(v for v in vals if v > 0) / 5)  # bars from a common floor
        better = "lower is better" if w["unit"] == "ms" else "higher is better"
        ax.set_title(f"{name}\n{w['unit']} ({better})", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        for i, v in enumerate(vals):
            ax.text(i, v, _fmt(v), ha="center", va="bottom", fontsize=7)
    cfg = result["config"]
    fig.suptitle(f"shmrt on Ray vs Ray: {cfg['nodes']} nodes, {cfg['cpus']} CPUs"
                 f"{' (simulated on one machine)' if cfg['simulated'] else ''}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shmrt.tools.bench.cluster",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", help="a running Ray cluster ('auto', 'host:port'); "
                    "default: start a simulated 2-node cluster here")
    ap.add_argument("--repeat", type=int, default=3, help="samples per pool and workload")
    ap.add_argument("--scale", type=float, default=1.0, help="workload size factor")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated: " + ",".join(PEERS))
    ap.add_argument("--json", help="write every sample to this file")
    ap.add_argument("--plot", help="write a bar chart (PNG) to this file")
    args = ap.parse_args(argv)
    peers = tuple(p for p in args.peers.split(",") if p)
    bad = [p for p in peers if p not in PEERS]
    if bad:
        ap.error(f"unknown peer(s): {', '.join(bad)}")
    result = run(args.scale, args.repeat, peers, args.address,
                 progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
