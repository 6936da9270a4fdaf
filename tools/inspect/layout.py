"""Decoding a shmrt segment image for the inspector, on top of shmrt.layout.

Why a reader of bytes: the inspector has to work on segments the runtime
would refuse or is tearing down, must never call code that can write (it
never maps a segment writable), and must survive hostile bytes in
``/dev/shm``.  So everything here takes plain bytes and validates every count,
offset and index before use, raising only :class:`InspectError`.

Nothing about the layout is restated here: field offsets, struct sizes,
constants, the configuration check and the layout computation all come from
the C core through :mod:`shmrt.layout` (``Layout.validate`` checks a header
as the C core's validate_header does, with ``_core.compute_layout``).  What
is left is the inspector's own walk over rings and queues of untrusted words.
"""

from __future__ import annotations

import pickletools
import re
from dataclasses import dataclass
from typing import Any

from shmrt import _core
from shmrt import layout as SL
from shmrt.layout import (
    WAITER_STATE_MASK,
    Layout,
    LayoutError,
    fifo_cap,
    read_u64,
    ring_bytes,
)

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
    "fifo_cap",
    "ring_bytes",
    "pickle_global_name",
    "u64",
]

# A segment, snapshot or argument that cannot be inspected; the message is one
# line, fit for ``shmrt inspect: <message>`` on stderr.  The readers of
# shmrt.layout raise it too.
InspectError = LayoutError

# The C core's tables and sizes under the names the inspector uses.
HF = _core.HEADER_FIELDS
WF = _core.WORKER_FIELDS
SF = _core.SLOT_FIELDS
QF = _core.QUEUE_FIELDS
RF = _core.RELAY_FIELDS
TF = _core.SEND_FIELDS
WTF = _core.WAITER_FIELDS
MAGIC = _core.SHMRT_MAGIC
VERSION = _core.SHMRT_LAYOUT_VERSION
HEADER_SIZE = _core.HEADER_SIZE
SLOT_HEADER_SIZE = _core.SLOT_HEADER_SIZE
BLOCK_HEADER_SIZE = _core.BLOCK_HEADER_SIZE
RELAY_SIZE = _core.RELAY_SIZE  # sizeof(relay_t) (its token FIFO ring_t follows)
SEND_SIZE = _core.SEND_SIZE  # sizeof(send_t) (its two ring_t follow)
WAITER_SIZE = _core.WAITER_SIZE
RING_SIZE = _core.RING_SIZE  # sizeof(ring_t) (header; the cells follow)
WORKER_SIZE = _core.WORKER_SIZE
FUNC_SIZE = _core.FUNC_SIZE
CELL_SIZE = _core.CELL_SIZE  # a ring cell is one word: (seq << 32) | value (queue.h)
LQ_SIZE = _core.QUEUE_SIZE  # sizeof(local_queue_t)
RING_HDR = _core.RING_FIELDS["cells"]  # offsetof(ring_t, cells)
CLIENT_RING = _core.CLIENT_FIELDS["ring"]  # offsetof(client_t, ring)
ARENA_CLASSES = _core.ARENA_CLASSES
ARENA_CLASS_SIZES: tuple[int, ...] = _core.ARENA_CLASS_SIZES
BLOCK_MAGIC = _core.BLOCK_MAGIC
MAX_U32 = SL.U32
M64 = SL.M64
WT_MASK = WAITER_STATE_MASK
u64 = read_u64  # (buf, off) -> the little-endian u64 at off; InspectError outside buf


def s64(v: int) -> int:
    """``v`` (a u64) as the int64_t the C code treats it as (ring ``len`` words)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _u32(buf: bytes | bytearray | memoryview, off: int) -> int:
    if off < 0 or off + 4 > len(buf):
        raise InspectError(f"read of 4 bytes at offset {off} is outside the image")
    return int.from_bytes(buf[off:off + 4], "little")


def compute_layout(cfg: dict[str, int], max_payload: int = 0) -> Layout:
    """The layout of ``cfg``: the C core's (shmrt.layout.Layout.compute)."""
    return Layout.compute(cfg, max_payload)


# ---- header ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    """The header: its validated layout plus every word (untrusted values),
    readable as attributes (``hdr.run_state``)."""

    layout: Layout
    words: SL.Header
    broken_reason: str | None = None  # why the run state is RUN_BROKEN (broken.c)

    def __getattr__(self, name: str) -> Any:
        if name == "words":
            raise AttributeError(name)
        return getattr(self.words, name)


def _broken_reason(buf: bytes | bytearray | memoryview, h: SL.Header) -> str | None:
    """The recorded reason of a broken runtime: bounded, printable ASCII only
    (it is shared memory like the rest)."""
    if h.run_state != _core.RUN_BROKEN:
        return None
    n = min(h.broken_len, _core.BROKEN_REASON_MAX - 1)
    off = HF["broken_reason"]
    raw = bytes(buf[off:off + n]).split(b"\0", 1)[0]
    return "".join(chr(c) if 0x20 <= c <= 0x7E else "?" for c in raw) or "(no reason recorded)"


def decode_header(buf: bytes | bytearray | memoryview, file_size: int) -> Header:
    """Validate and decode a header (as validate_header in segment.c).

    ``file_size`` is the size of the file the header came from (fstat, or the
    size recorded in a snapshot)."""
    if file_size < HEADER_SIZE or len(buf) < HEADER_SIZE:
        raise InspectError("invalid segment: smaller than its header (truncated?)")
    h = SL.Header.read(SL.bytes_loader(buf))
    lay = Layout.validate(h, file_size)
    return Header(lay, h, _broken_reason(buf, h))


# ---- workers and queues --------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerRaw:
    wid: int
    fields: dict[str, int]  # every WORKER_FIELDS entry


def worker_off(lay: Layout, wid: int) -> int:
    return lay.worker_off(wid)


def decode_worker(buf: bytes | bytearray | memoryview, lay: Layout, wid: int) -> WorkerRaw:
    return WorkerRaw(wid, SL.Worker.read(SL.bytes_loader(buf), lay.worker_off(wid)).as_dict())


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
    return lay.queue_off(wid)


def decode_queue(buf: bytes | bytearray | memoryview, lay: Layout, wid: int) -> QueueRaw:
    base = queue_off(lay, wid)
    q = SL.LocalQueue.read(SL.bytes_loader(buf), base)
    head, tail = q.head, q.tail & MAX_U32
    steal, real = head >> 32, head & MAX_U32
    depth = (tail - real) & MAX_U32
    cap = lay.local_cap
    entries: list[int] = []
    corrupt = None
    if depth > cap or ((tail - steal) & MAX_U32) > cap:
        corrupt = f"local queue {wid}: depth {depth} exceeds its capacity {cap}"
    else:
        for i in range(depth):
            v = _u32(buf, base + SL.LocalQueue.TABLE["buf"] + 4 * ((real + i) & (cap - 1)))
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
    r = SL.Ring.read(SL.bytes_loader(buf), off)
    enq, deq = r.enq, r.deq
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


def decode_held(buf: bytes | bytearray | memoryview, lay: Layout, rec: int) -> int:
    """Arena blocks process record ``rec`` holds (its hold table's count:
    holds.h; records are workers, then clients, then send workers)."""
    off = lay.holds_off + rec * _core.HOLDS_SIZE
    if rec < 0 or off + _core.HOLDS_SIZE > len(buf):
        return 0
    return min(SL.Holds.read(SL.bytes_loader(buf), off).count, _core.HOLD_CAP)


def decode_client(buf: bytes | bytearray | memoryview, lay: Layout, cid: int) -> ClientRaw:
    base = lay.client_off(cid)
    c = SL.Client.read(SL.bytes_loader(buf), base)
    ring = decode_ring(
        buf, base + CLIENT_RING, lay.inject_cap, lay.n_slots, f"completion ring of client {cid}"
    )
    return ClientRaw(cid, c.pid, c.start, c.submitted, c.harvested, ring)


# ---- slots ---------------------------------------------------------------------------------
class Indexed:
    """An entry of a table in the segment and its index: every field (and
    property) of its shmrt.layout record, the one reader of its struct, by
    name.  Values are raw and untrusted; helpers decode them."""

    __slots__ = ("index", "rec")

    def __init__(self, index: int, rec: SL.Record):
        self.index = index
        self.rec = rec

    def __getattr__(self, name: str) -> int:  # the record's (index, rec: ours)
        return getattr(self.rec, name)  # type: ignore[no-any-return]


class SlotRaw(Indexed):
    """One slot header (shmrt.layout.Slot), with its refcount and flags."""

    __slots__ = ()

    @property
    def refs(self) -> int:
        return SL.slot_refs(self.state)

    @property
    def bits(self) -> int:
        return SL.slot_flags(self.state)


def slot_off(lay: Layout, idx: int) -> int:
    return lay.slot_off(idx)


def decode_slot_at(buf: bytes | bytearray | memoryview, off: int, idx: int = 0) -> SlotRaw:
    """Decode the slot header that starts at ``off`` in ``buf``."""
    if off < 0 or off + SLOT_HEADER_SIZE > len(buf):
        raise InspectError(f"slot {idx}: header at {off} is outside the image")
    return SlotRaw(idx, SL.Slot.read(SL.bytes_loader(buf), off))


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


class WaiterRaw(Indexed):
    """waiter_t (shmrt.layout.Waiter: state, pid, wt, gen): one entry per
    client send() blocked on the budget; pid 0 = free."""

    __slots__ = ()


@dataclass(frozen=True)
class SendRaw:
    """send_t: one send worker's counters, its ring and its waitlist."""

    index: int
    fields: dict[str, int]  # every SEND_FIELDS entry but "rings"
    ring_len: int  # signed `len` of the ring (its depth; capacity send_cap)
    waitlist_len: int  # signed `len` of the waitlist (capacity inject_cap)
    ring: RingRaw  # slot indices of finished packets, in send order
    waitlist: RingRaw  # slot indices of packets that found the ring full


def waiter_off(lay: Layout, i: int) -> int:
    return lay.waiter_off(i)


def send_off(lay: Layout, i: int) -> int:
    return lay.send_off(i)


def decode_relay(buf: bytes | bytearray | memoryview, lay: Layout) -> RelayRaw:
    if not lay.n_send:
        raise InspectError("this segment has no relay region")
    off = lay.relay_off
    fields = SL.Relay.read(SL.bytes_loader(buf), off).as_dict()
    f = off + RF["fifo"]
    fifo = decode_ring(buf, f, fifo_cap(lay.n_waiters), 1 << 31, "relay waiter FIFO")
    return RelayRaw(fields, fifo.enq, fifo.deq, fifo.length)


def decode_waiter(buf: bytes | bytearray | memoryview, lay: Layout, i: int) -> WaiterRaw:
    return WaiterRaw(i, SL.Waiter.read(SL.bytes_loader(buf), lay.waiter_off(i)))


def decode_send(buf: bytes | bytearray | memoryview, lay: Layout, i: int) -> SendRaw:
    off = lay.send_off(i)
    fields = SL.Send.read(SL.bytes_loader(buf), off).as_dict()
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
    f = SL.Func.read(SL.bytes_loader(buf), lay.func_off(fid))
    return FuncRaw(f.state, f.blob, f.len, f.hash)


def block_span(lay: Layout, off: int) -> None:
    """Raise unless an arena block header may start at arena offset ``off``."""
    if (
        off % _core.CACHE_LINE
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
    b = SL.Block.read(SL.bytes_loader(hdr))
    mc, refs, ln = b.magic_class, b.refs, b.len
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
