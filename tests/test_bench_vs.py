"""Smoke tests of ``shmrt bench --vs all``, the growth series and ``--plot``.

CI has none of the optional peers (loky, mpire, Dask, Ray) and maybe no
matplotlib: ``--vs all`` must then skip those peers with a note and still
run; a cheap in-process stand-in (a thread pool) plays an extra peer so the
many-peer table, the growth series and the JSON are exercised without them.
The chart test draws PNGs from a small hand-made result (skipped when
matplotlib is missing).  Only structure is checked, never timings.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shmrt.tools.bench import cli as bench_cli
from shmrt.tools.bench import compare, growth, peers_more, runner
from shmrt.tools.bench.peers import Peer
from shmrt.tools.bench.progress import Progress

EXTRA = ("loky", "mpire", "dask", "ray")


class ThreadPeer(Peer):
    """A stand-in extra peer: threads, no processes, nothing to install."""

    key = "threads"
    label = "threads"
    description = "concurrent.futures.ThreadPoolExecutor(workers) (test stand-in)"
    store_label = "threads, put once (test)"

    def start(self) -> None:
        pool = cf.ThreadPoolExecutor(self.workers)
        self.pool = pool
        self.submit = pool.submit
        self.result = lambda fut: fut.result(60)

    def _close(self) -> None:
        self.pool.shutdown(wait=True)

    def put(self, obj: Any) -> Any:
        return obj

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int | None
    ) -> list[Any]:
        return list(self.pool.map(fn, items))


@pytest.fixture
def no_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend none of the optional peers is installed."""
    real = peers_more.missing_reason

    def missing(key: str) -> str | None:
        return "not installed (test)" if key in EXTRA else real(key)

    monkeypatch.setattr(peers_more, "missing_reason", missing)
    monkeypatch.setattr(runner, "missing_reason", missing)


@pytest.fixture
def thread_peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setitem(peers_more.ALL_PEER_CLASSES, "threads", ThreadPeer)
    keys = (*peers_more.ALL_PEER_KEYS, "threads")
    monkeypatch.setattr(peers_more, "ALL_PEER_KEYS", keys)
    monkeypatch.setattr(runner, "ALL_PEER_KEYS", keys)
    yield "threads"


def _positive(x: Any) -> bool:
    return isinstance(x, float | int) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_resolve_peers(no_extras: None) -> None:
    keys, skipped = peers_more.resolve_peers("all")
    assert keys == ["shmrt", "ppe", "mp"]
    assert set(skipped) == set(EXTRA)
    keys, skipped = peers_more.resolve_peers("ray,ppe")
    assert keys == ["shmrt", "ppe"] and list(skipped) == ["ray"]
    with pytest.raises(ValueError, match="unknown peer"):
        peers_more.resolve_peers("nope")


def test_no_peer_package_imported_by_default() -> None:
    code = (
        "import sys; import shmrt.tools.bench.runner, shmrt.tools.bench.compare, "
        "shmrt.tools.bench.growth, shmrt.tools.bench.plots; "
        "bad = [m for m in ('loky', 'mpire', 'dask', 'distributed', 'ray', 'matplotlib') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(180)
def test_vs_all_skips_missing_peers(
    no_extras: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vs.json"
    rc = bench_cli.main(["rtt", "--vs", "all", "--repeat", "1", "--scale", "0.01",
                      "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert "rtt" in printed.out
    for key in EXTRA:
        assert f"skipped: {peers_more.ALL_PEER_CLASSES[key].label}" in printed.out
    data = json.loads(out.read_text())
    assert data["config"]["peers"] == ["shmrt", "ppe", "mp"]
    assert set(data["config"]["skipped_peers"]) == set(EXTRA)
    assert data["config"]["growth"] == [] and data["config"]["relay"] is False
    assert data["env"]["packages"]["shmrt"] and data["env"]["all_packages"]
    row = data["workloads"]["rtt"]["rows"][0]
    assert all(_positive(row["values"][k]) for k in ("shmrt", "ppe", "mp"))


def test_passes_isolate_daemon_peers() -> None:
    assert compare.passes(["shmrt", "ppe", "loky", "dask", "ray"]) == [
        ["shmrt", "ppe", "loky"], ["shmrt", "dask"], ["shmrt", "ray"]]
    assert compare.passes(["shmrt", "ray"]) == [["shmrt", "ray"]]
    assert compare.passes(["shmrt", "ppe"]) == [["shmrt", "ppe"]]


@pytest.mark.timeout(240)
def test_run_all_with_extra_peer_and_growth(
    thread_peer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in runs in a pass of its own (as Dask and Ray do), then merges."""
    pytest.importorskip("numpy")
    monkeypatch.setattr(compare, "ISOLATED", (thread_peer,))
    path = tmp_path / "all.json"
    res = compare.run_all(
        ["rtt", "payload"], ["spawn_many", "map", "payload"], False,
        peers=["shmrt", "mp", thread_peer], skipped_peers={"ray": "not installed (test)"},
        workers=2, repeat=1, scale=0.001, budget_s=30.0, json_path=str(path), progress=None,
        isolate=False,  # the stand-in exists only in this process
    )
    data = json.loads(path.read_text())
    assert data["config"]["peers"] == ["shmrt", "mp", "threads"]
    assert data["config"]["skipped_peers"] == {"ray": "not installed (test)"}
    assert data["config"]["passes"] == [["shmrt", "mp"], ["shmrt", "threads"]]
    rtt = res["workloads"]["rtt"]
    assert set(rtt["peers"]) == {"shmrt", "mp", "threads"}
    assert rtt["shmrt_in_pass"]["threads"]["samples"]  # shmrt beside the stand-in, kept
    assert _positive(rtt["rows"][0]["speedup"]["threads"])
    assert rtt["target_status"] in ("PASS", "MISS", "n/a")
    pay = res["workloads"]["payload"]
    assert [r["label"] for r in pay["rows"]] == ["throughput", "object store"]
    store = pay["rows"][1]
    assert store["base_key"] == "time_per_op_s"
    assert _positive(store["values"]["threads"]) and _positive(store["values"]["shmrt"])
    assert _positive(store["speedup"]["threads"])
    series = res["growth"]["series"]
    assert set(series) == {"spawn_many", "map", "payload"}
    assert list(series["payload"]["lines"]) == ["shmrt", "shmrt:store", "mp", "threads",
                                                "threads:store"]
    assert "threads" in series["spawn_many"]["shmrt_in_pass"]
    for sres in series.values():
        for line in sres["lines"].values():
            assert line["error"] is None, line.get("traceback")
            for pt in line["points"].values():
                assert pt.get("skipped") or _positive(pt["median_per_unit_s"])
    text = compare.format_all(res)
    assert "vs threads" in text
    assert "threads (r)" in runner.format_table(res, compact=True)  # cells: value (ratio)
    assert "growth spawn_many" in text and "growth payload" in text
    md = compare.format_all(res, markdown=True)
    assert "| workload |" in md and "|---|" in md


def test_growth_sizes() -> None:
    sizes = growth.sizes_for(growth.SERIES["spawn_many"], 1.0)
    assert sizes == [10**3, 10**4, 10**5, 10**6]
    pay = growth.sizes_for(growth.SERIES["payload"], 1.0)
    assert pay[0] == 1024 and pay[-1] == 256 << 20
    assert all(n >= 1024 for n in growth.sizes_for(growth.SERIES["payload"], 0.001))


def test_relay_table_from_result() -> None:
    med = {"pps": 1000.0, "p50_us": 10.0, "p99_us": 20.0, "out_of_order": 0,
           "shmrt_speedup": 1.0}
    relay = {"repeat": 1, "workers": 2, "runs": {
        "heavy": {"transform": "t", "packets": 500,
                  "median": {"shmrt": med, "asyncio": {**med, "shmrt_speedup": 2.0}},
                  "samples": {"shmrt": [med], "asyncio": [med]}}}}
    text = compare.format_relay(relay)
    assert "shmrt relay" in text and "2.00x" in text
    assert "no Ray or Dask relay" in text


def test_progress_bar_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    prog = Progress(stream, total=4)
    prog.update("working")
    prog.advance(2)
    prog.line("done one")
    text = stream.getvalue()
    assert "[" in text and " 50%" in text and "2/4" in text and "done one\n" in text
    plain = io.StringIO()
    p2 = Progress(plain, total=2)
    p2.update("invisible")
    p2.advance()
    p2.line("half")
    assert plain.getvalue() == " 50% half\n"


def _tiny_result() -> dict[str, Any]:
    def peer(cost: float) -> dict[str, Any]:
        return {"samples": [{"median_s": cost}, {"median_s": cost * 1.2}], "error": None}

    row = {"label": "median latency", "unit": "µs", "cost_key": "median_s",
           "base_key": "median_s", "values": {"shmrt": 5.0, "ppe": 150.0, "dask": 10_000.0},
           "speedup": {"ppe": 30.0, "dask": 2000.0}, "median_cost": {}}
    pts = {str(n): {"size": n, "median_per_unit_s": 5e-6 * (1 + i)}
           for i, n in enumerate((1000, 10_000))}
    return {
        "config": {"peers": ["shmrt", "ppe", "dask"], "workers": 2, "repeat": 2},
        "env": {"python": "3.x"},
        "workloads": {"rtt": {"summary": "round trip", "params": {}, "rows": [row],
                              "peers": {"shmrt": peer(5e-6), "ppe": peer(150e-6),
                                        "dask": peer(1e-2)}}},
        "growth": {"config": {"budget_s": 120.0}, "series": {"spawn_many": {
            "summary": "N tasks", "unit": "tasks", "cost_unit": "µs/task", "scale_cost": 1e6,
            "sizes": [1000, 10_000],
            "lines": {"shmrt": {"label": "shmrt", "points": pts, "error": None}}}}},
        "relay": {"runs": {"heavy": {"packets": 500, "median": {"shmrt": {"pps": 5e4},
                                                                "plain": {"pps": 1e5}},
                                     "samples": {}}}},
    }


def test_plot_writes_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from shmrt.tools.bench import plots

    src = tmp_path / "tiny.json"
    src.write_text(json.dumps(_tiny_result()))
    out = tmp_path / "charts"
    assert plots.main([str(src), str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["growth_spawn_many.png", "overview.png", "relay.png", "rtt.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size < 200_000


@pytest.mark.timeout(240)
def test_isolated_pass_runs_in_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With more than one pass, each runs in a child process; results merge."""
    monkeypatch.setattr(compare, "ISOLATED", ("mp",))
    path = tmp_path / "child.json"
    res = compare.run_all(
        ["rtt"], ["spawn_many"], False, peers=["shmrt", "ppe", "mp"], workers=2, repeat=1,
        scale=0.001, budget_s=30.0, json_path=str(path), progress=None,
    )
    assert res["config"]["passes"] == [["shmrt", "ppe"], ["shmrt", "mp"]]
    assert [r["returncode"] for r in res["config"]["pass_runs"]] == [0, 0]
    row = res["workloads"]["rtt"]["rows"][0]
    assert all(_positive(row["speedup"][k]) for k in ("ppe", "mp"))
    assert "mp" in res["workloads"]["rtt"]["shmrt_in_pass"]
    assert list(res["growth"]["series"]["spawn_many"]["lines"]) == ["shmrt", "ppe", "mp"]
    assert json.loads(path.read_text())["config"]["pass_runs"][1]["peers"] == ["shmrt", "mp"]
