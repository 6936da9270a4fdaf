"""Stopping running tasks (kill.c): per-task time limits and force-cancel.
The worker running the task is killed and replaced; only that task fails,
with TaskTimeout / TaskCancelled, and it is never retried."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import helpers
import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)
T = 60.0


def wait_running(f: cf.Future, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not f.running():
        assert time.monotonic() < end, "the task never started"
        time.sleep(0.005)


def test_time_limit_decorator_stops_the_task_only() -> None:
    with shmrt.Pool(2, retries=3) as p:
        slow = p.submit(helpers.limited_sleep, 30.0)
        quick = p.submit(helpers.limited_sleep, 0.01)
        others = [p.submit(helpers.square, i) for i in range(100)]
        with pytest.raises(shmrt.TaskTimeout) as ei:
            slow.result(timeout=T)
        assert isinstance(ei.value, TimeoutError) and ei.value.limit_s == pytest.approx(0.3)
        assert quick.result(timeout=T) == 0.01
        assert [f.result(timeout=T) for f in others] == [i * i for i in range(100)]
        assert p.statistics()["retried"] == 0  # never retried, although retries=3
        assert p.submit(helpers.square, 9).result(timeout=T) == 81  # replaced, serving


def test_pool_wide_task_timeout() -> None:
    with shmrt.Pool(1, task_timeout=0.3) as p:
        f = p.submit(helpers.sleep_then, 1, 30.0)
        with pytest.raises(shmrt.TaskTimeout):
            f.result(timeout=T)
        assert p.submit(helpers.sleep_then, 2, 0.01).result(timeout=T) == 2
    with pytest.raises(ValueError):
        shmrt.Pool(1, task_timeout=0)


def test_kill_a_running_task(tmp_path) -> None:
    marker, release = str(tmp_path / "pid"), str(tmp_path / "release")
    with shmrt.Pool(2, retries=2) as p:
        f = p.submit(helpers.write_pid_and_wait, marker, release, 60.0)
        wait_running(f)
        others = [p.submit(helpers.square, i) for i in range(50)]
        assert f.kill()
        with pytest.raises(shmrt.TaskCancelled) as ei:
            f.result(timeout=T)
        assert isinstance(ei.value, cf.CancelledError)
        pid = int(open(marker).read())
        end = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
            assert time.monotonic() < end, "the worker was not killed"
            time.sleep(0.01)
        assert [g.result(timeout=T) for g in others] == [i * i for i in range(50)]
        assert not f.kill()  # done already
        assert p.statistics()["retried"] == 0


def test_kill_before_start_is_a_cancel(tmp_path) -> None:
    marker, release = str(tmp_path / "pid"), str(tmp_path / "release")
    with shmrt.Pool(1) as p:
        blocker = p.submit(helpers.write_pid_and_wait, marker, release, 60.0)
        wait_running(blocker)
        queued = p.submit(helpers.square, 3)
        assert queued.kill() and queued.cancelled()
        open(release, "w").close()
        blocker.result(timeout=T)
