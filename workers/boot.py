"""A worker process from its first instruction to its scheduling loop.

Why a module of its own: everything a worker does before it runs tasks can
fail in ways the coordinator must explain, not just notice.  In order:

1. attach the segment, import ``Pool(imports=...)``;
2. import the user's ``__main__`` as multiprocessing's spawn would (from
   its file or module name).  Done here rather than in multiprocessing's
   bootstrap (shmrt.launch strips it from the preparation data) so that
   a main that cannot be imported is never asked for (``python -c``,
   stdin, the REPL) and a main that fails -- typically a script without
   ``if __name__ == "__main__":`` that builds a pool at import time -- is
   reported once, in the coordinator's error, not as a traceback per
   worker in a restart loop;
3. install the log handler that ships records to the coordinator (only
   when the parent configured logging: shmrt.logs);
4. run the pool's initializer (``Pool(initializer=, initargs=)``);
5. a standby (pre-started for worker recycling) becomes a *zygote*: it
   waits here for worker ids and forks a worker for each (a fork of a
   process whose imports, main module and initializer are done costs a
   few milliseconds; a spawn costs an interpreter start-up, ~100 ms of CPU,
   which made recycling every few thousand tiny tasks collapse
   throughput).  It reaps its children and reports (pid, exit code) to the
   coordinator, which cannot wait for grandchildren (it watches them
   through pidfds: shmrt.launch.ForkedWorker).  The zygote stays
   single-threaded so that forking it is safe;
6. register in the segment and run the scheduling loop (workers/cpu.py)
   until the runtime stops or the worker retires (``max_tasks_per_child``,
   ``max_worker_memory``): a retiring worker exits between tasks with
   code 0 and the coordinator's reclaim gives its queue back.

A failure in steps 1-4 is written to ``err_file``, first line the step
(``start``, ``main``, ``initializer``), then the traceback.  ``main`` and
``initializer`` failures exit quietly with code 1: the coordinator breaks
the pool with that text at once (they would fail again in every worker).

Imports are kept light: this is the start-up path of every worker.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable

from shmrt.workers import cpu

from shmrt import _core

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import Any

RECURSION_LIMIT = 20_000  # nested helping stacks tasks; a task may recurse too
STACK_BYTES = 512 << 20  # C stack behind that limit (virtual: touched pages only)
ASSIGN = struct.Struct("<QQ")  # what a zygote receives: worker id, epoch
REPORT = struct.Struct("<Bqq")  # what it sends: (FORKED, pid, 0) | (EXITED, pid, exit code)
FORKED, EXITED = 1, 2
STAGE_START, STAGE_MAIN, STAGE_INIT = "start", "main", "initializer"


class Deferred:
    """A value pickled while the parent starts the process (so that
    multiprocessing objects such as a Queue in ``initargs`` pickle as they
    do in Process arguments) but unpickled only when asked, after the
    worker imported ``__main__`` (an initializer defined in a script lives
    there).  By value with cloudpickle if it cannot go by reference."""

    __slots__ = ("obj", "data")

    def __init__(self, obj: Any):
        self.obj = obj
        self.data: bytes | None = None

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        from multiprocessing.reduction import ForkingPickler

        from shmrt import codec

        try:
            if codec.main_by_value() and _names_main(self.obj):
                raise pickle.PicklingError("__main__ is not importable by workers")
            data = bytes(ForkingPickler.dumps(self.obj, protocol=5))
        except Exception:
            import cloudpickle

            data = cloudpickle.dumps(self.obj, protocol=5)
        return (_deferred, (data,))

    def load(self) -> Any:
        if self.data is not None:
            self.obj = pickle.loads(self.data)
            self.data = None
        return self.obj


def _names_main(obj: Any) -> bool:
    return getattr(obj, "__module__", None) == "__main__" or any(
        getattr(x, "__module__", None) == "__main__" for x in
        (obj if isinstance(obj, tuple) else ()))


def _deferred(data: bytes) -> Deferred:
    d = Deferred(None)
    d.data = data
    return d


class WorkerSpec:
    """What every worker of one pool is started with (pickled by the spawn
    machinery; the standby gets its worker id later)."""

    def __init__(self, shm_file: str, imports: list[str], pdeathsig: bool, spin_s: float,
                 main_ref: tuple[str, str] | None, init: tuple[Deferred, Deferred] | None,
                 max_tasks: int, max_memory: int, log: tuple[Any, dict[str, int]] | None):
        self.shm_file = shm_file
        self.imports = imports
        self.pdeathsig = pdeathsig
        self.spin_s = spin_s
        self.main_ref = main_ref  # ("path", file) | ("name", module) | None
        self.init = init  # (initializer, initargs) | None
        self.max_tasks = max_tasks  # 0: no limit
        self.max_memory = max_memory  # bytes of RSS, 0: no limit
        self.log = log  # (datagram socket, {logger name: level}) | None


def main(spec: WorkerSpec, wid: int, epoch: int, err_file: str | None = None,
         standby: Any = None, ready: Callable[[], bool] | None = None) -> None:
    """Entry point of a worker process (see the module docstring).  The
    scheduling loop runs on a thread with a large C stack: the worker raises
    the recursion limit for nested helping, and deep recursion through C
    code must end in RecursionError, not SIGSEGV.

    ``ready`` (a process zygote's child): called after the imports and
    ``__main__``, before the segment is attached; False: the pool gave up."""

    if spec.pdeathsig:
        cpu._set_pdeathsig()
    _core.crash_set_role("worker")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 <pid>: dump stacks
    stage = STAGE_START
    try:
        for mod in spec.imports:
            __import__(mod)
        stage = STAGE_MAIN
        _import_main(spec.main_ref)
        stage = STAGE_START
        if ready is not None and not ready():
            return
        seg, coord = _attach(spec.shm_file)
        if spec.log is not None:
            from shmrt import logs

            logs.install(*spec.log)
        if spec.init is not None:
            stage = STAGE_INIT
            fn, args = spec.init[0].load(), spec.init[1].load()
            fn(*args)
    except BaseException:
        import traceback

        text = traceback.format_exc()
        if err_file:
            with open(err_file, "w", encoding="utf-8") as f:
                f.write(f"{stage}\n{text}")
        if stage == STAGE_INIT:  # as ProcessPoolExecutor's workers do
            import logging

            logging.getLogger("concurrent.futures").critical("Exception in initializer:",
                                                              exc_info=True)
        if stage in (STAGE_MAIN, STAGE_INIT):
            sys.exit(1)  # quietly: the coordinator reports it, once
        raise
    if standby is not None:
        _zygote(seg, coord, spec, standby)  # returns only when the pool stops
        return
    _become_worker(seg, coord, spec, wid, epoch)


def report_exits(conn: Any) -> None:
    """On SIGCHLD, reap every exited child and report (EXITED, pid, exit
    code) on ``conn`` (a zygote's connection to its pool)."""
    def reap(_sig: int, _frame: Any) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            try:
                conn.send_bytes(REPORT.pack(EXITED, pid, os.waitstatus_to_exitcode(status)))
            except OSError:
                return

    signal.signal(signal.SIGCHLD, reap)


def _zygote(seg: _core.Segment, coord: tuple[int, int], spec: WorkerSpec, conn: Any) -> None:
    """Fork a worker for each (wid, epoch) received; report each child's
    pid, and its exit code once reaped (SIGCHLD).  EOF: the pool stops."""
    report_exits(conn)
    while True:
        try:
            wid, epoch = ASSIGN.unpack(conn.recv_bytes(ASSIGN.size))
        except (EOFError, OSError):
            return
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            conn.close()
            code = 0
            try:
                import random

                random.seed()  # not the zygote's sequence in every worker
                cpu._set_pdeathsig()  # the zygote dies with the pool
                # A fresh attach: a Segment records its process's pid (task
                # owners, the reclaim's view of who died) at attach time.
                seg, coord = _attach(spec.shm_file)
                _become_worker(seg, coord, spec, wid, epoch)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        conn.send_bytes(REPORT.pack(FORKED, pid, 0))


def _become_worker(seg: _core.Segment, coord: tuple[int, int], spec: WorkerSpec, wid: int,
                   epoch: int) -> None:
    import threading

    w = cpu.Worker(seg, wid, *coord)
    w.spin_s = spec.spin_s
    w.max_tasks = spec.max_tasks
    w.max_memory = spec.max_memory
    # The coordinator's death ends us whatever thread made the pool (the
    # parent-death signal follows the creating *thread*): a C thread polls
    # our parent pid.  Under forkserver our parent is the fork server: a
    # Python thread polls the coordinator instead.
    if os.getppid() == coord[0]:
        _core.watch_parent(coord[0], 0.2)
    else:
        threading.Thread(target=_watch_coordinator, args=(coord,), daemon=True).start()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    threading.stack_size(STACK_BYTES)
    t = threading.Thread(target=_run, args=(w, epoch), name="shmrt-worker")
    t.start()
    t.join()


def _watch_coordinator(coord: tuple[int, int]) -> None:
    import time

    from shmrt.segment import process_alive

    while process_alive(*coord):
        time.sleep(0.2)
    os._exit(70)  # EX_SOFTWARE: orphaned, as _core.watch_parent


def _attach(shm_file: str) -> tuple[_core.Segment, tuple[int, int]]:
    from shmrt.layout import Header
    from shmrt.segment import attach_path

    seg = attach_path(shm_file, writable=True)
    h = Header.TABLE
    return seg, (seg.load64(h["coord_pid"]), seg.load64(h["coord_start"]))


_old_mains: list[Any] = []  # the __main__ modules replaced (spawn keeps them alive too)


def _import_main(ref: tuple[str, str] | None) -> None:
    """Import the parent's ``__main__`` as ``__mp_main__`` (functions it
    defines are pickled by reference as ``__main__.f``), as
    multiprocessing.spawn's ``_fixup_main_from_name`` / ``_from_path`` do
    (the same skips, the same module names), flagged as bootstrapping so
    that starting processes from it raises multiprocessing's "bootstrapping
    phase" RuntimeError -- without importing multiprocessing, which cost
    every worker of a script ~7 ms on the way to its first task."""
    if ref is None:
        return
    from shmrt.workers import prepare

    kind, target = ref
    current = sys.modules["__main__"]
    if kind == "name":
        if target == "__main__" or target.endswith(".__main__"):
            return
        if getattr(getattr(current, "__spec__", None), "name", None) == target:
            return
    else:
        if os.path.splitext(os.path.basename(target))[0] == "ipython":
            return
        if getattr(current, "__file__", None) == target:
            return
    import runpy
    import types

    _old_mains.append(current)
    with prepare.Bootstrapping():
        if kind == "name":
            content = runpy.run_module(target, run_name="__mp_main__", alter_sys=True)
        else:
            content = runpy.run_path(target, run_name="__mp_main__")
    main = types.ModuleType("__mp_main__")
    main.__dict__.update(content)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main


def _run(w: cpu.Worker, epoch: int) -> None:
    from shmrt.segment import proc_start_time

    seg, wid = w.seg, w.wid
    cpu._current = w
    pid = os.getpid()
    seg.worker_register(wid, pid, proc_start_time(pid), epoch)
    if not w.coordinator_alive():
        return
    try:
        w.loop()
    finally:
        cpu._current = None
        sys.stdout.flush()
        sys.stderr.flush()
