"""Task functions for tests/test_zygote.py (workers import them by name)."""

from __future__ import annotations

import os
import random
import sys
import time


def parent() -> tuple[int, int]:
    return os.getpid(), os.getppid()


def env(name: str) -> str | None:
    return os.environ.get(name)


def import_and_call(module: str) -> str:
    __import__(module)
    return sys.modules[module].VALUE  # type: ignore[no-any-return]


def bits_after(s: float) -> tuple[int, int]:
    time.sleep(s)
    return os.getpid(), random.getrandbits(64)


def cwd() -> str:
    return os.getcwd()


def mp_state() -> tuple[str, bytes, str | None, bool]:
    """What multiprocessing's spawn would have set up in this process."""
    import multiprocessing as mp

    cur = mp.current_process()
    return cur.name, bytes(cur.authkey), mp.get_start_method(allow_none=True), "shmrt" in cur.name


def shmrt_files() -> tuple[str, str]:
    import shmrt

    return str(shmrt.__file__), str(shmrt.workers.__file__)  # type: ignore[attr-defined]
