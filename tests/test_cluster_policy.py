"""The cluster's dealing and stealing policy (shmrt.cluster.stealing), as
pure functions over the driver's view of the nodes -- no Ray needed -- and
the error a user without Ray gets from Pool(backend="ray")."""

from __future__ import annotations

import sys

import pytest

import shmrt
from shmrt.cluster.stealing import NodeLoad, StealPolicy, deal, pick_steal

pytestmark = pytest.mark.timeout(60)


def loads(*backlogs: int, workers: int = 1) -> list[NodeLoad]:
    return [NodeLoad(f"n{i}", workers, b) for i, b in enumerate(backlogs)]


def test_deal_spreads_by_workers_and_fills_windows() -> None:
    p = StealPolicy(window_per_worker=100, batch_max=1000)
    a, b = loads(0, 0)
    assert [(n.key, k) for n, k in deal([a, b], 10, p)] == [("n0", 5), ("n1", 5)]
    # the least loaded first, each up to its window
    a, b = loads(40, 0)
    assert [(n.key, k) for n, k in deal([a, b], 1000, p)] == [("n1", 100), ("n0", 60)]
    # a node over low water (half its window) gets nothing
    a, b = loads(60, 0)
    assert [(n.key, k) for n, k in deal([a, b], 1000, p)] == [("n1", 100)]
    # workers weigh the share: 3 workers take 3/4 of the queue
    big, small = NodeLoad("big", 3, 0), NodeLoad("small", 1, 0)
    assert {n.key: k for n, k in deal([big, small], 8, p)} == {"big": 6, "small": 2}
    assert deal([big, small], 0, p) == []


def test_deal_batch_cap_and_fill_mode() -> None:
    p = StealPolicy(window_per_worker=10_000, batch_max=64)
    a, b = loads(0, 0)
    assert [k for _, k in deal([a, b], 1000, p)] == [64, 64]
    fill = StealPolicy(window_per_worker=10_000, spread=False)
    a, b = loads(0, 0)
    assert [(n.key, k) for n, k in deal([a, b], 120, fill)] == [("n0", 120)]


def test_steal_only_when_dry_and_queue_empty() -> None:
    p = StealPolicy()
    a, b = loads(100, 0)
    thief, victim, k = pick_steal([a, b], 0, p)
    assert (thief.key, victim.key, k) == ("n1", "n0", 49)  # half of the 99 waiting
    assert pick_steal([a, b], 5, p) is None  # the queue will feed the dry node
    assert pick_steal(loads(100, 1), 0, p) is None  # nobody is dry (1 worker, 1 task)
    assert pick_steal(loads(1, 0), 0, p) is None  # the victim's one task is running
    assert pick_steal(loads(100), 0, p) is None  # one node
    assert pick_steal([a, b], 0, StealPolicy(steal=False)) is None


def test_steal_picks_most_waiting_and_respects_flags() -> None:
    p = StealPolicy(steal_min=3, batch_max=10)
    a, b, c = loads(0, 50, 20)
    thief, victim, k = pick_steal([a, b, c], 0, p)
    assert (thief.key, victim.key, k) == ("n0", "n1", 10)  # capped by batch_max
    b.stealing = True  # one steal at a time per node
    assert pick_steal([a, b, c], 0, p)[1].key == "n2"
    c.steal_blocked = True  # handed back nothing last time
    assert pick_steal([a, b, c], 0, p) is None
    assert pick_steal(loads(0, 3), 0, p) is None  # 2 waiting < steal_min


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        StealPolicy(window_per_worker=0)
    with pytest.raises(ValueError):
        StealPolicy(steal_fraction=0)
    with pytest.raises(ValueError):
        StealPolicy(low_water=1.5)


def test_without_ray_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import shmrt.cluster as cluster

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.delitem(cluster.__dict__, "RayPool", raising=False)  # as if never imported
    with pytest.raises(ImportError, match=r"pip install 'shmrt\[ray\]'"):
        shmrt.Pool(backend="ray")


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        shmrt.Pool(backend="dask")


def test_ray_pool_rejects_unknown_options_before_starting() -> None:
    pytest.importorskip("ray")
    from shmrt.cluster import ray_pool

    with pytest.raises(TypeError, match="no_such_option"):
        ray_pool._check_pool_options({"no_such_option": 1})
    with pytest.raises(TypeError, match="backend"):  # a node pool must not be a RayPool again
        ray_pool._check_pool_options({"backend": "ray"})
    ray_pool._check_pool_options({"slots": 1024, "task_timeout": 5.0})  # a node Pool's options
