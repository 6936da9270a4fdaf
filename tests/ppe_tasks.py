"""Module-level task functions for the ProcessPoolExecutor conformance tests
(workers import them by name), after CPython's test_concurrent_futures."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

INITIALIZER_STATUS = "uninitialized"


def mul(x: int, y: int) -> int:
    return x * y


def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def sleep_and_raise(t: float) -> None:
    time.sleep(t)
    raise Exception("this is an exception")


def sleep_and_print(t: float, msg: str) -> None:
    time.sleep(t)
    print(msg)
    sys.stdout.flush()


def init(x: str) -> None:
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = x


def get_init_status() -> str:
    return INITIALIZER_STATUS


def init_fail(log_queue: Any = None) -> None:
    if log_queue is not None:
        from logging.handlers import QueueHandler

        logger = logging.getLogger("concurrent.futures")
        logger.addHandler(QueueHandler(log_queue))
        logger.setLevel("CRITICAL")
        logger.propagate = False
    raise ValueError("error in initializer")


class MyObject:
    def my_method(self) -> None:
        pass


class DummyObject:
    pass


def make_dummy_object(_: Any) -> DummyObject:
    return DummyObject()


def raise_runtime_error() -> None:
    raise RuntimeError(123)  # some comment


def getpid(_: Any = None) -> int:
    return os.getpid()


def grow(nbytes: int) -> int:
    """Keep ``nbytes`` more memory alive in this worker; returns its pid."""
    _HOARD.append(bytearray(b"\1") * nbytes)  # filled: every page resident
    return os.getpid()


_HOARD: list[bytearray] = []


def log_something(level: int, msg: str, arg: Any) -> int:
    logging.getLogger("shmrt.test.worker").log(level, msg, arg)
    return os.getpid()


def log_exception() -> None:
    try:
        raise KeyError("kaputt")
    except KeyError:
        logging.getLogger("shmrt.test.worker").exception("it failed")


def mark_and_sleep(path: str, s: float) -> float:
    """Create ``path`` (the task has started), then sleep ``s`` seconds."""
    open(path, "a").close()
    time.sleep(s)
    return s


def pid_and_ppid() -> tuple[int, int]:
    return os.getpid(), os.getppid()
