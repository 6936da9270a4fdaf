"""Process-level robustness (issue 13): Ctrl-C during map, a pool inside a
task, oversized payloads, running(), deep recursion in C, and a coordinator
that dies with a pool built in a thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import helpers
import pytest

import shmrt
from shmrt.layout import Header

pytestmark = pytest.mark.timeout(120)


def run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def test_keyboard_interrupt_during_map_loses_no_future() -> None:
    """SIGINT to the caller at random moments of a map: every future the
    client recorded still resolves, and shutdown(wait=True) returns."""
    proc = run_script("""
        import os, random, signal, threading, time
        import shmrt, helpers
        if __name__ == "__main__":
            rng = random.Random(7)
            with shmrt.Pool(2) as p:
                for trial in range(8):
                    t = threading.Timer(rng.uniform(0.001, 0.05),
                                        lambda: os.kill(os.getpid(), signal.SIGINT))
                    t.start()
                    try:
                        for _ in range(50):
                            list(p.map(helpers.square, range(20000), chunksize=1))
                    except KeyboardInterrupt:
                        pass
                    t.cancel()
                    p._wait_pending()   # bounded below by the subprocess timeout
                    assert not p._pending, len(p._pending)
                    assert p.submit(helpers.square, 3).result(timeout=30) == 9
            print("ok")
    """, timeout=100)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_pool_inside_a_task_is_a_clear_error() -> None:
    with shmrt.Pool(1) as p:
        with pytest.raises(RuntimeError, match="inside a task"):
            p.submit(helpers.make_pool).result(timeout=60)
        assert p.submit(helpers.square, 4).result(timeout=60) == 16


def test_oversized_bytes_refused_before_encoding() -> None:
    with shmrt.Pool(1, max_payload=1 << 20) as p:
        big = b"x" * (64 << 20)
        with pytest.raises(shmrt.PayloadTooLarge, match="at least"):
            p.submit(helpers.echo, big)
        with pytest.raises(shmrt.PayloadTooLarge):
            p.submit(helpers.echo, memoryview(big))
        assert p.submit(helpers.square, 5).result(timeout=60) == 25


def test_running_is_true_while_the_task_runs(tmp_path) -> None:
    marker, release = str(tmp_path / "pid"), str(tmp_path / "release")
    with shmrt.Pool(1) as p:
        f = p.submit(helpers.write_pid_and_wait, marker, release, 60.0)
        end = time.monotonic() + 30
        while not os.path.exists(marker):
            assert time.monotonic() < end
            time.sleep(0.005)
        assert f.running() and not f.done()
        assert not f.cancel()  # running: cannot be cancelled
        open(release, "w").close()
        f.result(timeout=60)
        assert not f.running() and f.done()


def test_deep_recursion_through_c_is_a_recursion_error() -> None:
    with shmrt.Pool(1) as p:
        with pytest.raises(RecursionError):
            p.submit(helpers.deep_repr, 100_000).result(timeout=60)
        assert p.submit(helpers.square, 6).result(timeout=60) == 36
        assert p.statistics()["crashed"] == 0


def test_workers_of_a_pool_built_in_a_thread_die_with_the_coordinator(tmp_path) -> None:
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import threading, time, shmrt, helpers
        if __name__ == "__main__":
            box = {{}}
            t = threading.Thread(target=lambda: box.update(p=shmrt.Pool(2)))
            t.start(); t.join()
            p = box["p"]
            fs = [p.submit(helpers.sleep_then, i, 30.0) for i in range(2)]  # both busy
            open({str(pids_file)!r}, "w").write(" ".join(map(str, p.worker_pids)))
            time.sleep(60)
    """)])
    try:
        end = time.monotonic() + 30
        while not pids_file.exists() or not pids_file.read_text().strip():
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.01)
        time.sleep(0.2)  # the tasks have started (the workers are busy)
        pids = [int(x) for x in pids_file.read_text().split()]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        end = time.monotonic() + 10
        while any(not helpers.process_gone(pid) for pid in pids):
            assert time.monotonic() < end, "workers outlived their coordinator"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    subprocess.run(["shmrt", "prune", "--yes"], capture_output=True, timeout=60)



def test_dropped_pool_is_collected_and_stops() -> None:
    proc = run_script("""
        import gc, os, time, shmrt, helpers
        if __name__ == "__main__":
            p = shmrt.Pool(2)
            assert p.submit(helpers.square, 3).result(timeout=30) == 9
            pids, name = p.worker_pids, p._sname
            del p
            gc.collect()
            end = time.monotonic() + 20
            while any(os.path.exists(f"/proc/{x}") for x in pids) or \\
                    os.path.exists("/dev/shm" + name):
                assert time.monotonic() < end, "a dropped pool kept running"
                time.sleep(0.02)
            print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_exit_without_shutdown_waits_for_pending_futures(tmp_path) -> None:
    """The Executor contract at interpreter exit; and no segment is left
    (repeated: it used to leak one in a few exits out of 75)."""
    for i in range(6):
        marker = tmp_path / f"done{i}"
        proc = run_script(f"""
            import shmrt, helpers
            if __name__ == "__main__":
                p = shmrt.Pool(2)
                f = p.submit(helpers.touch_after, {str(marker)!r}, 0.2)
                print(p._sname, flush=True)
        """)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert marker.exists(), "pending work was dropped at exit"
        assert not os.path.exists("/dev/shm" + proc.stdout.strip())


def test_function_table_does_not_grow_per_client() -> None:
    """Every client registers its functions; an entry with the same pickled
    bytes is reused, so clients coming and going do not fill the table."""

    name = f"fn-{os.getpid()}"
    with shmrt.Pool(1, name=name) as p:
        for _ in range(5):
            c = shmrt.connect(name)
            try:
                assert c.submit(helpers.square, 2).result(timeout=60) == 4
            finally:
                c.shutdown()
        assert p.submit(helpers.square, 3).result(timeout=60) == 9
        assert p._seg.load64(Header.TABLE["fn_count"]) == 1
