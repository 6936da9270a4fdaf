"""Counters read from a live segment (Pool.statistics(), the CLI)."""

from __future__ import annotations

from typing import Any

from . import _core

WORKER_STATES = {
    _core.W_EMPTY: "empty", _core.W_STARTING: "starting", _core.W_RUNNING: "running",
    _core.W_SEARCHING: "searching", _core.W_PARKED: "parked", _core.W_NOTIFIED: "notified",
    _core.W_DEAD: "dead", _core.W_EXITED: "exited",
}
_COUNTERS = ("tasks_run", "steals", "steal_attempts", "stolen_tasks", "parks", "wakeups",
             "inject_pulls", "overflows", "spins", "lifo_hits")


def runtime_statistics(seg: _core.Segment) -> dict[str, Any]:
    lay = seg.layout
    h = _core.HEADER_FIELDS
    wf = _core.WORKER_FIELDS
    workers = []
    for wid in range(lay["n_workers"]):
        base = lay["workers_off"] + wid * _core.WORKER_SIZE
        w: dict[str, Any] = {"id": wid, "pid": seg.load64(base + wf["pid"]),
                             "state": WORKER_STATES.get(seg.load64(base + wf["state"]), "?"),
                             "queue": seg.queue_len(wid)}
        for c in _COUNTERS:
            w[c] = seg.load64(base + wf[c])
        workers.append(w)
    idle = seg.load64(h["idle"])
    return {
        "submitted": seg.load64(h["submitted"]),
        "completed": seg.load64(h["completed"]),
        "crashed": seg.load64(h["crashed"]),
        "retried": seg.load64(h["retried"]),
        "slots": lay["n_slots"],
        "slots_free": seg.free_count(),
        "inject_len": seg.inject_len(),
        "searching": idle & 0xFFFF,
        "unparked": (idle >> 16) & 0xFFFF,
        "arena": seg.arena_stats(),
        "workers": workers,
    }
