"""Module-level task functions for tests/test_cluster.py: node actors and
their shmrt workers import them by name (the tests directory is on
PYTHONPATH, which the Ray processes inherit)."""

from __future__ import annotations

import os
import time
from typing import Any

import shmrt


def inc(x: int) -> int:
    return x + 1


def add(x: int, y: int) -> int:
    return x + y


def where(i: int, delay: float = 0.0) -> tuple[int, int]:
    """(i, the node actor's pid): the coordinator of the runtime the task
    runs on (its workers are the actor's children, or the children of the
    actor's process zygote: shmrt.zygote)."""
    from shmrt.workers.cpu import current_worker

    if delay:
        time.sleep(delay)
    return i, current_worker().coord[0]


@shmrt.retry(2)
def where_retried(i: int, delay: float = 0.0) -> tuple[int, int]:
    return where(i, delay)


def fib(n: int) -> int:
    """Fork-join: every call above the cutoff spawns a child on its node."""
    if n < 10:
        return fib_seq(n)
    h = shmrt.spawn(fib, n - 1)
    return fib(n - 2) + h.join()


def fib_seq(n: int) -> int:
    return n if n < 2 else fib_seq(n - 1) + fib_seq(n - 2)


def die() -> None:
    """Kill this task's own worker process."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def fail(msg: str) -> None:
    raise ValueError(msg)


def checksum(a: Any) -> int:
    import numpy as np

    return int(np.bitwise_xor.reduce(np.frombuffer(a, dtype=np.uint64)))


def scaled(a: Any, k: int) -> Any:
    return a * k


def echo(x: Any) -> Any:
    return x
