"""Typed counters read from a live segment: ``Pool.statistics()``,
``Client.statistics()``, ``Relay.statistics()``, ``shmrt stats``.

Each result is a frozen dataclass with documented fields (docs/statistics.md)
that also reads like the dict it used to be (``st["completed"]``,
``st.get("recycled")``, ``dict(st)``); ``as_dict()`` gives plain dicts all the
way down (for JSON).  Every word is read through shmrt.layout."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import _core
from .layout import WORKER_COUNTERS, View, idle_counts, worker_state_name


class _Record(Mapping[str, Any]):
    """Dict-like read access to a statistics dataclass's fields."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and lists all the way down (JSON-ready)."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def _from(cls, d: Mapping[str, Any], **over: Any) -> Any:
        """Built from a C core dict (its extra keys ignored)."""
        return cls(**{k: over[k] if k in over else d[k] for k in cls._keys()})


@dataclass(frozen=True, eq=True)
class WorkerStatistics(_Record):
    """One worker entry: identity, state and its own counters (worker_t)."""

    id: int  # worker id (0..n-1)
    pid: int  # its process (0 before it registered)
    state: str  # empty | starting | running | searching | parked | notified | dead | exited
    queue: int  # tasks in its local run queue
    tasks_run: int  # tasks it ran
    steals: int  # successful steals from another worker's queue
    steal_attempts: int  # steal attempts, successful or not
    stolen_tasks: int  # tasks it took by stealing
    parks: int  # times it went to sleep
    wakeups: int  # times it was woken
    inject_pulls: int  # tasks taken from the shared inject queue
    overflows: int  # times its local queue overflowed into the inject queue
    spins: int  # spin phases before parking (polling for work a little while)
    lifo_hits: int  # tasks run from the LIFO slot (a task spawned by the previous one)
    helped: int  # tasks it ran while waiting for a join (work helping)


@dataclass(frozen=True, eq=True)
class ArenaStatistics(_Record):
    """The blob arena (large payloads)."""

    size: int  # the arena's size in bytes
    reserved: int  # bytes of it whose /dev/shm pages exist (reserved as carved; >= carved)
    carved: int  # bytes cut into blocks so far (the bump pointer)
    live: int  # bytes of blocks in use now
    untracked: int  # block references held by mappings without a process record (0 in a pool)


@dataclass(frozen=True, eq=True)
class ClientStatistics(_Record):
    """The client that asked (its entry in the segment)."""

    id: int  # client entry index (the coordinator is 0)
    pending: int  # its futures not resolved yet


@dataclass(frozen=True, eq=True)
class Statistics(_Record):
    """The runtime's counters (``Pool.statistics()``, ``Client.statistics()``)."""

    submitted: int  # tasks submitted, by every client and worker (spawns)
    completed: int  # tasks finished (any status)
    crashed: int  # tasks whose worker died while running them, not retried
    retried: int  # tasks re-run after their worker died
    slots: int  # task slots of the runtime
    slots_free: int  # slots free now
    inject_len: int  # tasks in the shared inject queue now
    searching: int  # workers looking for work now (idle word)
    unparked: int  # workers not asleep now (idle word)
    arena: ArenaStatistics  # the blob arena's bytes
    workers: list[WorkerStatistics]  # one per worker, by id
    client: ClientStatistics | None = None  # set by Client.statistics()
    recycled: int | None = None  # set by Pool.statistics(): workers retired and replaced


@dataclass(frozen=True, eq=True)
class SendRingStatistics(_Record):
    """One relay send worker and its ring (send_t)."""

    pid: int  # the send worker's process
    depth: int  # finished packets in its ring now
    waitlist: int  # packets waiting for room in the ring
    backlog: int  # packets in its reorder buffer
    pushed: int  # packets pushed on its ring by the CPU workers
    popped: int  # packets it took off its ring
    registrations: int  # packets that found the ring full and waited
    wakes: int  # waiting packets moved into the ring
    pending_with_capacity: int  # waitlist non-empty while the ring had room: must stay 0
    sent: int  # packets it handed to the sink
    filtered: int  # packets the transform dropped (returned None)
    errors: int  # packets the transform or the sink failed on
    crashed: int  # packets a CPU worker died on
    in_doubt: int  # its worker died while handing these to the sink: sent or not


@dataclass(frozen=True, eq=True)
class DroppedStatistics(_Record):
    """Packets a relay did not send, by reason (sums over the send rings)."""

    filtered: int  # the transform returned None
    error: int  # the transform or the sink raised
    crashed: int  # a worker died on the packet
    in_doubt: int  # a send worker died while handing the packet to the sink
    full: int  # send_nowait refused: no budget
    kernel: int  # the UDP ingress's socket queue overflowed (SO_RXQ_OVFL or /proc/net/udp)
    no_space: int  # a datagram past the slot found no arena room at the ingress


@dataclass(frozen=True, eq=True)
class IngressStatistics(_Record):
    """The relay's UDP ingress (udp.c), when it has one."""

    received: int  # datagrams received
    kernel_drops: int  # dropped by the kernel before we read them
    no_space: int  # dropped: no arena room for a datagram past the slot


@dataclass(frozen=True, eq=True)
class RelayStatistics(_Record):
    """``Relay.statistics()``: its in-flight budget, waiters and send rings."""

    capacity: int  # the in-flight budget (max_inflight)
    avail: int  # budget units free now
    registrations: int  # send() calls that waited for budget
    wakes: int  # waiting send() calls handed a unit
    spurious: int  # wake-ups that found no unit (or polls when every waiter entry was taken)
    pending_with_capacity: int  # a waiter timed out while units were free: must stay 0
    passed_on: int  # a woken waiter that no longer wanted its unit passed it on
    fast: int  # send() calls that found budget at once
    full: int  # send_nowait refusals
    timeouts: int  # send() calls that gave up waiting (their timeout)
    recheck: int  # the re-check after registering as a waiter found a unit
    withdrawn: int  # waiter registrations withdrawn at the end of a 0.5 s wait slice (renewed)
    rings: list[SendRingStatistics]  # one per send worker
    sent: int  # packets handed to the sink
    dropped: DroppedStatistics  # packets not sent, by reason
    ingress: IngressStatistics  # the UDP ingress's counters (zeros without one)
    received: int  # datagrams the UDP ingress received
    kernel_drops: int  # = dropped.kernel
    runtime: Statistics  # the relay's runtime


def runtime_statistics(seg: _core.Segment) -> Statistics:
    """The counters of the runtime mapped as ``seg``."""
    view = View(seg)
    lay = view.layout
    workers = []
    for wid in range(lay.n_workers):
        w = view.worker(wid)
        workers.append(WorkerStatistics(
            id=wid, pid=w.pid, state=worker_state_name(w.state), queue=seg.queue_len(wid),
            **{c: getattr(w, c) for c in WORKER_COUNTERS}))
    h = view.header()
    unparked, searching = idle_counts(h.idle)
    return Statistics(
        submitted=h.submitted, completed=h.completed, crashed=h.crashed, retried=h.retried,
        slots=lay.n_slots, slots_free=seg.free_count(), inject_len=seg.inject_len(),
        searching=searching, unparked=unparked,
        arena=ArenaStatistics._from(seg.arena_stats()), workers=workers,
    )


def relay_statistics(seg: _core.Segment, runtime: Statistics,
                     socket_drops: int | None = None) -> RelayStatistics:
    """The relay counters of ``seg`` (relay.c's relay_stats) and their sums.
    socket_drops: the kernel's count for the ingress socket (/proc/net/udp),
    when this process has it; the larger of it and SO_RXQ_OVFL's is used."""
    d = seg.relay_stats()
    rings = [SendRingStatistics._from(r) for r in d["rings"]]
    ing = d["ingress"]
    kernel = max(ing["kernel_drops"], socket_drops or 0)
    ingress = IngressStatistics(received=ing["received"], kernel_drops=kernel,
                                no_space=ing["no_space"])
    dropped = DroppedStatistics(
        filtered=sum(r.filtered for r in rings), error=sum(r.errors for r in rings),
        crashed=sum(r.crashed for r in rings), in_doubt=sum(r.in_doubt for r in rings),
        full=d["full"], kernel=kernel, no_space=ing["no_space"])
    return RelayStatistics._from(d, rings=rings, sent=sum(r.sent for r in rings),
                                 dropped=dropped, ingress=ingress, received=ing["received"],
                                 kernel_drops=kernel, runtime=runtime)


__all__ = ["Statistics", "WorkerStatistics", "ArenaStatistics", "ClientStatistics",
           "RelayStatistics", "SendRingStatistics", "DroppedStatistics", "IngressStatistics",
           "runtime_statistics",
           "relay_statistics"]
