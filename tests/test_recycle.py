"""Worker recycling: max_tasks_per_child and max_worker_memory retire a
worker between tasks; its place goes to the pre-started standby."""

from __future__ import annotations

import helpers
import ppe_tasks as t
import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 60
MiB = 1 << 20

# The fork server is one process per interpreter, kept (like the resource
# tracker the conftest starts): start it now so it is not counted as a leak.
from multiprocessing import forkserver  # noqa: E402

forkserver.ensure_running()


@pytest.mark.parametrize("standby", [True, False])
def test_every_task_completes_and_workers_are_replaced(standby: bool) -> None:
    n, k = 600, 50
    with shmrt.Pool(2, max_tasks_per_child=k, standby=standby) as p:
        fs = [p.submit(t.getpid, i) for i in range(n)]
        pids = [f.result(timeout=TIMEOUT) for f in fs]
        stats = p.statistics()
    assert len(pids) == n
    # each worker process ran at most k of them: at least n / k processes
    assert len(set(pids)) >= n // k
    assert max(pids.count(pid) for pid in set(pids)) <= k
    assert stats["recycled"] >= n // k - 2  # the last ones may not have retired yet
    assert stats["crashed"] == 0


def test_zygote_forks_the_replacement() -> None:
    with shmrt.Pool(1, max_tasks_per_child=2) as p:
        assert p.wait_ready(TIMEOUT)
        first = p.worker_pids[0]
        zygote = p._standby.pid
        got = [p.submit(t.pid_and_ppid).result(timeout=TIMEOUT) for _ in range(4)]
        assert [pid for pid, _ in got[:2]] == [first, first]
        assert got[2] == got[3] and got[2][0] != first
        assert got[2][1] == zygote  # forked by the standby, not spawned
        assert p._standby.pid == zygote  # which stays for the next one


def test_retiring_is_not_a_start_failure() -> None:
    with shmrt.Pool(1, max_tasks_per_child=1) as p:
        got = [p.submit(t.mul, i, 2).result(timeout=TIMEOUT) for i in range(12)]
        assert got == [2 * i for i in range(12)]
        assert not p._broken
        assert p.statistics()["recycled"] >= 11


def test_memory_ceiling_retires_the_worker() -> None:
    with shmrt.Pool(1, max_worker_memory=200 * MiB) as p:
        before = p.submit(t.getpid).result(timeout=TIMEOUT)
        grown = p.submit(t.grow, 300 * MiB).result(timeout=TIMEOUT)  # RSS now > ceiling
        # the check runs every 8 tasks: within a few tasks the worker is gone
        pids = [p.submit(t.getpid).result(timeout=TIMEOUT) for _ in range(10)]
        assert grown == before
        assert pids[-1] != grown
        assert p.statistics()["recycled"] >= 1


def test_no_recycling_below_the_ceiling() -> None:
    with shmrt.Pool(1, max_worker_memory=4096 * MiB) as p:
        pids = {p.submit(t.getpid).result(timeout=TIMEOUT) for _ in range(40)}
        assert len(pids) == 1 and p.statistics()["recycled"] == 0


def test_recycled_worker_crash_still_reported() -> None:
    with shmrt.Pool(2, max_tasks_per_child=3) as p:
        with pytest.raises(shmrt.WorkerCrashed):
            p.submit(helpers.suicide).result(timeout=TIMEOUT)
        assert [p.submit(t.mul, i, i).result(timeout=TIMEOUT) for i in range(10)] == \
            [i * i for i in range(10)]


def test_bad_memory_ceiling() -> None:
    with pytest.raises(ValueError, match="max_worker_memory"):
        shmrt.Pool(1, max_worker_memory=0)


def test_fork_join_under_recycling() -> None:
    with shmrt.Pool(2, max_tasks_per_child=5) as p:
        assert p.submit(helpers.fib, 18, 10).result(timeout=TIMEOUT) == 2584


def test_recycling_under_forkserver() -> None:
    with shmrt.Pool(2, mp_context="forkserver", max_tasks_per_child=10) as p:
        pids = [f.result(timeout=TIMEOUT) for f in [p.submit(t.getpid) for _ in range(100)]]
        assert len(set(pids)) >= 10 and p.statistics()["recycled"] >= 8


def test_forked_worker_crash_is_reported_with_its_signal() -> None:
    with shmrt.Pool(1, max_tasks_per_child=1) as p:
        first = p.submit(t.getpid).result(timeout=TIMEOUT)  # the spawned worker retires
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            p.submit(helpers.suicide).result(timeout=TIMEOUT)  # on a forked one
        assert ei.value.pid != first and ei.value.signal == 9
        assert p.submit(t.pid_and_ppid).result(timeout=TIMEOUT)[1] == p._standby.pid
