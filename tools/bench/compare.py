"""``shmrt bench --vs all``: every benchmark against every installed peer, in one run.

One run, one worker count, one JSON: the core workloads (:mod:`.scenarios`)
on shmrt and every selected pool (:mod:`.peers`, :mod:`.peers_more`), the
cost-growth series (:mod:`.growth`: is the cost per task / item / byte flat
from 10^3 to 10^6 tasks and from 1 KiB to 256 MiB?), and the UDP relay
benchmark (:mod:`.relay`; its peers are its own -- an asyncio relay, an
asyncio front end on ``ProcessPoolExecutor``, a plain forwarder -- because a
task pool is not a packet relay: there is no Ray or Dask relay to compare).

Why in one run: the machine is a shared 2-core VM whose speed drifts; ratios
taken side by side, pools interleaved within every repeat, are the figures
to trust, not absolute numbers from runs hours apart.  Dask and Ray run in
passes of their own (see :data:`ISOLATED`), each with shmrt measured again
beside them, because their idle daemons would otherwise slow every other
pool; the merged table shows shmrt from the first pass and every peer's
ratio against shmrt of its own pass (both are in the JSON).  A progress bar on
stderr shows where a long run is; the JSON is rewritten after every phase,
so a run that dies late keeps what it measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import relay as relay_bench
from .growth import SERIES, format_growth, run_growth, series_steps
from .peers_more import ALL_PEER_CLASSES, shutdown_all
from .progress import Progress
from .runner import (
    annotate,
    format_table,
    new_result,
    render_grid,
    run,
    workload_steps,
    write_json,
)
from .scenarios import WORKLOADS

__all__ = ["format_all", "format_relay", "run_all"]

RELAY_HEAVY, RELAY_LIGHT = 20_000, 50_000
RELAY_KINDS = {"heavy": 3, "identity": 5}  # relays per transform in relay.run


def _relay_packets(scale: float) -> tuple[int, int]:
    return max(500, round(RELAY_HEAVY * scale)), max(500, round(RELAY_LIGHT * scale))


#: Peers measured in a pass of their own, with shmrt as the reference in the
#: same pass: their daemons (Ray's raylet and GCS, Dask's scheduler and nanny
#: heartbeats) use CPU even while idle, and on 2 cores that slowed every other
#: pool measured next to them by up to 2x (PPE 6.4k tasks/s beside them, 12.7k
#: without).  Their ratios are against shmrt measured under their own load.
ISOLATED = ("dask", "ray")


def passes(peer_keys: Sequence[str]) -> list[list[str]]:
    """The peer groups run one after another; every group includes shmrt."""
    light = [k for k in peer_keys if k not in ISOLATED]
    heavy = [["shmrt", k] if "shmrt" in peer_keys else [k] for k in ISOLATED if k in peer_keys]
    if light == ["shmrt"] and heavy:
        return heavy
    return ([light] if light else []) + heavy


def _merge_core(base: dict[str, Any], other: dict[str, Any], added: Sequence[str]) -> None:
    """Fold another pass's peers ``added`` into ``base`` (their shmrt kept aside)."""
    for name, ow in other["workloads"].items():
        bw = base["workloads"].setdefault(name, ow)
        if bw is ow or ow.get("skipped") or bw.get("skipped"):
            continue
        for k in added:
            bw["peers"][k] = ow["peers"][k]
            bw.setdefault("shmrt_in_pass", {})[k] = ow["peers"].get("shmrt")
        rows = {r["cost_key"]: r for r in bw["rows"]}
        for orow in ow["rows"]:
            brow = rows.get(orow["cost_key"])
            if brow is None:  # a row only this pass has (Ray's object store)
                brow = {**orow, "values": {}, "median_cost": {}, "speedup": {}}
                bw["rows"].append(brow)
            for k in added:
                brow["values"][k] = orow["values"].get(k)
                brow["median_cost"][k] = orow["median_cost"].get(k)
                brow["speedup"][k] = orow["speedup"].get(k)
                brow.setdefault("shmrt_in_pass", {})[k] = orow["values"].get("shmrt")
        bw["wall_s"] = bw.get("wall_s", 0.0) + ow.get("wall_s", 0.0)


def _merge_growth(base: dict[str, Any], other: dict[str, Any], added: Sequence[str]) -> None:
    for name, osr in other["series"].items():
        bsr = base["series"].setdefault(name, osr)
        if bsr is osr or osr.get("skipped") or bsr.get("skipped"):
            continue
        for line, st in osr["lines"].items():
            if st["peer"] in added:
                bsr["lines"][line] = st
        for k in added:
            bsr.setdefault("shmrt_in_pass", {})[k] = osr["lines"].get("shmrt")
        bsr["wall_s"] = bsr.get("wall_s", 0.0) + osr.get("wall_s", 0.0)


def _finish(result: dict[str, Any], peer_keys: list[str], groups: list[list[str]]) -> None:
    cfg = result["config"]
    cfg["peers"] = peer_keys
    cfg["peer_descriptions"] = {k: ALL_PEER_CLASSES[k].description for k in peer_keys}
    cfg["passes"] = groups
    for name, wres in result["workloads"].items():
        if not wres.get("skipped") and name in WORKLOADS:
            for row in wres["rows"]:
                for k in peer_keys:
                    row["values"].setdefault(k, None)
                    if k != "shmrt":
                        row["speedup"].setdefault(k, None)
            annotate(WORKLOADS[name], wres.get("params", {}), wres, peer_keys)


def growth_order(growth: dict[str, Any], peer_keys: list[str]) -> None:
    """Put every growth series' lines in canonical peer order (in place)."""
    order = {k: i for i, k in enumerate(peer_keys)}
    for sres in growth["series"].values():
        lines = sres.get("lines") or {}
        sres["lines"] = dict(sorted(lines.items(),
                                    key=lambda kv: (order.get(kv[1]["peer"], 99), kv[0])))


def _pass_steps(core: Sequence[str], growth: Sequence[str], group: Sequence[str], repeat: int,
                scale: float) -> int:
    return len(core) * workload_steps(group, repeat) + series_steps(growth, group, repeat, scale)


def _run_pass(core: Sequence[str], growth: Sequence[str], group: list[str], *, workers: int,
              repeat: int, quick: bool, scale: float, budget_s: float, prog: Progress,
              checkpoint: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """One group of peers, in this process: core workloads, then growth series."""
    try:
        if core:
            part = run(core, workers, repeat, None, quick, scale=scale, peers=group,
                       progress=prog, checkpoint=checkpoint)
        else:
            part = new_result([], workers, repeat, quick, scale, group, {})
        if growth:
            part["growth"] = run_growth(growth, group, workers, repeat, scale, budget_s, prog)
    finally:
        shutdown_all()
    return part


def _run_pass_child(core: Sequence[str], growth: Sequence[str], group: list[str], *,
                    workers: int, repeat: int, quick: bool, scale: float, budget_s: float,
                    prog: Progress) -> dict[str, Any]:
    """One group of peers in a fresh interpreter (``python -m shmrt.tools.bench``).

    Why: importing Dask or Ray leaves their modules (and Ray's threads) in the
    process; with them loaded, loky's round trips got 2x slower and the
    client's garbage collector scanned 8x more objects for every pool measured
    afterwards.  A child per pass measures every pool in a clean process.
    """
    steps = _pass_steps(core, growth, group, repeat, scale)
    done = prog.done
    with tempfile.TemporaryDirectory(prefix="shmrt-bench-") as tmp:
        out = os.path.join(tmp, "pass.json")
        argv = [sys.executable, "-m", "shmrt.tools.bench", *core,
                *(f"growth_{g}" for g in growth), "--peers", ",".join(group),
                "--workers", str(workers), "--repeat", str(repeat), "--scale", repr(scale),
                "--growth-budget", repr(budget_s), "--json", out,
                "--progress-state", prog.state()]
        if quick:
            argv.append("--quick")
        prog.close()  # the child draws the bar from here
        err = None if prog.stream is sys.stderr else subprocess.DEVNULL
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, check=False)
        prog.done = done
        prog.advance(steps)
        if not os.path.exists(out):
            raise RuntimeError(f"pass {', '.join(group)} wrote no result "
                               f"(exit code {proc.returncode})")
        with open(out, encoding="utf-8") as f:
            part: dict[str, Any] = json.load(f)
    part["pass_returncode"] = proc.returncode
    return part


def run_all(
    core: Sequence[str],
    growth: Sequence[str],
    relay: bool,
    *,
    peers: Sequence[str],
    skipped_peers: dict[str, str] | None = None,
    workers: int = 2,
    repeat: int = 3,
    quick: bool = False,
    scale: float = 1.0,
    budget_s: float = 120.0,
    json_path: str | None = None,
    progress: TextIO | Progress | None = sys.stderr,
    isolate: bool = True,
) -> dict[str, Any]:
    """Core workloads, growth series and relay: one result (and one JSON).

    ``peers`` are already resolved (installed) peer keys; ``skipped_peers``
    maps the ones left out to the reason.  The peers run in the groups of
    :func:`passes`, every group with shmrt, each group in a child process of
    its own when there is more than one (``isolate``); the result reads as
    one table.  ``progress``: a stream, or the :class:`Progress` of a parent.
    """
    bad = [n for n in core if n not in WORKLOADS] + [n for n in growth if n not in SERIES]
    if bad:
        raise ValueError(f"unknown workload(s): {', '.join(bad)}")
    peer_keys = [k for k in ALL_PEER_CLASSES if k in peers]
    groups = passes(peer_keys)
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    if not isinstance(progress, Progress):
        prog.add_total(sum(_pass_steps(core, growth, g, repeat, scale) for g in groups))
        prog.add_total(repeat * sum(RELAY_KINDS.values()) if relay else 0)
    children = isolate and len(groups) > 1
    t0 = time.perf_counter()

    def save(res: dict[str, Any]) -> None:
        if json_path is not None:
            res["duration_s"] = time.perf_counter() - t0
            write_json(res, json_path)

    result = new_result(core, workers, repeat, quick, scale, peer_keys, {})
    runs: list[dict[str, Any]] = []
    try:
        for i, group in enumerate(groups):
            if not core and not growth:
                break
            if len(groups) > 1:
                prog.line(f"pass {i + 1}/{len(groups)}: "
                          + ", ".join(ALL_PEER_CLASSES[k].label for k in group)
                          + (" (own process)" if children else ""))
            t_pass = time.perf_counter()
            kw: dict[str, Any] = {"workers": workers, "repeat": repeat, "quick": quick,
                                  "scale": scale, "budget_s": budget_s, "prog": prog}
            try:
                part = (_run_pass_child(core, growth, group, **kw) if children else
                        _run_pass(core, growth, group, checkpoint=save if i == 0 else None, **kw))
            except Exception as exc:  # noqa: BLE001 - one pass failing keeps the others
                runs.append({"peers": group, "error": f"{type(exc).__name__}: {exc}"})
                prog.line(f"pass {i + 1} failed: {exc}")
                continue
            runs.append({"peers": group, "duration_s": time.perf_counter() - t_pass,
                         "returncode": part.pop("pass_returncode", 0)})
            added = [k for k in group if k != "shmrt"]
            if not result["workloads"] and "growth" not in result:
                env = result["env"]
                result = part
                result["env"] = env  # the parent's (also lists the peers' packages)
            else:
                _merge_core(result, part, added)
                if "growth" in part:
                    if "growth" in result:
                        _merge_growth(result["growth"], part["growth"], added)
                    else:
                        result["growth"] = part["growth"]
            if "growth" in result:
                growth_order(result["growth"], peer_keys)
            result["config"]["pass_runs"] = runs
            save(result)
        result["config"]["skipped_peers"].update(skipped_peers or {})
        result["config"]["growth"] = list(growth)
        result["config"]["relay"] = relay
        result["config"]["pass_runs"] = runs
        _finish(result, peer_keys, groups)
        save(result)
        if relay:
            result["relay"] = _run_relay(repeat, workers, scale, prog)
            save(result)
    finally:
        shutdown_all()
        if not isinstance(progress, Progress):
            prog.close()
    result["duration_s"] = time.perf_counter() - t0
    save(result)
    return result


def _run_relay(repeat: int, workers: int, scale: float, prog: Progress) -> dict[str, Any]:
    heavy, light = _relay_packets(scale)
    calls = 0

    def step(msg: str) -> None:
        nonlocal calls
        if calls:
            prog.advance()
        calls += 1
        prog.update(msg)

    t0 = time.perf_counter()
    try:
        res: dict[str, Any] = {"runs": relay_bench.run(repeat, heavy, light, workers,
                                                        progress=step)}
    except Exception as exc:  # noqa: BLE001 - reported in the table
        res = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    prog.advance(max(0, repeat * sum(RELAY_KINDS.values()) - max(0, calls - 1)))
    res.update(repeat=repeat, workers=workers, packets={"heavy": heavy, "identity": light},
               wall_s=time.perf_counter() - t0)
    if "runs" in res:
        prog.line("relay: " + " | ".join(
            f"{label} shmrt {r['median']['shmrt']['pps']:,.0f} pkt/s"
            for label, r in res["runs"].items()) + f"  [{res['wall_s']:.0f}s]")
    else:
        prog.line(f"relay: failed: {res['error']}")
    return res


_RELAY_LABELS = {"shmrt": "shmrt relay", "asyncio": "asyncio (1 process)",
                 "ppe": "asyncio + PPE", "plain": "plain forwarder (no transform)",
                 "mmsg": "recvmmsg/sendmmsg forwarder"}


def format_relay(relay: dict[str, Any], markdown: bool = False) -> str:
    """The relay table: packets/s, latency, and shmrt's speedup per relay."""
    if "runs" not in relay:
        return f"relay: failed: {relay.get('error')}\n"
    out = [f"relay: loopback UDP, 1 KiB datagrams, 8 flows, 256 in flight, "
           f"{relay['workers']} CPU workers, median of {relay['repeat']}"]
    header = ["transform", "relay", "pkt/s", "p50 µs", "p99 µs", "shmrt x", "out of order"]
    table = []
    for label, r in relay["runs"].items():
        for j, (kind, m) in enumerate(r["median"].items()):
            table.append([
                f"{label} ({r['packets']:,} pkts)" if j == 0 else "",
                _RELAY_LABELS.get(kind, kind),
                f"{m['pps']:,.0f}", f"{m['p50_us']:,.0f}", f"{m['p99_us']:,.0f}",
                "" if kind == "shmrt" else f"{m['shmrt_speedup']:.2f}x",
                str(m["out_of_order"]),
            ])
    out += render_grid(header, table, {2, 3, 4, 5, 6}, markdown)
    out.append("")
    out.append("shmrt x = shmrt's packets/s / this relay's (> 1: shmrt faster); no Ray or Dask "
               "relay (they are task pools, not packet relays)")
    return "\n".join(out) + "\n"


def format_all(result: dict[str, Any], markdown: bool = False) -> str:
    """Core table, then growth tables, then the relay table."""
    parts = []
    if result.get("workloads"):
        parts.append(format_table(result, markdown=markdown))
    elif not markdown:
        cfg = result["config"]
        parts.append(f"shmrt bench: {cfg['workers']} workers per pool, median of "
                     f"{cfg['repeat']} repeat(s); peers: "
                     + ", ".join(ALL_PEER_CLASSES[k].label for k in cfg["peers"]))
    if result.get("growth"):
        parts.append(format_growth(result["growth"], markdown))
    if result.get("relay"):
        parts.append(format_relay(result["relay"], markdown))
    return "\n\n".join(p.rstrip() for p in parts) + "\n"
