"""Configuration, the computed layout and typed reads of a mapped segment
(shmrt.layout): sizes and offsets come from the C core's compute_layout and
a segment's validated layout, never from Python arithmetic on struct sizes."""

from __future__ import annotations

from collections.abc import Mapping

from .. import _core
from .records import (
    CONFIG_KEYS,
    Buffer,
    Client,
    Func,
    Header,
    LayoutError,
    Load,
    LocalQueue,
    Slot,
    Waiter,
    Worker,
    bytes_loader,
)

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import ClassVar

# ---- configuration and layout ---------------------------------------------------------------
# The sizes of a runtime nobody chose otherwise (Pool, shmrt start); n_workers
# has none (the CPUs).  max_payload is derived (Config.as_dict).
CONFIG_DEFAULTS: dict[str, int] = {
    "n_slots": 16384, "slot_size": 512, "local_cap": _core.LOCAL_CAP_MAX, "n_clients": 16,
    "n_funcs": 4096, "arena_size": 64 << 20, "n_send": 0, "send_cap": 1024, "n_waiters": 64,
    "inflight": 0,
}


class Config:
    """Sizes of a runtime's segment (see shmrt/_core/layout.h); keyword
    arguments, the others default to ``CONFIG_DEFAULTS``.  (A plain class,
    not a dataclass: every worker imports this module at start-up, and the
    dataclasses import alone costs ~5 ms there.)"""

    __slots__ = ("n_workers", "n_slots", "slot_size", "local_cap", "n_clients", "n_funcs",
                 "arena_size", "max_payload", "n_send", "send_cap", "n_waiters", "inflight")
    n_workers: int
    n_slots: int
    slot_size: int
    local_cap: int
    n_clients: int
    n_funcs: int
    arena_size: int
    max_payload: int | None  # None: a third of the arena (as_dict)
    n_send: int
    send_cap: int
    n_waiters: int
    inflight: int

    def __init__(self, n_workers: int, *, max_payload: int | None = None, **sizes: int):
        unknown = sizes.keys() - CONFIG_DEFAULTS.keys()
        if unknown:
            raise TypeError(f"Config: unknown size(s) {sorted(unknown)}")
        self.n_workers = n_workers
        self.max_payload = max_payload
        for k, v in CONFIG_DEFAULTS.items():
            setattr(self, k, sizes.get(k, v))

    def as_dict(self) -> dict[str, int]:
        d = {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}
        # an echo holds its argument and its result blocks at once: a third of
        # the arena each (half-step size classes round up by at most 1.5x)
        d.setdefault("max_payload", self.arena_size // 3)
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Config({args})"


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
                "slots_off", "arena_off", "relay_off", "holds_off")


class Layout:
    """Sizes and offsets of one segment (layout_t in layout.h), from the C
    core's ``compute_layout`` or a mapped segment's ``layout``; immutable.
    (A plain class, not a dataclass: cheaper to define at a worker's start.)"""

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
    n_send: int  # relay region (all 0 but relay_off without a relay)
    send_cap: int
    n_waiters: int
    inflight: int
    relay_off: int
    relay_hdr: int  # relay_t + its token FIFO, aligned to 64
    send_stride: int  # send_t + its ring + its waitlist, aligned to 64
    holds_off: int  # hold tables (holds.h), one per process record
    NAMES: ClassVar[tuple[str, ...]]

    def __init__(self, **values: int) -> None:
        if values.keys() != set(self.NAMES):
            raise TypeError(f"Layout takes exactly {', '.join(self.NAMES)}")
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Layout is read-only")

    def __eq__(self, other: object) -> bool:
        return type(other) is Layout and other.__dict__ == self.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Layout({', '.join(f'{k}={v}' for k, v in self.__dict__.items())})"

    @classmethod
    def of(cls, seg: _core.Segment) -> Layout:
        """The validated layout of a mapped segment."""
        d = seg.layout
        return cls(**{k: d[k] for k in cls.NAMES})

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


Layout.NAMES = tuple(k for k, t in Layout.__annotations__.items() if "ClassVar" not in str(t))


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
