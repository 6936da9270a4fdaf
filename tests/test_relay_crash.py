"""A relay whose send worker (or a CPU worker) is SIGKILLed at each named
crash point loses nothing it accepted and never stalls: the packets the dead
send worker held are put back on its ring by the crash reclaim, the
replacement starts each flow at the lowest sequence number still in flight,
per-flow order holds, flush() returns.  The one packet a send worker has
handed to the sink but not yet marked done may reach the sink twice (the
output-commit window): it is not sent again but counted ``in_doubt``; every
other point delivers each packet exactly once.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import relaysink
from test_crashpoints import armed

import shmrt

pytestmark = pytest.mark.timeout(120)
FLOWS, PER = 4, 3000

POINTS = [  # (point, n, role, packets that may end in doubt)
    ("relay_take.after_pop", 200, "sender", 0),
    ("sender.after_take", 50, "sender", 0),
    ("sender.after_sink", 2000, "sender", 1),
    ("finish.after_complete", 2000, "worker", 0),
    ("worker.after_find", 2000, "worker", 0),
]


def _records(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes() if path.exists() else b""
    return [struct.unpack_from("<QI", data, i) for i in range(0, len(data), 12)]


@pytest.mark.parametrize("point,n,role,doubt", POINTS, ids=[p[0] for p in POINTS])
def test_relay_survives_kill_at(point: str, n: int, role: str, doubt: int, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    sink, marker = tmp_path / "sink", tmp_path / "died"
    monkeypatch.setenv("SHMRT_TEST_SINK_FILE", str(sink))
    with armed(point, n, role, marker):
        r = shmrt.Relay(relaysink.jitter, relaysink.record, workers=2, max_inflight=256)
    with r:
        for seq in range(PER):
            for f in range(FLOWS):
                r.send(struct.pack("<I", seq) + b"x" * 40, flow=f, timeout=30)
        assert r.flush(60), "flush() never returned: a stalled flow or a lost budget unit"
        st = r.statistics()
    assert marker.exists(), f"{point} was never crossed"
    by_flow: dict[int, list[int]] = {}
    for f, seq in _records(sink):
        by_flow.setdefault(f, []).append(seq)
    drops = st["dropped"]
    assert drops["in_doubt"] <= doubt, drops
    missing = 0
    for f in range(FLOWS):
        seqs = by_flow.get(f, [])
        assert len(seqs) == len(set(seqs)), f"flow {f}: a packet reached the sink twice"
        assert seqs == sorted(seqs), f"flow {f} out of order"
        missing += PER - len(seqs)
    # every accepted packet is sent or counted under a named reason, once
    assert st["sent"] + drops["crashed"] + drops["in_doubt"] == FLOWS * PER, st
    assert missing <= drops["crashed"] + drops["in_doubt"], (missing, drops)
    assert st["pending_with_capacity"] == 0
    assert os.path.exists(marker)


C_POINTS = [  # the C send path (UdpSink: shmrt/_core/udp_send.c); a batch may end in doubt
    ("relay_take.after_pop", 200, 0),
    ("sender.after_take", 20, 0),
    ("sender.after_sink", 20, 256),
]


@pytest.mark.parametrize("point,n,doubt", C_POINTS, ids=[p[0] for p in C_POINTS])
def test_c_send_path_survives_kill_at(point: str, n: int, doubt: int, tmp_path: Path) -> None:
    """The same guarantees with a UDP sink, whose send worker takes, orders
    and sendmmsg-s in C: a packet reaches the socket at most once, per-flow
    order holds, and sent + crashed + in_doubt == accepted."""
    import select

    from shmrt.relay import udp_socket

    rx = udp_socket(("127.0.0.1", 0), 32 << 20)
    marker = tmp_path / "died"
    got: list[bytes] = []
    try:
        with armed(point, n, "sender", marker):
            r = shmrt.Relay(relaysink.jitter, shmrt.UdpSink(rx.getsockname()[:2]), workers=2,
                            max_inflight=256)
        with r:
            for seq in range(PER):
                for f in range(FLOWS):
                    r.send(struct.pack("<IH", seq, f) + b"x" * 40, flow=f, timeout=30)
                while select.select([rx], [], [], 0)[0]:
                    got.append(rx.recv(256))
            assert r.flush(60), "flush() never returned: a stalled flow or a lost budget unit"
            st = r.statistics()
        while select.select([rx], [], [], 0.5)[0]:
            got.append(rx.recv(256))
    finally:
        rx.close()
    assert marker.exists(), f"{point} was never crossed"
    by_flow: dict[int, list[int]] = {}
    for d in got:
        seq, f = struct.unpack_from("<IH", d)
        by_flow.setdefault(f, []).append(seq)
    drops = st["dropped"]
    assert drops["in_doubt"] <= doubt, drops
    for f in range(FLOWS):
        seqs = by_flow.get(f, [])
        assert len(seqs) == len(set(seqs)), f"flow {f}: a packet reached the socket twice"
        assert seqs == sorted(seqs), f"flow {f} out of order"
    assert st["sent"] + drops["crashed"] + drops["in_doubt"] == FLOWS * PER, st
    assert st["sent"] <= len(got) <= st["sent"] + drops["in_doubt"]
    assert st["pending_with_capacity"] == 0


INGRESS_POINTS = [  # the C ingress (udp.c) in a client process of a named relay
    ("alloc.after_pop", 30),   # slots taken for a batch, nothing received into them yet
    ("submit.after_fill", 300),  # a datagram filled in its slot, not queued
]


@pytest.mark.parametrize("point,n", INGRESS_POINTS, ids=[p[0] for p in INGRESS_POINTS])
def test_c_ingress_client_killed_mid_batch(point: str, n: int, tmp_path: Path) -> None:
    """A client process feeding a named relay with serve_udp dies inside a
    batch: the crash reclaim frees the slots it took, re-queues the packets
    it filled, and the budget comes back whole; what reaches the sink is
    unique and in per-flow order, and the relay keeps serving."""
    import multiprocessing as mp
    import select
    import socket
    import time

    from shmrt.relay import udp_socket

    name = f"ingcrash-{os.getpid()}"
    rx = udp_socket(("127.0.0.1", 0), 32 << 20)
    marker, port_file = tmp_path / "died", tmp_path / "port"
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got: list[bytes] = []
    ctx = mp.get_context("spawn")
    try:
        with shmrt.Relay("shmrt.transforms:identity", shmrt.UdpSink(rx.getsockname()[:2]),
                         workers=1, name=name, max_inflight=256) as r:
            r.wait_ready(30)
            with armed(point, n, "client", marker):
                p = ctx.Process(target=relaysink.ingress_named, args=(name, str(port_file)))
                p.start()
            end = time.monotonic() + 30
            while not port_file.exists() and time.monotonic() < end:
                time.sleep(0.01)
            dst = ("127.0.0.1", int(port_file.read_text()))
            for i in range(4000):
                tx.sendto(struct.pack("<IH", i // 4, i % 4) + b"y" * 60, dst)
                if i % 64 == 63:
                    while select.select([rx], [], [], 0)[0]:
                        got.append(rx.recv(256))
                    if not p.is_alive():
                        break
            p.join(30)
            assert marker.exists() and p.exitcode == -9, (point, p.exitcode)
            assert r.flush(30), "flush() never returned after the ingress died"
            seg = r._seg
            end = time.monotonic() + 30  # the reclaim gives the dead client's units back
            while seg.relay_stats()["avail"] != 256 and time.monotonic() < end:
                time.sleep(0.01)
            st = r.statistics()
            # the relay keeps serving: a packet from here still goes through
            r.send(struct.pack("<IH", 10**6, 9), flow="after")
            assert r.flush(30)
        while select.select([rx], [], [], 0.5)[0]:
            got.append(rx.recv(256))
    finally:
        rx.close()
        tx.close()
    assert st["avail"] == 256, st
    assert st["runtime"]["slots_free"] == st["runtime"]["slots"], st["runtime"]  # none leaked
    by_flow: dict[int, list[int]] = {}
    for d in got:
        seq, f = struct.unpack_from("<IH", d)
        by_flow.setdefault(f, []).append(seq)
    assert by_flow.pop(9) == [10**6]
    for f, seqs in by_flow.items():
        assert len(seqs) == len(set(seqs)), f"flow {f}: a packet reached the socket twice"
        assert seqs == sorted(seqs), f"flow {f} out of order"
