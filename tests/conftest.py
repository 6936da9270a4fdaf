"""Suite-wide guards: every test must leave no child process and no shmrt
segment in /dev/shm behind.  A leak fails the test that caused it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # test helper modules importable by workers too
    sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)

PREFIX = f"shmrt.{os.geteuid()}."
CTIME_SLACK_NS = 50_000_000

# multiprocessing's spawn method starts one resource-tracker process per
# interpreter and keeps it: start it now so it is not counted as a leak.
from multiprocessing import resource_tracker  # noqa: E402

resource_tracker.ensure_running()


def _segments() -> set[str]:
    try:
        return {f for f in os.listdir("/dev/shm") if f.startswith(PREFIX)}
    except FileNotFoundError:
        return set()


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2:].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _ours(seg_file: str, since_ns: int) -> bool:
    """Was this segment made by this test process tree?  Its coordinator is
    us or a descendant of ours, or it is dead and the segment was created
    during the test.  Other concurrent runs' segments are not ours.

    Opened with shmrt's one checked open (no link followed, never blocks):
    a name a test planted (a symbolic link, FIFO, directory, ...) is never
    opened, and counts as ours if it appeared during the test."""
    from shmrt import _core
    from shmrt.errors import RuntimeNotFound, SegmentError
    from shmrt.layout import Header, LayoutError, read_u64
    from shmrt.segment import SuspiciousFile, open_segment_fd

    path = "/dev/shm/" + seg_file
    try:
        fd = open_segment_fd(path, False)
    except RuntimeNotFound:
        return False  # gone meanwhile
    except SuspiciousFile:
        try:  # the file system's clock is coarse (a tick behind time_ns): some slack
            return os.lstat(path).st_ctime_ns >= since_ns - CTIME_SLACK_NS
        except OSError:
            return False
    except (OSError, SegmentError):
        return True  # unreadable: count it, better safe
    try:
        head = os.pread(fd, _core.HEADER_SIZE, 0)
        coord = read_u64(head, Header.TABLE["coord_pid"])
        created = read_u64(head, Header.TABLE["created_ns"])
    except (OSError, LayoutError):
        return True  # truncated: count it, better safe
    finally:
        os.close(fd)
    me, pid = os.getpid(), coord
    for _ in range(64):
        if pid == me:
            return True
        if pid <= 1:
            break
        pid = _ppid(pid)
    alive = os.path.exists(f"/proc/{coord}")
    return not alive and created >= since_ns


def _remove(path: str) -> None:
    """Remove a leaked name, whatever it is (a planted directory too); a
    symbolic link is removed itself, never what it points to."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def _children() -> set[int]:
    """Our live children, but the process zygote: like the resource tracker,
    one per interpreter, kept between pools on purpose (shmrt.zygote)."""
    from helpers import proc_table

    from shmrt import zygote

    me = os.getpid()
    z = zygote.current()
    keep = {z.pid} if z is not None and z.alive() else set()
    return {p for p, (st, pp) in proc_table().items() if pp == me and st != "Z"} - keep


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a child process or a segment behind.

    Exiting children get a bounded grace period (they may be finishing their
    shutdown after the pool said goodbye); this is a deadline, not a sleep
    used for synchronisation."""
    before_segs = _segments()
    before_kids = _children()
    since_ns = time.time_ns()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        segs = {s for s in _segments() - before_segs if _ours(s, since_ns)}
        kids = _children() - before_kids
        if not segs and not kids:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for pid in kids:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    for s in segs:
        _remove("/dev/shm/" + s)
    pytest.fail(f"test leaked child processes {sorted(kids)} and/or segments {sorted(segs)}")
