"""Run the ``shmrt bench`` workloads against shmrt and its peers; report.

Method (the same for every workload and pool):

* every pool gets the same number of worker processes (default 2) and
  starts them with the ``spawn`` method;
* before timing, each pool is started and *warmed*: all of its workers are
  running and have executed a task (except the ``startup`` workload, which
  times exactly that);
* every workload is repeated (default 5, ``--quick`` 2); the peers are
  interleaved within each repeat (shmrt, PPE, mp.Pool, shmrt, ...) so that
  slow drifts of machine noise hit all of them alike;
* the table shows the MEDIAN over the repeats and, per peer, the ratio
  ``peer_cost / shmrt_cost`` (> 1: shmrt is faster by that factor);
* ``--json FILE`` writes every raw sample, the medians, the ratios and the
  Python / platform / package versions.

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, TextIO

from .peers import PEER_CLASSES, PEER_KEYS, Peer
from .scenarios import WORKLOADS, Workload, numpy_available

__all__ = ["DEFAULT_REPEAT", "QUICK_REPEAT", "format_table", "main", "run"]

DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
SCHEMA = "shmrt-bench/1"


# --------------------------------------------------------------------------
# progress (stderr only)
# --------------------------------------------------------------------------


class _Progress:
    """One status line per workload on stderr; rewritten in place on a tty."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.tty = bool(stream is not None and stream.isatty())
        self._open = False

    def update(self, text: str) -> None:
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._open = True
            self.stream.flush()

    def line(self, text: str) -> None:
        if self.stream is None:
            return
        if self.tty and self._open:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self._open = False
        self.stream.flush()


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------


def _version(mod: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):
        return version(mod)
    try:
        m = __import__(mod)
    except Exception:  # noqa: BLE001
        return None
    return str(getattr(m, "__version__", "unknown"))


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "packages": {name: _version(name) for name in ("shmrt", "numpy", "rich")},
    }


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("_")}


def _run_workload(
    wk: Workload,
    peer_keys: Sequence[str],
    workers: int,
    repeat: int,
    scale: float,
    quick: bool,
    prog: _Progress,
    index: str,
) -> dict[str, Any]:
    res: dict[str, Any] = {"summary": wk.summary, "peers": {}, "rows": [], "notes": []}
    if wk.needs_numpy and not numpy_available():
        res["skipped"] = "numpy is not installed"
        prog.line(f"{index} {wk.name}: skipped (numpy missing)")
        return res
    params = wk.params(scale, quick)
    res["params"] = _public_params(params)
    peers: dict[str, Peer] = {}
    state: dict[str, dict[str, Any]] = {
        k: {"samples": [], "error": None, "prepare": {}} for k in peer_keys
    }
    res["peers"] = state
    try:
        # start + warm + prepare (untimed)
        for key in peer_keys:
            peer = PEER_CLASSES[key](workers)
            peers[key] = peer
            if wk.fresh_pool:
                continue
            prog.update(f"{index} {wk.name}: starting {peer.label}")
            try:
                peer.start()
                state[key]["warm_worker_pids"] = peer.warm()
                if wk.prepare is not None:
                    state[key]["prepare"] = wk.prepare(peer, params)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                state[key]["error"] = _err(exc)
                state[key]["traceback"] = traceback.format_exc()
        # timed repeats, peers interleaved
        t_wk = time.perf_counter()
        for r in range(repeat):
            for key in peer_keys:
                st = state[key]
                if st["error"] is not None:
                    continue
                peer = peers[key]
                if wk.fresh_pool:
                    peer = peers[key] = PEER_CLASSES[key](workers)
                prog.update(f"{index} {wk.name}: repeat {r + 1}/{repeat} {peer.label}")
                gc.collect()
                try:
                    st["samples"].append(wk.sample(peer, params, st["prepare"]))
                except Exception as exc:  # noqa: BLE001
                    st["error"] = _err(exc)
                    st["traceback"] = traceback.format_exc()
        res["wall_s"] = time.perf_counter() - t_wk
    finally:
        for key, peer in peers.items():
            msg = peer.close()
            if msg and state[key]["error"] is None:
                state[key]["error"] = msg
    _summarise(wk, params, res, peer_keys)
    row = res["rows"][0]
    shown = [
        f"{PEER_CLASSES[k].label} "
        + ("ERROR" if state[k]["error"] else _fmt_value(row["values"].get(k), row["unit"]))
        for k in peer_keys
    ]
    prog.line(
        f"{index} {wk.name} ({row['label']}, {row['unit']}): {' | '.join(shown)}"
        f"  [{res.get('wall_s', 0):.1f}s]"
    )
    return res


def _summarise(
    wk: Workload, params: dict[str, Any], res: dict[str, Any], peer_keys: Sequence[str]
) -> None:
    state = res["peers"]
    for st in state.values():
        costs: dict[str, list[float]] = {}
        for s in st["samples"]:
            for k, v in s.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    costs.setdefault(k, []).append(float(v))
        st["median"] = {k: _median(v) for k, v in costs.items()}
    for row in wk.rows:
        values: dict[str, float | None] = {}
        medians: dict[str, float | None] = {}
        for key in peer_keys:
            m = state[key]["median"].get(row.key) if state[key]["error"] is None else None
            medians[key] = m
            values[key] = None if m is None else row.display(m, params)
        speedup: dict[str, float | None] = {}
        base = medians.get("shmrt")
        for key in peer_keys:
            if key == "shmrt":
                continue
            m = medians.get(key)
            speedup[key] = None if (m is None or base is None or base <= 0) else m / base
        res["rows"].append(
            {
                "label": row.label,
                "unit": row.unit,
                "cost_key": row.key,
                "values": values,
                "median_cost": medians,
                "speedup": speedup,
                "target": row.target,
                "status": "",
            }
        )
    if wk.target is not None and "shmrt" in peer_keys:
        status = wk.target(res)
        for r in res["rows"]:
            if r["target"]:
                r["status"] = status
        res["target_status"] = status
    if wk.peer_note:
        res["notes"].append(wk.peer_note.format(**params))
    if wk.extra_note is not None:
        extra = wk.extra_note(res)
        if extra:
            res["notes"].append(extra)
    for key in peer_keys:
        if state[key]["error"]:
            res["notes"].append(f"{PEER_CLASSES[key].label} failed: {state[key]['error']}")


def run(
    workloads: Sequence[str] | None = None,
    workers: int = 2,
    repeat: int | None = None,
    json_path: str | os.PathLike[str] | None = None,
    quick: bool = False,
    *,
    scale: float = 1.0,
    peers: Sequence[str] | None = None,
    progress: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Run the benchmark and return the full result (also written as JSON).

    ``workloads``: names from :data:`WORKLOADS` (default: all).  ``repeat``:
    timed repeats per peer (default 5, or 2 with ``quick``).  ``scale``
    multiplies the task counts (tests use a small one).  ``peers``: subset
    of ``("shmrt", "ppe", "mp")``.  ``progress``: stream for progress lines
    (``None`` for silence).
    """
    names = list(workloads) if workloads else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(
            f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(WORKLOADS)}"
        )
    peer_keys = list(peers) if peers else list(PEER_KEYS)
    bad = [p for p in peer_keys if p not in PEER_CLASSES]
    if bad:
        raise ValueError(f"unknown peer(s): {', '.join(bad)}; known: {', '.join(PEER_KEYS)}")
    peer_keys = [k for k in PEER_KEYS if k in peer_keys]  # canonical order
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if repeat is None:
        repeat = QUICK_REPEAT if quick else DEFAULT_REPEAT
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    if scale <= 0:
        raise ValueError("scale must be > 0")

    prog = _Progress(progress)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "started_at": started.isoformat(timespec="seconds"),
        "config": {
            "workloads": names,
            "workers": workers,
            "repeat": repeat,
            "quick": quick,
            "scale": scale,
            "peers": peer_keys,
            "start_method": "spawn",
            "peer_descriptions": {k: PEER_CLASSES[k].description for k in peer_keys},
            "statistic": "median over repeats; speedup = peer median cost / shmrt median cost",
        },
        "env": environment(),
        "workloads": {},
    }
    prog.line(
        f"shmrt bench: {len(names)} workload(s), {workers} workers, {repeat} repeat(s), "
        f"peers: {', '.join(PEER_CLASSES[k].label for k in peer_keys)} (spawn start method)"
    )
    for i, name in enumerate(names, 1):
        result["workloads"][name] = _run_workload(
            WORKLOADS[name],
            peer_keys,
            workers,
            repeat,
            scale,
            quick,
            prog,
            f"[{i}/{len(names)}]",
        )
    result["duration_s"] = time.perf_counter() - t0
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=str)
            f.write("\n")
    return result


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "ERR"
    if unit in ("tasks/s", "items/s"):
        return f"{v:,.0f}"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "GB/s":
        return f"{v:.2f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _fmt_speedup(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def format_table(result: dict[str, Any]) -> str:
    """Render a :func:`run` result (or its JSON) as an aligned text table."""
    cfg, env = result["config"], result["env"]
    peer_keys: list[str] = [k for k in cfg["peers"] if k in PEER_CLASSES]
    others = [k for k in peer_keys if k != "shmrt"]
    labels = {k: PEER_CLASSES[k].label for k in peer_keys}
    pk = env.get("packages", {})
    out: list[str] = [
        (
            f"shmrt bench: {cfg['workers']} workers per pool, start method 'spawn' for every pool, "
            f"median of {cfg['repeat']} repeat(s), peers interleaved per repeat, pools warmed "
            "(except startup)"
        ),
        (
            f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
            f"{env['cpu_count']} CPUs; shmrt {pk.get('shmrt')}, numpy {pk.get('numpy')}"
        ),
    ]
    if "ppe" in peer_keys:
        out.append("PPE     = concurrent.futures.ProcessPoolExecutor(mp_context=spawn)")
    if "mp" in peer_keys:
        out.append("mp.Pool = multiprocessing.get_context('spawn').Pool")
    if "shmrt" in peer_keys and others:
        out.append("vs X    = X's median cost / shmrt's median cost (> 1: shmrt faster)")
    out.append("")

    header = ["workload", "metric", "unit"] + [labels[k] for k in peer_keys]
    if "shmrt" in peer_keys:
        header += [f"vs {labels[k]}" for k in others] + ["target", "result"]
    header.append("notes")
    right = set(range(3, 3 + len(peer_keys) + (len(others) if "shmrt" in peer_keys else 0)))
    table: list[list[str]] = []
    footnotes: list[str] = []
    for name, wres in result["workloads"].items():
        refs = ""
        notes = list(wres.get("notes", []))
        if wres.get("skipped"):
            notes = [f"skipped: {wres['skipped']}"]
        if notes:
            first = len(footnotes) + 1
            footnotes.extend(notes)
            refs = ",".join(str(i) for i in range(first, len(footnotes) + 1))
            refs = f"[{refs}]"
        rows = wres.get("rows") or [{"label": "-", "unit": "", "values": {}, "speedup": {}}]
        for j, row in enumerate(rows):
            line = [name if j == 0 else "", row["label"], row["unit"]]
            skipped = bool(wres.get("skipped"))
            line += [
                "-" if skipped else _fmt_value(row["values"].get(k), row["unit"]) for k in peer_keys
            ]
            if "shmrt" in peer_keys:
                line += [_fmt_speedup(row["speedup"].get(k)) for k in others]
                line += [row.get("target", ""), row.get("status", "")]
            line.append(refs if j == 0 else "")
            table.append(line)
    widths = [
        max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)
    ]

    def fmt(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out.append(fmt(header))
    out.append("  ".join("-" * w for w in widths))
    out.extend(fmt(r) for r in table)
    if footnotes:
        out.append("")
        out.extend(f"[{i}] {n}" for i, n in enumerate(footnotes, 1))
    return "\n".join(out)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shmrt.tools.bench",
        description="Benchmark shmrt.Pool against concurrent.futures.ProcessPoolExecutor and "
        "multiprocessing.Pool (all with the spawn start method) on Tokio-style scheduler workloads.",
    )
    p.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help=f"workloads to run (default: all): {', '.join(WORKLOADS)}",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes per pool (default: 2)")
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"timed repeats per pool (default: {DEFAULT_REPEAT}, --quick: {QUICK_REPEAT})",
    )
    p.add_argument(
        "--json",
        dest="json_path",
        metavar="FILE",
        help="write raw samples and summary as JSON",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_REPEAT} repeats and fewer payload round trips",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply task counts by this (default: 1.0)",
    )
    p.add_argument(
        "--peers",
        default=",".join(PEER_KEYS),
        help=f"comma-separated subset of {','.join(PEER_KEYS)} (default: all)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["relay"]:  # the relay benchmark has its own runner (tools/bench/relay.py)
        from .relay import main as relay_main

        return relay_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.list:
        for name, wk in WORKLOADS.items():
            print(f"{name:18} {wk.summary}")
        return 0
    peer_keys = [p.strip() for p in args.peers.split(",") if p.strip()]
    try:
        result = run(
            args.workloads,
            args.workers,
            args.repeat,
            args.json_path,
            args.quick,
            scale=args.scale,
            peers=peer_keys,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json_path:
        print(f"\nraw samples written to {args.json_path}", file=sys.stderr)
    errors = any(
        st.get("error") for w in result["workloads"].values() for st in w["peers"].values()
    )
    missed = any(w.get("target_status") == "MISS" for w in result["workloads"].values())
    if errors:
        return 1
    if args.check and missed:
        return 1
    return 0
