"""Corruption is detected, not amplified (issue 14 part 3).

A short run of the corruption fuzzer (python -m shmrt.tools.faults.corrupt):
every region a few trials, no segfault and no hang.  Then one test per kind
of validation site: a scribble there makes the operation fail with a
SegmentError naming the region, the runtime is marked broken, and every
waiting future resolves."""

from __future__ import annotations

import os
import time
from concurrent.futures import wait
from typing import Any

import pytest
from shmrt.tools.faults import corrupt

import shmrt
from shmrt import _core
from shmrt.layout import Header, Slot, Worker

H = Header.TABLE
Q = _core.QUEUE_FIELDS


def test_fuzzer_short_run_no_segfault_no_hang() -> None:
    rows, trials = corrupt.fuzz(list(corrupt.REGIONS), 2, "mixed", seed=7)
    total = rows[-1]
    assert total.trials == 2 * len(corrupt.REGIONS)
    bad = [t for t in trials if t.outcome in ("segfault", "hang")]
    assert not bad, [(t.region, t.mode, t.seed, t.outcome, t.samples) for t in bad]


def _segment(n_slots: int = 64) -> Any:
    """A private segment (no pool): the C entry points on their own."""
    from shmrt.segment import Config, create, random_name, unlink

    seg, name = create(random_name(), Config(n_workers=2, n_slots=n_slots, n_clients=2,
                                             arena_size=1 << 20))
    seg.store64(H["run_state"], _core.RUN_RUNNING)
    return seg, name, unlink


@pytest.fixture
def seg() -> Any:
    s, name, unlink = _segment()
    yield s
    unlink(name)
    s.close()


def _broken(s: Any, region: str) -> None:
    assert s.load64(H["run_state"]) == _core.RUN_BROKEN
    why = s.broken_reason()
    assert why is not None and why.startswith(region), why


def _cells(s: Any, off: int) -> int:
    return off + _core.RING_SIZE


def test_inject_ring_value_out_of_range(seg: Any) -> None:
    lay = seg.layout
    cell = _cells(seg, lay["inject_off"])  # position 0: publish slot index 99999
    seg.store64(cell, (1 << 32) | 99999)
    seg.store64(lay["inject_off"] + Q["enq"], 1)
    with pytest.raises(shmrt.SegmentError, match=r"^inject ring: held slot index 99999 \(n_slots 64\)"):
        seg.refill(0)
    _broken(seg, "inject ring:")
    assert seg.refill(0) == -1  # no more work on a broken runtime


def test_inject_ring_enq_past_empty_cell(seg: Any) -> None:
    seg.store64(seg.layout["inject_off"] + Q["enq"], 5)  # a scribbled hint, nothing pushed
    with pytest.raises(shmrt.SegmentError, match="^inject ring: enq hint 5 is past position 0"):
        seg.inject_pop()
    _broken(seg, "inject ring:")


def test_inject_ring_cell_sequence_behind(seg: Any) -> None:
    cell = _cells(seg, seg.layout["inject_off"])
    seg.store64(cell + 8 * 3, (0xF0000000 << 32))  # position 3's cell: a sequence far behind
    for i in range(3):
        seg.inject_push(i)
    with pytest.raises(shmrt.SegmentError, match="^inject ring: no room for slot 3"):
        seg.inject_push(3)
    _broken(seg, "inject ring:")


def test_local_queue_head_tail_distance(seg: Any) -> None:
    q = seg.layout["queues_off"]
    seg.store64(q + Q["tail"], 100_000)
    with pytest.raises(shmrt.SegmentError, match="^local queue of worker 0: head 0/0 and tail 100000"):
        seg.next_local(0, True)
    _broken(seg, "local queue of worker 0:")


def test_lifo_value_out_of_range(seg: Any) -> None:
    w = seg.layout["workers_off"]
    seg.store64(w + Worker.TABLE["lifo"], 5000 + 1)
    with pytest.raises(shmrt.SegmentError, match="^LIFO slot of worker 0: held slot index 5000"):
        seg.next_local(0, True)
    _broken(seg, "LIFO slot of worker 0:")


def test_slot_state_fails_a_transition(seg: Any) -> None:
    key = seg.submit(0, 0, b"x")
    idx = key & 0xFFFFFFFF
    slot = seg.layout["slots_off"] + idx * seg.layout["slot_size"]
    seg.store64(slot + Slot.TABLE["state"], _core.S_COMPLETE | _core.REF_ONE)
    assert seg.refill(0) == idx
    with pytest.raises(shmrt.SegmentError, match=f"^slot {idx}: state 0x42 cannot begin"):
        seg.begin(0, idx)
    _broken(seg, f"slot {idx}:")


def test_args_length_beyond_the_slot(seg: Any) -> None:
    key = seg.submit(0, 0, b"abc")
    idx = key & 0xFFFFFFFF
    slot = seg.layout["slots_off"] + idx * seg.layout["slot_size"]
    seg.store64(slot + Slot.TABLE["args_len"], 1 << 40)
    assert seg.refill(0) == idx
    with pytest.raises(shmrt.SegmentError, match=f"^slot {idx}: args length 1099511627776 exceeds"):
        seg.begin(0, idx)
    _broken(seg, f"slot {idx}:")


def test_completion_ring_names_another_holders_slot(seg: Any) -> None:
    assert seg.client_claim(os.getpid(), 0) == 0
    key = seg.submit(1, 0, b"x")  # client 1's task ...
    idx = key & 0xFFFFFFFF
    cell = _cells(seg, seg.layout["clients_off"] + Q["ring"])  # ... on client 0's ring
    seg.store64(cell, (1 << 32) | idx)
    seg.store64(seg.layout["clients_off"] + Q["ring"] + Q["enq"], 1)
    # not raised: the harvester thread must live on to fail the futures
    assert seg.harvest(0) == []
    _broken(seg, "client 0 completion ring:")
    assert f"slot {idx} is not a completed task" in seg.broken_reason()
    seg.client_release(0)


def test_free_slot_stack_hands_out_a_slot_in_use(seg: Any) -> None:
    seg.submit(0, 0, b"x")  # slot 0 in use
    seg.store64(H["free_head"], 0 + 1)  # the free stack says slot 0 is free
    with pytest.raises(shmrt.SegmentError, match="^free-slot stack: slot 0 is in use"):
        seg.submit(0, 0, b"y")
    _broken(seg, "free-slot stack:")


def test_arena_block_header_scribbled(seg: Any) -> None:
    off, view = seg.blob_alloc(10_000)
    del view
    key = seg.submit(0, 0, b"", off)  # the slot takes the block
    idx = key & 0xFFFFFFFF
    seg.store64(seg.layout["arena_off"] + off, 0)  # the block's magic
    assert seg.refill(0) == idx
    with pytest.raises(shmrt.SegmentError, match=f"^slot {idx}: args block at arena offset {off}"):
        seg.begin(0, idx)
    _broken(seg, f"slot {idx}:")


def test_arena_free_stack_link_scribbled(seg: Any) -> None:
    off, view = seg.blob_alloc(100)
    del view
    seg.blob_release(off)  # on its class's free stack now
    seg.store64(seg.layout["arena_off"] + off + 8, 7)  # refs: in use after all
    with pytest.raises(shmrt.SegmentError, match="^arena: free stack of class 0 handed out"):
        seg.blob_alloc(100)
    _broken(seg, "arena:")


def test_function_table_entry_scribbled(seg: Any) -> None:
    fid = seg.register_fn(b"pickled callable")
    assert seg.get_fn(fid) == b"pickled callable"
    f = seg.layout["funcs_off"] + 32 * fid
    seg.store64(f + 24, 12345)  # its checksum
    with pytest.raises(shmrt.SegmentError, match=f"^function table: entry {fid}: .* checksum"):
        seg.get_fn(fid)
    _broken(seg, "function table:")


def test_reclaim_word_scribbled_breaks_instead_of_stopping(seg: Any) -> None:
    seg.client_claim(os.getpid(), 0)  # our steps are sections now
    seg.store64(H["reclaim"], 1)  # no reclaim runs: the old "stopped" value
    t = time.monotonic()
    seg.submit(0, 0, b"x")  # does not wait for a reclaim that never ends
    assert time.monotonic() - t < 1.0
    _broken(seg, "header: reclaim word")
    seg.store64(H["reclaim"], 0)
    seg.client_release(0)


def test_reclaim_refuses_a_corrupt_segment(seg: Any) -> None:
    key = seg.submit(0, 0, b"x")
    idx = key & 0xFFFFFFFF
    slot = seg.layout["slots_off"] + idx * seg.layout["slot_size"]
    seg.store64(slot + Slot.TABLE["holder"], 0xDEAD0000)
    before = seg.read(seg.layout["inject_off"], 64)
    r = seg.reclaim([1], [], [])
    assert r["running"] == [] and r["broken"].startswith(f"slot {idx}: holder 0xdead0000")
    _broken(seg, f"slot {idx}:")
    assert seg.read(seg.layout["inject_off"], 64) == before  # nothing repaired


def test_pool_futures_resolve_with_the_region(tmp_path: Any) -> None:
    """A live pool: the inject ring is scribbled while tasks wait; every
    future resolves, shutdown returns, the error names the region."""
    pool = shmrt.Pool(2)
    try:
        pool.wait_ready()
        fs = [pool.submit(time.sleep, 0.05) for _ in range(40)]
        ring = pool._seg.layout["inject_off"]
        deq = pool._seg.load64(ring + Q["deq"])
        pool._seg.store64(ring + Q["enq"], deq + 5000)  # a scribbled hint: pushes go astray
        more = [pool.submit(abs, -i) for i in range(20)]
        done, pending = wait(fs + more, timeout=30)
        assert not pending
        errors = [f.exception() for f in done if f.exception() is not None]
        assert errors, "the scribble went unnoticed"
        assert all(isinstance(e, shmrt.ShmrtError) for e in errors), errors
        assert any("inject ring" in str(e) for e in errors), {str(e) for e in errors}
    except shmrt.SegmentError as e:  # a submit met it first: the same error, raised
        assert "inject ring" in str(e)
    finally:
        t = time.monotonic()
        pool.shutdown(wait=True)
        assert time.monotonic() - t < 30


def test_inspector_names_the_corrupt_region(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from shmrt.tools.inspect import main

    from shmrt.segment import Config, create, random_name, unlink

    name = random_name()
    s, sname = create(name, Config(n_workers=1, n_slots=16, n_clients=1, arena_size=1 << 20))
    try:
        s.store64(H["run_state"], _core.RUN_RUNNING)
        s.mark_broken("inject ring: cell 3 holds slot index 99999 (n_slots 16)")
        assert main([name, "--json", "--sample", "0"]) in (0, 1)
        rep = json.loads(capsys.readouterr().out)
        assert rep["summary"]["run_state"] == "broken"
        assert rep["summary"]["broken_reason"].startswith("inject ring: cell 3")
        corrupt_lints = [x["message"] for x in rep["lints"] if x["name"] == "corrupt"]
        assert any("inject ring" in m for m in corrupt_lints), corrupt_lints
    finally:
        unlink(sname)
        s.close()


def test_a_connected_clients_futures_name_the_region(tmp_path: Any) -> None:
    """Clients are woken when the runtime breaks, and their pending futures
    fail with BrokenPool naming the region (not a bare 'stopped')."""
    name = f"brk-{os.getpid()}"
    with shmrt.Pool(1, name=name) as pool:
        c = shmrt.connect(name)
        try:
            slow = [c.submit(time.sleep, 5) for _ in range(3)]
            pool._seg.mark_broken("client ring 1: cell 0 holds slot index 77 (test)")
            done, pending = wait(slow, timeout=30)
            assert not pending
            msgs = {str(f.exception()) for f in done}
            assert all("client ring 1: cell 0" in m for m in msgs), msgs
        finally:
            c.shutdown(wait=False)
