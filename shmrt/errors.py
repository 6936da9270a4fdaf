"""The exceptions shmrt raises.  One hierarchy, rooted at ShmrtError, so that
``except shmrt.ShmrtError`` catches every runtime failure while a task's own
exception re-raises as itself in the caller.

Drop-in compatibility with ProcessPoolExecutor: code written for it catches
``BrokenProcessPool`` when a worker dies and looks for
``concurrent.futures.process._RemoteTraceback`` as a task exception's
``__cause__``.  So ``WorkerCrashed`` and ``BrokenPool`` are also
``BrokenProcessPool`` (a worker that died while running the task is exactly
what that exception means; only the consequence differs: here the pool goes
on), and ``RemoteTraceback`` *is* ``_RemoteTraceback``.  Those three need
``concurrent.futures``, whose import (with logging) costs a worker ~5 ms of
start-up, and workers never need them unless a task fails in a particular
way: they are built on first use (module ``__getattr__``)."""

from __future__ import annotations

from ._core import SegmentError, ShmrtError

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start

__all__ = [
    "ShmrtError",
    "SegmentError",
    "WorkerCrashed",  # noqa: F822 - built on first use, see __getattr__
    "PayloadTooLarge",
    "RuntimeNotFound",
    "RuntimeExists",
    "NotInWorker",
    "RemoteTraceback",  # noqa: F822 - likewise
    "BrokenPool",  # noqa: F822 - likewise
    "TaskCancelled",  # noqa: F822 - likewise
    "TaskTimeout",
    "Full",
]


class PayloadTooLarge(ShmrtError, ValueError):
    """An argument or result is larger than the runtime's configured limit."""


class RuntimeNotFound(ShmrtError, FileNotFoundError):
    """No runtime of that name is running."""


class RuntimeExists(ShmrtError, FileExistsError):
    """A runtime (or another shared-memory object) already has that name."""


class NotInWorker(ShmrtError, RuntimeError):
    """shmrt.spawn() was called outside a task running on a shmrt worker."""


class TaskTimeout(ShmrtError, TimeoutError):
    """The task ran longer than its time limit (``@shmrt.time_limit`` or
    ``Pool(task_timeout=...)``): its worker was killed and replaced."""

    def __init__(self, limit_s: float, pid: int):
        self.limit_s = limit_s
        self.pid = pid
        super().__init__(f"task ran longer than its time limit of {limit_s:g} s; its worker "
                         f"(pid {pid}) was killed")

    def __reduce__(self):
        return (type(self), (self.limit_s, self.pid))


def _worker_crashed() -> type:
    from concurrent.futures.process import BrokenProcessPool

    class WorkerCrashed(ShmrtError, BrokenProcessPool):
        """The worker running a task died (killed by a signal or exited).

        Only that task fails; the worker is replaced and every other task
        goes on.  Also a ``BrokenProcessPool``, what ProcessPoolExecutor
        raises for the same event (it then breaks the whole pool)."""

        def __init__(self, pid: int, signal: int | None, exitcode: int | None,
                     attempts: int = 1):
            self.pid = pid
            self.signal = signal
            self.exitcode = exitcode
            self.attempts = attempts
            how = f"killed by signal {signal}" if signal else f"exited with code {exitcode}"
            super().__init__(f"worker pid {pid} {how} while running this task "
                             f"(attempt {attempts})")

        def __reduce__(self):  # keep the fields across pickling
            return (type(self), (self.pid, self.signal, self.exitcode, self.attempts))

    return WorkerCrashed


def _task_cancelled() -> type:
    from concurrent.futures import CancelledError

    class TaskCancelled(ShmrtError, CancelledError):
        """The task was force-cancelled while it ran (``future.kill()``): its
        worker was killed and replaced."""

    return TaskCancelled


def _broken_pool() -> type:
    from concurrent.futures.process import BrokenProcessPool

    class BrokenPool(ShmrtError, BrokenProcessPool):
        """The pool can no longer run tasks (shut down, its coordinator died, a
        worker initializer or the main module failed in the workers)."""

    return BrokenPool


def _remote_traceback() -> type:
    # The very class ProcessPoolExecutor attaches: code that checks for it
    # works unchanged.  It keeps the text in ``.tb`` and prints it.
    from concurrent.futures.process import _RemoteTraceback

    return _RemoteTraceback


if TYPE_CHECKING:  # what the builders above make, for type checkers
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    class RemoteTraceback(Exception):  # _RemoteTraceback (typeshed says it takes a traceback)
        tb: str

        def __init__(self, tb: str) -> None: ...

    class WorkerCrashed(ShmrtError, BrokenProcessPool):
        pid: int
        signal: int | None
        exitcode: int | None
        attempts: int

        def __init__(self, pid: int, signal: int | None, exitcode: int | None,
                     attempts: int = 1) -> None: ...

    class TaskCancelled(ShmrtError, CancelledError): ...

    class BrokenPool(ShmrtError, BrokenProcessPool): ...


_BUILDERS = {"WorkerCrashed": _worker_crashed, "TaskCancelled": _task_cancelled,
             "BrokenPool": _broken_pool, "RemoteTraceback": _remote_traceback}


def __getattr__(name: str) -> type:
    build = _BUILDERS.get(name)
    if build is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = build()
    if name != "RemoteTraceback":
        cls.__module__ = __name__
        cls.__qualname__ = name
    globals()[name] = cls
    return cls


class Full(ShmrtError):
    """A non-blocking send found the relay's in-flight budget used up."""
