"""shmrt on a real multi-node Ray cluster started on this machine
(ray.cluster_utils.Cluster: a head and one more node, 1 CPU each, on
loopback): the same Executor API, work on both nodes, stealing, a node
killed mid-run with and without retries, payloads, named runtimes, and a
shutdown that leaves no Ray process or segment behind.

The cluster is started once for the module (~5 s) and shut down at its end,
where every process it started must be gone (the suite's leak guard checks
each test's own children and segments)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import cluster_tasks as ct
import helpers
import pytest

import shmrt

# No usage reporting, and every address on loopback: Ray reads this one when
# it is first imported (else it advertises the machine's external address).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
for _k, _v in RAY_ENV.items():
    os.environ.setdefault(_k, _v)
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'shmrt[ray]'")
cluster_utils = pytest.importorskip("ray.cluster_utils", reason="this Ray has no cluster_utils")

from shmrt.cluster import NodeCrashed, StealPolicy  # noqa: E402

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 60
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 << 20, "node_ip_address": "127.0.0.1"}


_descendants = helpers.descendants


def wait_until(pred: Any, timeout: float = 20.0, step: float = 0.02) -> bool:
    """Poll ``pred`` until true or the deadline (a deadline, not a sleep)."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(step)
    return True


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from ray._private import ray_constants

    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    on_lan = ray_constants.ENABLE_RAY_CLUSTER  # Ray was imported before this module
    ray_constants.ENABLE_RAY_CLUSTER = False
    before = _descendants()
    c = cluster_utils.Cluster(initialize_head=True,
                              head_node_args=dict(NODE_ARGS, include_dashboard=False))
    try:
        c.add_node(**NODE_ARGS)
        ray.init(address=c.address, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = on_lan
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        gone = wait_until(lambda: not (_descendants() - before), timeout=30)
        left = _descendants() - before
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert gone, f"Ray processes left after cluster.shutdown(): {sorted(left)}"


@pytest.fixture
def pool(cluster: Any) -> Iterator[Any]:
    p = shmrt.Pool(backend="ray")
    try:
        yield p
    finally:
        p.shutdown(wait=True, cancel_futures=True)


def node_pids(p: Any) -> dict[int, str]:
    """Node actor pid -> Ray node id, for the nodes up."""
    return {n["pid"]: nid for nid, n in p.statistics()["nodes"].items() if n["state"] == "up"}


# ---- the Executor API ----------------------------------------------------------------


def test_submit_map_fork_join(pool: Any) -> None:
    assert len(pool.nodes) == 2 and pool.workers == 2
    assert pool.submit(ct.inc, 41).result(timeout=TIMEOUT) == 42
    assert pool.submit(pow, 3, 4).result(timeout=TIMEOUT) == 81  # a builtin
    assert pool.submit(ct.add, 2, y=5).result(timeout=TIMEOUT) == 7  # keywords
    fs = [pool.submit(ct.inc, i) for i in range(500)]
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=TIMEOUT)) == \
        list(range(1, 501))
    assert list(pool.map(ct.inc, range(10_000), timeout=TIMEOUT)) == list(range(1, 10_001))
    assert list(pool.map(ct.add, range(300), range(300), chunksize=1, timeout=TIMEOUT)) == \
        [2 * i for i in range(300)]
    # fork-join: the children stay on the node of the task that spawned them
    assert pool.submit(ct.fib, 20).result(timeout=TIMEOUT) == ct.fib_seq(20)
    with pytest.raises(ValueError, match="boom") as info:
        pool.submit(ct.fail, "boom").result(timeout=TIMEOUT)
    assert "ValueError: boom" in str(info.value.__cause__)  # the worker's traceback
    st = pool.statistics()
    # 3 + 500 submits, 8 map chunks (4 per worker), 300 items one by one, fib
    assert st["completed"] == 3 + 500 + 8 + 300 + 1 and st["failed"] == 1
    assert st["runtime"]["completed"] >= st["completed"] + 1  # fib's children ran in a runtime


def test_function_from_main_goes_by_value(pool: Any) -> None:
    """A function a script defines (``__main__``, which no node can import)
    travels by value and can spawn itself inside its node."""
    ns: dict[str, Any] = {"__name__": "__main__", "shmrt": shmrt}
    exec("def tri(n):\n"
         "    if n < 8:\n"
         "        return n * (n + 1) // 2\n"
         "    h = shmrt.spawn(tri, n - 1)\n"
         "    return n + h.join()\n", ns)
    assert ns["tri"].__module__ == "__main__"
    assert pool.submit(ns["tri"], 40).result(timeout=TIMEOUT) == 820
    assert list(pool.map(ns["tri"], [3, 9], timeout=TIMEOUT)) == [6, 45]


def test_work_placed_on_both_nodes(pool: Any) -> None:
    pids = node_pids(pool)
    got = [f.result(timeout=TIMEOUT) for f in [pool.submit(ct.where, i, 0.002)
                                               for i in range(200)]]
    assert [i for i, _ in got] == list(range(200))
    ran_on = {pid for _, pid in got}
    assert ran_on == set(pids), "every task ran on one of the two node runtimes, both used"
    st = pool.statistics()
    for nid, n in st["nodes"].items():
        assert n["completed"] > 0 and n["dealt"] == n["completed"] + n["stolen_from"], nid
        assert n["runtime"]["completed"] == n["completed"]  # one shmrt task per task
        assert n["name"].startswith("ray-") and nid[:8] in n["name"]
    assert sum(n["completed"] for n in st["nodes"].values()) == 200


def test_stealing_when_one_node_gets_everything(cluster: Any) -> None:
    """All work is dealt to the first node (spread=False, a window that fits
    it all); the other node runs dry and steals half of what is waiting."""
    policy = StealPolicy(spread=False, window_per_worker=10_000)
    with shmrt.Pool(backend="ray", policy=policy) as p:
        pids = node_pids(p)
        fs = [p.submit(ct.where, i, 0.01) for i in range(120)]
        got = [f.result(timeout=TIMEOUT) for f in fs]
        st = p.statistics()
    assert [i for i, _ in got] == list(range(120))
    nodes = st["nodes"]
    first = max(nodes.values(), key=lambda n: n["dealt"] - n["stolen_to"])
    other = next(n for n in nodes.values() if n is not first)
    assert first["dealt"] == 120 and first["stolen_from"] > 0
    assert other["stolen_to"] == first["stolen_from"] and other["steals"] >= 1
    assert other["dealt"] == other["stolen_to"]  # it never got work any other way
    assert {pid for _, pid in got} == set(pids)  # the thief ran some
    assert st["stolen"] == other["stolen_to"]
    # exactly once: a stolen task was cancelled before it started, never run twice
    assert sum(n["runtime"]["completed"] for n in nodes.values()) == 120


# ---- faults ---------------------------------------------------------------------------


def _kill_second_node_mid_run(p: Any, fn: Any, n: int = 40) -> tuple[list[Any], int, list[int]]:
    """Submit ``n`` 50 ms tasks, SIGKILL one node actor once it has returned
    a result, wait for every future.  Returns (outcomes, killed actor pid,
    that node's shmrt worker pids)."""
    st = p.statistics()
    victim_id, victim = sorted(st["nodes"].items())[1]
    workers = [w["pid"] for w in victim["runtime"]["workers"]]
    fs = [p.submit(fn, i, 0.05) for i in range(n)]
    seen = set()
    for f in cf.as_completed(fs, timeout=TIMEOUT):
        seen.add(f.result()[1])
        if victim["pid"] in seen:
            break
    os.kill(victim["pid"], signal.SIGKILL)
    outcomes = []
    for f in fs:
        try:
            outcomes.append(f.result(timeout=TIMEOUT))  # nothing hangs
        except NodeCrashed as e:
            outcomes.append(e)
    return outcomes, victim["pid"], workers


def test_node_killed_without_retries(pool: Any) -> None:
    outcomes, killed, workers = _kill_second_node_mid_run(pool, ct.where)
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    assert lost, "the killed node had unfinished tasks"
    for e in lost:
        assert isinstance(e, shmrt.WorkerCrashed) and e.pid == killed and e.attempts == 1
        assert e.node in pool.statistics()["nodes"] and e.runtime in str(e)
    assert len(ok) + len(lost) == 40 and all(o[0] == i for i, o in enumerate(outcomes)
                                             if not isinstance(o, BaseException))
    st = pool.statistics()
    assert st["node_deaths"] == 1 and st["crashed"] == len(lost) and st["retried"] == 0
    # the dead runtime's workers followed their coordinator
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{w}") for w in workers), 10)
    # the node is restarted (its Ray node lives) and takes work again
    assert wait_until(lambda: len(pool.nodes) == 2, 60)
    assert [f.result(timeout=TIMEOUT)[0] for f in [pool.submit(ct.where, i) for i in range(20)]] \
        == list(range(20))


def test_node_killed_with_retries(pool: Any) -> None:
    outcomes, killed, _ = _kill_second_node_mid_run(pool, ct.where_retried)
    assert [o[0] for o in outcomes] == list(range(40))  # every task succeeded
    rerun = pool.statistics()["retried"]
    assert rerun >= 1 and pool.statistics()["node_deaths"] == 1
    assert sum(1 for o in outcomes if o[1] == killed) < 40  # the re-runs ran elsewhere


def test_worker_death_inside_a_node_is_local(pool: Any) -> None:
    """A shmrt worker killed inside a node: only its task fails, with
    WorkerCrashed naming that worker (today's local semantics); the node
    stays up."""
    f = pool.submit(ct.die)  # the task kills its own worker
    with pytest.raises(shmrt.WorkerCrashed) as info:
        f.result(timeout=TIMEOUT)
    assert not isinstance(info.value, NodeCrashed)
    assert pool.statistics()["node_deaths"] == 0 and len(pool.nodes) == 2
    assert list(pool.map(ct.inc, range(100), timeout=TIMEOUT)) == list(range(1, 101))


# ---- payloads, names, shutdown -----------------------------------------------------------


def test_large_payloads_through_the_object_store(pool: Any) -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(1 << 19, dtype=np.uint64)  # 4 MiB
    expected = int(np.bitwise_xor.reduce(a))
    assert pool.submit(ct.checksum, a).result(timeout=TIMEOUT) == expected
    b = pool.submit(ct.scaled, a, 3).result(timeout=TIMEOUT)  # a 4 MiB result
    assert b.shape == a.shape and int(b[-1]) == 3 * int(a[-1])
    raw = os.urandom(1 << 20)
    assert pool.submit(ct.echo, raw).result(timeout=TIMEOUT) == raw  # bytes both ways
    mv = pool.submit(ct.echo, memoryview(bytearray(raw))).result(timeout=TIMEOUT)
    assert bytes(mv) == raw
    assert pool.statistics()["payload_puts"] == 4  # one ray.put per task with a big argument


def test_named_runtime_per_node(pool: Any) -> None:
    """Each node runtime is a named shmrt runtime on its node (here all on
    this machine): connect to it, inspect it."""
    from shmrt.tools.inspect import main as inspect_main

    names = sorted(pool.nodes.values())
    assert len(names) == 2
    for name in names:
        with shmrt.connect(name) as c:
            assert c.submit(ct.inc, 1).result(timeout=TIMEOUT) == 2
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"shmrt-inspect-{os.getpid()}.json")
    try:
        with open(out, "w") as f:
            import contextlib

            with contextlib.redirect_stdout(f):
                assert inspect_main([names[0], "--json"]) == 0
        with open(out) as f:
            report = json.load(f)
    finally:
        os.unlink(out)
    assert report["source"]["name"] == names[0] and len(report["workers"]) == 1


def test_shutdown_stops_every_node_runtime(cluster: Any) -> None:
    p = shmrt.Pool(backend="ray")
    names = list(p.nodes.values())
    pids = list(node_pids(p))
    fs = [p.submit(ct.where, i, 0.01) for i in range(50)]
    p.shutdown(wait=True)
    assert all(f.done() and not f.exception() for f in fs)  # pending work finished first
    for name in names:
        assert not os.path.exists(f"/dev/shm/shmrt.{os.geteuid()}.{name}")
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), 30)
    with pytest.raises(RuntimeError, match="after shutdown"):
        p.submit(ct.inc, 1)


def test_dropped_pool_stops_its_nodes(cluster: Any) -> None:
    import gc

    p = shmrt.Pool(backend="ray")
    names = list(p.nodes.values())
    assert p.submit(ct.inc, 1).result(timeout=TIMEOUT) == 2
    del p
    gc.collect()  # the finalizer stops the node runtimes: their segments are gone at once
    for name in names:
        assert not os.path.exists(f"/dev/shm/shmrt.{os.geteuid()}.{name}")


def test_cluster_benchmark_runs(cluster: Any) -> None:
    """The benchmark script, tiny, on this cluster: every workload gets a
    positive figure from each pool and the table names them."""
    from shmrt.tools.bench import cluster as bench

    res = bench.run(scale=0.01, repeat=1, peers=("shmrt-ray", "ray"), progress=lambda s: None)
    assert set(res["workloads"]) == {"spawn_many", "map", "fork_join", "fork_join_coarse"}
    for w in res["workloads"].values():
        assert all(s > 0 for p in ("shmrt-ray", "ray") for s in w["samples"][p])
    table = bench.format_table(res)
    assert "shmrt on Ray" in table and "Ray tasks" in table and "spawn_many" in table
