"""Rich tables for a :class:`~.model.Report` (the default, human output).

Why a renderer of the report and not of the segment: ``--json``, the
tables and ``--watch`` must say the same thing, so the tables only format
what the analysis decided.  Every cell is a ``rich.text.Text`` (never
markup), so nothing read from shared memory can style or escape the
terminal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import model
from .analyze import LINTS

LINT_SEVERITY = {d.name: d.severity for d in LINTS.values()}

VIEWS = ("summary", "workers", "clients", "relay", "slots", "latency", "lints")
# "relay" shows nothing by default for a runtime without a relay
DEFAULT_VIEWS = ("summary", "workers", "relay", "slots", "latency", "lints")
_ABBREV = {
    "RUNNING": "RUN",
    "COMPLETE": "DONE",
    "NOTIFIED": "NOTIF",
    "JOIN_INTEREST": "JOIN",
    "JOIN_WAKER": "WAKER",
    "CANCELLED": "CANCEL",
}


def fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}s"
    if v >= 1:
        return f"{v:.2f}s"
    if v >= 1e-3:
        return f"{v * 1e3:.1f}ms"
    return f"{v * 1e6:.0f}us"


def _t(v: object) -> Text:
    return Text("-" if v is None else str(v))


def _bytes(n: int) -> str:
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f}{unit}" if unit == "B" else f"{v:.1f}{unit}"
        v /= 1024
    return str(n)


def summary_table(r: model.Report) -> Table:
    s, src = r.summary, r.source
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    created = (
        dt.datetime.fromtimestamp(s.created_realtime_ns / 1e9).isoformat(
            sep=" ", timespec="seconds"
        )
        if 0 < s.created_realtime_ns < 1 << 62
        else "?"
    )
    coord = f"pid {s.coordinator_pid} ({'alive' if s.coordinator_alive else 'DEAD'})"
    where = src.path + (" (unlinked)" if src.unlinked else "")
    if src.kind == "snapshot":
        where = f"snapshot of {src.path}"
    rate = "-" if s.tasks_per_s is None else f"{s.tasks_per_s:,.1f}"
    rows: list[tuple[str, str]] = [
        ("runtime", f"{src.name}  [{where}]"),
        ("layout", f"version {s.layout_version}, run state {s.run_state}, epoch {s.epoch}"
                   + (f"  (broken: {s.broken_reason})" if s.broken_reason else "")),
        ("coordinator", coord),
        ("created", f"{created}  (up {fmt_s(s.uptime_s)})"),
        ("workers", f"{s.workers_alive}/{s.n_workers} alive"),
        (
            "slots",
            f"{s.slots_used} used, {s.slots_free} free of {s.n_slots} "
            f"({s.slots_referenced} referenced)",
        ),
        (
            "tasks",
            f"{s.submitted} submitted, {s.completed} completed, {s.crashed} crashed, "
            f"{s.retried} retried; {rate} tasks/s",
        ),
        (
            "queues",
            f"inject {s.inject_depth}; idle: {s.idle_unparked} unparked, "
            f"{s.idle_searching} searching",
        ),
        ("clients", f"{s.clients_connected} connected; {s.functions_registered} functions"),
        (
            "arena",
            f"{_bytes(s.arena_live_bytes)} live, {_bytes(s.arena_carved_bytes)} carved "
            f"of {_bytes(s.arena_size)}",
        ),
    ]
    if src.torn_read_retries or src.unstable_slots:
        rows.append(
            (
                "torn reads",
                f"{src.torn_read_retries} retries, {len(src.unstable_slots)} unstable slots",
            )
        )
    for k, v in rows:
        t.add_row(Text(k), Text(v))
    return t


def _table(title: str, cols: Sequence[str], left: Sequence[str] = ()) -> Table:
    t = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, padding=(0, 1)
    )
    for c in cols:
        t.add_column(c, justify="left" if c in left else "right", no_wrap=c not in left)
    return t


def workers_table(r: model.Report) -> Table:
    t = _table(
        "workers",
        (
            "id",
            "pid",
            "state",
            "queue",
            "lifo",
            "current",
            "for",
            "tasks",
            "steals",
            "tries",
            "parks",
            "wakes",
            "held",
        ),
        left=("state",),
    )
    for w in r.workers:
        q = f"{w.queue_depth}{'*' if w.queue_steal_in_progress else ''}"
        state = w.state if w.alive or not w.pid else f"{w.state} DEAD"
        t.add_row(
            *map(
                _t,
                (
                    w.id,
                    w.pid,
                    state,
                    q,
                    w.lifo_slot,
                    w.current_slot,
                    fmt_s(w.current_for_s) if w.current_slot is not None else None,
                    w.tasks_run,
                    w.steals,
                    w.steal_attempts,
                    w.parks,
                    w.wakeups,
                    w.held_blocks,
                ),
            )
        )
    t.caption = ("queue* = a steal is in progress; tries = steal attempts; "
                 "held = arena blocks its views hold (shared arrays, payloads)")
    return t


def clients_table(r: model.Report) -> Table:
    t = _table("clients", ("id", "pid", "alive", "submitted", "harvested", "ring", "held"))
    for c in r.clients:
        t.add_row(
            *map(
                _t,
                (c.id, c.pid, "yes" if c.alive else "no", c.submitted, c.harvested, c.ring_depth,
                 c.held_blocks),
            )
        )
    return t


def relay_view(r: model.Relay) -> Group:
    g = Table.grid(padding=(0, 2))
    g.add_column(style="bold")
    g.add_column()
    d = r.drops
    rows = [
        (
            "relay budget",
            f"{r.budget_used}/{r.budget_capacity} used ({r.budget_avail} free)",
        ),
        (
            "relay waiters",
            f"{r.waiters_in_use} of {r.waiter_entries} entries in use, {r.fifo_tokens} FIFO tokens",
        ),
        (
            "waiter counters",
            f"{r.registrations} registrations, {r.wakes} wakes, {r.recheck} re-checks, "
            f"{r.spurious} spurious, {r.passed_on} passed on, {r.timeouts} timeouts, "
            f"{r.pending_with_capacity} pending with capacity",
        ),
        ("relay sends", f"{r.fast} without waiting; {r.full} refused (full)"),
        (
            "relay drops",
            f"{d.filtered} filtered, {d.error} errors, {d.crashed} crashed, {d.full} full, "
            f"{d.in_doubt} in doubt, {d.kernel} kernel (socket full), {d.no_space} no space",
        ),
    ]
    for k, v in rows:
        g.add_row(Text(k), Text(v))
    t = _table(
        "send rings",
        (
            "ring",
            "pid",
            "depth",
            "waitlist",
            "backlog",
            "pushed",
            "popped",
            "parked",
            "unparked",
            "pwc",
            "sent",
            "filtered",
            "errors",
            "crashed",
        ),
    )
    for x in r.rings:
        t.add_row(
            *map(
                _t,
                (
                    x.id,
                    x.pid or None,
                    f"{x.depth}/{x.capacity}",
                    x.waitlist,
                    x.backlog,
                    x.pushed,
                    x.popped,
                    x.waitlist_registrations,
                    x.waitlist_wakes,
                    x.pending_with_capacity,
                    x.sent,
                    x.filtered,
                    x.errors,
                    x.crashed,
                ),
            )
        )
    t.caption = (
        "depth = packets on the ring; waitlist = packets parked because the ring was full; "
        "backlog = reorder buffer; parked/unparked = waitlist registrations/wakes; "
        "pwc = pending with capacity (must stay 0)"
    )
    parts: list[RenderableType] = [g, t]
    if r.waiters:
        w = _table("relay waiters (entries in use)", ("entry", "pid", "state", "gen"), ("state",))
        for e in r.waiters:
            w.add_row(*map(_t, (e.index, e.pid, e.state, e.gen)))
        parts.append(w)
    return Group(*parts)


def _owner(s: model.Slot) -> str | None:
    if s.owner_worker is None:
        return None
    dead = "" if s.owner_alive else " DEAD"
    return f"w{s.owner_worker}/{s.owner_pid}{dead}"


def slots_table(slots: Sequence[model.Slot], limit: int) -> Table:
    packets = any(s.kind == "packet" for s in slots[:limit])
    cols = ["slot", "state", "refs", "function", "owner", "holder", "age", "wait", "run", "att"]
    cols += ["packet"] if packets else ["parent"]
    cols.append("where")
    t = _table(
        f"slots ({len(slots)} shown)",
        cols,
        left=("state", "function", "owner", "holder", "packet", "where"),
    )
    for s in slots[:limit]:
        if not packets:
            last: object = s.parent
        elif s.kind == "packet":
            last = f"flow {s.flow:#x} seq {s.seq}"
        else:
            last = f"{s.kind}, parent {s.parent}" if s.parent is not None else s.kind
        t.add_row(
            *map(
                _t,
                (
                    s.index,
                    "|".join(_ABBREV.get(f, f) for f in s.flags),
                    s.refcount,
                    s.function or (f"fn {s.function_id}" if s.function_id is not None else None),
                    _owner(s),
                    s.holder,
                    fmt_s(s.age_s),
                    fmt_s(s.queue_wait_s),
                    fmt_s(s.run_s),
                    s.attempts,
                    last,
                    ", ".join(s.where) or None,
                ),
            )
        )
    if len(slots) > limit:
        t.caption = f"{len(slots) - limit} more not shown (--limit)"
    return t


def slots_tree(slots: Sequence[model.Slot], limit: int) -> Tree:
    """Spawn trees: each slot under its parent (when the parent is shown too)."""
    by_idx = {s.index: s for s in slots}
    kids: dict[int, list[model.Slot]] = {}
    roots: list[model.Slot] = []
    for s in slots:
        if s.parent is not None and s.parent in by_idx and s.parent != s.index:
            kids.setdefault(s.parent, []).append(s)
        else:
            roots.append(s)
    tree = Tree(Text(f"spawn trees ({len(slots)} slots)"))
    seen: set[int] = set()
    shown = 0

    def label(s: model.Slot) -> Text:
        return Text(
            f"slot {s.index}  {'|'.join(_ABBREV.get(f, f) for f in s.flags)}  "
            f"{s.function or '?'}  age {fmt_s(s.age_s)}"
            + (f"  on {_owner(s)}" if s.owner_worker is not None else "")
        )

    def add(node: Tree, s: model.Slot) -> None:
        nonlocal shown
        if s.index in seen or shown >= limit:
            return
        seen.add(s.index)
        shown += 1
        child = node.add(label(s))
        for k in kids.get(s.index, []):
            add(child, k)

    for s in roots:
        add(tree, s)
    for s in slots:  # members of a parent cycle (corrupt) are not under any root
        add(tree, s)
    return tree


def latency_table(r: model.Report) -> Table:
    t = _table("latency (from slot timestamps)", ("", "samples", "p50", "p90", "p99"), left=("",))
    for name, p in (("queue wait", r.latency.queue_wait), ("run time", r.latency.run)):
        t.add_row(*map(_t, (name, p.count, fmt_s(p.p50_s), fmt_s(p.p90_s), fmt_s(p.p99_s))))
    return t


PER_LINT = 10  # text output shows this many of each lint; --json lists all


def _capped(lints: Iterable[model.Lint], per_lint: int) -> tuple[list[model.Lint], dict[str, int]]:
    shown: list[model.Lint] = []
    seen: dict[str, int] = {}
    for x in lints:
        seen[x.name] = seen.get(x.name, 0) + 1
        if seen[x.name] <= per_lint:
            shown.append(x)
    return shown, {k: n - per_lint for k, n in seen.items() if n > per_lint}


def lint_lines(lints: Iterable[model.Lint], per_lint: int = PER_LINT) -> list[str]:
    shown, more = _capped(lints, per_lint)
    out = [f"{x.severity}[{x.name}]: {x.message} (hint: {x.hint})" for x in shown]
    out += [
        f"{LINT_SEVERITY.get(k, 'error')}[{k}]: ... and {n} more (--json lists all)"
        for k, n in more.items()
    ]
    return out


def lints_table(r: model.Report, per_lint: int = PER_LINT) -> RenderableType:
    if not r.lints:
        return Text("lints: none")
    shown, more = _capped(r.lints, per_lint)
    t = _table(
        f"lints ({len(r.lints)})",
        ("severity", "lint", "message", "hint"),
        left=("severity", "lint", "message", "hint"),
    )
    for x in shown:
        t.add_row(*map(_t, (x.severity, x.name, x.message, x.hint)))
    for k, n in more.items():
        t.add_row(*map(_t, ("", k, f"... and {n} more (--json lists all)", "")))
    return t


def render(r: model.Report, views: Sequence[str], *, tree: bool = False, limit: int = 50) -> Group:
    parts: list[RenderableType] = []
    for v in views:
        if v == "summary":
            parts.append(summary_table(r))
        elif v == "workers":
            parts.append(workers_table(r))
        elif v == "clients":
            parts.append(clients_table(r))
        elif v == "relay":
            if r.relay is not None:
                parts.append(relay_view(r.relay))
            elif tuple(views) != DEFAULT_VIEWS:
                parts.append(Text("relay: none (this runtime has no relay)"))
        elif v == "slots":
            parts.append(slots_tree(r.slots, limit) if tree else slots_table(r.slots, limit))
        elif v == "latency":
            parts.append(latency_table(r))
        elif v == "lints":
            parts.append(lints_table(r))
    return Group(*parts)
