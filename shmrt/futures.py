"""The futures a client hands out, and the ordered results of ``map``.

Why a module of its own: these are the objects user code holds and waits
on, and the Ctrl-C rules live here (client.py has the handshake that
resolves them).  ``TaskFuture`` is a ``concurrent.futures.Future`` whose
``result()`` first polls the client's completion ring (client.py); all
futures of one client share one Condition, made safe for ``with`` under
KeyboardInterrupt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures as cf
from itertools import chain
from typing import Any

from . import _core

_DONE = frozenset({"FINISHED", "CANCELLED", "CANCELLED_AND_NOTIFIED"})


class _InterruptSafeCondition(threading.Condition):
    """The Condition all futures of a client share, safe for ``with`` under
    Ctrl-C.  ``Condition.__enter__`` is Python code calling the lock's
    C ``__enter__``; a KeyboardInterrupt raised right after that call
    returns leaves the lock held by the main thread, and every other thread
    (the harvester delivering results) then waits for it forever.  Here
    ``with`` calls the RLock's C methods directly (the property runs before
    the lock is taken), so the interrupt lands before or inside the block,
    never in between (CPython 3.10-3.13; 3.14 calls __enter__ with a CALL
    and the window is back, much narrower)."""

    @property  # type: ignore[override]
    def __enter__(self) -> Callable[[], bool]:
        return self._lock.__enter__  # type: ignore[attr-defined]

    @property  # type: ignore[override]
    def __exit__(self) -> Callable[..., None]:
        return self._lock.__exit__  # type: ignore[attr-defined]


class SharedConditionFuture(cf.Future):
    """A concurrent.futures.Future that shares its executor's Condition.

    Creating a Condition (and its RLock) per future cost more than a whole
    submit.  ``notify_all`` on completion may then wake a waiter of another
    future, so result() and exception() loop until their own future is done
    (the base class waits once and would report a timeout).  Used by the
    local pools (TaskFuture) and the Ray backend (shmrt.cluster).

    Light, because a client may hold a million of them: slots, and the two
    lists of the base class (``_waiters`` of
    ``wait``/``as_completed``, ``_done_callbacks``) are made on first use
    (the properties below), not two per future -- a third of the objects
    the garbage collector walks while a burst is pending.  The executor
    resolves a future with ``_finish``/``_fail``: ``set_result`` without
    the waiters' loop, the notify and the callbacks nobody registered.  A
    done future's ``result()`` returns without taking the Condition."""

    # Slots: no per-future dict (a burst of futures got one each).
    __slots__ = ("_condition", "_state", "_result", "_exception", "_w", "_cb")

    def __init__(self, cond: Any):  # no super().__init__: see above
        self._condition = cond
        self._state = "PENDING"
        self._result = None
        self._exception: BaseException | None = None
        self._w: list[Any] | None = None
        self._cb: list[Any] | None = None

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        w = self._w
        if w is None:
            w = self._w = []
        return w

    @property
    def _done_callbacks(self) -> list[Any]:  # type: ignore[override]
        cb = self._cb
        if cb is None:
            cb = self._cb = []
        return cb

    def _invoke_callbacks(self) -> None:
        if self._cb is not None:
            super()._invoke_callbacks()  # type: ignore[misc]

    def _settle(self, result: Any, exc: BaseException | None) -> None:
        """``set_result`` (exc None) or ``set_exception`` by the executor; a
        future already done (cancelled, or resolved by another thread that
        found the same completion) is left alone."""
        cond = self._condition
        with cond:
            if self._state in _DONE:
                return
            if exc is None:
                self._result = result
            else:
                self._exception = exc
            self._state = "FINISHED"
            if self._w:
                for waiter in self._w:
                    if exc is None:
                        waiter.add_result(self)
                    else:
                        waiter.add_exception(self)
            if cond._waiters:  # type: ignore[attr-defined]  # threading.Condition's, under its lock
                cond.notify_all()
        if self._cb is not None:
            super()._invoke_callbacks()  # type: ignore[misc]

    def _wait_done(self, timeout: float | None) -> None:
        if self._state in _DONE:
            return
        end = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._state not in _DONE:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise cf.TimeoutError()
                self._condition.wait(left)

    def result(self, timeout: float | None = None) -> Any:
        if self._state == "FINISHED" and self._exception is None:
            return self._result  # (set before the state, under the GIL)
        self._wait_done(timeout)
        if self._state == "FINISHED" and self._exception is None:
            return self._result  # (as above: the base class would take the Condition)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_done(timeout)
        return super().exception(0)


class TaskFuture(SharedConditionFuture):
    """A shmrt task's future: result() first polls the client's completion
    ring in shared memory (client_spin) before it waits."""

    # _pins: the arena blocks its shared-array arguments name (codec.Encoded.pins)
    __slots__ = ("_client", "_key", "_pins")

    def __init__(self, client: Any, key: int):  # a Client
        self._condition = client._cond  # (SharedConditionFuture.__init__, inlined)
        self._state = "PENDING"
        self._result = None
        self._exception = None
        self._w = self._cb = None
        self._client = client
        self._key = key
        self._pins: tuple = ()

    def _wait_done(self, timeout: float | None) -> None:
        if self._state == "PENDING":
            self._client._spin_for(self)
        super()._wait_done(timeout)

    def kill(self) -> bool:
        """Force-cancel: a task not started yet is cancelled (as cancel());
        a running one is stopped by killing its worker (replaced at once),
        and the future fails with ``TaskCancelled``.  False if it already
        finished.  Other tasks running nested on that worker (work helping)
        fail with WorkerCrashed or are retried, as when a worker dies."""
        if self.cancel():
            return True
        if self._state != "PENDING" or self._client._closed:
            return False
        return self._client._seg.request_kill(self._key) != 2

    def running(self) -> bool:
        """True while a worker executes the task (it cannot be cancelled then)."""
        if self._state != "PENDING" or self._client._closed:
            return super().running()
        try:
            return bool(self._client._seg.task_state(self._key) & _core.S_RUNNING)
        except Exception:  # the slot moved on: the task is done or failed
            return False

    def cancel(self) -> bool:
        with self._condition:
            if self._state != "PENDING":
                return super().cancel()
            if not self._client._cancel(self):
                return False
        return super().cancel()


def _results(fs: list[cf.Future], end: float | None, flatten: bool) -> Iterator[Any]:
    """Results in order; batches are flattened by chain() in C, not per item
    in Python (100,000 yields cost a few ms).  A batch's result is waited
    for without the spin of ``TaskFuture.result``: a batch takes long by
    construction, and on a machine with no core to spare the spinning
    caller took one from the workers computing it (``map`` of 10^5 items
    over 2 workers on 2 cores: ~15.5 -> ~17M items/s)."""
    gen = _each(fs, end, spin=not flatten)
    return chain.from_iterable(gen) if flatten else gen


def _each(fs: list[cf.Future], end: float | None, spin: bool = True) -> Iterator[Any]:
    """Each future's result, in order, holding no reference to a future or
    result already yielded (as ProcessPoolExecutor: a consumer that drops a
    result frees it)."""
    fs.reverse()
    try:
        while fs:
            if not spin and isinstance(fs[-1], SharedConditionFuture):
                # a batch's result: sleep, do not spin (see _results); the
                # base class's wait returns at once if it is done
                SharedConditionFuture._wait_done(fs[-1], None if end is None
                                                 else end - time.monotonic())
            if end is None:  # (no name holds the future or its result while we yield)
                yield fs.pop().result()
            else:
                yield fs.pop().result(end - time.monotonic())
    finally:  # abandoned or timed out: cancel what has not started
        for f in fs:
            f.cancel()
