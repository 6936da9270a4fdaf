"""shmrt.Pool as a ProcessPoolExecutor drop-in: the constructor, the Executor
contract, and the behaviours CPython's test_concurrent_futures checks for
ProcessPoolExecutor (rewritten here, not copied; the documented differences
are in the README's table and are asserted as such)."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import multiprocessing as mp
import os
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool, _RemoteTraceback
from itertools import count
from typing import Any

import helpers
import ppe_tasks as t
import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 60

# The fork server is one process per interpreter, kept (like the resource
# tracker the conftest starts): start it now so it is not counted as a leak.
from multiprocessing import forkserver  # noqa: E402

forkserver.ensure_running()


@pytest.fixture
def pool() -> Iterator[shmrt.Pool]:
    p = shmrt.Pool(max_workers=3)
    try:
        yield p
    finally:
        p.shutdown(wait=True, cancel_futures=True)


# ---- constructor --------------------------------------------------------------


def test_positional_arguments_in_ppe_order() -> None:
    ctx = mp.get_context("spawn")
    with shmrt.Pool(2, ctx, t.init, ("x",)) as p:
        assert p._max_workers == 2 and len(p._processes) == 2
        assert p._mp_context is ctx
        assert set(p.map(lambda _: t.get_init_status(), range(4))) == {"x"}


@pytest.mark.parametrize("number", [0, -1])
def test_max_workers_must_be_positive(number: int) -> None:
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        shmrt.Pool(max_workers=number)
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        shmrt.Pool(workers=number)


def test_workers_is_an_alias() -> None:
    with shmrt.Pool(workers=1) as p:
        assert p._max_workers == 1
    with pytest.raises(TypeError):
        shmrt.Pool(max_workers=1, workers=2)


def test_bad_values_match_ppe_messages() -> None:
    with pytest.raises(TypeError, match="initializer must be a callable"):
        shmrt.Pool(1, initializer=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_tasks_per_child must be an integer"):
        shmrt.Pool(1, max_tasks_per_child=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tasks_per_child must be >= 1"):
        shmrt.Pool(1, max_tasks_per_child=0)


def test_fork_is_a_clear_error() -> None:
    for ctx in ("fork", mp.get_context("fork")):
        with pytest.raises(ValueError, match="'fork' start method"):
            shmrt.Pool(1, mp_context=ctx)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_start_methods(method: str) -> None:
    for ctx in (method, mp.get_context(method)):
        with shmrt.Pool(2, mp_context=ctx) as p:
            assert p._mp_context.get_start_method() == method
            assert p.submit(t.mul, 6, 7).result(timeout=TIMEOUT) == 42
            assert p.submit(lambda: 5).result(timeout=TIMEOUT) == 5


def test_initializer_runs_in_every_worker_before_tasks() -> None:
    with shmrt.Pool(2, initializer=t.init, initargs=("initialized",)) as p:
        fs = [p.submit(t.get_init_status) for _ in range(20)]
        assert {f.result(timeout=TIMEOUT) for f in fs} == {"initialized"}


def test_initializer_gets_multiprocessing_objects() -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with shmrt.Pool(1, initializer=t.init_fail, initargs=(q,)) as p:
        with pytest.raises(cf.BrokenExecutor):
            p.submit(t.get_init_status).result(timeout=TIMEOUT)
    # as in ProcessPoolExecutor, the worker logged the failure on
    # 'concurrent.futures' (here: through the queue the initializer set up)
    rec = q.get(timeout=TIMEOUT)
    assert "ValueError: error in initializer" in rec.getMessage()
    q.close()
    q.join_thread()


def test_failing_initializer_breaks_the_pool_with_its_error() -> None:
    p = shmrt.Pool(2, initializer=t.init_fail)
    try:
        with pytest.raises(shmrt.BrokenPool) as ei:
            p.submit(t.get_init_status).result(timeout=TIMEOUT)
        assert isinstance(ei.value, BrokenProcessPool)
        assert "ValueError: error in initializer" in str(ei.value)
        assert isinstance(ei.value.__cause__, _RemoteTraceback)
        assert "init_fail" in ei.value.__cause__.tb  # the worker's traceback
        deadline = time.monotonic() + TIMEOUT
        while not p._broken:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(cf.BrokenExecutor, match="error in initializer"):
            p.submit(t.get_init_status)
    finally:
        p.shutdown(wait=True)


def test_max_tasks_per_child_like_ppe() -> None:
    with shmrt.Pool(1, max_tasks_per_child=3) as p:
        pids = [p.submit(os.getpid).result(timeout=TIMEOUT) for _ in range(3)]
        assert len(set(pids)) == 1
        assert len(p._processes) == 1
        p.submit(os.getpid).result(timeout=TIMEOUT)
        new = p.submit(os.getpid).result(timeout=TIMEOUT)
        assert new != pids[0]
        assert len(p._processes) == 1


def test_max_tasks_early_shutdown() -> None:
    p = shmrt.Pool(3, max_tasks_per_child=1)
    fs = [p.submit(t.mul, i, i) for i in range(6)]
    p.shutdown()
    assert [f.result() for f in fs] == [i * i for i in range(6)]


# ---- Executor contract ---------------------------------------------------------------


def test_submit_and_keywords(pool: shmrt.Pool) -> None:
    assert pool.submit(pow, 2, 8).result(timeout=TIMEOUT) == 256
    assert pool.submit(t.mul, 2, y=8).result(timeout=TIMEOUT) == 16
    got = pool.submit(t.capture, 1, self=2, fn=3).result(timeout=TIMEOUT)
    assert got == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        pool.submit(fn=t.capture, arg=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        pool.submit(arg=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("chunksize", [None, 1, 3, 6, 40, 50])
def test_map_like_builtin(pool: shmrt.Pool, chunksize: int | None) -> None:
    got = list(pool.map(pow, range(40), range(40), chunksize=chunksize))
    assert got == list(map(pow, range(40), range(40)))


def test_map_bad_chunksize(pool: shmrt.Pool) -> None:
    with pytest.raises(ValueError, match="chunksize must be >= 1"):
        list(pool.map(pow, range(40), range(40), chunksize=-1))


def test_map_exception_at_its_place(pool: shmrt.Pool) -> None:
    it = pool.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(it) == (0, 1)
    assert next(it) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(it)


def test_map_timeout(pool: shmrt.Pool) -> None:
    results = []
    with pytest.raises(cf.TimeoutError):
        for r in pool.map(time.sleep, [0, 0, 3], timeout=1):
            results.append(r)
    assert results == [None, None]


def test_map_result_iterator_keeps_no_reference(pool: shmrt.Pool) -> None:
    for obj in pool.map(t.make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        gc.collect()
        assert wr() is None


def test_no_stale_reference_to_the_callable(pool: shmrt.Pool) -> None:
    obj = t.MyObject()
    collected = threading.Event()
    ref = weakref.ref(obj, lambda _: collected.set())  # noqa: F841
    pool.submit(obj.my_method)
    del obj
    assert collected.wait(TIMEOUT)


def test_as_completed_and_wait(pool: shmrt.Pool) -> None:
    f1 = pool.submit(t.mul, 21, 2)
    f2 = pool.submit(time.sleep, 1.5)
    done, not_done = cf.wait([f1, f2], return_when=cf.FIRST_COMPLETED, timeout=TIMEOUT)
    assert done == {f1} and not_done == {f2}
    f3 = pool.submit(t.sleep_and_raise, 0.2)
    f4 = pool.submit(time.sleep, 3)
    done, not_done = cf.wait([f3, f4], return_when=cf.FIRST_EXCEPTION, timeout=TIMEOUT)
    assert done == {f3} and not_done == {f4}
    fs = [pool.submit(t.mul, i, 2) for i in range(20)]
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=TIMEOUT)) == \
        [2 * i for i in range(20)]
    done, not_done = cf.wait([f2, f4], timeout=TIMEOUT)
    assert not not_done


def test_exception_and_remote_traceback(pool: shmrt.Pool) -> None:
    fut = pool.submit(t.raise_runtime_error)
    with pytest.raises(RuntimeError) as ei:
        fut.result(timeout=TIMEOUT)
    assert type(ei.value) is RuntimeError and ei.value.args == (123,)
    cause = ei.value.__cause__
    assert type(cause) is _RemoteTraceback  # the very class PPE attaches
    assert cause is not None and "raise RuntimeError(123)  # some comment" in cause.tb
    assert shmrt.RemoteTraceback is _RemoteTraceback


def test_cancel_semantics(tmp_path: Any) -> None:
    marker, release = str(tmp_path / "m"), str(tmp_path / "r")
    with shmrt.Pool(1) as p:
        running = p.submit(helpers.write_pid_and_wait, marker, release)
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(marker):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        queued = p.submit(t.mul, 2, 3)
        assert running.running() and not running.cancel()  # running: cannot cancel
        assert queued.cancel() and queued.cancelled() and queued.done()
        with pytest.raises(cf.CancelledError):
            queued.result()
        open(release, "w").close()
        assert running.result(timeout=TIMEOUT) > 0
        assert not running.cancel()  # done: cannot cancel


def test_shutdown_and_context_manager() -> None:
    with shmrt.Pool(2) as p:
        fs = [p.submit(time.sleep, 0.05) for _ in range(20)]
    assert all(f.done() and f.exception() is None for f in fs)
    with pytest.raises(RuntimeError, match="cannot schedule new futures"):
        p.submit(pow, 2, 5)
    p.shutdown()  # again: nothing happens


def test_shutdown_cancel_futures_keeps_dispatched_ones() -> None:
    p = shmrt.Pool(5)
    fs = [p.submit(time.sleep, 0.1) for _ in range(50)]
    p.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    others = [f for f in fs if not f.cancelled()]
    assert len(cancelled) > 20
    assert others and all(f.done() and f.exception() is None for f in others)


def test_shutdown_right_after_a_cancel_does_not_hang() -> None:
    p = shmrt.Pool(1)
    p.submit(int).result(timeout=TIMEOUT)
    p.submit(int).cancel()
    t0 = time.monotonic()
    p.shutdown(wait=True)
    assert time.monotonic() - t0 < 10


def test_map_then_shutdown_without_consuming() -> None:
    p = shmrt.Pool(2)
    p.map(str, [2] * 3)
    p.shutdown()


# ---- map(buffersize=) (Python 3.14) --------------------------------------------------


def test_buffersize_validation(pool: shmrt.Pool) -> None:
    for bad in ("foo", 2.0):
        with pytest.raises(TypeError, match="buffersize must be an integer or None"):
            pool.map(str, range(4), buffersize=bad)  # type: ignore[arg-type]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="buffersize must be None or > 0"):
            pool.map(str, range(4), buffersize=bad)


@pytest.mark.parametrize("buffersize", [1, 2, 4, 8])
def test_buffersize_results(pool: shmrt.Pool, buffersize: int) -> None:
    assert list(pool.map(str, range(4), buffersize=buffersize)) == ["0", "1", "2", "3"]
    assert list(pool.map(t.mul, range(4), range(4), buffersize=buffersize)) == [0, 1, 4, 9]
    got = list(pool.map(t.mul, range(100), range(100), chunksize=7, buffersize=buffersize))
    assert got == [i * i for i in range(100)]


def test_buffersize_infinite_and_empty_inputs(pool: shmrt.Pool) -> None:
    res = pool.map(str, count(), buffersize=2)
    assert [next(res), next(res), next(res)] == ["0", "1", "2"]
    res2 = pool.map(t.mul, count(), count(), buffersize=2, chunksize=5)
    assert [next(res2) for _ in range(3)] == [0, 1, 4]
    assert next(pool.map(str, [], buffersize=2), None) is None
    assert next(pool.map(str, buffersize=2), None) is None


def test_buffersize_reads_only_that_far() -> None:
    ints = iter(range(10))
    p = shmrt.Pool(1)
    p.map(str, ints, buffersize=2)
    p.shutdown(wait=True)
    assert next(ints) == 2


def test_buffersize_bounds_chunks_in_flight(pool: shmrt.Pool) -> None:
    pulled: list[int] = []

    def source() -> Iterator[int]:
        for i in range(1000):
            pulled.append(i)
            yield i

    it = pool.map(t.mul, source(), range(1000), chunksize=10, buffersize=3)
    assert len(pulled) <= 3 * 10 + 1  # three chunks read (plus the look-ahead)
    assert next(it) == 0
    assert len(pulled) <= 4 * 10 + 1  # one more chunk per consumed chunk
    assert sum(it) == sum(i * i for i in range(1000))


# ---- crash semantics: the documented difference -------------------------------------


def test_worker_crash_is_a_broken_process_pool_for_that_task_only() -> None:
    with shmrt.Pool(2) as p:
        with pytest.raises(BrokenProcessPool):
            p.submit(helpers.suicide).result(timeout=TIMEOUT)
        assert p.submit(t.mul, 3, 3).result(timeout=TIMEOUT) == 9  # the pool goes on


def test_executor_surface() -> None:
    for name in ("submit", "map", "shutdown", "__enter__", "__exit__"):
        assert callable(getattr(shmrt.Pool, name))
    assert issubclass(shmrt.BrokenPool, BrokenProcessPool)
    assert issubclass(shmrt.WorkerCrashed, BrokenProcessPool)


# ---- interpreter exit ------------------------------------------------------------------


def _python(code: str) -> Any:
    import subprocess
    import sys
    import textwrap

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=90)


def test_pending_work_finishes_at_interpreter_exit() -> None:
    out = _python("""
        import shmrt, ppe_tasks
        if __name__ == "__main__":
            t = shmrt.Pool(5, mp_context="spawn")
            t.submit(ppe_tasks.sleep_and_print, 1.0, "apple")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "apple"


def test_shutdown_without_wait_then_exit() -> None:
    out = _python("""
        import shmrt, ppe_tasks
        if __name__ == "__main__":
            t = shmrt.Pool(max_workers=3)
            t.submit(ppe_tasks.sleep_and_print, 1.0, "apple")
            t.shutdown(wait=False)
    """)
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert out.stdout.strip() == "apple"


def test_default_worker_count() -> None:
    with shmrt.Pool() as p:
        assert p._max_workers == (getattr(os, "process_cpu_count", os.cpu_count)() or 1)


def test_submit_after_interpreter_shutdown() -> None:
    out = _python("""
        import atexit
        @atexit.register
        def run_last():
            try:
                t.submit(id, None)
            except RuntimeError:
                print("runtime-error")
                raise
        import shmrt
        if __name__ == "__main__":
            t = shmrt.Pool(2)
            t.submit(id, 42).result()
    """)
    assert "RuntimeError: cannot schedule new futures after interpreter shutdown" in out.stderr
    assert out.stdout.strip() == "runtime-error"
