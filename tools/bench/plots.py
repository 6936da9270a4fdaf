"""PNG charts of a ``shmrt bench`` result (``--plot DIR``, or from a saved JSON).

    python -m shmrt.tools.bench.plots RESULT.json DIR

What is drawn, and why that way:

* ``<workload>.png`` -- one chart per core workload, one panel per table
  row, the pools side by side as bars (shmrt first, in its own colour), the
  median as the bar and the spread of the repeats (min..max of the samples)
  as a whisker, so a reader sees how much a figure moved between repeats.
  The y axis goes logarithmic when the largest bar is more than 20x the
  smallest (Dask's 10 ms round trip next to shmrt's ~10 µs), otherwise
  linear from zero so bar heights compare honestly.  Each panel says
  whether higher or lower is better.
* ``overview.png`` -- shmrt's ratio against every peer on every workload's
  main figure (log scale, 1x marked): where shmrt is ahead, and by how much.
* ``growth_<series>.png`` -- cost per task / item / byte against the number
  of tasks / items / bytes, log-log, one line per pool: a flat line is a
  cost that does not grow with the work.  Sizes a pool skipped (over the
  time budget) are simply absent from its line.
* ``relay.png`` -- packets per second per relay, both transforms.

Needs matplotlib (the ``bench`` extra); the Agg backend, no display.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .peers_more import ALL_PEER_CLASSES

__all__ = ["COLOURS", "main", "write_plots"]

DPI = 100
LOG_SPREAD = 20.0  # max / min above which an axis goes logarithmic
COLOURS = {
    "shmrt": "#d62728",
    "ppe": "#1f77b4",
    "mp": "#17becf",
    "loky": "#2ca02c",
    "mpire": "#9467bd",
    "dask": "#ff7f0e",
    "ray": "#8c564b",
    "ray:store": "#c49c94",
}
HIGHER_BETTER = {"tasks/s", "items/s", "GB/s", "pkt/s"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(key: str) -> str:
    base, _, variant = key.partition(":")
    cls = ALL_PEER_CLASSES.get(base)
    if cls is None:
        return key
    return f"{cls.label} (put once)" if variant else cls.label


def _scale_axis(ax: Any, values: list[float]) -> None:
    pos = [v for v in values if v > 0]
    if pos and max(pos) / min(pos) > LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)


def _fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _row_display(workload: str, cost_key: str) -> Any:
    from .scenarios import WORKLOADS

    wk = WORKLOADS.get(workload)
    if wk is None:
        return None
    for row in wk.rows:
        if row.key == cost_key:
            return row.display
    return None


def _bars(ax: Any, names: list[str], keys: list[str], vals: list[float],
          spread: list[tuple[float, float] | None], unit: str, title: str) -> None:
    xs = list(range(len(names)))
    colours = [COLOURS.get(k, "#7f7f7f") for k in keys]
    ax.bar(xs, vals, color=colours, edgecolor="black", linewidth=0.5)
    lo = [v - s[0] if s else 0.0 for v, s in zip(vals, spread, strict=True)]
    hi = [s[1] - v if s else 0.0 for v, s in zip(vals, spread, strict=True)]
    if any(lo) or any(hi):
        ax.errorbar(xs, vals, yerr=[lo, hi], fmt="none", ecolor="black", capsize=3, linewidth=0.8)
    _scale_axis(ax, vals + [s[1] for s in spread if s])
    for x, v, s in zip(xs, vals, spread, strict=True):  # the label sits above the whisker
        ax.annotate(_fmt(v), (x, max(v, s[1]) if s else v), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    better = "higher is better" if unit in HIGHER_BETTER else "lower is better"
    ax.set_ylabel(unit)
    ax.set_title(f"{title}\n({better})", fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def _workload_chart(plt: Any, name: str, wres: dict[str, Any], peers: list[str],
                    params_note: str, out: Path) -> Path | None:
    rows = wres.get("rows") or []
    if wres.get("skipped") or not rows:
        return None
    # a row measured against another row's shmrt cost (payload's object-store
    # row) is drawn as extra bars in that row's panel, labelled
    panels: list[list[dict[str, Any]]] = []
    for row in rows:
        base = row.get("base_key") or row["cost_key"]
        host = next((pn for pn in panels if pn[0]["cost_key"] == base), None)
        if host is not None and base != row["cost_key"]:
            host.append(row)
        else:
            panels.append([row])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 3.8),
                             squeeze=False)
    params = wres.get("params", {})
    for ax, panel in zip(axes[0], panels, strict=True):
        row = panel[0]
        names, keys, vals, spread = [], [], [], []
        for part in panel:
            display = _row_display(name, part["cost_key"])
            for k in peers:
                v = part["values"].get(k)
                if v is None:
                    continue
                key = k if part is row else f"{k}:store"
                names.append(_label(key))
                keys.append(key)
                vals.append(float(v))
                samples = [s.get(part["cost_key"]) for s in wres["peers"][k].get("samples", [])]
                shown = [display(float(c), params) for c in samples
                         if display is not None and isinstance(c, int | float) and c > 0]
                spread.append((min(shown), max(shown)) if len(shown) > 1 else None)
        if not vals:
            ax.set_axis_off()
            continue
        _bars(ax, names, keys, vals, spread, row["unit"], row["label"])
    fig.suptitle(f"{name}: {wres.get('summary', '')}", fontsize=10)
    fig.text(0.01, 0.01, params_note, fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    path = out / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _overview(plt: Any, result: dict[str, Any], peers: list[str], out: Path) -> Path | None:
    names = [n for n, w in result["workloads"].items() if w.get("rows")]
    others = [k for k in peers if k != "shmrt"]
    if not names or not others or "shmrt" not in peers:
        return None
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(names) + 2), 4.2))
    width = 0.8 / len(others)
    allv: list[float] = []
    for i, k in enumerate(others):
        xs, vs = [], []
        for j, n in enumerate(names):
            x = result["workloads"][n]["rows"][0]["speedup"].get(k)
            if x is not None and x > 0:
                xs.append(j + (i - (len(others) - 1) / 2) * width)
                vs.append(float(x))
        allv += vs
        ax.bar(xs, vs, width, label=_label(k), color=COLOURS.get(k, "#7f7f7f"),
               edgecolor="black", linewidth=0.3)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("peer cost / shmrt cost (log)")
    ax.set_title("shmrt vs each peer, main figure of every workload (> 1: shmrt faster)",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    path = out / "overview.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _growth_chart(plt: Any, name: str, sres: dict[str, Any], budget: float,
                  out: Path) -> Path | None:
    if sres.get("skipped") or not sres.get("lines"):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for key, line in sres["lines"].items():
        xs, ys = [], []
        for n in sres["sizes"]:
            m = line["points"][str(n)].get("median_per_unit_s")
            if m is not None:
                xs.append(n)
                ys.append(m * sres["scale_cost"])
        if not xs:
            continue
        style = "--" if ":" in key else "-"
        ax.plot(xs, ys, style, marker="o", label=line["label"].split(",")[0]
                + (" (put once)" if ":" in key else ""),
                color=COLOURS.get(key, "#7f7f7f"), linewidth=2 if key == "shmrt" else 1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    unit = sres["unit"]
    ax.set_xlabel(f"{unit} ({'array size' if unit == 'bytes' else 'N'}, log)")
    ax.set_ylabel(f"cost per {unit[:-1]}, {sres['cost_unit']} (log)")
    ax.set_title(f"growth {name}: {sres['summary']}\nflat = cost per {unit[:-1]} does not grow "
                 f"(lower is better; sizes over the {budget:.0f} s budget omitted)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = out / f"growth_{name}.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _relay_chart(plt: Any, relay: dict[str, Any], out: Path) -> Path | None:
    runs = relay.get("runs")
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.8), squeeze=False)
    colours = {"shmrt": COLOURS["shmrt"], "asyncio": "#bcbd22", "ppe": COLOURS["ppe"],
               "plain": "#7f7f7f"}
    for ax, (label, r) in zip(axes[0], runs.items(), strict=True):
        kinds = list(r["median"])
        vals = [float(r["median"][k]["pps"]) for k in kinds]
        spread = []
        for k in kinds:
            pps = [float(s["pps"]) for s in r.get("samples", {}).get(k, [])]
            spread.append((min(pps), max(pps)) if len(pps) > 1 else None)
        xs = list(range(len(kinds)))
        ax.bar(xs, vals, color=[colours.get(k, "#7f7f7f") for k in kinds], edgecolor="black",
               linewidth=0.5)
        lo = [v - s[0] if s else 0.0 for v, s in zip(vals, spread, strict=True)]
        hi = [s[1] - v if s else 0.0 for v, s in zip(vals, spread, strict=True)]
        ax.errorbar(xs, vals, yerr=[lo, hi], fmt="none", ecolor="black", capsize=3,
                    linewidth=0.8)
        for x, v in zip(xs, vals, strict=True):
            ax.annotate(_fmt(v), (x, v), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=7)
        _scale_axis(ax, vals)
        ax.set_xticks(xs)
        ax.set_xticklabels(kinds, fontsize=8)
        ax.set_ylabel("pkt/s")
        ax.set_title(f"{label} transform, {r['packets']:,} x 1 KiB\n(higher is better)",
                     fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("UDP relay over loopback", fontsize=10)
    fig.tight_layout()
    path = out / "relay.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_plots(result: dict[str, Any], directory: str | os.PathLike[str]) -> list[Path]:
    """Write every chart the result has data for into ``directory``; their paths."""
    plt = _plt()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result["config"]
    peers = [k for k in cfg["peers"] if k in ALL_PEER_CLASSES]
    note = (f"{cfg['workers']} workers per pool, median of {cfg['repeat']} repeat(s), "
            f"whiskers: min..max of the repeats; Python {result['env'].get('python')}")
    paths: list[Path | None] = []
    for name, wres in result.get("workloads", {}).items():
        paths.append(_workload_chart(plt, name, wres, peers, note, out))
    if result.get("workloads"):
        paths.append(_overview(plt, result, peers, out))
    growth = result.get("growth") or {}
    for name, sres in growth.get("series", {}).items():
        paths.append(_growth_chart(plt, name, sres, growth["config"]["budget_s"], out))
    if result.get("relay"):
        paths.append(_relay_chart(plt, result["relay"], out))
    return [p for p in paths if p is not None]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m shmrt.tools.bench.plots RESULT.json DIR", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        result = json.load(f)
    for p in write_plots(result, args[1]):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
