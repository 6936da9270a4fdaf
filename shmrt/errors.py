"""The exceptions shmrt raises.  One hierarchy, rooted at ShmrtError, so that
``except shmrt.ShmrtError`` catches every runtime failure while a task's own
exception re-raises as itself in the caller."""

from __future__ import annotations

from ._core import SegmentError, ShmrtError

__all__ = [
    "ShmrtError",
    "SegmentError",
    "WorkerCrashed",
    "PayloadTooLarge",
    "RuntimeNotFound",
    "RuntimeExists",
    "NotInWorker",
    "RemoteTraceback",
    "BrokenPool",  # noqa: F822 - built on first use, see __getattr__
    "TaskCancelled",  # noqa: F822 - likewise
    "TaskTimeout",
    "Full",
]


class WorkerCrashed(ShmrtError):
    """The worker running a task died (killed by a signal or exited).

    Only that task fails; the worker is replaced and every other task goes on.
    """

    def __init__(self, pid: int, signal: int | None, exitcode: int | None, attempts: int = 1):
        self.pid = pid
        self.signal = signal
        self.exitcode = exitcode
        self.attempts = attempts
        how = f"killed by signal {signal}" if signal else f"exited with code {exitcode}"
        super().__init__(f"worker pid {pid} {how} while running this task (attempt {attempts})")

    def __reduce__(self):  # keep the fields across pickling
        return (type(self), (self.pid, self.signal, self.exitcode, self.attempts))


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


def _task_cancelled() -> type:
    from concurrent.futures import CancelledError

    class TaskCancelled(ShmrtError, CancelledError):
        """The task was force-cancelled while it ran (``future.kill()``): its
        worker was killed and replaced."""

    TaskCancelled.__module__ = __name__
    TaskCancelled.__qualname__ = "TaskCancelled"
    return TaskCancelled


def _broken_pool() -> type:
    from concurrent.futures import BrokenExecutor

    class BrokenPool(ShmrtError, BrokenExecutor):
        """The pool can no longer run tasks (shut down, or its coordinator died)."""

    BrokenPool.__module__ = __name__
    BrokenPool.__qualname__ = "BrokenPool"
    return BrokenPool


def __getattr__(name: str) -> type:
    # BrokenPool subclasses concurrent.futures.BrokenExecutor, and importing
    # concurrent.futures (with logging) costs a worker ~5 ms of start-up;
    # workers never raise it, so it is built on first use.
    if name == "BrokenPool":
        cls = globals()["BrokenPool"] = _broken_pool()
        return cls
    if name == "TaskCancelled":
        cls = globals()["TaskCancelled"] = _task_cancelled()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Full(ShmrtError):
    """A non-blocking send found the relay's in-flight budget used up."""


class RemoteTraceback(Exception):
    """Attached as ``__cause__`` of a task's exception: the worker's traceback."""

    def __init__(self, tb: str):
        self.tb = tb

    def __str__(self) -> str:
        return self.tb
