"""A relay whose send worker (or a CPU worker) is SIGKILLed at each named
crash point loses nothing it accepted and never stalls: the packets the dead
send worker held are put back on its ring by the crash reclaim, the
replacement starts each flow at the lowest sequence number still in flight,
per-flow order holds, flush() returns.  The one packet a send worker has
handed to the sink but not yet marked done may reach the sink twice (the
output-commit window); every other point delivers each packet exactly once.
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

POINTS = [  # (point, n, role, duplicates allowed)
    ("relay_take.after_pop", 200, "sender", 0),
    ("sender.after_take", 50, "sender", 0),
    ("sender.after_sink", 2000, "sender", 1),
    ("finish.after_complete", 2000, "worker", 0),
    ("worker.after_find", 2000, "worker", 0),
]


def _records(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes() if path.exists() else b""
    return [struct.unpack_from("<QI", data, i) for i in range(0, len(data), 12)]


@pytest.mark.parametrize("point,n,role,dups", POINTS, ids=[p[0] for p in POINTS])
def test_relay_survives_kill_at(point: str, n: int, role: str, dups: int, tmp_path: Path,
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
    extra = 0
    for f in range(FLOWS):
        seqs = by_flow.get(f, [])
        dedup = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]]
        extra += len(seqs) - len(dedup)
        crashed_here = PER - len(dedup)
        assert dedup == sorted(dedup), f"flow {f} out of order"
        assert crashed_here <= (1 if role == "worker" else 0), f"flow {f}: {crashed_here} lost"
    assert extra <= dups, f"{extra} packets sent twice"
    # counters count each accepted packet once (a duplicate in the sink was
    # sent by the dead worker, which never got to count it)
    assert st["sent"] + st["dropped"]["crashed"] == FLOWS * PER, st
    assert st["pending_with_capacity"] == 0
    assert os.path.exists(marker)
