"""The node actor: one shmrt runtime on one Ray node, fed in batches.

Why an actor per node: Ray places and supervises processes across machines
(the node actor is pinned to its node with a hard NodeAffinity strategy),
while inside the node shmrt's runtime runs microsecond tasks in shared
memory.  The actor owns that runtime (it is its coordinator: a
``shmrt.Pool`` named ``ray-<node-id-prefix>-...``, sized to the node's CPUs)
and is a thin relay between the driver and it:

* ``submit(fns, tasks)`` -- a batch from the driver: each task is submitted
  to the local pool as one shmrt task (so ``shmrt.spawn``/``join`` inside it
  stay in this node's shared memory, and shmrt's scheduler balances the
  batch over the node's workers);
* ``poll(wait_s)`` -- returns every result finished since the last poll (a
  batch), waiting up to ``wait_s`` for the first one; the driver keeps one
  poll in flight per node;
* ``steal(n)`` -- cancels up to ``n`` of the newest tasks that have not
  started (a shmrt future's ``cancel()`` succeeds only before its task
  starts) and returns their ids, for the driver to deal elsewhere;
* ``stats()``, ``info()``, ``shutdown()``.

Threads: Ray runs the methods on the actor's asyncio event loop (one
thread); shmrt's harvester thread runs the futures' done-callbacks
(``_done``).  Both touch ``live`` and ``out``, always under ``lock``.

Failure: if this process dies, its shmrt workers exit within 0.2 s (they
watch their coordinator) and the driver re-runs or fails the node's
unfinished tasks.  A worker that dies inside the node is today's local
case: the runtime replaces it and fails (or retries) only its task.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import sys
import threading
from typing import Any

from . import payload

RESULT_OK, RESULT_ERR = 0, 1
POLL_ENOUGH = 256  # results that make a poll return at once
LINGER_S = 0.0005  # else how long it waits for more while tasks run


def _point_main_here() -> None:
    """Make spawned shmrt workers import an empty ``__main__``
    (shmrt.cluster.workermain) instead of Ray's default_worker.py."""
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.util.find_spec("shmrt.cluster.workermain")


def _prune_dead(name: str) -> bool:
    """Remove runtime ``name`` if its coordinator is dead (the node actor
    this one replaces was killed).  True if it removed it."""
    from shmrt.layout import header_word
    from shmrt.segment import attach, process_alive, shm_name, unlink

    try:
        seg = attach(name, writable=False)
    except Exception:
        return False
    try:
        pid, start = header_word(seg, "coord_pid"), header_word(seg, "coord_start")
    finally:
        seg.close()
    if process_alive(pid, start):
        return False
    unlink(shm_name(name))
    return True


def _task_error(e: BaseException) -> tuple[BaseException, str | None]:
    """A task's exception for the driver, with the worker's traceback as
    text (``__cause__`` does not survive pickling)."""
    cause = e.__cause__
    tb = getattr(cause, "tb", None)
    e.__cause__ = None
    e.__traceback__ = None
    return e, tb if isinstance(tb, str) else None


class NodeRuntime:
    """The Ray actor class (made remote by ``ray_pool``); see the module
    docstring."""

    def __init__(self, name: str, workers: int, pool_options: dict[str, Any],
                 ready_timeout: float = 60.0):
        import ray

        import shmrt

        _point_main_here()
        self.node_id: str = ray.get_runtime_context().get_node_id()
        self.name = name
        try:
            self.pool = shmrt.Pool(workers=workers, name=name, **pool_options)
        except shmrt.RuntimeExists:
            if not _prune_dead(name):
                raise
            self.pool = shmrt.Pool(workers=workers, name=name, **pool_options)
        if not self.pool.wait_ready(ready_timeout):
            self.pool.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(f"node runtime {name!r}: workers did not start in {ready_timeout} s")
        self.workers = workers
        # Owned by the event loop thread (Ray calls these methods there):
        self.fns: dict[int, Any] = {}  # function key -> callable, or the exception loading it
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event: asyncio.Event | None = None
        # Shared with the harvester thread (futures' callbacks), under lock:
        self.lock = threading.Lock()
        self.live: dict[int, Any] = {}  # task id -> shmrt future, oldest first
        self.out: list[tuple[int, int, Any]] = []  # finished since the last poll
        self.waiting = False  # a poll sleeps on event: the next result sets it
        self.counters = {"batches": 0, "submitted": 0, "finished": 0, "stolen": 0, "polls": 0}

    # ---- batches in ------------------------------------------------------
    async def submit(self, fns: dict[int, bytes] | None, blob: bytes,
                     refs: list[Any] | None) -> int:
        """Submit a batch: ``blob`` is the packed list of ``(task id,
        function key, pickled call, index in refs or -1)``
        (payload.pack_batch); ``refs`` are the object-store references of
        the tasks' large buffers; ``fns`` are functions this node has not
        seen.  Returns the node's backlog."""
        if fns:
            for key, data in fns.items():
                try:
                    self.fns[key] = payload.loads_call(data, None)
                except Exception as e:  # e.g. its module is not installed on this node
                    self.fns[key] = e
        tasks = payload.unpack(blob, None)
        got = await asyncio.gather(*refs) if refs else []
        self.counters["batches"] += 1
        submit = self.pool.submit
        fails = []
        for tid, fkey, data, ref in tasks:
            try:
                bufs = got[ref] if ref >= 0 else None
                if fkey < 0:
                    fn, args, kwargs = payload.loads_call(data, bufs)
                else:
                    fn = self.fns[fkey]
                    if isinstance(fn, BaseException):
                        raise fn
                    args, kwargs = payload.loads_call(data, bufs)
                del bufs
                fut = submit(fn, *args, **kwargs)
            except BaseException as e:  # noqa: B036 - a task's failure is its result
                fails.append((tid, RESULT_ERR, _task_error(e)))
                continue
            with self.lock:
                self.live[tid] = fut
            fut.add_done_callback(functools.partial(self._done, tid))
        self.counters["submitted"] += len(tasks)
        if fails:
            self._emit(fails)
        return len(self.live)

    # ---- results out ---------------------------------------------------------
    def _done(self, tid: int, fut: Any) -> None:
        """A shmrt future finished (harvester thread, or the submitting one)."""
        # A done-callback runs once the future is final: read it without
        # taking its (the client's shared) lock three more times.
        state = fut._state
        if state != "FINISHED":
            return  # cancelled: stolen, the driver has it back already
        e = fut._exception
        if e is None:
            item = (tid, RESULT_OK, payload.raw(fut._result))
        else:
            item = (tid, RESULT_ERR, _task_error(e))
        self._emit([item], tid)

    def _emit(self, items: list[tuple[int, int, Any]], tid: int | None = None) -> None:
        with self.lock:
            if tid is not None:
                self.live.pop(tid, None)
            self.out.extend(items)
            wake, self.waiting = self.waiting, False
        if wake and self.loop is not None and self.event is not None:
            self.loop.call_soon_threadsafe(self.event.set)

    async def poll(self, wait_s: float) -> tuple[bytes, list[Any], dict[str, int]]:
        """Results finished since the last poll, packed (payload.pack:
        large buffers out of band, for Ray to carry as such).  Waits up to
        ``wait_s`` for the first; then, while tasks are still running and
        fewer than POLL_ENOUGH results are in, lingers LINGER_S for more: a
        Ray call costs the driver ~0.1 ms, so results come back in batches.
        One poll at a time (the driver keeps one in flight)."""
        if self.event is None:
            self.loop = asyncio.get_running_loop()
            self.event = asyncio.Event()
        with self.lock:
            if not self.out:
                self.event.clear()
                self.waiting = True
        if self.waiting:
            try:
                await asyncio.wait_for(self.event.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        with self.lock:
            linger = 0 < len(self.out) < POLL_ENOUGH and bool(self.live)
        if linger:
            await asyncio.sleep(LINGER_S)
        with self.lock:
            out, self.out = self.out, []
            self.waiting = False
            backlog = len(self.live)
        self.counters["polls"] += 1
        self.counters["finished"] += len(out)
        blob, bufs = payload.pack(out)
        return blob, bufs, {"backlog": backlog}

    async def steal(self, n: int) -> list[int]:
        """Cancel up to ``n`` of the newest tasks that have not started and
        return their ids (they will not run here)."""
        with self.lock:
            newest_first = list(reversed(self.live.items()))
        got: list[int] = []
        for tid, fut in newest_first:
            if len(got) >= n:
                break
            if fut.cancel():
                got.append(tid)
        with self.lock:
            for tid in got:
                self.live.pop(tid, None)
        self.counters["stolen"] += len(got)
        return got

    # ---- introspection and shutdown ----------------------------------------------
    async def info(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "pid": os.getpid(), "name": self.name,
                "workers": self.workers, "worker_pids": list(self.pool.worker_pids)}

    async def stats(self) -> dict[str, Any]:
        s = self.pool.statistics().as_dict()
        with self.lock:
            live = len(self.live)
        s["node"] = dict(self.counters, backlog=live, node_id=self.node_id, name=self.name,
                         pid=os.getpid())
        return s

    async def shutdown(self) -> None:
        """Stop the runtime: nothing should be left (the driver waited for
        its tasks, or has given up on them); the segment is unlinked."""
        self.pool.shutdown(wait=True, cancel_futures=True)
