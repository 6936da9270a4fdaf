"""shmrt.Pool as a concurrent.futures.Executor: results, errors, shutdown,
payloads, type fidelity, fork-join, statistics, slot accounting."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import numpy as np
import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 60  # generous bound for any single result on a noisy 2-core box


@pytest.fixture
def pool() -> Iterator[shmrt.Pool]:
    p = shmrt.Pool(2)
    try:
        yield p
    finally:
        p.shutdown(wait=True, cancel_futures=True)


def wait_until(pred: Any, timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll ``pred`` until true or the deadline (a deadline, not a sleep)."""
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(step)


slots_settle = helpers.slots_settle


# ---- basics ---------------------------------------------------------------------


def test_submit_result(pool: shmrt.Pool) -> None:
    assert pool.submit(helpers.square, 12).result(timeout=TIMEOUT) == 144
    assert pool.submit(pow, 3, 4).result(timeout=TIMEOUT) == 81  # a builtin


def test_kwargs(pool: shmrt.Pool) -> None:
    assert pool.submit(helpers.add, 1, b=2, c=3).result(timeout=TIMEOUT) == 6
    assert pool.submit(helpers.add, a=5, c=1).result(timeout=TIMEOUT) == 6
    with pytest.raises(TypeError):
        pool.submit(helpers.add, 1, nope=2).result(timeout=TIMEOUT)


def test_many_results_in_order(pool: shmrt.Pool) -> None:
    fs = [pool.submit(helpers.square, i) for i in range(1000)]
    assert [f.result(timeout=TIMEOUT) for f in fs] == [i * i for i in range(1000)]


def test_bad_pool_arguments() -> None:
    with pytest.raises(ValueError):
        shmrt.Pool(0)
    with pytest.raises(ValueError):
        shmrt.Pool(1, retries=-1)


# ---- map ------------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_map(pool: shmrt.Pool, chunksize: int | None) -> None:
    got = list(pool.map(helpers.square, range(100), chunksize=chunksize))
    assert got == [i * i for i in range(100)]


@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_map_empty(pool: shmrt.Pool, chunksize: int | None) -> None:
    assert list(pool.map(helpers.square, [], chunksize=chunksize)) == []


def test_map_of_no_iterable_is_empty(pool: shmrt.Pool) -> None:
    assert list(pool.map(helpers.square)) == []  # as builtin map over zip()


@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_map_multiple_iterables(pool: shmrt.Pool, chunksize: int | None) -> None:
    a = list(range(30))
    b = list(range(100, 125))  # shorter: stops at the shortest, like map()
    got = list(pool.map(helpers.add, a, b, chunksize=chunksize))
    assert got == list(map(helpers.add, a, b))
    assert len(got) == 25


class _ListSub(list):  # type: ignore[type-arg]
    pass


_MAP_INPUTS: dict[str, Any] = {
    "range": lambda: range(3, 250, 7), "range-down": lambda: range(50, -50, -3),
    "tuple": lambda: tuple(range(90)), "list": lambda: list(range(90)),
    "list-subclass": lambda: _ListSub(range(40)), "iterator": lambda: iter(range(60)),
}


@pytest.mark.parametrize("kind", list(_MAP_INPUTS))
@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_map_inputs(pool: shmrt.Pool, kind: str, chunksize: int | None) -> None:
    expect = [i * i for i in _MAP_INPUTS[kind]()]
    got = list(pool.map(helpers.square, _MAP_INPUTS[kind](), chunksize=chunksize))
    assert got == expect


def test_map_chunks_of_a_sequence_are_its_slices(pool: shmrt.Pool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A range is sent as ranges (no list built, nothing pickled per item);
    a list as list slices taken at the call: changing it afterwards changes
    nothing."""
    sent: list[Any] = []
    submit = pool.submit

    def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(args[-1])
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(pool, "submit", spy)
    got = pool.map(helpers.square, range(0, 100, 2), chunksize=10)
    assert sent == [range(i, i + 20, 2) for i in range(0, 100, 20)]
    assert list(got) == [i * i for i in range(0, 100, 2)]
    sent.clear()
    items = list(range(25))
    got = pool.map(helpers.square, items, chunksize=10)
    items[:] = [0] * 25
    assert [type(c) for c in sent] == [list, list, list]
    assert list(got) == [i * i for i in range(25)]


def test_map_with_timeout(pool: shmrt.Pool) -> None:
    got = list(pool.map(helpers.square, range(50), timeout=TIMEOUT, chunksize=3))
    assert got == [i * i for i in range(50)]


def test_map_timeout_expires(pool: shmrt.Pool) -> None:
    it = pool.map(helpers.sleep_then, range(4), [2.0] * 4, timeout=0.05, chunksize=1)
    with pytest.raises(cf.TimeoutError):
        list(it)


def test_map_bad_chunksize(pool: shmrt.Pool) -> None:
    with pytest.raises(ValueError):
        list(pool.map(helpers.square, range(3), chunksize=0))


def test_map_propagates_exception(pool: shmrt.Pool) -> None:
    with pytest.raises(ValueError, match="in map"):
        list(pool.map(helpers.boom, ["in map"], chunksize=1))


# ---- exceptions -----------------------------------------------------------------


def test_exception_reraised_with_remote_traceback(pool: shmrt.Pool) -> None:
    fut = pool.submit(helpers.boom, "kaput")
    with pytest.raises(ValueError, match="kaput") as ei:
        fut.result(timeout=TIMEOUT)
    assert type(ei.value) is ValueError
    cause = ei.value.__cause__
    assert isinstance(cause, shmrt.RemoteTraceback)
    text = str(cause)
    assert "boom" in text  # the worker's frame: function name ...
    assert "helpers.py" in text  # ... and file
    assert "ValueError: kaput" in text
    assert isinstance(fut.exception(timeout=TIMEOUT), ValueError)


def test_custom_exception_type_and_fields(pool: shmrt.Pool) -> None:
    with pytest.raises(helpers.HelperError) as ei:
        pool.submit(helpers.raise_helper_error, 7, "seven").result(timeout=TIMEOUT)
    assert type(ei.value) is helpers.HelperError
    assert (ei.value.code, ei.value.msg) == (7, "seven")
    assert "raise_helper_error" in str(ei.value.__cause__)


def test_unpicklable_exception_still_reported(pool: shmrt.Pool) -> None:
    with pytest.raises(shmrt.ShmrtError, match="ValueError"):
        pool.submit(helpers.raise_unpicklable).result(timeout=TIMEOUT)
    assert pool.submit(helpers.square, 3).result(timeout=TIMEOUT) == 9


# ---- futures integration -------------------------------------------------------------


def test_as_completed(pool: shmrt.Pool) -> None:
    fs = {pool.submit(helpers.square, i): i for i in range(200)}
    seen = set()
    for f in cf.as_completed(fs, timeout=TIMEOUT):
        assert f.result() == fs[f] ** 2
        seen.add(fs[f])
    assert seen == set(range(200))


def test_wait(pool: shmrt.Pool) -> None:
    fs = [pool.submit(helpers.square, i) for i in range(100)]
    done, not_done = cf.wait(fs, timeout=TIMEOUT)
    assert not not_done and len(done) == 100
    bad = pool.submit(helpers.boom, "first")
    done, _ = cf.wait([bad], timeout=TIMEOUT, return_when=cf.FIRST_EXCEPTION)
    assert bad in done and isinstance(bad.exception(), ValueError)


def test_done_callback(pool: shmrt.Pool) -> None:
    got: list[int] = []
    ev = threading.Event()

    def cb(f: cf.Future) -> None:
        got.append(f.result())
        if len(got) == 50:
            ev.set()

    for i in range(50):
        pool.submit(helpers.square, i).add_done_callback(cb)
    assert ev.wait(TIMEOUT)
    assert sorted(got) == sorted(i * i for i in range(50))


def test_asyncio(pool: shmrt.Pool) -> None:
    async def main() -> None:
        assert await asyncio.wrap_future(pool.submit(helpers.square, 9)) == 81
        assert await pool.run(helpers.add, 1, 2, c=3) == 6
        rs = await asyncio.gather(*(pool.run(helpers.square, i) for i in range(30)))
        assert rs == [i * i for i in range(30)]
        with pytest.raises(ValueError, match="async"):
            await pool.run(helpers.boom, "async")

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


# ---- shutdown / cancel ------------------------------------------------------------


def test_shutdown_wait_completes_everything() -> None:
    p = shmrt.Pool(2)
    fs = [p.submit(helpers.sleep_then, i, 0.01) for i in range(40)]
    p.shutdown(wait=True)
    assert all(f.done() for f in fs)
    assert [f.result() for f in fs] == list(range(40))
    with pytest.raises(RuntimeError):
        p.submit(helpers.square, 1)


def test_shutdown_cancel_futures() -> None:
    p = shmrt.Pool(2)
    fs = [p.submit(helpers.sleep_then, i, 0.05) for i in range(400)]  # ~10 s of work
    assert wait_until(lambda: any(f.running() or f.done() for f in fs) or
                      p.statistics()["completed"] > 0, TIMEOUT)
    p.shutdown(wait=True, cancel_futures=True)
    assert all(f.done() for f in fs)
    cancelled = [f for f in fs if f.cancelled()]
    assert cancelled, "nothing was cancelled"
    for i, f in enumerate(fs):
        if f.cancelled():
            with pytest.raises(cf.CancelledError):
                f.result()
        else:
            assert f.result() == i
    with pytest.raises(RuntimeError):
        p.submit(helpers.square, 1)


def test_shutdown_no_wait_then_runtime_stops() -> None:
    p = shmrt.Pool(2)
    f = p.submit(helpers.square, 5)
    p.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        p.submit(helpers.square, 1)
    assert f.result(timeout=TIMEOUT) == 25
    # the runtime goes away by itself (the leak fixture checks processes and
    # the segment); wait for it here so the failure is attributed precisely
    name = p.name
    assert wait_until(lambda: not os.path.exists(f"/dev/shm/shmrt.{os.geteuid()}.{name}"), 20)


def test_cancel_queued_task_frees_its_slot(tmp_path: Path) -> None:
    marker, release = str(tmp_path / "m"), str(tmp_path / "r")
    with shmrt.Pool(1) as p:
        blocker = p.submit(helpers.write_pid_and_wait, marker, release)
        assert wait_until(lambda: os.path.exists(marker), TIMEOUT)
        queued = p.submit(helpers.square, 4)
        assert queued.cancel()
        assert queued.cancelled()
        Path(release).touch()
        assert blocker.result(timeout=TIMEOUT) == int(Path(marker).read_text())
        assert p.submit(helpers.square, 5).result(timeout=TIMEOUT) == 25
        assert slots_settle(p) == (p.statistics()["slots"],) * 2


def test_submit_after_shutdown_raises(pool: shmrt.Pool) -> None:
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(helpers.square, 1)


def test_context_manager() -> None:
    with shmrt.Pool(2) as p:
        assert isinstance(p, shmrt.Pool)
        assert p.submit(helpers.square, 3).result(timeout=TIMEOUT) == 9
        name = p.name
    with pytest.raises(RuntimeError):
        p.submit(helpers.square, 1)
    with pytest.raises(shmrt.RuntimeNotFound):  # the segment is gone
        shmrt.segment.attach(name)


# ---- payloads ---------------------------------------------------------------------

MiB = 1 << 20


def _payload(kind: str, n: int) -> Any:
    data = helpers.make_bytes(n)
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    return np.frombuffer(data, dtype=np.uint8).copy().view(np.int64)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


@pytest.fixture
def big_pool() -> Iterator[shmrt.Pool]:
    # 16 MiB messages take 32 MiB arena blocks (power-of-two classes with a
    # header): an echo holds an args block and a result block at once
    p = shmrt.Pool(2, arena_size=256 * MiB)
    try:
        yield p
    finally:
        p.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("size", [MiB, 16 * MiB], ids=["1MiB", "16MiB"])
@pytest.mark.parametrize("kind", ["bytes", "bytearray", "ndarray"])
def test_payload_roundtrip(big_pool: shmrt.Pool, kind: str, size: int) -> None:
    v = _payload(kind, size)
    # warm up so the function table block is in the baseline
    assert big_pool.submit(helpers.echo, 1).result(timeout=TIMEOUT) == 1
    live0 = big_pool.statistics()["arena"]["live"]
    r = big_pool.submit(helpers.echo, v).result(timeout=TIMEOUT)
    assert _same(r, v)
    if kind == "ndarray":
        # zero copy: the result array sits on the shared arena block
        assert helpers.backing(r) == "BlobView"
    del r
    # every arena block of the round trip is released again
    assert wait_until(lambda: big_pool.statistics()["arena"]["live"] == live0, 10), \
        big_pool.statistics()["arena"]


@pytest.mark.parametrize("size", [MiB, 16 * MiB], ids=["1MiB", "16MiB"])
def test_ndarray_argument_is_zero_copy_in_worker(big_pool: shmrt.Pool, size: int) -> None:
    import hashlib

    a = _payload("ndarray", size)
    dtype, shape, digest, where = big_pool.submit(helpers.array_digest, a).result(timeout=TIMEOUT)
    assert (dtype, shape) == (str(a.dtype), a.shape)
    assert digest == hashlib.sha256(a.tobytes()).hexdigest()
    assert where == "BlobView"  # the worker's array is a view of the arena block


def test_result_array_intact(big_pool: shmrt.Pool) -> None:
    r = big_pool.submit(helpers.make_array, 2 * MiB, 42).result(timeout=TIMEOUT)
    assert isinstance(r, np.ndarray) and r.dtype == np.int64 and r.shape == (2 * MiB,)
    assert np.array_equal(r, helpers.make_array(2 * MiB, 42))
    assert helpers.backing(r) == "BlobView"
    r2 = r.copy()
    del r
    assert np.array_equal(r2, helpers.make_array(2 * MiB, 42))


def test_16mib_echo_with_default_arena(pool: shmrt.Pool) -> None:
    v = _payload("bytes", 16 * MiB)
    assert pool.submit(helpers.echo, v).result(timeout=TIMEOUT) == v


def test_payload_too_large_at_submit() -> None:
    with shmrt.Pool(2, max_payload=MiB) as p:
        with pytest.raises(shmrt.PayloadTooLarge):
            p.submit(helpers.echo, b"x" * (2 * MiB))
        with pytest.raises(shmrt.PayloadTooLarge):
            p.submit(helpers.echo, np.zeros(2 * MiB, dtype=np.uint8))
        assert p.submit(helpers.square, 7).result(timeout=TIMEOUT) == 49
        # under the limit still goes through
        v = b"y" * (MiB // 2)
        assert p.submit(helpers.echo, v).result(timeout=TIMEOUT) == v
        # a result over the limit fails that task only
        with pytest.raises(shmrt.PayloadTooLarge):
            p.submit(helpers.make_bytes, 2 * MiB).result(timeout=TIMEOUT)
        assert p.submit(helpers.square, 8).result(timeout=TIMEOUT) == 64
        assert slots_settle(p) == (p.statistics()["slots"],) * 2


# what pickle raises for objects it cannot serialise
UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError)


@pytest.mark.parametrize("make", [threading.Lock, lambda: [1, threading.Lock()]],
                         ids=["lock", "nested-lock"])
def test_unpicklable_argument(pool: shmrt.Pool, make: Any) -> None:
    with pytest.raises(UNPICKLABLE) as ei:
        pool.submit(helpers.echo, make())
    assert "pickle" in str(ei.value).lower()
    assert pool.submit(helpers.square, 6).result(timeout=TIMEOUT) == 36
    assert slots_settle(pool) == (pool.statistics()["slots"],) * 2


def test_lambda_function_and_argument_go_by_value(pool: shmrt.Pool) -> None:
    # not picklable by reference: sent by value (cloudpickle), see codec.py
    assert pool.submit(lambda x: x + 1, 1).result(timeout=TIMEOUT) == 2
    assert pool.submit(helpers.call, lambda: 5).result(timeout=TIMEOUT) == 5


def test_unpicklable_function(pool: shmrt.Pool) -> None:
    lock = threading.Lock()
    with pytest.raises(UNPICKLABLE) as ei:
        pool.submit(lambda: lock.locked())  # by value, but it closes over a lock
    assert "pickle" in str(ei.value).lower()
    assert pool.submit(helpers.square, 6).result(timeout=TIMEOUT) == 36


# ---- type fidelity ----------------------------------------------------------------


def _shape(v: Any) -> Any:
    """Type structure of a value, recursively."""
    t = type(v).__name__
    if isinstance(v, (list, tuple)):
        return (t, [_shape(x) for x in v])
    if isinstance(v, dict):
        return (t, sorted((repr(k), _shape(k), _shape(x)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return (t, sorted(repr(x) for x in v))
    return t


FIDELITY = [
    2**100, -(2**100), 2**64, 2**64 - 1, -(2**63), -(2**63) - 1, 0, True, False, None, 1.5,
    float("inf"), -0.0, "text", "", "ünï©ødé", b"\x00\xff", bytearray(b"ab"), 3 + 4j,
    (1, 2), [1, 2], (), [], (1,), [[1], (2,)], ((1, [2, (3, [4])]),), {"a": 1}, {1: "a"},
    {"t": (1, [2, (3,)]), "l": [(), []]}, {(1, 2): [3]}, {1, 2}, frozenset({3}),
    [1, "a", b"b", None, 2.5, True], [2**70], ["x"] * 5000,
]


@pytest.mark.parametrize("v", FIDELITY, ids=[f"v{i}" for i in range(len(FIDELITY))])
def test_type_fidelity(pool: shmrt.Pool, v: Any) -> None:
    r = pool.submit(helpers.echo, v).result(timeout=TIMEOUT)
    assert r == v or (isinstance(v, float) and repr(r) == repr(v))
    assert _shape(r) == _shape(v)
    if isinstance(v, float):
        assert repr(r) == repr(v)  # -0.0 stays -0.0
    # the argument arrives in the worker with its own type, too
    assert pool.submit(helpers.type_name, v).result(timeout=TIMEOUT) == type(v).__name__
    assert pool.submit(helpers.echo, x=v).result(timeout=TIMEOUT) == v


def test_tuple_list_dict_preserved(pool: shmrt.Pool) -> None:
    r = pool.submit(helpers.echo, ((1, 2), [3, 4], {"k": (5,)})).result(timeout=TIMEOUT)
    assert type(r) is tuple
    assert type(r[0]) is tuple and type(r[1]) is list and type(r[2]) is dict
    assert type(r[2]["k"]) is tuple
    args = pool.submit(helpers.echo_args, (1,), [2], {"3": 3}).result(timeout=TIMEOUT)
    assert [type(a) for a in args] == [tuple, list, dict]


def test_surrogate_string_roundtrip(pool: shmrt.Pool) -> None:
    v = "a\udc80b"
    assert pool.submit(helpers.echo, v).result(timeout=TIMEOUT) == v


# ---- fork-join, spawn ------------------------------------------------------------------


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def test_fork_join_fib(pool: shmrt.Pool) -> None:
    assert pool.submit(helpers.fib, 22, 12).result(timeout=TIMEOUT) == _fib(22) == 17711
    assert slots_settle(pool) == (pool.statistics()["slots"],) * 2


def test_spawn_outside_worker_raises() -> None:
    with pytest.raises(shmrt.NotInWorker):
        shmrt.spawn(helpers.square, 2)


def test_spawn_child_exception_propagates(pool: shmrt.Pool) -> None:
    with pytest.raises(ValueError, match="child"):
        pool.submit(helpers.spawn_and_join, helpers.boom, "child").result(timeout=TIMEOUT)
    assert slots_settle(pool) == (pool.statistics()["slots"],) * 2


# ---- __main__ functions -----------------------------------------------------------------


def test_functions_defined_in_main_script(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import shmrt

        def triple(x):
            return 3 * x

        class Box:
            def __init__(self, v):
                self.v = v

        def unbox(b):
            return b.v + 1

        if __name__ == "__main__":
            with shmrt.Pool(2) as pool:
                print(sum(pool.map(triple, range(10))))
                print(pool.submit(triple, 5).result(timeout=60))
                print(pool.submit(unbox, Box(41)).result(timeout=60))
            print("done")
    """))
    env = dict(os.environ)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=90, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["135", "15", "42", "done"], (out.stdout, out.stderr)


# ---- statistics, slot accounting --------------------------------------------------------


def test_statistics(pool: shmrt.Pool) -> None:
    n = 500
    fs = [pool.submit(helpers.square, i) for i in range(n)]
    assert sum(f.result(timeout=TIMEOUT) for f in fs) == sum(i * i for i in range(n))
    s = pool.statistics()
    assert s["submitted"] >= n
    assert s["completed"] >= n
    assert s["crashed"] == 0
    assert s["slots"] >= 1 and 0 <= s["slots_free"] <= s["slots"]
    assert len(s["workers"]) == 2
    # a worker registers its pid when it has started (maybe after the burst)
    assert wait_until(lambda: sorted(w["pid"] for w in pool.statistics()["workers"]) ==
                      sorted(pool.worker_pids), TIMEOUT), (pool.statistics()["workers"],
                                                           pool.worker_pids)
    assert sum(w["tasks_run"] for w in s["workers"]) >= n
    assert s["arena"]["size"] > 0 and 0 <= s["arena"]["live"] <= s["arena"]["size"]


def test_no_slot_leak_after_burst(pool: shmrt.Pool) -> None:
    n = 20_000  # more than the 16,384 slots: exercises submit backpressure too
    fs = [pool.submit(helpers.square, i) for i in range(n)]
    assert [f.result(timeout=TIMEOUT) for f in fs] == [i * i for i in range(n)]
    assert slots_settle(pool) == (pool.statistics()["slots"],) * 2
    s = pool.statistics()
    assert s["completed"] >= n and s["submitted"] >= n
