"""``shmrt relay``: a UDP relay on the command line.

Datagrams arriving on ``--listen`` go through ``--transform`` on every core
and leave from the send workers to ``--to``; each source address is a flow,
so each sender's datagrams leave in the order they arrived (unless
``--unordered``).  Ctrl-C (or ``--count`` datagrams) stops it and prints the
counters.  Nothing is lost silently: datagrams the kernel dropped because the
socket's receive queue was full are read from /proc/net/udp and reported
(``kernel_drops``), and ``--count N`` counts them too, so it fires even when
the last datagrams never reached the relay.  (Datagrams lost before the
socket, e.g. in a full loopback device backlog, are seen by no per-socket
counter: /proc/net/softnet_stat has them.)

The datagrams are read by ``Relay.serve_udp`` (recvmmsg straight into task
slots, in C), and with ``--name NAME`` other processes feed the relay too
(``shmrt.Relay.connect(NAME)``; per-flow order holds per sender and flow,
docs/relay.md); ``--listen`` may then be left out.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import click

from ..resolve import ResolveError, resolve
from .app import main
from .common import _Signals

KERNEL_DROPS_POLL_S = 0.2  # how often the kernel's drop counter is read while idle
SUMMARY_KEYS = ("received", "sent", "dropped", "registrations", "wakes", "recheck",
                "spurious", "pending_with_capacity", "passed_on", "full")


def _addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT (port 0-65535)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _bind(addr: tuple[str, int], rcvbuf: int) -> socket.socket:
    from ..relay import udp_socket

    try:
        sock = udp_socket(addr, rcvbuf)
    except OSError as e:
        raise click.ClickException(f"--listen {addr[0]}:{addr[1]}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


@main.command("relay")
@click.option("--listen", "listen", default=None, metavar="HOST:PORT",
              help="UDP address to receive on (port 0: pick one; the ready line says which). "
              "Needed unless --name is given.")
@click.option("--name", default=None, metavar="NAME",
              help="Name the relay: other processes feed it with shmrt.Relay.connect(NAME).")
@click.option("--to", "to", required=True, metavar="HOST:PORT", help="UDP address to send to.")
@click.option("--transform", default="shmrt.transforms:identity", show_default=True,
              metavar="MOD:FN", help="Per-packet transform (shmrt.transforms has identity, "
              "blake2b_tag, blake2b_verify).")
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None,
              help="CPU workers (default: one per core).")
@click.option("--send-workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--unordered", is_flag=True, help="Do not restore per-flow order.")
@click.option("--max-inflight", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many datagrams arrived at the socket, received or dropped "
              "there by the kernel (then flush and print the summary).")
@click.option("--rcvbuf", type=click.IntRange(min=1024), default=16 << 20, show_default=True,
              help="Receive buffer of the listening socket, bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def relay(listen: str | None, name: str | None, to: str, transform: str, workers: int | None,
          send_workers: int, unordered: bool, max_inflight: int, count: int | None, rcvbuf: int,
          as_json: bool) -> None:
    """A UDP relay: --listen -> transform on every core -> --to, per-source order.
    With --name, other processes feed it too (shmrt.Relay.connect(NAME))."""
    from ..errors import RuntimeExists
    from ..relay import Relay, UdpSink

    if listen is None and name is None:
        raise click.UsageError("give --listen HOST:PORT, --name NAME, or both")
    try:
        fn = resolve(transform, "--transform")
    except ResolveError as e:
        raise click.ClickException(str(e)) from None
    target = _addr(to)
    sock = _bind(_addr(listen), rcvbuf) if listen is not None else None
    sigs = _Signals()
    try:
        with Relay(fn, UdpSink(target), workers=workers, send_workers=send_workers,
                   ordered=not unordered, max_inflight=max_inflight, name=name) as r:
            r.wait_ready(30)
            where = "listening on {}:{}".format(*sock.getsockname()[:2]) if sock else "named"
            click.echo(f"shmrt relay: {where} -> {to} "
                       f"({len(r.worker_pids)} workers, {send_workers} send workers, "
                       f"transform {transform}"
                       + (f", name {r.name}: shmrt.Relay.connect({r.name!r})" if name else "")
                       + ")", err=True)
            if sock is not None:
                received, drops, started = _pump(sock, r, sigs, count)
            else:
                received, drops, started = 0, 0, time.monotonic()
                sigs.wait()
            r.flush(10)
            st = r.statistics().as_dict()
    except RuntimeExists as e:
        raise click.ClickException(f"--name {name}: {e}") from None
    finally:
        if sock is not None:
            sock.close()
        sigs.restore()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {"received": received, "kernel_drops": drops,
                               "seconds": round(elapsed, 3)}
    summary.update({k: st[k] for k in SUMMARY_KEYS if k in st})
    summary["rings"] = [{k: ring[k] for k in ("sent", "filtered", "errors", "crashed", "backlog",
                                              "registrations", "wakes", "pending_with_capacity")}
                        for ring in st["rings"]]
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"received {received}  kernel drops {drops}  sent {st['sent']}  "
                   f"dropped {st['dropped']}  in {elapsed:.2f} s")
        click.echo(f"budget waiters: registrations {st['registrations']}  wakes {st['wakes']}  "
                   f"rechecks {st['recheck']}  spurious {st['spurious']}  "
                   f"pending-with-capacity {st['pending_with_capacity']}")


def _pump(sock: socket.socket, r: Any, sigs: Any,
          count: int | None) -> tuple[int, int, float]:
    """Receive until a signal, or until ``count`` datagrams arrived at the
    socket (received, or dropped by the kernel); returns (received, kernel
    drops, t0).  The receiving is Relay.serve_udp (recvmmsg in C, GIL
    released), in calls of at most KERNEL_DROPS_POLL_S."""
    from ..relay import udp_kernel_drops

    received = 0
    drops = udp_kernel_drops(sock)  # since the bind: the burst may start before we do
    started = time.monotonic()
    while sigs.received is None and (count is None or received + drops < count):
        t0 = time.monotonic()
        got = r.serve_udp(sock, KERNEL_DROPS_POLL_S, 0 if count is None else count - received - drops)
        if got and received == 0:
            started = t0
        received += got
        drops = r.statistics()["kernel_drops"]  # SO_RXQ_OVFL or /proc/net/udp, the larger
    if sigs.received is not None:
        print(file=sys.stderr)
    return received, r.statistics()["kernel_drops"], started
