"""Crashes: a worker killed mid-task fails only that task (or retries it), the
pool heals; a killed coordinator takes its workers with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import helpers
import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 60


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(step)


def wait_pid_file(path: str, timeout: float = TIMEOUT) -> int:
    assert wait_until(lambda: os.path.exists(path), timeout), f"{path} never appeared"
    return int(Path(path).read_text())


slots_settle = helpers.slots_settle


def pool_heals(p: shmrt.Pool, dead_pid: int, n_workers: int) -> None:
    """The dead worker is replaced (same count, new pid) and tasks run."""
    assert wait_until(lambda: len(p.worker_pids) == n_workers and dead_pid not in p.worker_pids,
                      TIMEOUT), p.worker_pids
    fs = [p.submit(helpers.square, i) for i in range(200)]
    assert [f.result(timeout=TIMEOUT) for f in fs] == [i * i for i in range(200)]
    # the replacement registers and serves tasks too
    assert wait_until(lambda: sorted(w["pid"] for w in p.statistics()["workers"]) ==
                      sorted(p.worker_pids), TIMEOUT)


process_gone = helpers.process_gone


# ---- a worker dies -----------------------------------------------------------------------


def test_worker_sigkilled_mid_task(tmp_path: Path) -> None:
    marker, release = str(tmp_path / "pid"), str(tmp_path / "release")
    with shmrt.Pool(2) as p:
        before = [p.submit(helpers.square, i) for i in range(200)]
        victim = p.submit(helpers.write_pid_and_wait, marker, release, 90.0)
        pid = wait_pid_file(marker)  # the task is running, on this process
        assert pid in p.worker_pids
        during = [p.submit(helpers.square, i) for i in range(200, 400)]
        os.kill(pid, signal.SIGKILL)
        after = [p.submit(helpers.square, i) for i in range(400, 600)]

        with pytest.raises(shmrt.WorkerCrashed) as ei:
            victim.result(timeout=TIMEOUT)
        e = ei.value
        assert e.pid == pid
        assert e.signal == signal.SIGKILL == 9
        assert e.attempts == 1
        assert str(pid) in str(e)

        fs = before + during + after
        assert [f.result(timeout=TIMEOUT) for f in fs] == [i * i for i in range(600)]
        pool_heals(p, pid, 2)
        s = p.statistics()
        assert s["crashed"] == 1
        assert slots_settle(p) == (s["slots"],) * 2


def test_worker_sigkilled_with_spawned_children_queued(tmp_path: Path) -> None:
    """The dead worker's local queue (its spawned children) is reclaimed:
    no slot leaks, nothing else lost."""
    marker, release = str(tmp_path / "pid"), str(tmp_path / "release")
    with shmrt.Pool(2) as p:
        victim = p.submit(helpers.spawn_then_block, 50, marker, release)
        pid = wait_pid_file(marker)
        others = [p.submit(helpers.square, i) for i in range(300)]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            victim.result(timeout=TIMEOUT)
        assert (ei.value.pid, ei.value.signal) == (pid, 9)
        assert [f.result(timeout=TIMEOUT) for f in others] == [i * i for i in range(300)]
        pool_heals(p, pid, 2)
        assert slots_settle(p) == (p.statistics()["slots"],) * 2


def test_worker_killed_by_sigterm_reports_signal() -> None:
    with shmrt.Pool(2) as p:
        f = p.submit(helpers.suicide, signal.SIGTERM)
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            f.result(timeout=TIMEOUT)
        assert ei.value.signal == signal.SIGTERM
        pool_heals(p, ei.value.pid, 2)


def test_worker_exit_reports_exit_code() -> None:
    with shmrt.Pool(2) as p:
        f = p.submit(helpers.exit_now, 3)
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            f.result(timeout=TIMEOUT)
        assert ei.value.signal is None
        assert ei.value.exitcode == 3
        pool_heals(p, ei.value.pid, 2)


def test_crash_without_retries_fails_once(tmp_path: Path) -> None:
    marker = str(tmp_path / "died")
    with shmrt.Pool(2) as p:
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            p.submit(helpers.die_once, marker).result(timeout=TIMEOUT)
        assert ei.value.signal == 9 and ei.value.attempts == 1
        assert ei.value.pid == int(Path(marker).read_text())
        assert p.statistics()["retried"] == 0


def test_pool_retries_rerun_task(tmp_path: Path) -> None:
    marker = str(tmp_path / "died")
    with shmrt.Pool(2, retries=1) as p:
        assert p.submit(helpers.die_once, marker).result(timeout=TIMEOUT) == "ok"
        first_pid = int(Path(marker).read_text())
        s = p.statistics()
        assert s["retried"] == 1 and s["crashed"] == 0
        pool_heals(p, first_pid, 2)
        assert slots_settle(p) == (s["slots"],) * 2


def test_retry_decorator_reruns_task(tmp_path: Path) -> None:
    marker = str(tmp_path / "died")
    with shmrt.Pool(2) as p:  # no pool-wide retries: the decorator's budget applies
        assert p.submit(helpers.die_once_retried, marker).result(timeout=TIMEOUT) == "ok"
        assert p.statistics()["retried"] == 1
        pool_heals(p, int(Path(marker).read_text()), 2)


def test_retries_exhausted() -> None:
    with shmrt.Pool(2, retries=1) as p:
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            p.submit(helpers.suicide).result(timeout=TIMEOUT)
        assert ei.value.attempts == 2 and ei.value.signal == 9
        s = p.statistics()
        assert s["retried"] == 1 and s["crashed"] == 1
        assert wait_until(lambda: len(p.worker_pids) == 2, TIMEOUT)
        assert p.submit(helpers.square, 3).result(timeout=TIMEOUT) == 9
        assert slots_settle(p) == (s["slots"],) * 2


def test_spawned_child_kills_its_worker() -> None:
    with shmrt.Pool(2) as p:
        with pytest.raises(shmrt.WorkerCrashed) as ei:
            p.submit(helpers.spawn_suicide).result(timeout=TIMEOUT)
        assert ei.value.signal == 9
        pool_heals(p, ei.value.pid, 2)
        assert slots_settle(p) == (p.statistics()["slots"],) * 2


def test_many_crashes_in_a_row() -> None:
    with shmrt.Pool(2) as p:
        for _ in range(5):
            f = p.submit(helpers.suicide)
            good = [p.submit(helpers.square, i) for i in range(50)]
            with pytest.raises(shmrt.WorkerCrashed):
                f.result(timeout=TIMEOUT)
            assert [g.result(timeout=TIMEOUT) for g in good] == [i * i for i in range(50)]
        assert wait_until(lambda: len(p.worker_pids) == 2, TIMEOUT)
        assert p.statistics()["crashed"] == 5
        assert p.submit(helpers.square, 4).result(timeout=TIMEOUT) == 16
        assert slots_settle(p) == (p.statistics()["slots"],) * 2


# ---- the coordinator dies ------------------------------------------------------------------

COORD_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import shmrt, helpers

    def main():
        p = shmrt.Pool(2, name=sys.argv[1])
        fs = [p.submit(helpers.getpid) for _ in range(50)]
        for f in fs:
            f.result(timeout=60)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            pids = sorted(w["pid"] for w in p.statistics()["workers"])
            if pids == sorted(p.worker_pids):
                break
            time.sleep(0.01)
        print(" ".join(map(str, p.worker_pids)), flush=True)
        time.sleep(600)

    if __name__ == "__main__":
        if sys.argv[2] == "thread":  # no parent-death signal: workers poll
            t = threading.Thread(target=main)
            t.start()
            t.join()
        else:
            main()
""")


@pytest.mark.parametrize("mode", ["main", "thread"])
def test_coordinator_sigkilled_workers_exit(tmp_path: Path, mode: str) -> None:
    name = f"coordkill-{os.getpid()}-{mode}"
    script = tmp_path / "coord.py"
    script.write_text(COORD_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), name, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    pids: list[int] = []
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip(), proc.stderr.read() if proc.poll() is not None else "no output"  # type: ignore[union-attr]
        pids = [int(x) for x in line.split()]
        assert len(pids) == 2 and all(not process_gone(x) for x in pids)
        proc.kill()
        proc.wait(timeout=30)
        t0 = time.monotonic()
        exited = wait_until(lambda: all(process_gone(x) for x in pids), 2.0)
        took = time.monotonic() - t0
        assert exited, f"workers {[x for x in pids if not process_gone(x)]} still alive " \
                       f"{took:.2f}s after the coordinator was killed"
        # the segment stays for post-mortem inspection; a client refuses it
        seg = shmrt.segment.attach(name, writable=False)
        try:
            assert seg.layout["n_workers"] == 2
        finally:
            seg.close()
        with pytest.raises(shmrt.RuntimeNotFound):
            shmrt.connect(name)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for x in pids:  # never leave our workers behind, even on failure
            if not process_gone(x):
                try:
                    os.kill(x, signal.SIGKILL)
                except OSError:
                    pass
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
        shmrt.segment.unlink(shmrt.segment.shm_name(name))
