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

# multiprocessing's spawn method starts one resource-tracker process per
# interpreter and keeps it: start it now so it is not counted as a leak.
from multiprocessing import resource_tracker  # noqa: E402

resource_tracker.ensure_running()


def _segments() -> set[str]:
    try:
        return {f for f in os.listdir("/dev/shm") if f.startswith(PREFIX)}
    except FileNotFoundError:
        return set()


def _children() -> set[int]:
    me = os.getpid()
    kids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == me and rest[0] != b"Z":
            kids.add(int(d))
    return kids


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a child process or a segment behind.

    Exiting children get a bounded grace period (they may be finishing their
    shutdown after the pool said goodbye); this is a deadline, not a sleep
    used for synchronisation."""
    before_segs = _segments()
    before_kids = _children()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        segs = _segments() - before_segs
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
        try:
            os.unlink("/dev/shm/" + s)
        except OSError:
            pass
    pytest.fail(f"test leaked child processes {sorted(kids)} and/or segments {sorted(segs)}")
