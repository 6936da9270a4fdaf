"""Turn one image of a segment into a :class:`~.model.Report`: views and lints.

Why separate from reading and rendering: the same analysis serves the
tables, ``--json``, ``--check`` and ``--watch``, and it is a pure function
of the image (times and process liveness included), so a saved snapshot
gives the same answer later.

Every value read from the image is untrusted; indices are bounds-checked
here before use and anything out of range becomes a ``corrupt`` lint rather
than an exception.  Lints are listed in :data:`LINTS` with a one-line
explanation and a fix hint.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from shmrt import _core
from shmrt import layout as SL

from . import model
from .layout import (
    MAX_U32,
    Layout,
    SlotRaw,
    decode_client,
    decode_held,
    decode_queue,
    decode_relay,
    decode_ring,
    decode_send,
    decode_slot,
    decode_waiter,
    decode_worker,
    fifo_cap,
    ring_stranded,
    waiter_not_woken,
)
from .source import NO_FN, RECHECK_S, Image

# names of states and flags: the C enums' (shmrt.layout), no copies
FLAG_NAMES = SL.SLOT_FLAG_NAMES
FLAGS = {name: bit for bit, name in FLAG_NAMES}
WORKER_STATES = SL.WORKER_STATES
LIVE_WORKER_STATES = SL.LIVE_WORKER_STATES
RUN_STATES = SL.RUN_STATES
STATUS: dict[int, str | None] = {**SL.STATUS_NAMES, _core.ST_NONE: None}
WAITER_STATES = SL.WAITER_STATES
SLOT_KINDS = SL.SLOT_KINDS
WORKER_COUNTERS = SL.WORKER_COUNTERS


@dataclass(frozen=True)
class LintDef:
    name: str
    severity: str  # "error" | "warning"
    explanation: str
    hint: str


LINTS: dict[str, LintDef] = {
    d.name: d
    for d in (
        LintDef(
            "coordinator-dead",
            "error",
            "the coordinator process is gone: the segment is stale",
            "nothing reclaims crashed tasks any more; copy what you need "
            "(--save FILE), then remove it with 'shmrt prune'",
        ),
        LintDef(
            "dead-owner",
            "error",
            "a RUNNING task is owned by a process that no longer exists",
            "the coordinator reclaims a dead worker's tasks; if it is frozen or dead, "
            "restart the runtime",
        ),
        LintDef(
            "worker-dead",
            "warning",
            "a worker entry says the worker is active but its process is gone",
            "the coordinator's supervisor should have marked it dead and respawned it: "
            "check that the coordinator is alive and not stopped",
        ),
        LintDef(
            "refcount-leak",
            "error",
            "a COMPLETE task keeps a reference that nobody will drop",
            "its handle holder is gone or lost the completion; the slot never returns to "
            "the free list (restart the runtime to recover it)",
        ),
        LintDef(
            "impossible-state",
            "error",
            "a slot's state word holds a combination no transition can produce",
            "shared memory was corrupted or a transition has a bug: save a snapshot "
            "(--save) and report it",
        ),
        LintDef(
            "stuck-in-queue",
            "warning",
            "a task has waited to run for longer than --stuck-after",
            "the workers are busy or parked with work pending (a lost wake-up); "
            "compare queue depths and worker states",
        ),
        LintDef(
            "long-running",
            "warning",
            "a task has been running far longer than the p99 run time",
            "it may be stuck (deadlock, blocking I/O); 'kill -USR1 <pid>' makes a worker "
            "dump its Python stacks",
        ),
        LintDef(
            "bad-owner",
            "error",
            "the segment belongs to another user or is open to group/other",
            "segments must be mode 0600 and owned by the runtime's user; recreate it",
        ),
        LintDef(
            "corrupt",
            "error",
            "a count, index or queue position in shared memory is out of range",
            "shared memory was corrupted (or a protocol bug): save a snapshot (--save) and "
            "report it",
        ),
        LintDef(
            "waiter-not-woken",
            "error",
            "a relay sender waits for budget while budget is free (a lost wake-up), or a "
            "pending_with_capacity counter is non-zero",
            "a lost wake-up in the relay: report a bug (save a snapshot with --save); the "
            "waiter's safety timeout (100 ms) recovers it (a send ring's: the send worker's "
            "next pass)",
        ),
        LintDef(
            "send-ring-stranded",
            "error",
            "packets wait on a send ring's waitlist while the ring has room",
            "nobody moved the waitlist into the ring (a lost wake-up between the CPU workers "
            "and the send worker): report a bug (save a snapshot with --save); check that the "
            "send worker is alive",
        ),
    )
}


@dataclass
class Options:
    """Filters for the slots view and thresholds for the lints."""

    states: frozenset[str] = frozenset()  # flag names: a slot must have one of them
    worker: int | None = None  # owner worker id
    older_than_s: float | None = None  # age since submission
    enabled: frozenset[str] = field(default_factory=lambda: frozenset(LINTS))
    stuck_after_s: float = 30.0
    leak_after_s: float = 30.0
    slow_factor: float = 10.0
    slow_min_s: float = 5.0
    slow_samples: int = 20


def percentiles(values: list[float]) -> model.Percentiles:
    """Nearest-rank p50/p90/p99."""
    if not values:
        return model.Percentiles(count=0, p50_s=None, p90_s=None, p99_s=None)
    v = sorted(values)

    def q(p: float) -> float:
        return v[max(0, math.ceil(p * len(v)) - 1)]

    return model.Percentiles(count=len(v), p50_s=q(0.50), p90_s=q(0.90), p99_s=q(0.99))


def _secs(a: int, b: int) -> float | None:
    return (b - a) / 1e9 if a and b and b >= a else None


def flag_names(state: int) -> list[str]:
    return [name for bit, name in FLAG_NAMES if state & bit]


class _Lints:
    def __init__(self, enabled: frozenset[str]):
        self.enabled = enabled
        self.out: list[model.Lint] = []

    def add(
        self,
        name: str,
        message: str,
        *,
        slot: int | None = None,
        worker: int | None = None,
        pid: int | None = None,
    ) -> None:
        if name not in self.enabled:
            return
        d = LINTS[name]
        self.out.append(
            model.Lint(
                name=name,
                severity="error" if d.severity == "error" else "warning",
                message=message,
                hint=d.hint,
                slot=slot,
                worker=worker,
                pid=pid,
            )
        )


def build_report(img: Image, opts: Options, tasks_per_s: float | None = None) -> model.Report:
    hdr, lay, buf, now = img.header, img.layout, img.region, img.now_mono_ns
    lints = _Lints(opts.enabled)
    alive = img.procs.alive

    # -- workers, their queues, and where each slot is queued
    where: dict[int, list[str]] = {}
    workers: list[model.Worker] = []
    wpids: list[tuple[int, int, bool]] = []
    for wid in range(lay.n_workers):
        f = decode_worker(buf, lay, wid).fields
        q = decode_queue(buf, lay, wid)
        pid, w_alive = f["pid"], alive(f["pid"], f["start"])
        wpids.append((pid, f["start"], w_alive))
        state = WORKER_STATES.get(f["state"])
        if state is None:
            lints.add("corrupt", f"worker {wid}: unknown state {f['state']}", worker=wid)
        if q.corrupt:
            lints.add("corrupt", q.corrupt, worker=wid)
        for i in q.entries:
            where.setdefault(i, []).append(f"local {wid}")
        lifo = _slot_ref(f["lifo"], lay, lints, f"worker {wid}: LIFO slot", wid)
        cur = _slot_ref(f["current"], lay, lints, f"worker {wid}: current slot", wid)
        if lifo is not None:
            where.setdefault(lifo, []).append(f"lifo {wid}")
        if f["state"] in LIVE_WORKER_STATES and pid and not w_alive:
            lints.add(
                "worker-dead",
                f"worker {wid} (pid {pid}) is '{state}' in the segment but its process is gone",
                worker=wid,
                pid=pid,
            )
        workers.append(
            model.Worker(
                id=wid,
                pid=pid,
                alive=w_alive,
                state=state or f"unknown({f['state']})",
                epoch=f["epoch"],
                queue_depth=q.depth,
                queue_steal_in_progress=q.steal != q.real,
                queue=q.entries,
                lifo_slot=lifo,
                current_slot=cur,
                current_for_s=_secs(f["current_since"], now) if cur is not None else None,
                help_depth=f["help_depth"],
                **{c: f[c] for c in WORKER_COUNTERS},
                held_blocks=decode_held(buf, lay, wid),
            )
        )

    relay = _relay(img, lints, where)

    inject = decode_ring(buf, lay.inject_off, lay.inject_cap, lay.n_slots, "inject queue")
    if inject.corrupt:
        lints.add("corrupt", inject.corrupt)
    for i in inject.entries:
        where.setdefault(i, []).append("inject")

    clients: list[model.Client] = []
    cinfo: list[tuple[int, bool, set[int]]] = []
    for cid in range(lay.n_clients):
        c = decode_client(buf, lay, cid)
        c_alive = bool(c.pid) and alive(c.pid, c.start)
        cinfo.append((c.pid, c_alive, set(c.ring.entries)))
        if c.ring.corrupt:
            lints.add("corrupt", c.ring.corrupt)
        for i in c.ring.entries:
            where.setdefault(i, []).append(f"completion {cid}")
        if c.pid:
            clients.append(
                model.Client(
                    id=cid,
                    pid=c.pid,
                    alive=c_alive,
                    submitted=c.submitted,
                    harvested=c.harvested,
                    ring_depth=len(c.ring.entries),
                    held_blocks=decode_held(buf, lay, lay.n_workers + cid),
                )
            )

    # -- slots: latency samples from all, rows and lints for the referenced ones
    waits: list[float] = []
    runs: list[float] = []
    raw = [decode_slot(buf, lay, i) for i in range(lay.n_slots)]
    for s in raw:
        if s.started_ns and s.submitted_ns and s.started_ns >= s.submitted_ns:
            waits.append((s.started_ns - s.submitted_ns) / 1e9)
            if s.state & _core.S_COMPLETE and s.finished_ns >= s.started_ns:
                runs.append((s.finished_ns - s.started_ns) / 1e9)
    run_p = percentiles(runs)
    slow_s = None
    if run_p.p99_s is not None and run_p.count >= opts.slow_samples:
        slow_s = max(opts.slow_factor * run_p.p99_s, opts.slow_min_s)

    slots: list[model.Slot] = []
    referenced = 0
    for s in raw:
        if not s.refs:
            if s.state & (_core.S_RUNNING | _core.S_NOTIFIED):
                lints.add(
                    "impossible-state",
                    f"slot {s.index}: {'|'.join(flag_names(s.state))} with refcount 0",
                    slot=s.index,
                )
            continue
        referenced += 1
        row = _slot_row(s, img, workers, wpids, cinfo, where.get(s.index, []), lints)
        _slot_lints(s, row, opts, now, slow_s, cinfo, lints)
        if _keep(row, opts):
            slots.append(row)

    _header_lints(img, lints)

    coord_alive = alive(hdr.coord_pid, hdr.coord_start)
    summary = model.Summary(
        layout_version=hdr.version,
        run_state=RUN_STATES.get(hdr.run_state, f"unknown({hdr.run_state})"),
        broken_reason=hdr.broken_reason,
        epoch=hdr.epoch,
        owner_uid=hdr.owner_uid,
        coordinator_pid=hdr.coord_pid,
        coordinator_alive=coord_alive,
        created_realtime_ns=hdr.created_ns,
        uptime_s=_secs(hdr.created_ns, img.now_real_ns),
        n_workers=lay.n_workers,
        workers_alive=sum(1 for w in workers if w.alive),
        n_slots=lay.n_slots,
        slots_used=max(0, lay.n_slots - hdr.free_count),
        slots_free=min(hdr.free_count, lay.n_slots),
        slots_referenced=referenced,
        submitted=hdr.submitted,
        completed=hdr.completed,
        crashed=hdr.crashed,
        retried=hdr.retried,
        tasks_per_s=tasks_per_s,
        inject_depth=len(inject.entries),
        idle_unparked=SL.idle_counts(hdr.idle)[0],
        idle_searching=SL.idle_counts(hdr.idle)[1],
        clients_connected=len(clients),
        functions_registered=min(hdr.fn_count, lay.n_funcs),
        arena_size=lay.arena_size,
        arena_carved_bytes=hdr.arena_bump,
        arena_live_bytes=hdr.arena_live_bytes,
    )
    source = model.Source(
        kind="snapshot" if img.kind == "snapshot" else "segment",
        name=img.name,
        path=img.path,
        unlinked=img.unlinked,
        read_realtime_ns=img.now_real_ns,
        read_monotonic_ns=now,
        torn_read_retries=img.torn_retries,
        unstable_slots=img.unstable,
    )
    return model.Report(
        source=source,
        summary=summary,
        workers=workers,
        clients=clients,
        slots=slots,
        latency=model.Latency(queue_wait=percentiles(waits), run=run_p),
        lints=lints.out,
        lints_enabled=sorted(opts.enabled),
        relay=relay,
    )


def _clamp(v: int, hi: int) -> int:
    return max(0, min(v, hi))


def _relay(img: Image, lints: _Lints, where: dict[int, list[str]]) -> model.Relay | None:
    """The relay view and its lints; records which send ring or waitlist holds
    each packet in ``where``.  None when the runtime has no relay."""
    lay, buf, rc = img.layout, img.region, img.relay_recheck
    if not lay.n_send:
        return None
    r = decode_relay(buf, lay)
    f = r.fields
    avail, cap = f["avail"], f["capacity"]
    if cap != lay.inflight:
        lints.add(
            "corrupt", f"relay: budget capacity {cap} differs from the header's {lay.inflight}"
        )
    if avail > cap:
        lints.add("corrupt", f"relay: {avail} budget units free of {cap} (a unit released twice?)")
    fc = fifo_cap(lay.n_waiters)
    if not 0 <= r.fifo_len <= fc + lay.n_waiters:
        lints.add("corrupt", f"relay: waiter FIFO length {r.fifo_len}, capacity {fc}")
    # the measured delay varies run to run (and differs between a live read and
    # the snapshot of another read); the guaranteed lower bound does not
    later = f", still >= {RECHECK_S * 1e3:.0f} ms later" if rc is not None else ""

    waiters: list[model.RelayWaiter] = []
    for i in range(lay.n_waiters):
        w = decode_waiter(buf, lay, i)
        state = WAITER_STATES.get(w.wt)
        if state is None:
            lints.add("corrupt", f"relay waiter {i}: unknown state {w.wt}", pid=w.pid or None)
        if not w.pid:
            continue
        waiters.append(
            model.RelayWaiter(index=i, pid=w.pid, state=state or f"unknown({w.wt})", gen=w.gen)
        )
        if waiter_not_woken(avail, w.state, w.pid) and (
            rc is None
            or (i < len(rc.waiters) and tuple(rc.waiters[i]) == (w.state, w.pid) and rc.avail > 0)
        ):
            lints.add(
                "waiter-not-woken",
                f"relay waiter {i} (pid {w.pid}, generation {w.gen}) is WAITING while "
                f"{avail} of {cap} budget units are free{later}",
                pid=w.pid,
            )
    if f["pending_with_capacity"]:
        lints.add(
            "waiter-not-woken",
            f"relay: pending_with_capacity = {f['pending_with_capacity']} (must stay 0): a "
            "waiter's safety timeout found budget units free",
        )

    rings: list[model.SendRing] = []
    ingress: dict[str, int] = {}  # the UDP ingress's words, on send worker 0 (udp.c)
    for i in range(lay.n_send):
        t = decode_send(buf, lay, i)
        tf = t.fields
        ingress = ingress or tf
        for ring, label in ((t.ring, "send"), (t.waitlist, "waitlist")):
            if ring.corrupt:
                lints.add("corrupt", ring.corrupt)
            for idx in ring.entries:
                where.setdefault(idx, []).append(f"{label} {i}")
        if not 0 <= t.ring_len <= lay.send_cap + lay.n_slots:
            lints.add("corrupt", f"send ring {i}: length {t.ring_len}, capacity {lay.send_cap}")
        if not 0 <= t.waitlist_len <= lay.inject_cap + lay.n_slots:
            lints.add("corrupt", f"waitlist of send ring {i}: length {t.waitlist_len}")
        depth = _clamp(t.ring_len, lay.send_cap)
        waiting = _clamp(t.waitlist_len, lay.inject_cap)
        if ring_stranded(t.ring_len, t.waitlist_len, lay.send_cap) and (
            rc is None
            or (
                i < len(rc.rings)
                and ring_stranded(rc.rings[i][0], rc.rings[i][1], lay.send_cap)
                and rc.rings[i][2] == t.waitlist.deq
            )
        ):
            lints.add(
                "send-ring-stranded",
                f"send ring {i}: {waiting} packets on its waitlist while the ring holds "
                f"{depth} of {lay.send_cap}"
                + (f"; the waitlist did not move in >= {RECHECK_S * 1e3:.0f} ms" if rc else ""),
                pid=tf["pid"] or None,
            )
        if tf["pending_with_capacity"]:
            lints.add(
                "waiter-not-woken",
                f"send ring {i}: pending_with_capacity = {tf['pending_with_capacity']} (must "
                "stay 0): its send worker found packets on the waitlist and the ring empty",
                pid=tf["pid"] or None,
            )
        rings.append(
            model.SendRing(
                id=i,
                pid=tf["pid"],
                capacity=lay.send_cap,
                depth=depth,
                waitlist=waiting,
                backlog=tf["backlog"],
                pushed=tf["pushed"],
                popped=tf["popped"],
                waitlist_registrations=tf["registrations"],
                waitlist_wakes=tf["wakes"],
                pending_with_capacity=tf["pending_with_capacity"],
                sent=tf["sent"],
                filtered=tf["filtered"],
                errors=tf["errors"],
                crashed=tf["crashed"],
                in_doubt=tf.get("in_doubt", 0),
            )
        )
    return model.Relay(
        budget_capacity=cap,
        budget_avail=avail,
        budget_used=max(0, cap - avail),
        waiter_entries=lay.n_waiters,
        waiters_in_use=len(waiters),
        fifo_tokens=_clamp(r.fifo_len, fc),
        registrations=f["registrations"],
        wakes=f["wakes"],
        recheck=f["recheck"],
        spurious=f["spurious"],
        pending_with_capacity=f["pending_with_capacity"],
        passed_on=f["passed_on"],
        fast=f["fast"],
        full=f["full"],
        timeouts=f["timeouts"],
        drops=model.RelayDrops(
            filtered=sum(x.filtered for x in rings),
            error=sum(x.errors for x in rings),
            crashed=sum(x.crashed for x in rings),
            in_doubt=sum(x.in_doubt for x in rings),
            full=f["full"],
            kernel=ingress.get("rx_kernel_drops", 0),
            no_space=ingress.get("rx_no_space", 0),
        ),
        waiters=waiters,
        rings=rings,
    )


def _slot_ref(v: int, lay: Layout, lints: _Lints, what: str, wid: int) -> int | None:
    """Decode an "index + 1, 0 = none" reference, checking the bound."""
    if v == 0:
        return None
    if v > lay.n_slots:
        lints.add("corrupt", f"{what} {v - 1} is not a slot index", worker=wid)
        return None
    return v - 1


def _slot_row(
    s: SlotRaw,
    img: Image,
    workers: list[model.Worker],
    wpids: list[tuple[int, int, bool]],
    cinfo: list[tuple[int, bool, set[int]]],
    where: list[str],
    lints: _Lints,
) -> model.Slot:
    lay, now = img.layout, img.now_mono_ns
    idx = s.index
    owner_wid = owner_pid = None
    owner_alive = None
    if s.owner:
        owner_pid = s.owner >> 32
        w1 = s.owner & SL.WID_MASK
        if 1 <= w1 <= lay.n_workers:
            owner_wid = w1 - 1
            pid, _start, w_alive = wpids[owner_wid]
            # a different pid in the entry: the owner was an earlier incarnation
            # of this worker, replaced after it died
            owner_alive = w_alive and pid == owner_pid
        else:
            lints.add("corrupt", f"slot {idx}: owner names worker {w1 - 1}, out of range", slot=idx)
    holder_alive = None
    if s.holder == _core.HOLDER_RELAY and lay.n_send:
        holder = "relay"  # the relay pipeline: CPU workers, then a send worker
    elif s.holder & _core.HOLDER_WORKER:
        hw = s.holder & SL.WID_MASK
        if s.holder & ~(_core.HOLDER_WORKER | SL.WID_MASK) or hw >= lay.n_workers:
            holder = f"invalid {s.holder}"
            lints.add("corrupt", f"slot {idx}: holder {s.holder:#x} is not a worker", slot=idx)
        else:
            holder, holder_alive = f"worker {hw}", wpids[hw][2]
    elif s.holder < lay.n_clients:
        holder = f"client {s.holder}"
        pid, c_alive, _ring = cinfo[s.holder]
        holder_alive = c_alive
    else:
        holder = f"invalid {s.holder}"
        lints.add("corrupt", f"slot {idx}: holder {s.holder} is not a client id", slot=idx)
    parent = None
    if s.parent:
        if s.parent <= lay.n_slots:
            parent = s.parent - 1
        else:
            lints.add("corrupt", f"slot {idx}: parent {s.parent - 1} is not a slot index", slot=idx)
    kind = SLOT_KINDS.get(s.kind)
    if kind is None:
        lints.add("corrupt", f"slot {idx}: unknown kind {s.kind}", slot=idx)
    elif kind == "packet" and not lay.n_send:
        lints.add("corrupt", f"slot {idx}: a relay packet, but the runtime has no relay", slot=idx)
    run_s = None
    if s.state & _core.S_RUNNING:
        run_s = _secs(s.started_ns, now)
    elif s.state & _core.S_COMPLETE:
        run_s = _secs(s.started_ns, s.finished_ns)
    fn_id = None if s.fn_id == NO_FN else s.fn_id
    return model.Slot(
        index=idx,
        gen=s.gen,
        state_word=s.state,
        flags=flag_names(s.state),
        refcount=s.refs,
        kind=kind or f"unknown({s.kind})",
        function_id=fn_id,
        function=img.fn_name(s.fn_id),
        owner_worker=owner_wid,
        owner_pid=owner_pid,
        owner_alive=owner_alive,
        holder=holder,
        holder_alive=holder_alive,
        age_s=_secs(s.submitted_ns, now),
        queue_wait_s=_secs(s.submitted_ns, s.started_ns),
        run_s=run_s,
        attempts=s.attempts & MAX_U32,
        max_retries=s.attempts >> 32,
        parent=parent,
        status=STATUS.get(SL.result_status(s.result)[0],
                          f"unknown({SL.result_status(s.result)[0]})")
        if s.state & _core.S_COMPLETE
        else None,
        where=where,
        flow=s.flow if kind == "packet" else None,
        seq=s.seq if kind == "packet" else None,
    )


def _slot_lints(
    s: SlotRaw,
    row: model.Slot,
    opts: Options,
    now: int,
    slow_s: float | None,
    cinfo: list[tuple[int, bool, set[int]]],
    lints: _Lints,
) -> None:
    st, idx = s.state, s.index
    names = "|".join(row.flags) or "no flags"
    running, complete = st & _core.S_RUNNING, st & _core.S_COMPLETE
    notified, cancelled = st & _core.S_NOTIFIED, st & _core.S_CANCELLED
    bad = (
        (running and complete)
        or (notified and complete)
        or (cancelled and complete)
        or (cancelled and running)
    )
    if bad:
        lints.add("impossible-state", f"slot {idx}: {names} (refcount {s.refs})", slot=idx)
    elif s.kind == 0 and s.refs > 2:
        lints.add(
            "impossible-state",
            f"slot {idx}: refcount {s.refs} > 2 (a task has at most "
            "a handle and a scheduler reference)",
            slot=idx,
        )
    if running and row.owner_alive is False:
        lints.add(
            "dead-owner",
            f"slot {idx} ({row.function or 'task'}) is RUNNING on worker "
            f"{row.owner_worker}, pid {row.owner_pid}, which is gone",
            slot=idx,
            worker=row.owner_worker,
            pid=row.owner_pid,
        )
    if complete and not running:
        since = _secs(s.finished_ns, now)
        if since is not None and since > opts.leak_after_s:
            why = None
            if row.holder_alive is False:
                why = f"its holder ({row.holder}) is gone"
            elif (
                row.holder.startswith("client")
                and s.holder < len(cinfo)
                and idx not in cinfo[s.holder][2]
            ):
                why = f"it is not on {row.holder}'s completion ring"
            if why:
                lints.add(
                    "refcount-leak",
                    f"slot {idx}: COMPLETE {since:.1f}s ago with refcount {s.refs}, and {why}",
                    slot=idx,
                )
    if (
        notified
        and not running
        and not cancelled
        and row.age_s is not None
        and row.age_s > opts.stuck_after_s
    ):
        at = ", ".join(row.where) or "no queue at all"
        lints.add(
            "stuck-in-queue",
            f"slot {idx} ({row.function or 'task'}) submitted "
            f"{row.age_s:.1f}s ago is still waiting to run (on {at})",
            slot=idx,
        )
    if running and slow_s is not None and row.run_s is not None and row.run_s > slow_s:
        lints.add(
            "long-running",
            f"slot {idx} ({row.function or 'task'}) has run for "
            f"{row.run_s:.1f}s, over the {slow_s:.2f}s threshold "
            f"(max({opts.slow_factor:g} x p99 run time, --slow-min))",
            slot=idx,
            worker=row.owner_worker,
            pid=row.owner_pid,
        )


def _header_lints(img: Image, lints: _Lints) -> None:
    hdr, lay = img.header, img.layout
    if not img.procs.alive(hdr.coord_pid, hdr.coord_start):
        rs = RUN_STATES.get(hdr.run_state, "unknown")
        lints.add(
            "coordinator-dead",
            f"coordinator pid {hdr.coord_pid} is gone (run state '{rs}'): the segment is stale",
            pid=hdr.coord_pid,
        )
    if hdr.run_state not in RUN_STATES:
        lints.add("corrupt", f"header: unknown run state {hdr.run_state}")
    if hdr.broken_reason is not None:  # a check on shared memory failed (broken.c)
        lints.add("corrupt", f"runtime marked broken: {hdr.broken_reason}")
    if hdr.free_count > lay.n_slots:
        lints.add("corrupt", f"header: free count {hdr.free_count} exceeds {lay.n_slots} slots")
    top = hdr.free_head & MAX_U32
    if top > lay.n_slots:
        lints.add("corrupt", f"header: free-list head {top - 1} is not a slot index")
    euid = os.geteuid()
    if hdr.owner_uid != euid or img.file_uid != euid:
        lints.add(
            "bad-owner",
            f"segment owned by uid {img.file_uid} (header says {hdr.owner_uid}); we are uid {euid}",
        )
    if img.file_mode & 0o077:
        lints.add("bad-owner", f"segment mode {img.file_mode:03o} is open to group/other")


def _keep(row: model.Slot, opts: Options) -> bool:
    if opts.states and not any(f in opts.states for f in row.flags):
        return False
    if opts.worker is not None and row.owner_worker != opts.worker:
        return False
    if opts.older_than_s is not None and (row.age_s is None or row.age_s < opts.older_than_s):
        return False
    return True
