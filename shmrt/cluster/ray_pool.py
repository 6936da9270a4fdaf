"""RayPool: the same Executor on a Ray cluster, one shmrt runtime per node.

Why: a program that outgrows one machine should not be rewritten.
``shmrt.Pool(backend="ray")`` returns a ``RayPool``: ``submit``, ``map``,
``shutdown``, futures, ``@shmrt.retry`` and ``spawn``/``join`` inside tasks
work as on a local pool.  Ray (an existing, trusted engine) places one node
actor per node and supervises it; inside each node shmrt's runtime keeps
its microsecond tasks in shared memory (shmrt.cluster.node).

Who owns what:

* the **caller's threads** only append to the cluster queue (``submit``);
* the **dispatcher thread** owns everything else: the nodes' records, the
  tasks each node holds, the queue's head.  It deals batches
  (shmrt.cluster.stealing), keeps one ``poll`` in flight per node, resolves
  futures from each poll's batch of results, carries out steals, and
  handles a node's death;
* **Ray's callback threads** only post events (a poll, ack, steal or start
  finished) to the dispatcher's inbox.

A task travels: ``submit`` pickles its call once (shmrt.cluster.payload;
large buffers go to the object store with one ``ray.put``) and queues it;
the dispatcher deals it in a batch (one Ray call) to a node actor, which
submits it to its shmrt pool; its result comes back in that node's next
poll reply (one Ray call for many results) and the dispatcher resolves the
future.  A function travels once per node.

Failures: a node actor that dies (its runtime dies with it) is noticed by
its failed poll.  Its unfinished tasks are re-dealt to other nodes if they
have retries left (``@shmrt.retry(n)`` or ``retries=``; a node death counts
as one attempt), otherwise they fail with ``NodeCrashed``, a
``WorkerCrashed`` naming the node.  If the Ray node is still alive a new
node actor is started there (at most ``node_restarts`` times); it removes
its dead predecessor's segment.  With no node left, everything pending
fails with ``BrokenPool`` and ``submit`` raises it.  A worker dying inside
a node is the local case (the node's runtime replaces it).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import inspect
import itertools
import pickle
import secrets
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..futures import SharedConditionFuture, _each
from . import payload
from .dispatch import Dispatcher, Task, broken_pool
from .stealing import StealPolicy

START_TIMEOUT_S = 120.0
_BY_REF = (types.FunctionType, types.BuiltinFunctionType, type)
_live: weakref.WeakSet[RayPool] = weakref.WeakSet()


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("shmrt.Pool(backend='ray') needs Ray, an optional extra: "
                          "pip install 'shmrt[ray]'") from e
    return ray


class ClusterFuture(SharedConditionFuture):
    """A task's future on the cluster: it shares its pool's Condition, as a
    local TaskFuture does (shmrt.futures).  ``running()`` is True once the
    task was dealt to a node."""


class RayPool(cf.Executor):
    """``shmrt.Pool(backend="ray", ...)``: an Executor over one shmrt runtime
    per Ray node.

    ``address``: None uses the Ray already initialized in this process, or
    starts a local one (``ray.init()``); "auto" or "host:port" joins a
    running cluster; "ray://host:port" goes through Ray Client.
    ``workers_per_node`` (alias ``max_workers``/``workers``) sizes each
    node's runtime (default: the node's CPUs); ``mp_context``,
    ``initializer`` and ``initargs`` mean what they mean for
    ``shmrt.Pool``, on every node.  ``retries`` and
    ``@shmrt.retry`` re-run a task whose worker *or node* died.  ``name``
    prefixes the node runtimes' names.  ``policy`` is the dealing and
    stealing policy (shmrt.cluster.stealing.StealPolicy).
    ``actor_options`` go to the node actors (e.g. ``runtime_env``),
    ``ray_init`` to ``ray.init`` when this pool starts Ray.  Any other
    keyword (``slots``, ``arena_size``, ``task_timeout``, ``imports``,
    ``initializer``, ...) is passed to every node's ``shmrt.Pool``.
    """

    def __init__(self, max_workers: int | None = None, mp_context: Any = None,
                 initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = (),
                 *, address: str | None = None,
                 workers_per_node: int | None = None, workers: int | None = None,
                 name: str | None = None, retries: int = 0, policy: StealPolicy | None = None,
                 ray_init: dict[str, Any] | None = None,
                 actor_options: dict[str, Any] | None = None, node_restarts: int = 3,
                 start_timeout: float = START_TIMEOUT_S, **pool_options: Any):
        ray = import_ray()
        per_node = workers_per_node or workers or max_workers
        if per_node is not None and per_node < 1:
            raise ValueError("workers_per_node must be >= 1")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if mp_context is not None:  # a context does not pickle: its start method does
            pool_options["mp_context"] = getattr(mp_context, "get_start_method",
                                                 lambda: mp_context)()
        if initializer is not None:
            pool_options.update(initializer=initializer, initargs=tuple(initargs))
        _check_pool_options(pool_options)
        self._ray = ray
        self._retries = retries
        self._cond = threading.Condition()  # shared by every ClusterFuture
        self._tids = itertools.count()
        # Function table: fn -> key, key -> pickled fn.  Any submitting thread
        # adds (under _fn_lock); the dispatcher reads a key's bytes after the
        # task naming it was queued.
        self._fn_keys: dict[Any, int] = {}
        self._fn_data: dict[int, bytes] = {}
        self._fn_lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._puts = 0  # ray.put calls for large arguments (submitting threads; approximate)
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, **(ray_init or {}))
        self._d = Dispatcher(ray, policy or StealPolicy(), dict(pool_options, retries=retries),
                             dict(actor_options or {}), node_restarts, start_timeout,
                             self._fn_data)
        try:
            self._d.start_nodes(name or f"ray-{secrets.token_hex(3)}", per_node)
        except BaseException:
            self._d.kill_actors()
            if self._owns_ray:
                ray.shutdown()
            raise
        self._d.start()
        # Dropped without shutdown(): the node runtimes stop when it is
        # collected (the dispatcher holds no reference to the pool).
        self._finalizer = weakref.finalize(self, self._d.stop)
        self._finalizer.atexit = False  # at exit _shutdown_all runs, before Ray's own hook
        _live.add(self)
        _register_atexit()

    # ---- Executor API ------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        d = self._d
        if d.closed:
            if d.broken:
                raise broken_pool(d.broken)
            raise RuntimeError("cannot schedule new futures after shutdown")
        fkey = self._fn_keys.get(fn) if type(fn) in _BY_REF else None
        if fkey is None:
            fkey = self._register(fn)
        data, bufs = payload.dumps_call(None if fkey >= 0 else fn, args, kwargs)
        ref = None
        if bufs:
            ref = self._ray.put(bufs)
            self._puts += 1
        fut = ClusterFuture(self._cond)
        retries = getattr(fn, "__shmrt_retries__", self._retries)
        d.queue.append(Task(next(self._tids), fut, fkey, data, ref, retries))
        if d.sleeping:  # wake it once, not once per submit until it runs
            d.sleeping = False
            d.wake()
        return fut

    def _register(self, fn: Callable[..., Any]) -> int:
        """The function-table key of ``fn`` (pickled once), or -1 for a
        callable that carries state (it travels with each task)."""
        if type(fn) not in _BY_REF:
            return -1
        with self._fn_lock:
            key = self._fn_keys.get(fn)
            if key is None:
                key = len(self._fn_data)
                self._fn_data[key] = payload.dumps_fn(fn)
                self._fn_keys[fn] = key
        return key

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None) -> Iterator[Any]:
        """Like Executor.map; chunksize=None makes about 4 chunks per worker
        of the cluster (at most 10,000 items each); a chunk is one task,
        its items and results pickled once each way (payload.map_packed)."""
        if chunksize is not None and chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        end = None if timeout is None else time.monotonic() + timeout
        single = len(iterables) == 1
        items: list[Any] = (list(iterables[0]) if single
                            else list(zip(*iterables)))  # noqa: B905 - stops at the shortest
        if chunksize is None:
            chunksize = max(1, min(10_000, -(-len(items) // (self.workers * 4))))
        fs: list[cf.Future] = []
        try:
            if chunksize == 1:
                fs = ([self.submit(fn, x) for x in items] if single
                      else [self.submit(fn, *a) for a in items])
            else:
                pack, packed = payload.dumps_value, payload.map_packed
                fs = [self.submit(packed, fn, pack(items[i:i + chunksize]), not single)
                      for i in range(0, len(items), chunksize)]
        except BaseException:
            for f in fs:
                f.cancel()
            raise
        gen = _each(fs, end)
        if chunksize == 1:
            return gen
        return itertools.chain.from_iterable(map(pickle.loads, gen))  # in the consumer's thread

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await pool.run(fn, *args)`` from asyncio code."""
        import asyncio

        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, return when every future is
        done and every node runtime has stopped (its segment removed)."""
        d = self._d
        d.closed = True
        if cancel_futures:
            d.post(("cancel_queued",))
        d.post(("check",))
        if wait:
            d.idle.wait()
            self._stop()
        else:
            def finish() -> None:
                d.idle.wait()
                self._stop()

            threading.Thread(target=finish, daemon=True).start()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._d.closed = True
            self._d.post(("cancel_queued",))
            self._stop()
        else:
            self.shutdown(wait=True)

    @property
    def workers(self) -> int:
        """Workers of the node runtimes that are up."""
        return max(1, sum(n.workers for n in self._d.nodes if n.state == "up"))

    @property
    def nodes(self) -> dict[str, str]:
        """Ray node id -> the name of its shmrt runtime, for the nodes up."""
        return {n.node_id: n.name for n in self._d.nodes if n.state == "up"}

    def statistics(self, timeout: float = 10.0) -> dict[str, Any]:
        """Cluster counters (submitted, completed, failed, crashed, retried,
        stolen, steals, node_deaths, batches, queued, backlog, workers), per
        node (``nodes``, by Ray node id: dealt, completed, failed, batches,
        polls, stolen_from, stolen_to, steals, deaths, lost, backlog, and
        ``runtime``: that node's shmrt ``statistics()``), and the sums of
        the node runtimes' counters (``runtime``); ``payload_puts`` counts
        the ``ray.put`` calls for large arguments.  Asks each live node for
        its runtime's counters (waits up to ``timeout``)."""
        return dict(self._d.statistics(timeout), payload_puts=self._puts)

    def _stop(self) -> None:
        """Stop the dispatcher and every node runtime; shut Ray down if this
        pool started it.  Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._finalizer.detach()
        self._d.stop()
        _live.discard(self)
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()


def _check_pool_options(options: dict[str, Any]) -> None:
    """Unknown keywords fail here, not on every node.  (The local pool is
    reached through the public ``shmrt.Pool``, as the node actor does.)"""
    import shmrt

    params = inspect.signature(shmrt.Pool.__init__).parameters
    ours = ("self", "name", "workers", "max_workers", "backend", "_relay")
    bad = sorted(k for k in options if k not in params or k in ours)
    if bad:
        raise TypeError(f"RayPool got unexpected keyword argument(s) {', '.join(bad)}")


_atexit_done = False


def _register_atexit() -> None:
    """After ray.init (so it runs before Ray's own exit hook): at exit,
    pending futures finish and the node runtimes stop."""
    global _atexit_done
    if not _atexit_done:
        _atexit_done = True
        atexit.register(_shutdown_all)


def _shutdown_all() -> None:
    for pool in list(_live):
        try:
            pool.shutdown(wait=True)
        except BaseException:  # noqa: B036 - a second Ctrl-C: stop now
            pool._stop()
