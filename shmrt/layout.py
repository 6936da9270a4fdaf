"""The segment layout as Python reads it: typed records over the C core's exports.

Why one module: everything that reads a segment from Python (statistics,
the CLI, the pool's supervisor, the inspector, the tests) needs the same
facts -- where each field of each struct sits, how big each struct is, the
names of the states, how packed words (the idle word, a slot's state and
result, an owner or holder) decode -- and the C structs in
``shmrt/_core/layout.h`` are their only source.  The C core exports them
(``HEADER_FIELDS``, ``WORKER_FIELDS``, ..., ``compute_layout``,
``ARENA_CLASS_SIZES``, the constants); this module turns them into typed
readers, and nothing else in Python restates an offset, a size, a mask or a
state name.  tests/test_layout.py checks that every ``#define`` and enum of
layout.h and state.h is exported and that every exported field is a field of
a record here, so a field added in C cannot be forgotten.

A record is read through a *load* function (``offset -> u64``): a live
segment's ``Segment.load64`` (acquire loads), or :func:`bytes_loader` over an
image of a segment (the inspector, which never maps a segment writable), which
checks every read against the image and raises :class:`LayoutError`.  All
values read are untrusted: readers decode, callers validate before indexing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import ClassVar, TypeVar

from . import _core
from .errors import ShmrtError

Load = Callable[[int], int]
Buffer = bytes | bytearray | memoryview

U32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
_Q = struct.Struct("<Q")


class LayoutError(ShmrtError):
    """Bytes that cannot be read as (part of) a segment: a read outside the
    image, a header that fails validation, an index out of range.  The
    message is one line."""


def read_u64(buf: Buffer, off: int) -> int:
    """The little-endian u64 at ``off`` of an image; LayoutError outside it."""
    if off < 0 or off + 8 > len(buf):
        raise LayoutError(f"read of 8 bytes at offset {off} is outside the image "
                          f"({len(buf)} bytes)")
    return int(_Q.unpack_from(buf, off)[0])


def bytes_loader(buf: Buffer) -> Load:
    """A load function over an image of a segment (little-endian u64 words),
    bounds-checked: a read outside ``buf`` raises :class:`LayoutError`."""
    return lambda off: read_u64(buf, off)


# ---- names of states and flags (from the C enums) ------------------------------------------
def _names(prefix: str) -> dict[int, str]:
    """{value: name} of the C core's constants ``<prefix>NAME`` (lower-cased)."""
    out: dict[int, str] = {}
    for k in dir(_core):
        if k.startswith(prefix) and not k.endswith(("_MASK", "_FIELDS", "_SIZE")):
            out.setdefault(getattr(_core, k), k[len(prefix):].lower())
    return dict(sorted(out.items()))


RUN_STATES = _names("RUN_")  # header.run_state
WORKER_STATES = _names("W_")  # worker.state
STATUS_NAMES = _names("ST_")  # a finished slot's status (result >> 32)
WAITER_STATES = _names("WT_")  # relay waiter entry (state & WAITER_STATE_MASK)
FN_STATES = _names("FN_")  # function table entry
LIVE_WORKER_STATES = frozenset(
    {_core.W_STARTING, _core.W_RUNNING, _core.W_SEARCHING, _core.W_PARKED, _core.W_NOTIFIED}
)
# a slot state word's flag bits, lowest first: ((S_RUNNING, "RUNNING"), ...)
SLOT_FLAG_NAMES: tuple[tuple[int, str], ...] = tuple(
    (bit, name.upper()) for bit, name in _names("S_").items())
SLOT_KINDS = {0: "task", 1: "packet"}  # slot.kind (layout.h)
WAITER_STATE_MASK = 0xFF  # waiter_t.state is (gen << 8) | WT_* (layout.h, budget.h)


def run_state_name(v: int) -> str:
    return RUN_STATES.get(v, f"unknown({v})")


def worker_state_name(v: int) -> str:
    return WORKER_STATES.get(v, "?")


# ---- packed words ---------------------------------------------------------------------------
# the low bits of a holder word (HOLDER_WORKER | wid) and of a running task's
# owner word ((pid << 32) | (wid + 1)) that hold the worker id
WID_MASK = _core.HOLDER_WORKER - 1


def idle_counts(idle: int) -> tuple[int, int]:
    """(unparked, searching) of the header's idle word (Tokio's: park.h)."""
    return (idle // _core.IDLE_UNPARK_ONE) & _core.IDLE_SEARCH_MASK, idle & _core.IDLE_SEARCH_MASK


def slot_refs(state: int) -> int:
    """References held on a slot (its state word above the flags: state.h)."""
    return state >> _core.REF_SHIFT


def slot_flags(state: int) -> int:
    return state & _core.S_FLAGS_MASK


def slot_flag_names(state: int) -> list[str]:
    return [name for bit, name in SLOT_FLAG_NAMES if state & bit]


def result_status(result: int) -> tuple[int, int]:
    """(status ST_*, inline length) of a slot's result word."""
    return result >> 32, result & U32


def holder_worker(holder: int) -> int | None:
    """The worker id a slot's holder word names (HOLDER_WORKER | wid), else None."""
    if holder & _core.HOLDER_WORKER and not holder & ~(_core.HOLDER_WORKER | WID_MASK):
        return holder & WID_MASK
    return None


def owner_of(owner: int) -> tuple[int, int, bool]:
    """(pid, worker or send worker id, is a send worker) of a slot's owner
    word: (pid << 32) | (wid + 1) while a task runs, (pid << 32) |
    OWNER_SENDER | sw while a send worker holds a packet.  Meaningless for 0."""
    low = owner & U32
    if low & _core.OWNER_SENDER:
        return owner >> 32, low & (_core.OWNER_SENDER - 1), True
    return owner >> 32, (low & WID_MASK) - 1, False


def task_key(gen: int, idx: int) -> int:
    return ((gen & U32) << 32) | idx


# ---- records --------------------------------------------------------------------------------
R = TypeVar("R", bound="Record")


class Record:
    """A struct of the segment, read field by field through a load function.

    Subclasses are dataclasses whose fields are exactly the scalar fields of
    the C struct (its ``TABLE`` minus ``ARRAYS``); offsets come from ``TABLE``."""

    TABLE: ClassVar[Mapping[str, int]]
    SIZE: ClassVar[int]
    ARRAYS: ClassVar[frozenset[str]] = frozenset()
    _OFFS: ClassVar[tuple[int, ...]]

    @classmethod
    def read(cls: type[R], load: Load, base: int = 0) -> R:
        return cls(*[load(base + o) for o in cls._OFFS])  # type: ignore[call-arg]

    @classmethod
    def word(cls, load: Load, base: int, name: str) -> int:
        """One field of the struct at ``base``."""
        return load(base + cls.TABLE[name])

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


RT = TypeVar("RT", bound=type[Record])


def _record(table: Mapping[str, int], size: int,
            arrays: tuple[str, ...] = ()) -> Callable[[RT], RT]:
    """Bind a record dataclass to its C struct: field table, size, array
    fields (not read as words)."""

    def wrap(cls: RT) -> RT:
        cls.TABLE, cls.SIZE, cls.ARRAYS = table, size, frozenset(arrays)
        cls._OFFS = tuple(table[f.name] for f in fields(cls))  # type: ignore[arg-type]
        return cls

    return wrap


@_record(_core.HEADER_FIELDS, _core.HEADER_SIZE, ("arena_free", "broken_reason"))
@dataclass(frozen=True)
class Header(Record):
    """header_t: configuration (written once) and the mutable words."""

    magic: int
    version: int
    total_size: int
    n_workers: int
    n_slots: int
    slot_size: int
    local_cap: int
    inject_cap: int
    n_clients: int
    n_funcs: int
    arena_size: int
    workers_off: int
    queues_off: int
    inject_off: int
    clients_off: int
    funcs_off: int
    slots_off: int
    arena_off: int
    owner_uid: int
    created_ns: int
    coord_pid: int
    coord_start: int
    max_payload: int
    run_state: int
    epoch: int
    shutdown_seq: int
    reclaim: int
    reclaims: int
    watch: int
    idle: int
    free_head: int
    free_count: int
    slots_carved: int
    fn_count: int
    arena_bump: int
    arena_live_bytes: int
    submitted: int
    completed: int
    crashed: int
    retried: int
    n_send: int
    send_cap: int
    n_waiters: int
    inflight: int
    relay_off: int
    broken_len: int

    def config(self) -> dict[str, int]:
        """The sizes ``compute_layout`` takes (CONFIG_KEYS)."""
        return {k: getattr(self, k) for k in CONFIG_KEYS}


@_record(_core.WORKER_FIELDS, _core.WORKER_SIZE)
@dataclass(frozen=True)
class Worker(Record):
    """worker_t: one worker's identity, park word and counters."""

    pid: int
    start: int
    epoch: int
    state: int
    current: int
    current_since: int
    lifo: int
    help_depth: int
    park_seq: int
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
    busy: int
    taking: int


WORKER_COUNTERS = ("tasks_run", "steals", "steal_attempts", "stolen_tasks", "parks", "wakeups",
                   "inject_pulls", "overflows", "spins", "lifo_hits", "helped")


@_record(_core.CLIENT_FIELDS, _core.CLIENT_SIZE, ("ring",))
@dataclass(frozen=True)
class Client(Record):
    """client_t: a client entry (its completion ring follows at ``ring``)."""

    pid: int
    start: int
    submitted: int
    harvested: int
    ring_ready: int
    busy: int
    units: int
    seq: int
    sleeping: int
    spinning: int


@_record(_core.LOCAL_QUEUE_FIELDS, _core.QUEUE_SIZE, ("buf",))
@dataclass(frozen=True)
class LocalQueue(Record):
    """local_queue_t: head = (steal << 32) | real, tail (u32); u32 entries at ``buf``."""

    head: int
    tail: int


@_record(_core.RING_FIELDS, _core.RING_SIZE, ("cells",))
@dataclass(frozen=True)
class Ring(Record):
    """ring_t: enq and deq hints; CELL_SIZE-byte cells (seq << 32 | value) follow."""

    enq: int
    deq: int


@_record(_core.FUNC_FIELDS, _core.FUNC_SIZE)
@dataclass(frozen=True)
class Func(Record):
    """func_t: a function table entry."""

    state: int
    blob: int
    len: int
    hash: int


@_record(_core.SLOT_FIELDS, _core.SLOT_HEADER_SIZE)
@dataclass(frozen=True)
class Slot(Record):
    """slot_t: one task slot's header (the payload follows)."""

    state: int
    next: int
    fn_id: int
    holder: int
    owner: int
    flags: int
    args_len: int
    result: int
    submitted_ns: int
    started_ns: int
    finished_ns: int
    attempts: int
    parent: int
    gen: int
    args_blob: int
    result_blob: int
    flow: int
    seq: int
    kind: int
    limit_ns: int

    @property
    def refs(self) -> int:
        return slot_refs(self.state)

    @property
    def bits(self) -> int:
        return slot_flags(self.state)


@_record(_core.BLOCK_FIELDS, _core.BLOCK_SIZE)
@dataclass(frozen=True)
class Block(Record):
    """block_t: an arena block's header: (BLOCK_MAGIC << 32) | class, refs, len."""

    magic_class: int
    refs: int
    len: int
    next: int


@_record(_core.RELAY_FIELDS, _core.RELAY_SIZE, ("fifo",))
@dataclass(frozen=True)
class Relay(Record):
    """relay_t: the relay's budget, waiter counters (token FIFO at ``fifo``)."""

    avail: int
    capacity: int
    done_seq: int
    flushing: int
    registrations: int
    wakes: int
    spurious: int
    pending_with_capacity: int
    passed_on: int
    fast: int
    full: int
    timeouts: int
    recheck: int


@_record(_core.WAITER_FIELDS, _core.WAITER_SIZE)
@dataclass(frozen=True)
class Waiter(Record):
    """waiter_t: a client send() blocked on the relay budget."""

    state: int
    pid: int

    @property
    def wt(self) -> int:
        return self.state & WAITER_STATE_MASK

    @property
    def gen(self) -> int:
        return self.state >> 8


@_record(_core.SEND_FIELDS, _core.SEND_SIZE, ("rings",))
@dataclass(frozen=True)
class Send(Record):
    """send_t: one send worker's counters (its ring and waitlist at ``rings``)."""

    seq: int
    sleeping: int
    pid: int
    backlog: int
    busy: int
    start: int
    pushed: int
    popped: int
    registrations: int
    wakes: int
    pending_with_capacity: int
    sent: int
    filtered: int
    errors: int
    crashed: int
    in_doubt: int


RECORDS: tuple[type[Record], ...] = (Header, Worker, Client, LocalQueue, Ring, Func, Slot, Block,
                                     Relay, Waiter, Send)


# ---- configuration and layout ---------------------------------------------------------------
CONFIG_KEYS = ("n_workers", "n_slots", "slot_size", "local_cap", "n_clients", "n_funcs",
               "arena_size", "n_send", "send_cap", "n_waiters", "inflight")
# The sizes of a runtime nobody chose otherwise (Pool, shmrt start); n_workers
# has none (the CPUs).  max_payload is derived (Config.as_dict).
CONFIG_DEFAULTS: dict[str, int] = {
    "n_slots": 16384, "slot_size": 512, "local_cap": _core.LOCAL_CAP_MAX, "n_clients": 16,
    "n_funcs": 4096, "arena_size": 64 << 20, "n_send": 0, "send_cap": 1024, "n_waiters": 64,
    "inflight": 0,
}


@dataclass
class Config:
    """Sizes of a runtime's segment (see shmrt/_core/layout.h)."""

    n_workers: int
    n_slots: int = CONFIG_DEFAULTS["n_slots"]
    slot_size: int = CONFIG_DEFAULTS["slot_size"]
    local_cap: int = CONFIG_DEFAULTS["local_cap"]
    n_clients: int = CONFIG_DEFAULTS["n_clients"]
    n_funcs: int = CONFIG_DEFAULTS["n_funcs"]
    arena_size: int = CONFIG_DEFAULTS["arena_size"]
    max_payload: int | None = None
    n_send: int = CONFIG_DEFAULTS["n_send"]
    send_cap: int = CONFIG_DEFAULTS["send_cap"]
    n_waiters: int = CONFIG_DEFAULTS["n_waiters"]
    inflight: int = CONFIG_DEFAULTS["inflight"]

    def as_dict(self) -> dict[str, int]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        # an echo holds its argument and its result blocks at once: a third of
        # the arena each (half-step size classes round up by at most 1.5x)
        d.setdefault("max_payload", self.arena_size // 3)
        return d


def _align(v: int, a: int) -> int:
    return (v + a - 1) & ~(a - 1)


def ring_bytes(cap: int) -> int:
    """sizeof(ring_t) + cap cells (ring_bytes in layout.h)."""
    return _core.RING_SIZE + cap * _core.CELL_SIZE


def fifo_cap(n_waiters: int) -> int:
    """Capacity of the relay's waiter token FIFO (fifo_cap in layout.h)."""
    c = 1
    while c < 4 * n_waiters + 4:
        c <<= 1
    return c


_LAYOUT_KEYS = ("workers_off", "queues_off", "inject_off", "clients_off", "funcs_off",
                "slots_off", "arena_off", "relay_off")


@dataclass(frozen=True)
class Layout:
    """Sizes and offsets of one segment (layout_t in layout.h), from the C
    core's ``compute_layout`` or a mapped segment's ``layout``."""

    total_size: int
    n_workers: int
    n_slots: int
    slot_size: int
    local_cap: int
    inject_cap: int
    n_clients: int
    n_funcs: int
    arena_size: int
    max_payload: int
    workers_off: int
    queues_off: int
    inject_off: int
    clients_off: int
    funcs_off: int
    slots_off: int
    arena_off: int
    client_stride: int
    n_send: int = 0  # relay region (all 0 but relay_off without a relay)
    send_cap: int = 0
    n_waiters: int = 0
    inflight: int = 0
    relay_off: int = 0
    relay_hdr: int = 0  # relay_t + its token FIFO, aligned to 64
    send_stride: int = 0  # send_t + its ring + its waitlist, aligned to 64

    @classmethod
    def of(cls, seg: _core.Segment) -> Layout:
        """The validated layout of a mapped segment."""
        d = seg.layout
        names = [f.name for f in fields(cls)]
        if any(k not in d for k in names):  # segment.c's layout dict lacks send_stride
            d = {**_core.compute_layout({k: d[k] for k in CONFIG_KEYS}), **d}
        return cls(**{k: d[k] for k in names})

    @classmethod
    def compute(cls, cfg: Mapping[str, int], max_payload: int = 0) -> Layout:
        """The layout of configuration ``cfg`` (every key of CONFIG_KEYS; the
        relay's may be left out when ``n_send`` is 0): the C core's
        cfg_check and cfg_layout.  LayoutError if ``cfg`` is out of range."""
        missing = [k for k in CONFIG_KEYS[:7] if k not in cfg]
        relay = bool(cfg.get("n_send", 0))
        if relay:
            missing += [k for k in CONFIG_KEYS[7:] if k not in cfg]
        if missing:
            raise LayoutError(f"configuration lacks {', '.join(missing)}")
        c = {k: int(cfg[k]) for k in CONFIG_KEYS if k in cfg}
        try:
            out = _core.compute_layout(c)
        except (ValueError, OverflowError, TypeError) as e:
            raise LayoutError(f"invalid segment: {e}") from None
        rel = {k: c[k] if relay else 0 for k in CONFIG_KEYS[7:]}
        return cls(**{k: c[k] for k in CONFIG_KEYS[:7]}, **rel, **out, max_payload=max_payload)

    @classmethod
    def validate(cls, h: Header, file_size: int) -> Layout:
        """The layout a header describes, checked as the C core's
        validate_header checks it before mapping (cfg_check and the offsets
        are the C core's compute_layout); LayoutError with the reason."""
        if file_size < _core.HEADER_SIZE:
            raise LayoutError("invalid segment: smaller than its header (truncated?)")
        if h.magic != _core.SHMRT_MAGIC:
            raise LayoutError("invalid segment: bad magic: not a shmrt segment")
        if h.version != _core.SHMRT_LAYOUT_VERSION:
            raise LayoutError(f"invalid segment: unsupported layout version {h.version} "
                              f"(this shmrt reads version {_core.SHMRT_LAYOUT_VERSION})")
        if h.total_size != file_size:
            raise LayoutError(f"invalid segment: recorded size {h.total_size} does not match "
                              f"the file size {file_size}")
        lay = cls.compute(h.config(), h.max_payload)
        if (lay.total_size != h.total_size or lay.inject_cap != h.inject_cap
                or any(getattr(lay, k) != getattr(h, k) for k in _LAYOUT_KEYS)):
            raise LayoutError("invalid segment: header offsets are inconsistent with its counts")
        if h.max_payload > h.arena_size and h.max_payload > h.slot_size:
            raise LayoutError("invalid segment: max_payload larger than the arena")
        return lay

    # ---- where things are (indices checked: LayoutError) ----------------------------------
    @property
    def region_len(self) -> int:
        """Bytes from the start to the arena (what a snapshot keeps)."""
        return self.arena_off

    @property
    def waiters_off(self) -> int:
        return self.relay_off + self.relay_hdr

    @property
    def sends_off(self) -> int:
        return self.waiters_off + self.n_waiters * _core.WAITER_SIZE

    @property
    def relay_len(self) -> int:
        """Bytes of the relay region (0 without a relay)."""
        if not self.n_send:
            return 0
        return self.relay_hdr + self.n_waiters * _core.WAITER_SIZE + self.n_send * self.send_stride

    @property
    def waitlist_rel(self) -> int:
        """Offset of a send ring's waitlist ring_t from the start of its send_t."""
        return _core.SEND_SIZE + _align(ring_bytes(self.send_cap), _core.CACHE_LINE)

    @staticmethod
    def _check(i: int, n: int, what: str) -> None:
        if not 0 <= i < n:
            raise LayoutError(f"{what} {i} out of range")

    def worker_off(self, wid: int) -> int:
        self._check(wid, self.n_workers, "worker id")
        return self.workers_off + wid * Worker.SIZE

    def queue_off(self, wid: int) -> int:
        self._check(wid, self.n_workers, "worker id")
        return self.queues_off + wid * LocalQueue.SIZE

    def client_off(self, cid: int) -> int:
        self._check(cid, self.n_clients, "client id")
        return self.clients_off + cid * self.client_stride

    def func_off(self, fid: int) -> int:
        self._check(fid, self.n_funcs, "function id")
        return self.funcs_off + fid * Func.SIZE

    def slot_off(self, idx: int) -> int:
        self._check(idx, self.n_slots, "slot index")
        return self.slots_off + idx * self.slot_size

    def _need_relay(self) -> None:
        if not self.n_send:
            raise LayoutError("this segment has no relay region")

    def waiter_off(self, i: int) -> int:
        self._need_relay()
        self._check(i, self.n_waiters, "waiter entry")
        return self.waiters_off + i * Waiter.SIZE

    def send_off(self, i: int) -> int:
        self._need_relay()
        self._check(i, self.n_send, "send ring")
        return self.sends_off + i * self.send_stride


# ---- a mapped segment, typed ---------------------------------------------------------------
class View:
    """Typed reads of a mapped segment (acquire loads of its words)."""

    def __init__(self, seg: _core.Segment) -> None:
        self.seg = seg
        self.layout = Layout.of(seg)
        self.load: Load = seg.load64

    def header(self) -> Header:
        return Header.read(self.load)

    def word(self, name: str) -> int:
        """One header word (HEADER_FIELDS name)."""
        return self.load(Header.TABLE[name])

    def worker(self, wid: int) -> Worker:
        return Worker.read(self.load, self.layout.worker_off(wid))

    def worker_word(self, wid: int, name: str) -> int:
        return Worker.word(self.load, self.layout.worker_off(wid), name)

    def client(self, cid: int) -> Client:
        return Client.read(self.load, self.layout.client_off(cid))

    def slot(self, idx: int) -> Slot:
        return Slot.read(self.load, self.layout.slot_off(idx))

    def run_state(self) -> int:
        return self.word("run_state")

    def coordinator(self) -> tuple[int, int]:
        """(pid, start time) of the coordinator recorded in the header."""
        return self.word("coord_pid"), self.word("coord_start")


def header_word(seg: _core.Segment, name: str) -> int:
    """One header word of a mapped segment (no layout needed)."""
    return seg.load64(Header.TABLE[name])


def stale_header(head: Buffer) -> tuple[int, int, int] | None:
    """(magic, coord_pid, coord_start) from the first bytes of a segment of
    any layout version (those offsets never move: layout.h), or None if the
    bytes are too short."""
    load = bytes_loader(head)
    try:
        return tuple(load(Header.TABLE[k]) for k in ("magic", "coord_pid", "coord_start"))  # type: ignore[return-value]
    except LayoutError:
        return None
