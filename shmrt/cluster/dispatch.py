"""The dispatcher: the one thread that owns the cluster's scheduling state.

Why one thread: dealing, stealing, resolving results and handling a node's
death all read and change the same state -- which node holds which task,
each node's backlog, the head of the queue -- and a Ray call is ~1 ms
anyway, so a single owner needs no locks and costs nothing.  Who touches
what:

* ``queue``: callers' threads append (``RayPool.submit``); only the
  dispatcher pops (from the left) or puts back (re-dealt tasks, on the
  left);
* ``inbox``: Ray's callback threads append events (a poll, ack, steal or
  actor start finished); only the dispatcher pops;
* everything else (``nodes``, each node's ``tasks``, the counters) is the
  dispatcher's; ``statistics()`` reads it from other threads, approximately.

The loop: handle the inbox, deal batches to hungry nodes, start a steal if
a node ran dry (shmrt.cluster.stealing), mark the pool idle when shut down
with nothing pending, sleep until an event or a submit wakes it.  Each node
has exactly one ``poll`` in flight while it is up; a failed poll, ack or
steal means its actor died (handled once per incarnation).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections import deque
from typing import Any

from . import payload
from .errors import NodeCrashed
from .node import RESULT_OK, NodeRuntime
from .stealing import NodeLoad, StealPolicy, deal, pick_steal

POLL_WAIT_S = 0.5  # a poll with nothing to report returns after this
IDLE_WAIT_S = 1.0  # longest sleep of the dispatcher
STOP_TIMEOUT_S = 30.0
DONE = frozenset({"FINISHED", "CANCELLED", "CANCELLED_AND_NOTIFIED"})


class Task:
    """One submitted task, owned by the dispatcher once queued."""

    __slots__ = ("tid", "fut", "fkey", "data", "bufs", "retries", "attempts", "dealt")

    def __init__(self, tid: int, fut: cf.Future, fkey: int, data: bytes, bufs: Any,
                 retries: int):
        self.tid = tid
        self.fut = fut
        self.fkey = fkey  # function table key, -1: the callable is in data
        self.data = data  # the pickled call
        self.bufs = bufs  # ObjectRef of its large buffers, or None
        self.retries = retries
        self.attempts = 0  # node deaths it went through
        self.dealt = False  # its future was marked running


class Node:
    """The dispatcher's record of one node (and its current actor)."""

    def __init__(self, node_id: str, name: str, workers: int):
        self.node_id = node_id
        self.name = name  # the node runtime's name (shmrt ls / inspect / connect on that node)
        self.workers = workers
        self.actor: Any = None
        self.incarnation = 0  # bumped per actor started; events of older ones are ignored
        self.state = "starting"  # starting | up | dead | stopped
        self.pid = 0
        self.tasks: dict[int, Task] = {}  # dealt, not finished (the backlog)
        self.fns_sent: set[int] = set()
        self.load = NodeLoad(node_id, workers, 0)
        self.restarts = 0
        self.c = {"dealt": 0, "completed": 0, "failed": 0, "batches": 0, "polls": 0,
                  "stolen_from": 0, "stolen_to": 0, "steals": 0, "deaths": 0, "lost": 0}
        self.runtime_stats: dict[str, Any] | None = None

    def view(self) -> NodeLoad:
        self.load.backlog = len(self.tasks)
        return self.load



class Dispatcher:
    """The scheduling state of one RayPool and the thread that owns it."""

    def __init__(self, ray: Any, policy: StealPolicy, pool_options: dict[str, Any],
                 actor_options: dict[str, Any], node_restarts: int, start_timeout: float,
                 fn_data: dict[int, bytes]):
        self._ray = ray
        self._policy = policy
        self._pool_options = pool_options
        self._actor_options = actor_options
        self._node_restarts = node_restarts
        self._start_timeout = start_timeout
        self._fn_data = fn_data  # function key -> pickled function (RayPool adds to it)
        self._actor_cls: Any = None
        self.queue: deque[Task] = deque()  # see the module docstring
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self.sleeping = False  # about to wait: a submit must set wake
        self.closed = False  # no more submits (shut down, or broken)
        self.broken: str | None = None  # why the pool cannot run tasks
        self.idle = threading.Event()  # closed and nothing pending
        self.stopped = False
        self._stop_lock = threading.Lock()
        self._nodes: dict[str, Node] = {}
        self.c = {"submitted": 0, "completed": 0, "failed": 0, "crashed": 0, "retried": 0,
                  "stolen": 0, "steals": 0, "node_deaths": 0, "batches": 0}
        self._thread = threading.Thread(target=self._run, name="shmrt-ray-dispatcher",
                                        daemon=True)

    def wake(self) -> None:
        self._wake.set()

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the node runtimes and the thread; idempotent.  From the
        dispatcher thread itself (a finalizer run by the garbage collector
        there) it only asks."""
        self.closed = True
        if threading.current_thread() is self._thread:
            self.post(("stop",))
            return
        with self._stop_lock:
            if self.stopped:
                return
            if self._thread.is_alive():
                self.post(("stop",))
                self._thread.join()
            else:
                self._stop_nodes()
            self.stopped = True

    # ---- start -----------------------------------------------------------------
    def _actor_class(self) -> Any:
        if self._actor_cls is None:
            self._actor_cls = self._ray.remote(NodeRuntime)
        return self._actor_cls

    def _spawn_actor(self, node: Node) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts = dict(num_cpus=0, max_restarts=0, max_task_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False))
        opts.update(self._actor_options)
        node.incarnation += 1
        node.state = "starting"
        node.fns_sent = set()
        node.load.stealing = node.load.steal_blocked = False  # a steal of the old one is moot
        node.actor = self._actor_class().options(**opts).remote(
            node.name, node.workers, self._pool_options, min(60.0, self._start_timeout))
        return node.actor.info.remote()

    def start_nodes(self, prefix: str, per_node: int | None) -> None:
        ray = self._ray
        alive = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
        if not alive:
            raise RuntimeError("the Ray cluster has no live node with a CPU")
        refs = {}
        for n in alive:
            nid = n["NodeID"]
            node = Node(nid, f"{prefix}-{nid[:8]}", per_node or int(n["Resources"]["CPU"]))
            self._nodes[nid] = node
            refs[nid] = self._spawn_actor(node)
        errors = []
        for nid, ref in refs.items():
            node = self._nodes[nid]
            try:
                self._started(node, ray.get(ref, timeout=self._start_timeout))
            except Exception as e:
                errors.append(f"{node.name}: {e}")
                node.state = "dead"
                self._kill(node)
        if not any(n.state == "up" for n in self._nodes.values()):
            raise RuntimeError("no node runtime started: " + "; ".join(errors))
        if errors:
            import warnings

            warnings.warn("shmrt RayPool: some nodes did not start: " + "; ".join(errors),
                          RuntimeWarning, stacklevel=3)

    def _started(self, node: Node, info: dict[str, Any]) -> None:
        node.state = "up"
        node.pid = info["pid"]

    # ---- the dispatcher ------------------------------------------------------------
    def post(self, event: tuple[Any, ...]) -> None:
        self._inbox.append(event)
        self._wake.set()

    def _on_done(self, ref: Any, event: tuple[Any, ...]) -> None:
        """Post ``event + (future,)`` when ``ref`` completes (Ray's thread)."""
        ref.future().add_done_callback(lambda f: self.post((*event, f)))

    def _run(self) -> None:
        try:
            for node in self._nodes.values():
                if node.state == "up":
                    self._poll(node)
            while True:
                self._wake.clear()
                self.sleeping = False
                if self._handle_events():
                    return
                self._deal()
                self._steal()
                self._check_idle()
                self.sleeping = True
                if self._inbox or (self.queue and self._hungry()):
                    continue
                self._wake.wait(IDLE_WAIT_S)
        except BaseException as e:  # noqa: B036 - a bug here must not hang every future
            self.broken = self.broken or f"the pool's dispatcher failed: {e!r}"
            self.closed = True
            self._fail_everything(broken_pool(self.broken))
            self.idle.set()
            raise

    def _handle_events(self) -> bool:
        """Process the inbox; True when told to stop (nodes stopped)."""
        while self._inbox:
            ev = self._inbox.popleft()
            kind = ev[0]
            if kind == "poll":
                self._on_poll(ev[1], ev[2], ev[3])
            elif kind == "steal":
                self._on_steal(ev[1], ev[2], ev[3], ev[4], ev[5])
            elif kind == "ack":
                self._on_ack(ev[1], ev[2], ev[3])
            elif kind == "started":
                self._on_started(ev[1], ev[2], ev[3])
            elif kind == "cancel_queued":
                for t in self.queue:
                    if not t.dealt:
                        t.fut.cancel()
            elif kind == "stop":
                self._stop_nodes()
                return True
        return False

    def _hungry(self) -> bool:
        p = self._policy
        return any(n.state == "up" and len(n.tasks) < p.low_water * p.window(n.workers)
                   for n in self._nodes.values())

    def _up(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.state == "up"]

    def _deal(self) -> None:
        if not self.queue:
            return
        up = self._up()
        if not up:
            return
        by_key = {n.node_id: n for n in up}
        for load, k in deal([n.view() for n in up], len(self.queue), self._policy):
            batch = self._take(k)
            if not batch:
                return
            self._send(by_key[load.key], batch)

    def _take(self, k: int) -> list[Task]:
        """Up to ``k`` tasks off the queue, skipping cancelled ones."""
        q = self.queue
        out: list[Task] = []
        while q and len(out) < k:
            t = q.popleft()
            if not t.dealt:
                if not t.fut.set_running_or_notify_cancel():
                    continue  # cancelled while queued
                t.dealt = True
                self.c["submitted"] += 1
            out.append(t)
        return out

    def _send(self, node: Node, batch: list[Task]) -> None:
        fns = None
        keys = {t.fkey for t in batch if t.fkey >= 0} - node.fns_sent
        if keys:
            fns = {k: self._fn_data[k] for k in keys}
            node.fns_sent |= keys
        refs: list[Any] = []
        items = []
        for t in batch:
            node.tasks[t.tid] = t
            if t.bufs is None:
                items.append((t.tid, t.fkey, t.data, -1))
            else:
                items.append((t.tid, t.fkey, t.data, len(refs)))
                refs.append(t.bufs)
        blob, _ = payload.pack(items)
        ref = node.actor.submit.remote(fns, blob, refs or None)
        self._on_done(ref, ("ack", node, node.incarnation))
        node.c["dealt"] += len(batch)
        node.c["batches"] += 1
        self.c["batches"] += 1

    def _poll(self, node: Node) -> None:
        self._on_done(node.actor.poll.remote(POLL_WAIT_S), ("poll", node, node.incarnation))

    def _on_poll(self, node: Node, inc: int, f: cf.Future) -> None:
        if inc != node.incarnation or node.state != "up":
            return
        try:
            blob, bufs, _info = f.result()
            results = payload.unpack(blob, bufs)
        except Exception as e:
            self._node_failed(node, e)
            return
        node.c["polls"] += 1
        if results:
            node.load.steal_blocked = False
            self._resolve(node, results)
        self._poll(node)

    def _resolve(self, node: Node, results: list[tuple[int, int, Any]]) -> None:
        from shmrt.errors import WorkerCrashed

        tasks = node.tasks
        done = failed = crashed = 0
        for tid, status, value in results:
            t = tasks.pop(tid, None)
            if t is None:
                continue  # already re-dealt (a steal that lost the race cannot happen; defensive)
            fut = t.fut
            if fut._state in DONE:
                continue
            try:
                if status == RESULT_OK:
                    fut.set_result(value)
                    done += 1
                else:
                    exc, tb = value
                    if tb:
                        from shmrt.errors import RemoteTraceback

                        exc.__cause__ = RemoteTraceback(tb)
                    fut.set_exception(exc)
                    failed += 1
                    crashed += isinstance(exc, WorkerCrashed)
            except cf.InvalidStateError:
                pass
        node.c["completed"] += done
        node.c["failed"] += failed
        self.c["completed"] += done
        self.c["failed"] += failed
        self.c["crashed"] += crashed

    def _on_ack(self, node: Node, inc: int, f: cf.Future) -> None:
        if inc != node.incarnation or node.state != "up":
            return
        try:
            f.result()
        except Exception as e:  # the batch never reached the runtime: the node is unusable
            self._node_failed(node, e)

    def _steal(self) -> None:
        up = self._up()
        pick = pick_steal([n.view() for n in up], len(self.queue), self._policy)
        if pick is None:
            return
        by_key = {n.node_id: n for n in up}
        thief, victim = by_key[pick[0].key], by_key[pick[1].key]
        thief.load.stealing = victim.load.stealing = True
        ref = victim.actor.steal.remote(pick[2])
        self._on_done(ref, ("steal", thief, thief.incarnation, victim, victim.incarnation))

    def _on_steal(self, thief: Node, t_inc: int, victim: Node, v_inc: int,
                  f: cf.Future) -> None:
        if t_inc == thief.incarnation:
            thief.load.stealing = False
        if v_inc == victim.incarnation:
            victim.load.stealing = False
        if v_inc != victim.incarnation or victim.state != "up":
            return  # the victim died meanwhile: its tasks were handled then
        try:
            tids = f.result()
        except Exception as e:
            self._node_failed(victim, e)
            return
        if not tids:
            victim.load.steal_blocked = True
            return
        moved = [victim.tasks.pop(tid) for tid in tids if tid in victim.tasks]
        victim.c["stolen_from"] += len(moved)
        self.c["stolen"] += len(moved)
        self.c["steals"] += 1
        if t_inc == thief.incarnation and thief.state == "up":
            thief.c["stolen_to"] += len(moved)
            thief.c["steals"] += 1
            self._send(thief, moved)
        else:
            self.queue.extendleft(reversed(moved))

    # ---- node deaths -------------------------------------------------------------------
    def _node_failed(self, node: Node, why: BaseException) -> None:
        """The node's actor died (or cannot be used): re-deal or fail its
        tasks, restart it if its Ray node lives."""
        if node.state in ("dead", "stopped"):
            return
        node.state = "dead"
        node.c["deaths"] += 1
        self.c["node_deaths"] += 1
        self._kill(node)
        reason = f"{type(why).__name__}: {str(why).splitlines()[0] if str(why) else ''}"[:300]
        tasks, node.tasks = list(node.tasks.values()), {}
        again = []
        for t in tasks:
            t.attempts += 1
            if t.attempts <= t.retries:
                again.append(t)
            elif t.fut._state not in DONE:
                node.c["lost"] += 1
                self.c["crashed"] += 1
                self.c["failed"] += 1
                try:
                    t.fut.set_exception(NodeCrashed(node.node_id, node.name, node.pid,
                                                    t.attempts, reason))
                except cf.InvalidStateError:
                    pass
        self.c["retried"] += len(again)
        self.queue.extendleft(reversed(again))
        if not self.closed and node.restarts < self._node_restarts \
                and self._ray_node_alive(node.node_id):
            node.restarts += 1
            self._on_done(self._spawn_actor(node), ("started", node, node.incarnation))
        elif not any(n.state in ("up", "starting") for n in self._nodes.values()):
            self._no_nodes_left(reason)

    def _on_started(self, node: Node, inc: int, f: cf.Future) -> None:
        if inc != node.incarnation or node.state != "starting":
            return
        try:
            info = f.result()
        except Exception as e:
            node.state = "up"  # so that _node_failed counts it and decides on a restart
            self._node_failed(node, e)
            return
        self._started(node, info)
        self._poll(node)

    def _ray_node_alive(self, node_id: str) -> bool:
        try:
            return any(n["NodeID"] == node_id and n.get("Alive") for n in self._ray.nodes())
        except Exception:
            return False

    def _no_nodes_left(self, reason: str) -> None:
        self.broken = f"every node of the Ray pool died (last: {reason})"
        self.closed = True
        self._fail_everything(broken_pool(self.broken))

    def _fail_everything(self, exc: BaseException) -> None:
        """Fail every queued and dealt task (dispatcher thread)."""
        tasks = list(self.queue)
        self.queue.clear()
        for n in self._nodes.values():
            tasks.extend(n.tasks.values())
            n.tasks = {}
        for t in tasks:
            if t.fut._state not in DONE:
                try:
                    t.fut.set_exception(exc)
                except cf.InvalidStateError:
                    pass

    def _check_idle(self) -> None:
        if self.closed and not self.queue \
                and not any(n.tasks for n in self._nodes.values()):
            self.idle.set()

    # ---- stop ---------------------------------------------------------------------------
    def _stop_nodes(self) -> None:
        """Graceful stop of every node runtime (its segment is unlinked),
        then kill the actors; whatever is still pending fails."""
        ray = self._ray
        nodes = [n for n in self._nodes.values() if n.state in ("up", "starting")]
        refs = []
        for n in nodes:
            try:
                refs.append(n.actor.shutdown.remote())
            except Exception:
                pass
        if refs:
            try:
                ray.wait(refs, num_returns=len(refs), timeout=STOP_TIMEOUT_S)
            except Exception:
                pass
        for n in nodes:
            n.state = "stopped"
        self.kill_actors()
        self._fail_everything(broken_pool("the pool was shut down"))
        self.idle.set()

    def _kill(self, node: Node) -> None:
        try:
            self._ray.kill(node.actor, no_restart=True)
        except Exception:
            pass

    def kill_actors(self) -> None:
        for n in self._nodes.values():
            if n.actor is not None:
                self._kill(n)

    # ---- introspection -------------------------------------------------------------------
    def statistics(self, timeout: float) -> dict[str, Any]:
        """See RayPool.statistics (any thread: the counters are read as they are)."""
        nodes = self.nodes
        up = [n for n in nodes if n.state == "up" and not self.stopped]
        refs = [n.actor.stats.remote() for n in up]
        if refs:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=timeout)
            for n, r in zip(up, refs, strict=True):
                if r in ready:
                    try:
                        n.runtime_stats = self._ray.get(r)
                    except Exception:
                        pass
        per = {}
        total: dict[str, int] = {"submitted": 0, "completed": 0, "crashed": 0, "retried": 0}
        for n in nodes:
            rs = n.runtime_stats or {}
            per[n.node_id] = dict(n.c, name=n.name, state=n.state, workers=n.workers,
                                  backlog=len(n.tasks), pid=n.pid, restarts=n.restarts,
                                  runtime=rs)
            for k in total:
                total[k] += int(rs.get(k, 0))
        workers = sum(n.workers for n in nodes if n.state == "up")
        return dict(self.c, backend="ray", queued=len(self.queue),
                    backlog=sum(len(n.tasks) for n in nodes), workers=workers,
                    nodes=per, runtime=total)


def broken_pool(why: str) -> BaseException:
    from shmrt.errors import BrokenPool

    return BrokenPool(why)
