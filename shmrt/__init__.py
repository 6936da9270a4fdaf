"""shmrt: a multiprocess shared-memory runtime for Python.

Public API (pinned by tests/test_api.py):

* ``Pool`` -- a ``concurrent.futures.Executor`` on a work-stealing runtime;
* ``connect(name)`` -- a client of a named runtime from another process;
* ``spawn(fn, *args, **kwargs)`` -- inside a task: start a child, ``.join()`` it;
* ``retry(n)`` -- decorator: re-run a task up to n times if its worker dies;
* ``time_limit(s)`` -- decorator: stop a task that runs longer than s seconds;
* ``Relay``, ``UdpSink`` -- a CPU-parallel packet relay with per-flow order;
  ``RelaySender`` (``Relay.connect(name)``) feeds a named relay from another process;
* errors: ``ShmrtError``, ``WorkerCrashed``, ``PayloadTooLarge``,
  ``RuntimeNotFound``, ``RuntimeExists``, ``NotInWorker``, ``BrokenPool``,
  ``SegmentError``, ``RemoteTraceback``, ``Full``, ``TaskTimeout``,
  ``TaskCancelled``.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import (
    Full,
    NotInWorker,
    PayloadTooLarge,
    RuntimeExists,
    RuntimeNotFound,
    SegmentError,
    ShmrtError,
    TaskTimeout,
)

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start

__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any, TypeVar

    from .client import Client, connect
    from .errors import BrokenPool, RemoteTraceback, TaskCancelled, WorkerCrashed
    from .pool import Pool
    from .relay import Relay, RelaySender, UdpSink
    from .workers.cpu import Handle, InlineHandle

_LAZY = {"Pool": ".pool", "Client": ".client", "connect": ".client", "Handle": ".workers.cpu",
         "Relay": ".relay", "RelaySender": ".relay", "UdpSink": ".relay", "BrokenPool": ".errors",
         "TaskCancelled": ".errors", "WorkerCrashed": ".errors", "RemoteTraceback": ".errors"}


def __getattr__(name: str) -> Any:
    """Import the heavy parts on first use: a worker process imports
    ``shmrt`` too, and its start-up time is part of the pool's."""
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'shmrt' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value

if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])


def spawn(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Handle | InlineHandle:
    """Start ``fn(*args, **kwargs)`` as a child of the running task.

    Returns a handle whose ``join()`` returns the child's result (or raises
    its exception), running other ready tasks while it waits.  Only valid
    inside a task running on a shmrt worker (else ``NotInWorker``)."""
    from .workers.cpu import current_worker

    return current_worker().spawn(fn, args, kwargs)


def time_limit(seconds: float) -> Callable[[F], F]:
    """Decorator: a task of this function that runs longer than ``seconds``
    is stopped (its worker is killed and replaced) and fails with
    ``TaskTimeout``; it is not retried.  Overrides ``Pool(task_timeout=)``."""
    if not seconds > 0:
        raise ValueError("time limit must be > 0 seconds")

    def deco(fn: F) -> F:
        fn.__shmrt_time_limit__ = float(seconds)  # type: ignore[attr-defined]
        return fn

    return deco


def retry(n: int) -> Callable[[F], F]:
    """Decorator: if the worker running this function dies, run it again, up
    to ``n`` more times, before failing with ``WorkerCrashed``."""
    if n < 0:
        raise ValueError("retries must be >= 0")

    def deco(fn: F) -> F:
        fn.__shmrt_retries__ = n  # type: ignore[attr-defined]
        return fn

    return deco


__all__ = [
    "Pool", "Client", "Handle", "connect", "spawn", "retry", "Relay", "RelaySender", "UdpSink",
    "ShmrtError", "WorkerCrashed", "PayloadTooLarge", "RuntimeNotFound", "RuntimeExists",
    "NotInWorker", "BrokenPool", "SegmentError", "RemoteTraceback", "Full", "time_limit",
    "TaskTimeout", "TaskCancelled",
]
