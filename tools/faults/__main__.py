"""``python -m shmrt.tools.faults``: the kill-storm soak (see :mod:`.soak`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from .soak import SCENARIOS, Outcome, run

COLUMNS = ("kills", "tasks", "crashed", "hung", "lost", "duplicated", "reruns", "leaked")


def _interval(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    a, b = float(lo), float(hi or lo)
    if not 0 < a <= b:
        raise argparse.ArgumentTypeError(f"bad interval {text!r}: want LO-HI milliseconds")
    return a, b


def table(outs: list[Outcome]) -> str:
    head = ["scenario", "interval ms", "retries", *COLUMNS, "served", "s"]
    rows = [[o.scenario, f"{o.interval_ms[0]:g}-{o.interval_ms[1]:g}", str(o.retries),
             *(str(getattr(o, c)) for c in COLUMNS), "yes" if o.served else "NO",
             f"{o.seconds:.1f}"] for o in outs]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shmrt.tools.faults",
                                 description="SIGKILL shmrt's processes at random while they "
                                             "work; report hung, lost, duplicated, leaked.")
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS), metavar="SCENARIO",
                    help=f"any of {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of storm per run")
    ap.add_argument("--interval", type=_interval, action="append",
                    help="kill interval LO-HI in ms (repeatable; default 1-50 and 10-50)")
    ap.add_argument("--retries", type=int, action="append",
                    help="task retries (repeatable; default 0 and 2)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write every outcome as JSON")
    a = ap.parse_args(argv)
    bad = [s for s in a.scenarios if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s): {', '.join(bad)}")
    outs = []
    for name in a.scenarios:
        for iv in a.interval or [(1.0, 50.0), (10.0, 50.0)]:
            for r in a.retries if a.retries is not None else [0, 2]:
                o = run(name, a.duration, iv, r, a.workers, a.seed)
                outs.append(o)
                print(table([o]).splitlines()[-1], file=sys.stderr, flush=True)
                for n in o.notes[:5]:
                    print(f"    {n}", file=sys.stderr)
    print(table(outs))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump([asdict(o) for o in outs], f, indent=1)
    return 0 if all(o.clean for o in outs) else 1


if __name__ == "__main__":
    sys.exit(main())
