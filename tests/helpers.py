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
