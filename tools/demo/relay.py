"""The relay stage of ``shmrt demo``: a loopback UDP relay with blake2b_tag.

This process plays both ends: it sends 1 KiB datagrams into a
:class:`shmrt.Relay` (8 flows), the relay appends a keyed BLAKE2b tag on
every core, and its send worker puts each packet on the wire to a UDP socket
that a thread of this process reads.  The reader checks every tag and each
flow's order; the progress bar counts verified packets.  The sender keeps at
most ``WINDOW`` packets between "sent" and "verified", so no socket buffer
can overflow and nothing is lost for reasons outside the relay.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PACKETS = 20_000
FLOWS = 8
WINDOW = 2048
_HDR = struct.Struct("<HI")  # flow, sequence


def run(workers: int, console: Console) -> bool:
    """Run the stage; True if every packet arrived verified and in order."""
    import shmrt
    import shmrt.relay
    from shmrt.transforms import TAG_SIZE, tag_of

    rx = shmrt.relay.udp_socket(("127.0.0.1", 0), 8 << 20)
    rx.settimeout(10)
    state: dict[str, Any] = {"got": 0, "bad": 0, "disorder": 0, "next": [0] * FLOWS}
    progressed = threading.Condition()

    def reader() -> None:
        nxt = state["next"]
        while state["got"] + state["bad"] < PACKETS:
            try:
                data = rx.recv(65536)
            except OSError:
                return
            body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
            if len(data) < _HDR.size + TAG_SIZE or tag != tag_of(body):
                state["bad"] += 1
            else:
                f, seq = _HDR.unpack_from(body)
                if f >= FLOWS or seq != nxt[f]:
                    state["disorder"] += 1
                if f < FLOWS:
                    nxt[f] = seq + 1
                state["got"] += 1
            with progressed:
                progressed.notify_all()

    console.print(
        f"\n[bold]4. relay[/]: {PACKETS:,} x 1 KiB datagrams, {FLOWS} flows, through a loopback UDP "
        f"relay (blake2b_tag on {workers} workers, 1 send worker), every tag and order checked"
    )
    pad = b"\xa5" * (1024 - _HDR.size)
    t0 = time.perf_counter()
    with shmrt.Relay("shmrt.transforms:blake2b_tag", shmrt.UdpSink(rx.getsockname()),
                     workers=workers, max_inflight=1024) as relay:
        relay.wait_ready()
        t_start = time.perf_counter()
        th = threading.Thread(target=reader, name="demo-relay-reader", daemon=True)
        th.start()
        with Progress(TextColumn("relay"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                      console=console, transient=False) as bar:
            task = bar.add_task("relay", total=PACKETS, rate="")
            for i in range(PACKETS):
                f = i % FLOWS
                relay.send(_HDR.pack(f, i // FLOWS) + pad, flow=f)
                if i - state["got"] > WINDOW:
                    with progressed:
                        progressed.wait_for(_below(state, i), timeout=10)
                if i % 512 == 0:
                    el = time.perf_counter() - t_start
                    bar.update(task, completed=state["got"],
                               rate=f"{state['got'] / el:,.0f} pkt/s" if el > 0 else "")
            relay.flush(30)
            th.join(15)
            elapsed = time.perf_counter() - t_start
            bar.update(task, completed=state["got"], rate=f"{state['got'] / elapsed:,.0f} pkt/s")
        st = relay.statistics()
    rx.close()
    table = Table(title=f"relay: {elapsed:.2f} s for {PACKETS:,} packets "
                        f"({state['got'] / elapsed:,.0f} pkt/s; start-up {t_start - t0:.2f} s)")
    for col in ("received ok", "bad tag", "out of order", "relay sent", "dropped",
                "waits (registered/woken)", "lost wakeups"):
        table.add_column(col, justify="right")
    dropped = ", ".join(f"{k} {v}" for k, v in st["dropped"].items() if v) or "0"
    table.add_row(f"{state['got']:,}", str(state["bad"]), str(state["disorder"]),
                  f"{st['sent']:,}", dropped, f"{st['registrations']}/{st['wakes']}",
                  str(st["pending_with_capacity"]))
    console.print(table)
    return (state["got"] == PACKETS and state["bad"] == 0 and state["disorder"] == 0
            and st["pending_with_capacity"] == 0)


def _below(state: dict[str, int], i: int) -> Callable[[], bool]:
    """The predicate 'packet i is within WINDOW of the last one received'."""
    return lambda: i - state["got"] <= WINDOW
