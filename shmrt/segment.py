"""The segment's life: naming, creation, attachment, removal.

Why a module of its own: the security boundary is the user id, and every
way into a segment goes through here.  /dev/shm is world-writable, so any
local user can put anything under a name that does not exist yet: a
symbolic link to another runtime's segment, a FIFO (an open blocks for
ever), a device, a directory, a file of their own.  So every open of a
segment path goes through :func:`open_segment_fd`, which does not follow
a final symbolic link, does not block, and checks the open descriptor
(fstat) before a byte is read or mapped: a regular file, ours, mode 0600,
one link.  Anything else is refused with a one-line error that says what
was found (:class:`SuspiciousFile`); nothing it points to is touched.

Creation is exclusive (shm_open with O_CREAT | O_EXCL, which never follows
a planted link) with mode 0600, and reserves every byte of the segment
(posix_fallocate) before the segment is initialised and any worker starts:
a /dev/shm that is full, or that another process fills meanwhile, is a
clear error at creation, and a tmpfs filling up later cannot take a page
we will write (a page a mapping cannot get is a SIGBUS, not an exception).
The C core then validates the header (magic, version, size, offsets)
before anything else is read.

Names: a runtime called NAME lives in /dev/shm/shmrt.<uid>.NAME, so two
users never collide and ``shmrt prune`` can tell shmrt's segments apart.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable

import posix_ipc

from . import _core
from .errors import RuntimeExists, RuntimeNotFound, SegmentError
from .layout import Config as Config  # re-exported: its home is shmrt.layout (with its defaults)

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
    import secrets  # here: workers import this module and never need it

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


# ---- the one checked open -----------------------------------------------------------------
SEGMENT_MODE = 0o600


class SuspiciousFile(SegmentError):
    """Something other than one of our segments sits under a runtime's name
    (a symbolic link, FIFO, socket, device, directory, another user's file,
    a file open to group/other).  ``what`` says what was found."""

    def __init__(self, path: str, what: str, message: str):
        super().__init__(message)
        self.path = path
        self.what = what

    def __reduce__(self):  # keep the fields across pickling
        return (type(self), (self.path, self.what, str(self)))


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else f"a file of type {stat.S_IFMT(mode):o}"


def check_segment_stat(st: os.stat_result, path: str) -> None:
    """Raise :class:`SuspiciousFile` unless ``st`` is a regular file owned by
    our euid, mode exactly 0600, with one name (a second hard link would be
    a second name for a live runtime)."""
    kind = _kind(st.st_mode)
    if kind is not None:
        if stat.S_ISLNK(st.st_mode):
            try:
                kind += f" to {os.readlink(path)[:200]!r}"
            except OSError:
                pass
        raise SuspiciousFile(path, kind, f"{path} is {kind}, not a shmrt segment; refusing")
    if st.st_uid != os.geteuid():
        raise SuspiciousFile(path, f"a file of uid {st.st_uid}",
                             f"{path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()}); "
                             "refusing")
    mode = stat.S_IMODE(st.st_mode)
    if mode != SEGMENT_MODE:
        extra = " (open to group/other)" if mode & 0o077 else ""
        raise SuspiciousFile(path, f"a file of mode {mode:03o}",
                             f"{path} has wrong permissions: mode {mode:03o}{extra}, a shmrt "
                             f"segment has {SEGMENT_MODE:03o}; refusing")
    if st.st_nlink > 1:
        raise SuspiciousFile(path, f"a file with {st.st_nlink} hard links",
                             f"{path} has {st.st_nlink} hard links (a second name of one file: "
                             "another runtime's segment?); refusing")


def open_segment_fd(path: str, writable: bool, *, noatime: bool = False) -> int:
    """Open the segment file at ``path`` and return a descriptor that is
    known to be one of our segments' files; the caller closes it.

    The only way any shmrt code (library, CLI, inspector, test guard) opens
    a segment path.  The name is first looked at without following it
    (``lstat``), so a device or FIFO is not even opened; the open itself is
    ``O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`` (a symbolic link is refused by
    the kernel, a FIFO or device swapped in meanwhile cannot block), and the
    descriptor is checked with ``fstat`` (:func:`check_segment_stat`) before
    it is returned.  Nothing is read or mapped before that check.

    Raises :class:`RuntimeNotFound` (a FileNotFoundError) if nothing has the
    name, :class:`SuspiciousFile` (a SegmentError) for anything that is not
    a regular 0600 file of ours, SegmentError for any other refusal.
    ``noatime`` asks for O_NOATIME where the kernel allows it (the inspector
    leaves no trace)."""
    try:
        check_segment_stat(os.lstat(path), path)  # refuse before opening what we would refuse
    except FileNotFoundError:
        raise RuntimeNotFound(f"no runtime segment at {path}") from None
    except PermissionError:
        raise SegmentError(f"{path}: permission denied; refusing") from None
    base = ((os.O_RDWR if writable else os.O_RDONLY)
            | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    flags = base | (getattr(os, "O_NOATIME", 0) if noatime else 0)
    while True:
        try:
            fd = os.open(path, flags)
            break
        except FileNotFoundError:
            raise RuntimeNotFound(f"no runtime segment at {path}") from None
        except OSError as e:
            if e.errno == errno.EPERM and flags != base:
                flags = base  # O_NOATIME needs ownership: fstat below tells
                continue
            # swapped since the lstat (ELOOP: now a link, ENXIO: a socket or a FIFO
            # without reader, EISDIR...): say what is there now, if we can
            try:
                now = os.lstat(path)
            except OSError:
                now = None
            if now is not None:
                check_segment_stat(now, path)
            if e.errno in (errno.EACCES, errno.EPERM):
                raise SegmentError(f"{path}: permission denied (another user's segment?); "
                                   "refusing") from None
            raise SegmentError(f"{path}: cannot open: {e.strerror}; refusing") from None
    try:
        check_segment_stat(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _taken(name: str, path: str) -> str:
    """Why runtime ``name`` cannot be created: what already has its name."""
    try:
        check_segment_stat(os.lstat(path), path)
    except SuspiciousFile as e:
        return (f"the name of runtime {name!r} is taken by {e.what} ({path}), not by a shmrt "
                "segment: suspicious (someone may have planted it); refusing, nothing opened")
    except OSError:
        pass
    return (f"a runtime named {name!r} already exists ({path}); stop it, or 'shmrt prune' "
            "if it is stale")


# ---- create / attach / unlink ----------------------------------------------------------------
def create(name: str, cfg: Config, *, spare: Callable[[int], int | None] | None = None
           ) -> tuple[_core.Segment, str]:
    """Create, reserve and lay out a new segment; returns (segment, shm name).

    The control part (header to slots) is reserved (posix_fallocate) before
    the header is written and before this returns, so before any worker can
    map it; the arena is reserved as it is carved (shmrt/_core/arena.c,
    where the kernel has MADV_POPULATE_WRITE; else here, all of it).  A
    /dev/shm without room for the whole segment raises OSError (ENOSPC)
    here and leaves nothing behind; one filled by others later makes an
    arena allocation fail with OSError, never a SIGBUS.

    ``spare(size)``: a descriptor of an unnamed file of that size in
    /dev/shm, already reserved (shmrt.spare), or None; it is linked under
    the name (refused like O_EXCL if the name is taken) instead."""
    sname = shm_name(name)
    path = SHM_DIR + sname
    d = cfg.as_dict()
    d["coord_pid"] = os.getpid()
    d["coord_start"] = proc_start_time(os.getpid())
    lay = _core.compute_layout(d)
    size = lay["total_size"]
    reserve = reserved_bytes(lay)
    d["arena_reserved"] = reserve - lay["arena_off"]
    fd = spare(size) if spare is not None else None
    if fd is not None:
        return _create_from(fd, name, sname, d), sname
    free = _shm_free()
    if size > free:
        raise OSError(errno.ENOSPC, f"/dev/shm is too full: {free >> 20} MiB free, runtime "
                      f"{name!r} needs {size >> 20} MiB (lower arena_size / slots, or free /dev/shm)")
    try:
        # shm_open(O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC): never opens what is there
        shm = posix_ipc.SharedMemory(sname, posix_ipc.O_CREX, mode=SEGMENT_MODE)
    except posix_ipc.ExistentialError:
        raise RuntimeExists(_taken(name, path)) from None
    try:
        os.fchmod(shm.fd, SEGMENT_MODE)  # umask cannot widen it, but be explicit
        check_segment_stat(os.fstat(shm.fd), path)
        os.ftruncate(shm.fd, size)
        try:
            os.posix_fallocate(shm.fd, 0, reserve)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(e.errno, f"cannot reserve {reserve >> 20} MiB in /dev/shm for runtime "
                              f"{name!r}: {e.strerror}") from None
            raise OSError(e.errno, f"/dev/shm is full: cannot reserve {reserve >> 20} MiB for "
                          f"runtime {name!r} ({_shm_free() >> 20} MiB free now; another "
                          "process took the space?); free /dev/shm or lower arena_size / slots"
                          ) from None
        seg = _core.Segment(shm.fd, writable=True, create=d)
    except BaseException:
        unlink(sname)
        raise
    finally:
        shm.close_fd()
    return seg, sname


def reserved_bytes(lay: dict[str, int]) -> int:
    """How much of a new segment its creator reserves: up to the arena when
    the arena reserves itself as it is carved (``_core.ARENA_LAZY``), else
    all of it."""
    return lay["arena_off"] if _core.ARENA_LAZY else lay["total_size"]


def _create_from(fd: int, name: str, sname: str, d: dict) -> _core.Segment:
    """``create`` with a reserved unnamed file (``fd``, closed here)."""
    path = SHM_DIR + sname
    try:
        dirfd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # linkat(AT_SYMLINK_FOLLOW): the file itself; EEXIST if the name is taken
            os.link(str(fd), path, src_dir_fd=dirfd, follow_symlinks=True)
        except FileExistsError:
            raise RuntimeExists(_taken(name, path)) from None
        finally:
            os.close(dirfd)
        try:
            check_segment_stat(os.fstat(fd), path)
            return _core.Segment(fd, writable=True, create=d)
        except BaseException:
            unlink(sname)
            raise
    finally:
        os.close(fd)


def _shm_free() -> int:
    st = os.statvfs(SHM_DIR)
    return st.f_bavail * st.f_frsize


def attach(name: str, *, writable: bool = True) -> _core.Segment:
    """Map an existing runtime's segment after validating it."""
    sname = shm_name(name)
    return attach_path(sname, writable=writable, display=name)


def attach_path(sname: str, *, writable: bool, display: str | None = None) -> _core.Segment:
    """Map the segment ``/dev/shm<sname>`` after :func:`open_segment_fd`'s
    checks; the C core then validates the header."""
    path = SHM_DIR + sname
    try:
        fd = open_segment_fd(path, writable)
    except RuntimeNotFound:
        raise RuntimeNotFound(f"no runtime named {display or sname!r} ({path})") from None
    try:
        return _core.Segment(fd, writable=writable)
    finally:
        os.close(fd)


# ---- run-state transitions -------------------------------------------------------------------
# header.run_state is written by the coordinator only, through these (one
# call site per transition); a broken runtime (RUN_BROKEN) is marked by the C
# core (broken.c).  Stores are release stores (Segment.store64).
def unlink(sname: str) -> None:
    try:
        posix_ipc.unlink_shared_memory(sname)
    except posix_ipc.ExistentialError:
        pass
