"""The pools compared by ``shmrt bench``, behind one small adapter interface.

Three peers run every workload with the same number of worker processes,
and every pool starts its workers with the ``spawn`` method (a fresh
interpreter that imports the task module), so that no peer gets the
copy-on-write head start that ``fork`` would give:

* ``shmrt``  -- ``shmrt.Pool(workers)``.
* ``ppe``    -- ``concurrent.futures.ProcessPoolExecutor(max_workers=workers,
  mp_context=multiprocessing.get_context("spawn"))``.
* ``mp``     -- ``multiprocessing.get_context("spawn").Pool(workers)``.

The adapters only *hand out* each pool's own fast path: ``submit`` is the
executor's bound ``submit`` (or ``apply_async`` for ``multiprocessing``) and
``result`` waits on the returned future / ``AsyncResult``.  A generous
timeout guards every wait so a wedged pool turns into an error row in the
table instead of a hung benchmark.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import multiprocessing.pool
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from . import workloads as wl

__all__ = [
    "PEER_CLASSES",
    "PEER_KEYS",
    "WAIT_TIMEOUT",
    "MpPoolPeer",
    "Peer",
    "PpePeer",
    "ShmrtPeer",
]

#: Upper bound (seconds) for any single wait on a result in the benchmark.
WAIT_TIMEOUT = 300.0
#: Upper bound (seconds) for shutting a pool down after a workload.
SHUTDOWN_TIMEOUT = 60.0


class Peer:
    """A pool under test.  Subclasses fill in ``start``/``_close``/``map``.

    ``submit(fn, *args)`` returns an opaque handle, ``result(handle)`` waits
    for it.  Both are plain attributes set by ``start`` to the pool's own
    bound methods so the timing loops pay no extra indirection.
    """

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True when tasks can spawn and join sub-tasks (``shmrt.spawn``).
    can_spawn: ClassVar[bool] = False
    #: Label of the object-store variant of ``payload`` ("" = the peer has none).
    store_label: ClassVar[str] = ""

    def __init__(self, workers: int, **options: Any) -> None:
        self.workers = workers
        #: keyword arguments for the pool constructor (e.g. shmrt's ``arena_size``)
        self.options = options
        #: set by the runner when every sample needs a brand-new pool (``startup``)
        self.fresh_start = False
        self.pool: Any = None
        self.submit: Callable[..., Any] = self._not_started
        self.result: Callable[[Any], Any] = self._not_started

    def _not_started(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.label}: pool not started")

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _kill(self) -> None:
        """Last resort when a graceful shutdown did not finish in time."""

    def close(self, timeout: float = SHUTDOWN_TIMEOUT) -> str | None:
        """Shut the pool down; return an error string instead of hanging."""
        if self.pool is None:
            return None
        errors: list[BaseException] = []

        def target() -> None:
            try:
                self._close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        t = threading.Thread(target=target, name=f"bench-close-{self.key}", daemon=True)
        t.start()
        t.join(timeout)
        msg: str | None = None
        if t.is_alive():
            msg = f"{self.label}: shutdown did not finish within {timeout:.0f}s"
            try:
                self._kill()
            except Exception as exc:  # noqa: BLE001
                msg += f" (kill failed: {exc!r})"
        elif errors:
            msg = f"{self.label}: shutdown raised {errors[0]!r}"
        self.pool = None
        self.submit = self.result = self._not_started
        return msg

    # -- work -------------------------------------------------------------

    def forget_warm(self) -> None:
        """Drop what an earlier pool of this process left to start the next
        one faster (``startup``'s cold sample); most pools keep nothing."""

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit one task and wait for its result."""
        return self.result(self.submit(fn, *args))

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        raise NotImplementedError

    def put(self, obj: Any) -> Any:
        """Store ``obj`` once in the peer's object store; ``None``: no store.

        Ray has one (``ray.put``), shmrt has shared arrays (``share``);
        ``payload`` then also times tasks that get the stored reference
        instead of the array.
        """
        return None

    def warm(self) -> int:
        """Make sure every worker process is started and has run a task.

        Submits ``2 * workers`` short sleeping tasks at once (pools that start
        workers lazily start one per pending submission), then one tiny task.
        Returns the number of distinct worker pids seen.
        """
        hs = [self.submit(wl.warm, 0.02) for _ in range(2 * self.workers)]
        pids = {self.result(h) for h in hs}
        self.call(wl.noop)
        return len(pids)


def _future_result(fut: cf.Future[Any]) -> Any:
    return fut.result(WAIT_TIMEOUT)


class ShmrtPeer(Peer):
    key = "shmrt"
    label = "shmrt"
    description = "shmrt.Pool(workers)"
    can_spawn = True
    store_label = "shmrt, shared array built once (pool.share, untimed)"

    def start(self) -> None:
        import shmrt

        pool = shmrt.Pool(self.workers, **self.options)
        self.pool = pool
        self.submit = pool.submit
        self.result = _future_result

    def _close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def put(self, obj: Any) -> Any:
        """A shared array (the arena): tasks get a view of it, no copy."""
        return self.pool.share(obj)

    def forget_warm(self) -> None:
        import shmrt.zygote

        shmrt.zygote.stop()

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        if chunksize is None:
            return list(self.pool.map(fn, items, timeout=WAIT_TIMEOUT))
        return list(self.pool.map(fn, items, timeout=WAIT_TIMEOUT, chunksize=chunksize))


class PpePeer(Peer):
    key = "ppe"
    label = "PPE"
    description = (
        "concurrent.futures.ProcessPoolExecutor(max_workers=workers, "
        "mp_context=multiprocessing.get_context('spawn'))"
    )

    def start(self) -> None:
        pool = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )
        self.pool = pool
        self.submit = pool.submit
        self.result = _future_result

    def _close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _kill(self) -> None:
        procs = getattr(self.pool, "_processes", None) or {}
        for p in list(procs.values()):
            p.kill()

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        return list(self.pool.map(fn, items, timeout=WAIT_TIMEOUT, chunksize=chunksize or 1))


def _async_get(res: multiprocessing.pool.AsyncResult[Any]) -> Any:
    return res.get(WAIT_TIMEOUT)


class MpPoolPeer(Peer):
    key = "mp"
    label = "mp.Pool"
    description = "multiprocessing.get_context('spawn').Pool(workers)"

    def start(self) -> None:
        pool = multiprocessing.get_context("spawn").Pool(self.workers)
        self.pool = pool
        apply_async = pool.apply_async

        def submit(fn: Callable[..., Any], *args: Any) -> multiprocessing.pool.AsyncResult[Any]:
            return apply_async(fn, args)

        self.submit = submit
        self.result = _async_get

    def _close(self) -> None:
        self.pool.close()
        self.pool.join()

    def _kill(self) -> None:
        self.pool.terminate()

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        res = self.pool.map_async(fn, items, chunksize=chunksize)
        return list(res.get(WAIT_TIMEOUT))


PEER_CLASSES: dict[str, type[Peer]] = {cls.key: cls for cls in (ShmrtPeer, PpePeer, MpPoolPeer)}
PEER_KEYS: tuple[str, ...] = tuple(PEER_CLASSES)
