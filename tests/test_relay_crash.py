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
