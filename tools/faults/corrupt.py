"""The corruption fuzzer: scribble on a live segment, count what follows.

Why: any process of the same user can write into a runtime's segment.  What
must hold is that corruption is *detected, not amplified*: a check that
fails marks the runtime broken (``RUN_BROKEN``, shmrt/_core/broken.c), every
waiting future resolves (with its result, or with a ``SegmentError`` /
``BrokenPool`` naming the region), ``shutdown()`` returns, and no process
dies of SIGSEGV or SIGBUS.

One trial: a pool of two workers under load (a thread submitting tiny tasks,
some with arguments large enough to live in the arena, plus ``map``); while
it runs, random bytes (``--mode bytes``) or random 64-bit words (``words``)
are written into one region of the live segment through ``/dev/shm`` with
``os.pwrite``; the load goes on briefly, then every future is awaited and
the pool shut down, each with a deadline.  The trial runs in a subprocess
(its own death is counted too), with ``PYTHONFAULTHANDLER`` set so that a
worker dying of a fatal signal says so on stderr.

Regions (from ``seg.layout``): ``header`` (the mutable lines), ``workers``,
``queues`` (local queues), ``inject`` (ring), ``clients`` (the pool's own
client entry and completion ring), ``funcs`` (function-table entries in
use), ``slots`` (carved), ``arena`` (carved).  Writes into a ring land near
its live window half of the time, elsewhere the other half.

Per trial, the worst of: ``segfault`` (a shmrt process died of SIGSEGV or
SIGBUS), ``hang`` (a future unresolved RESOLVE_S after the load stopped, or
``shutdown()`` not back within SHUTDOWN_S), ``clear`` (the runtime was marked
broken or a future failed with an error naming a region), ``vague`` (futures
failed, but nothing named a region: e.g. a task whose corrupted arguments
no longer unpickle), ``wrong`` (a result that is not the expected value:
payload bytes carry no checksum), ``unaffected``.  Targets: no segfault and
no hang, anywhere.

    python -m shmrt.tools.faults.corrupt                 # every region, 10 trials each
    python -m shmrt.tools.faults.corrupt inject slots --trials 50 --mode words
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

REGIONS = ("header", "workers", "queues", "inject", "clients", "funcs", "slots", "arena")
OUTCOMES = ("segfault", "hang", "clear", "vague", "wrong", "unaffected")
# words that name a region in a reason (broken.c's reasons start with one)
REGION_WORDS = ("header", "worker", "local queue", "LIFO", "inject ring", "client",
                "completion ring", "function table", "slot", "arena", "block", "relay",
                "send ring", "waitlist", "free-slot stack")
RESOLVE_S = 30.0
SHUTDOWN_S = 30.0
TRIAL_S = 120.0  # the subprocess as a whole
FATAL = ("Fatal Python error: Segmentation fault", "Fatal Python error: Bus error")


# ---- task bodies (imported by the workers) ----------------------------------
def echo(x: Any) -> Any:
    return x


def square(x: int) -> int:
    return x * x


# ---- one trial, in its own process --------------------------------------------
@dataclass
class Trial:
    region: str
    seed: int
    mode: str
    outcome: str = "unaffected"
    futures: int = 0
    ok: int = 0
    wrong: int = 0
    clear: int = 0
    vague: int = 0
    unresolved: int = 0
    shutdown_hung: bool = False
    segfaults: int = 0
    broken: str | None = None
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _names_region(text: str) -> bool:
    return any(w in text for w in REGION_WORDS)


def _window(seg: Any, region: str, rng: random.Random) -> tuple[int, int]:
    """[start, end) byte range of `region` in the live segment; rings: half
    the time only the cells around their live window."""
    from shmrt import _core
    from shmrt import layout as L

    view = L.View(seg)
    lay, h = view.layout, L.Header.TABLE
    cell = _core.CELL_SIZE

    def ring(off: int, cap: int) -> tuple[int, int]:
        cells = off + L.Ring.TABLE["cells"]
        if rng.random() < 0.5:
            deq = L.Ring.word(seg.load64, off, "deq") & (cap - 1)
            lo = max(0, deq - 64)
            return cells + cell * lo, cells + cell * min(cap, deq + 256)
        return off, cells + cell * cap

    if region == "header":
        return h["run_state"], h["broken_reason"] + _core.BROKEN_REASON_MAX
    if region == "workers":
        return lay.workers_off, lay.workers_off + lay.n_workers * L.Worker.SIZE
    if region == "queues":
        return lay.queues_off, lay.queues_off + lay.n_workers * L.LocalQueue.SIZE
    if region == "inject":
        return ring(lay.inject_off, lay.inject_cap)
    if region == "clients":  # the pool's own entry (client 0) and its completion ring
        base = lay.client_off(0)
        if rng.random() < 0.25:
            return base, base + L.Client.TABLE["ring"]
        return ring(base + L.Client.TABLE["ring"], lay.inject_cap)
    if region == "funcs":
        n = max(1, min(view.word("fn_count"), lay.n_funcs))
        return lay.funcs_off, lay.funcs_off + L.Func.SIZE * n
    if region == "slots":
        n = max(1, min(view.word("slots_carved"), lay.n_slots))
        return lay.slots_off, lay.slots_off + n * lay.slot_size
    if region == "arena":
        return lay.arena_off, lay.arena_off + max(_core.ARENA_MIN_BLOCK, view.word("arena_bump"))
    raise ValueError(f"unknown region {region!r}")


def scribble(path: str, seg: Any, region: str, rng: random.Random, mode: str) -> list[int]:
    """Write random bytes / words into `region` of the segment file at
    `path`; returns the offsets written."""
    lo, hi = _window(seg, region, rng)
    fd = os.open(path, os.O_RDWR)
    offs = []
    try:
        for _ in range(rng.randint(1, 8) if mode == "bytes" else rng.randint(1, 4)):
            if mode == "bytes":
                off = rng.randrange(lo, hi)
                os.pwrite(fd, bytes([rng.randrange(256)]), off)
            else:
                off = rng.randrange(lo, max(lo + 1, hi - 7)) & ~7
                os.pwrite(fd, rng.getrandbits(64).to_bytes(8, "little"), off)
            offs.append(off)
    finally:
        os.close(fd)
    return offs


def _judge(fut: Future, want: Any, t: Trial) -> None:
    exc = fut.exception(timeout=0)
    if exc is None:
        if fut.result() == want:
            t.ok += 1
        else:
            t.wrong += 1
        return
    text = f"{type(exc).__name__}: {exc}"
    from shmrt.errors import BrokenPool, SegmentError

    if isinstance(exc, SegmentError | BrokenPool) and _names_region(str(exc)):
        t.clear += 1
    else:
        t.vague += 1
    if len(t.samples) < 3 and text not in t.samples:
        t.samples.append(text[:200])


def run_trial(region: str, seed: int, mode: str) -> Trial:
    """The scenario (call in a fresh process: it may hang or die)."""
    import shmrt

    t = Trial(region, seed, mode)
    rng = random.Random(seed)
    start = time.monotonic()
    pool = shmrt.Pool(2, arena_size=16 << 20)
    print(json.dumps({"segment": pool._sname}), flush=True)
    pool.wait_ready()
    seen: set[Any] = set()
    futs: list[tuple[Future, Any]] = []
    stop = threading.Event()

    def watch() -> None:  # every worker process the pool ever had
        while not stop.is_set():
            seen.update(p for p in pool._procs if p is not None)
            time.sleep(0.002)

    def load() -> None:
        i = 0
        try:
            while not stop.is_set():
                x: Any = i if i % 5 else bytes([i % 251]) * 3000  # some args in the arena
                futs.append((pool.submit(echo, x), x))
                if i % 400 == 0:
                    xs = list(range(i, i + 200))
                    f = pool.submit(sum, [square(v) for v in xs])  # fn by value
                    futs.append((f, sum(v * v for v in xs)))
                i += 1
                if i % 64 == 0:
                    time.sleep(0.001)
        except Exception as e:  # submit refused: the runtime is broken (or shut)
            t.samples.append(f"submit: {type(e).__name__}: {e}"[:200])

    threading.Thread(target=watch, daemon=True).start()
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        mapped = list(pool.map(square, range(2000), chunksize=50))
        if mapped != [v * v for v in range(2000)]:
            t.wrong += 1
    except Exception as e:
        t.samples.append(f"map: {type(e).__name__}: {e}"[:200])
    time.sleep(0.2)
    scribble("/dev/shm" + pool._sname, pool._seg, region, rng, mode)
    try:
        mf = pool.map(square, range(2000), chunksize=50)
        for _ in range(3):
            time.sleep(0.2)
    except Exception as e:
        mf = iter(())
        t.samples.append(f"map: {type(e).__name__}: {e}"[:200])
    stop.set()
    loader.join()
    end = time.monotonic() + RESOLVE_S
    for f, want in futs:
        try:
            f.exception(timeout=max(0.0, end - time.monotonic()))
        except TimeoutError:
            t.unresolved += 1
            continue
        except Exception:
            pass
        _judge(f, want, t)
    try:  # the second map, to the end (its own futures, same deadline)
        mres = list(mf)
        if mres and mres != [v * v for v in range(2000)]:
            t.wrong += 1
    except TimeoutError:
        t.unresolved += 1
    except Exception as e:
        (t.__setattr__("clear", t.clear + 1) if _names_region(str(e))
         else t.__setattr__("vague", t.vague + 1))
    t.futures = len(futs)
    try:
        t.broken = pool._seg.broken_reason() or pool._broken_reason
    except Exception:
        t.broken = pool._broken_reason
    done = threading.Event()

    def shut() -> None:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except Exception as e:
            t.samples.append(f"shutdown: {type(e).__name__}: {e}"[:200])
        done.set()

    threading.Thread(target=shut, daemon=True).start()
    if not done.wait(SHUTDOWN_S):
        t.shutdown_hung = True
    seen.update(p for p in pool._procs if p is not None)
    for p in seen:
        p.join(5)
        if p.exitcode in (-signal.SIGSEGV, -signal.SIGBUS):
            t.segfaults += 1
    t.seconds = time.monotonic() - start
    t.outcome = classify(t)
    return t


def classify(t: Trial) -> str:
    if t.segfaults:
        return "segfault"
    if t.unresolved or t.shutdown_hung:
        return "hang"
    if t.clear or (t.broken and _names_region(t.broken)):
        return "clear"
    if t.vague:
        return "vague"
    if t.wrong:
        return "wrong"
    return "unaffected"


def _child(region: str, seed: int, mode: str) -> None:
    t = run_trial(region, seed, mode)
    print(json.dumps({"trial": asdict(t)}), flush=True)
    if t.shutdown_hung:  # leave nothing behind; the pool's own exit hooks would hang too
        os._exit(3)


# ---- the driver ------------------------------------------------------------------
def trial_in_subprocess(region: str, seed: int, mode: str, timeout: float = TRIAL_S) -> Trial:
    """One trial in a fresh interpreter; its own death and hang are caught."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    code = (f"from shmrt.tools.faults.corrupt import _child; "
            f"_child({region!r}, {seed}, {mode!r})")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        hung = True
    t = Trial(region, seed, mode)
    segment = None
    for line in out.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if "segment" in d:
            segment = d["segment"]
        if "trial" in d:
            t = Trial(**d["trial"])
    fatal = sum(err.count(f) for f in FATAL)
    t.segfaults = max(t.segfaults, fatal) + (p.returncode in (-signal.SIGSEGV, -signal.SIGBUS))
    if hung or (p.returncode and "trial" not in out):
        if not t.segfaults:
            t.unresolved = t.unresolved or 1
        t.samples.append(f"trial process: {'timed out' if hung else f'exit {p.returncode}'}: "
                         f"{err.strip().splitlines()[-1] if err.strip() else ''}"[:200])
    if segment:  # a killed or hung trial leaves its segment: remove it
        from shmrt.segment import unlink

        unlink(segment)
    t.outcome = classify(t)
    return t


@dataclass
class Summary:
    region: str
    trials: int = 0
    counts: Counter = field(default_factory=Counter)


def table(rows: list[Summary]) -> str:
    head = ["region", "trials", *OUTCOMES]
    body = [[r.region, str(r.trials), *(str(r.counts[o]) for o in OUTCOMES)] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(x, widths, strict=True))
                     for x in [head, *body])


def fuzz(regions: list[str], trials: int, mode: str, seed: int,
         log: Any = None) -> tuple[list[Summary], list[Trial]]:
    rows, every = [], []
    total = Summary("all")
    for region in regions:
        row = Summary(region)
        for k in range(trials):
            m = mode if mode != "mixed" else ("bytes", "words")[k % 2]
            t = trial_in_subprocess(region, seed * 100_003 + REGIONS.index(region) * 1009 + k, m)
            every.append(t)
            row.trials += 1
            row.counts[t.outcome] += 1
            total.trials += 1
            total.counts[t.outcome] += 1
            if log is not None:
                why = t.broken or (t.samples[0] if t.samples else "")
                print(f"{region:8} #{k:<3} {m:5} {t.outcome:10} {t.seconds:5.1f}s  {why[:110]}",
                      file=log, flush=True)
        rows.append(row)
    return [*rows, total], every


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shmrt.tools.faults.corrupt",
                                 description="Scribble on a live segment; count segfaults, "
                                             "hangs and clear errors per region.")
    ap.add_argument("regions", nargs="*", default=list(REGIONS), metavar="REGION",
                    help=f"any of {', '.join(REGIONS)} (default: all)")
    ap.add_argument("--trials", type=int, default=10, help="trials per region")
    ap.add_argument("--mode", choices=("bytes", "words", "mixed"), default="mixed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write every trial as JSON")
    a = ap.parse_args(argv)
    bad = [r for r in a.regions if r not in REGIONS]
    if bad:
        ap.error(f"unknown region(s): {', '.join(bad)}")
    rows, every = fuzz(a.regions, a.trials, a.mode, a.seed, log=sys.stderr)
    print(table(rows))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump([asdict(t) for t in every], f, indent=1)
    return 0 if not (rows[-1].counts["segfault"] or rows[-1].counts["hang"]) else 1


if __name__ == "__main__":
    sys.exit(main())
