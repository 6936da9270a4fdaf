"""Module-level task functions for the tests (workers import them by name)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import shmrt


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0, *, c: int = 0) -> int:
    return a + b + c


def echo(x: Any) -> Any:
    return x


def boom(msg: str) -> None:
    raise ValueError(msg)


def getpid(_: Any = None) -> int:
    return os.getpid()


def fib(n: int, cutoff: int = 12) -> int:
    if n < cutoff:
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a
    h1 = shmrt.spawn(fib, n - 1, cutoff)
    h2 = shmrt.spawn(fib, n - 2, cutoff)
    return h1.join() + h2.join()


def nbytes_sum(buf: Any) -> tuple[int, int]:
    mv = memoryview(buf).cast("B")
    return mv.nbytes, sum(mv[:: 4096])


def suicide(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)


def sleep_then(x: Any, s: float) -> Any:
    time.sleep(s)
    return x


# ---- added for test_pool / test_crash / test_protocol ----------------------


class HelperError(Exception):
    """A task-defined exception type: must re-raise as itself in the caller."""

    def __init__(self, code: int, msg: str):
        super().__init__(code, msg)
        self.code = code
        self.msg = msg


def raise_helper_error(code: int, msg: str) -> None:
    raise HelperError(code, msg)


def type_name(x: Any) -> str:
    """The type of an argument as the worker received it."""
    return type(x).__name__


def backing(x: Any) -> str:
    """Name of the type that owns the memory of a buffer-like ``x``.

    For a numpy array unpickled out of band this walks ``.base`` down to the
    memoryview and returns the type of the object it exports (``BlobView``
    when the data sits in the shared arena: the zero-copy path)."""
    obj = x
    for _ in range(32):
        base = getattr(obj, "base", None)
        if base is None:
            break
        obj = base
    if isinstance(obj, memoryview):
        return type(obj.obj).__name__
    return type(obj).__name__


def make_bytes(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(n % 256)


def make_array(n: int, seed: int = 0) -> Any:
    import numpy as np

    return np.random.default_rng(seed).integers(0, 2**63, size=n, dtype=np.int64)


def array_digest(a: Any) -> tuple[str, tuple[int, ...], str, str]:
    """(dtype, shape, sha256 of the data, where the data lives) of an array
    argument, computed in the worker."""
    import hashlib

    return str(a.dtype), tuple(a.shape), hashlib.sha256(a.tobytes()).hexdigest(), backing(a)


def write_pid_and_wait(marker: str, release: str, timeout: float = 60.0) -> int:
    """Write this worker's pid to ``marker`` (atomically), then wait until the
    file ``release`` exists (or ``timeout``).  Lets a test know that the task
    is running, and on which process, without any timing guess."""
    tmp = marker + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, marker)
    end = time.monotonic() + timeout
    while not os.path.exists(release) and time.monotonic() < end:
        time.sleep(0.01)
    return os.getpid()


def die_once(marker: str) -> str:
    """First attempt: create ``marker`` and SIGKILL our own worker; a re-run
    (marker present) returns 'ok'."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return "ok"
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@shmrt.retry(1)
def die_once_retried(marker: str) -> str:
    """die_once with a per-function retry budget of 1 (``@shmrt.retry``)."""
    return die_once(marker)


def spawn_suicide() -> None:
    """Spawn a child that kills its worker, and join it."""
    shmrt.spawn(suicide).join()


def spawn_ids(base: int, n: int) -> list[int]:
    """Spawn ``n`` children returning ids base..base+n-1, join them all."""
    hs = [shmrt.spawn(echo, base + j) for j in range(n)]
    return [h.join() for h in hs]



def echo_args(*args: Any) -> tuple:
    return args


def raise_unpicklable() -> None:
    import threading

    raise ValueError(threading.Lock())  # the exception itself cannot be pickled


def spawn_and_join(fn: Any, *args: Any) -> Any:
    return shmrt.spawn(fn, *args).join()


def exit_now(code: int) -> None:
    os._exit(code)


def spawn_then_block(n: int, marker: str, release: str) -> int:
    """Spawn ``n`` children (they queue on this worker), then block without
    joining them: a kill now leaves work in this worker's LIFO slot/queue."""
    hs = [shmrt.spawn(echo, j) for j in range(n)]
    write_pid_and_wait(marker, release)
    return sum(h.join() for h in hs)


def slots_settle(p: Any, timeout: float = 10.0) -> tuple[int, int]:
    """Wait (bounded) until every slot of pool ``p`` is free again; returns
    (free, total) so the caller's assert shows the figures."""
    end = time.monotonic() + timeout
    while True:
        s = p.statistics()
        if s["slots_free"] == s["slots"] or time.monotonic() > end:
            return s["slots_free"], s["slots"]
        time.sleep(0.01)


def make_pool() -> None:
    """A pool inside a task: must be a clear error."""
    shmrt.Pool(1)


def deep_repr(depth: int) -> str:
    """Recursion through C code (repr of nested lists)."""
    x: list = []
    for _ in range(depth):
        x = [x]
    return repr(x)


def touch_after(path: str, delay: float) -> str:
    """Create ``path`` after ``delay`` seconds (work still pending at exit)."""
    import time

    time.sleep(delay)
    open(path, "w").close()
    return path


@shmrt.time_limit(0.3)
def limited_sleep(s: float) -> float:
    """A task with a 0.3 s time limit that sleeps ``s`` seconds."""
    import time

    time.sleep(s)
    return s


def call(fn: Any, *args: Any) -> Any:
    """Call a function that arrived as an argument (by value, if a lambda)."""
    return fn(*args)


# ---- processes (read from /proc) ---------------------------------------------------------
def proc_table() -> dict[int, tuple[str, int]]:
    """pid -> (state letter, parent pid) of every process visible in /proc."""
    out: dict[int, tuple[str, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) > 1:
            out[int(d)] = (rest[0].decode(), int(rest[1]))
    return out


def process_gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie (reaped by nobody in a container)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rfind(b")") + 2:].split()[0] in (b"Z", b"X")


def descendants(root: int | None = None) -> set[int]:
    """Every live (non-zombie) descendant of ``root`` (default: this process)."""
    parent = {p: pp for p, (st, pp) in proc_table().items() if st != "Z"}
    out: set[int] = set()
    frontier = {os.getpid() if root is None else root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


_STASH: list[Any] = []


def stash(x: Any) -> str:
    """Keep ``x`` alive in this worker (a view of an arena block stays held
    after the task); returns where its memory lives."""
    _STASH.append(x)
    return backing(x)


def fill(a: Any, value: Any) -> str:
    """Write ``value`` into every element of ``a`` in place; where it lives."""
    a[...] = value
    return backing(a)


def total(a: Any) -> float:
    return float(a.sum())


class DropMarker:
    """An argument whose copy in a worker, when dropped, waits ``delay``
    seconds and then creates ``path`` (the caller's own copy does nothing):
    shows whether a task's arguments are gone before its result is."""

    def __init__(self, path: str, delay: float):
        self.path, self.delay, self.owner = path, delay, os.getpid()

    def __del__(self) -> None:
        if os.getpid() != self.owner:
            time.sleep(self.delay)
            with open(self.path, "w"):
                pass


def count_args(*args: Any) -> int:
    return len(args)
