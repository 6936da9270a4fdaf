"""The client side of a runtime: submit work, get standard futures back.

Why: ``concurrent.futures`` is the interface Python users already know, so a
client is an ``Executor`` and ``submit`` returns a real
``concurrent.futures.Future`` (``as_completed``, ``wait`` and
``asyncio.wrap_future`` work).  What is different is underneath: ``submit``
is one C call that fills a slot and pushes it on the inject queue, and
completions come back on this client's completion ring in shared memory.

Two ways a completion reaches its future:

* the harvester thread sleeps on the client's futex word and drains the ring
  (callbacks, ``as_completed``, ``wait`` are served by it);
* a thread blocked in ``Future.result()`` first spins on the ring itself for
  a short budget with the GIL released (``client_spin``) and drains it, so a
  round trip does not pay a futex wake plus a thread hand-off (~50 us each).
  While anyone spins, completers skip the futex wake.

A completion may be harvested (by either) before ``submit`` has recorded its
future; it is parked in ``_orphans`` and picked up by ``submit``.  The two
dicts are shared by every thread (submitters, the harvester, result()
spinners) without a lock: each dict operation is atomic under the GIL, and
both sides store first, then look at the other dict (submit: record the
future, then look for an orphan; deliver: miss the future, store the
orphan, then look for the future again), so whichever runs second finds
the other's entry.  Both may find it; resolving is idempotent.  (A
check-then-store on one side only lost results: a test widens the window.)
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures as cf
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from . import _core, codec
from .errors import BrokenPool, PayloadTooLarge, RuntimeNotFound
from .futures import TaskFuture, _InterruptSafeCondition, _results
from .layout import Header, header_word
from .mapping import _map_chunk, _starmap_chunk, lazy_map
from .protocol import NO_FN, ByValue, fn_id_for, task_outcome
from .segment import attach, proc_start_time, process_alive

if TYPE_CHECKING:
    from .stats import Statistics

RESULT_SPIN_S = 200e-6
_ST_OK = _core.ST_OK
# map's inputs whose slices are taken as chunks as they are (exact types: a
# subclass may slice differently)
_SLICEABLE = (list, tuple, range)
# Tests widen the windows of the submit/deliver race with this (see
# tests/test_client_race.py); None in normal runs.
_race_hook: Callable[[str], None] | None = None
_CRASH = _core.crash_armed()  # a test run armed a crash point (crash.h)
HARVEST_WAIT_S = 0.5


class Client(cf.Executor):
    """Submit work to a running runtime.  Made by ``shmrt.connect(name)``;
    ``shmrt.Pool`` is a Client that also owns the runtime."""

    def __init__(self, seg: _core.Segment, *, name: str, retries: int = 0, owner: bool = False,
                 task_timeout: float | None = None):
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be > 0 seconds (or None)")
        self._seg = seg
        self.name = name
        self._retries = retries
        self._task_timeout = task_timeout or 0.0
        self._owner = owner
        # Set once, by whichever thread finds the runtime unusable: why, and
        # the worker traceback behind it (BrokenPool's __cause__) if any.
        self._broken_reason: str | None = None
        self._broken_tb: str | None = None
        self._shutdown_msg = "cannot schedule new futures after shutdown"
        lay = seg.layout
        self._workers = lay["n_workers"]
        self._inline_cap = lay["slot_size"] - _core.SLOT_HEADER_SIZE
        self._max_payload = lay["max_payload"]
        self._no_args = codec.encode(seg, (), call=True, kwargs=None, inline_cap=self._inline_cap,
                                     max_payload=self._max_payload)
        assert self._no_args.blob < 0  # reused by every call without arguments: inline
        pid = os.getpid()
        cid = seg.client_claim(pid, proc_start_time(pid))
        if cid < 0:
            raise BrokenPool(f"runtime {name!r}: all {lay['n_clients']} client entries in use")
        self._cid = cid
        # key -> future of a task not yet delivered; key -> (status, data) of a
        # completion harvested before its future was recorded.  Any thread;
        # the store-then-look protocol in the module docstring, no lock.
        self._pending: dict[int, TaskFuture] = {}
        self._orphans: dict[int, tuple[int, Any]] = {}
        self._fn_ids: dict[Any, int] = {}  # by reference; by value: _byval (weak)
        self._byval = ByValue()
        self._fn_opts: dict[int, tuple[int, float]] = {}  # fid -> (retries, time limit s)
        self._shutdown = False
        self._interrupted = False  # _interrupt(): stop without waiting (a Pool kills busy workers)
        self._closed = False
        self._lock = threading.Lock()
        self._cond = _InterruptSafeCondition()
        # The batch of completions the main thread harvested and has not
        # delivered yet, under key 0: reading the key harvests (see _drain).
        # Main thread only.
        self._main_batch: defaultdict[int, list[tuple[int, int, Any]]] = defaultdict(
            partial(seg.harvest, cid, 4096))
        self._main_ident = threading.main_thread().ident
        self._run_off = Header.TABLE["run_state"]
        # The thread holds the client weakly between rounds: a client (or Pool)
        # the program dropped can be collected (and then closes itself).
        self._harvester = threading.Thread(target=_harvest_loop, args=(weakref.ref(self),),
                                           name=f"shmrt-harvest-{name}", daemon=True)
        self._harvester.start()

    # ---- Executor API ----------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        if self._shutdown:
            if self._broken_reason:
                raise self._broken_error()
            raise RuntimeError(self._shutdown_msg)
        seg = self._seg
        fid = self._fn_ids.get(fn)
        if fid is None:
            fid = fn_id_for(seg, self._fn_ids, fn, self._byval)
        if fid == NO_FN:
            args = (fn, *args)
            retries, limit = self._opts(fn)
        else:
            # _fn_ids gets the id inside fn_id_for: another thread may see it
            # before the options below are recorded, so look, never assume
            opts = self._fn_opts.get(fid)
            if opts is None:
                opts = self._fn_opts[fid] = self._opts(fn)
            retries, limit = opts
        if args or kwargs:
            enc = codec.encode(seg, args, call=True, kwargs=kwargs, inline_cap=self._inline_cap,
                               max_payload=self._max_payload, share=True)
        else:  # no arguments: always the same (inline) message
            enc = self._no_args
        key = seg.submit(self._cid, fid, enc.inline, enc.blob, retries, limit)
        if key < 0:
            key = self._submit_slow(fid, enc, retries, limit)
        if _CRASH:
            _core.crash_point("client.after_submit")
        fut = TaskFuture(self, key)
        if enc.pins:  # shared arrays: their blocks live until the task is done
            fut._pins = enc.pins
        if _race_hook is not None:
            _race_hook("submit")
        self._pending[key] = fut  # store first ...
        if self._orphans:  # ... then look (and take it only once resolved)
            got = self._orphans.get(key)
            if got is not None:
                self._resolve(fut, *got)
                self._pending.pop(key, None)
                self._orphans.pop(key, None)
        return fut

    def _broken_error(self) -> BaseException:
        """The BrokenPool to raise or fail futures with: the reason, and the
        worker's traceback (initializer, main module) as its cause."""
        e = BrokenPool(self._broken_reason or f"runtime {self.name!r} is not running")
        if self._broken_tb:
            from .errors import RemoteTraceback

            e.__cause__ = RemoteTraceback(self._broken_tb)
        return e

    def _opts(self, fn: Callable[..., Any]) -> tuple[int, float]:
        """(retries, time limit in s, 0 = none) of a function's tasks."""
        return (getattr(fn, "__shmrt_retries__", self._retries),
                getattr(fn, "__shmrt_time_limit__", self._task_timeout))

    def _submit_slow(self, fid: int, enc: codec.Encoded, retries: int, limit: float) -> int:
        """No free slot: wait for completions to free some (backpressure)."""
        while True:
            self._check_alive()
            self._drain()
            key = self._seg.submit(self._cid, fid, enc.inline, enc.blob, retries, limit)
            if key >= 0:
                return key
            self._seg.client_wait(self._cid, 0.001)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None, buffersize: int | None = None) -> Iterator[Any]:
        """Like Executor.map (Python 3.14's, with ``buffersize``).

        ``chunksize=None`` picks a batch size from the input length (about 4
        batches per worker, at most 10,000 items).  Without ``buffersize``
        the input is read and submitted at once, as ProcessPoolExecutor
        does; with it, lazily: at most ``buffersize`` chunks (default
        chunksize 1) are submitted and not yet yielded, so an endless or
        huge generator maps in bounded memory.  ``timeout`` counts from
        this call.  Abandoning the iterator (or an exception, Ctrl-C)
        cancels what has not started."""
        if chunksize is not None and chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None:
            if not isinstance(buffersize, int):
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        end = None if timeout is None else time.monotonic() + timeout
        single = len(iterables) == 1
        if buffersize is not None:
            return lazy_map(self, fn, iterables, end, chunksize or 1, buffersize)
        items: Sequence[Any]
        if not single:
            items = list(zip(*iterables))  # noqa: B905 - stops at the shortest
        elif type(iterables[0]) in _SLICEABLE:
            # Sliced, not copied (the slices are taken here, at the call, as
            # a copy would be).  A range's chunks are ranges: no list of ints
            # built, pickled here and unpickled in the worker (map over
            # range(10**5): 12-19 -> 25-27M items/s, docs/benchmarks.md).
            items = cast("Sequence[Any]", iterables[0])
        else:
            items = list(iterables[0])
        if chunksize is None:
            chunksize = max(1, min(10_000, -(-len(items) // (self._workers * 4))))
        fs: list[cf.Future] = []
        try:
            if chunksize == 1:
                submit = self.submit
                if single:
                    for x in items:
                        fs.append(submit(fn, x))
                else:
                    for args in items:
                        fs.append(submit(fn, *args))
            else:
                batch = _map_chunk if single else _starmap_chunk
                for i in range(0, len(items), chunksize):
                    fs.append(self.submit(batch, fn, items[i:i + chunksize]))
        except BaseException:  # Ctrl-C or a pickling error half-way: run none of it
            for f in fs:
                f.cancel()
            raise
        return _results(fs, end, flatten=chunksize > 1)

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await pool.run(fn, *args)`` from asyncio code."""
        import asyncio

        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with wait, return when every future is done.
        A plain client detaches; a Pool also stops its runtime.

        ``cancel_futures`` cancels every task no worker has started except
        the oldest ``max_workers`` pending ones: those count as dispatched,
        as in ProcessPoolExecutor (whose call queue already holds them).
        Ctrl-C while waiting stops everything at once (``_interrupt``)."""
        self._shutdown = True
        if cancel_futures:
            self._cancel_queued(keep=self._workers)
        if wait:
            try:
                self._wait_pending()
            except KeyboardInterrupt:
                self._interrupt()
                raise
            self._close()
        else:
            def finish() -> None:
                self._wait_pending()
                self._close()

            threading.Thread(target=finish, daemon=True).start()

    def _cancel_queued(self, keep: int = 0) -> None:
        """Cancel pending futures (newest first) but the ``keep`` oldest."""
        for f in reversed(list(self._pending.values())[keep:]):
            f.cancel()

    def _interrupt(self) -> None:
        """Ctrl-C (or terminate_workers): cancel what is queued, stop what
        runs (a Pool kills its busy workers; their futures fail with
        BrokenPool), release everything.  Quick whatever runs."""
        self._shutdown = True
        self._interrupted = True
        self._cancel_queued()
        if self._broken_reason is None:
            self._broken_reason = "the pool was stopped (KeyboardInterrupt or terminate_workers())"
        self._close()

    # ---- completion path ---------------------------------------------------
    def _deliver(self, key: int, status: int, data: Any) -> None:
        """Resolve ``key``'s future, or park the result for submit (see the
        module docstring).  Safe to repeat after an interruption."""
        fut = self._pending.get(key)
        if fut is None:
            if _race_hook is not None:
                _race_hook("deliver")
            self._orphans[key] = (status, data)  # store first ...
            fut = self._pending.get(key)  # ... then look again
            if fut is None:
                return
            self._orphans.pop(key, None)
        self._resolve(fut, status, data)
        self._pending.pop(key, None)  # after: an interrupted delivery can be repeated

    def _resolve(self, fut: TaskFuture, status: int, data: Any) -> None:
        """Idempotent: two threads may both find the same result (see the
        module docstring); the second finds the future done."""
        fut._pins = ()  # the task is done with the shared arrays it was given
        try:
            if status == _ST_OK:  # (task_outcome's first case, without its frame and tuple)
                value, exc = codec.decode(data, call=False), None
            else:
                value, exc = task_outcome(status, data)
        except BaseException as e:  # noqa: B036 - a result that cannot be decoded goes there too
            value, exc = None, e
        del data  # the result's arena block: a failed task's exception must not keep it
        fut._settle(value, exc)

    def _drain(self) -> int:
        """Deliver what is on the completion ring.  The items are ours alone
        once harvested (their slots are freed), so a KeyboardInterrupt
        raised in between must not drop the rest: it is re-raised after
        every item was delivered.

        Only the main thread sees KeyboardInterrupt, and it can arrive
        right after a call returns, before its result is stored in a
        variable: there, the main thread harvests by reading
        ``_main_batch[0]`` (the defaultdict calls ``harvest`` and stores its
        result in C, no bytecode in between), delivers from that list and
        deletes the key when done; an interrupted batch is finished by the
        next drain."""
        if threading.get_ident() == self._main_ident:
            return self._drain_main()
        items = self._seg.harvest(self._cid, 4096)
        interrupted: BaseException | None = None
        i = 0
        while i < len(items):
            try:
                self._deliver(*items[i])
                i += 1
            except KeyboardInterrupt as e:  # _deliver is idempotent: retry this item
                interrupted = e
        if interrupted is not None:
            raise interrupted
        return len(items)

    def _drain_main(self) -> int:
        batches = self._main_batch
        interrupted: BaseException | None = None
        n = 0
        while True:
            try:
                items = batches[0]  # harvests unless an interrupted batch is left
                while items:
                    self._deliver(*items[-1])  # idempotent: repeated if interrupted
                    del items[-1]
                    n += 1
                del batches[0]
                break
            except KeyboardInterrupt as e:
                interrupted = e
        if interrupted is not None:
            raise interrupted
        return n

    def _spin_for(self, fut: TaskFuture) -> None:
        if self._closed:
            return
        deadline = time.perf_counter() + RESULT_SPIN_S
        seg, cid = self._seg, self._cid
        while fut._state == "PENDING":
            left = deadline - time.perf_counter()
            if left <= 0 or not seg.client_spin(cid, left):
                return
            self._drain()

    def _reconcile(self) -> None:
        """A completion parked for submit whose future submit recorded but
        did not resolve (Ctrl-C in between): resolve it (harvester, on its
        idle wake-ups; resolving twice is harmless)."""
        for key in [k for k in list(self._orphans) if k in self._pending]:
            got, fut = self._orphans.get(key), self._pending.get(key)
            if got is not None and fut is not None:
                self._resolve(fut, *got)
                self._pending.pop(key, None)
                self._orphans.pop(key, None)

    def _check_stopped(self) -> None:
        """The harvester slept its full period: is the runtime still there?"""
        if self._pending and not self._runtime_running():
            self._fail_pending(self._stopped_error("stopped or its coordinator died"))

    def _stopped_error(self, what: str) -> BaseException:
        """BrokenPool for a runtime that is not running: naming the corrupt
        region when the runtime marked itself broken (broken.c), or why
        this pool broke itself (the supervisor sets the reason before it
        stops the runtime, which wakes this harvester)."""
        if self._broken_reason:
            return self._broken_error()
        try:
            reason = self._seg.broken_reason()
        except Exception:  # the segment is gone: nothing more to say
            reason = None
        if reason:
            return BrokenPool(f"runtime {self.name!r} is broken: {reason}")
        return BrokenPool(f"runtime {self.name!r} {what}")

    def __del__(self) -> None:
        """Dropped without shutdown(): nothing can wait for its futures any
        more (they would keep it alive), so close it."""
        try:
            if not getattr(self, "_closed", True):  # (False only once fully built)
                self._shutdown = True
                self._close()
        except Exception:
            pass

    def _cancel(self, fut: TaskFuture) -> bool:
        if self._closed:
            return True
        try:
            r = self._seg.cancel(fut._key)
        except _core.SegmentError:
            # A stale key: the task finished and a harvester took its
            # completion (the slot moved on) but has not resolved the future
            # yet.  Too late to cancel; the result is on its way.
            return False
        if r == 0:
            self._pending.pop(fut._key, None)
            return True
        return False

    def _check_alive(self) -> None:
        if not self._runtime_running():
            raise self._broken_error()

    def _wait_pending(self) -> None:
        while self._pending:
            cf.wait(list(self._pending.values()), timeout=0.5)
            if not self._runtime_running():
                self._fail_pending(self._stopped_error("stopped"))

    def _runtime_running(self) -> bool:
        """Run state RUNNING and (for a connected client) a live coordinator:
        a SIGKILLed coordinator never gets to change the run state."""
        try:
            if self._seg.load64(self._run_off) != _core.RUN_RUNNING:
                return False
            return self._owner or coordinator_alive(self._seg)
        except Exception:
            return False

    def _fail_pending(self, exc: BaseException) -> None:
        failed = []
        for key in list(self._pending):
            fut = self._pending.pop(key, None)
            if fut is not None:
                failed.append(fut)
        for fut in failed:
            fut._settle(None, exc)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._seg.client_wake(self._cid)
        except Exception:
            pass
        if self._harvester is not threading.current_thread():
            self._harvester.join()
        self._seg.client_release(self._cid)
        self._fail_pending(self._broken_error() if self._broken_reason
                           else BrokenPool("client closed"))
        self._detach()

    def _detach(self) -> None:
        if self._seg.exports == 0:
            self._seg.close()

    # ---- shared arrays -----------------------------------------------------
    def empty(self, shape: int | tuple[int, ...], dtype: Any = float) -> Any:
        """A new numpy array (uninitialised) in the runtime's shared memory.

        Pass it to tasks and they get a view of the same memory, never a
        copy: what they write, the caller sees.  The memory is an arena block
        with a reference count, held by every process that has a view of it
        (tasks that keep it, results built on it); it is freed when the last
        view in any process is gone, or when a process holding one dies.
        Raises PayloadTooLarge when the arena has no block that big."""
        import numpy as np

        dt = np.dtype(dtype)
        shp = (shape,) if isinstance(shape, int) else tuple(shape)
        count = 1
        for d in shp:
            if d < 0:
                raise ValueError(f"negative dimension {d} in shape {shp}")
            count *= d
        nbytes = count * dt.itemsize
        if nbytes > self._seg.layout["arena_size"]:
            raise PayloadTooLarge(f"an array of {nbytes} bytes does not fit in the arena "
                                  f"({self._seg.layout['arena_size']} bytes; Pool(arena_size=...))")
        got = self._seg.blob_alloc(max(nbytes, 1))
        if got is None:
            raise PayloadTooLarge(f"arena exhausted: no block of {nbytes} bytes free "
                                  "(raise Pool(arena_size=...))")
        off, view = got
        self._seg.blob_release(off)  # the view (under the array) is the only holder
        return np.frombuffer(memoryview(view), dtype=dt, count=count).reshape(shp)

    def share(self, array: Any) -> Any:
        """A copy of ``array`` in the runtime's shared memory (see empty())."""
        import numpy as np

        a = np.asarray(array)
        out = self.empty(a.shape, a.dtype)
        out[...] = a
        return out

    # ---- introspection ------------------------------------------------------
    def statistics(self) -> Statistics:
        """Counters of the runtime as this client sees them (docs/statistics.md)."""
        from dataclasses import replace  # here: dataclasses costs ~5 ms to import

        from .stats import ClientStatistics, runtime_statistics

        return replace(runtime_statistics(self._seg),
                       client=ClientStatistics(id=self._cid, pending=len(self._pending)))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupt()  # Ctrl-C: do not wait for the rest of the work
        else:
            self.shutdown(wait=True)


def _harvest_loop(ref: weakref.ref[Client]) -> None:
    """The harvester thread.  It holds its client only while it delivers, not
    while it sleeps, so a client the program dropped can be collected (its
    __del__ closes it, which wakes this thread to find it gone)."""
    while True:
        client = ref()
        if client is None:
            return
        seg, cid = client._seg, client._cid
        try:
            seq = seg.client_seq(cid)  # before the _closed check: _close bumps it after
            if client._closed or client._drain():
                if client._closed:
                    return
                continue
            del client
            woke = seg.client_wait(cid, HARVEST_WAIT_S, seq)
        except Exception:
            client = ref()
            if client is None or client._closed:
                return
            raise
        if not woke:
            client = ref()
            if client is None:
                return
            if client._orphans and client._pending:
                client._reconcile()
            client._check_stopped()
            del client


def coordinator_alive(seg: _core.Segment) -> bool:
    return process_alive(header_word(seg, "coord_pid"), header_word(seg, "coord_start"))


def connect(name: str, *, retries: int = 0) -> Client:
    """A client of the named runtime (started with ``shmrt start NAME`` or
    ``shmrt.Pool(name=NAME)``) from any process of the same user."""
    seg = attach(name, writable=True)
    if header_word(seg, "run_state") != _core.RUN_RUNNING:
        seg.close()
        raise RuntimeNotFound(f"runtime {name!r} exists but is not running")
    if not coordinator_alive(seg):
        seg.close()
        raise RuntimeNotFound(f"runtime {name!r} is stale: its coordinator is dead "
                              "(remove it with 'shmrt prune')")
    return Client(seg, name=name, retries=retries)

