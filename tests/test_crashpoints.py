"""Every crash point, every role: a process SIGKILLed at the Nth crossing of a
named point (shmrt/_core/crash.h) never hangs a future, loses a task or
leaks a slot, and the runtime keeps serving.

How: ``SHMRT_CRASH_AT=<point>:<n>:<role>:<marker>`` in the environment of the
processes of one role makes the first of them to cross ``point`` for the
``n``-th time kill itself there (the marker file makes it one death per
run).  The workload is made to cross every point: tiny submits, a map, and a
fork-join tree on a pool with local queues of 4 (steals, LIFO swaps and
overflows happen all the time).  Then:

1. every future resolves within the timeout: its result, or WorkerCrashed
   for a task whose body was running when its worker died (retries=0), or
   for a fork-join tree whose child was;
2. once idle, every slot is free again (a census of the state words, not
   just the free counter), the inject queue is empty, and the idle word
   matches the workers' states;
3. the pool still runs new tasks;
4. the process did die (the marker exists), so the point was really crossed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import helpers
import pytest

import shmrt
from shmrt import _core
from shmrt.layout import Header

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30.0

# (point, n): the n-th crossing, late enough that the pool is busy
WORKER_POINTS = [
    ("alloc.after_pop", 5), ("submit.after_fill", 5), ("pop.after_pop", 20),
    ("steal.after_claim", 2), ("steal.after_finish", 2), ("lifo.after_xchg", 5),
    ("overflow.after_claim", 2), ("begin.after_running", 20), ("finish.after_complete", 20),
    ("finish.after_result", 20), ("finish.after_deliver", 20), ("free.after_last_ref", 20),
    ("park.after_state", 2),
    ("search.after_idle", 3), ("worker.after_find", 20), ("worker.in_task", 20),
    ("worker.after_finish", 20),
]
CLIENT_POINTS = [
    ("alloc.after_pop", 30), ("submit.after_fill", 30), ("submit.after_push", 30),
    ("client.after_submit", 30), ("harvest.after_pop", 10), ("free.after_last_ref", 10),
]


def test_every_point_is_tested() -> None:
    """A new crash point must be added to a scenario here (the sender points
    are exercised in test_relay_crash.py, the arena's in test_holds.py)."""
    from test_holds import ARENA_POINTS
    from test_relay_crash import POINTS as RELAY_POINTS

    covered = {p for p, _ in WORKER_POINTS} | {p for p, _ in CLIENT_POINTS}
    covered |= {p[0] for p in RELAY_POINTS} | {p for p, _ in ARENA_POINTS}
    assert set(_core.crash_points()) == covered


@contextmanager
def armed(point: str, n: int, role: str, marker: Path) -> Iterator[None]:
    """Arm processes started inside the block (they inherit the environment)."""
    os.environ["SHMRT_CRASH_AT"] = f"{point}:{n}:{role}:{marker}"
    try:
        yield
    finally:
        del os.environ["SHMRT_CRASH_AT"]


def census(p: shmrt.Pool) -> dict[str, int]:
    """Slots by what their state word says (refs > 0 means held)."""
    seg = p._seg
    held = sum(1 for i in range(seg.layout["n_slots"])
               if seg.slot_info(i)["state"] >> _core.REF_SHIFT)
    s = p.statistics()
    return {"held": held, "free_count": s["slots_free"], "slots": s["slots"],
            "inject": s["inject_len"]}


def settle(p: shmrt.Pool) -> dict[str, int]:
    """Wait (bounded) until no slot is held; return the census."""
    end = time.monotonic() + TIMEOUT
    while True:
        c = census(p)
        if (c["held"] == 0 and c["free_count"] == c["slots"]) or time.monotonic() > end:
            return c
        time.sleep(0.02)


def idle_consistent(p: shmrt.Pool) -> bool:
    s = p.statistics()
    parked = sum(1 for w in s["workers"] if w["state"] == "parked")
    searching = sum(1 for w in s["workers"] if w["state"] in ("searching", "notified"))
    return s["unparked"] == len(s["workers"]) - parked and s["searching"] == searching


def resolve_all(fs: list, what: str) -> tuple[int, int]:
    """(ok, crashed); anything else, or a hang, fails the test."""
    ok = crashed = 0
    for f in fs:
        try:
            f.result(timeout=TIMEOUT)
            ok += 1
        except shmrt.WorkerCrashed:
            crashed += 1
        except TimeoutError:
            pytest.fail(f"{what}: a future hung")
    return ok, crashed


def check_healthy(p: shmrt.Pool) -> None:
    assert [f.result(timeout=TIMEOUT) for f in [p.submit(helpers.square, i) for i in range(50)]] \
        == [i * i for i in range(50)]
    c = settle(p)
    assert c["held"] == 0 and c["free_count"] == c["slots"], c
    assert c["inject"] == 0, c
    end = time.monotonic() + TIMEOUT
    while not idle_consistent(p):  # workers pass through states; settle first
        assert time.monotonic() < end, p.statistics()
        time.sleep(0.02)


@pytest.mark.parametrize("point,n", WORKER_POINTS, ids=[p for p, _ in WORKER_POINTS])
def test_worker_killed_at(point: str, n: int, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    with armed(point, n, "worker", marker):
        p = shmrt.Pool(2, local_queue_capacity=4, slots=256)
    with p:
        fs = [p.submit(helpers.square, i) for i in range(150)]
        trees = [p.submit(helpers.fib, 15, 8) for _ in range(3)]
        mapped = p.map(helpers.square, range(400), chunksize=5)
        ok, crashed = resolve_all(fs, point)
        for f in fs:
            if not f.exception():
                assert f.result() == fs.index(f) ** 2
        tok, tcrashed = resolve_all(trees, point)
        assert crashed + tcrashed <= 3, "one death fails at most the tasks it was running"
        try:
            assert list(mapped) == [i * i for i in range(400)]
        except shmrt.WorkerCrashed:
            pass  # the batch the worker was running
        for t in trees:
            if not t.exception():
                assert t.result() == 610
        # Points crossed by chance (steals) or when idle (park): keep the pool
        # alternating between busy and idle until the death happened.
        end = time.monotonic() + TIMEOUT
        while not marker.exists() and time.monotonic() < end:
            more = [p.submit(helpers.fib, 13, 6) for _ in range(2)]
            resolve_all(more, point)
            time.sleep(0.005)  # let a worker park (the point is in the park path)
        assert marker.exists(), f"{point} was never crossed {n} times"
        check_healthy(p)
        assert p._seg.load64(Header.TABLE["reclaims"]) >= 1


def test_worker_killed_while_finishing_is_not_rerun(tmp_path: Path) -> None:
    """A worker dies after writing a result over its task's arguments, before
    the task is COMPLETE: with retries left the task must not run again on
    the overwritten arguments (it decoded the result as its arguments: a
    wrong result or an error); it fails with WorkerCrashed."""
    marker = tmp_path / "died"
    with armed("finish.after_result", 20, "worker", marker):
        p = shmrt.Pool(2, retries=2)
    with p:
        fs = [p.submit(helpers.square, i) for i in range(200)]
        crashed = 0
        for i, f in enumerate(fs):
            try:
                assert f.result(timeout=TIMEOUT) == i * i
            except shmrt.WorkerCrashed:
                crashed += 1
        assert marker.exists(), "finish.after_result was never crossed 20 times"
        assert crashed == 1, "the task its worker was finishing, and only that one"
        check_healthy(p)


CLIENT = textwrap.dedent("""
    import sys, helpers, shmrt
    c = shmrt.connect(sys.argv[1])
    fs = [c.submit(helpers.square, i) for i in range(200)]
    print(sum(f.result(timeout=30) for f in fs))
""")


@pytest.mark.parametrize("point,n", CLIENT_POINTS, ids=[p for p, _ in CLIENT_POINTS])
def test_client_killed_at(point: str, n: int, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    name = f"cp-{os.getpid()}-{tmp_path.name[-12:]}"
    with shmrt.Pool(2, name=name, local_queue_capacity=4, slots=256) as p:
        mine = [p.submit(helpers.square, i) for i in range(100)]
        with armed(point, n, "client", marker):
            proc = subprocess.run([sys.executable, "-c", CLIENT, name], timeout=TIMEOUT,
                                  capture_output=True, text=True)
        assert proc.returncode == -9, (proc.returncode, proc.stderr[-2000:])
        assert marker.exists()
        # the coordinator's own futures are untouched
        assert [f.result(timeout=TIMEOUT) for f in mine] == [i * i for i in range(100)]
        check_healthy(p)  # the dead client's slots, ring cells and entry came back
        # ... and its entry can be claimed again
        c = shmrt.connect(name)
        try:
            assert c.submit(helpers.square, 7).result(timeout=TIMEOUT) == 49
        finally:
            c.shutdown()
