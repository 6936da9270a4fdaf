"""The pools a user might pick instead of shmrt, beyond the standard library.

``shmrt bench --vs all`` runs every workload on each of these that is
installed (``pip install 'shmrt[bench]'``), side by side with shmrt,
``ProcessPoolExecutor`` and ``multiprocessing.Pool``, with the same number
of worker processes.  A peer whose package is missing is skipped with a
note, never an error; nothing here imports a peer's package until that peer
is started, so ``shmrt bench`` without the extra pays nothing.

* ``loky``  -- ``loky.ProcessPoolExecutor(max_workers, timeout=None)`` (the
  executor behind joblib; workers started with loky's fork+exec, i.e. a
  fresh interpreter like ``spawn``; no idle timeout, so a worker cannot
  retire between two samples and bill its restart to the next one).
* ``mpire`` -- ``mpire.WorkerPool(n_jobs, start_method="spawn",
  keep_alive=True)``: ``apply_async`` per task, its own chunked ``map``.
  ``keep_alive`` keeps the workers between ``map`` calls (without it mpire
  restarts them for every ``map``, and a ``map`` after an ``apply_async`` on
  the same pool fails in mpire 2.10).
* ``dask``  -- ``distributed.LocalCluster(n_workers, threads_per_worker=1,
  processes=True)`` + ``Client``; ``submit(fn, *args, pure=False)``; ``map``
  submits one task per chunk (``client.map`` of one task per item would be
  far slower), then ``gather``.
* ``ray``   -- ``ray.init(num_cpus=workers, include_dashboard=False,
  log_to_driver=False)`` once per process (a later ``start`` reuses it:
  starting Ray takes seconds), ``@ray.remote`` tasks, ``map`` one task per
  chunk.  ``put`` stores an array once in Ray's object store, for the
  labelled object-store variant of ``payload``.

Peers that cannot spawn a task from inside a task get the same fallbacks as
``ProcessPoolExecutor`` (see :mod:`.scenarios`: the client submits).  Ray
and Dask could nest tasks (remote calls inside a task, ``worker_client``),
but a nested task goes through the same scheduler as a client submit and
the parent blocks a worker slot while it waits; every peer here gets the
same client-side driver, so the rows compare like with like.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import workloads as wl
from .peers import PEER_CLASSES, WAIT_TIMEOUT, Peer

__all__ = [
    "ALL_PEER_CLASSES",
    "ALL_PEER_KEYS",
    "DaskPeer",
    "LokyPeer",
    "MpirePeer",
    "RayPeer",
    "missing_reason",
    "resolve_peers",
    "shutdown_all",
]


def _chunks(items: Iterable[Any], chunksize: int | None, workers: int) -> list[list[Any]]:
    seq = list(items)
    cs = chunksize or max(1, math.ceil(len(seq) / (4 * workers)))
    return [seq[i : i + cs] for i in range(0, len(seq), cs)]


def _flatten(parts: Iterable[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        out.extend(part)
    return out


class LokyPeer(Peer):
    key = "loky"
    label = "loky"
    description = "loky.ProcessPoolExecutor(max_workers=workers, timeout=None) (fork+exec workers)"

    def start(self) -> None:
        import loky

        pool = loky.ProcessPoolExecutor(max_workers=self.workers, timeout=None)
        self.pool = pool
        self.submit = pool.submit
        self.result = lambda fut: fut.result(WAIT_TIMEOUT)

    def _close(self) -> None:
        self.pool.shutdown(wait=True)

    def _kill(self) -> None:
        self.pool.shutdown(wait=False, kill_workers=True)

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        return list(self.pool.map(fn, items, timeout=WAIT_TIMEOUT, chunksize=chunksize or 1))


class MpirePeer(Peer):
    key = "mpire"
    label = "mpire"
    description = "mpire.WorkerPool(n_jobs=workers, start_method='spawn', keep_alive=True)"

    def start(self) -> None:
        from mpire import WorkerPool

        pool = WorkerPool(n_jobs=self.workers, start_method="spawn", keep_alive=True)
        self.pool = pool
        apply_async = pool.apply_async

        def submit(fn: Callable[..., Any], *args: Any) -> Any:
            return apply_async(fn, args)

        self.submit = submit
        self.result = lambda res: res.get(WAIT_TIMEOUT)

    def _close(self) -> None:
        self.pool.stop_and_join()

    def _kill(self) -> None:
        self.pool.terminate()

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        seq = items if isinstance(items, Sequence) else list(items)
        return list(self.pool.map(fn, seq, iterable_len=len(seq), chunk_size=chunksize))


class DaskPeer(Peer):
    key = "dask"
    label = "Dask"
    description = (
        "distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) "
        "+ Client; submit(fn, *args, pure=False)"
    )

    def start(self) -> None:
        from distributed import Client, LocalCluster

        # "Sending large graph" / "Large object ... detected in task graph": the
        # payload workload sends arrays per task on purpose.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"distributed(\..*)?$")
        cluster = LocalCluster(
            n_workers=self.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
        self.cluster = cluster
        self.pool = client
        csubmit = client.submit

        def submit(fn: Callable[..., Any], *args: Any) -> Any:
            return csubmit(fn, *args, pure=False)

        self.submit = submit
        self.result = lambda fut: fut.result(timeout=WAIT_TIMEOUT)

    def _close(self) -> None:
        try:
            self.pool.close()
        finally:
            self.cluster.close()

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        client = self.pool
        parts = _chunks(items, chunksize, self.workers)
        futs = client.map(wl.apply_chunk, [fn] * len(parts), parts, pure=False)
        return _flatten(client.gather(futs))


_ray_cpus: int | None = None


def _ray_start(workers: int, fresh: bool) -> Any:
    global _ray_cpus
    import ray

    if ray.is_initialized() and (fresh or _ray_cpus != workers):
        ray.shutdown()
    if not ray.is_initialized():
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        _ray_cpus = workers
    return ray


class RayPeer(Peer):
    key = "ray"
    label = "Ray"
    description = (
        "ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False) once; "
        "@ray.remote tasks, ray.get"
    )
    store_label = "Ray, array put once (ray.put, untimed)"

    def start(self) -> None:
        ray = _ray_start(self.workers, self.fresh_start)
        self.pool = ray
        remotes: dict[Any, Any] = {}
        remote, get = ray.remote, ray.get

        def submit(fn: Callable[..., Any], *args: Any) -> Any:
            r = remotes.get(fn)
            if r is None:
                r = remotes[fn] = remote(fn)
            return r.remote(*args)

        self.submit = submit
        self.result = lambda ref: get(ref, timeout=WAIT_TIMEOUT)
        self._chunk_remote = remote(wl.apply_chunk)

    def _close(self) -> None:
        # Ray stays up for the next workload (starting it takes seconds);
        # shutdown_all() stops it at the end.  ``startup`` wants a fresh one.
        if self.fresh_start:
            self.pool.shutdown()

    def put(self, obj: Any) -> Any:
        return self.pool.put(obj)

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        chunk = self._chunk_remote
        refs = [chunk.remote(fn, part) for part in _chunks(items, chunksize, self.workers)]
        return _flatten(self.pool.get(refs, timeout=WAIT_TIMEOUT))


EXTRA_PEER_CLASSES: dict[str, type[Peer]] = {
    cls.key: cls for cls in (LokyPeer, MpirePeer, DaskPeer, RayPeer)
}
ALL_PEER_CLASSES: dict[str, type[Peer]] = {**PEER_CLASSES, **EXTRA_PEER_CLASSES}
ALL_PEER_KEYS: tuple[str, ...] = tuple(ALL_PEER_CLASSES)

#: import names each peer needs (the pip name is in pyproject's ``bench`` extra)
REQUIRES: dict[str, tuple[str, ...]] = {
    "loky": ("loky",),
    "mpire": ("mpire",),
    "dask": ("dask", "distributed"),
    "ray": ("ray",),
}


def missing_reason(key: str) -> str | None:
    """Why peer ``key`` cannot run here (``None``: it can).  Does not import it."""
    for mod in REQUIRES.get(key, ()):
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{mod} is not installed (pip install 'shmrt[bench]')"
    return None


def resolve_peers(spec: str | Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``"all"`` or a comma list -> (installed peers in canonical order, skipped).

    ``shmrt`` is always included (every ratio is against it).  Raises
    ``ValueError`` for a name that is not a known peer.
    """
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    wanted = set(ALL_PEER_KEYS) if "all" in names else {"shmrt", *names}
    bad = sorted(wanted - set(ALL_PEER_KEYS))
    if bad:
        raise ValueError(f"unknown peer(s): {', '.join(bad)}; known: all, {', '.join(ALL_PEER_KEYS)}")
    keys: list[str] = []
    skipped: dict[str, str] = {}
    for key in ALL_PEER_KEYS:
        if key not in wanted:
            continue
        reason = missing_reason(key)
        if reason is None:
            keys.append(key)
        else:
            skipped[key] = reason
    return keys, skipped


def shutdown_all() -> None:
    """Stop what outlives a single pool (Ray's local instance)."""
    global _ray_cpus
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    _ray_cpus = None
