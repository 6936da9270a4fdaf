"""A joblib parallel backend on shmrt: ``joblib.Parallel`` and scikit-learn's
``n_jobs`` run on a shmrt pool.

    import joblib
    import shmrt.joblib                 # registers the "shmrt" backend

    with joblib.parallel_config(backend="shmrt", n_jobs=2):
        joblib.Parallel()(joblib.delayed(f)(i) for i in range(100))
        cross_val_score(estimator, X, y, n_jobs=2)

Why: joblib is how most of the PyData stack parallelises.  The backend is
a thin adapter from joblib's backend protocol (``submit`` a batch, a
callback when done, ``abort_everything``) to ``Pool.submit`` and futures.
Pools are kept between ``Parallel`` calls (one per worker count, like loky's
reusable executor: a pool start is ~80 ms, a scikit-learn fit makes many
calls) and stopped at exit.  Batches are joblib's own callables; what they
carry pickles by reference where it can and by value (cloudpickle) where
it cannot, as everything submitted to shmrt does.  Inside a shmrt worker
(a nested ``Parallel``) the work runs sequentially: a task cannot start a
pool.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from joblib import register_parallel_backend
from joblib._parallel_backends import (  # the backend protocol joblib documents
    AutoBatchingMixin,
    ParallelBackendBase,
    SequentialBackend,
)

NAME = "shmrt"
_pools: dict[int, Any] = {}  # n_jobs -> Pool, shared by every backend instance
_pools_lock = threading.Lock()


def _pool(n_jobs: int) -> Any:
    from .pool import Pool

    with _pools_lock:
        pool = _pools.get(n_jobs)
        if pool is None or pool._shutdown:
            pool = _pools[n_jobs] = Pool(n_jobs)
        return pool


def _in_worker() -> bool:
    from .workers import cpu

    return cpu._current is not None


class ShmrtBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend running batches as shmrt tasks."""

    supports_retrieve_callback = True
    supports_timeout = True
    supports_return_generator = True
    default_n_jobs = -1

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._pool: Any = None
        self._futures: set[Any] = set()

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None or _in_worker():
            return 1
        if n_jobs < 0:
            return max((os.cpu_count() or 1) + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel: Any = None, **backend_args: Any) -> int:
        n = self.effective_n_jobs(n_jobs)
        if n == 1:
            from joblib._parallel_backends import FallbackToBackend

            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        self._pool = _pool(n)
        return n

    def submit(self, func: Any, callback: Any = None) -> Any:
        fut = self._pool.submit(func)
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    def retrieve_result_callback(self, future: Any) -> Any:
        return future.result()

    def retrieve_result(self, out: Any, timeout: float | None = None) -> Any:
        return out.result(timeout)

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A batch failed: cancel what has not started (the pool stays)."""
        for fut in list(self._futures):
            fut.cancel()
        self._futures.clear()

    def terminate(self) -> None:
        """End of a Parallel call: the pool is kept for the next one."""
        self._pool = None
        self.reset_batch_stats()

    def get_nested_backend(self) -> tuple[Any, None]:
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None


def register() -> None:
    """Make ``backend="shmrt"`` available to joblib (done on import)."""
    register_parallel_backend(NAME, ShmrtBackend)


register()
