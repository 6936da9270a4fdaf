"""Smoke test of ``shmrt bench``: a tiny run of a few workloads on all pools.

Checks the structure of the result (keys, positive finite numbers, JSON
output, table rendering), never timings: the figures of a tiny run on a
shared CI machine mean nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from shmrt.tools.bench import WORKLOADS, format_table, main, run

PEERS = ("shmrt", "ppe", "mp")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    res = run(
        ["rtt", "map"],
        workers=2,
        repeat=1,
        json_path=path,
        quick=True,
        scale=0.02,
        progress=None,
    )
    return res, path


def _positive(x: Any) -> bool:
    return isinstance(x, float | int) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.mark.timeout(120)
def test_result_structure(result: tuple[dict[str, Any], Path]) -> None:
    res, _ = result
    assert res["schema"] == "shmrt-bench/1"
    assert res["config"]["workers"] == 2
    assert res["config"]["repeat"] == 1
    assert res["config"]["start_method"] == "spawn"
    assert set(res["config"]["peers"]) == set(PEERS)
    assert res["env"]["python"]
    assert set(res["workloads"]) == {"rtt", "map"}
    for name, wres in res["workloads"].items():
        assert not wres.get("skipped"), name
        for peer in PEERS:
            st = wres["peers"][peer]
            assert st["error"] is None, (name, peer, st.get("traceback"))
            assert len(st["samples"]) == 1
        for row in wres["rows"]:
            for peer in PEERS:
                assert _positive(row["values"][peer]), (name, row["label"], peer)
                assert _positive(row["median_cost"][peer]), (name, row["label"], peer)
            for peer in ("ppe", "mp"):
                assert _positive(row["speedup"][peer]), (name, row["label"], peer)
        assert wres.get("target_status") in ("PASS", "MISS")
    rtt = res["workloads"]["rtt"]
    assert [r["label"] for r in rtt["rows"]] == ["median latency", "p99 latency"]
    sample = rtt["peers"]["shmrt"]["samples"][0]
    assert len(sample["raw_latencies_us"]) == rtt["params"]["calls"]
    assert sample["p99_s"] >= sample["median_s"] > 0
    map_peers = res["workloads"]["map"]["peers"]
    assert "chunksize" not in map_peers["shmrt"]["samples"][0]  # automatic batching
    for peer in ("ppe", "mp"):
        assert map_peers[peer]["samples"][0]["chunksize"] in (100, 1000, 5000)


@pytest.mark.timeout(120)
def test_json_and_table(result: tuple[dict[str, Any], Path]) -> None:
    res, path = result
    loaded = json.loads(path.read_text())
    assert (
        loaded["workloads"]["map"]["rows"][0]["values"].keys()
        == res["workloads"]["map"]["rows"][0]["values"].keys()
    )
    table = format_table(loaded)
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    for col in ("shmrt", "PPE", "mp.Pool", "vs PPE", "vs mp.Pool", "target", "result"):
        assert col in header
    assert any(line.startswith("rtt ") for line in lines)
    assert any(line.startswith("map ") for line in lines)
    assert "spawn" in table


@pytest.mark.timeout(120)
def test_cli_peers_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.json"
    rc = main(
        [
            "spawn_many",
            "--peers",
            "ppe",
            "--workers",
            "1",
            "--repeat",
            "1",
            "--scale",
            "0.01",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "spawn_many" in printed
    data = json.loads(out.read_text())
    assert data["config"]["peers"] == ["ppe"]
    assert _positive(data["workloads"]["spawn_many"]["rows"][0]["values"]["ppe"])


def test_cli_rejects_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no_such_workload"]) == 2
    assert "unknown workload" in capsys.readouterr().err


def test_every_workload_has_rows() -> None:
    for name, wk in WORKLOADS.items():
        assert wk.rows, name


def test_targets_are_judged_per_row() -> None:
    """startup's rows have targets of their own: a warm pool that meets its
    target says PASS next to a first pool that misses (the workload says
    MISS)."""
    from shmrt.tools.bench.runner import annotate

    wk = WORKLOADS["startup"]
    rows = [{"label": r.label, "target": r.target, "speedup": {"shmrt": 1.0, "ppe": x},
             "values": {}} for r, x in zip(wk.rows, (1.06, 1 / 0.2), strict=True)]
    res: dict[str, Any] = {"rows": rows, "peers": {k: {"error": None} for k in PEERS}}
    annotate(wk, {}, res, list(PEERS))
    assert [r["status"] for r in res["rows"]] == ["MISS", "PASS"]
    assert res["target_status"] == "MISS"
    rows[0]["speedup"]["ppe"] = 1.3
    annotate(wk, {}, res, list(PEERS))
    assert [r["status"] for r in res["rows"]] == ["PASS", "PASS"] and res["target_status"] == "PASS"
