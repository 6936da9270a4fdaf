"""Pool: a client that also owns its runtime (the coordinator).

Why a coordinator: somebody must create the segment, start the workers, and
notice when one dies.  The process that builds a ``Pool`` (or runs ``shmrt
start``) is that somebody.  Its supervisor thread waits on the workers'
sentinels; when a worker dies it

1. marks it dead and restores the idle word for the state it died in,
2. moves its LIFO slot and local queue to the inject queue,
3. re-queues the tasks it was running if they have retries left, otherwise
   completes them with ``WorkerCrashed(pid, signal)``,
4. drops the join handles it held on its children,
5. starts a replacement with the same worker id and a new epoch.

Nothing else is lost: that is the case where ProcessPoolExecutor breaks the
whole pool.  A worker that *retires* (``max_tasks_per_child``,
``max_worker_memory``: it exits with code 0 between tasks) goes through the
same reclaim, which finds nothing running and gives its queue back; its
replacement is forked by the zygote when there is one (shmrt.launch), so
recycling does not pay an interpreter start-up.  A worker that fails to start
because the main module or the initializer fails breaks the pool at once
with that error (it would fail in every worker).

Shutdown, in order: stop accepting work; wait for (or cancel) pending
futures; set the run state to STOPPING and wake every worker; join them
(terminate stragglers after a grace period); stop the supervisor and the
harvester; unlink the segment; unmap it once no zero-copy view is alive.

Interrupted (Ctrl-C) while waiting in ``shutdown``, or leaving a ``with``
block or the interpreter by KeyboardInterrupt: queued tasks are cancelled,
running ones are *stopped* (their workers killed, their futures fail with
BrokenPool), and the runtime is gone within a fraction of a second.

Workers are started with the spawn method (or forkserver), so functions
defined in a script's ``__main__`` work as with ProcessPoolExecutor.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _core, launch, layout, spare
from .client import Client
from .segment import Config, create, random_name, reserved_bytes, shm_name, unlink
from .supervisor import Supervisor, supervise
from .workers import cpu

if TYPE_CHECKING:
    from .relay import RelaySpec
    from .stats import Statistics

JOIN_GRACE_S = 5.0
INTERRUPT_JOIN_S = 1.0  # interrupted stop: how long an idle worker gets to exit
_live: weakref.WeakSet[Pool] = weakref.WeakSet()


class Pool(Supervisor, Client):
    """A process pool on a shared-memory work-stealing runtime.

    Takes ProcessPoolExecutor's arguments with the same meaning:
    ``Pool(max_workers=None, mp_context=None, initializer=None, initargs=(),
    *, max_tasks_per_child=None)``; ``max_workers=None`` starts
    ``os.cpu_count()`` workers (``workers=`` is an alias); ``mp_context`` is
    "spawn" (the default), "forkserver" or such a context.  It is a
    ``concurrent.futures.Executor``: ``submit``, ``map``, ``shutdown``, and a
    context manager; ``await pool.run(fn, *args)`` for asyncio.

    ``max_worker_memory`` (bytes) retires a worker whose RSS grew past it
    (checked every few tasks), like ``max_tasks_per_child`` does after that
    many tasks; while either is set a zygote is kept started that forks the
    replacements (``standby=False``: they are spawned).

    Options: ``name`` makes it a named runtime other processes can
    ``shmrt.connect()`` to; ``retries`` re-runs a task whose worker died (per
    function: ``@shmrt.retry(n)``); ``imports`` are modules each worker
    imports at start; ``slots``, ``slot_size``, ``arena_size``,
    ``max_payload`` size the segment; ``spin_us`` is how long an idle
    searching worker polls before it parks on its futex (0: park at once;
    a futex wake costs ~50 us, a spin hit well under 1 us);
    ``local_queue_capacity`` (a power of two <= 256) exists for protocol
    tests.
    """

    def __new__(cls, *args: Any, backend: str | None = None, **kwargs: Any) -> Any:
        """``backend="ray"`` returns a ``shmrt.cluster.RayPool`` instead: the
        same Executor over one shmrt runtime per Ray node (docs/cluster.md).
        ``None``/``"local"``: this pool."""
        if backend in (None, "local"):
            return super().__new__(cls)
        if backend == "ray":
            from .cluster import RayPool  # ImportError without Ray: pip install 'shmrt[ray]'

            return RayPool(*args, **kwargs)
        raise ValueError(f"unknown backend {backend!r}: use 'local' or 'ray'")

    def __init__(self, max_workers: int | None = None, mp_context: Any = None,
                 initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = (),
                 *, max_tasks_per_child: int | None = None, max_worker_memory: int | None = None,
                 standby: bool | None = None, workers: int | None = None,
                 name: str | None = None, retries: int = 0,
                 imports: tuple[str, ...] | list[str] = (), slots: int = 16384,
                 slot_size: int = 512, arena_size: int = 64 << 20, max_payload: int | None = None,
                 local_queue_capacity: int = _core.LOCAL_CAP_MAX, clients: int = 16,
                 spin_us: float = cpu.SPIN_S * 1e6, task_timeout: float | None = None,
                 backend: str | None = None, _relay: RelaySpec | None = None):
        if cpu._current is not None:  # we are a task on a worker (a daemonic process)
            raise RuntimeError("shmrt.Pool() cannot be created inside a task running on a shmrt "
                               "worker; use shmrt.spawn() and join() for nested parallelism")
        from multiprocessing import spawn as mp_spawn

        # A worker importing a main module that builds a pool at import time
        # (no __main__ guard): multiprocessing's "bootstrapping phase" error,
        # reported by the worker to its coordinator (shmrt.launch).
        mp_spawn._check_not_importing_main()  # type: ignore[attr-defined]
        n = _worker_count(max_workers, workers)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        if max_worker_memory is not None and not (isinstance(max_worker_memory, int)
                                                  and max_worker_memory > 0):
            raise ValueError("max_worker_memory must be a number of bytes > 0 (or None)")
        ctx = launch.resolve_context(mp_context)
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be > 0 seconds (or None)")
        for mod in imports:  # fail here, not in an endless worker crash loop
            importlib.import_module(mod)
        cfg = Config(n_workers=n, n_slots=slots, slot_size=slot_size,
                     local_cap=local_queue_capacity, n_clients=clients, arena_size=arena_size,
                     max_payload=max_payload)
        self._relay_spec = _relay
        if _relay is not None:
            cfg.n_send = _relay.send_workers
            cfg.inflight = _relay.max_inflight
            cfg.send_cap = _relay.ring_capacity
            cfg.n_waiters = _relay.waiters
        _core.crash_set_role("coordinator")  # a crash test arms clients, not us
        rt_name = name or random_name()
        sname = shm_name(rt_name)
        self._sname = sname
        self._imports = list(imports)
        if spin_us < 0:
            raise ValueError("spin_us must be >= 0")
        self._spin_s = spin_us * 1e-6
        self._ctx = ctx
        self._max_workers = n  # ProcessPoolExecutor's name (Dask reads it)
        self._main_thread = threading.current_thread() is threading.main_thread()
        self._log_rx: Any = None
        levels = None if _relay is not None else _parent_log_levels()
        if levels is not None:
            from .logs import LogReceiver

            self._log_rx = LogReceiver()
        from .workers.boot import Deferred, WorkerSpec

        spec = WorkerSpec(sname, self._imports, self._main_thread, self._spin_s, launch.main_ref(),
                          (Deferred(initializer), Deferred(tuple(initargs)))
                          if initializer is not None else None,
                          max_tasks_per_child or 0, max_worker_memory or 0,
                          (self._log_rx.send_sock, levels) if levels is not None else None)
        self._launcher = launch.Launcher(ctx, spec)
        # The workers first (forked by the process zygote: shmrt.zygote), the
        # segment while they start: reserving it is ~20 ms of the start-up.
        pending = None if _relay is not None else self._launcher.request(
            [(wid, 1 + wid) for wid in range(n)])
        try:
            seg, _ = create(rt_name, cfg, spare=spare.take)
        except BaseException:
            if pending is not None:
                self._launcher.finish(pending, ok=False)
            self._launcher.close()
            if self._log_rx is not None:
                self._log_rx.close()
            raise
        self._seg_size = seg.layout["total_size"]
        self._seg_reserve = reserved_bytes(seg.layout)
        recycling = bool(max_tasks_per_child or max_worker_memory)
        self._use_standby = recycling if standby is None else bool(standby)
        # Supervisor's (after the constructor): the standby process or None,
        # consecutive standby start failures, workers retired so far.
        self._standby: Any = None
        self._standby_failures = 0
        self._recycled = 0
        self._interrupted = False  # stop without grace (Ctrl-C): set before _stop_runtime
        self._procs: list[Any] = [None] * n
        self._senders: list[Any] = [None] * (_relay.send_workers if _relay else 0)
        self._start_failures = [0] * n
        self._killing: set[int] = set()  # worker pids killed on purpose (kill.c), not yet reaped
        self._epoch = 0
        self._stopping = False
        self._stopped = False
        self._stop_lock = threading.Lock()
        seg.run_start()
        try:
            if pending is not None:  # the segment is ready: let them attach
                self._epoch = n
                seg.store64(_core.HEADER_FIELDS["epoch"], n)
                self._launcher.go(pending)
            super().__init__(seg, name=rt_name, retries=retries, owner=True,
                             task_timeout=task_timeout)
            if pending is not None:
                for wid, p in self._launcher.collect(pending).items():
                    self._procs[wid] = p
                pending = None
            for wid in range(n):
                if self._procs[wid] is None:  # no zygote (or it failed): spawned
                    self._start_worker(wid)
            for sw in range(len(self._senders)):
                self._start_sender(sw)
            if self._use_standby:
                self._standby = self._launcher.start_standby()
        except BaseException:
            if pending is not None:  # released ones are stopped with the rest
                for wid, p in self._launcher.finish(pending, ok=False).items():
                    self._procs[wid] = p
            # The client part may be up (its harvester thread in the segment):
            # close it first, or the segment is unmapped under that thread.
            self._shutdown = True
            if hasattr(self, "_harvester"):
                self._close()  # joins the harvester, releases the entry, stops the runtime
            else:
                self._stop_runtime()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._supervisor = threading.Thread(target=supervise, args=(weakref.ref(self),),
                                            name=f"shmrt-supervisor-{rt_name}", daemon=True)
        self._supervisor.start()
        _live.add(self)
        _note_ignored_interrupt()

    # ---- workers ----------------------------------------------------------
    def _start_worker(self, wid: int) -> None:
        """Start worker ``wid`` (a new epoch): forked by the zygote when
        there is one (recycling), else a new process."""
        self._epoch += 1
        self._seg.store64(layout.Header.TABLE["epoch"], self._epoch)
        old, zyg = self._procs[wid], self._standby
        if isinstance(old, launch.ForkedWorker):
            old.close()
        if zyg is not None and zyg.is_alive():
            p = self._launcher.fork_from(zyg, wid, self._epoch)
            if p is not None:
                self._procs[wid] = p
                self._standby_failures = 0
                return
            self._standby = None  # gone or stuck: replacements are spawned
            self._launcher.release(zyg)
            zyg.kill()
        self._procs[wid] = self._launcher.start(wid, self._epoch)

    def _refill_standby(self) -> None:
        """Keep one standby started while recycling (supervisor thread)."""
        if self._use_standby and self._standby is None and not self._stopping:
            self._standby = self._launcher.start_standby()

    def _start_sender(self, sw: int) -> None:
        from .workers import relay as relay_worker

        spec = self._relay_spec
        assert spec is not None
        p = self._ctx.Process(target=relay_worker.main, name=f"shmrt-send-{sw}",  # type: ignore[attr-defined]
                              args=(self._sname, sw, spec.sink, spec.ordered, self._main_thread),
                              daemon=True)
        p.start()
        self._senders[sw] = p

    # ---- shutdown -----------------------------------------------------------
    def _detach(self) -> None:
        self._stop_runtime()

    def _stop_runtime(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._stopping = True
        seg = self._seg
        if self._launcher.zygote_spec is not None and not self._interrupted:
            spare.make(self._seg_size, self._seg_reserve)  # the next pool's, while we stop
        try:
            self._stop_processes()
        finally:  # whatever happened (a second Ctrl-C, a dying interpreter): no segment left
            try:
                seg.run_finish()
            except Exception:
                pass
            unlink(self._sname)
            if seg.exports == 0:
                seg.close()
            _live.discard(self)

    def _stop_processes(self) -> None:
        seg = self._seg
        try:
            seg.run_stop()
        except Exception:
            pass
        if hasattr(self, "_wake_w"):
            os.write(self._wake_w, b"x")
            if self._supervisor is not threading.current_thread():
                self._supervisor.join()
            os.close(self._wake_r)
            os.close(self._wake_w)
        if self._senders:
            try:
                seg.relay_wake_send()
            except Exception:
                pass
        everyone = [p for p in (*self._procs, *self._senders) if p is not None]
        grace = INTERRUPT_JOIN_S if self._interrupted else JOIN_GRACE_S
        try:
            if self._interrupted:  # Ctrl-C: running tasks are stopped, not waited for
                for p in everyone:
                    if self._busy(p):
                        p.kill()
            for p in everyone:
                p.join(grace)
        finally:
            if self._standby is not None:  # after its forked workers: its exit kills them
                self._launcher.release(self._standby)
                everyone.append(self._standby)
                self._standby.join(grace)
            for p in everyone:
                if p.is_alive():
                    p.kill()
                    p.join()
            for p in everyone:
                if isinstance(p, launch.ForkedWorker):
                    p.close()
            if self._log_rx is not None:
                self._log_rx.close()  # after the workers: it has all their records
            self._launcher.close()

    def _busy(self, p: Any) -> bool:
        """Is worker process ``p`` running a task (its entry's current slot)?"""
        seg = self._seg
        try:
            wid = self._procs.index(p)
        except ValueError:
            return False
        try:
            return bool(layout.View(seg).worker_word(wid, "current"))
        except Exception:
            return True

    def wait_ready(self, timeout: float | None = 30.0) -> bool:
        """Block until every worker (and relay send worker) has started and
        registered in the segment, or ``timeout`` passes (False).  Start-up
        only: it polls, every millisecond."""
        import time

        seg = self._seg
        view = layout.View(seg)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            ok = all(p is not None and view.worker_word(i, "pid") == p.pid
                     for i, p in enumerate(self._procs))
            if ok and self._senders:
                pids = [r["pid"] for r in seg.relay_stats()["rings"]]
                ok = all(p is not None and pid == p.pid for p, pid in zip(self._senders, pids,
                                                                           strict=True))
            if ok:
                return True
            if self._broken_reason or (end is not None and time.monotonic() > end):
                return False
            time.sleep(0.001)

    def kill_worker_for_test(self, wid: int, sig: int) -> int:
        """Send ``sig`` to worker ``wid``; returns its pid (tests, demos)."""
        pid = self._procs[wid].pid
        os.kill(pid, sig)
        return pid

    @property
    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None]

    @property
    def _processes(self) -> dict[int, Any]:
        """ProcessPoolExecutor's name: {pid: process} of the workers."""
        return {p.pid: p for p in self._procs if p is not None}

    @property
    def _mp_context(self) -> Any:
        return self._ctx

    @property
    def _broken(self) -> str | bool:
        """ProcessPoolExecutor's: False, or why the pool is broken."""
        return self._broken_reason or False

    def terminate_workers(self) -> None:
        """Stop now (Python 3.14's ProcessPoolExecutor method): queued tasks
        are cancelled, running ones stopped (their futures fail with
        BrokenPool), the workers killed, the runtime removed."""
        self._interrupt()

    kill_workers = terminate_workers

    def statistics(self) -> Statistics:
        """The runtime's counters (docs/statistics.md), with ``recycled``:
        workers retired by max_tasks_per_child / max_worker_memory."""
        from dataclasses import replace

        return replace(super().statistics(), recycled=self._recycled)

    def __enter__(self) -> Pool:
        return self


def _worker_count(max_workers: int | None, workers: int | None) -> int:
    if workers is not None:
        if max_workers is not None and max_workers != workers:
            raise TypeError("pass max_workers or its alias workers, not both")
        max_workers = workers
    if max_workers is None:  # as ProcessPoolExecutor (3.13+: the CPUs we may run on)
        return getattr(os, "process_cpu_count", os.cpu_count)() or 1
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    return max_workers


def _parent_log_levels() -> dict[str, int] | None:
    """The logger levels to give workers, or None: this process never
    configured logging (then workers do not even import it)."""
    if "logging" not in sys.modules:
        return None
    from .logs import parent_levels

    return parent_levels()


def _exiting_on_interrupt() -> bool:
    """Is the interpreter exiting because of an uncaught KeyboardInterrupt,
    or did a Ctrl-C land in its exit before our atexit handler ran?"""
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt) or _ignored_interrupt[0]


# A Ctrl-C pressed while the interpreter exits lands in the first Python code
# of its finalisation, threading._shutdown, which reports it as "Exception
# ignored" (sys.unraisablehook) and goes on to the atexit handlers: without
# this note _shutdown_all would then wait for every pending future, the very
# thing the second Ctrl-C asked not to do.  Chained: the previous hook still
# reports it.  Set when the first pool starts.
_ignored_interrupt = [False]
_hook_installed = [False]


def _note_ignored_interrupt() -> None:
    if _hook_installed[0]:
        return
    _hook_installed[0] = True
    prev = sys.unraisablehook

    def hook(u: Any) -> None:
        if isinstance(u.exc_value, KeyboardInterrupt):
            _ignored_interrupt[0] = True
        prev(u)

    sys.unraisablehook = hook


def _shutdown_all() -> None:
    """At interpreter exit: the Executor contract, pending futures finish --
    unless the program is ending on Ctrl-C: then stop at once."""
    interrupted = _exiting_on_interrupt()
    for pool in list(_live):
        pool._shutdown_msg = "cannot schedule new futures after interpreter shutdown"
        try:
            if interrupted:
                pool._interrupt()
            else:
                pool.shutdown(wait=True)
        except BaseException:  # noqa: B036 - a second Ctrl-C: stop now, leave nothing behind
            pool._interrupted = True
        finally:
            pool._stop_runtime()


atexit.register(_shutdown_all)
