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
whole pool.

Shutdown, in order: stop accepting work; wait for (or cancel) pending
futures; set the run state to STOPPING and wake every worker; join them
(terminate stragglers after a grace period); stop the supervisor and the
harvester; unlink the segment; unmap it once no zero-copy view is alive.

Workers are started with the spawn method, so functions defined in a
script's ``__main__`` work as with ProcessPoolExecutor.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing as mp
import os
import signal
import threading
import weakref
from multiprocessing.connection import wait as mp_wait
from typing import TYPE_CHECKING, Any

from . import _core, codec
from .client import Client
from .segment import Config, create, process_alive, random_name, unlink
from .workers import cpu

if TYPE_CHECKING:
    from .relay import RelaySpec

JOIN_GRACE_S = 5.0
RECLAIM_WAIT_S = 0.25  # then look for other dead processes holding the world up
SUPERVISE_S = 1.0  # longest sleep of the supervisor (client reaping, dropped pools)
KILL_POLL_S = 0.02  # its period while time limits or force-cancels are in play
START_FAILURES_MAX = 3  # consecutive deaths before registering: the pool is broken
_live: weakref.WeakSet[Pool] = weakref.WeakSet()


class Pool(Client):
    """A process pool on a shared-memory work-stealing runtime.

    ``Pool(workers=None)`` starts ``os.cpu_count()`` workers.  It is a
    ``concurrent.futures.Executor``: ``submit``, ``map``, ``shutdown``, and a
    context manager; ``await pool.run(fn, *args)`` for asyncio.

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

    def __init__(self, workers: int | None = None, *, name: str | None = None, retries: int = 0,
                 imports: tuple[str, ...] | list[str] = (), slots: int = 16384,
                 slot_size: int = 512, arena_size: int = 64 << 20, max_payload: int | None = None,
                 local_queue_capacity: int = _core.LOCAL_CAP_MAX, clients: int = 16,
                 spin_us: float = cpu.SPIN_S * 1e6, task_timeout: float | None = None,
                 _relay: RelaySpec | None = None):
        if cpu._current is not None:  # we are a task on a worker (a daemonic process)
            raise RuntimeError("shmrt.Pool() cannot be created inside a task running on a shmrt "
                               "worker; use shmrt.spawn() and join() for nested parallelism")
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ValueError("workers must be >= 1")
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
        seg, sname = create(rt_name, cfg)
        self._sname = sname
        self._imports = list(imports)
        if spin_us < 0:
            raise ValueError("spin_us must be >= 0")
        self._spin_s = spin_us * 1e-6
        self._ctx = mp.get_context("spawn")
        self._procs: list[Any] = [None] * n
        self._senders: list[Any] = [None] * (_relay.send_workers if _relay else 0)
        self._start_failures = [0] * n
        self._killing: set[int] = set()  # worker pids killed on purpose (kill.c), not yet reaped
        self._epoch = 0
        self._stopping = False
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._main_thread = threading.current_thread() is threading.main_thread()
        seg.store64(_core.HEADER_FIELDS["run_state"], _core.RUN_RUNNING)
        try:
            super().__init__(seg, name=rt_name, retries=retries, owner=True,
                             task_timeout=task_timeout)
            for wid in range(n):
                self._start_worker(wid)
            for sw in range(len(self._senders)):
                self._start_sender(sw)
        except BaseException:
            # The client part may be up (its harvester thread in the segment):
            # close it first, or the segment is unmapped under that thread.
            self._shutdown = True
            if hasattr(self, "_harvester"):
                self._close()  # joins the harvester, releases the entry, stops the runtime
            else:
                self._stop_runtime()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._supervisor = threading.Thread(target=_supervise, args=(weakref.ref(self),),
                                            name=f"shmrt-supervisor-{rt_name}", daemon=True)
        self._supervisor.start()
        _live.add(self)

    # ---- workers ----------------------------------------------------------
    def _start_worker(self, wid: int) -> None:
        self._epoch += 1
        self._seg.store64(_core.HEADER_FIELDS["epoch"], self._epoch)
        p = self._ctx.Process(target=cpu.main, name=f"shmrt-worker-{wid}",
                              args=(self._sname, wid, self._epoch, self._imports, self._main_thread,
                                    self._spin_s, self._err_file(wid)),
                              daemon=True)
        p.start()
        self._procs[wid] = p

    def _err_file(self, wid: int) -> str:
        """Where worker ``wid`` writes why it could not start (cpu.main)."""
        import tempfile

        return os.path.join(tempfile.gettempdir(), f"shmrt-{os.getpid()}-{id(self):x}-w{wid}.err")

    def _start_error(self, wid: int) -> str | None:
        try:
            with open(self._err_file(wid), encoding="utf-8", errors="replace") as f:
                text = f.read()
            os.unlink(self._err_file(wid))
        except OSError:
            return None
        return text.strip().splitlines()[-1] if text.strip() else None

    def _start_sender(self, sw: int) -> None:
        from .workers import relay as relay_worker

        spec = self._relay_spec
        assert spec is not None
        p = self._ctx.Process(target=relay_worker.main, name=f"shmrt-send-{sw}",
                              args=(self._sname, sw, spec.sink, spec.ordered, self._main_thread),
                              daemon=True)
        p.start()
        self._senders[sw] = p

    def _watched(self) -> tuple[dict[int, int], dict[int, int], int, float]:
        """What the supervisor waits on (worker and send-worker sentinels),
        and for how long: briefly while tasks may have to be killed."""
        procs = {p.sentinel: wid for wid, p in enumerate(self._procs) if p is not None}
        senders = {p.sentinel: sw for sw, p in enumerate(self._senders) if p is not None}
        watch = self._seg.load64(_core.HEADER_FIELDS["watch"])
        return procs, senders, self._wake_r, KILL_POLL_S if watch else SUPERVISE_S

    def _kill_overdue(self) -> None:
        """Kill the workers of tasks over their time limit or force-cancelled
        (kill.c); their deaths are then handled like any other."""
        pids = {p.pid: wid for wid, p in enumerate(self._procs) if p is not None}
        for _key, pid, _reason in self._seg.to_kill():
            if pid in pids and pid not in self._killing:
                self._killing.add(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _supervise_round(self, ready: list[Any], procs: dict[int, int],
                         senders: dict[int, int]) -> bool:
        """Handle what woke the supervisor; False once stopping."""
        if self._stopping:
            return False
        for s in ready:
            wid = procs.get(s)
            if wid is not None:
                self._worker_died(wid)
            elif s in senders:
                # The packets a dead send worker held (taken off its ring,
                # not yet done) are re-delivered to its ring by the
                # reclaim; the replacement drains them.
                sw = senders[s]
                self._senders[sw].join(0.1)
                self._reclaim(senders=[sw])
                if not self._stopping and not self._corrupt():
                    self._start_sender(sw)
        self._reap_clients()
        if self._seg.load64(_core.HEADER_FIELDS["watch"]):
            self._kill_overdue()
        return True

    def _reclaim(self, workers: list[int] = [], clients: list[int] = [],  # noqa: B006
                 senders: list[int] = []) -> list[tuple[int, int, int, int]]:  # noqa: B006
        """Stop the world and repair what dead processes left (reclaim.c);
        returns the tasks the dead workers were running.

        The world cannot stop while a process that died *too* (not yet
        reported by its sentinel) is counted inside a step: when the reclaim
        times out, every process is checked and all the dead are reclaimed
        at once (a later reclaim for the same death finds nothing to do)."""
        workers, clients, senders = list(workers), list(clients), list(senders)
        while True:
            try:
                return self._seg.reclaim(workers, clients, senders, RECLAIM_WAIT_S)["running"]
            except TimeoutError:
                if self._stopping:
                    return []
                workers = sorted({*workers, *(i for i, p in enumerate(self._procs)
                                              if p is not None and not p.is_alive())})
                senders = sorted({*senders, *(i for i, p in enumerate(self._senders)
                                              if p is not None and not p.is_alive())})
                clients = sorted({*clients, *self._dead_clients()})
                # else: a live process is stopped inside a step (SIGSTOP, a
                # debugger); keep trying

    def _worker_died(self, wid: int) -> None:
        seg = self._seg
        p = self._procs[wid]
        p.join(0.1)
        code = p.exitcode
        sig = -code if code is not None and code < 0 else None
        orphan = _core.HOLDER_WORKER | wid  # its own children: nobody can join them now
        self._killing.discard(p.pid)
        if self._corrupt():  # it stopped on corrupt shared memory: repair nothing
            return
        for key, max_retries, attempts, holder in self._reclaim(workers=[wid]):
            flags, limit_ns = seg.task_flags(key)
            if flags & (_core.SLOT_F_KILL_TIMEOUT | _core.SLOT_F_KILL_CANCEL):
                timeout = flags & _core.SLOT_F_KILL_TIMEOUT
                enc = codec.encode(seg, (limit_ns / 1e9, p.pid) if timeout else (p.pid,),
                                   call=False, kwargs=None, inline_cap=self._inline_cap,
                                   max_payload=self._max_payload)
                seg.crash_task(key, _core.ST_TIMEOUT if timeout else _core.ST_CANCELLED,
                               enc.inline)
            elif attempts <= max_retries and holder != orphan:
                seg.retry_task(key)
            else:
                enc = codec.encode(seg, (p.pid, sig, code, attempts), call=False, kwargs=None,
                                   inline_cap=self._inline_cap, max_payload=self._max_payload)
                seg.crash_task(key, _core.ST_CRASHED, enc.inline)
        if self._corrupt():  # the reclaim found the segment corrupt (reclaim.c)
            return
        registered = seg.load64(seg.layout["workers_off"] + wid * _core.WORKER_SIZE
                                + _core.WORKER_FIELDS["pid"]) == p.pid
        # Killed from outside (SIGKILL, SIGTERM, the OOM killer) is not the
        # user's code failing to start: replace it, however often.  Only a
        # worker that exits with an error (or crashes) before registering,
        # START_FAILURES_MAX times in a row, breaks the pool.
        external = sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
        err = None if registered else self._start_error(wid)
        failed = not registered and not external
        self._start_failures[wid] = self._start_failures[wid] + 1 if failed else 0
        if self._start_failures[wid] >= START_FAILURES_MAX:
            why = err or f"exit code {code}; see its stderr"
            self._broken(f"worker {wid} failed to start {START_FAILURES_MAX} times: {why}")
            return
        if not self._stopping:
            self._start_worker(wid)

    def _corrupt(self) -> bool:
        """A check on shared memory failed (run state RUN_BROKEN, broken.c):
        replace nobody, fail everything pending with the reason."""
        why = self._seg.broken_reason()
        if why is None:
            return False
        self._broken(f"runtime {self.name!r} is broken: {why}")
        return True

    def _broken(self, why: str) -> None:
        """The runtime cannot run tasks: fail everything pending, refuse more."""
        from .errors import BrokenPool

        self._broken_reason = why
        self._shutdown = True
        self._stopping = True  # the supervisor stops watching (and spinning on) the dead
        self._seg.store64(_core.HEADER_FIELDS["run_state"], _core.RUN_STOPPING)
        self._seg.wake_all()
        for p in self._procs:  # the survivors would run tasks nobody waits for
            if p is not None and p.is_alive():
                p.kill()
        self._fail_pending(BrokenPool(why))

    def _dead_clients(self) -> list[int]:
        seg = self._seg
        lay = seg.layout
        qf = _core.QUEUE_FIELDS
        dead = []
        for cid in range(lay["n_clients"]):
            if cid == self._cid:
                continue
            base = lay["clients_off"] + cid * lay["client_stride"]
            pid = seg.load64(base + qf["pid"])
            if pid and not process_alive(pid, seg.load64(base + qf["start"])):
                dead.append(cid)
        return dead

    def _reap_clients(self) -> None:
        """Reclaim the entries of connected clients whose process is gone."""
        dead = self._dead_clients()
        if dead:
            self._reclaim(clients=dead)

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
        try:
            self._stop_processes()
        finally:  # whatever happened (a second Ctrl-C, a dying interpreter): no segment left
            try:
                seg.store64(_core.HEADER_FIELDS["run_state"], _core.RUN_STOPPED)
            except Exception:
                pass
            unlink(self._sname)
            if seg.exports == 0:
                seg.close()
            _live.discard(self)

    def _stop_processes(self) -> None:
        seg = self._seg
        try:
            seg.store64(_core.HEADER_FIELDS["run_state"], _core.RUN_STOPPING)
            seg.wake_all()
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
        try:
            for p in everyone:
                p.join(JOIN_GRACE_S)
        finally:
            for p in everyone:
                if p.is_alive():
                    p.kill()
                    p.join()

    def wait_ready(self, timeout: float | None = 30.0) -> bool:
        """Block until every worker (and relay send worker) has started and
        registered in the segment, or ``timeout`` passes (False).  Start-up
        only: it polls, every millisecond."""
        import time

        seg = self._seg
        wbase, wsize = seg.layout["workers_off"], _core.WORKER_SIZE
        pid_off = _core.WORKER_FIELDS["pid"]
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            ok = all(p is not None and seg.load64(wbase + i * wsize + pid_off) == p.pid
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

    def __enter__(self) -> Pool:
        return self


def _supervise(ref: weakref.ref[Pool]) -> None:
    """The supervisor thread: holds its pool weakly between rounds, so a pool
    the program dropped is collected (Client.__del__ closes it)."""
    while True:
        pool = ref()
        if pool is None or pool._stopping:
            return
        procs, senders, wake_r, wait_s = pool._watched()
        del pool  # not held while waiting
        try:
            ready = mp_wait([*procs, *senders, wake_r], timeout=wait_s)
        except OSError:  # the wake pipe was closed: stopping
            return
        pool = ref()
        if pool is None or not pool._supervise_round(ready, procs, senders):
            return
        del pool


def _shutdown_all() -> None:
    """At interpreter exit: the Executor contract, pending futures finish."""
    for pool in list(_live):
        try:
            pool.shutdown(wait=True)
        except BaseException:  # noqa: B036 - a second Ctrl-C: stop now, leave nothing behind
            pass
        finally:
            pool._stop_runtime()


atexit.register(_shutdown_all)
