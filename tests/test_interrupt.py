"""Ctrl-C (SIGINT to the parent) during map, submit + result, and
shutdown(wait=True): KeyboardInterrupt reaches the main code at once, queued
tasks are cancelled, running ones are stopped (their workers killed), and
nothing is left behind -- not after a second Ctrl-C either.  Each case is a
real subprocess; the deadlines are generous bounds, not speed claims (the
measured delay is printed)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent("""
    import signal, sys, time
    import shmrt, ppe_tasks

    mode, marker = sys.argv[1], sys.argv[2]
    hit = []

    def on_int(signum, frame):  # the default handler, timed
        hit.append(time.monotonic())
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_int)
    if __name__ == "__main__":
        pool = shmrt.Pool(2)
        print("pids", *pool.worker_pids, "seg", pool._sname, flush=True)
        work = ([marker] * 200, [0.5] * 200)
        try:
            if mode == "map":
                with pool:
                    list(pool.map(ppe_tasks.mark_and_sleep, *work, chunksize=1))
            elif mode == "result":
                with pool:
                    fs = [pool.submit(ppe_tasks.mark_and_sleep, m, s) for m, s in zip(*work)]
                    fs[-1].result()
            elif mode == "shutdown":
                fs = [pool.submit(ppe_tasks.mark_and_sleep, m, s) for m, s in zip(*work)]
                pool.shutdown(wait=True)
            elif mode == "uncaught":
                fs = [pool.submit(ppe_tasks.mark_and_sleep, m, s) for m, s in zip(*work)]
                fs[-1].result()
        except KeyboardInterrupt:
            print("caught after", round(time.monotonic() - hit[0], 3),
                  "cancelled", sum(f.cancelled() for f in fs) if mode != "map" else "-",
                  flush=True)
""")


class Child:
    def __init__(self, tmp: Path, mode: str):
        self.marker = tmp / "started"
        script = tmp / "interrupt_me.py"
        script.write_text(SCRIPT)
        self.proc = subprocess.Popen([sys.executable, str(script), mode, str(self.marker)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""

    def expect(self, text: str, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while text.encode() not in self.out:
            left = end - time.monotonic()
            assert left > 0, (text, self.out)
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError((text, self.out, self.proc.stderr.read()))  # type: ignore[union-attr]
                self.out += chunk
        return self.out.decode()

    def wait_started(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not self.marker.exists():
            assert time.monotonic() < end and self.proc.poll() is None
            time.sleep(0.01)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the exit; the rest of stdout joins ``out``."""
        try:
            rest, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.out += rest
        return self.proc.returncode, err.decode()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return False


def _left_behind(pids: list[int], seg: str) -> tuple[list[int], bool]:
    end = time.monotonic() + 10  # exiting processes get a bounded grace period
    while True:
        alive = [p for p in pids if _alive(p)]
        seg_there = os.path.exists(f"/dev/shm/{seg}")
        if (not alive and not seg_there) or time.monotonic() > end:
            return alive, seg_there
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["map", "result", "shutdown"])
def test_ctrl_c_returns_control_at_once(tmp_path: Path, mode: str) -> None:
    c = Child(tmp_path, mode)
    head = c.expect("seg").split()
    pids, seg = [int(x) for x in head[1:3]], c.expect("\n").split()[4]
    c.wait_started()  # tasks are running: 200 x 0.5 s on 2 workers is ~50 s of work
    t0 = time.monotonic()
    os.kill(c.proc.pid, signal.SIGINT)
    c.expect("caught after", timeout=20)
    code, err = c.finish()
    took = time.monotonic() - t0
    line = c.out.decode().splitlines()[-1]
    assert code == 0, err
    assert took < 20, (took, line)
    delay = float(line.split("caught after")[1].split()[0])
    print(f"{mode}: KeyboardInterrupt handled {delay:.3f} s after SIGINT")
    assert delay < 5.0, line  # a generous bound: measured ~0.05 s
    if mode != "map":
        assert int(line.split("cancelled")[1].split()[0]) > 150, line  # queued: cancelled
    assert _left_behind(pids, seg) == ([], False)


def test_second_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    c = Child(tmp_path, "uncaught")
    head = c.expect("seg").split()
    pids, seg = [int(x) for x in head[1:3]], c.expect("\n").split()[4]
    c.wait_started()
    os.kill(c.proc.pid, signal.SIGINT)
    c.expect("caught after", timeout=20)
    os.kill(c.proc.pid, signal.SIGINT)  # again, while the interpreter exits
    code, err = c.finish()
    assert code in (0, 1, -signal.SIGINT), err
    assert _left_behind(pids, seg) == ([], False)


def test_uncaught_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    script = tmp_path / "uncaught.py"
    script.write_text(SCRIPT.replace("except KeyboardInterrupt:", "except ZeroDivisionError:"))
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, str(script), "uncaught", str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        head = proc.stdout.readline().split()
        pids, seg = [int(x) for x in head[1:3]], head[4].decode()
        end = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.01)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"KeyboardInterrupt" in err
    assert took < 20, took  # the ~50 s of queued work is not waited for at exit
    assert _left_behind(pids, seg) == ([], False)
