"""Where the cluster's tasks go: batches dealt by backlog, stealing when a
node runs dry.

Why at the driver: the driver already holds every task it has not dealt
(the cluster-level queue) and sees every batch of results come back, so it
knows each node's *backlog* -- tasks dealt to it and not yet reported
finished -- without asking.  Inside a node, shmrt's own work-stealing
scheduler spreads a batch over the node's workers in microseconds; across
nodes a decision costs a Ray call (~1 ms), so it is made per batch, never
per task.  This module is only the policy (pure functions over the
driver's view, tested without Ray); ``ray_pool`` carries it out.

Dealing (``deal``): a node is *hungry* when its backlog is below
``low_water`` of its window (``window_per_worker`` x its workers).  Hungry
nodes are served least loaded first (backlog per worker); each gets at
most ``window - backlog`` tasks, at most ``batch_max`` per batch and, with
``spread`` (the default), at most its share of the queue in proportion to
its workers -- so 10 queued tasks on two equal nodes go 5 and 5, not 10 and
0.  ``spread=False`` fills the first hungry node's window before the next
(locality first; it is also how the tests make one node hold all the work).

Stealing (``pick_steal``): when the queue is empty and a node has an idle
worker (backlog < workers) it steals from the node with the most *waiting*
tasks (backlog - workers: dealt but, at best, not started).  It asks for
``steal_fraction`` of them (half, as Tokio's steal-half), at least one, at
most ``batch_max``.  The victim's node actor cancels that many of its
newest not-yet-started shmrt futures (``future.cancel()`` succeeds only
before a task starts, so nothing runs twice) and hands their ids back; the
driver deals them to the thief.  One steal at a time per node (as thief or
victim); a victim that handed back nothing is not asked again until its
next results arrive (its backlog was all running).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StealPolicy:
    """The parameters of dealing and stealing (see the module docstring)."""

    window_per_worker: int = 1024
    """Target backlog of a node per shmrt worker: enough to cover a few Ray
    round trips (~1 ms each) of microsecond tasks in large batches;
    stealing corrects it for long ones."""
    batch_max: int = 2048
    """Most tasks in one batch (one Ray call)."""
    low_water: float = 0.5
    """A node gets a new batch when its backlog is below this fraction of its window."""
    spread: bool = True
    """Share the queue among hungry nodes by workers (else fill one node first)."""
    steal: bool = True
    """Steal across nodes when one runs dry and the queue is empty."""
    steal_fraction: float = 0.5
    """Part of the victim's waiting tasks a steal asks for."""
    steal_min: int = 1
    """Steal only from a node with at least this many waiting tasks."""

    def __post_init__(self) -> None:
        if self.window_per_worker < 1 or self.batch_max < 1 or self.steal_min < 1:
            raise ValueError("window_per_worker, batch_max and steal_min must be >= 1")
        if not 0.0 < self.low_water <= 1.0 or not 0.0 < self.steal_fraction <= 1.0:
            raise ValueError("low_water and steal_fraction must be in (0, 1]")

    def window(self, workers: int) -> int:
        return self.window_per_worker * max(1, workers)


@dataclass
class NodeLoad:
    """The driver's view of one node, as far as the policy cares."""

    key: str
    workers: int
    backlog: int
    """Tasks dealt to the node and not yet reported finished."""
    stealing: bool = False
    """A steal involving this node (as thief or victim) is in flight."""
    steal_blocked: bool = False
    """Its last steal as a victim handed back nothing; cleared by its next results."""

    @property
    def waiting(self) -> int:
        """Dealt tasks that, at best, have not started (one runs per worker)."""
        return max(0, self.backlog - self.workers)


def deal(nodes: list[NodeLoad], queued: int, policy: StealPolicy) -> list[tuple[NodeLoad, int]]:
    """How many of ``queued`` tasks each node gets now, as (node, count)
    batches, in the order to send them.  ``nodes`` are the live ones."""
    hungry = [n for n in nodes if n.backlog < policy.low_water * policy.window(n.workers)]
    if not hungry or queued <= 0:
        return []
    if policy.spread:
        hungry.sort(key=lambda n: n.backlog / max(1, n.workers))
    total_workers = sum(max(1, n.workers) for n in hungry)
    left = queued
    out = []
    for n in hungry:
        room = policy.window(n.workers) - n.backlog
        k = min(room, policy.batch_max, left)
        if policy.spread:
            share = -(-queued * max(1, n.workers) // total_workers)  # ceil
            k = min(k, share)
        if k > 0:
            out.append((n, k))
            left -= k
        if left <= 0:
            break
    return out


def pick_steal(nodes: list[NodeLoad], queued: int,
               policy: StealPolicy) -> tuple[NodeLoad, NodeLoad, int] | None:
    """(thief, victim, how many) for one steal, or None."""
    if not policy.steal or queued > 0 or len(nodes) < 2:
        return None
    thieves = [n for n in nodes if not n.stealing and n.backlog < n.workers]
    if not thieves:
        return None
    victims = [n for n in nodes if not n.stealing and not n.steal_blocked
               and n.waiting >= policy.steal_min]
    if not victims:
        return None
    victim = max(victims, key=lambda n: n.waiting)
    thief = min((n for n in thieves if n is not victim), key=lambda n: n.backlog / max(1, n.workers),
                default=None)
    if thief is None:
        return None
    k = max(1, min(policy.batch_max, int(victim.waiting * policy.steal_fraction)))
    return thief, victim, k
