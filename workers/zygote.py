"""The process zygote: a clean, pre-started interpreter that forks workers
for every pool of the process that started it (shmrt.zygote is its
coordinator side).

Why: a spawned worker is a new interpreter.  On this kind of machine that
is ~40 ms of CPU before it runs a task (site, the multiprocessing
bootstrap, shmrt's imports), paid by every worker of every pool;
ProcessPoolExecutor pays it once at the first submit.  The zygote pays it
once per *process*: it is started as a fresh interpreter, imports shmrt's
worker modules and nothing of the user's, and then forks a child per worker
asked for.  A fork of this small, single-threaded process costs ~1 ms.

Why not through multiprocessing: the first pool of a process waits for the
zygote's start-up, so it is kept to the interpreter and what a worker needs
to run a task.  shmrt.zygote starts it with a plain ``-c`` (no spawn
bootstrap, no resource tracker) and speaks the multiprocessing Connection
framing over a socket pair (``Channel``) without importing multiprocessing;
the modules a child may still want (runpy, and multiprocessing for a
``__main__`` that imports shmrt's Pool) are imported once the first
children are forked, while the zygote waits (``WARM``).

What keeps spawn semantics: the zygote never imports the user's
``__main__``, modules or initializer, and never runs a task.  Each child,
right after the fork, applies what multiprocessing's spawn would hand a
new process *now* (workers/prepare.py: sys.path, sys.argv, cwd, the process
name and authkey, ``os.environ``), reseeds ``random``, and then starts
exactly as a spawned worker does (workers/boot.py: attach, imports,
``__main__`` as ``__mp_main__``, logging, initializer).  What differs from a
spawned worker is interpreter-level only: the hash seed, which the fork
shares.

A child waits for the pool's *ready* pipe before it attaches: the pool asks
for its workers first and creates its segment while they start.  EOF on
that pipe (the pool failed to build) ends the child quietly.

The zygote reaps its children and reports (pid, exit code); it stays
single-threaded so that forking it is safe, and it exits when its
coordinator closes the connection (interpreter exit) or dies.
"""

from __future__ import annotations

import _socket
import os
import pickle
import select
import signal
import struct
import sys

from shmrt.workers import boot, prepare

from shmrt import segment  # noqa: F401 - what every child attaches with

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import Any

POLL_S = 1.0  # how often an idle zygote checks that its coordinator lives
#: imported after the first forks, while idle (or before any, when the zygote
#: is started ahead: shmrt.zygote.start): what later children would otherwise
#: import themselves -- a ``__main__`` that imports shmrt's Pool pulls in
#: multiprocessing, concurrent.futures and the rest; runpy imports the main
WARM = ("multiprocessing.spawn", "shmrt.pool", "runpy", "socket")
_LEN = struct.Struct("!i")  # multiprocessing.connection's frame header
_LEN64 = struct.Struct("!Q")  # ... after a -1 header, for frames of 2 GiB and more


class Channel:
    """The zygote's end of its socket pair: multiprocessing Connection
    framing (the coordinator's end is a ``multiprocessing.connection``
    Connection) and descriptors passed as ``multiprocessing.reduction``
    sends them, on the raw ``_socket`` type."""

    def __init__(self, fd: int):
        self.sock = _socket.socket(fileno=fd)
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def poll(self, timeout: float) -> bool:
        return bool(self.poller.poll(int(timeout * 1000)))

    def _exactly(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError
            got += k
        return bytes(buf)

    def recv_bytes(self) -> bytes:
        (n,) = _LEN.unpack(self._exactly(4))
        if n == -1:
            (n,) = _LEN64.unpack(self._exactly(8))
        return self._exactly(n)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(_LEN.pack(len(data)) + data)

    def recv_fds(self, n: int) -> list[int]:
        if n == 0:
            return []
        size = n * 4
        msg, anc, _flags, _addr = self.sock.recvmsg(1, _socket.CMSG_SPACE(size))
        if not msg and not anc:
            raise EOFError
        fds = []
        for level, kind, data in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True)
                        for i in range(0, len(data) - len(data) % 4, 4)]
        if len(fds) != n:
            for fd in fds:
                os.close(fd)
            raise OSError(f"expected {n} descriptors, got {len(fds)}")
        return fds

    def close(self) -> None:
        self.sock.close()


def main(fd: int, coord_pid: int, pdeathsig: bool) -> None:
    """Entry point of the zygote process (started by shmrt.zygote)."""
    if pdeathsig:
        boot.cpu._set_pdeathsig()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    conn = Channel(fd)
    boot.report_exits(conn)
    warm = list(WARM)
    try:
        while True:
            try:
                while not conn.poll(0 if warm else POLL_S):
                    if warm:
                        __import__(warm.pop(0))
                    elif os.getppid() != coord_pid:
                        return  # orphaned: the coordinator died
                req = pickle.loads(conn.recv_bytes())
                fds = conn.recv_fds(req["nfds"])
            except (EOFError, OSError):
                return
            pid = os.fork()
            if pid == 0:
                _child(conn, req, fds)  # never returns
            for fd in fds:
                os.close(fd)
            conn.send_bytes(boot.REPORT.pack(boot.FORKED, pid, req["id"]))
    finally:
        conn.close()


def _child(conn: Channel, req: dict[str, Any], fds: list[int]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 0
    try:
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

    random.seed()  # not the zygote's sequence in every worker
    os.environ.clear()
    os.environ.update(req["env"])
    prepare.apply(req["prep"])  # sys.path, argv, cwd, name, authkey: as spawn now would

    def ready() -> bool:  # the segment is laid out (EOF: the pool failed to build)
        got = os.read(fds[0], 1)
        os.close(fds[0])
        return bool(got)

    spec: boot.WorkerSpec = pickle.loads(req["spec"])
    spec.pdeathsig = False  # our parent is the zygote: the worker watches its coordinator
    if spec.log is not None:  # the log socket came as a descriptor
        import socket

        spec.log = (socket.socket(fileno=fds[1]), spec.log[1])
    # imports and __main__ while the pool reserves its segment
    boot.main(spec, req["wid"], req["epoch"], req["err"], ready=ready)
    return 0
