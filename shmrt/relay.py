"""Relay: packets in, a CPU-heavy transform on every core, packets out in
per-flow order through relay send workers.

Why: a single Python process cannot transform packets on more than one core,
and a process pool pays pickling and pipes per packet.  A relay puts each
packet in a task slot (one copy), runs ``transform`` on whichever CPU worker
is free, and hands the output to the send worker that owns the packet's flow
(flow hash % send workers), which restores the flow's order and writes to
the sink.

Backpressure is explicit and bounded: ``max_inflight`` packets may be in the
relay at once (a semaphore in shared memory).  ``send()`` blocks while it is
used up (every blocked sender owns its own wait entry: no lost wakeups, see
shmrt/_core/relay.c), ``send_nowait()`` raises ``Full``, and with
``on_full="drop"`` a full relay drops the packet and counts it.  CPU workers
never block: a packet whose send ring is full waits on the ring's waitlist.

Ordering is per (sender, flow): packets given to one ``Relay`` (or one
``RelaySender`` connected to a named relay from another process) with the
same ``flow`` leave in the order they were given (docs/relay.md).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any

from . import _core, transforms
from .errors import Full, PayloadTooLarge
from .layout import Header
from .pool import Pool
from .protocol import NO_FN, fn_id_for
from .resolve import resolve

if TYPE_CHECKING:
    from .stats import RelayStatistics

MAX_PACKET = 64 * 1024  # the cap iroh's relay uses
_waiters: ThreadPoolExecutor | None = None
_waiters_lock = threading.Lock()


@dataclass(frozen=True)
class UdpSink:
    """Send each output packet as one UDP datagram to ``addr``."""

    addr: tuple[str, int]


@dataclass
class RelaySpec:
    """What the coordinator needs to lay out and start the relay part."""

    send_workers: int
    max_inflight: int
    ring_capacity: int
    waiters: int
    sink: tuple[str, Any]
    ordered: bool


def _resolve(obj: str | Callable[..., Any], what: str) -> Callable[..., Any]:
    return resolve(obj, what, cwd=False)


def _sink_spec(sink: Any) -> tuple[str, Any]:
    if isinstance(sink, UdpSink):
        return ("udp", tuple(sink.addr))
    return ("callable", _resolve(sink, "sink"))


def udp_socket(addr: tuple[str, int] = ("127.0.0.1", 0), rcvbuf: int = 16 << 20) -> socket.socket:
    """A bound UDP socket with a big receive buffer (absorbs bursts while a
    relay is busy; SO_RCVBUFFORCE where allowed, past net.core.rmem_max)."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
            break
        except OSError:
            continue
    sock.bind(addr)
    return sock


def udp_kernel_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped at this socket's receive queue (full
    buffer): the ``drops`` column of /proc/net/udp[6] for its inode.  Read
    whenever the caller likes, with no datagram needed (the SO_RXQ_OVFL
    control message only comes with the next one, which may never arrive)."""
    ino = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == ino:
                        return int(cols[12])
        except (OSError, ValueError, StopIteration):
            continue
    return 0


def flow_id(flow: Hashable) -> int:
    """A stable 64-bit id for a flow (the same in every process)."""
    if isinstance(flow, int):
        return flow & 0xFFFFFFFFFFFFFFFF
    data = flow if isinstance(flow, bytes) else repr(flow).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class _Feeder:
    """What puts packets into a relay: the ``Relay`` that owns it, or a
    ``RelaySender`` connected to a named one.  Each numbers its own flows,
    so per-flow order holds per (feeder, flow)."""

    _seg: _core.Segment
    _cid: int
    _fid: int
    _inline: int
    _on_full: str
    _salt: int  # XORed into flow ids: another feeder's flow 7 is another flow
    _flows: dict[Hashable, tuple[int, Any]]
    _closed: bool
    _builtin: bool  # identity: done in C at the ingress (serve_udp), no CPU worker
    _sock: socket.socket | None = None

    # ---- UDP ingress ---------------------------------------------------------
    def serve_udp(self, sock: socket.socket, timeout: float = 0.2, limit: int = 0,
                  batch: int = 64) -> int:
        """Receive datagrams from ``sock`` into the relay until ``timeout``
        seconds pass with none, or ``limit`` (> 0) have come; returns how
        many.  Each source address is a flow (of this sender: see the
        module docstring).  In C with the GIL released:
        recvmmsg straight into task slots, and with the built-in identity
        transform no CPU worker is involved either (shmrt/_core/udp.c).
        Kernel drops at the socket are counted (``statistics()``)."""
        if self._closed:
            raise RuntimeError("relay is closed")
        self._sock = sock
        return self._seg.relay_udp_recv(sock.fileno(), self._fid, self._builtin, batch, timeout,
                                        limit, 30e-6, self._salt)

    # ---- draining ------------------------------------------------------------
    def _running(self) -> bool:
        raise NotImplementedError

    # ---- sending -------------------------------------------------------------
    def send(self, packet: Any, flow: Hashable = 0, timeout: float | None = None) -> bool:
        """Put a packet into the relay; blocks while ``max_inflight`` packets
        are in flight (``on_full="drop"``: drop it instead, return False)."""
        mv = self._check(packet)
        r = self._seg.relay_acquire(-1.0 if timeout is None else timeout, self._on_full == "drop")
        if r == 1:
            return False
        if r == 2:
            raise TimeoutError("relay is full")
        self._submit(mv, flow)
        return True

    def send_nowait(self, packet: Any, flow: Hashable = 0) -> None:
        """Like send(), but raise ``shmrt.Full`` instead of blocking."""
        mv = self._check(packet)
        if self._seg.relay_acquire(0.0, True) != 0:
            raise Full("relay in-flight budget used up")
        self._submit(mv, flow)

    async def asend(self, packet: Any, flow: Hashable = 0) -> bool:
        """``await relay.asend(packet, flow)``: send() for asyncio code.  A
        cancelled asend that was already given a unit of budget passes it on."""
        import asyncio

        mv = self._check(packet)
        seg = self._seg
        if seg.relay_acquire(0.0, True) == 0:
            self._submit(mv, flow)
            return True
        if self._on_full == "drop":
            return False
        stop = threading.Event()

        def wait() -> bool:
            while not stop.is_set():
                if seg.relay_acquire(0.05, False) == 0:
                    return True
            return False

        cfut = _waiter_pool().submit(wait)
        try:
            got = await asyncio.wrap_future(cfut)
        except asyncio.CancelledError:
            stop.set()
            cfut.add_done_callback(lambda f: _release_if(f.result(), seg))
            raise
        if got:
            self._submit(mv, flow)
        return got

    def _check(self, packet: Any) -> memoryview:
        if self._closed:
            raise RuntimeError("relay is closed")
        mv = memoryview(packet).cast("B")
        if mv.nbytes > MAX_PACKET:
            raise PayloadTooLarge(f"packet of {mv.nbytes} bytes exceeds the relay's "
                                  f"{MAX_PACKET}-byte limit")
        return mv

    def _submit(self, mv: memoryview, flow: Hashable) -> None:
        got = self._flows.get(flow)
        if got is None:
            got = self._flows.setdefault(flow, (flow_id(flow) ^ self._salt, count()))
        fid, seqs = got
        seq = next(seqs)
        seg = self._seg
        blob = -1
        data: Any = mv
        if mv.nbytes > self._inline:
            alloc = seg.blob_alloc(mv.nbytes)
            if alloc is None:
                seg.relay_release(1)
                raise PayloadTooLarge("arena exhausted")
            blob, view = alloc
            memoryview(view).cast("B")[:] = mv
            del view
            data = b""
        key = seg.relay_submit(self._cid, self._fid, data, fid, seq, blob)
        if key < 0:  # cannot happen: slots > max_inflight; keep the budget right anyway
            seg.relay_release(1)
            if blob >= 0:
                seg.blob_release(blob)
            raise RuntimeError("relay: no free slot")

    def flush(self, timeout: float | None = None) -> bool:
        """Return when every packet sent so far has left the relay (True), or
        False if ``timeout`` passed first."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if end is None else min(0.5, end - time.monotonic())
            if left <= 0:
                return False
            if self._seg.relay_flush_wait(left):
                return True
            if not self._running():
                raise RuntimeError("relay runtime stopped")


class Relay(_Feeder):
    """A CPU-parallel relay.  See the module docstring.

    ``transform(packet: memoryview) -> bytes | None`` runs on the CPU
    workers (``None`` drops the packet, counted as filtered; an exception
    drops it, counted as an error).  ``sink`` is a ``UdpSink`` or a callable
    ``sink(packet, flow_id)`` run in the send workers.  Both must be
    importable by the worker processes (module-level functions).
    """

    def __init__(self, transform: str | Callable[[memoryview], Any], sink: Any, *,
                 workers: int | None = None, send_workers: int = 1, ordered: bool = True,
                 max_inflight: int = 4096, on_full: str = "block", name: str | None = None,
                 ring_capacity: int = 1024, slot_size: int = 2048, waiters: int = 64):
        if on_full not in ("block", "drop"):
            raise ValueError("on_full must be 'block' or 'drop'")
        if send_workers < 1:
            raise ValueError("send_workers must be >= 1")
        if max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        fn = _resolve(transform, "transform")
        spec = RelaySpec(send_workers=send_workers, max_inflight=max_inflight,
                         ring_capacity=ring_capacity, waiters=waiters, sink=_sink_spec(sink),
                         ordered=ordered)
        slots = max(1024, 1 << (max_inflight + 1024 - 1).bit_length())
        self._pool = Pool(workers, name=name, slots=slots, slot_size=slot_size, _relay=spec)
        self._seg = self._pool._seg
        self._cid = self._pool._cid
        self._inline = slot_size - _core.SLOT_HEADER_SIZE
        self._on_full = on_full
        self._fid = fn_id_for(self._seg, {}, fn)
        if self._fid == NO_FN:
            self._pool.shutdown()
            raise TypeError("transform must be a module-level function (it is sent once, by name)")
        # identity runs in C, at the ingress (serve_udp); others on the CPU workers
        self._builtin = fn is transforms.identity
        self._sock: socket.socket | None = None
        self._flows = {}
        self._salt = 0
        self._closed = False
        self.name = self._pool.name
        self._seg.relay_fn(self._fid)  # for RelaySender (named relays)

    @staticmethod
    def connect(name: str, on_full: str = "block") -> RelaySender:
        """A sender into the relay named ``name`` (``Relay(..., name=NAME)``
        or ``shmrt relay --name NAME``), from any process of the same user."""
        return RelaySender(name, on_full=on_full)

    def _running(self) -> bool:
        return self._pool._runtime_running()

    def statistics(self) -> RelayStatistics:
        """Budget and waiter counters, per send ring counters (depth,
        waitlist, reorder backlog, sent / filtered / errors / crashed), the
        UDP ingress's counters and every named drop reason, and the
        runtime's scheduler counters (docs/statistics.md)."""
        from .stats import relay_statistics

        kd = None
        if self._sock is not None and self._sock.fileno() >= 0:
            kd = udp_kernel_drops(self._sock)
        return relay_statistics(self._seg, self._pool.statistics(), kd)

    def close(self, flush: bool = True) -> None:
        if self._closed:
            return
        if flush:
            self.flush()
        self._closed = True
        self._pool.shutdown(wait=True)

    def wait_ready(self, timeout: float | None = 30.0) -> bool:
        """Block until every CPU worker and send worker has started."""
        return self._pool.wait_ready(timeout)

    def kill_worker_for_test(self, wid: int, sig: int) -> int:
        return self._pool.kill_worker_for_test(wid, sig)

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.worker_pids

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(flush=exc_type is None)


class RelaySender(_Feeder):
    """Sends into a named relay from another process (``Relay.connect``).

    ``send`` / ``send_nowait`` / ``asend`` / ``flush`` behave as the
    ``Relay``'s, under the same in-flight budget.  Per-flow order holds per
    (sender, flow): this sender's packets of one flow leave in the order it
    sent them; flows of different senders are different flows, even with
    the same name (docs/relay.md)."""

    def __init__(self, name: str, on_full: str = "block"):
        from .client import connect
        from .errors import RuntimeNotFound

        if on_full not in ("block", "drop"):
            raise ValueError("on_full must be 'block' or 'drop'")
        self._client = connect(name)
        self._seg = self._client._seg
        self._cid = self._client._cid
        try:
            fid = self._seg.relay_fn()
        except _core.SegmentError:
            fid = None
        if fid is None:
            self._client.shutdown(wait=False)
            raise RuntimeNotFound(f"runtime {name!r} is not a relay")
        self._fid = fid
        self._builtin = False  # the transform is known here only by its id: CPU workers run it
        self._inline = self._seg.layout["slot_size"] - _core.SLOT_HEADER_SIZE
        self._on_full = on_full
        self._salt = int.from_bytes(os.urandom(8), "little") | 1
        self._flows = {}
        self._closed = False
        self.name = name

    def _running(self) -> bool:
        from .client import coordinator_alive

        return (self._seg.load64(Header.TABLE["run_state"]) == _core.RUN_RUNNING
                and coordinator_alive(self._seg))

    def close(self, flush: bool = True) -> None:
        """Detach (after the packets sent so far left the relay, by default)."""
        if self._closed:
            return
        if flush:
            self.flush()
        self._closed = True
        self._client.shutdown(wait=False)

    def __enter__(self) -> RelaySender:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(flush=exc_type is None)


def _waiter_pool() -> ThreadPoolExecutor:
    global _waiters
    with _waiters_lock:
        if _waiters is None:
            _waiters = ThreadPoolExecutor(max_workers=32, thread_name_prefix="shmrt-asend")
        return _waiters


def _release_if(got: bool, seg: _core.Segment) -> None:
    """A unit acquired for a send that was cancelled meanwhile goes back."""
    if got:
        seg.relay_release(1)
