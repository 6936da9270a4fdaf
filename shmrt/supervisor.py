"""The coordinator's supervisor: what happens when a process of the pool dies.

Why a module of its own: the coordinator (pool.py) builds and stops the
runtime; this is the thread that keeps it running in between, and it is
where the crash-consistency rules live.  The supervisor thread waits on the
workers' (and the standby's, and relay send workers') sentinels; when a
worker dies it

1. marks it dead and restores the idle word for the state it died in,
2. moves its LIFO slot and local queue to the inject queue,
3. re-queues the tasks it was running if they have retries left, otherwise
   completes them with ``WorkerCrashed(pid, signal)``,
4. drops the join handles it held on its children,
5. starts a replacement with the same worker id and a new epoch (forked
   by the zygote while recycling is on: shmrt.launch).

A retiring worker (exit code 0 after registering: ``max_tasks_per_child``
or ``max_worker_memory``) takes the same path; the reclaim finds nothing
running.  A start failure of the main module or the initializer breaks the
pool at once (shmrt.launch.fatal); other start failures after
START_FAILURES_MAX in a row.

All methods here run on the supervisor thread (or, for ``_broken``, on
whichever thread found the pool unusable); they use the Pool's fields
(pool.py) under the ownership rules written there.
"""

from __future__ import annotations

import os
import signal
import weakref
from multiprocessing.connection import wait as mp_wait
from typing import TYPE_CHECKING, Any

from . import _core, codec, launch
from .layout import View, header_word
from .segment import process_alive

RECLAIM_WAIT_S = 0.25  # then look for other dead processes holding the world up
SUPERVISE_S = 1.0  # longest sleep of the supervisor (client reaping, dropped pools)
KILL_POLL_S = 0.02  # its period while time limits or force-cancels are in play
START_FAILURES_MAX = 3  # consecutive deaths before registering: the pool is broken


class Supervisor:
    """Mixin of Pool: the supervisor thread's rounds."""

    _seg: Any
    _procs: list[Any]
    _senders: list[Any]
    _standby: Any
    _launcher: launch.Launcher
    if TYPE_CHECKING:  # the rest of Pool (pool.py) and Client (client.py)
        name: str
        _cid: int
        _wake_r: int
        _killing: set[int]
        _inline_cap: int
        _max_payload: int
        _recycled: int
        _start_failures: list[int]
        _standby_failures: int
        _broken_reason: str | None
        _broken_tb: str | None

        def _start_worker(self, wid: int) -> None: ...
        def _refill_standby(self) -> None: ...
        def _start_sender(self, sw: int) -> None: ...
        def _fail_pending(self, exc: BaseException) -> None: ...
        def _broken_error(self) -> BaseException: ...

    def _watched(self) -> tuple[dict[int, int], dict[int, int], int, float]:
        """What the supervisor waits on (worker, standby (wid -1) and
        send-worker sentinels), and for how long: briefly while tasks may
        have to be killed."""
        procs = {p.sentinel: wid for wid, p in enumerate(self._procs) if p is not None}
        if self._standby is not None:
            procs[self._standby.sentinel] = -1
        senders = {p.sentinel: sw for sw, p in enumerate(self._senders) if p is not None}
        watch = header_word(self._seg, "watch")
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
            if wid == -1:
                sb, self._standby = self._standby, None
                if sb is not None and sb.sentinel == s:
                    self._standby_died(sb)
                    self._refill_standby()
            elif wid is not None:
                self._worker_died(wid)
                self._refill_standby()
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
        if header_word(self._seg, "watch"):
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
            elif (attempts <= max_retries and holder != orphan
                  and not flags & _core.SLOT_F_ARGS_GONE):  # died finishing: its args are gone
                seg.retry_task(key)
            else:
                enc = codec.encode(seg, (p.pid, sig, code, attempts), call=False, kwargs=None,
                                   inline_cap=self._inline_cap, max_payload=self._max_payload)
                seg.crash_task(key, _core.ST_CRASHED, enc.inline)
        if self._corrupt():  # the reclaim found the segment corrupt (reclaim.c)
            return
        registered = View(seg).worker_word(wid, "pid") == p.pid
        if registered and code == 0:  # retired (max_tasks_per_child / max_worker_memory)
            self._recycled += 1
            self._start_failures[wid] = 0
            if not self._stopping:
                self._start_worker(wid)
            return
        # Killed from outside (SIGKILL, SIGTERM, the OOM killer) is not the
        # user's code failing to start: replace it, however often.  A worker
        # whose main module or initializer failed breaks the pool at once;
        # any other exit with an error (or crash) before registering breaks
        # it after START_FAILURES_MAX in a row.
        external = sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
        err = None if registered else self._launcher.start_error(p)
        if self._fatal_start(err):
            return
        failed = not registered and not external
        self._start_failures[wid] = self._start_failures[wid] + 1 if failed else 0
        if self._start_failures[wid] >= START_FAILURES_MAX:
            why = err[1].splitlines()[-1] if err else f"exit code {code}; see its stderr"
            self._break(f"worker {wid} failed to start {START_FAILURES_MAX} times: {why}")
            return
        if not self._stopping:
            self._start_worker(wid)

    def _fatal_start(self, err: tuple[str, str] | None) -> bool:
        """A start failure that would happen in every worker (the main module
        or the initializer failed): break the pool with it, once."""
        why = launch.fatal(*err) if err is not None else None
        if why is None:
            return False
        if not self._broken_reason:
            # The guard hint says it all; otherwise the worker's traceback.
            self._break(why, None if why == launch.GUARD_HINT else err[1])  # type: ignore[index]
        return True

    def _standby_died(self, p: Any) -> None:
        """The standby exited before it was needed: why, and whether to
        start another (not after START_FAILURES_MAX failures in a row)."""
        p.join(0.1)
        if self._fatal_start(self._launcher.start_error(p)):
            return
        self._standby_failures += 1
        if self._standby_failures >= START_FAILURES_MAX:
            self._use_standby = False  # replacements start from scratch then

    def _corrupt(self) -> bool:
        """A check on shared memory failed (run state RUN_BROKEN, broken.c):
        replace nobody, fail everything pending with the reason."""
        why = self._seg.broken_reason()
        if why is None:
            return False
        self._break(f"runtime {self.name!r} is broken: {why}")
        return True

    def _break(self, why: str, remote_tb: str | None = None) -> None:
        """The runtime cannot run tasks: fail everything pending, refuse more
        (with the worker's traceback as ``__cause__`` when there is one)."""
        self._broken_reason = why
        self._broken_tb = remote_tb
        self._shutdown = True
        self._stopping = True  # the supervisor stops watching (and spinning on) the dead
        self._seg.run_stop()
        for p in (*self._procs, self._standby):  # survivors would run tasks nobody waits for
            if p is not None and p.is_alive():
                p.kill()
        self._fail_pending(self._broken_error())

    def _dead_clients(self) -> list[int]:
        view = View(self._seg)
        dead = []
        for cid in range(view.layout.n_clients):
            if cid == self._cid:
                continue
            c = view.client(cid)
            if c.pid and not process_alive(c.pid, c.start):
                dead.append(cid)
        return dead

    def _reap_clients(self) -> None:
        """Reclaim the entries of connected clients whose process is gone."""
        dead = self._dead_clients()
        if dead:
            self._reclaim(clients=dead)


def supervise(ref: weakref.ref[Any]) -> None:
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
