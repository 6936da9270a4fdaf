"""Protocol stress: local queues shrunk to 4 so that every push overflows to
the inject queue and stealing is constant; every task must run exactly once.
Plus single-process checks of the local queue / inject queue mechanics."""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import helpers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shmrt
from shmrt.segment import Config, create, unlink

pytestmark = pytest.mark.timeout(120)

# 2,000 parents x (1 + 99 children) = 200,000 tasks.  Measured on the 2-core
# development box: about 1 s (pool start-up included), far inside the timeout.
PARENTS = 2_000
CHILDREN = 99
LOCAL_CAP = 4


def test_nested_spawn_stress_exactly_once() -> None:
    total = PARENTS * (1 + CHILDREN)
    t0 = time.monotonic()
    # Slots for every task at once, so that no spawn falls back to running its
    # child inline (workers/cpu.py InlineHandle) and all 200,000 are real
    # tasks.  (Work helping nests parents inside joins, so nearly all
    # 200,000 are live at the same time: see test_many_fork_join_parents.)
    with shmrt.Pool(4, local_queue_capacity=LOCAL_CAP, slots=1 << 18) as p:
        fs = [p.submit(helpers.spawn_ids, i * CHILDREN, CHILDREN) for i in range(PARENTS)]
        results = [f.result(timeout=110) for f in fs]
        elapsed = time.monotonic() - t0
        ids = Counter(x for r in results for x in r)
        # every child id came back exactly once, to the right parent, in order
        assert len(ids) == PARENTS * CHILDREN
        assert all(c == 1 for c in ids.values())
        assert set(ids) == set(range(PARENTS * CHILDREN))
        for i, r in enumerate(results):
            assert r == list(range(i * CHILDREN, (i + 1) * CHILDREN))
        # ... and every task ran exactly once: a second run of a slot would
        # be counted (or refused by the state machine)
        s = p.statistics()
        assert s["submitted"] == total
        assert s["completed"] == total
        assert sum(w["tasks_run"] for w in s["workers"]) == total
        assert s["crashed"] == 0 and s["retried"] == 0
        # the shrunk queue really overflowed into the inject queue
        assert sum(w["overflows"] for w in s["workers"]) > 0
        deadline = time.monotonic() + 10
        while p.statistics()["slots_free"] != s["slots"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.statistics()["slots_free"] == s["slots"]
    print(f"\n{total} tasks in {elapsed:.1f} s "
          f"(steals={sum(w['steals'] for w in s['workers'])}, "
          f"overflows={sum(w['overflows'] for w in s['workers'])})")


def test_many_fork_join_parents() -> None:
    n, k = 6_000, 10
    # enough slots that spawns do not fall back to running children inline
    # (which happens to cap the nesting with the default 16,384 slots)
    p = shmrt.Pool(1, slots=1 << 16)
    try:
        fs = [p.submit(helpers.spawn_ids, i * k, k) for i in range(n)]
        # healthy: ~1 s; stop early at the first failure
        done, not_done = cf.wait(fs, timeout=30, return_when=cf.FIRST_EXCEPTION)
        errors = Counter(type(f.exception()).__name__ for f in done if f.exception())
        assert not errors, f"tasks failed: {dict(errors)}"
        assert not not_done, f"{len(not_done)} of {n} futures never completed"
        assert [f.result() for f in fs] == [list(range(i * k, (i + 1) * k)) for i in range(n)]
    finally:
        p.shutdown(wait=False, cancel_futures=True)
        p._stop_runtime()  # hung tasks or not: stop the workers now


def test_flat_burst_small_queues_exactly_once() -> None:
    n = 20_000
    with shmrt.Pool(4, local_queue_capacity=LOCAL_CAP) as p:
        fs = [p.submit(helpers.echo, i) for i in range(n)]
        assert [f.result(timeout=110) for f in fs] == list(range(n))
        s = p.statistics()
        assert s["completed"] == n == sum(w["tasks_run"] for w in s["workers"])


# ---- single process: the queues themselves ------------------------------------------------


@pytest.fixture
def qseg() -> Iterator[Any]:
    name = f"t-queue-{os.getpid()}-{random.randrange(1 << 30):x}"
    seg, sname = create(name, Config(n_workers=2, n_slots=64, local_cap=LOCAL_CAP,
                                     n_clients=1, n_funcs=4, arena_size=64 * 1024))
    try:
        yield seg
    finally:
        seg.close()
        unlink(sname)


def drain_all(seg: Any) -> list[int]:
    out: list[int] = []
    for wid in (0, 1):
        while (v := seg.next_local(wid, True)) >= 0:
            out.append(v & ~(1 << 30))
    while (v := seg.inject_pop()) >= 0:
        out.append(v)
    return out


def test_local_queue_push_overflow_pop(qseg: Any) -> None:
    pushed = list(range(64))
    for i in pushed:
        qseg.lq_push(0, i)
        assert qseg.queue_len(0) <= LOCAL_CAP
    # overflow moved batches to the inject queue
    assert qseg.inject_len() > 0
    assert qseg.queue_len(0) + qseg.inject_len() == len(pushed)
    got = drain_all(qseg)
    assert sorted(got) == pushed
    assert qseg.queue_len(0) == qseg.queue_len(1) == qseg.inject_len() == 0


def test_local_queue_fifo_for_owner(qseg: Any) -> None:
    for i in range(LOCAL_CAP):
        qseg.lq_push(0, i)
    assert qseg.inject_len() == 0
    assert [qseg.next_local(0, False) for _ in range(LOCAL_CAP)] == list(range(LOCAL_CAP))
    assert qseg.next_local(0, False) == -1


def test_steal_takes_half(qseg: Any) -> None:
    for i in range(LOCAL_CAP):
        qseg.lq_push(0, i)
    first = qseg.steal(1, 0)
    assert first >= 0
    # the thief got half (one returned, the rest in its own queue)
    assert 1 + qseg.queue_len(1) == LOCAL_CAP // 2
    assert qseg.queue_len(0) == LOCAL_CAP // 2
    got = [first] + drain_all(qseg)
    assert sorted(got) == list(range(LOCAL_CAP))


def test_interleaved_ops_every_index_once(qseg: Any) -> None:
    rng = random.Random(12345)
    next_idx = 0
    out: list[int] = []
    for _ in range(20_000):
        op = rng.random()
        if op < 0.45 and next_idx < 64:
            qseg.lq_push(rng.choice((0, 0, 1)), next_idx)
            next_idx += 1
        elif op < 0.6:
            v = qseg.next_local(rng.choice((0, 1)), False)
            if v >= 0:
                out.append(v)
        elif op < 0.75:
            thief = rng.choice((0, 1))
            v = qseg.steal(thief, 1 - thief)
            if v >= 0:
                out.append(v)
        elif op < 0.85:
            v = qseg.refill(rng.choice((0, 1)))
            if v >= 0:
                out.append(v)
        else:
            v = qseg.inject_pop()
            if v >= 0:
                out.append(v)
        assert qseg.queue_len(0) <= LOCAL_CAP and qseg.queue_len(1) <= LOCAL_CAP
        if next_idx == 64 and len(out) == 64:
            # recycle: everything came out exactly once; start a new round
            assert sorted(out) == list(range(64))
            out.clear()
            next_idx = 0
    out += drain_all(qseg)
    assert sorted(out) == list(range(next_idx))


OPS = st.lists(st.sampled_from(["push0", "push1", "pop0", "pop1", "steal01", "steal10",
                                "refill0", "refill1", "inject"]), max_size=300)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_queue_ops_model(ops: list[str]) -> None:
    """Any sequence of operations: no index is lost or duplicated, and the
    owner's queue never exceeds its capacity."""
    name = f"t-qm-{os.getpid()}-{random.randrange(1 << 30):x}"
    seg, sname = create(name, Config(n_workers=2, n_slots=64, local_cap=LOCAL_CAP,
                                     n_clients=1, n_funcs=4, arena_size=64 * 1024))
    try:
        live: set[int] = set()
        free = list(range(64))
        for op in ops:
            v = -1
            if op.startswith("push"):
                if not free:
                    continue
                i = free.pop()
                seg.lq_push(int(op[-1]), i)
                live.add(i)
                continue
            if op.startswith("pop"):
                v = seg.next_local(int(op[-1]), False)
            elif op.startswith("steal"):
                v = seg.steal(int(op[-2]), int(op[-1]))
            elif op.startswith("refill"):
                v = seg.refill(int(op[-1]))
            else:
                v = seg.inject_pop()
            if v >= 0:
                assert v in live, f"{op} returned {v}, which is not queued"
                live.remove(v)
                free.append(v)
            assert seg.queue_len(0) <= LOCAL_CAP and seg.queue_len(1) <= LOCAL_CAP
            assert seg.queue_len(0) + seg.queue_len(1) + seg.inject_len() == len(live)
        rest = drain_all(seg)
        assert sorted(rest) == sorted(live)
    finally:
        seg.close()
        unlink(sname)
