"""python -m shmrt.tools.check [PROTOCOL ...] [--preemptions N] [--crashes]
[--seed S] [--mutant NAME] [--list]

Explore every schedule of the C core's shared-memory protocols up to a
preemption bound (docs/checking.md).  Exit status 0 when every protocol is
clean (with --mutant: when the mutant is caught), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import build, catalog
from .explore import Outcome, run_explorer, run_relacy


def _report(o: Outcome, out: list[str]) -> None:
    crash = " + 1 crash" if o.crashes else ""
    verdict = "ok" if o.ok else "VIOLATION"
    out.append(f"{o.protocol:<12} bound {o.preemptions}{crash:<10} {o.schedules:>10,} schedules  "
               f"{verdict}")
    if not o.ok:
        out.append(f"  violation: {o.violation}")
        out.extend("  " + line for line in o.counterexample)


def check(protocols: list[str], preemptions: int, crashes: int, seed: int,
          defines: list[str], log: list[str]) -> list[Outcome]:
    """Build once, run each protocol; weak ones through relacy."""
    sc = [p for p in protocols if catalog.scenario(p).kind == "sc"]
    weak = [p for p in protocols if catalog.scenario(p).kind == "weak"]
    results: list[Outcome] = []
    if sc:
        results += run_explorer(build.explorer(defines), sc, preemptions, crashes, seed)
    if weak:
        why = build.ensure_relacy()
        if why:
            log.append(f"weak-memory scenarios skipped: {why}")
        else:
            exe = build.relacy_tests(defines)
            for p in weak:
                results += run_relacy(exe, p, preemptions)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shmrt.tools.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("protocols", nargs="*", metavar="PROTOCOL",
                    help=f"some of: {', '.join(catalog.SCENARIO_NAMES)} (default: all)")
    ap.add_argument("--preemptions", type=int, default=None,
                    help="preemption bound (default 2; with --mutant, the bound CI catches it at)")
    ap.add_argument("--crashes", action="store_true", help="also kill one thread at any access")
    ap.add_argument("--seed", type=int, default=0, help="order in which alternatives are tried")
    ap.add_argument("--mutant", choices=catalog.MUTANT_NAMES, help="re-introduce a known bug")
    ap.add_argument("--list", action="store_true", help="list protocols and mutants")
    a = ap.parse_args(argv)

    if a.list:
        for s in catalog.SCENARIOS:
            print(f"{s.name:<12} {s.about}")
        print()
        for m in catalog.MUTANTS:
            print(f"mutant {m.name:<26} ({m.scenario}) {m.about}")
        return 0

    protocols = a.protocols or list(catalog.SCENARIO_NAMES)
    preemptions = 2 if a.preemptions is None else a.preemptions
    defines: list[str] = []
    crashes = 1 if a.crashes else 0
    m = None
    if a.mutant:
        m = catalog.mutant(a.mutant)
        defines = [m.define]
        preemptions = m.bound if a.preemptions is None else a.preemptions
        protocols = a.protocols or [m.scenario]
        crashes = max(crashes, m.crashes)
    for p in protocols:
        catalog.scenario(p)  # unknown names fail here
    if crashes:
        protocols = [p for p in protocols if catalog.scenario(p).kind == "sc"]

    log: list[str] = []
    t0 = time.monotonic()
    try:
        results = check(protocols, preemptions, crashes, a.seed, defines, log)
    except build.BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 2
    out: list[str] = [f"shmrt model checker: {'mutant ' + m.name if m else 'today' + chr(39) + 's code'}"]
    for o in results:
        _report(o, out)
    out += log
    bad = [o for o in results if not o.ok]
    if m:
        if bad:
            out.append(f"mutant {m.name}: caught after {bad[0].schedules:,} schedules")
        else:
            out.append(f"mutant {m.name}: NOT caught at bound {preemptions}")
    out.append(f"{sum(o.schedules for o in results):,} schedules in {time.monotonic() - t0:.1f} s")
    print("\n".join(out))
    if m:
        return 0 if bad else 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
