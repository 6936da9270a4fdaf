"""The segment's life: naming, creation, attachment, removal.

Why a module of its own: the security boundary is the user id, and every
way into a segment goes through here.  Creation is exclusive (O_CREAT |
O_EXCL) with mode 0600, after checking that /dev/shm has room for the whole
segment, and the file is fully allocated up front (posix_fallocate) so a full
/dev/shm is a clear error at creation, never a SIGBUS in a worker later.
Attachment refuses a segment owned by another user or open to group/other,
and the C core validates the header (magic, version, size, offsets) before
anything else is read.

Names: a runtime called NAME lives in /dev/shm/shmrt.<uid>.NAME, so two
users never collide and ``shmrt prune`` can tell shmrt's segments apart.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from dataclasses import dataclass

import posix_ipc

from . import _core
from .errors import RuntimeExists, RuntimeNotFound, SegmentError

SHM_DIR = "/dev/shm"
PREFIX = "shmrt."
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def shm_name(name: str) -> str:
    """The POSIX shm name of runtime ``name`` (with the leading slash)."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid runtime name {name!r}: use letters, digits, '_', '-', '.'")
    return f"/{PREFIX}{os.geteuid()}.{name}"


def runtime_name_of(shm_file: str) -> str | None:
    """Inverse of shm_name for a file in /dev/shm of the current user."""
    pre = f"{PREFIX}{os.geteuid()}."
    return shm_file[len(pre):] if shm_file.startswith(pre) else None


def random_name() -> str:
    return f"pool-{os.getpid()}-{secrets.token_hex(4)}"


def proc_start_time(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot (0 if it is gone or a
    zombie).

    pid + start time names a process for good: a recycled pid has another
    start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # the command name may contain spaces and parentheses: split after the last ')'
    rest = data[data.rfind(b")") + 2:].split()
    if rest and rest[0] in (b"Z", b"X"):
        return 0  # a zombie has exited: it is not a live holder of anything
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return 0


def process_alive(pid: int, start: int) -> bool:
    return pid > 0 and start > 0 and proc_start_time(pid) == start


@dataclass
class Config:
    """Sizes of a runtime's segment (see shmrt/_core/layout.h)."""

    n_workers: int
    n_slots: int = 16384
    slot_size: int = 512
    local_cap: int = 256
    n_clients: int = 16
    n_funcs: int = 4096
    arena_size: int = 64 << 20
    max_payload: int | None = None
    n_send: int = 0
    send_cap: int = 1024
    n_waiters: int = 64
    inflight: int = 0

    def as_dict(self) -> dict[str, int]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        # an echo holds its argument and its result blocks at once: a third of
        # the arena each (half-step size classes round up by at most 1.5x)
        d.setdefault("max_payload", self.arena_size // 3)
        return d


def create(name: str, cfg: Config) -> tuple[_core.Segment, str]:
    """Create and lay out a new segment; returns (segment, shm name)."""
    sname = shm_name(name)
    d = cfg.as_dict()
    d["coord_pid"] = os.getpid()
    d["coord_start"] = proc_start_time(os.getpid())
    size = _core.compute_layout(d)["total_size"]
    st = os.statvfs(SHM_DIR)
    free = st.f_bavail * st.f_frsize
    if size > free:
        raise OSError(f"/dev/shm has {free >> 20} MiB free, the runtime needs {size >> 20} MiB "
                      "(lower arena_size / slots, or free /dev/shm)")
    try:
        shm = posix_ipc.SharedMemory(sname, posix_ipc.O_CREX, mode=0o600)
    except posix_ipc.ExistentialError:
        raise RuntimeExists(f"a runtime named {name!r} already exists ({SHM_DIR}{sname}); "
                            f"stop it, or 'shmrt prune' if it is stale") from None
    lay = _core.compute_layout(d)
    sync_end = lay["slots_off"]
    try:
        os.fchmod(shm.fd, 0o600)  # umask cannot widen it, but be explicit
        os.ftruncate(shm.fd, size)
        _fallocate(shm.fd, 0, sync_end)
        seg = _core.Segment(shm.fd, writable=True, create=d)
    except BaseException:
        shm.close_fd()
        posix_ipc.unlink_shared_memory(sname)
        raise
    # The slots and the arena (most of the size) are reserved in the
    # background while the workers start: 64 MiB take ~30 ms, more than a
    # worker's start-up.  The space was checked above; the window in which
    # another /dev/shm user could take it is that background call.
    fd = shm.fd
    threading.Thread(target=_fallocate_and_close, args=(fd, sync_end, size - sync_end),
                     daemon=True, name="shmrt-fallocate").start()
    return seg, sname


def _fallocate(fd: int, off: int, n: int) -> None:
    try:
        os.posix_fallocate(fd, off, n)
    except OSError as e:
        raise OSError(f"cannot allocate {n >> 20} MiB in /dev/shm: {e.strerror}") from None


def _fallocate_and_close(fd: int, off: int, n: int) -> None:
    try:
        if n:
            os.posix_fallocate(fd, off, n)
    except OSError:
        pass  # checked at creation; a blob allocation may then fault later
    finally:
        os.close(fd)


def attach(name: str, *, writable: bool = True) -> _core.Segment:
    """Map an existing runtime's segment after validating it."""
    sname = shm_name(name)
    return attach_path(sname, writable=writable, display=name)


def attach_path(sname: str, *, writable: bool, display: str | None = None) -> _core.Segment:
    flags = 0
    try:
        fd = os.open(SHM_DIR + sname, os.O_RDWR if writable else os.O_RDONLY)
    except FileNotFoundError:
        raise RuntimeNotFound(f"no runtime named {display or sname!r} ({SHM_DIR}{sname})") from None
    except PermissionError:
        raise SegmentError(f"{SHM_DIR}{sname}: permission denied (another user's segment?)") from None
    del flags
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise SegmentError(f"{SHM_DIR}{sname} belongs to uid {st.st_uid}, not to us; refusing")
        if st.st_mode & 0o077:
            raise SegmentError(f"{SHM_DIR}{sname} has mode {st.st_mode & 0o777:03o} "
                               "(open to group/other); refusing")
        return _core.Segment(fd, writable=writable)
    finally:
        os.close(fd)


def unlink(sname: str) -> None:
    try:
        posix_ipc.unlink_shared_memory(sname)
    except posix_ipc.ExistentialError:
        pass
