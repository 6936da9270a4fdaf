"""The public API is pinned: adding or removing a public name is a decision,
made by editing EXPECTED_ALL here in the same change."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import inspect

import pytest

import shmrt

pytestmark = pytest.mark.timeout(120)

EXPECTED_ALL = [
    "BrokenPool",
    "Client",
    "Full",
    "Handle",
    "NotInWorker",
    "PayloadTooLarge",
    "Pool",
    "Relay",
    "RelaySender",
    "RemoteTraceback",
    "RuntimeExists",
    "RuntimeNotFound",
    "SegmentError",
    "ShmrtError",
    "TaskCancelled",
    "TaskTimeout",
    "UdpSink",
    "WorkerCrashed",
    "connect",
    "retry",
    "spawn",
    "time_limit",
]

ERRORS = [
    "BrokenPool",
    "Full",
    "NotInWorker",
    "PayloadTooLarge",
    "RuntimeExists",
    "RuntimeNotFound",
    "ShmrtError",
    "WorkerCrashed",
]


def test_all_is_pinned() -> None:
    assert EXPECTED_ALL == sorted(EXPECTED_ALL)  # keep the pin itself sorted
    assert len(shmrt.__all__) == len(set(shmrt.__all__)), "duplicate names in __all__"
    assert sorted(shmrt.__all__) == EXPECTED_ALL


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_public_name_importable(name: str) -> None:
    mod = importlib.import_module("shmrt")
    assert getattr(mod, name) is not None
    ns: dict[str, object] = {}
    exec(f"from shmrt import {name}", ns)
    assert ns[name] is getattr(mod, name)


def test_star_import_gives_exactly_all() -> None:
    ns: dict[str, object] = {}
    exec("from shmrt import *", ns)
    assert sorted(k for k in ns if k != "__builtins__") == EXPECTED_ALL


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError):
        shmrt.no_such_name  # noqa: B018


def test_pool_is_an_executor() -> None:
    assert inspect.isclass(shmrt.Pool)
    assert issubclass(shmrt.Pool, cf.Executor)
    assert issubclass(shmrt.Client, cf.Executor)
    assert issubclass(shmrt.Pool, shmrt.Client)


def test_submit_returns_a_concurrent_future() -> None:
    with shmrt.Pool(1) as pool:
        fut = pool.submit(pow, 2, 10)
        assert isinstance(fut, cf.Future)
        assert fut.result(timeout=60) == 1024


@pytest.mark.parametrize("name", ERRORS)
def test_errors_derive_from_shmrt_error(name: str) -> None:
    assert issubclass(getattr(shmrt, name), shmrt.ShmrtError)
    assert issubclass(shmrt.ShmrtError, Exception)


def test_segment_error_is_a_shmrt_error() -> None:
    assert issubclass(shmrt.SegmentError, shmrt.ShmrtError)


def test_error_compatibility_bases() -> None:
    # each error is also the standard exception a caller would naturally catch
    assert issubclass(shmrt.BrokenPool, cf.BrokenExecutor)
    assert issubclass(shmrt.NotInWorker, RuntimeError)
    assert issubclass(shmrt.PayloadTooLarge, ValueError)
    assert issubclass(shmrt.RuntimeNotFound, FileNotFoundError)
    assert issubclass(shmrt.RuntimeExists, FileExistsError)
    assert issubclass(shmrt.SegmentError, Exception)
    assert issubclass(shmrt.RemoteTraceback, Exception)


def test_worker_crashed_fields_survive_pickling() -> None:
    import pickle

    e = shmrt.WorkerCrashed(1234, 9, -9, 2)
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is shmrt.WorkerCrashed
    assert (e2.pid, e2.signal, e2.exitcode, e2.attempts) == (1234, 9, -9, 2)
    assert "1234" in str(e2)


def test_retry_decorator() -> None:
    def f() -> int:
        return 1

    assert shmrt.retry(2)(f) is f
    with pytest.raises(ValueError):
        shmrt.retry(-1)


def test_version() -> None:
    assert isinstance(shmrt.__version__, str) and shmrt.__version__
