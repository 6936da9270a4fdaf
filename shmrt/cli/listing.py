"""``shmrt ls``, ``stats`` and ``prune``: read-only views of the current
user's runtimes, and the removal of provably stale ones."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from .. import _core
from ..errors import SegmentError
from ..layout import stale_header
from ..segment import (
    SHM_DIR,
    open_segment_fd,
    runtime_name_of,
)
from .app import main
from .common import (
    _console,
    _coord_of,
    _fmt_age,
    _open_ro,
    _our_segments,
    _run_state,
    _valid_name,
    coordinator_status,
    runtime_info,
)


@main.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ls_cmd(as_json: bool) -> None:
    """List your runtimes (segments /dev/shm/shmrt.<uid>.*), live and stale."""
    rows = [runtime_info(f) for f in _our_segments()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no runtimes")
        return
    from rich.markup import escape
    from rich.table import Table

    t = Table(box=None, pad_edge=False)
    for col in ("NAME", "WORKERS", "COORD PID", "COORD", "STATE", "SLOTS USED", "COMPLETED", "AGE"):
        t.add_column(col, no_wrap=True,
                     justify="right" if col in ("WORKERS", "COORD PID", "COMPLETED") else "left")
    for r in rows:
        if "suspicious" in r:
            t.add_row(escape(r["name"]), "-", "-", "-", "[red]suspicious (see below)[/red]", "", "",
                      "")
            continue
        if "error" in r:
            t.add_row(escape(r["name"]), "-", "-", "-", f"[red]error: {escape(r['error'])}[/red]",
                      "", "", "")
            continue
        coord = r["coordinator"]
        style = {"alive": "green", "dead": "red"}.get(coord, "yellow")
        t.add_row(r["name"], str(r["workers"]), str(r["coord_pid"]),
                  f"[{style}]{coord}[/{style}]", r["run_state"],
                  f"{r['slots_used']}/{r['slots_total']}", str(r["completed"]),
                  _fmt_age(r["age_s"]) if r["age_s"] is not None else "?")
    _console().print(t)
    if any(r.get("coordinator") == "dead" for r in rows):
        click.echo("stale runtimes (coordinator dead): remove them with 'shmrt prune --yes'")
    for r in rows:
        if "suspicious" in r:
            click.echo(f"suspicious: {r['error']}")
    if any("suspicious" in r for r in rows):
        click.echo("suspicious files are not shmrt segments: shmrt never opens, stops or prunes "
                   "them; look at them and remove them yourself")


@main.command()
@click.argument("name", callback=lambda c, p, v: _valid_name(v))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats(name: str, as_json: bool) -> None:
    """Counters of runtime NAME and of each of its workers."""
    from ..stats import runtime_statistics

    seg = _open_ro(name)
    try:
        st = runtime_statistics(seg).as_dict()
        pid, start = _coord_of(seg)
        st["name"] = name
        st["coord_pid"] = pid
        st["coordinator"] = coordinator_status(pid, start)
        st["run_state"] = _run_state(seg)
    except SegmentError as e:
        raise click.ClickException(f"runtime {name!r}: {e}") from None
    finally:
        seg.close()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    from rich.table import Table

    con = _console()
    arena = st["arena"]
    con.print(f"[bold]runtime {name}[/bold]: {st['run_state']}, coordinator pid {pid} "
              f"({st['coordinator']})")
    con.print(f"tasks: {st['submitted']} submitted, {st['completed']} completed, "
              f"{st['crashed']} crashed, {st['retried']} retried")
    con.print(f"slots: {st['slots'] - st['slots_free']}/{st['slots']} in use; inject queue "
              f"{st['inject_len']}; searching {st['searching']}, unparked {st['unparked']}")
    con.print("arena: " + ", ".join(f"{k} {v}" for k, v in arena.items()))
    workers = st["workers"]
    if not workers:
        return
    t = Table(box=None, pad_edge=False, title=None)
    cols = [k for k in workers[0] if k != "state"]
    for k in ("id", "pid"):
        t.add_column(k.upper(), justify="right", no_wrap=True)
    t.add_column("STATE", no_wrap=True)
    rest = [k for k in cols if k not in ("id", "pid")]
    for k in rest:
        t.add_column(k.replace("_", " ").upper(), justify="right", no_wrap=True)
    for w in workers:
        t.add_row(str(w["id"]), str(w["pid"]), w["state"], *(str(w[k]) for k in rest))
    con.print(t)


# ---- submit -------------------------------------------------------------------------------


def _stale(shm_file: str) -> tuple[dict[str, Any], bool]:
    """(ls info, provably stale) of one of our segments."""
    info = runtime_info(shm_file)
    if "suspicious" in info:
        return info, False
    if "error" in info and "layout version" in info["error"]:
        return _stale_old_version(shm_file, info)
    return info, "error" not in info and info.get("coordinator") == "dead"


def _stale_old_version(shm_file: str, info: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A segment of another layout version (left by an older shmrt): the
    magic and the coordinator's pid and start time sit at offsets that every
    layout version keeps, so staleness is still provable.  Same checks of
    owner and mode as an attach; nothing else of the header is trusted."""
    try:
        fd = open_segment_fd(f"{SHM_DIR}/{shm_file}", False)
        try:
            head = os.pread(fd, _core.HEADER_SIZE, 0)
        finally:
            os.close(fd)
    except (OSError, SegmentError):
        return info, False
    words = stale_header(head) if len(head) == _core.HEADER_SIZE else None
    if words is None:
        return info, False
    magic, pid, start = words
    if magic != _core.SHMRT_MAGIC or not pid:
        return info, False
    info = dict(info, coord_pid=pid, completed="?")
    return info, coordinator_status(pid, start) == "dead"


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--yes", "-y", is_flag=True, help="Really remove them (default: only list).")
def prune(names: tuple[str, ...], yes: bool) -> None:
    """Remove your stale runtimes: segments whose coordinator is provably dead
    (its pid is gone or names another process).  Without --yes only lists
    them.  With NAMEs, only those runtimes are considered.

    Never touches live runtimes, segments that fail validation, other users'
    segments, or anything in /dev/shm that is not a shmrt runtime of yours.
    """
    for n in names:
        _valid_name(n)
    files = _our_segments()
    if names:
        wanted = set(names)
        files = [f for f in files if runtime_name_of(f) in wanted]
        for n in sorted(wanted - {runtime_name_of(f) for f in files}):
            click.echo(f"shmrt: no runtime named {n!r}", err=True)
    stale = []
    for f in files:
        info, dead = _stale(f)
        if dead:
            stale.append((f, info))
        elif "suspicious" in info:
            click.echo(f"suspicious: {info['error']} (not a shmrt segment: left alone)", err=True)
        elif "error" in info:
            click.echo(f"skipping {info['name']}: {info['error']}", err=True)
    if not stale:
        click.echo("no stale runtimes")
        return
    for f, info in stale:
        if not yes:
            click.echo(f"stale: {info['name']} (coordinator pid {info['coord_pid']} is dead, "
                       f"{info['completed']} tasks completed)")
            continue
        again, dead = _stale(f)  # re-check right before removing: the name may be reused
        if not dead or again.get("coord_pid") != info["coord_pid"]:
            click.echo(f"skipping {info['name']}: changed since it was listed", err=True)
            continue
        from ..segment import unlink

        unlink("/" + f)
        click.echo(f"removed {info['name']} ({SHM_DIR}/{f})")
    if not yes:
        click.echo("run 'shmrt prune --yes' to remove them")
