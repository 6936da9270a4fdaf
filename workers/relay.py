"""The relay send worker: drains its ring, restores per-flow order, hands
packets to the sink, then frees their slots and budget.

Why a process of its own: the sink (a socket, or a user callable) is owned
by exactly one process per flow, so per-flow order needs no lock; flows are
spread over send workers by hash.  CPU workers finish packets out of order;
with ``ordered`` the send worker holds early packets of a flow in a reorder
buffer (bounded by the relay's in-flight budget, since a held packet keeps
its unit) until the gap is filled.  Every packet reaches the send worker,
including dropped ones (filtered, transform error, crashed worker), so a
gap is always filled and the sequence always advances.

A slot is freed only after its packet has been handed to the sink, and
right after it (one relay_done per packet): if this process dies, the
packets it held are still in shared memory, and the crash reclaim puts them
back on its ring for the replacement (reclaim.c).  The replacement has no
per-flow state; it starts each flow at the lowest sequence number still in
flight (relay_flow_min), since everything below was handed to the sink.  A
packet can reach the sink twice only if the process dies between the sink
call and that packet's relay_done -- the output-commit window, which no
sink that is not transactional can close.  So the packet is marked before
the sink is called (relay_sending), and a packet marked by a dead send
worker is not sent again but counted ``in_doubt`` (a named drop reason):
nothing reaches the sink twice, nothing is lost without being counted.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from shmrt import _core

BATCH = 256
WAIT_S = 0.5
SPIN_S = 50e-6  # poll the ring this long before sleeping (a futex wake costs ~50 us)
LINGER_S = 200e-6  # C send path: nap this long on an empty ring before sleeping (udp_send.c)


class UdpSender:
    """The send side of shmrt.UdpSink, built inside the send worker.  main()
    does not call it per packet: it hands the socket to relay_udp_send (C:
    batches, per-flow order, sendmmsg; shmrt/_core/udp_send.c)."""

    def __init__(self, addr: tuple[str, int]):
        self.addr = addr
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)

    def __call__(self, packet: Any, flow: int) -> None:
        self.sock.sendto(packet, self.addr)


def make_sink(spec: tuple[str, Any]) -> Callable[[Any, int], None]:
    kind, arg = spec
    if kind == "udp":
        return UdpSender(tuple(arg))
    if kind == "callable":
        return arg
    raise ValueError(f"unknown sink kind {kind!r}")


class Sender:
    """One send worker's state: the sink, each flow's next sequence number
    and the packets held until their turn.  Only this process touches it."""

    def __init__(self, seg: _core.Segment, sw: int, sink: Callable[[Any, int], None],
                 ordered: bool):
        self.seg = seg
        self.sw = sw
        self.sink = sink
        self.ordered = ordered
        self.expected: dict[int, int] = {}
        self.held: dict[int, dict[int, tuple[int, int, Any]]] = {}
        self.backlog = 0
        self.late = 0  # packets below their flow's expected number (sent at once)
        self.crash = _core.crash_armed()

    def emit(self, idx: int, flow: int, status: int, data: Any) -> None:
        # counts for relay_done: sent, filtered, errors, crashed
        if status == _core.ST_OK:
            self.seg.relay_sending(idx)  # a death from here on: in doubt, never sent twice
            try:
                self.sink(data, flow)
                counts = (1, 0, 0, 0)
            except Exception as e:  # a sink failure drops that packet, counted
                counts = (0, 0, 1, 0)
                print(f"shmrt relay: sink error: {e!r}", file=sys.stderr)
        elif status == _core.ST_FILTERED:
            counts = (0, 1, 0, 0)
        elif status == _core.ST_CRASHED:
            counts = (0, 0, 0, 1)
        else:
            counts = (0, 0, 1, 0)
        if self.crash:
            _core.crash_point("sender.after_sink")
        self.seg.relay_done(self.sw, (idx,), *counts)

    def next_seq(self, flow: int, seq: int) -> int:
        """The flow's next number to emit; an unknown flow starts at the
        lowest number still in flight (this packet's, at worst)."""
        nxt = self.expected.get(flow)
        if nxt is None:
            low = 0 if seq == 0 else self.seg.relay_flow_min(flow)
            nxt = seq if low is None or low > seq else low
        return nxt

    def take(self, items: list[tuple[int, int, int, int, Any]]) -> None:
        for idx, flow, seq, status, data in items:
            if not self.ordered:
                self.emit(idx, flow, status, data)
                continue
            nxt = self.next_seq(flow, seq)
            if seq < nxt:  # below the flow's position: never hold it (it would wait forever)
                self.late += 1
                self.emit(idx, flow, status, data)
                continue
            if seq != nxt:
                self.expected[flow] = nxt
                self.held.setdefault(flow, {})[seq] = (idx, status, data)
                self.backlog += 1
                continue
            self.emit(idx, flow, status, data)
            nxt += 1
            waiting = self.held.get(flow)
            while waiting and nxt in waiting:
                i2, st2, d2 = waiting.pop(nxt)
                self.backlog -= 1
                self.emit(i2, flow, st2, d2)
                nxt += 1
            if waiting is not None and not waiting:
                del self.held[flow]
            self.expected[flow] = nxt

    def report(self, seg: _core.Segment, sw: int, pid: int) -> None:
        seg.relay_set_backlog(sw, self.backlog, pid)


def main(shm_file: str, sw: int, sink_spec: tuple[str, Any], ordered: bool, pdeathsig: bool) -> None:
    from shmrt.workers.cpu import _set_pdeathsig

    from shmrt.layout import Header
    from shmrt.segment import attach_path, process_alive

    if pdeathsig:
        _set_pdeathsig()
    _core.crash_set_role("sender")
    crash = _core.crash_armed()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seg = attach_path(shm_file, writable=True)
    h = Header.TABLE
    coord = (seg.load64(h["coord_pid"]), seg.load64(h["coord_start"]))
    me = Sender(seg, sw, make_sink(sink_spec), ordered)
    pid = os.getpid()
    from shmrt.segment import proc_start_time

    seg.relay_register(sw, pid, proc_start_time(pid))
    seg.relay_set_backlog(sw, 0, pid)
    run_off = h["run_state"]
    if isinstance(me.sink, UdpSender):  # all in C: take, reorder, sendmmsg, done (udp.c)
        me.sink.sock.connect(me.sink.addr)
        fd = me.sink.sock.fileno()
        while True:
            if seg.relay_udp_send(sw, fd, ordered, BATCH, WAIT_S, LINGER_S):
                continue
            if seg.load64(run_off) != _core.RUN_RUNNING:
                break
            if not process_alive(*coord):
                break
        return
    while True:
        items = seg.relay_take(sw, BATCH)
        if not items:
            if seg.load64(run_off) != _core.RUN_RUNNING:
                break
            if not seg.relay_wait(sw, WAIT_S, SPIN_S) and not process_alive(*coord):
                break
            continue
        if crash:
            _core.crash_point("sender.after_take")
        me.take(items)
        del items
        me.report(seg, sw, pid)
