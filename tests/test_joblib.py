"""The joblib backend (shmrt.joblib): joblib.Parallel and a scikit-learn
estimator's n_jobs on shmrt; Dask's ``scheduler=<Executor>`` on a Pool.
joblib and scikit-learn are in the ``test`` extra; Dask is optional."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

joblib = pytest.importorskip("joblib")

import shmrt  # noqa: E402
import shmrt.joblib as shmrt_joblib  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def stop_backend_pools() -> Iterator[None]:
    """The backend keeps its pools between Parallel calls; the leak guard
    wants them gone at the end of each test."""
    yield
    for pool in list(shmrt_joblib._pools.values()):
        pool.shutdown(wait=True)
    shmrt_joblib._pools.clear()


def test_parallel_on_shmrt() -> None:
    with joblib.parallel_config(backend="shmrt", n_jobs=2):
        par = joblib.Parallel()
        got = par(joblib.delayed(math.sqrt)(i * i) for i in range(50))
        assert isinstance(par._backend, shmrt_joblib.ShmrtBackend)
    assert got == [float(i) for i in range(50)]
    pool = shmrt_joblib._pools[2]
    assert pool.statistics()["completed"] >= 1  # it really ran on shmrt


def test_parallel_lambdas_generators_and_errors() -> None:
    with joblib.parallel_config(backend="shmrt", n_jobs=2):
        assert joblib.Parallel()(joblib.delayed(lambda x: x + 1)(i) for i in range(5)) == \
            [1, 2, 3, 4, 5]
        gen = joblib.Parallel(return_as="generator")(
            joblib.delayed(pow)(i, 2) for i in range(10))
        assert list(gen) == [i * i for i in range(10)]
        with pytest.raises(ZeroDivisionError):
            joblib.Parallel()(joblib.delayed(divmod)(1, i) for i in (1, 0, 2))
        # the pool survives the aborted call
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3)) == [0, 1, 2]


def test_register_is_idempotent() -> None:
    shmrt_joblib.register()
    with joblib.parallel_config(backend="shmrt", n_jobs=1):
        assert joblib.Parallel()(joblib.delayed(abs)(-1) for _ in range(2)) == [1, 1]


def test_scikit_learn_cross_val_score() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    expected = cross_val_score(LogisticRegression(), X, y, cv=3, n_jobs=1)
    with joblib.parallel_config(backend="shmrt"):
        got = cross_val_score(LogisticRegression(), X, y, cv=3, n_jobs=2)
    assert list(got) == pytest.approx(list(expected))
    assert shmrt_joblib._pools[2].statistics()["completed"] >= 3


def test_dask_with_pool_as_scheduler() -> None:
    dask = pytest.importorskip("dask", reason="dask is optional (not in the test extra)")
    with shmrt.Pool(2) as pool:
        total = dask.delayed(sum)([dask.delayed(pow)(i, 2) for i in range(20)])
        assert dask.compute(total, scheduler=pool) == (sum(i * i for i in range(20)),)
        assert pool.statistics()["completed"] >= 1
