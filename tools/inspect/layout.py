"""Pure-Python decoding of a shmrt segment image, for the inspector.

Why a second decoder next to the C core: the inspector has to work on
segments the runtime would refuse or is tearing down, must never call code
that can write, and must survive hostile bytes in ``/dev/shm``.  So
everything here takes plain bytes, validates every count, offset and index
itself (mirroring ``validate_header`` / ``cfg_check`` / ``cfg_layout`` in
``shmrt/_core/segment.c``), and raises only :class:`InspectError`.

Field offsets are never restated by hand: they come from the C structs via
``shmrt._core.HEADER_FIELDS`` / ``WORKER_FIELDS`` / ``SLOT_FIELDS`` /
``QUEUE_FIELDS`` / ``RELAY_FIELDS`` / ``SEND_FIELDS`` / ``WAITER_FIELDS``
(struct sizes from ``RELAY_SIZE`` / ``SEND_SIZE`` / ``WAITER_SIZE`` /
``RING_SIZE``).  The few struct *sizes* those tables cannot express are
constants below; :func:`compute_layout` cross-checks the result against
``shmrt._core.compute_layout`` so a layout change cannot silently skew the
inspector.
"""

from __future__ import annotations

import pickletools
import re
import struct
from dataclasses import dataclass

from shmrt import _core

__all__ = [
    "InspectError",
    "Layout",
    "Header",
    "WorkerRaw",
    "QueueRaw",
    "RingRaw",
    "ClientRaw",
    "SlotRaw",
    "FuncRaw",
    "RelayRaw",
    "WaiterRaw",
    "SendRaw",
    "compute_layout",
    "decode_header",
    "decode_worker",
    "decode_queue",
    "decode_ring",
    "decode_client",
    "decode_slot",
    "decode_func",
    "decode_block",
    "decode_relay",
    "decode_waiter",
    "decode_send",
    "pickle_global_name",
    "u64",
]


class InspectError(Exception):
    """A segment, snapshot or argument that cannot be inspected.

    The message is one line, fit for ``shmrt inspect: <message>`` on stderr."""


HF = _core.HEADER_FIELDS
WF = _core.WORKER_FIELDS
SF = _core.SLOT_FIELDS
QF = _core.QUEUE_FIELDS
RF = _core.RELAY_FIELDS
TF = _core.SEND_FIELDS
WTF = _core.WAITER_FIELDS

MAGIC = _core.MAGIC
VERSION = _core.SHMRT_LAYOUT_VERSION
HEADER_SIZE = _core.HEADER_SIZE
CACHE_LINE = _core.CACHE_LINE
LOCAL_CAP_MAX = _core.LOCAL_CAP_MAX
SLOT_HEADER_SIZE = _core.SLOT_HEADER_SIZE
BLOCK_HEADER_SIZE = _core.BLOCK_HEADER_SIZE
RELAY_SIZE = _core.RELAY_SIZE  # sizeof(relay_t) (its token FIFO ring_t follows)
SEND_SIZE = _core.SEND_SIZE  # sizeof(send_t) (its two ring_t follow)
WAITER_SIZE = _core.WAITER_SIZE  # sizeof(waiter_t)
RING_SIZE = _core.RING_SIZE  # sizeof(ring_t) (header; the cells follow)
MAX_SEND = 64  # cfg_check: n_send in 0..64
MAX_WAITERS = 4096
WT_MASK = 0xFF  # waiter_t.state: (gen << 8) | WT_*
# Sizes the offset tables cannot express (layout.h); compute_layout() checks
# the layout they produce against the C core's.
WORKER_SIZE = 256  # sizeof(worker_t)
FUNC_SIZE = 32  # sizeof(func_t): state, blob, len, hash
CELL_SIZE = 8  # a ring cell is one word: (seq << 32) | value (queue.h)
# The arena's size classes come from the C core (arena.c's half steps: 4K,
# 6K, 8K, 12K, ...): one source of truth.
ARENA_MIN_BLOCK = _core.ARENA_MIN_BLOCK
ARENA_CLASSES = _core.ARENA_CLASSES
ARENA_CLASS_SIZES: tuple[int, ...] = _core.ARENA_CLASS_SIZES
BLOCK_MAGIC = _core.BLOCK_MAGIC
MAX_U32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def _align(v: int, a: int) -> int:
    return (v + a - 1) & ~(a - 1)


LQ_SIZE = _align(QF["buf"] + 4 * LOCAL_CAP_MAX, CACHE_LINE)  # sizeof(local_queue_t)
RING_HDR = RING_SIZE  # offsetof(ring_t, cells) == sizeof(ring_t)
CLIENT_RING = QF["ring"]  # offsetof(client_t, ring)
_Q = struct.Struct("<Q")
_I = struct.Struct("<I")


def u64(buf: bytes | bytearray | memoryview, off: int) -> int:
    """The little-endian u64 at ``off``; InspectError if it is not inside ``buf``."""
    if off < 0 or off + 8 > len(buf):
        raise InspectError(
            f"read of 8 bytes at offset {off} is outside the image ({len(buf)} bytes)"
        )
    return int(_Q.unpack_from(buf, off)[0])


def s64(v: int) -> int:
    """``v`` (a u64) as the int64_t the C code treats it as (ring ``len`` words)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _u32(buf: bytes | bytearray | memoryview, off: int) -> int:
    if off < 0 or off + 4 > len(buf):
        raise InspectError(f"read of 4 bytes at offset {off} is outside the image")
    return int(_I.unpack_from(buf, off)[0])


# ---- layout ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Validated sizes and offsets of one segment (layout_t in layout.h)."""

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
    # relay region (all 0 but relay_off when n_send == 0: no relay)
    n_send: int = 0
    send_cap: int = 0
    n_waiters: int = 0
    inflight: int = 0
    relay_off: int = 0
    relay_hdr: int = 0  # relay_t + its token FIFO, aligned to 64
    send_stride: int = 0  # send_t + its ring + its waitlist, aligned to 64
    holds_off: int = 0  # hold tables, one per process record

    @property
    def region_len(self) -> int:
        """Bytes from the start to the arena: header, workers, queues, inject
        ring, clients, function table, relay region, slots (what a snapshot
        keeps)."""
        return self.arena_off

    @property
    def waiters_off(self) -> int:
        return self.relay_off + self.relay_hdr

    @property
    def sends_off(self) -> int:
        return self.waiters_off + self.n_waiters * WAITER_SIZE

    @property
    def relay_len(self) -> int:
        """Bytes of the relay region (0 without a relay)."""
        if not self.n_send:
            return 0
        return self.relay_hdr + self.n_waiters * WAITER_SIZE + self.n_send * self.send_stride

    @property
    def waitlist_rel(self) -> int:
        """Offset of a send ring's waitlist ring_t from the start of its send_t."""
        return SEND_SIZE + _align(ring_bytes(self.send_cap), CACHE_LINE)


_CFG_KEYS = (
    "n_workers",
    "n_slots",
    "slot_size",
    "local_cap",
    "n_clients",
    "n_funcs",
    "arena_size",
    "n_send",
    "send_cap",
    "n_waiters",
    "inflight",
)
# cfg_from_dict's defaults for the relay keys (a cfg without them has no relay)
_CFG_DEFAULTS = {"n_send": 0, "send_cap": 1024, "n_waiters": 64, "inflight": 0}


def _is_pow2(v: int) -> bool:
    return v > 0 and not v & (v - 1)


def pow2_at_least(v: int) -> int:
    c = 1
    while c < v:
        c <<= 1
    return c


def fifo_cap(n_waiters: int) -> int:
    """Capacity of the relay's waiter token FIFO (fifo_cap in layout.h)."""
    return pow2_at_least(4 * n_waiters + 4)


def ring_bytes(cap: int) -> int:
    """sizeof(ring_t) + cap cells (ring_bytes in layout.h)."""
    return RING_SIZE + cap * CELL_SIZE


def cfg_check(cfg: dict[str, int]) -> str | None:
    """The reason ``cfg`` is out of range, or None (cfg_check in segment.c)."""
    c = cfg
    if not 1 <= c["n_workers"] <= 1024:
        return "n_workers out of range (1..1024)"
    if not 2 <= c["n_slots"] <= 1 << 24:
        return "n_slots out of range (2..16M)"
    if not 256 <= c["slot_size"] <= 1 << 20 or c["slot_size"] % CACHE_LINE:
        return "slot_size must be a multiple of 64 in 256..1MiB"
    lc = c["local_cap"]
    if lc < 2 or lc > LOCAL_CAP_MAX or lc & (lc - 1):
        return "local_cap must be a power of two in 2..256"
    if not 1 <= c["n_clients"] <= 256:
        return "n_clients out of range (1..256)"
    if not 1 <= c["n_funcs"] <= 1 << 20:
        return "n_funcs out of range"
    if c["arena_size"] % ARENA_MIN_BLOCK or c["arena_size"] > 1 << 40:
        return "arena_size must be a multiple of 4096 and < 1 TiB"
    ns = c.get("n_send", 0)
    if ns > MAX_SEND:
        return "n_send out of range (0..64)"
    if ns:
        sc = c.get("send_cap", 0)
        if not _is_pow2(sc) or sc < 2 or sc > 1 << 20:
            return "send_cap must be a power of two in 2..1M"
        if not 1 <= c.get("n_waiters", 0) <= MAX_WAITERS:
            return "n_waiters out of range"
        if not 1 <= c.get("inflight", 0) <= c["n_slots"]:
            return "inflight must be in 1..n_slots"
    return None


def compute_layout(
    cfg: dict[str, int], max_payload: int = 0, *, cross_check: bool = True
) -> Layout:
    """Offsets for ``cfg`` (cfg_layout in segment.c), in pure Python.

    With ``cross_check`` the result must equal ``shmrt._core.compute_layout``;
    a difference means this module and the C core disagree (version skew)."""
    cfg = {**_CFG_DEFAULTS, **cfg}
    err = cfg_check(cfg)
    if err:
        raise InspectError(f"invalid segment: {err}")
    n_slots = cfg["n_slots"]
    cap = pow2_at_least(n_slots)
    stride = _align(CLIENT_RING + ring_bytes(cap), CACHE_LINE)
    off = HEADER_SIZE
    workers_off = off
    off = _align(off + cfg["n_workers"] * WORKER_SIZE, CACHE_LINE)
    queues_off = off
    off = _align(off + cfg["n_workers"] * LQ_SIZE, CACHE_LINE)
    inject_off = off
    off = _align(off + ring_bytes(cap), CACHE_LINE)
    clients_off = off
    off = _align(off + cfg["n_clients"] * stride, CACHE_LINE)
    funcs_off = off
    off = _align(off + cfg["n_funcs"] * FUNC_SIZE, CACHE_LINE)
    n_send = cfg["n_send"]
    holds_off = off
    off = _align(off + (cfg["n_workers"] + cfg["n_clients"] + n_send) * _core.HOLDS_SIZE,
                 CACHE_LINE)
    relay_off = off
    send_cap = n_waiters = inflight = relay_hdr = send_stride = 0
    if n_send:
        send_cap, n_waiters, inflight = cfg["send_cap"], cfg["n_waiters"], cfg["inflight"]
        relay_hdr = _align(RELAY_SIZE + ring_bytes(fifo_cap(n_waiters)), CACHE_LINE)
        send_stride = _align(
            SEND_SIZE + _align(ring_bytes(send_cap), CACHE_LINE) + ring_bytes(cap), CACHE_LINE
        )
        off += relay_hdr + n_waiters * WAITER_SIZE + n_send * send_stride
    off = _align(off, 4096)
    slots_off = off
    off = _align(off + n_slots * cfg["slot_size"], 4096)
    arena_off = off
    total = off + cfg["arena_size"]
    lay = Layout(
        total,
        cfg["n_workers"],
        n_slots,
        cfg["slot_size"],
        cfg["local_cap"],
        cap,
        cfg["n_clients"],
        cfg["n_funcs"],
        cfg["arena_size"],
        max_payload,
        workers_off,
        queues_off,
        inject_off,
        clients_off,
        funcs_off,
        slots_off,
        arena_off,
        stride,
        n_send,
        send_cap,
        n_waiters,
        inflight,
        relay_off,
        relay_hdr,
        send_stride,
        holds_off,
    )
    if cross_check:
        try:
            c = _core.compute_layout({k: cfg[k] for k in _CFG_KEYS})
        except (ValueError, OverflowError, TypeError) as e:
            raise InspectError(f"invalid segment: {e}") from None
        mine = {k: getattr(lay, k) for k in c}
        if mine != c:
            raise InspectError(
                "the inspector's layout disagrees with shmrt._core (version skew: reinstall shmrt)"
            )
    return lay


# ---- header ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    """The header: validated layout plus every mutable word (untrusted values)."""

    layout: Layout
    version: int
    owner_uid: int
    created_ns: int
    coord_pid: int
    coord_start: int
    run_state: int
    epoch: int
    shutdown_seq: int
    idle: int
    free_head: int
    free_count: int
    fn_count: int
    arena_bump: int
    arena_live_bytes: int
    submitted: int
    completed: int
    crashed: int
    retried: int
    broken_reason: str | None = None  # why the run state is RUN_BROKEN (broken.c)


def _broken_reason(buf: bytes | bytearray | memoryview, h: dict[str, int]) -> str | None:
    """The recorded reason of a broken runtime: bounded, printable ASCII only
    (it is shared memory like the rest)."""
    if h["run_state"] != _core.RUN_BROKEN:
        return None
    n = min(h["broken_len"], _core.BROKEN_REASON_MAX - 1)
    off = HF["broken_reason"]
    raw = bytes(buf[off:off + n]).split(b"\0", 1)[0]
    return "".join(chr(c) if 0x20 <= c <= 0x7E else "?" for c in raw) or "(no reason recorded)"


def decode_header(buf: bytes | bytearray | memoryview, file_size: int) -> Header:
    """Validate and decode a header (validate_header in segment.c).

    ``file_size`` is the size of the file the header came from (fstat, or the
    size recorded in a snapshot)."""
    if file_size < HEADER_SIZE or len(buf) < HEADER_SIZE:
        raise InspectError("invalid segment: smaller than its header (truncated?)")
    h = {k: u64(buf, off) for k, off in HF.items()}
    if h["magic"] != MAGIC:
        raise InspectError("invalid segment: bad magic: not a shmrt segment")
    if h["version"] != VERSION:
        raise InspectError(
            f"invalid segment: unsupported layout version {h['version']} "
            f"(this shmrt reads version {VERSION})"
        )
    if h["total_size"] != file_size:
        raise InspectError(
            f"invalid segment: recorded size {h['total_size']} does not match "
            f"the file size {file_size}"
        )
    cfg = {k: h[k] for k in _CFG_KEYS}
    lay = compute_layout(cfg, h["max_payload"])
    if (
        lay.total_size != h["total_size"]
        or lay.inject_cap != h["inject_cap"]
        or any(
            getattr(lay, k) != h[k]
            for k in (
                "workers_off",
                "queues_off",
                "inject_off",
                "clients_off",
                "funcs_off",
                "slots_off",
                "arena_off",
                "relay_off",
                "holds_off",
            )
        )
    ):
        raise InspectError("invalid segment: header offsets are inconsistent with its counts")
    if h["max_payload"] > h["arena_size"] and h["max_payload"] > h["slot_size"]:
        raise InspectError("invalid segment: max_payload larger than the arena")
    return Header(
        lay,
        h["version"],
        h["owner_uid"],
        h["created_ns"],
        h["coord_pid"],
        h["coord_start"],
        h["run_state"],
        h["epoch"],
        h["shutdown_seq"],
        h["idle"],
        h["free_head"],
        h["free_count"],
        h["fn_count"],
        h["arena_bump"],
        h["arena_live_bytes"],
        h["submitted"],
        h["completed"],
        h["crashed"],
        h["retried"],
        _broken_reason(buf, h),
    )


# ---- workers and queues --------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerRaw:
    wid: int
    fields: dict[str, int]  # every WORKER_FIELDS entry


def worker_off(lay: Layout, wid: int) -> int:
    if not 0 <= wid < lay.n_workers:
        raise InspectError(f"worker id {wid} out of range")
    return lay.workers_off + wid * WORKER_SIZE


def decode_worker(buf: bytes | bytearray | memoryview, lay: Layout, wid: int) -> WorkerRaw:
    base = worker_off(lay, wid)
    return WorkerRaw(wid, {k: u64(buf, base + off) for k, off in WF.items()})


@dataclass(frozen=True)
class QueueRaw:
    """A local run queue: head = (steal << 32) | real, tail (u32)."""

    head: int
    tail: int
    steal: int
    real: int
    depth: int  # tail - real (wrapping); may be bogus if corrupt is set
    entries: list[int]  # slot indices, oldest first (each < n_slots)
    corrupt: str | None


def queue_off(lay: Layout, wid: int) -> int:
    if not 0 <= wid < lay.n_workers:
        raise InspectError(f"worker id {wid} out of range")
    return lay.queues_off + wid * LQ_SIZE


def decode_queue(buf: bytes | bytearray | memoryview, lay: Layout, wid: int) -> QueueRaw:
    base = queue_off(lay, wid)
    head = u64(buf, base + QF["head"])
    tail = u64(buf, base + QF["tail"]) & MAX_U32
    steal, real = head >> 32, head & MAX_U32
    depth = (tail - real) & MAX_U32
    cap = lay.local_cap
    entries: list[int] = []
    corrupt = None
    if depth > cap or ((tail - steal) & MAX_U32) > cap:
        corrupt = f"local queue {wid}: depth {depth} exceeds its capacity {cap}"
    else:
        for i in range(depth):
            v = _u32(buf, base + QF["buf"] + 4 * ((real + i) & (cap - 1)))
            if v >= lay.n_slots:
                corrupt = f"local queue {wid}: entry {v} is not a slot index"
                continue
            entries.append(v)
    return QueueRaw(head, tail, steal, real, depth, entries, corrupt)


@dataclass(frozen=True)
class RingRaw:
    """A crash-safe ring (queue.h): the values published from deq on."""

    enq: int
    deq: int
    length: int  # values found published in the cells (what the C core's ring_nonempty sees)
    entries: list[int]
    corrupt: str | None


def decode_ring(
    buf: bytes | bytearray | memoryview, off: int, cap: int, n_slots: int, what: str
) -> RingRaw:
    if cap < 1 or cap & (cap - 1):
        raise InspectError(f"{what}: ring capacity {cap} is not a power of two")
    enq, deq = u64(buf, off + QF["enq"]), u64(buf, off + QF["deq"])
    entries: list[int] = []
    corrupt = None
    if (enq - deq) & M64 > cap and (deq - enq) & M64 > cap:
        corrupt = f"{what}: {(enq - deq) & M64} entries between deq and enq, capacity {cap}"
    # The hints may lag: walk the cells from deq, past consumed ones, over the
    # published ones, up to the first free one (at most one lap).
    pos = deq
    for _ in range(cap):
        w = u64(buf, off + RING_HDR + CELL_SIZE * (pos & (cap - 1)))
        d = ((w >> 32) - (pos + 1)) & MAX_U32
        if d >= 1 << 31:
            break  # free (nothing published at pos): the end
        if d:  # consumed at pos, deq not moved yet
            pos += 1
            continue
        v = w & 0x7FFFFFFF
        if v >= n_slots:
            corrupt = f"{what}: entry {v} is not a slot index"
        else:
            entries.append(v)
        pos += 1
    return RingRaw(enq, deq, len(entries), entries, corrupt)


@dataclass(frozen=True)
class ClientRaw:
    cid: int
    pid: int
    start: int
    submitted: int
    harvested: int
    ring: RingRaw


def decode_client(buf: bytes | bytearray | memoryview, lay: Layout, cid: int) -> ClientRaw:
    if not 0 <= cid < lay.n_clients:
        raise InspectError(f"client id {cid} out of range")
    base = lay.clients_off + cid * lay.client_stride
    ring = decode_ring(
        buf, base + CLIENT_RING, lay.inject_cap, lay.n_slots, f"completion ring of client {cid}"
    )
    return ClientRaw(
        cid,
        u64(buf, base + QF["pid"]),
        u64(buf, base + QF["start"]),
        u64(buf, base + QF["submitted"]),
        u64(buf, base + QF["harvested"]),
        ring,
    )


# ---- slots ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotRaw:
    """One slot header.  Values are raw and untrusted; helpers decode them."""

    index: int
    state: int
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
    kind: int  # 0 task, 1 relay packet
    flow: int = 0  # relay packets: flow id
    seq: int = 0  # relay packets: sequence number within the flow

    @property
    def refs(self) -> int:
        return self.state >> _core.REF_SHIFT

    @property
    def bits(self) -> int:
        return self.state & (_core.REF_ONE - 1)


def slot_off(lay: Layout, idx: int) -> int:
    if not 0 <= idx < lay.n_slots:
        raise InspectError(f"slot index {idx} out of range")
    return lay.slots_off + idx * lay.slot_size


def decode_slot_at(buf: bytes | bytearray | memoryview, off: int, idx: int = 0) -> SlotRaw:
    """Decode the slot header that starts at ``off`` in ``buf``."""
    if off < 0 or off + SLOT_HEADER_SIZE > len(buf):
        raise InspectError(f"slot {idx}: header at {off} is outside the image")
    g = {k: u64(buf, off + o) for k, o in SF.items()}
    return SlotRaw(
        idx,
        g["state"],
        g["fn_id"],
        g["holder"],
        g["owner"],
        g["flags"],
        g["args_len"],
        g["result"],
        g["submitted_ns"],
        g["started_ns"],
        g["finished_ns"],
        g["attempts"],
        g["parent"],
        g["gen"],
        g["kind"],
        g["flow"],
        g["seq"],
    )


def decode_slot(buf: bytes | bytearray | memoryview, lay: Layout, idx: int) -> SlotRaw:
    return decode_slot_at(buf, slot_off(lay, idx), idx)


# ---- relay region (relay.c) -------------------------------------------------------------------
@dataclass(frozen=True)
class RelayRaw:
    """relay_t: the in-flight budget, its waiter counters and token FIFO."""

    fields: dict[str, int]  # every RELAY_FIELDS entry but "fifo"
    fifo_enq: int
    fifo_deq: int
    fifo_len: int  # tokens published in the FIFO (stale ones too)


@dataclass(frozen=True)
class WaiterRaw:
    """waiter_t: one entry per client send() blocked on the budget."""

    index: int
    state: int  # (gen << 8) | WT_*
    pid: int  # 0 = free

    @property
    def wt(self) -> int:
        return self.state & WT_MASK

    @property
    def gen(self) -> int:
        return self.state >> 8


@dataclass(frozen=True)
class SendRaw:
    """send_t: one send worker's counters, its ring and its waitlist."""

    index: int
    fields: dict[str, int]  # every SEND_FIELDS entry but "rings"
    ring_len: int  # signed `len` of the ring (its depth; capacity send_cap)
    waitlist_len: int  # signed `len` of the waitlist (capacity inject_cap)
    ring: RingRaw  # slot indices of finished packets, in send order
    waitlist: RingRaw  # slot indices of packets that found the ring full


def _need_relay(lay: Layout) -> None:
    if not lay.n_send:
        raise InspectError("this segment has no relay region")


def waiter_off(lay: Layout, i: int) -> int:
    _need_relay(lay)
    if not 0 <= i < lay.n_waiters:
        raise InspectError(f"waiter entry {i} out of range")
    return lay.waiters_off + i * WAITER_SIZE


def send_off(lay: Layout, i: int) -> int:
    _need_relay(lay)
    if not 0 <= i < lay.n_send:
        raise InspectError(f"send ring {i} out of range")
    return lay.sends_off + i * lay.send_stride


def decode_relay(buf: bytes | bytearray | memoryview, lay: Layout) -> RelayRaw:
    _need_relay(lay)
    off = lay.relay_off
    fields = {k: u64(buf, off + o) for k, o in RF.items() if k != "fifo"}
    f = off + RF["fifo"]
    fifo = decode_ring(buf, f, fifo_cap(lay.n_waiters), 1 << 31, "relay waiter FIFO")
    return RelayRaw(fields, fifo.enq, fifo.deq, fifo.length)


def decode_waiter(buf: bytes | bytearray | memoryview, lay: Layout, i: int) -> WaiterRaw:
    off = waiter_off(lay, i)
    return WaiterRaw(i, u64(buf, off + WTF["state"]), u64(buf, off + WTF["pid"]))


def decode_send(buf: bytes | bytearray | memoryview, lay: Layout, i: int) -> SendRaw:
    off = send_off(lay, i)
    fields = {k: u64(buf, off + o) for k, o in TF.items() if k != "rings"}
    r_off = off + TF["rings"]
    w_off = off + lay.waitlist_rel
    ring = decode_ring(buf, r_off, lay.send_cap, lay.n_slots, f"send ring {i}")
    wl = decode_ring(buf, w_off, lay.inject_cap, lay.n_slots, f"waitlist of send ring {i}")
    return SendRaw(i, fields, ring.length, wl.length, ring, wl)


def waiter_not_woken(avail: int, state: int, pid: int) -> bool:
    """A waiter entry in use is WAITING while budget units are free."""
    return avail > 0 and pid != 0 and state & WT_MASK == _core.WT_WAITING


def ring_stranded(ring_len: int, waitlist_len: int, cap: int) -> bool:
    """A send ring's waitlist holds packets while the ring has room."""
    return waitlist_len > 0 and ring_len < cap


def relay_suspect(buf: bytes | bytearray | memoryview, lay: Layout) -> bool:
    """Whether this read shows a possible lost wake-up (:func:`waiter_not_woken`
    or :func:`ring_stranded`); a reader then looks again a little later."""
    if not lay.n_send:
        return False
    try:
        avail = decode_relay(buf, lay).fields["avail"]
        for i in range(lay.n_waiters):
            w = decode_waiter(buf, lay, i)
            if waiter_not_woken(avail, w.state, w.pid):
                return True
        for i in range(lay.n_send):
            t = decode_send(buf, lay, i)
            if ring_stranded(t.ring_len, t.waitlist_len, lay.send_cap):
                return True
    except InspectError:
        return False
    return False


# ---- function table and arena blocks --------------------------------------------------------
@dataclass(frozen=True)
class FuncRaw:
    state: int
    blob: int
    length: int
    hash: int


def decode_func(buf: bytes | bytearray | memoryview, lay: Layout, fid: int) -> FuncRaw:
    if not 0 <= fid < lay.n_funcs:
        raise InspectError(f"function id {fid} out of range")
    base = lay.funcs_off + fid * FUNC_SIZE
    return FuncRaw(u64(buf, base), u64(buf, base + 8), u64(buf, base + 16), u64(buf, base + 24))


def block_span(lay: Layout, off: int) -> None:
    """Raise unless an arena block header may start at arena offset ``off``."""
    if (
        off % CACHE_LINE
        or lay.arena_size < BLOCK_HEADER_SIZE
        or off > lay.arena_size - BLOCK_HEADER_SIZE
    ):
        raise InspectError(f"arena block offset {off} outside the arena or misaligned")


def decode_block(
    hdr: bytes | bytearray | memoryview, lay: Layout, off: int
) -> tuple[int, int, int]:
    """(class, refs, len) of the block header ``hdr`` found at arena offset
    ``off``, checked like block_at / arena_block_data in arena.c."""
    block_span(lay, off)
    mc, refs, ln = u64(hdr, 0), u64(hdr, 8), u64(hdr, 16)
    cls = mc & MAX_U32
    if mc >> 32 != BLOCK_MAGIC or cls >= ARENA_CLASSES:
        raise InspectError(f"arena block {off}: bad magic")
    size = ARENA_CLASS_SIZES[cls]
    if size > lay.arena_size - off:
        raise InspectError(f"arena block {off}: class {cls} runs past the arena")
    if ln > size - BLOCK_HEADER_SIZE:
        raise InspectError(f"arena block {off}: length {ln} exceeds the block")
    return cls, refs, ln


_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,199}$")
_QUAL_OK = re.compile(r"^[A-Za-z_<][A-Za-z0-9_.<>]{0,199}$")
_STRING_OPS = frozenset(
    {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "SHORT_BINSTRING",
        "BINSTRING",
        "STRING",
    }
)


def pickle_global_name(data: bytes | bytearray | memoryview) -> str | None:
    """``module.qualname`` of the first global a pickle references, or None.

    Scans opcodes with ``pickletools.genops``, which parses and never
    executes; the result is restricted to identifier characters, so a
    hostile pickle cannot put markup or escapes on the terminal."""
    strings: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(bytes(data)):
            name = op.name
            if name in ("GLOBAL", "INST"):
                mod, _, qual = str(arg).partition(" ")
                return _global(mod, qual)
            if name in _STRING_OPS:
                strings.append(str(arg))
            elif name == "STACK_GLOBAL":
                return _global(strings[-2], strings[-1]) if len(strings) >= 2 else None
            elif name == "STOP":
                return None
    except Exception:  # genops on hostile bytes: any parse failure just means "unknown"
        return None
    return None


def _global(mod: str, qual: str) -> str | None:
    if _NAME_OK.match(mod) and _QUAL_OK.match(qual):
        return f"{mod}.{qual}"
    return None
