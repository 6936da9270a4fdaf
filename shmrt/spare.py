"""A reserved segment file kept for the next pool of this process.

Why: reserving a segment (posix_fallocate: the kernel allocates and clears
every page) takes time -- ~3 ms for the control part at the default sizes
when the arena reserves itself as it is carved, ~20 ms for all 74 MiB on a
kernel without MADV_POPULATE_WRITE (shmrt.segment.reserved_bytes) -- and
it must be done before the header is written (shmrt.segment: a full
/dev/shm is an error at creation, never a SIGBUS later).  For a second pool in the same process
that is most of its start-up once its workers are forked by the process
zygote (shmrt.zygote).  So when a pool stops, a thread reserves a file of
the same size for the next one: an unnamed file in /dev/shm (O_TMPFILE,
mode 0600), which the next pool's ``segment.create`` links under its name
(failing, as O_EXCL does, if the name is taken).  Unnamed, it cannot leak:
the kernel frees it with its last descriptor, whatever happens to us.

It is held for at most IDLE_S seconds (then closed, the memory given back),
not made when the process zygote is off (``SHMRT_ZYGOTE=0``), and dropped by
``shmrt.zygote.stop()`` and at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import threading

IDLE_S = 10.0  # a spare nobody took by then is given back
_lock = threading.Lock()  # guards the fields below
_fd = -1  # the spare's descriptor, or -1
_size = 0
_maker: threading.Thread | None = None  # reserving one now
_timer: threading.Timer | None = None


def make(size: int, reserve: int) -> None:
    """Make a spare of ``size`` bytes, its first ``reserve`` reserved, in
    the background (a pool whose workers the process zygote forked is
    stopping)."""
    global _maker
    if not hasattr(os, "O_TMPFILE"):
        return
    with _lock:
        if _maker is not None or (_fd >= 0 and _size == size):
            return
        _maker = threading.Thread(target=_make, args=(size, reserve), name="shmrt-spare",
                                  daemon=True)
        _maker.start()


def _make(size: int, reserve: int) -> None:
    global _fd, _size, _maker, _timer
    from .segment import SEGMENT_MODE, SHM_DIR

    fd = -1
    try:
        fd = os.open(SHM_DIR, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, SEGMENT_MODE)
        os.fchmod(fd, SEGMENT_MODE)
        os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, reserve)
    except OSError:  # no O_TMPFILE there, /dev/shm full: no spare, nothing lost
        if fd >= 0:
            os.close(fd)
        fd = -1
    with _lock:
        _maker = None
        if fd < 0:
            return
        _drop_locked()
        _fd, _size = fd, size
        _timer = threading.Timer(IDLE_S, drop)
        _timer.daemon = True
        _timer.start()


def take(size: int) -> int | None:
    """The spare's descriptor if it has ``size`` bytes (then it is ours to
    close), waiting for one being reserved; else None."""
    global _fd
    with _lock:
        maker = _maker
    if maker is not None:
        maker.join()
    with _lock:
        if _fd < 0 or _size != size:
            return None
        fd, _fd = _fd, -1
        _cancel_timer_locked()
        return fd


def drop() -> None:
    """Give the spare back (idle too long, the zygote stopped, exit); one
    being reserved is waited for first."""
    with _lock:
        maker = _maker
    if maker is not None and maker is not threading.current_thread():
        maker.join()
    with _lock:
        _drop_locked()


def _drop_locked() -> None:
    global _fd
    _cancel_timer_locked()
    if _fd >= 0:
        os.close(_fd)
        _fd = -1


def _cancel_timer_locked() -> None:
    global _timer
    if _timer is not None:
        _timer.cancel()
        _timer = None


atexit.register(drop)
if hasattr(os, "register_at_fork"):  # a forked child does not share it
    os.register_at_fork(after_in_child=lambda: globals().update(_fd=-1, _maker=None,
                                                                 _timer=None))
