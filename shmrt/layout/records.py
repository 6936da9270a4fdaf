"""The records of the segment layout (shmrt.layout): one frozen dataclass per
C struct of layout.h, read through a load function; state names from the C
enums; decoders of packed words.  See the package docstring."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from .. import _core
from ..errors import ShmrtError

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import ClassVar, TypeVar

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
WAITER_STATE_MASK = _core.WT_MASK  # waiter_t.state is (gen << 8) | WT_* (layout.h)


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


# the sizes compute_layout takes (the header's configuration words)
CONFIG_KEYS = ("n_workers", "n_slots", "slot_size", "local_cap", "n_clients", "n_funcs",
               "arena_size", "n_send", "send_cap", "n_waiters", "inflight")


# ---- records --------------------------------------------------------------------------------
if TYPE_CHECKING:
    R = TypeVar("R", bound="Record")


class Record:
    """A struct of the segment, read field by field through a load function.

    A subclass names its C struct's field table, size and array fields (not
    read as words) as class keywords, and declares exactly the struct's
    scalar fields, in any order, as annotations; offsets come from the table.
    Instances are immutable.  (Not dataclasses: building a dozen of them
    costs a worker ~10 ms of start-up.)"""

    TABLE: ClassVar[Mapping[str, int]]
    SIZE: ClassVar[int]
    ARRAYS: ClassVar[frozenset[str]] = frozenset()
    NAMES: ClassVar[tuple[str, ...]]
    _OFFS: ClassVar[tuple[int, ...]]

    def __init_subclass__(cls, table: Mapping[str, int], size: int,
                          arrays: tuple[str, ...] = (), **kw: object) -> None:
        super().__init_subclass__(**kw)
        cls.TABLE, cls.SIZE, cls.ARRAYS = table, size, frozenset(arrays)
        cls.NAMES = tuple(n for n, t in cls.__annotations__.items() if "ClassVar" not in str(t))
        cls._OFFS = tuple(table[n] for n in cls.NAMES)

    def __init__(self, *values: int) -> None:
        self.__dict__.update(zip(self.NAMES, values, strict=True))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={v}' for n, v in self.__dict__.items())})"

    @classmethod
    def read(cls: type[R], load: Load, base: int = 0) -> R:
        return cls(*[load(base + o) for o in cls._OFFS])

    @classmethod
    def word(cls, load: Load, base: int, name: str) -> int:
        """One field of the struct at ``base``."""
        return load(base + cls.TABLE[name])

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Header(Record, table=_core.HEADER_FIELDS, size=_core.HEADER_SIZE,
             arrays=("arena_free", "broken_reason")):
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
    holds_off: int
    arena_untracked: int
    arena_reserved: int
    broken_len: int

    def config(self) -> dict[str, int]:
        """The sizes ``compute_layout`` takes (CONFIG_KEYS)."""
        return {k: getattr(self, k) for k in CONFIG_KEYS}


class Worker(Record, table=_core.WORKER_FIELDS, size=_core.WORKER_SIZE):
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


class Client(Record, table=_core.CLIENT_FIELDS, size=_core.CLIENT_SIZE,
             arrays=("ring",)):
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


class LocalQueue(Record, table=_core.LOCAL_QUEUE_FIELDS, size=_core.QUEUE_SIZE,
                 arrays=("buf",)):
    """local_queue_t: head = (steal << 32) | real, tail (u32); u32 entries at ``buf``."""

    head: int
    tail: int


class Ring(Record, table=_core.RING_FIELDS, size=_core.RING_SIZE,
           arrays=("cells",)):
    """ring_t: enq and deq hints; CELL_SIZE-byte cells (seq << 32 | value) follow."""

    enq: int
    deq: int


class Func(Record, table=_core.FUNC_FIELDS, size=_core.FUNC_SIZE):
    """func_t: a function table entry."""

    state: int
    blob: int
    len: int
    hash: int


class Slot(Record, table=_core.SLOT_FIELDS, size=_core.SLOT_HEADER_SIZE):
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


class Block(Record, table=_core.BLOCK_FIELDS, size=_core.BLOCK_SIZE):
    """block_t: an arena block's header: (BLOCK_MAGIC << 32) | class, refs, len."""

    magic_class: int
    refs: int
    len: int
    next: int
    recount: int


class Holds(Record, table=_core.HOLDS_FIELDS, size=_core.HOLDS_SIZE, arrays=("e",)):
    """holds_t: the arena blocks one process record holds (holds.h); the
    entries at ``e``: (local count << HOLD_COUNT_SHIFT) | (block offset / 64 + 1)."""

    carving: int
    used: int
    count: int
    refused: int


class Relay(Record, table=_core.RELAY_FIELDS, size=_core.RELAY_SIZE,
            arrays=("fifo",)):
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
    withdrawn: int


class Waiter(Record, table=_core.WAITER_FIELDS, size=_core.WAITER_SIZE):
    """waiter_t: a client send() blocked on the relay budget."""

    state: int
    pid: int

    @property
    def wt(self) -> int:
        return self.state & WAITER_STATE_MASK

    @property
    def gen(self) -> int:
        return self.state >> 8


class Send(Record, table=_core.SEND_FIELDS, size=_core.SEND_SIZE,
           arrays=("rings",)):
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
    rx_received: int  # the UDP ingress's counters (send worker 0's entry; udp.c)
    rx_kernel_drops: int
    rx_no_space: int
    relay_fn: int  # the relay's transform fn id + 1 (named relays connect by it)


RECORDS: tuple[type[Record], ...] = (Header, Worker, Client, LocalQueue, Ring, Func, Slot, Block,
                                     Holds, Relay, Waiter, Send)
