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
