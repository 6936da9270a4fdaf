"""How a pool starts its worker processes: start method, ``__main__``, the
standby, and what a worker that failed to start left to say.

Why not plain ``ctx.Process``:

* multiprocessing's spawn and forkserver tell each child to re-import the
  parent's ``__main__`` from its file.  For a main without a real file (a
  script read from stdin has ``__file__ == "<stdin>"``) every child dies in
  the bootstrap (``FileNotFoundError: .../<stdin>``), and a script that
  builds a pool at import time (no ``if __name__ == "__main__":``) kills
  every child with a traceback, in a restart loop.  shmrt's processes are
  started without that instruction (``_launching`` strips it from the
  preparation data, for our processes only) and import the main themselves
  (workers/boot.py), where a failure is caught and reported once.
* ``fork`` is refused: the coordinator runs threads (harvester, supervisor,
  log reader) and forking a multi-threaded process can deadlock the child
  on a lock another thread held.  ``spawn`` (the default) and
  ``forkserver`` are supported.
* Worker recycling (``max_tasks_per_child``, ``max_worker_memory``) would
  pay a full interpreter start-up per retirement (~100 ms of CPU: with a
  few thousand tiny tasks per worker life, throughput collapsed to the
  spawn rate).  A *zygote* -- a standby process started ahead, imports,
  main module and initializer done, single-threaded -- forks each
  replacement in a few milliseconds (workers/boot.py).  Its children are
  the coordinator's grandchildren: ``ForkedWorker`` gives them the
  Process interface the supervisor uses (a pidfd as sentinel, the exit
  code the zygote reports).  Where pidfds cannot be opened
  (``zygote.pidfd_works``) every worker is spawned.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
from multiprocessing import context as mp_context_mod
from typing import Any

from . import zygote
from .workers.boot import ASSIGN, EXITED, FORKED, REPORT, STAGE_INIT, STAGE_MAIN, WorkerSpec

SUPPORTED = ("spawn", "forkserver")
FORK_REFUSED = ("shmrt.Pool cannot use the 'fork' start method: its coordinator runs threads, "
                "and forking a multi-threaded process can deadlock the child; use "
                "mp_context='spawn' (the default) or 'forkserver'")
BOOTSTRAP_MARK = "finished its bootstrapping phase"  # multiprocessing's RuntimeError
GUARD_HINT = ("the workers could not import the main module: it starts a process (a shmrt.Pool "
              "or other) when imported, and every worker imports it to find your functions. "
              "Put the code that creates the pool under  if __name__ == \"__main__\":  "
              "(see 'Safe importing of main module' in the multiprocessing docs)")


def resolve_context(mp_context: Any) -> mp_context_mod.BaseContext:
    """A start method name, a context (multiprocessing.get_context(...)) or
    None (spawn) -> the context workers are started with."""
    if mp_context is None:
        return mp.get_context("spawn")
    if isinstance(mp_context, str):
        ctx = mp.get_context(mp_context)  # ValueError for an unknown name
    elif hasattr(mp_context, "get_start_method"):
        ctx = mp_context
    else:
        raise TypeError(f"mp_context must be a multiprocessing context or a start method name, "
                        f"not {type(mp_context).__name__}")
    method = ctx.get_start_method(allow_none=False)
    if method == "fork":
        raise ValueError(FORK_REFUSED)
    if method not in SUPPORTED:
        raise ValueError(f"unsupported start method {method!r} (use 'spawn' or 'forkserver')")
    return ctx


def main_ref() -> tuple[str, str] | None:
    """How a worker finds this process's ``__main__``, as spawn would tell
    it, or None when it cannot (then what main defines travels by value)."""
    from . import codec

    if not codec.main_importable():
        return None
    main = sys.modules["__main__"]
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return ("name", name)
    path = main.__file__
    if path is None:
        return None
    if not os.path.isabs(path):
        from multiprocessing import process

        path = os.path.join(process.ORIGINAL_DIR or os.getcwd(), path)  # type: ignore[attr-defined]
    return ("path", os.path.normpath(path))


# ---- processes started without "re-import __main__" -------------------------
_tls = threading.local()  # .strip: this thread is starting one of our processes


def _install_prep_filter() -> None:
    """Wrap spawn.get_preparation_data once: while *this thread* starts one
    of shmrt's processes, leave out the instruction to import ``__main__``
    (the worker does it, workers/boot.py).  Every other caller, and other
    threads meanwhile, get multiprocessing's data unchanged."""
    from multiprocessing import spawn

    orig = spawn.get_preparation_data
    if getattr(orig, "_shmrt", False):
        return

    def get_preparation_data(name: str) -> dict[str, Any]:
        d = orig(name)
        if getattr(_tls, "strip", False):
            d.pop("init_main_from_path", None)
            d.pop("init_main_from_name", None)
        return d

    get_preparation_data._shmrt = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


def preparation_data(name: str) -> dict[str, Any]:
    """What multiprocessing's spawn would hand a new process now, without
    the instruction to import ``__main__`` (the worker does it) and with
    the authkey as bytes: a zygote's child applies it (shmrt.zygote)."""
    from multiprocessing import spawn

    _install_prep_filter()
    _tls.strip = True
    try:
        d = spawn.get_preparation_data(name)
    finally:
        _tls.strip = False
    d["authkey"] = bytes(d["authkey"])
    return d


def _popen(base: type, process_obj: Any) -> Any:
    _install_prep_filter()
    _tls.strip = True
    try:
        return base._Popen(process_obj)  # type: ignore[attr-defined]
    finally:
        _tls.strip = False


class SpawnWorkerProcess(mp_context_mod.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _popen(mp_context_mod.SpawnProcess, process_obj)


class ForkServerWorkerProcess(mp_context_mod.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _popen(mp_context_mod.ForkServerProcess, process_obj)


class Launcher:
    """Starts one pool's worker processes (and its standby); keeps the files
    they report start-up failures in (a private directory, removed at stop).

    Used by the coordinator only: the constructor thread, then the
    supervisor thread (never both at once)."""

    def __init__(self, ctx: mp_context_mod.BaseContext, spec: WorkerSpec):
        self.ctx = ctx
        self.spec = spec
        self.method = ctx.get_start_method(allow_none=False)
        self.cls = SpawnWorkerProcess if self.method == "spawn" else ForkServerWorkerProcess
        import tempfile

        self.err_dir = tempfile.mkdtemp(prefix="shmrt-start-")
        self.count = 0
        # The spec as the process zygote's children get it, or None: spawn
        # every worker (forkserver; a spec that only a process start can
        # pickle; the zygote turned off).
        self.zygote_spec = (zygote.pickled_spec(spec)
                            if self.method == "spawn" and zygote.enabled() else None)

    def _err_file(self, tag: str) -> str:
        self.count += 1
        return os.path.join(self.err_dir, f"{tag}-{self.count}.err")

    def request(self, workers: list[tuple[int, int]]) -> Pending | None:
        """Ask the process zygote for workers ``[(wid, epoch), ...]``
        without waiting: they fork (once the zygote is up) and wait for the
        ready pipe, while the caller creates the segment.  ``finish`` them
        either way.  None: no zygote here (start them with ``start``)."""
        if self.zygote_spec is None:
            return None
        z = zygote.get()
        if z is None:
            return None
        log = self.spec.log
        log_fd = log[0].fileno() if log is not None else None
        r, w = os.pipe()
        pend = Pending(z, w)
        try:
            for wid, epoch in workers:
                err = self._err_file(f"w{wid}")
                prep = preparation_data(f"shmrt-worker-{wid}")
                rid = z.request(self.zygote_spec, wid, epoch, err, prep, r, log_fd)
                pend.rids.append((wid, rid, err))
        except OSError:
            self.finish(pend, ok=False)
            return None
        finally:
            os.close(r)
        return pend

    @staticmethod
    def go(pend: Pending, ok: bool = True) -> None:
        """Let the requested workers attach (``ok``: the segment is laid
        out), or tell them to give up.  Idempotent."""
        if pend.ready_w < 0:
            return
        try:
            if ok:
                os.write(pend.ready_w, b"x" * len(pend.rids))
        finally:
            os.close(pend.ready_w)
            pend.ready_w = -1

    @staticmethod
    def collect(pend: Pending) -> dict[int, ForkedWorker]:
        """The requested workers by worker id, once forked (a worker
        missing: the zygote failed; start it with ``start``)."""
        out: dict[int, ForkedWorker] = {}
        rids, pend.rids = pend.rids, []
        for wid, rid, err in rids:
            pid = pend.zygote.pid_of(rid)
            if pid is not None:
                fw = ForkedWorker(pend.zygote, pid, wid)
                fw._shmrt_err = err  # type: ignore[attr-defined]
                out[wid] = fw
        return out

    def finish(self, pend: Pending, ok: bool = True) -> dict[int, ForkedWorker]:
        """``go`` then ``collect``.  Not ``ok`` (the pool failed to
        build): the workers give up -- those already released are returned,
        for the caller to stop."""
        released = pend.ready_w < 0
        self.go(pend, ok)
        got = self.collect(pend)
        return got if ok or released else {}

    def start(self, wid: int, epoch: int) -> Any:
        pend = self.request([(wid, epoch)])
        if pend is not None:
            got = self.finish(pend)
            if wid in got:
                return got[wid]
        err = self._err_file(f"w{wid}")
        p = self.cls(target=_boot_main, name=f"shmrt-worker-{wid}",
                     args=(self.spec, wid, epoch, err), daemon=True)
        p.start()
        p._shmrt_err = err  # type: ignore[attr-defined, union-attr]
        return p

    def start_standby(self) -> Any:
        """The zygote: a process that does everything a worker does before
        registering, then forks workers on request (``fork_from``); None
        where forked workers cannot be watched (no pidfd)."""
        if not zygote.pidfd_works():
            return None
        r, w = self.ctx.Pipe(duplex=True)
        err = self._err_file("standby")
        p = self.cls(target=_boot_main, name="shmrt-standby",
                     args=(self.spec, -1, 0, err, r), daemon=True)
        try:
            p.start()
        finally:
            r.close()
        p._shmrt_err = err  # type: ignore[attr-defined, union-attr]
        p._shmrt_assign = w  # type: ignore[attr-defined, union-attr]
        p._shmrt_exits = {}  # type: ignore[attr-defined, union-attr]  # pid -> exit code
        return p

    @staticmethod
    def fork_from(zygote: Any, wid: int, epoch: int) -> ForkedWorker | None:
        """Worker ``wid`` forked by the zygote, or None if the zygote is
        gone (or does not answer within FORK_WAIT_S: it is still starting
        up, or stuck; the caller spawns instead)."""
        conn = zygote._shmrt_assign
        try:
            conn.send_bytes(ASSIGN.pack(wid, epoch))
            while conn.poll(FORK_WAIT_S):
                kind, pid, value = REPORT.unpack(conn.recv_bytes(REPORT.size))
                if kind == EXITED:
                    zygote._shmrt_exits[pid] = value
                elif kind == FORKED:
                    return ForkedWorker(zygote, pid, wid)
        except (OSError, EOFError):
            pass
        return None

    @staticmethod
    def release(p: Any) -> None:
        """Closing the zygote's pipe ends it (and, by their parent-death
        signal, any worker it forked: release it after joining them)."""
        conn = getattr(p, "_shmrt_assign", None)
        if conn is not None:
            conn.close()

    @staticmethod
    def start_error(p: Any) -> tuple[str, str] | None:
        """(stage, traceback) a process wrote before dying unregistered."""
        path = getattr(p, "_shmrt_err", None)
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            os.unlink(path)
        except OSError:
            return None
        stage, _, tb = text.partition("\n")
        return (stage, tb.strip()) if tb.strip() else None

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.err_dir, ignore_errors=True)


FORK_WAIT_S = 5.0  # longest wait for the zygote's answer to a fork request


class Pending:
    """Workers asked of the process zygote, not yet released (Launcher)."""

    def __init__(self, z: zygote.Zygote, ready_w: int):
        self.zygote = z
        self.ready_w = ready_w  # one byte per worker: go; closed without: give up
        self.rids: list[tuple[int, int, str]] = []  # (wid, request id, error file)


class ForkedWorker:
    """A worker a zygote forked (our grandchild): the pool's standby or the
    process zygote (shmrt.zygote), with the part of the
    multiprocessing.Process interface the supervisor uses.  Supervisor
    thread (and the stop path, after it) only."""

    def __init__(self, zygote: Any, pid: int, wid: int):
        self.pid = pid
        self.name = f"shmrt-worker-{wid}"
        self._zygote = zygote
        self._code: int | None = None
        self._pidfd = True
        try:
            self.sentinel = os.pidfd_open(pid)  # readable once the process has exited
        except ProcessLookupError:  # already exited and reaped: a sentinel that says so
            self.sentinel, w = os.pipe()
            os.close(w)
            self._pidfd = False

    def is_alive(self) -> bool:
        import select

        return self.sentinel >= 0 and not select.select([self.sentinel], [], [], 0)[0]

    def join(self, timeout: float | None = None) -> None:
        import select

        if self.sentinel >= 0:
            select.select([self.sentinel], [], [], timeout)

    @property
    def exitcode(self) -> int | None:
        """As the zygote reported it after reaping (None while alive; -9
        when the zygote is gone too: its parent-death signal killed us)."""
        if self._code is None and not self.is_alive():
            if isinstance(self._zygote, zygote.Zygote):
                self._code = self._zygote.exit_code(self.pid)
                return self._code
            exits = self._zygote._shmrt_exits
            conn = self._zygote._shmrt_assign
            try:
                while self.pid not in exits and conn.poll(0.5):
                    kind, pid, value = REPORT.unpack(conn.recv_bytes(REPORT.size))
                    if kind == EXITED:
                        exits[pid] = value
            except (OSError, EOFError):
                pass
            self._code = exits.pop(self.pid, -9)
        return self._code

    def kill(self) -> None:
        import signal

        if self.sentinel >= 0 and self._pidfd:  # by pidfd: never a recycled pid
            try:
                signal.pidfd_send_signal(self.sentinel, signal.SIGKILL)
            except ProcessLookupError:
                pass

    terminate = kill

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def _boot_main(*args: Any) -> None:
    from .workers import boot

    boot.main(*args)


def fatal(stage: str, tb: str) -> str | None:
    """The pool-breaking explanation of a start failure, or None when it is
    worth another try (only a main or initializer failure is certain to
    happen again in every worker)."""
    last = tb.splitlines()[-1] if tb else "unknown error"
    if stage == STAGE_MAIN:
        if BOOTSTRAP_MARK in tb:
            return GUARD_HINT
        return f"the workers could not import the main module: {last}"
    if stage == STAGE_INIT:
        return ("A child process terminated abruptly, the process pool is not usable anymore: "
                f"the pool's initializer failed: {last}")
    return None
