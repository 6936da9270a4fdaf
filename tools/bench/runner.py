"""Run the ``shmrt bench`` workloads against shmrt and its peers; report.

Method (the same for every workload and pool):

* every pool gets the same number of worker processes (default 2) and
  starts them with the ``spawn`` method;
* before timing, each pool is started and *warmed*: all of its workers are
  running and have executed a task (except the ``startup`` workload, which
  times exactly that);
* every workload is repeated (default 5, ``--quick`` 2); the peers are
  interleaved within each repeat (shmrt, PPE, mp.Pool, shmrt, ...) so that
  slow drifts of machine noise hit all of them alike;
* the table shows the MEDIAN over the repeats and, per peer, the ratio
  ``peer_cost / shmrt_cost`` (> 1: shmrt is faster by that factor);
* ``--json FILE`` writes every raw sample, the medians, the ratios and the
  Python / platform / package versions.

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .peers import PEER_KEYS, Peer
from .peers_more import ALL_PEER_CLASSES, ALL_PEER_KEYS, missing_reason
from .progress import Progress
from .scenarios import WORKLOADS, Workload, numpy_available

__all__ = ["DEFAULT_REPEAT", "QUICK_REPEAT", "format_table", "run"]

DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
SCHEMA = "shmrt-bench/1"


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------


def _version(mod: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):
        return version(mod)
    try:
        m = __import__(mod)
    except Exception:  # noqa: BLE001
        return None
    return str(getattr(m, "__version__", "unknown"))


#: packages whose versions head every result (all installed ones are listed too)
KEY_PACKAGES = (
    "shmrt", "numpy", "msgspec", "rich", "loky", "mpire", "dask", "distributed", "ray",
    "matplotlib", "cloudpickle",
)


def _all_distributions() -> dict[str, str]:
    from importlib.metadata import distributions

    out: dict[str, str] = {}
    for d in distributions():
        name = d.metadata.get("Name")
        if name:
            out[str(name)] = str(d.version)
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def _shmrt_source() -> dict[str, Any]:
    """Where the measured shmrt comes from, and its git commit when it has one."""
    import subprocess

    spec = importlib.util.find_spec("shmrt")
    where = os.path.dirname(spec.origin) if spec and spec.origin else None
    out: dict[str, Any] = {"path": where, "commit": None, "dirty": None}
    if where is None:
        return out
    try:
        git = ["git", "-C", where]
        out["commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True,
                                       text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(git + ["status", "--porcelain", "--", "."], capture_output=True,
                                text=True, timeout=10, check=True).stdout
        out["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def ensure_bytecode() -> dict[str, Any]:
    """Compile shmrt's modules (and this benchmark's, which workers import
    to find the task functions) to ``__pycache__`` if they are not there.

    Why: every worker and the process zygote import them at start-up, and
    without bytecode each start compiles them from source (~15 ms here).  A
    wheel install leaves them compiled (pip byte-compiles), and the peers'
    code is the standard library, compiled when Python was installed; an
    editable install under ``PYTHONDONTWRITEBYTECODE`` (this sandbox sets it)
    never writes them.  Compiling first puts every pool on the same footing;
    the result records how many files were missing.  ``SHMRT_BENCH_BYTECODE=asis``
    in the environment measures them as they are instead."""
    import compileall
    import io
    from contextlib import redirect_stdout

    import shmrt.workers

    import shmrt

    dirs = {os.path.dirname(shmrt.__file__), *shmrt.workers.__path__, os.path.dirname(__file__)}
    missing = 0
    for d in sorted(dirs):
        for name in os.listdir(d):
            if name.endswith(".py"):
                src = os.path.join(d, name)
                if not os.path.exists(importlib.util.cache_from_source(src)):
                    missing += 1
    if os.environ.get("SHMRT_BENCH_BYTECODE") == "asis":
        return {"dirs": sorted(dirs), "missing_before": missing, "mode": "asis", "errors": False}
    ok = True
    with redirect_stdout(io.StringIO()):
        for d in sorted(dirs):
            ok = bool(compileall.compile_dir(d, quiet=2)) and ok
    return {"dirs": sorted(dirs), "missing_before": missing, "mode": "compiled", "errors": not ok}


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "packages": {name: _version(name) for name in KEY_PACKAGES},
        "all_packages": _all_distributions(),
        "shmrt_source": _shmrt_source(),
        "bytecode": ensure_bytecode(),
    }


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("_")}


def workload_steps(peer_keys: Sequence[str], repeat: int) -> int:
    """Progress steps of one workload: a start per peer, then every sample."""
    return len(peer_keys) * (1 + repeat)


def _run_workload(
    wk: Workload,
    peer_keys: Sequence[str],
    workers: int,
    repeat: int,
    scale: float,
    quick: bool,
    prog: Progress,
    index: str,
) -> dict[str, Any]:
    res: dict[str, Any] = {"summary": wk.summary, "peers": {}, "rows": [], "notes": []}
    if wk.needs_numpy and not numpy_available():
        res["skipped"] = "numpy is not installed"
        prog.advance(workload_steps(peer_keys, repeat))
        prog.line(f"{index} {wk.name}: skipped (numpy missing)")
        return res
    params = wk.params(scale, quick)
    res["params"] = _public_params(params)
    peers: dict[str, Peer] = {}
    state: dict[str, dict[str, Any]] = {
        k: {"samples": [], "error": None, "prepare": {}} for k in peer_keys
    }
    res["peers"] = state
    try:
        # start + warm + prepare (untimed)
        for key in peer_keys:
            peer = ALL_PEER_CLASSES[key](workers)
            peers[key] = peer
            if wk.fresh_pool:
                prog.advance()
                continue
            prog.update(f"{index} {wk.name}: starting {peer.label}")
            try:
                peer.start()
                state[key]["warm_worker_pids"] = peer.warm()
                if wk.prepare is not None:
                    state[key]["prepare"] = wk.prepare(peer, params)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                state[key]["error"] = _err(exc)
                state[key]["traceback"] = traceback.format_exc()
            prog.advance()
        # timed repeats, peers interleaved
        t_wk = time.perf_counter()
        for r in range(repeat):
            for key in peer_keys:
                st = state[key]
                if st["error"] is not None:
                    prog.advance()
                    continue
                peer = peers[key]
                if wk.fresh_pool:
                    peer = peers[key] = ALL_PEER_CLASSES[key](workers)
                    peer.fresh_start = True
                prog.update(f"{index} {wk.name}: repeat {r + 1}/{repeat} {peer.label}")
                gc.collect()
                try:
                    st["samples"].append(wk.sample(peer, params, st["prepare"]))
                except Exception as exc:  # noqa: BLE001
                    st["error"] = _err(exc)
                    st["traceback"] = traceback.format_exc()
                prog.advance()
        res["wall_s"] = time.perf_counter() - t_wk
    finally:
        for key, peer in peers.items():
            msg = peer.close()
            if msg and state[key]["error"] is None:
                state[key]["error"] = msg
            state[key]["prepare"] = _public_params(state[key]["prepare"])  # drops live handles
    _summarise(wk, params, res, peer_keys)
    row = res["rows"][0]
    shown = [
        f"{ALL_PEER_CLASSES[k].label} "
        + ("ERROR" if state[k]["error"] else _fmt_value(row["values"].get(k), row["unit"]))
        for k in peer_keys
    ]
    prog.line(
        f"{index} {wk.name} ({row['label']}, {row['unit']}): {' | '.join(shown)}"
        f"  [{res.get('wall_s', 0):.1f}s]"
    )
    return res


def _summarise(
    wk: Workload, params: dict[str, Any], res: dict[str, Any], peer_keys: Sequence[str]
) -> None:
    state = res["peers"]
    for st in state.values():
        costs: dict[str, list[float]] = {}
        for s in st["samples"]:
            for k, v in s.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    costs.setdefault(k, []).append(float(v))
        st["median"] = {k: _median(v) for k, v in costs.items()}
    for row in wk.rows:
        values: dict[str, float | None] = {}
        medians: dict[str, float | None] = {}
        for key in peer_keys:
            m = state[key]["median"].get(row.key) if state[key]["error"] is None else None
            medians[key] = m
            values[key] = None if m is None else row.display(m, params)
        if row.optional and all(v is None for v in values.values()):
            continue
        speedup: dict[str, float | None] = {}
        base_key = row.base_key or row.key
        base = state["shmrt"]["median"].get(base_key) if "shmrt" in state else None
        if "shmrt" in state and state["shmrt"]["error"] is not None:
            base = None
        for key in peer_keys:
            if key == "shmrt":
                continue
            m = medians.get(key)
            speedup[key] = None if (m is None or base is None or base <= 0) else m / base
        res["rows"].append(
            {
                "label": row.label,
                "unit": row.unit,
                "cost_key": row.key,
                "base_key": base_key,
                "values": values,
                "median_cost": medians,
                "speedup": speedup,
                "target": row.target,
                "status": "",
            }
        )
    annotate(wk, params, res, peer_keys)


def annotate(
    wk: Workload, params: dict[str, Any], res: dict[str, Any], peer_keys: Sequence[str]
) -> None:
    """(Re)compute a summarised workload's target verdict and notes."""
    state = res["peers"]
    res["notes"] = []
    if wk.target is not None and "shmrt" in peer_keys:
        got = wk.target(res)  # one verdict, or one per row with a target
        targeted = [r for r in res["rows"] if r["target"]]
        per_row = got if isinstance(got, list) else [got] * len(targeted)
        for r, st in zip(targeted, per_row):  # noqa: B905 - a verdict per targeted row
            r["status"] = st
        res["target_status"] = ("n/a" if "n/a" in per_row else
                                "MISS" if "MISS" in per_row else "PASS")
    if wk.peer_note:
        res["notes"].append(wk.peer_note.format(**params))
    if wk.extra_note is not None:
        extra = wk.extra_note(res)
        if extra:
            res["notes"].append(extra)
    for key in peer_keys:
        if state[key]["error"]:
            res["notes"].append(f"{ALL_PEER_CLASSES[key].label} failed: {state[key]['error']}")


def new_result(
    names: Sequence[str],
    workers: int,
    repeat: int,
    quick: bool,
    scale: float,
    peer_keys: Sequence[str],
    skipped_peers: dict[str, str],
) -> dict[str, Any]:
    """The skeleton of a result: configuration, environment, no workloads yet."""
    started = _dt.datetime.now(_dt.timezone.utc)
    return {
        "schema": SCHEMA,
        "started_at": started.isoformat(timespec="seconds"),
        "config": {
            "workloads": list(names),
            "workers": workers,
            "repeat": repeat,
            "quick": quick,
            "scale": scale,
            "peers": list(peer_keys),
            "skipped_peers": dict(skipped_peers),
            "start_method": "spawn",
            "peer_descriptions": {k: ALL_PEER_CLASSES[k].description for k in peer_keys},
            "statistic": "median over repeats; speedup = peer median cost / shmrt median cost",
        },
        "env": environment(),
        "workloads": {},
    }


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
        f.write("\n")


def run(
    workloads: Sequence[str] | None = None,
    workers: int = 2,
    repeat: int | None = None,
    json_path: str | os.PathLike[str] | None = None,
    quick: bool = False,
    *,
    scale: float = 1.0,
    peers: Sequence[str] | None = None,
    progress: TextIO | Progress | None = sys.stderr,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return the full result (also written as JSON).

    ``workloads``: names from :data:`WORKLOADS` (default: all).  ``repeat``:
    timed repeats per peer (default 5, or 2 with ``quick``).  ``scale``
    multiplies the task counts (tests use a small one).  ``peers``: keys of
    :data:`ALL_PEER_CLASSES` (default ``("shmrt", "ppe", "mp")``); a peer whose
    package is not installed is skipped with a note (``config.skipped_peers``).
    ``progress``: stream for progress lines (``None`` for silence) or a
    :class:`Progress` shared with a larger run.  ``checkpoint(result)`` is
    called after every workload (a long run saves what it has so far).
    """
    names = list(workloads) if workloads else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(
            f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(WORKLOADS)}"
        )
    peer_keys = list(peers) if peers else list(PEER_KEYS)
    bad = [p for p in peer_keys if p not in ALL_PEER_CLASSES]
    if bad:
        raise ValueError(
            f"unknown peer(s): {', '.join(bad)}; known: {', '.join(ALL_PEER_KEYS)}"
        )
    skipped_peers = {k: r for k in peer_keys if (r := missing_reason(k)) is not None}
    peer_keys = [k for k in ALL_PEER_KEYS if k in peer_keys and k not in skipped_peers]
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if repeat is None:
        repeat = QUICK_REPEAT if quick else DEFAULT_REPEAT
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    if scale <= 0:
        raise ValueError("scale must be > 0")

    own_prog = not isinstance(progress, Progress)
    prog = Progress(progress) if not isinstance(progress, Progress) else progress
    if own_prog:
        prog.add_total(len(names) * workload_steps(peer_keys, repeat))
    t0 = time.perf_counter()
    result = new_result(names, workers, repeat, quick, scale, peer_keys, skipped_peers)
    prog.line(
        f"shmrt bench: {len(names)} workload(s), {workers} workers, {repeat} repeat(s), "
        f"peers: {', '.join(ALL_PEER_CLASSES[k].label for k in peer_keys)} (spawn start method)"
    )
    for key, reason in skipped_peers.items():
        prog.line(f"  {ALL_PEER_CLASSES[key].label} skipped: {reason}")
    for i, name in enumerate(names, 1):
        result["workloads"][name] = _run_workload(
            WORKLOADS[name],
            peer_keys,
            workers,
            repeat,
            scale,
            quick,
            prog,
            f"[{i}/{len(names)}]",
        )
        if checkpoint is not None:
            checkpoint(result)
    result["duration_s"] = time.perf_counter() - t0
    if own_prog:
        prog.close()
    if json_path is not None:
        write_json(result, json_path)
    return result


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "ERR"
    if unit in ("tasks/s", "items/s"):
        return f"{v:,.0f}"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "GB/s":
        return f"{v:.2f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _fmt_speedup(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _cell(wres: dict[str, Any], row: dict[str, Any], key: str) -> str:
    """A peer's value: the number, ``ERR`` (the peer failed) or ``-`` (none)."""
    v = row["values"].get(key)
    if v is not None:
        return _fmt_value(v, row["unit"])
    return "ERR" if wres.get("peers", {}).get(key, {}).get("error") else "-"


def render_grid(
    header: list[str], table: list[list[str]], right: set[int], markdown: bool = False
) -> list[str]:
    """Align ``table`` under ``header`` as text columns or a Markdown table."""
    if markdown:

        def md(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        rule = ["---:" if i in right else "---" for i in range(len(header))]
        return [md(header), "|" + "|".join(rule) + "|", *(md(r) for r in table)]
    widths = [
        max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)
    ]

    def fmt(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in table)]


def format_table(
    result: dict[str, Any], *, markdown: bool = False, compact: bool | None = None
) -> str:
    """Render a :func:`run` result (or its JSON) as an aligned text table.

    With more than two peers besides shmrt (``--vs all``) the table is
    *compact*: each peer's cell is ``value (ratio)`` instead of a value
    column and a ratio column.  ``markdown``: a Markdown table and its
    footnotes only (no preamble), for ``docs/benchmarks.md``.
    """
    cfg, env = result["config"], result["env"]
    peer_keys: list[str] = [k for k in cfg["peers"] if k in ALL_PEER_CLASSES]
    others = [k for k in peer_keys if k != "shmrt"]
    labels = {k: ALL_PEER_CLASSES[k].label for k in peer_keys}
    has_shmrt = "shmrt" in peer_keys
    if compact is None:
        compact = has_shmrt and len(others) > 2
    pk = env.get("packages", {})
    out: list[str] = []
    if not markdown:
        out += [
            (
                f"shmrt bench: {cfg['workers']} workers per pool, start method 'spawn' for every "
                f"pool, median of {cfg['repeat']} repeat(s), peers interleaved per repeat, pools "
                "warmed (except startup)"
            ),
            (
                f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
                f"{env['cpu_count']} CPUs; shmrt {pk.get('shmrt')}, numpy {pk.get('numpy')}"
            ),
        ]
        bc = env.get("bytecode")
        if bc and bc["mode"] == "compiled":
            out.append(
                "bytecode: shmrt's modules compiled before timing, as a wheel install leaves them "
                f"({bc['missing_before']} were missing; the peers' standard library is compiled)"
            )
        elif bc:
            out.append(f"bytecode: as found ({bc['missing_before']} of shmrt's modules without it: "
                       "compiled at every start; SHMRT_BENCH_BYTECODE=asis)")
        if compact:
            versions = [f"{labels[k]} {pk.get(k)}" for k in others if pk.get(k)]
            if versions:
                out.append("versions: " + ", ".join(versions))
            for k in others:
                desc = cfg.get("peer_descriptions", {}).get(k, ALL_PEER_CLASSES[k].description)
                out.append(f"{labels[k]:<8}= {desc}")
        else:
            if "ppe" in peer_keys:
                out.append("PPE     = concurrent.futures.ProcessPoolExecutor(mp_context=spawn)")
            if "mp" in peer_keys:
                out.append("mp.Pool = multiprocessing.get_context('spawn').Pool")
        groups = cfg.get("passes") or []
        if len(groups) > 1:
            shown = " | ".join(", ".join(labels.get(k, k) for k in g) for g in groups)
            out.append(f"passes: {shown} -- each pass with its own shmrt; a peer's ratio is "
                       "against shmrt in its pass (the table shows shmrt from the first)")
        for k, reason in cfg.get("skipped_peers", {}).items():
            out.append(f"skipped: {ALL_PEER_CLASSES[k].label if k in ALL_PEER_CLASSES else k} "
                       f"({reason})")
        if has_shmrt and others:
            ratio = "(r)" if compact else "vs X"
            out.append(f"{ratio:<8}= peer's median cost / shmrt's median cost (> 1: shmrt faster)")
        out.append("")

    header = ["workload", "metric", "unit"]
    if compact:
        header += [labels["shmrt"]] + [f"{labels[k]} (r)" for k in others]
        right = set(range(3, 3 + len(peer_keys)))
    else:
        header += [labels[k] for k in peer_keys]
        if has_shmrt:
            header += [f"vs {labels[k]}" for k in others]
        right = set(range(3, 3 + len(peer_keys) + (len(others) if has_shmrt else 0)))
    if has_shmrt:
        header += ["target", "result"]
    header.append("notes")
    table: list[list[str]] = []
    footnotes: list[str] = []
    for name, wres in result["workloads"].items():
        refs = ""
        notes = list(wres.get("notes", []))
        if wres.get("skipped"):
            notes = [f"skipped: {wres['skipped']}"]
        if notes:
            first = len(footnotes) + 1
            footnotes.extend(notes)
            refs = ",".join(str(i) for i in range(first, len(footnotes) + 1))
            refs = f"[{refs}]"
        rows = wres.get("rows") or [{"label": "-", "unit": "", "values": {}, "speedup": {}}]
        skipped = bool(wres.get("skipped"))
        for j, row in enumerate(rows):
            line = [name if j == 0 else "", row["label"], row["unit"]]
            cells = {k: "-" if skipped else _cell(wres, row, k) for k in peer_keys}
            if compact:
                line.append(cells["shmrt"])
                for k in others:
                    x = row["speedup"].get(k)
                    line.append(cells[k] if x is None else f"{cells[k]} ({_fmt_speedup(x)})")
            else:
                line += [cells[k] for k in peer_keys]
                if has_shmrt:
                    line += [_fmt_speedup(row["speedup"].get(k)) for k in others]
            if has_shmrt:
                line += [row.get("target", ""), row.get("status", "")]
            line.append(refs if j == 0 else "")
            table.append(line)
    out += render_grid(header, table, right, markdown)
    if footnotes:
        out.append("")
        sep = "\n" if markdown else ""
        out.extend(f"[{i}] {n}{sep}" for i, n in enumerate(footnotes, 1))
    return "\n".join(out)
