"""The kill-storm soak: SIGKILL shmrt's processes at random while they work,
and count what a user would suffer.

Why a tool and not a timed test: faults are measured like speed, by a run
whose figures are reported (``python -m shmrt.tools.faults``); a short
version runs in CI (tests/test_faults.py).  Targets are zero in every
column but ``kills``, ``tasks`` and ``reruns``.

Per scenario it reports

  kills       processes SIGKILLed
  tasks       tasks submitted (their futures are judged)
  hung        futures not resolved 30 s after the killing stopped
  crashed     futures failed with WorkerCrashed: their worker died while
              running them and no retry was left (informational: the
              at-most-once contract allows exactly this; a task that was only
              queued or popped is re-queued by the reclaim, never failed)
  lost        futures that failed with an error other than WorkerCrashed, or
              returned a wrong value
  duplicated  task bodies that finished twice although the task had no
              retries (a retried task may legitimately run again)
  reruns      re-runs of tasks with retries (informational)
  leaked      slots still held once the pool is idle, plus a free counter
              that disagrees with the state words, plus an arena that holds
              more than the function table's blocks or lost a free block
  served      whether the pool still ran new tasks afterwards

Scenarios: ``submit`` (tiny tasks), ``map`` (Executor.map with chunks),
``forkjoin`` (spawn/join trees), ``client`` (a connected client process is
the one killed, over and over), ``startup`` (workers killed while they
start, three times each).  The killer picks a random victim every
``interval`` (uniform between the bounds).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import shmrt
from shmrt import _core

from . import tasks

RESOLVE_S = 30.0  # a future not resolved this long after the storm is hung
SETTLE_S = 15.0
PAD = bytes(20_000)  # an argument too big for a slot: it lives in an arena block


@dataclass
class Outcome:
    scenario: str
    interval_ms: tuple[float, float]
    retries: int
    kills: int = 0
    tasks: int = 0
    hung: int = 0
    lost: int = 0
    duplicated: int = 0
    reruns: int = 0
    crashed: int = 0
    leaked: int = 0
    served: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.hung or self.lost or self.duplicated or self.leaked) and self.served


class Ledger:
    """Two u32 per task id in a temporary file: started, finished."""

    def __init__(self, n: int):
        fd, self.path = tempfile.mkstemp(prefix="shmrt-soak-", suffix=".ledger")
        os.ftruncate(fd, 8 * n)
        os.close(fd)
        self.n = n

    def counts(self, tid: int) -> tuple[int, int]:
        led = tasks._ledger(self.path)
        return led[2 * tid], led[2 * tid + 1]

    def close(self) -> None:
        tasks._maps.pop(self.path, None)
        os.unlink(self.path)


class Killer(threading.Thread):
    """SIGKILL one of ``victims()`` every U(lo, hi) milliseconds."""

    def __init__(self, victims: Callable[[], list[int]], lo_ms: float, hi_ms: float, seed: int):
        super().__init__(name="shmrt-soak-killer", daemon=True)
        self.victims, self.lo, self.hi = victims, lo_ms / 1e3, hi_ms / 1e3
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.kills = 0

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(self.lo, self.hi)):
            pids = self.victims()
            if not pids:
                continue
            try:
                os.kill(self.rng.choice(pids), signal.SIGKILL)
                self.kills += 1
            except ProcessLookupError:
                pass


@contextmanager
def storm(out: Outcome, victims: Callable[[], list[int]], seed: int) -> Iterator[Killer]:
    k = Killer(victims, *out.interval_ms, seed)
    k.start()
    try:
        yield k
    finally:
        k.stop.set()
        k.join()
        out.kills += k.kills


def judge(out: Outcome, led: Ledger, fs: dict[int, Future], expect: Callable[[int], object],
          deadline: float) -> None:
    """Each future against the ledger (see the module docstring)."""
    for tid, f in fs.items():
        try:
            v = f.result(timeout=max(0.0, deadline - time.monotonic()))
            if v != expect(tid):
                out.lost += 1
                out.notes.append(f"task {tid}: wrong value {v!r}")
        except shmrt.WorkerCrashed:
            out.crashed += 1
        except TimeoutError:
            out.hung += 1
        except Exception as e:  # noqa: BLE001 - anything else is a lost task
            out.lost += 1
            out.notes.append(f"task {tid}: {type(e).__name__}: {e}"[:200])
        started, finished = led.counts(tid)
        if finished > 1:
            if out.retries == 0:
                out.duplicated += 1
                out.notes.append(f"task {tid}: finished {finished} times without retries")
            else:
                out.reruns += finished - 1


def settle_and_serve(out: Outcome, p: shmrt.Pool) -> None:
    """Once idle every slot must be free again, and new tasks must run."""
    seg = p._seg
    end = time.monotonic() + SETTLE_S
    while True:
        held = sum(1 for i in range(seg.layout["n_slots"])
                   if seg.slot_info(i)["state"] >> _core.REF_SHIFT)
        free = seg.free_count()
        if (held == 0 and free == seg.layout["n_slots"]) or time.monotonic() > end:
            break
        time.sleep(0.05)
    out.leaked += held + abs(seg.layout["n_slots"] - held - free)
    if held:
        out.notes.append(f"{held} slots held once idle, free counter {free}")
    c = seg.arena_census()  # idle, no payload in flight: only the function table holds blocks
    if c["error"] or c["free"] != c["on_free_stacks"] or c["held_bytes"] != c["function_bytes"]:
        out.leaked += 1
        out.notes.append(f"arena: {c}")
    lints = inspector_errors(p)
    out.leaked += len(lints)
    out.notes += lints[:5]
    try:
        fs = [p.submit(tasks.fib_value, i) for i in range(100)]
        out.served = [f.result(timeout=RESOLVE_S) for f in fs] == [
            tasks.fib_value(i) for i in range(100)]
    except Exception as e:  # noqa: BLE001
        out.notes.append(f"not serving: {type(e).__name__}: {e}"[:200])


def inspector_errors(p: shmrt.Pool) -> list[str]:
    """What ``shmrt inspect --check`` would report as errors on the idle pool
    (refcount leaks, stuck queues, dead owners, impossible states, ...)."""
    from shmrt.tools.inspect.analyze import Options, build_report
    from shmrt.tools.inspect.source import SegmentSource

    with SegmentSource("/dev/shm" + p._sname, p.name) as src:
        rep = build_report(src.read(), Options(leak_after_s=0.0))
    return [f"inspector: {x.name}: {x.message}" for x in rep.lints if x.severity == "error"]


def new_pool(workers: int, retries: int) -> shmrt.Pool:
    return shmrt.Pool(workers, retries=retries, slots=4096, local_queue_capacity=16)


def close_pool(p: shmrt.Pool, out: Outcome) -> None:
    p.shutdown(wait=not out.hung, cancel_futures=True)
    if out.hung:
        p._stop_runtime()


# ---- scenarios -----------------------------------------------------------------------------
def run_submit(out: Outcome, duration: float, workers: int, seed: int) -> None:
    led = Ledger(1_000_000)
    p = new_pool(workers, out.retries)
    fs: dict[int, Future] = {}
    try:
        with storm(out, lambda: p.worker_pids, seed):
            end = time.monotonic() + duration
            tid = 0
            prev: list[Future] = []
            while time.monotonic() < end and tid + 500 <= led.n:
                # every 25th task carries a payload in the arena: a worker
                # killed while running it dies holding a view of its block
                batch = [p.submit(tasks.work, led.path, t, 200, PAD if t % 25 == 0 else b"")
                         for t in range(tid, tid + 500)]
                fs.update(zip(range(tid, tid + 500), batch, strict=True))
                tid += 500
                for f in prev:  # keep about two batches in flight
                    f.exception(timeout=RESOLVE_S)
                prev = batch
        out.tasks = len(fs)
        judge(out, led, fs, lambda t: t, time.monotonic() + RESOLVE_S)
        settle_and_serve(out, p)
    finally:
        close_pool(p, out)
        led.close()


def run_map(out: Outcome, duration: float, workers: int, seed: int) -> None:
    led = Ledger(1_000_000)
    p = new_pool(workers, out.retries)
    try:
        with storm(out, lambda: p.worker_pids, seed):
            end = time.monotonic() + duration
            base = 0
            while time.monotonic() < end and base + 2000 <= led.n:
                tids = range(base, base + 2000)
                base += 2000
                out.tasks += len(tids)
                try:
                    got = list(p.map(tasks.work, [led.path] * len(tids), tids, chunksize=50,
                                     timeout=RESOLVE_S))
                    if got != list(tids):
                        out.lost += 1
                        out.notes.append(f"map {tids.start}: wrong results")
                except shmrt.WorkerCrashed:
                    out.crashed += 1  # a chunk's worker died while running it
                except TimeoutError:
                    out.hung += 1
                    out.notes.append(f"map {tids.start}: hung")
                    break
                except Exception as e:  # noqa: BLE001
                    out.lost += 1
                    out.notes.append(f"map {tids.start}: {type(e).__name__}: {e}"[:200])
        for t in range(base):
            if led.counts(t)[1] > 1:
                if out.retries == 0:
                    out.duplicated += 1
                else:
                    out.reruns += led.counts(t)[1] - 1
        settle_and_serve(out, p)
    finally:
        close_pool(p, out)
        led.close()


def run_forkjoin(out: Outcome, duration: float, workers: int, seed: int) -> None:
    led = Ledger(100_000)
    p = new_pool(workers, out.retries)
    depth = 14
    fs: dict[int, Future] = {}
    try:
        with storm(out, lambda: p.worker_pids, seed):
            end = time.monotonic() + duration
            tid = 0
            while time.monotonic() < end and tid + 4 <= led.n:
                batch = {t: p.submit(tasks.tree, led.path, t, depth) for t in range(tid, tid + 4)}
                fs.update(batch)
                tid += 4
                for f in batch.values():
                    f.exception(timeout=RESOLVE_S)
        out.tasks = len(fs)
        judge(out, led, fs, lambda t: tasks.fib_value(depth), time.monotonic() + RESOLVE_S)
        settle_and_serve(out, p)
    finally:
        close_pool(p, out)
        led.close()


CLIENT = textwrap.dedent("""
    import sys, shmrt
    from shmrt.tools.faults import tasks
    c = shmrt.connect(sys.argv[1])
    print("ready", flush=True)
    while True:
        fs = [c.submit(tasks.fib_value, i % 30) for i in range(300)]
        for f in fs:
            f.result(timeout=60)
""")


def run_client(out: Outcome, duration: float, workers: int, seed: int) -> None:
    name = f"soak-{os.getpid()}-{seed}"
    p = shmrt.Pool(workers, name=name, retries=out.retries, slots=4096, clients=8)
    procs: list[subprocess.Popen[bytes]] = []
    lock = threading.Lock()

    def victims() -> list[int]:
        with lock:
            alive = [c for c in procs if c.poll() is None]
            while len(alive) < 2:  # keep two clients connected
                c = subprocess.Popen([sys.executable, "-c", CLIENT, name],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                c.stdout.readline()  # type: ignore[union-attr]  # connected
                procs.append(c)
                alive.append(c)
            return [c.pid for c in alive]

    try:
        victims()
        mine: list[Future] = []
        with storm(out, victims, seed):
            end = time.monotonic() + duration
            while time.monotonic() < end:  # the coordinator's own work goes on meanwhile
                mine = [p.submit(tasks.fib_value, i) for i in range(200)]
                for i, f in enumerate(mine):
                    out.tasks += 1
                    try:
                        if f.result(timeout=RESOLVE_S) != tasks.fib_value(i):
                            out.lost += 1
                    except TimeoutError:
                        out.hung += 1
                    except Exception as e:  # noqa: BLE001 - no worker dies here
                        out.lost += 1
                        out.notes.append(f"{type(e).__name__}: {e}"[:200])
        with lock:
            for c in procs:
                c.kill()
                c.wait()
                if c.stdout:
                    c.stdout.close()
        settle_and_serve(out, p)
    finally:
        close_pool(p, out)


def run_startup(out: Outcome, duration: float, workers: int, seed: int) -> None:
    """Kill each worker three times while it starts; the pool must serve."""
    rng = random.Random(seed)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        p = new_pool(workers, out.retries)
        try:
            for _ in range(3 * workers):
                time.sleep(rng.uniform(0.0, 0.03))
                pids = p.worker_pids
                if pids:
                    try:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        out.kills += 1
                    except ProcessLookupError:
                        pass
            out.tasks += 100
            settle_and_serve(out, p)
            if not out.served:
                out.lost += 1
                break
        finally:
            close_pool(p, out)


def _relay_run(out: Outcome, duration: float, workers: int, seed: int, who: str) -> None:
    """Packets through a relay while CPU workers and/or send workers die.
    tasks = packets accepted; lost = packets neither delivered nor counted
    crashed, or a flow out of order; duplicated = packets the sink got
    twice (only the one a dying send worker had just handed to the sink may
    be: the output-commit window); hung = flush() not returning."""
    import struct

    fd, sink = tempfile.mkstemp(prefix="shmrt-soak-", suffix=".sink")
    os.close(fd)
    os.environ["SHMRT_SOAK_SINK"] = sink  # replacement send workers inherit it too
    flows = 8
    try:
        r = shmrt.Relay(tasks.transform, tasks.record, workers=workers, send_workers=2,
                        max_inflight=512)  # relay packets are never retried
    except BaseException:
        del os.environ["SHMRT_SOAK_SINK"]
        os.unlink(sink)
        raise
    pool = r._pool

    def victims() -> list[int]:
        cpu = pool.worker_pids if who in ("relay", "cpu") else []
        snd = [p.pid for p in pool._senders if p is not None] if who in ("relay", "sender") else []
        return cpu + snd

    sent = 0
    try:
        with storm(out, victims, seed):
            end = time.monotonic() + duration
            while time.monotonic() < end:
                for f in range(flows):
                    r.send(struct.pack("<I", sent) + b"x" * 60, flow=f, timeout=RESOLVE_S)
                sent += 1
        out.tasks = sent * flows
        if not r.flush(RESOLVE_S):
            out.hung += 1
            out.notes.append("flush() did not return")
        st = r.statistics()
        out.crashed = st["dropped"]["crashed"]
        doubt = st["dropped"]["in_doubt"]
        if doubt:
            out.notes.append(f"{doubt} packets in doubt (a send worker died handing them "
                             "to the sink; counted, not re-sent)")
        data = open(sink, "rb").read()
        if len(data) % 16:  # cannot happen with whole records (tasks.record): say so
            out.lost += 1
            out.notes.append(f"sink: {len(data) % 16} bytes of a torn record")
        by_flow: dict[int, list[int]] = {}
        for f, q in struct.iter_unpack("<QQ", data[:len(data) - len(data) % 16]):
            by_flow.setdefault(f, []).append(q)
        got = 0
        for f in range(flows):
            seqs = by_flow.get(f, [])
            dedup = [q for i, q in enumerate(seqs) if i == 0 or q != seqs[i - 1]]
            out.duplicated += len(seqs) - len(dedup)
            got += len(set(dedup))
            if dedup != sorted(dedup):
                out.lost += 1
                out.notes.append(f"flow {f} out of order")
        missing = max(0, out.tasks - got - out.crashed - doubt)  # in-doubt packets may have arrived
        if missing:
            out.lost += missing
            out.notes.append(f"{missing} packets neither delivered nor counted")
        settle_and_serve(out, pool)
    finally:
        r.close(flush=False)
        del os.environ["SHMRT_SOAK_SINK"]
        os.unlink(sink)


def run_relay(out: Outcome, duration: float, workers: int, seed: int) -> None:
    _relay_run(out, duration, workers, seed, "relay")


def run_sender(out: Outcome, duration: float, workers: int, seed: int) -> None:
    _relay_run(out, duration, workers, seed, "sender")


SCENARIOS: dict[str, Callable[[Outcome, float, int, int], None]] = {
    "relay": run_relay, "sender": run_sender,
    "submit": run_submit, "map": run_map, "forkjoin": run_forkjoin, "client": run_client,
    "startup": run_startup,
}


def run(name: str, duration: float, interval_ms: tuple[float, float], retries: int,
        workers: int = 2, seed: int = 0) -> Outcome:
    out = Outcome(name, interval_ms, retries)
    t0 = time.monotonic()
    try:
        SCENARIOS[name](out, duration, workers, seed)
    except Exception as e:  # noqa: BLE001 - a scenario that blows up is reported, not hidden
        out.lost += 1
        out.notes.append(f"scenario raised {type(e).__name__}: {e}"[:300])
    out.seconds = time.monotonic() - t0
    return out
