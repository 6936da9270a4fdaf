"""Shared arrays (Client.empty / Client.share): numpy arrays in the arena
that tasks receive by reference, never copied, refcounted across processes
(holds.h), freed when the last view anywhere is gone or its holder died."""

from __future__ import annotations

import gc
import time

import helpers
import pytest

import shmrt
from shmrt import codec

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30.0


def live(p: shmrt.Pool) -> int:
    return p.statistics()["arena"]["live"]


def settle_live(p: shmrt.Pool, want: int) -> int:
    end = time.monotonic() + TIMEOUT
    while live(p) != want and time.monotonic() < end:
        time.sleep(0.02)
    c = p._seg.arena_census()
    assert c["error"] == "" and c["free"] == c["on_free_stacks"], c
    return live(p)


def warm(p: shmrt.Pool) -> int:
    """Register the functions the tests use; the live bytes then."""
    small = p.share(np.zeros(4))
    p.submit(helpers.fill, small, 0).result(timeout=TIMEOUT)
    p.submit(helpers.total, small).result(timeout=TIMEOUT)
    p.submit(helpers.stash, 0).result(timeout=TIMEOUT)
    p.submit(helpers.call, helpers.square, 2).result(timeout=TIMEOUT)
    del small
    gc.collect()
    helpers.slots_settle(p)
    return live(p)


def test_empty_and_share_live_in_the_arena() -> None:
    with shmrt.Pool(1) as p:
        a = p.empty((300, 400), "float32")
        assert a.shape == (300, 400) and a.dtype == np.float32 and a.flags.writeable
        assert helpers.backing(a) == "BlobView"
        b = p.share(np.arange(10_000))
        assert helpers.backing(b) == "BlobView" and np.array_equal(b, np.arange(10_000))
        assert p.empty(0).shape == (0,)
        with pytest.raises(ValueError):
            p.empty((-1, 3))


def test_tasks_get_the_same_memory_no_copy() -> None:
    with shmrt.Pool(2) as p:
        a = p.empty(1_000_000)  # 8 MB
        a[:] = 1.0
        # the message is a reference: it fits in the slot, no arena copy
        enc = codec.encode(p._seg, (a,), call=True, kwargs=None, inline_cap=p._inline_cap,
                           max_payload=p._max_payload, share=True)
        assert enc.blob == -1 and enc.size < 512 and len(enc.pins) == 1
        del enc
        assert p.submit(helpers.total, a).result(timeout=TIMEOUT) == 1_000_000.0
        # a worker writes in place; the caller sees it
        assert p.submit(helpers.fill, a, 3.0).result(timeout=TIMEOUT) == "BlobView"
        assert float(a.sum()) == 3_000_000.0
        # slices and views of a shared array go by reference too
        assert p.submit(helpers.fill, a[10:20], 7.0).result(timeout=TIMEOUT) == "BlobView"
        assert a[9] == 3.0 and a[10] == 7.0 and a[19] == 7.0 and a[20] == 3.0
        # without share=, plain arrays are copied (the usual zero-copy arrival)
        plain = np.ones(100_000)
        assert p.submit(helpers.fill, plain, 5.0).result(timeout=TIMEOUT) == "BlobView"
        assert float(plain.sum()) == 100_000.0  # the caller's copy is untouched


def test_dropped_right_after_submit_still_arrives() -> None:
    with shmrt.Pool(1) as p:
        gate = helpers.make_bytes(10)
        fs = []
        for i in range(20):
            a = p.share(np.full(50_000, float(i)))
            fs.append(p.submit(helpers.total, a))
            del a  # the future pins the block until the task is done
        gc.collect()
        assert [f.result(timeout=TIMEOUT) for f in fs] == [50_000.0 * i for i in range(20)]
        del gate


def test_lifetime_across_processes_and_a_killed_holder() -> None:
    with shmrt.Pool(1) as p:
        base = warm(p)
        a = p.share(np.arange(200_000, dtype=np.int64))
        assert p.submit(helpers.stash, a).result(timeout=TIMEOUT) == "BlobView"
        held = live(p)
        assert held > base
        del a  # the caller's view goes first: the worker's keeps the block
        gc.collect()
        helpers.slots_settle(p)
        assert live(p) == held
        with pytest.raises(shmrt.WorkerCrashed):  # the last holder dies
            p.submit(helpers.call, helpers.suicide).result(timeout=TIMEOUT)
        assert settle_live(p, base) == base


def test_last_release_in_the_caller_frees() -> None:
    with shmrt.Pool(1) as p:
        base = warm(p)
        a = p.share(np.arange(200_000, dtype=np.int64))
        assert p.submit(helpers.total, a).result(timeout=TIMEOUT) == float(np.arange(200_000).sum())
        helpers.slots_settle(p)
        assert live(p) > base  # the caller still holds it
        del a
        gc.collect()
        assert settle_live(p, base) == base


def test_too_big_is_a_clear_error() -> None:
    with shmrt.Pool(1, arena_size=4 << 20) as p:
        with pytest.raises(shmrt.PayloadTooLarge, match="does not fit in the arena"):
            p.empty(1 << 20)  # 8 MiB of float64
        keep = p.empty(300_000)  # 2.4 MB of the 4 MiB
        with pytest.raises(shmrt.PayloadTooLarge, match="arena exhausted"):
            p.empty(300_000)
        del keep


def test_inspector_shows_who_holds_shared_arrays() -> None:
    from shmrt.tools.inspect.analyze import Options, build_report
    from shmrt.tools.inspect.source import SegmentSource

    with shmrt.Pool(1) as p:
        a = p.share(np.arange(100_000))
        assert p.submit(helpers.stash, a).result(timeout=TIMEOUT) == "BlobView"
        helpers.slots_settle(p)
        with SegmentSource("/dev/shm" + p._sname, p.name) as src:
            rep = build_report(src.read(), Options(leak_after_s=0.0))
        assert [w.held_blocks for w in rep.workers] == [1]  # the stashed view
        assert [c.held_blocks for c in rep.clients] == [1]  # our array
        del a
        gc.collect()
        with SegmentSource("/dev/shm" + p._sname, p.name) as src:
            rep = build_report(src.read(), Options(leak_after_s=0.0))
        assert [c.held_blocks for c in rep.clients] == [0]


def test_arena_pages_are_reserved_as_they_are_carved() -> None:
    """A new runtime takes /dev/shm pages for its control part only; the
    arena's are reserved as blocks are carved (shmrt/_core/arena.c), before
    anything touches them."""
    import os

    from shmrt import _core

    if not _core.ARENA_LAZY:
        pytest.skip("no MADV_POPULATE_WRITE: the whole segment is reserved at creation")
    mib = 1 << 20
    with shmrt.Pool(1, arena_size=64 * mib) as p:
        path = "/dev/shm" + p._sname
        s0, f0 = p.statistics()["arena"], os.stat(path).st_blocks * 512
        assert s0["carved"] <= s0["reserved"] <= 2 * mib and f0 < 16 * mib
        a = p.share(np.ones(20 * mib // 8))  # 20 MiB: carved, so reserved
        s1, f1 = p.statistics()["arena"], os.stat(path).st_blocks * 512
        assert s1["carved"] >= 20 * mib and s1["reserved"] >= s1["carved"]
        assert s1["reserved"] - s1["carved"] < 2 * mib  # rounded up to a chunk, no more
        assert f1 - f0 >= 20 * mib  # the file's pages exist now
        assert p.submit(helpers.total, a).result(timeout=TIMEOUT) == 20 * mib // 8
