"""The process zygote, coordinator side: one clean pre-started interpreter per
process that forks the workers of every spawn-method pool it builds
(workers/zygote.py says what the zygote does and why it keeps spawn
semantics).

Lifetime: started by the first pool that can use it (in parallel with that
pool's segment creation) as a plain ``python -c`` with this process's
interpreter flags and ``sys.path`` -- a subprocess, not a multiprocessing
Process, whose bootstrap and resource tracker would add to every first
pool's wait (workers/zygote.py) -- kept while the process runs -- as
multiprocessing keeps its resource tracker or fork server -- so that the
next pool's workers are forked in a millisecond instead of started from
scratch, and ended at interpreter exit (``atexit``: its connection is
closed, it exits; it also exits when its coordinator dies).  It holds no
segment, no task and none of the user's code.  ``shmrt.zygote.start()``
starts it ahead of the first pool, ``shmrt.zygote.stop()`` ends it
earlier; ``SHMRT_ZYGOTE=0`` in the environment turns it off (every worker
is then spawned).

Not used (the pool spawns its workers as before) for the forkserver start
method, without ``os.pidfd_open`` (the workers are the zygote's children: the
pool watches them through pidfds), or when the pool's worker spec cannot be
pickled outside of process start-up (an initializer argument such as a
multiprocessing Queue, which may only be inherited), or while the crash
tests' ``SHMRT_CRASH_AT`` is set.

Any thread may use it: one lock serialises the connection; replies (a
fork's pid, a child's exit code) are filed by whoever reads them.
"""

from __future__ import annotations

import atexit
import os
import pickle
import sys
import threading
from typing import Any

from .workers.boot import EXITED, FORKED, REPORT, WorkerSpec

FORK_WAIT_S = 30.0  # longest wait for a fork's pid (the zygote may be starting up)
_lock = threading.Lock()  # guards _zygote (its creation and replacement)
_zygote: Zygote | None = None


_pidfd_ok: bool | None = None  # pidfd_works(), tried once


def pidfd_works() -> bool:
    """Whether this process can open pidfds: ``os.pidfd_open`` exists from
    Python 3.9 on Linux, but the call fails with ENOSYS before Linux 5.3,
    under valgrind, and where a seccomp filter refuses it (EPERM)."""
    global _pidfd_ok
    if _pidfd_ok is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd_ok = True
        except (AttributeError, OSError):
            _pidfd_ok = False
    return _pidfd_ok


def enabled() -> bool:
    """SHMRT_CRASH_AT (the crash tests' switch) is read by the C core when it
    is imported, which a zygote's child did before it got the environment."""
    env = os.environ
    return (env.get("SHMRT_ZYGOTE", "1") != "0" and not env.get("SHMRT_CRASH_AT")
            and hasattr(os, "fork") and pidfd_works())


class Zygote:
    """The connection to one zygote process."""

    def __init__(self) -> None:
        import subprocess
        from multiprocessing import connection, spawn

        self.executable = spawn.get_executable()
        mine, theirs = connection.Pipe(duplex=True)
        # a plain interpreter start (no multiprocessing bootstrap: see
        # workers/zygote.py), with this process's flags and sys.path
        argv = [self.executable, *subprocess._args_from_interpreter_flags(),  # type: ignore[attr-defined]
                "-c", _BOOT, str(theirs.fileno()), str(os.getpid()),
                "1" if threading.current_thread() is threading.main_thread() else "0",
                *_packages(), *sys.path]
        try:
            self.proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.conn = mine
        self.lock = threading.Lock()  # the connection: one request or read at a time
        self.forked: dict[int, int] = {}  # request id -> pid
        self.exits: dict[int, int] = {}  # pid -> exit code, as reported
        self.next_id = 0
        self.dead = False

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def request(self, spec: bytes, wid: int, epoch: int, err: str, prep: dict[str, Any],
                ready_r: int, log_fd: int | None) -> int:
        """Ask for a worker (``prep``: multiprocessing's preparation data
        for it); returns a request id for ``pid_of`` (the fork happens as
        soon as the zygote is up).  OSError if it is gone."""
        import socket
        from multiprocessing.reduction import sendfds

        fds = [ready_r] if log_fd is None else [ready_r, log_fd]
        with self.lock:
            self.next_id += 1
            rid = self.next_id
            req = {"id": rid, "wid": wid, "epoch": epoch, "err": err, "spec": spec,
                   "prep": prep, "env": dict(os.environ), "nfds": len(fds)}
            try:
                self.conn.send_bytes(pickle.dumps(req, protocol=pickle.HIGHEST_PROTOCOL))
                with socket.socket(fileno=os.dup(self.conn.fileno())) as s:
                    sendfds(s, fds)
            except OSError:
                self.dead = True
                raise
        return rid

    def pid_of(self, rid: int, timeout: float = FORK_WAIT_S) -> int | None:
        """The pid of request ``rid``'s worker, or None (the zygote is gone
        or did not answer in time)."""
        import time

        end = time.monotonic() + timeout
        while True:
            with self.lock:
                pid = self.forked.pop(rid, None)
                if pid is not None:
                    return pid
                if self.dead:
                    return None
                self._pump(min(0.05, max(0.0, end - time.monotonic())))
            if time.monotonic() > end:
                return None

    def exit_code(self, pid: int, wait: float = 0.5) -> int:
        """The exit code the zygote reported for child ``pid`` (which has
        exited); -9 if it cannot tell (the zygote is gone)."""
        import time

        end = time.monotonic() + wait
        with self.lock:
            while pid not in self.exits and not self.dead and time.monotonic() < end:
                self._pump(end - time.monotonic())
            return self.exits.pop(pid, -9)

    def _pump(self, timeout: float) -> None:
        """Read and file the replies that are there (lock held)."""
        try:
            while self.conn.poll(timeout):
                kind, pid, value = REPORT.unpack(self.conn.recv_bytes(REPORT.size))
                if kind == EXITED:
                    self.exits[pid] = value
                elif kind == FORKED:
                    self.forked[value] = pid
                timeout = 0
        except (OSError, EOFError):
            self.dead = True

    def close(self, timeout: float = 5.0) -> None:
        import subprocess

        with self.lock:
            self.dead = True
            self.conn.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# The zygote's first lines: this process's sys.path, then shmrt and
# shmrt.workers loaded from where this process has them -- the very same
# code, whatever the path would find, and without an import hook's search
# (an editable install's finder took ~3 ms of every cold start).  argv: 1-3
# main's arguments, 4-7 _packages(), 8- sys.path.
_LOAD = """\
import sys
from importlib.util import module_from_spec, spec_from_file_location
a = sys.argv
sys.path[:] = a[8:]
if a[4]:
    for name, init, where in (("shmrt", a[4], a[5]), ("shmrt.workers", a[6], a[7])):
        spec = spec_from_file_location(name, init, submodule_search_locations=[where])
        mod = sys.modules[name] = module_from_spec(spec)
        spec.loader.exec_module(mod)
    sys.modules["shmrt"].workers = sys.modules["shmrt.workers"]
"""
_BOOT = _LOAD + """\
from shmrt.workers.zygote import main
main(int(a[1]), int(a[2]), a[3] == "1")
"""


def _packages() -> list[str]:
    """Where this process has shmrt and shmrt.workers, as _BOOT reads them:
    (__init__ file, package directory) for each, or empty strings (import
    them by the path) if either package is not one plain directory."""
    from . import workers

    out = []
    for mod in (sys.modules[__package__], workers):
        where = list(mod.__path__)
        if len(where) != 1 or not mod.__file__:
            return ["", "", "", ""]
        out += [mod.__file__, where[0]]
    return out


def get() -> Zygote | None:
    """This process's zygote, started if needed; None where it cannot be
    used (see the module docstring)."""
    global _zygote
    if not enabled():
        return None
    from multiprocessing import spawn

    with _lock:
        z = _zygote
        if z is not None and (not z.alive() or z.executable != spawn.get_executable()):
            _zygote = None
            z.close(0.5)
            z = None
        if z is None:
            z = _zygote = Zygote()
        return z


def start() -> bool:
    """Start this process's zygote now, without waiting for it: its
    interpreter start-up (most of a first pool's wait for its first
    result) then overlaps whatever the program does before its first pool
    (imports, reading input).  Optional; the first pool starts it
    otherwise.  False where it cannot be used (see the module docstring),
    and a no-op returning False in a process that is importing its parent's
    ``__main__`` (a spawned child: a worker, or any multiprocessing child) or
    running tasks, so that a call at the top of a script is safe."""
    from multiprocessing import process

    from .workers import cpu

    if cpu._current is not None or getattr(process.current_process(), "_inheriting", False):
        return False
    return get() is not None


def current() -> Zygote | None:
    """The running zygote, if any (tests: its pid is not a leaked child)."""
    return _zygote


def pickled_spec(spec: WorkerSpec) -> bytes | None:
    """The spec as a zygote's child gets it (the log socket goes as a
    descriptor), or None when it cannot be pickled outside of a process
    start (a multiprocessing Queue in the initializer's arguments)."""
    from multiprocessing.reduction import ForkingPickler

    log = spec.log
    if log is not None:
        spec.log = (None, log[1])
    try:
        return bytes(ForkingPickler.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return None
    finally:
        spec.log = log


def stop() -> None:
    """End this process's zygote (a later pool starts a new one) and give
    back the segment kept reserved for the next pool (shmrt.spare)."""
    global _zygote
    from . import spare

    spare.drop()
    with _lock:
        z, _zygote = _zygote, None
    if z is not None:
        z.close()


atexit.register(stop)
if hasattr(os, "register_at_fork"):  # a forked child has no zygote of its own
    os.register_at_fork(after_in_child=lambda: globals().update(_zygote=None))
