"""Worker logging: a record logged in a task reaches the parent's handlers,
with the parent's levels (shmrt/logs.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import ppe_tasks as t
import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 60


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = TIMEOUT) -> list[logging.LogRecord]:  # type: ignore[no-untyped-def]
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.records), timeout), self.records
            return list(self.records)


@pytest.fixture
def handler() -> Iterator[Collect]:
    h = Collect()
    lg = logging.getLogger("shmrt.test")
    old = lg.level
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    try:
        yield h
    finally:
        lg.removeHandler(h)
        lg.setLevel(old)


def test_worker_record_reaches_parent_handler(handler: Collect) -> None:
    with shmrt.Pool(2) as p:
        pid = p.submit(t.log_something, logging.DEBUG, "dropped %s", 1).result(timeout=TIMEOUT)
        pid = p.submit(t.log_something, logging.INFO, "hello %s", 42).result(timeout=TIMEOUT)
        p.submit(t.log_something, logging.WARNING, "careful %r", "x").result(timeout=TIMEOUT)
        recs = handler.wait_for(lambda rs: len(rs) >= 2)
    info, warn = recs[0], recs[1]
    assert (info.levelno, info.getMessage(), info.name) == (logging.INFO, "hello 42",
                                                            "shmrt.test.worker")
    assert info.process == pid and info.funcName == "log_something"
    assert (warn.levelno, warn.getMessage()) == (logging.WARNING, "careful 'x'")
    assert all(r.levelno >= logging.INFO for r in handler.records)  # the DEBUG one: not shipped


def test_exception_text_and_parent_format(handler: Collect) -> None:
    handler.setFormatter(logging.Formatter("%(levelname)s|%(name)s|%(message)s"))
    with shmrt.Pool(1) as p:
        p.submit(t.log_exception).result(timeout=TIMEOUT)
        rec = handler.wait_for(lambda rs: len(rs) >= 1)[0]
    text = handler.format(rec)
    assert text.startswith("ERROR|shmrt.test.worker|it failed")
    assert "KeyError: 'kaputt'" in text and "log_exception" in text


def test_unconfigured_parent_ships_nothing() -> None:
    # a fresh interpreter that never configured logging: workers do not
    # even import it, and a warning still reaches stderr as before
    code = textwrap.dedent("""
        import sys, shmrt, ppe_tasks, logging
        if __name__ == "__main__":
            assert not logging.getLogger().handlers
            with shmrt.Pool(1) as p:
                assert p._log_rx is None
                p.submit(ppe_tasks.log_something, logging.WARNING, "to stderr %s", 7).result(60)
            print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=90)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "to stderr 7" in out.stderr


def test_records_logged_at_shutdown_are_not_lost(handler: Collect) -> None:
    with shmrt.Pool(2) as p:
        for i in range(50):
            p.submit(t.log_something, logging.INFO, "n=%s", i)
    # shutdown joined the workers, then drained the log socket
    deadline = time.monotonic() + TIMEOUT
    got = handler.wait_for(lambda rs: len(rs) >= 50, max(0.0, deadline - time.monotonic()))
    assert sorted(int(r.getMessage()[2:]) for r in got) == list(range(50))
