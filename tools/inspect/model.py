"""The inspector's report: msgspec Structs, also its ``--json`` schema.

Why Structs: one definition serves the tables, the JSON output and the
published JSON Schema (``docs/inspect-schema.json``, produced by
``msgspec.json.schema(Report)``; ``shmrt inspect --print-schema`` prints
it).  ``schema_version`` is bumped on any incompatible change; fields may
be added within a version.

Conventions: times are seconds (float) unless the name ends in ``_ns``;
a slot index, worker id or pid that is unknown or not applicable is null.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SCHEMA_VERSION = 1


class Source(msgspec.Struct, kw_only=True):
    """What was read, and how the read went."""

    kind: Literal["segment", "snapshot"]
    name: str
    path: str
    unlinked: bool  # the segment file was removed after we opened it
    read_realtime_ns: int
    read_monotonic_ns: int
    torn_read_retries: int  # entries re-read because they changed under us
    unstable_slots: list[int]  # slots still changing after every retry


class Summary(msgspec.Struct, kw_only=True):
    layout_version: int
    run_state: str  # init | running | stopping | stopped | broken | unknown(N)
    broken_reason: str | None = None  # why it is broken: region first (broken.c)
    epoch: int
    owner_uid: int
    coordinator_pid: int
    coordinator_alive: bool
    created_realtime_ns: int
    uptime_s: float | None
    n_workers: int
    workers_alive: int
    n_slots: int
    slots_used: int  # n_slots - the free-list count
    slots_free: int
    slots_referenced: int  # slots seen with refcount > 0
    submitted: int
    completed: int
    crashed: int
    retried: int
    tasks_per_s: float | None  # from two reads of `completed`; null if not measured
    inject_depth: int
    idle_unparked: int
    idle_searching: int
    clients_connected: int
    functions_registered: int
    arena_size: int
    arena_carved_bytes: int
    arena_live_bytes: int


class Worker(msgspec.Struct, kw_only=True):
    id: int
    pid: int
    alive: bool
    state: str  # empty | starting | running | searching | parked | notified | dead | exited
    epoch: int
    queue_depth: int
    queue_steal_in_progress: bool
    queue: list[int]  # slot indices in the local queue, oldest first
    lifo_slot: int | None
    current_slot: int | None  # innermost task being run
    current_for_s: float | None  # how long it has been running (from current_since)
    help_depth: int
    tasks_run: int
    steals: int
    steal_attempts: int
    stolen_tasks: int
    parks: int
    wakeups: int
    inject_pulls: int
    overflows: int
    spins: int
    lifo_hits: int
    helped: int
    held_blocks: int = 0  # arena blocks its views hold (its hold table: shared arrays, payloads)


class Client(msgspec.Struct, kw_only=True):
    id: int
    pid: int
    alive: bool
    submitted: int
    harvested: int
    ring_depth: int  # completions waiting to be harvested
    held_blocks: int = 0  # arena blocks its views hold (its hold table: shared arrays, results)


class Slot(msgspec.Struct, kw_only=True):
    index: int
    gen: int
    state_word: int
    flags: list[str]  # RUNNING COMPLETE NOTIFIED JOIN_INTEREST JOIN_WAKER CANCELLED
    refcount: int
    kind: str  # task | packet (a relay packet) | unknown(N)
    function_id: int | None  # null: the callable travels inline with the arguments
    function: str | None  # module.qualname from the pickle's opcodes; never unpickled
    owner_worker: int | None
    owner_pid: int | None
    owner_alive: bool | None
    holder: str  # "client N" | "worker N" | "invalid N"
    holder_alive: bool | None
    age_s: float | None  # since submission
    queue_wait_s: float | None  # submission to start
    run_s: float | None  # start to finish (or to now, while running)
    attempts: int
    max_retries: int
    parent: int | None  # spawning slot (spawn trees)
    status: str | None  # once COMPLETE: ok | error | crashed | cancelled | filtered | timeout
    where: list[str]  # queues holding it: "local N", "lifo N", "inject", "completion N",
    # "send N" (relay send ring N), "waitlist N" (the waitlist of send ring N)
    flow: int | None = None  # relay packets: flow id (null for tasks)
    seq: int | None = None  # relay packets: sequence number within the flow


class Percentiles(msgspec.Struct, kw_only=True):
    count: int
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None


class Latency(msgspec.Struct, kw_only=True):
    """From the timestamps of every slot that has them (free slots keep the
    times of their last task until reused)."""

    queue_wait: Percentiles
    run: Percentiles


class RelayWaiter(msgspec.Struct, kw_only=True):
    """A waiter entry in use (pid != 0): a client send() blocked on the budget."""

    index: int
    pid: int
    state: str  # free | waiting | woken | cancelled | unknown(N)  (state & 0xff)
    gen: int  # registration generation (state >> 8)


class SendRing(msgspec.Struct, kw_only=True):
    """One relay send worker: its ring of finished packets and its waitlist."""

    id: int
    pid: int  # the send worker's pid (0 until it has started)
    capacity: int  # ring capacity (send_cap)
    depth: int  # packets on the ring (its `len` word, clamped to 0..capacity)
    waitlist: int  # packets parked on the waitlist because the ring was full
    backlog: int  # packets held in the send worker's reorder buffer
    pushed: int
    popped: int
    waitlist_registrations: int  # packets that found the ring full and were parked
    waitlist_wakes: int  # parked packets moved into the ring
    pending_with_capacity: int  # consumer found the waitlist non-empty and the ring empty
    sent: int
    filtered: int
    errors: int
    crashed: int
    in_doubt: int = 0  # its send worker died handing them to the sink (counted, not re-sent)


class RelayDrops(msgspec.Struct, kw_only=True):
    """Packets that did not reach the sink, by reason (as Relay.statistics())."""

    filtered: int  # the transform returned None
    error: int  # the transform raised
    crashed: int  # the CPU worker died running the transform
    in_doubt: int = 0  # a send worker died handing them to the sink: sent or not
    full: int  # refused by send_nowait / dropped by on_full="drop"
    kernel: int = 0  # UDP ingress: the kernel's receive queue was full (SO_RXQ_OVFL)
    no_space: int = 0  # UDP ingress: a datagram past the slot found no arena room


class Relay(msgspec.Struct, kw_only=True):
    """The relay region (segments with relay send workers only)."""

    budget_capacity: int  # max_inflight (relay_t.capacity)
    budget_avail: int  # units of budget free right now
    budget_used: int  # capacity - avail: packets in the relay (and senders about to submit)
    waiter_entries: int  # n_waiters: entries for blocked senders
    waiters_in_use: int  # entries with a pid
    fifo_tokens: int  # tokens on the waiter FIFO (stale, cancelled ones included)
    registrations: int  # waiter counters (relay_t) ...
    wakes: int
    recheck: int  # the re-check after registering found a unit
    spurious: int
    pending_with_capacity: int  # a waiter's safety timeout found units free: must stay 0
    passed_on: int  # a woken waiter that no longer wanted its unit passed it on
    fast: int  # acquired without waiting
    full: int  # send_nowait refusals / on_full="drop" drops
    timeouts: int
    drops: RelayDrops
    waiters: list[RelayWaiter]  # the entries in use
    rings: list[SendRing]


class Lint(msgspec.Struct, kw_only=True):
    name: str
    severity: Literal["error", "warning"]
    message: str
    hint: str
    slot: int | None = None
    worker: int | None = None
    pid: int | None = None


class Report(msgspec.Struct, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    source: Source
    summary: Summary
    workers: list[Worker]
    clients: list[Client]
    slots: list[Slot]  # non-free slots (refcount > 0) passing the filters
    latency: Latency
    lints: list[Lint]
    lints_enabled: list[str]
    relay: Relay | None = None  # null: the runtime has no relay


def schema() -> dict[str, object]:
    """The JSON Schema of :class:`Report`."""
    return msgspec.json.schema(Report)
