"""The process zygote (shmrt/zygote.py): a pool's spawn workers are forked by
one clean interpreter per process, and each behaves as a spawned worker
would *now* (the environment, sys.path and cwd of the moment the pool is
built, its own random sequence); a second pool reuses the zygote."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
import zygote_tasks as zt

import shmrt
from shmrt import zygote

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30.0


def test_second_pool_forks_from_the_same_zygote() -> None:
    with shmrt.Pool(2) as p:
        pid_a, ppid_a = p.submit(zt.parent).result(timeout=TIMEOUT)
    z = zygote.current()
    assert z is not None and z.alive() and ppid_a == z.pid
    with shmrt.Pool(2) as p:
        pid_b, ppid_b = p.submit(zt.parent).result(timeout=TIMEOUT)
    assert ppid_b == z.pid and pid_b != pid_a  # a new worker from the same zygote


def test_workers_get_the_environment_path_and_cwd_of_now(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with shmrt.Pool(1) as p:  # the zygote is up before any of the changes below
        p.submit(zt.parent).result(timeout=TIMEOUT)
    mod = f"zt_late_{os.getpid()}"
    (tmp_path / f"{mod}.py").write_text("VALUE = 'found'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SHMRT_TEST_LATE", "late-value")
    monkeypatch.chdir(tmp_path)
    with shmrt.Pool(1) as p:
        assert p.submit(zt.parent).result(timeout=TIMEOUT)[1] == zygote.current().pid
        assert p.submit(zt.env, "SHMRT_TEST_LATE").result(timeout=TIMEOUT) == "late-value"
        assert p.submit(zt.import_and_call, mod).result(timeout=TIMEOUT) == "found"
        assert p.submit(zt.cwd).result(timeout=TIMEOUT) == str(tmp_path)


def test_each_worker_has_its_own_random_sequence() -> None:
    with shmrt.Pool(2) as p:
        got = [f.result(timeout=TIMEOUT) for f in [p.submit(zt.bits_after, 0.2) for _ in range(4)]]
    first: dict[int, int] = {}
    for pid, bits in got:
        first.setdefault(pid, bits)
    assert len(first) == 2, "both workers ran a task"
    assert len(set(first.values())) == 2, "forked workers must not share the zygote's sequence"


def test_stop_ends_it_and_the_next_pool_starts_another() -> None:
    with shmrt.Pool(1) as p:
        p.submit(zt.parent).result(timeout=TIMEOUT)
    old = zygote.current()
    assert old is not None
    zygote.stop()
    assert zygote.current() is None and old.proc.poll() is not None
    with shmrt.Pool(1) as p:
        assert p.submit(zt.parent).result(timeout=TIMEOUT)[1] != old.pid


def test_turned_off_workers_are_spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHMRT_ZYGOTE", "0")
    with shmrt.Pool(1) as p:
        assert p.submit(zt.parent).result(timeout=TIMEOUT)[1] == os.getpid()


def test_without_pidfds_workers_are_spawned_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.pidfd_open exists but fails (ENOSYS before Linux 5.3 and under
    valgrind, EPERM under a seccomp filter): no zygote, no standby; the pool
    spawns its workers and replaces a killed one."""
    def refused(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", refused)
    monkeypatch.setattr(zygote, "_pidfd_ok", None)
    assert not zygote.enabled()
    with shmrt.Pool(1) as p:
        pid, ppid = p.submit(zt.parent).result(timeout=TIMEOUT)
        assert ppid == os.getpid()
        os.kill(pid, signal.SIGKILL)
        pid2, ppid2 = p.submit(zt.parent).result(timeout=TIMEOUT)
        assert pid2 != pid and ppid2 == os.getpid()


def test_children_get_multiprocessing_state_with_or_without_it_imported() -> None:
    """workers/prepare.py: the name, authkey and start method that spawn
    would set, applied when the child imports multiprocessing -- whether the
    zygote had imported it before the fork (a second pool) or not (the
    first pool of a new zygote forks before the zygote's warm-up)."""
    import multiprocessing as mp

    zygote.stop()
    mine = bytes(mp.current_process().authkey)
    for _ in range(2):
        with shmrt.Pool(1) as p:
            name, key, method, _ = p.submit(zt.mp_state).result(timeout=TIMEOUT)
            assert p.submit(zt.parent).result(timeout=TIMEOUT)[1] == zygote.current().pid
        assert name == "shmrt-worker-0" and key == mine and method == mp.get_start_method()


def test_after_import_runs_once_before_the_importer_sees_the_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from shmrt.workers.prepare import AfterImport

    mod = f"zt_after_{os.getpid()}"
    (tmp_path / f"{mod}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []

    def then(m: object) -> None:
        seen.append(m.VALUE)  # type: ignore[attr-defined]
        m.VALUE = 2  # type: ignore[attr-defined]

    hook = AfterImport(mod, then)
    sys.meta_path.insert(0, hook)
    try:
        assert __import__(mod).VALUE == 2 and seen == [1]
        assert hook not in sys.meta_path
        import inspect

        assert "VALUE = 1" in inspect.getsource(sys.modules[mod])  # the real loader's
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        sys.modules.pop(mod, None)


def test_start_ahead_of_the_first_pool() -> None:
    zygote.stop()
    assert zygote.start() and zygote.start()  # idempotent: one zygote
    z = zygote.current()
    assert z is not None and z.alive()
    with shmrt.Pool(2) as p:
        assert p.submit(zt.parent).result(timeout=TIMEOUT)[1] == z.pid
    assert zygote.current() is z


def test_start_refuses_where_it_cannot_be_used(monkeypatch: pytest.MonkeyPatch) -> None:
    zygote.stop()
    monkeypatch.setenv("SHMRT_ZYGOTE", "0")
    assert not zygote.start() and zygote.current() is None


def test_the_zygote_runs_the_coordinators_shmrt() -> None:
    """The zygote loads shmrt and shmrt.workers from where this process has
    them (shmrt/zygote.py _BOOT), as attributes of each other too."""
    import shmrt.workers

    zygote.stop()
    with shmrt.Pool(1) as p:
        got = p.submit(zt.shmrt_files).result(timeout=TIMEOUT)
        assert p.submit(zt.parent).result(timeout=TIMEOUT)[1] == zygote.current().pid
    assert got == (shmrt.__file__, shmrt.workers.__file__)
