"""The relays shmrt's is measured against, each a process of its own.

    python -m shmrt.tools.bench.relay_peers KIND LISTEN_PORT TO_PORT TRANSFORM COUNT [WORKERS]

KIND is ``asyncio`` (one process: receive, transform, send, on one core),
``ppe`` (asyncio front end, the transform on a ProcessPoolExecutor with
the spawn method, outputs sent in arrival order), or ``plain`` (a blocking
recvfrom/sendto loop that forwards unchanged: the floor for a Python UDP
forwarder), or ``mmsg`` (a recvmmsg/sendmmsg forwarder, batches of 64,
through ctypes: what batching alone gives one Python process).  Each prints ``listening on 127.0.0.1:PORT`` on stderr when
ready and exits after COUNT datagrams.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

_fn: Callable[[memoryview], Any] | None = None


def resolve(spec: str) -> Callable[[memoryview], Any]:
    mod, _, name = spec.partition(":")
    return getattr(importlib.import_module(mod), name)


def apply(spec: str, data: bytes) -> bytes | None:
    """Run in a ProcessPoolExecutor worker: the transform, on bytes."""
    global _fn
    if _fn is None:
        _fn = resolve(spec)
    out = _fn(memoryview(data))
    return None if out is None else bytes(out)


def _sock(port: int) -> socket.socket:
    from shmrt.relay import udp_socket

    return udp_socket(("127.0.0.1", port))


def plain(listen: int, to: int, count: int) -> None:
    s = _sock(listen)
    dst = ("127.0.0.1", to)
    print(f"listening on 127.0.0.1:{s.getsockname()[1]}", file=sys.stderr, flush=True)
    recv, send = s.recvfrom, s.sendto
    for _ in range(count):
        data, _src = recv(65536)
        send(data, dst)


async def _asyncio_relay(listen: int, to: int, spec: str, count: int, workers: int,
                         use_pool: bool) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    dst = ("127.0.0.1", to)
    fn = resolve(spec)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if use_pool else None
    if pool is not None:  # start the workers before we say we are ready
        await asyncio.gather(*(loop.run_in_executor(pool, apply, spec, b"warm") for _ in range(workers)))
    pending: collections.deque[asyncio.Future] = collections.deque()
    seen = 0

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            nonlocal seen
            seen += 1
            if pool is None:
                out = fn(memoryview(data))
                if out is not None:
                    self.t.sendto(out, dst)
                if seen >= count and not done.done():
                    done.set_result(None)
                return
            fut = loop.run_in_executor(pool, apply, spec, data)
            pending.append(fut)
            if len(pending) == 1:
                loop.create_task(drain(self.t))

    async def drain(t: Any) -> None:  # send outputs in arrival order
        while pending:
            out = await pending[0]
            pending.popleft()
            if out is not None:
                t.sendto(out, dst)
        if seen >= count and not done.done():
            done.set_result(None)

    transport, _ = await loop.create_datagram_endpoint(Proto, sock=_sock(listen))
    print(f"listening on 127.0.0.1:{transport.get_extra_info('sockname')[1]}", file=sys.stderr,
          flush=True)
    await done
    transport.close()
    if pool is not None:
        pool.shutdown()


def main(argv: list[str]) -> None:
    kind, listen, to, spec, count = argv[0], int(argv[1]), int(argv[2]), argv[3], int(argv[4])
    workers = int(argv[5]) if len(argv) > 5 else 2
    if kind == "plain":
        plain(listen, to, count)
    elif kind == "mmsg":
        from .mmsg import forward

        s = _sock(listen)
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        out.connect(("127.0.0.1", to))
        print(f"listening on 127.0.0.1:{s.getsockname()[1]}", file=sys.stderr, flush=True)
        forward(s, out, count)
    elif kind in ("asyncio", "ppe"):
        asyncio.run(_asyncio_relay(listen, to, spec, count, workers, kind == "ppe"))
    else:
        raise SystemExit(f"unknown relay kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
