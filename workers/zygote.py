"""The process zygote: a clean, pre-started interpreter that forks workers
for every pool of the process that started it (shmrt.zygote is its
coordinator side).

Why: a spawned worker is a new interpreter.  On this kind of machine that
is ~40 ms of CPU before it runs a task (site, the multiprocessing
bootstrap, shmrt's and msgspec's imports), paid by every worker of every
pool; ProcessPoolExecutor pays it once at the first submit.  The zygote
pays it once per *process*: it is spawned (a fresh interpreter, like any
spawn worker), imports shmrt's worker modules and nothing of the user's,
and then forks a child per worker asked for.  A fork of this small,
single-threaded process costs ~1 ms.

What keeps spawn semantics: the zygote never imports the user's
``__main__``, modules or initializer, and never runs a task.  Each child,
right after the fork, applies what multiprocessing's spawn would hand a
new process *now* (sys.path, sys.argv, cwd, the process name and authkey,
``os.environ``), reseeds ``random``, and then starts exactly as a spawned
worker does (workers/boot.py: attach, imports, ``__main__`` as
``__mp_main__``, logging, initializer).  What differs from a spawned
worker is interpreter-level only: the hash seed, which the fork shares.

A child waits for the pool's *ready* pipe before it attaches: the pool asks
for its workers first and creates its segment (reserving it takes ~20 ms)
while they start.  EOF on that pipe (the pool failed to build) ends the
child quietly.

The zygote reaps its children and reports (pid, exit code); it stays
single-threaded so that forking it is safe, and it exits when its
coordinator closes the connection (interpreter exit) or dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
from typing import Any

from shmrt.workers import boot

POLL_S = 1.0  # how often an idle zygote checks that its coordinator lives


def main(conn: Any, coord_pid: int, pdeathsig: bool) -> None:
    """Entry point of the zygote process (spawned by shmrt.zygote)."""
    if pdeathsig:
        boot.cpu._set_pdeathsig()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    import random  # noqa: F401 - imported here once, reseeded in every child
    import runpy  # noqa: F401 - how every child imports __main__ (spawn's way)
    from multiprocessing import spawn  # noqa: F401 - prepare(), for the children

    from shmrt import segment  # noqa: F401 - what every child attaches with

    boot.report_exits(conn)
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        while True:
            try:
                while not conn.poll(POLL_S):
                    if os.getppid() != coord_pid:
                        return  # orphaned: the coordinator died
                req = pickle.loads(conn.recv_bytes())
                fds = _recv_fds(sock, req["nfds"])
            except (EOFError, OSError):
                return
            pid = os.fork()
            if pid == 0:
                _child(conn, sock, req, fds)  # never returns
            for fd in fds:
                os.close(fd)
            conn.send_bytes(boot.REPORT.pack(boot.FORKED, pid, req["id"]))
    finally:
        sock.close()


def _recv_fds(sock: socket.socket, n: int) -> list[int]:
    if n == 0:
        return []
    from multiprocessing.reduction import recvfds

    return list(recvfds(sock, n))


def _child(conn: Any, sock: socket.socket, req: dict[str, Any], fds: list[int]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 0
    try:
        sock.close()
        conn.close()
        code = _start(req, fds)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _start(req: dict[str, Any], fds: list[int]) -> int:
    import random
    from multiprocessing import spawn

    random.seed()  # not the zygote's sequence in every worker
    os.environ.clear()
    os.environ.update(req["env"])
    spawn.prepare(req["prep"])  # sys.path, argv, cwd, name, authkey: as spawn now would

    def ready() -> bool:  # the segment is laid out (EOF: the pool failed to build)
        got = os.read(fds[0], 1)
        os.close(fds[0])
        return bool(got)

    spec: boot.WorkerSpec = pickle.loads(req["spec"])
    spec.pdeathsig = False  # our parent is the zygote: the worker watches its coordinator
    if spec.log is not None:  # the log socket came as a descriptor
        spec.log = (socket.socket(fileno=fds[1]), spec.log[1])
    # imports and __main__ while the pool reserves its segment
    boot.main(spec, req["wid"], req["epoch"], req["err"], ready=ready)
    return 0
