"""The relay: backpressure without lost wakeups, per-flow order, faults."""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import time
from pathlib import Path

import pytest
import relaysink

import shmrt
from shmrt.segment import Config, create, shm_name, unlink

pytestmark = pytest.mark.timeout(120)


def _wait_until(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_sixteen_blocked_producers_no_lost_wakeups(tmp_path: Path) -> None:
    """16 producer processes block on a budget of 4 behind a slow consumer.
    Every producer finishes, every registration is accounted for by a wake
    (or a successful re-check), and no waiter ever slept through free
    capacity (pending_with_capacity == 0; the waiters' 100 ms safety timeout
    would catch and count it)."""
    name = f"t16-{os.getpid()}"
    seg, sname = create(name, Config(n_workers=1, n_slots=64, n_send=1, send_cap=4, inflight=4,
                                     n_waiters=32, arena_size=1 << 20))
    n_prod, per = 16, 25
    out = tmp_path / "acq"
    ctx = mp.get_context("spawn")
    procs = []
    try:
        while seg.relay_acquire(0.0, True) == 0:  # drain the budget: everyone must wait
            pass
        procs = [ctx.Process(target=relaysink.producer, args=(sname, per, str(out)))
                 for _ in range(n_prod)]
        for p in procs:
            p.start()
        _wait_until(lambda: seg.relay_stats()["registrations"] >= n_prod, 30,
                    "all producers to register")
        total = n_prod * per
        got = lambda: out.stat().st_size if out.exists() else 0  # noqa: E731
        for i in range(total):  # slow consumer: one unit at a time, wait for its taker
            seg.relay_release(1)
            _wait_until(lambda i=i: got() >= i + 1, 5, f"unit {i} to be taken")
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        assert out.read_bytes() == b"1" * total
        st = seg.relay_stats()
        assert st["pending_with_capacity"] == 0
        assert st["timeouts"] == 0
        # a wait longer than a slice withdraws its registration and registers again
        assert st["registrations"] == (st["wakes"] + st["recheck"] - st["passed_on"]
                                       + st["withdrawn"])
        assert st["wakes"] > 0
        assert st["avail"] == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        seg.close()
        unlink(sname)
    assert not os.path.exists("/dev/shm" + shm_name(name))


def _read_records(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes() if path.exists() else b""
    return [struct.unpack_from("<QI", data, i) for i in range(0, len(data), 12)]


def test_per_flow_order_under_random_delays(tmp_path: Path, monkeypatch) -> None:
    sink = tmp_path / "sink"
    monkeypatch.setenv("SHMRT_TEST_SINK_FILE", str(sink))
    flows, per = 8, 20_000
    with shmrt.Relay(relaysink.jitter, relaysink.record, workers=2, max_inflight=512) as r:
        for seq in range(per):
            for f in range(flows):
                r.send(struct.pack("<I", seq) + b"x" * 60, flow=f)
        assert r.flush(60)
        st = r.statistics()
    recs = _read_records(sink)
    assert len(recs) == flows * per
    by_flow: dict[int, list[int]] = {}
    for f, seq in recs:
        by_flow.setdefault(f, []).append(seq)
    assert sorted(by_flow) == list(range(flows))
    for f, seqs in by_flow.items():
        assert seqs == list(range(per)), f"flow {f} out of order or incomplete"
    assert st["sent"] == flows * per
    assert st["pending_with_capacity"] == 0
    assert all(ring["pending_with_capacity"] == 0 for ring in st["rings"])


def test_transform_errors_and_filters_are_counted(tmp_path: Path, monkeypatch) -> None:
    sink = tmp_path / "sink"
    monkeypatch.setenv("SHMRT_TEST_SINK_FILE", str(sink))
    with shmrt.Relay(relaysink.flaky, relaysink.record, workers=2, max_inflight=64) as r:
        for i in range(300):
            head = b"\xee" if i % 10 == 3 else (b"\xff" if i % 10 == 7 else b"\x01")
            r.send(head + struct.pack("<I", i)[1:] + b"...", flow=i % 3)
        with pytest.raises(shmrt.PayloadTooLarge):
            r.send(b"x" * (64 * 1024 + 1))
        r.send(b"\x01abc", flow=0)  # still running after the errors
        assert r.flush(30)
        st = r.statistics()
    assert st["dropped"]["error"] == 30
    assert st["dropped"]["filtered"] == 30
    assert st["sent"] == 241
    assert len(_read_records(sink)) == 241


def test_send_nowait_full_and_drop_policy() -> None:
    with shmrt.Relay(relaysink.jitter, relaysink.discard, workers=1, max_inflight=2,
                     on_full="drop") as r:
        sent = sum(r.send(struct.pack("<I", i) * 4) for i in range(2000))
        assert r.flush(30)
        st = r.statistics()
    assert 0 < sent <= 2000
    assert st["dropped"]["full"] == 2000 - sent
    assert st["sent"] == sent
    with shmrt.Relay(relaysink.jitter, relaysink.discard, workers=1, max_inflight=1) as r:
        raised = 0
        for i in range(200):
            try:
                r.send_nowait(struct.pack("<I", i))
            except shmrt.Full:
                raised += 1
        assert r.flush(30)
        assert raised == r.statistics()["full"]


def test_killed_cpu_worker_mid_relay(tmp_path: Path, monkeypatch) -> None:
    sink = tmp_path / "sink"
    monkeypatch.setenv("SHMRT_TEST_SINK_FILE", str(sink))
    monkeypatch.setenv("SHMRT_TEST_MARKER", str(tmp_path / "marker"))
    with shmrt.Relay(relaysink.slow_or_die, relaysink.record, workers=2, max_inflight=32) as r:
        for i in range(400):
            r.send((b"K" if i == 150 else b"p") + struct.pack("<I", i)[1:], flow=i % 4)
        assert r.flush(60)
        st = r.statistics()
        r.send(b"after", flow=9)
        assert r.flush(30)
    assert (tmp_path / "marker").exists()
    assert st["dropped"]["crashed"] == 1  # the killer packet, counted with its reason
    assert st["sent"] == 399
    assert st["runtime"]["crashed"] == 1


@pytest.mark.timeout(60)
def test_asend() -> None:
    import asyncio

    async def main(r: shmrt.Relay) -> int:
        ok = await asyncio.gather(*(r.asend(struct.pack("<I", i), flow=i % 2) for i in range(500)))
        return sum(ok)

    with shmrt.Relay(relaysink.jitter, relaysink.discard, workers=1, max_inflight=4) as r:
        assert asyncio.run(main(r)) == 500
        assert r.flush(30)
        assert r.statistics()["sent"] == 500


def test_full_send_ring_parks_packets_on_its_waitlist(tmp_path: Path, monkeypatch) -> None:
    """A send ring of capacity 4 behind a slow sink: CPU workers never block,
    finished packets wait on the ring's waitlist, every one of them is moved
    in exactly once (wakes == registrations), none is stranded while the ring
    has room, and every flow still arrives complete and in order."""
    sink = tmp_path / "sink"
    monkeypatch.setenv("SHMRT_TEST_SINK_FILE", str(sink))
    flows, per = 4, 500
    with shmrt.Relay(relaysink.identity_packet, relaysink.slow_record, workers=2,
                     max_inflight=256, ring_capacity=4) as r:
        for seq in range(per):
            for f in range(flows):
                r.send(struct.pack("<I", seq) + b"y" * 28, flow=f)
        assert r.flush(60)
        st = r.statistics()
    ring = st["rings"][0]
    assert ring["registrations"] > 0  # the ring really was full
    assert ring["wakes"] == ring["registrations"]
    assert ring["pending_with_capacity"] == 0
    assert ring["waitlist"] == 0 and ring["depth"] == 0
    by_flow: dict[int, list[int]] = {}
    for f, seq in _read_records(sink):
        by_flow.setdefault(f, []).append(seq)
    assert {f: s for f, s in by_flow.items()} == {f: list(range(per)) for f in range(flows)}
