"""Who holds an arena block (shmrt/_core/holds.h): a process's views are in
its record's hold table, so a process killed while holding views of blocks
leaks none of them (the crash reclaim recounts every block), and a client
that closes while its arrays are alive keeps its record until they go.

Each test checks the arena's live bytes against a baseline after the pool
settled (function-table entries hold blocks of their own for the life of the
runtime)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import helpers
import pytest

import shmrt
from shmrt import _core

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30.0
N = 100_000  # 800 KB arrays: arena blocks, never inline


def live(p: shmrt.Pool) -> int:
    return p.statistics()["arena"]["live"]


def settle_live(p: shmrt.Pool, want: int) -> int:
    """Wait (bounded) until the arena's live bytes are ``want``; return them.
    Then every carved block must be held or on a free stack (no hole, no
    free block lost)."""
    end = time.monotonic() + TIMEOUT
    while True:
        got, c = live(p), p._seg.arena_census()
        clean = c["error"] == "" and c["free"] == c["on_free_stacks"]
        if (got == want and clean) or time.monotonic() > end:
            break
        time.sleep(0.02)
    assert clean, c
    assert c["held_bytes"] == got, c
    return got


def baseline(p: shmrt.Pool) -> int:
    """Live bytes with the functions the test uses registered and no payload
    in flight."""
    for fn, arg in ((helpers.stash, 0), (helpers.make_array, 1), (helpers.square, 2),
                    (helpers.nbytes_sum, b""), (helpers.echo, 3)):
        p.submit(fn, arg).result(timeout=TIMEOUT)
    p.submit(helpers.call, helpers.square, 3).result(timeout=TIMEOUT)
    helpers.slots_settle(p)
    return live(p)


def test_view_kept_in_worker_keeps_its_block_and_a_kill_frees_it() -> None:
    with shmrt.Pool(1) as p:
        base = baseline(p)
        arr = helpers.make_array(N)
        assert p.submit(helpers.stash, arr).result(timeout=TIMEOUT) == "BlobView"
        helpers.slots_settle(p)
        # the slot is free again; the worker's view still holds the args block
        held = live(p)
        assert held > base
        assert p.statistics()["arena"]["untracked"] == 0
        with pytest.raises(shmrt.WorkerCrashed):
            p.submit(helpers.call, helpers.suicide).result(timeout=TIMEOUT)
        assert settle_live(p, base) == base  # the reclaim dropped the dead worker's hold
        assert p.submit(helpers.square, 7).result(timeout=TIMEOUT) == 49


def test_last_release_frees_in_any_order() -> None:
    """A result array held by the caller and a copy of the same block's view
    in a worker: the block lives until both are gone, whichever goes first."""
    with shmrt.Pool(1) as p:
        base = baseline(p)
        a = p.submit(helpers.make_array, N).result(timeout=TIMEOUT)
        assert helpers.backing(a) == "BlobView"
        helpers.slots_settle(p)
        assert live(p) > base
        expect = int(a.sum())
        del a
        assert settle_live(p, base) == base
        b = p.submit(helpers.make_array, N).result(timeout=TIMEOUT)
        assert int(b.sum()) == expect  # same seed: same data; the block was recycled safely
        del b
        assert settle_live(p, base) == base


def test_client_close_keeps_its_record_while_arrays_live(tmp_path: Path) -> None:
    with shmrt.Pool(1, name=f"holds-{os.getpid()}") as p:
        base = baseline(p)
        c = shmrt.connect(p.name)
        a = c.submit(helpers.make_array, N).result(timeout=TIMEOUT)
        expect = helpers.make_array(N)
        c.shutdown()
        # the array still reads the arena: the closed client's record holds it
        assert np.array_equal(a, expect)
        assert live(p) > base
        del a
        assert settle_live(p, base) == base
        # and the record went back: clients can connect again and again
        for _ in range(20):
            c = shmrt.connect(p.name)
            assert c.submit(helpers.square, 3).result(timeout=TIMEOUT) == 9
            c.shutdown()


CLIENT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import helpers, shmrt
    c = shmrt.connect({name!r})
    arrays = [c.submit(helpers.make_array, {n}, i).result(timeout=30) for i in range(3)]
    print(sum(helpers.backing(a) == "BlobView" for a in arrays), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_client_killed_holding_results_leaks_nothing() -> None:
    with shmrt.Pool(1, name=f"holds-{os.getpid()}") as p:
        base = baseline(p)
        script = CLIENT.format(tests=str(Path(__file__).parent), name=p.name, n=N)
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert r.returncode == -signal.SIGKILL, r.stderr
        assert r.stdout.strip() == "3"
        assert settle_live(p, base) == base
        assert p.submit(helpers.square, 5).result(timeout=TIMEOUT) == 25


def test_hold_table_full_copies_results() -> None:
    """More live result arrays than a hold table has entries: the ones past
    the table are copies (correct, not zero-copy), nothing is refused."""
    n = _core.HOLD_CAP + 20
    with shmrt.Pool(2, arena_size=256 << 20) as p:
        base = baseline(p)
        arrays = list(p.map(helpers.make_array, [9000] * n, chunksize=1))  # 72 KB: out of band
        assert len(arrays) == n
        kinds = [helpers.backing(a) for a in arrays]
        assert kinds.count("BlobView") <= _core.HOLD_CAP
        assert kinds.count("BlobView") > 0 and len(set(kinds)) == 2
        assert all(np.array_equal(a, arrays[0]) for a in arrays)
        del arrays
        assert settle_live(p, base) == base


ARENA_POINTS = [("arena.after_reserve", 1), ("arena.after_carve", 1), ("arena.after_pop", 2),
                ("hold.after_ref", 5), ("hold.after_clear", 5)]
BIG = 3 << 20  # bytes: past the first reservation chunk (2 MiB), so a carve reserves

CLIENT_LOOP = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import helpers, shmrt
    c = shmrt.connect({name!r})
    for i in range(12):
        c.submit(helpers.nbytes_sum, helpers.make_bytes(30_000 + i)).result(timeout=30)
        a = c.submit(helpers.make_array, 9000 + i).result(timeout=30)
        c.submit(helpers.nbytes_sum, helpers.make_bytes({big} + i)).result(timeout=30)
        del a
    print("not killed", flush=True)
""")


@pytest.mark.parametrize("role", ["worker", "client"])
@pytest.mark.parametrize("point,n", ARENA_POINTS, ids=[p for p, _ in ARENA_POINTS])
def test_killed_at_arena_point(point: str, n: int, role: str, tmp_path: Path) -> None:
    """A worker (or a client) killed inside an arena step leaks no block."""
    marker = tmp_path / "died"
    name = f"holds-{os.getpid()}"
    if role == "worker":
        os.environ["SHMRT_CRASH_AT"] = f"{point}:{n}:worker:{marker}"
    try:
        p = shmrt.Pool(2, name=name)
    finally:
        os.environ.pop("SHMRT_CRASH_AT", None)
    with p:
        base = baseline(p)
        if role == "worker":
            for i in range(30):  # results dropped as they come: blocks are recycled
                fs = [p.submit(helpers.nbytes_sum, helpers.make_bytes(20_000 + i)),
                      p.submit(helpers.make_array, 9000 + i),
                      p.submit(helpers.make_array, BIG // 8 + i)]
                for f in fs:
                    try:
                        f.result(timeout=TIMEOUT)
                    except shmrt.WorkerCrashed:
                        pass
            del fs, f  # the futures hold their result arrays
        else:
            env = dict(os.environ, SHMRT_CRASH_AT=f"{point}:{n}:client:{marker}")
            r = subprocess.run([sys.executable, "-c", CLIENT_LOOP.format(
                tests=str(Path(__file__).parent), name=name, big=BIG)], env=env,
                capture_output=True, text=True, timeout=TIMEOUT)
            assert r.returncode == -signal.SIGKILL, (r.stdout, r.stderr)
        assert marker.exists(), f"{point} was never crossed"
        helpers.slots_settle(p)
        assert settle_live(p, base) == base
        assert p.submit(helpers.square, 6).result(timeout=TIMEOUT) == 36


@pytest.mark.parametrize("retries", [0, 1])
def test_worker_killed_between_its_result_block_and_complete(retries: int, tmp_path: Path) -> None:
    """A worker that dies inside finish after storing its result block and
    before COMPLETE: the task is returned by the reclaim; its completion
    (WorkerCrashed, or the re-run's result) must not be read from the dead
    attempt's block, that block must not leak, and a re-run still has its
    arguments (the args block is consumed only at COMPLETE)."""
    marker = tmp_path / "died"
    os.environ["SHMRT_CRASH_AT"] = f"finish.after_result:8:worker:{marker}"
    try:
        p = shmrt.Pool(1, retries=retries)
    finally:
        del os.environ["SHMRT_CRASH_AT"]
    with p:
        base = baseline(p)  # 6 finishes: the 8th crossing is a big result's, below
        outcomes = []
        for i in range(8):  # args and result both in the arena
            try:
                data = helpers.make_bytes(70_000 + i)
                assert p.submit(helpers.echo, data).result(timeout=TIMEOUT) == data
                outcomes.append("ok")
            except shmrt.WorkerCrashed as e:
                assert e.attempts == 1
                outcomes.append("crashed")
        assert marker.exists()
        assert outcomes.count("crashed") == (0 if retries else 1), outcomes
        helpers.slots_settle(p)
        assert settle_live(p, base) == base


def test_a_tasks_arguments_are_dropped_before_its_result_is_delivered(tmp_path: Path) -> None:
    """The worker clears every name that may hold a view of the task's args
    (and so its arena block) before it finishes the task: a caller that
    sends its next big payload as soon as it has a result finds the block
    free (workers/cpu.py Worker.run).  The marker's drop is slowed, so that
    a drop after the delivery would be seen here as a missing file."""
    path = tmp_path / "dropped"
    with shmrt.Pool(1) as p:
        assert p.submit(helpers.count_args, helpers.DropMarker(str(path), 0.3)).result(
            timeout=TIMEOUT) == 1
        assert path.exists(), "the arguments outlived the task's result"
