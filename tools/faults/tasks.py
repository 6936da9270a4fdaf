"""Task bodies for the kill-storm soak, importable by the workers.

Each task records that its body started and that it finished in a ledger:
a file of two u32 counters per task id, mapped by every process (an mmap of
a plain temporary file, so no resource tracker and no shmrt segment is
involved in the bookkeeping that judges shmrt).  The soak compares the
ledger with what the futures said: a task whose future failed with
WorkerCrashed must have started; a task without retries must not have
started twice.
"""

from __future__ import annotations

import mmap
import os

import shmrt

_maps: dict[str, memoryview] = {}


def _ledger(path: str) -> memoryview:
    mv = _maps.get(path)
    if mv is None:
        fd = os.open(path, os.O_RDWR)
        try:
            m = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        mv = _maps[path] = memoryview(m).cast("I")
    return mv


def work(path: str, tid: int, spin: int = 200, pad: bytes = b"") -> int:
    """A short CPU task (~tens of microseconds) that records itself (``pad``:
    ballast, so that some tasks carry their arguments in the arena)."""
    led = _ledger(path)
    led[2 * tid] += 1  # started
    acc = tid
    for i in range(spin):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    led[2 * tid + 1] += 1  # finished
    return tid


def work_batch(path: str, tids: list[int]) -> list[int]:
    return [work(path, t, 50) for t in tids]


def tree(path: str, tid: int, depth: int) -> int:
    """A fork-join tree of 2**depth leaves; the root records itself."""
    led = _ledger(path)
    led[2 * tid] += 1
    n = _fib(depth)
    led[2 * tid + 1] += 1
    return n


def _fib(n: int) -> int:
    if n < 6:
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a
    h1 = shmrt.spawn(_fib, n - 1)
    h2 = shmrt.spawn(_fib, n - 2)
    return h1.join() + h2.join()


def fib_value(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


# ---- relay scenarios: a transform and a sink that record -------------------------------
_sink_fd: int | None = None


def transform(packet: memoryview) -> bytes:
    """Identity after a few microseconds of work."""
    acc = 0
    for b in bytes(packet[:32]):
        acc = (acc * 31 + b) & 0xFFFF
    return bytes(packet)


def record(packet: object, flow: int) -> None:
    """Append (flow u64, seq u64) to $SHMRT_SOAK_SINK (the sink runs in the
    send worker).  16 bytes, so that with O_APPEND every record starts at a
    multiple of 16 and never straddles a page: a send worker killed inside
    the write leaves the whole record or none (the kernel stops a write
    killed by SIGKILL between pages; 12-byte records were torn so, ~1 soak
    run in 30, and parsed out of step)."""
    global _sink_fd
    if _sink_fd is None:
        _sink_fd = os.open(os.environ["SHMRT_SOAK_SINK"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                           0o600)
    seq = bytes(memoryview(packet)[:4])  # type: ignore[arg-type]
    os.write(_sink_fd, flow.to_bytes(8, "little") + seq + bytes(4))
