"""``python -m shmrt.tools.bench``: the benchmark's command line.

Why a module of its own: it ties the runner (core workloads), the
comparison against every peer (compare) and the growth series together; the
runner itself imports neither, so the bench modules import one way only.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .growth import SERIES
from .peers import PEER_KEYS
from .peers_more import ALL_PEER_KEYS
from .progress import Progress
from .runner import DEFAULT_REPEAT, QUICK_REPEAT, format_table, run
from .scenarios import WORKLOADS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shmrt.tools.bench",
        description="Benchmark shmrt.Pool against concurrent.futures.ProcessPoolExecutor and "
        "multiprocessing.Pool (all with the spawn start method) on Tokio-style scheduler "
        "workloads; with --vs, against loky, mpire, Dask and Ray too.",
    )
    p.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help=f"workloads to run (default: all): {', '.join(WORKLOADS)}; also 'growth' (the "
        "cost-growth series, or one of " + ", ".join(f"growth_{g}" for g in SERIES)
        + ") and 'relay' (the UDP relay benchmark)",
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
        help="write raw samples, summary and package versions as JSON",
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
        help=f"comma-separated subset of {','.join(ALL_PEER_KEYS)} (default: {','.join(PEER_KEYS)})",
    )
    p.add_argument(
        "--vs",
        metavar="PEERS",
        help="'all' (every installed peer: " + ", ".join(k for k in ALL_PEER_KEYS if k != "shmrt")
        + ") or a comma list; peers not installed are skipped with a note.  Without "
        "WORKLOADs: the core workloads, the growth series and the relay benchmark",
    )
    p.add_argument("--growth", action="store_true", help="also run the cost-growth series")
    p.add_argument(
        "--growth-budget",
        type=float,
        default=120.0,
        metavar="S",
        help="growth: skip a size for a pool predicted to take more than S seconds per sample "
        "(default: 120)",
    )
    p.add_argument("--plot", metavar="DIR", help="write PNG charts to DIR (needs matplotlib)")
    p.add_argument("--progress-state", help=argparse.SUPPRESS)  # a parent run's bar: t0,done,total
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


def _select(
    names: Sequence[str], vs: bool, growth_flag: bool
) -> tuple[list[str], list[str], bool]:
    """Positional names -> (core workloads, growth series, relay?)."""
    core = [n for n in names if n in WORKLOADS]
    growth: list[str] = []
    for n in names:
        if n == "growth":
            growth += [g for g in SERIES if g not in growth]
        elif n.startswith("growth_") and n[7:] in SERIES and n[7:] not in growth:
            growth.append(n[7:])
    relay = "relay" in names
    unknown = [
        n for n in names
        if n not in WORKLOADS and n not in ("growth", "relay") and n[7:] not in SERIES
    ]
    if unknown:
        raise ValueError(
            f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(WORKLOADS)}, "
            "growth, " + ", ".join(f"growth_{g}" for g in SERIES) + ", relay"
        )
    if not names:
        core = list(WORKLOADS)
        if vs:
            growth, relay = list(SERIES), True
    if growth_flag and not growth:
        growth = list(SERIES)
    return core, growth, relay


def _failed(result: dict[str, Any]) -> bool:
    if any(st.get("error") for w in result["workloads"].values() for st in w["peers"].values()):
        return True
    series = result.get("growth", {}).get("series", {})
    if any(ln.get("error") for s in series.values() for ln in s.get("lines", {}).values()):
        return True
    return bool(result.get("relay", {}).get("error"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["relay"] and not any(a.startswith("--vs") for a in argv):
        from .relay import main as relay_main  # the relay benchmark's own runner (relay.py)

        return relay_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.list:
        for name, wk in WORKLOADS.items():
            print(f"{name:18} {wk.summary}")
        print(f"{'growth':18} cost per task / item / byte as work grows ("
              + ", ".join(f"growth_{g}" for g in SERIES) + ")")
        print(f"{'relay':18} UDP relay packets/s and latency (shmrt bench relay)")
        return 0
    from .peers_more import resolve_peers, shutdown_all

    progress: TextIO | Progress = sys.stderr
    if args.progress_state:  # a pass of a larger run, in a child process (compare.py)
        started, done, total = args.progress_state.split(",")
        progress = Progress(sys.stderr, int(total), done=int(done), started=float(started),
                            fixed=True)
    try:
        core, growth, relay = _select(args.workloads, bool(args.vs), args.growth)
        if args.vs:
            peer_keys, skipped = resolve_peers(args.vs)
        else:
            peer_keys, skipped = [p.strip() for p in args.peers.split(",") if p.strip()], {}
        if args.plot and importlib.util.find_spec("matplotlib") is None:
            raise ValueError("--plot needs matplotlib (pip install 'shmrt[bench]')")
        if growth or relay or args.vs:
            from .compare import format_all, run_all

            repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
            peer_keys, more = resolve_peers(peer_keys)
            result = run_all(
                core, growth, relay, peers=peer_keys, skipped_peers={**skipped, **more},
                workers=args.workers, repeat=repeat, quick=args.quick, scale=args.scale,
                budget_s=args.growth_budget, json_path=args.json_path, progress=progress,
            )
            text = format_all(result)
        else:
            try:
                result = run(
                    core,
                    args.workers,
                    args.repeat,
                    args.json_path,
                    args.quick,
                    scale=args.scale,
                    peers=peer_keys,
                    progress=progress,
                )
            finally:
                shutdown_all()
            text = format_table(result)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if isinstance(progress, Progress):
            progress.close()  # hand the status line back to the parent
    print(text)
    if args.json_path and not args.progress_state:
        print(f"\nraw samples written to {args.json_path}", file=sys.stderr)
    if args.plot:
        from .plots import write_plots

        for path in write_plots(result, args.plot):
            print(f"chart written: {path}", file=sys.stderr)
    missed = any(w.get("target_status") == "MISS" for w in result["workloads"].values())
    if _failed(result):
        return 1
    if args.check and missed:
        return 1
    return 0
