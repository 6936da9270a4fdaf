"""The ``shmrt`` command line.

Commands (``shmrt COMMAND --help`` for details):

* ``shmrt start NAME`` -- run a named runtime in the foreground until Ctrl-C,
  SIGTERM or ``shmrt stop NAME``;
* ``shmrt stop NAME`` -- ask a runtime's coordinator to shut down, wait until
  its segment is gone;
* ``shmrt ls`` -- the current user's runtimes (live and stale);
* ``shmrt submit NAME MOD:FUNC [ARG ...]`` -- run one task, print its result;
* ``shmrt stats NAME`` -- counters of a runtime and of each worker;
* ``shmrt prune`` -- remove segments whose coordinator is provably dead;
* ``shmrt demo``, ``shmrt bench`` -- the tour and the benchmark (their modules
  are imported only when the command runs);
* ``shmrt inspect`` -- a hook for ``shmrt.tools.inspect`` (written separately).

Everything that reads a segment here maps it read-only (``ls``, ``stats``,
``stop``, ``prune``); only ``submit`` attaches as a client.  Errors a user
can cause are reported as one line (``click.ClickException``), never as a
traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import click

from . import _core
from .errors import RemoteTraceback, RuntimeExists, RuntimeNotFound, SegmentError, WorkerCrashed
from .segment import (
    SHM_DIR,
    SuspiciousFile,
    attach_path,
    open_segment_fd,
    proc_start_time,
    process_alive,
    runtime_name_of,
    shm_name,
)

H = _core.HEADER_FIELDS
_RUN_STATES = {_core.RUN_INIT: "init", _core.RUN_RUNNING: "running",
               _core.RUN_STOPPING: "stopping", _core.RUN_STOPPED: "stopped"}
_PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}
STOP_TIMEOUT_S = 10.0
STOP_POLL_S = 0.05
READY_TIMEOUT_S = 60.0
RESULT_CHECK_S = 0.5


# ---- helpers ------------------------------------------------------------------------------
class Size(click.ParamType):
    """A byte count: ``67108864``, ``64M``, ``64MiB``, ``1G``, ``512k``."""

    name = "bytes"
    _UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not a size (examples: 65536, 64M, 1G)", param, ctx)
        return int(m.group(1)) * self._UNITS[m.group(2).lower()]


def _valid_name(name: str) -> str:
    try:
        shm_name(name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None
    return name


def _shm_path(name: str) -> str:
    return SHM_DIR + shm_name(name)


def _open_ro(name: str) -> _core.Segment:
    """Map runtime ``name`` read-only, as a ClickException on failure."""
    _valid_name(name)
    try:
        return attach_path(shm_name(name), writable=False, display=name)
    except RuntimeNotFound as e:
        raise click.ClickException(f"{e}; 'shmrt ls' lists your runtimes") from None
    except (SegmentError, OSError) as e:
        raise click.ClickException(f"runtime {name!r}: {e}") from None


def coordinator_status(pid: int, start: int) -> str:
    """``"alive"``, ``"dead"`` (provably: gone, recycled pid, or a zombie) or
    ``"unknown"`` (no pid recorded, or /proc does not tell)."""
    if pid <= 0 or start <= 0:
        return "unknown"
    if process_alive(pid, start):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            if data[data.rfind(b")") + 2:].split()[0] in (b"Z", b"X"):
                return "dead"  # exited, waiting to be reaped
        except (OSError, IndexError):
            pass
        return "alive"
    if proc_start_time(pid) != 0:
        return "dead"  # the pid now names another process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, another user's: cannot be ours, but stay on the safe side
    return "unknown"  # it exists but /proc would not say when it started


def _coord_of(seg: _core.Segment) -> tuple[int, int]:
    return seg.load64(H["coord_pid"]), seg.load64(H["coord_start"])


def _fmt_age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _console() -> Any:
    from rich.console import Console

    # Not a terminal (a pipe, CliRunner): no wrapping of the table at 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def runtime_info(shm_file: str) -> dict[str, Any]:
    """What ``shmrt ls`` shows about one file of /dev/shm (a runtime of ours);
    a file that fails validation gets an ``error`` instead of the numbers,
    and one that is not a segment of ours at all (a link, FIFO, directory,
    another user's file, a bad name: see segment.open_segment_fd) is also
    ``suspicious`` (what it is).  Nothing is followed, read or mapped before
    the descriptor has passed the checks."""
    name = runtime_name_of(shm_file) or shm_file
    path = f"{SHM_DIR}/{shm_file}"
    info: dict[str, Any] = {"name": name, "path": path}
    try:
        shm_name(name)  # a name shmrt itself could never have created: do not even open it
    except ValueError:
        info["name"] = name = ascii(name)[1:-1]
        info["suspicious"] = "a file whose name is not a valid runtime name"
        info["error"] = f"{ascii(path)} is {info['suspicious']}; refusing"
        return info
    try:
        seg = attach_path("/" + shm_file, writable=False, display=name)
    except RuntimeNotFound:
        info["error"] = "gone"
        return info
    except SuspiciousFile as e:
        info["suspicious"] = e.what
        info["error"] = str(e)
        return info
    except Exception as e:  # any failure is shown, not raised
        info["error"] = str(e) or type(e).__name__
        try:
            if time.time() - os.lstat(path).st_mtime < 5:
                info["error"] += " (being created?)"
        except OSError:
            pass
        return info
    try:
        pid, start = _coord_of(seg)
        lay = seg.layout
        total = lay["n_slots"]
        created = seg.load64(H["created_ns"])
        info.update(
            workers=lay["n_workers"], coord_pid=pid, coordinator=coordinator_status(pid, start),
            run_state=_RUN_STATES.get(seg.load64(H["run_state"]), "?"),
            slots_used=total - seg.free_count(), slots_total=total,
            submitted=seg.load64(H["submitted"]), completed=seg.load64(H["completed"]),
            age_s=round(max(0.0, (time.time_ns() - created) / 1e9), 1) if created else None,
        )
    except Exception as e:
        info["error"] = str(e) or type(e).__name__
    finally:
        seg.close()
    return info


def _our_segments() -> list[str]:
    """File names in /dev/shm of the current user's runtimes, sorted."""
    try:
        files = os.listdir(SHM_DIR)
    except OSError as e:
        raise click.ClickException(f"cannot list {SHM_DIR}: {e.strerror}") from None
    return sorted(f for f in files if runtime_name_of(f))


# ---- the group ----------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shmrt", prog_name="shmrt")
def main() -> None:
    """shmrt: a multiprocess shared-memory work-stealing runtime."""


# ---- start / stop -------------------------------------------------------------------------
class _Signals:
    """SIGINT/SIGTERM/SIGHUP set a flag and wake a blocking read (signal wakeup
    fd), whichever thread the kernel delivers them to.  No polling."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._old = {s: signal.signal(s, self._handler) for s in self.SIGNALS}

    def _handler(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum

    def wait(self) -> int:
        while self.received is None:
            select.select([self._r], [], [])  # returns when a signal byte arrives
            os.read(self._r, 512)
        return self.received

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._r)
        os.close(self._w)


def _import_all(modules: Sequence[str]) -> None:
    for mod in modules:
        try:
            importlib.import_module(mod)
        except Exception as e:  # report any import failure as a usage error
            raise click.ClickException(
                f"--import {mod}: {type(e).__name__}: {e} (the workers could not import it "
                f"either; sys.path[0] is {sys.path[0]!r})") from None


def _wait_registered(pool: Any, sigs: _Signals, deadline: float) -> bool:
    """Startup only: wait (bounded) until every worker has registered."""
    from .stats import runtime_statistics

    while time.monotonic() < deadline and sigs.received is None:
        try:
            ws = runtime_statistics(pool._seg)["workers"]
        except Exception:  # cannot tell: do not hold up the start for it
            return True
        if set(pool.worker_pids) <= {w["pid"] for w in ws}:
            return True
        time.sleep(0.02)
    return False


@main.command()
@click.argument("name", callback=lambda c, p, v: _valid_name(v))
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: number of CPUs).")
@click.option("-i", "--import", "imports", multiple=True, metavar="MOD",
              help="Module every worker imports at start (repeatable).")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Retries for tasks the coordinator itself submits; clients choose their "
                   "own (`shmrt submit --retries`, `shmrt.connect(NAME, retries=N)`).")
@click.option("--arena-size", type=Size(), default="64M", show_default=True,
              help="Blob arena for large payloads (e.g. 64M, 1G).")
@click.option("--slots", type=click.IntRange(min=1), default=16384, show_default=True,
              help="Task slots (tasks in flight at once).")
def start(name: str, workers: int | None, imports: tuple[str, ...], retries: int,
          arena_size: int, slots: int) -> None:
    """Run runtime NAME in the foreground until Ctrl-C, SIGTERM or `shmrt stop NAME`.

    Other processes of the same user reach it with `shmrt.connect(NAME)` or
    `shmrt submit NAME ...`.  Their functions must be importable by the
    workers: the workers are started from this process and inherit its
    working directory and sys.path (this directory is on it), and import
    every --import module at start.
    """
    from .pool import Pool

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # workers inherit it (spawn copies sys.path)
    _import_all(imports)
    sigs = _Signals()  # before the segment exists: a signal now still shuts down cleanly
    try:
        try:
            pool = Pool(workers=workers, name=name, imports=list(imports), retries=retries,
                        arena_size=arena_size, slots=slots)
        except RuntimeExists as e:
            raise click.ClickException(str(e)) from None
        except (ValueError, OSError, SegmentError) as e:
            raise click.ClickException(f"cannot start runtime {name!r}: {e}") from None
        try:
            ok = _wait_registered(pool, sigs, time.monotonic() + READY_TIMEOUT_S)
            if sigs.received is None:
                pids = ", ".join(map(str, pool.worker_pids))
                n = len(pool.worker_pids)
                click.echo(f"shmrt: runtime {name} running, {n} workers (pids {pids}); "
                           f"Ctrl-C or `shmrt stop {name}` to stop", nl=True)
                if not ok:
                    click.echo("shmrt: warning: not every worker has registered yet", err=True)
                sys.stdout.flush()
            signum = sigs.wait()
            click.echo(f"shmrt: {signal.Signals(signum).name}: stopping runtime {name}", err=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        sigs.restore()
    click.echo(f"shmrt: runtime {name} stopped", err=True)


@main.command()
@click.argument("name", callback=lambda c, p, v: _valid_name(v))
@click.option("--timeout", type=click.FloatRange(min=0), default=STOP_TIMEOUT_S,
              show_default=True, help="Seconds to wait for the runtime to go away.")
def stop(name: str, timeout: float) -> None:
    """Stop runtime NAME: SIGTERM to its coordinator, then wait until the
    segment is removed."""
    path = _shm_path(name)
    seg = _open_ro(name)
    try:
        pid, start = _coord_of(seg)
    finally:
        seg.close()
    status = coordinator_status(pid, start)
    if status == "dead":
        raise click.ClickException(
            f"runtime {name!r} is stale: its coordinator (pid {pid}) is dead; "
            f"remove it with 'shmrt prune {name} --yes'")
    if status != "alive":
        raise click.ClickException(f"runtime {name!r}: cannot tell whether its coordinator "
                                   f"(pid {pid}) is alive; not signalling it")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it just exited; the loop below tells whether it cleaned up
    except PermissionError as e:
        raise click.ClickException(f"cannot signal pid {pid}: {e.strerror}") from None
    deadline = time.monotonic() + timeout
    while True:
        if not os.path.exists(path):
            click.echo(f"shmrt: runtime {name} stopped")
            return
        if coordinator_status(pid, start) == "dead" and os.path.exists(path):
            raise click.ClickException(
                f"the coordinator of {name!r} (pid {pid}) exited without removing its segment; "
                f"remove it with 'shmrt prune {name} --yes'")
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"runtime {name!r} (coordinator pid {pid}) still running after {timeout:g}s")
        time.sleep(STOP_POLL_S)


# ---- ls / stats ---------------------------------------------------------------------------
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
    from .stats import runtime_statistics

    seg = _open_ro(name)
    try:
        st = runtime_statistics(seg)
        pid, start = _coord_of(seg)
        st["name"] = name
        st["coord_pid"] = pid
        st["coordinator"] = coordinator_status(pid, start)
        st["run_state"] = _RUN_STATES.get(seg.load64(H["run_state"]), "?")
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
def _parse_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _resolve(target: str) -> Callable[..., Any]:
    mod_name, sep, attr = target.partition(":")
    if not sep or not mod_name or not attr:
        raise click.BadParameter(f"{target!r}: expected MODULE:FUNCTION", param_hint="MOD:FUNC")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:
        raise click.ClickException(f"cannot import {mod_name!r}: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.ClickException(f"{mod_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise click.ClickException(f"{target} is not callable")
    return obj


def _wait_result(fut: Any, coord: tuple[int, int], timeout: float | None) -> Any:
    """fut.result(timeout), but give up if the coordinator dies meanwhile (its
    workers exit with it, so the task would never finish)."""
    import concurrent.futures as cf

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = RESULT_CHECK_S if deadline is None else min(RESULT_CHECK_S,
                                                           deadline - time.monotonic())
        try:
            return fut.result(max(0.0, step))
        except cf.TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            if coordinator_status(*coord) == "dead":
                raise click.ClickException(
                    f"the runtime's coordinator (pid {coord[0]}) died before the task "
                    "finished") from None


def _fail(msg: str, code: int = 1) -> NoReturn:
    click.echo(msg, err=True)
    raise SystemExit(code)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=lambda c, p, v: _valid_name(v))
@click.argument("target", metavar="MOD:FUNC")
@click.argument("args", nargs=-1, metavar="[JSON-ARG]...")
@click.option("-k", "--kwarg", "kwargs", multiple=True, metavar="KEY=JSON",
              help="A keyword argument (repeatable).")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Run the task again if its worker dies, up to this many times.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Give up waiting for the result after this many seconds.")
def submit(name: str, target: str, args: tuple[str, ...], kwargs: tuple[str, ...],
           retries: int, timeout: float | None) -> None:
    """Run MOD:FUNC(*ARGS) on runtime NAME and print the result as JSON.

    Each ARG is parsed as JSON (3, 2.5, "text", [1, 2], {"a": 1}); anything
    that is not valid JSON is passed as a string.  Put `--` before arguments
    that start with a dash if they could be mistaken for options.

    MOD must be importable here (this directory is on sys.path) and by the
    workers: start the runtime with `shmrt start NAME --import MOD`, or make
    MOD importable from the worker's sys.path (the workers inherit the
    working directory and sys.path of the `shmrt start` process).

    If the task raises, its traceback (from the worker) goes to stderr and
    the exit code is 1.
    """
    import concurrent.futures as cf

    from .client import connect

    fn = _resolve(target)
    kw: dict[str, Any] = {}
    for item in kwargs:
        key, sep, val = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{item!r}: expected KEY=JSON", param_hint="--kwarg")
        kw[key] = _parse_arg(val)
    seg = _open_ro(name)
    try:
        coord = _coord_of(seg)
    finally:
        seg.close()
    if coordinator_status(*coord) == "dead":
        raise click.ClickException(f"runtime {name!r} is stale: its coordinator (pid {coord[0]}) "
                                   f"is dead; remove it with 'shmrt prune {name} --yes'")
    try:
        client = connect(name, retries=retries)
    except (RuntimeNotFound, SegmentError) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # e.g. every client entry in use
        raise click.ClickException(f"cannot connect to {name!r}: {e}") from None
    fut: Any = None
    try:
        try:
            fut = client.submit(fn, *map(_parse_arg, args), **kw)
            result = _wait_result(fut, coord, timeout)
        except cf.TimeoutError:
            _fail(f"shmrt: no result from {target} within {timeout:g}s")
        except click.ClickException:
            raise
        except WorkerCrashed as e:
            _fail(f"shmrt: {target}: {e}")
        except Exception as e:  # the task's own exception
            cause = e.__cause__
            if isinstance(cause, RemoteTraceback):
                _fail(f"shmrt: {target} raised (traceback from the worker):\n{cause.tb.rstrip()}")
            raise click.ClickException(f"{target}: {type(e).__name__}: {e}") from None
    finally:
        # Nothing is pending once the result is in.  On an error path the task
        # may still be in flight (or its runtime dead): do not wait for it.
        client.shutdown(wait=fut.done() if fut is not None else True, cancel_futures=True)
    try:
        out = json.dumps(result)
    except (TypeError, ValueError):
        out = repr(result)
    click.echo(out)


# ---- prune --------------------------------------------------------------------------------
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
    import struct

    h = _core.HEADER_FIELDS
    try:
        fd = open_segment_fd(f"{SHM_DIR}/{shm_file}", False)
        try:
            head = os.pread(fd, 4096, 0)
        finally:
            os.close(fd)
    except (OSError, SegmentError):
        return info, False
    if len(head) < 4096:
        return info, False
    magic, pid, start = (struct.unpack_from("<Q", head, h[k])[0]
                         for k in ("magic", "coord_pid", "coord_start"))
    if magic != _core.MAGIC or not pid:
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
        from .segment import unlink

        unlink("/" + f)
        click.echo(f"removed {info['name']} ({SHM_DIR}/{f})")
    if not yes:
        click.echo("run 'shmrt prune --yes' to remove them")


# ---- hooks: inspect (shmrt/tools/inspect, written separately), demo, bench -----------------
def _import_tool(module: str, what: str) -> Any:
    """Import a tool's module only when its command runs (a missing or broken
    optional tool must not break the other commands)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise click.ClickException(f"{what} is not available in this installation "
                                       f"({module} is missing)") from None
        raise


def _run_tool(ctx: click.Context, module: str, what: str, argv: list[str]) -> None:
    ctx.exit(int(_import_tool(module, what).main(argv) or 0))


# HOOK(inspect): `shmrt inspect NAME [OPTIONS]` passes its arguments through to
# shmrt.tools.inspect.main(argv: list[str]) -> int, the inspector of DESIGN.md
# ("Inspection": read-only, --json, --check, --watch).  Its options are the
# inspector's own; nothing here needs to change when it lands.
@main.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def inspect(ctx: click.Context, argv: tuple[str, ...]) -> None:
    """Show a runtime's slots, queues and workers (shmrt.tools.inspect)."""
    _run_tool(ctx, "shmrt.tools.inspect", "shmrt inspect", list(argv))


@main.command()
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: number of CPUs).")
@click.pass_context
def demo(ctx: click.Context, workers: int | None) -> None:
    """A one-minute tour of shmrt, with real numbers from this machine."""
    ctx.exit(int(_import_tool("shmrt.demo", "shmrt demo").main(workers) or 0))


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("workloads", nargs=-1, type=click.UNPROCESSED, metavar="[WORKLOAD]...")
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes per pool.")
@click.option("--repeat", type=click.IntRange(min=1), default=None, help="Timed repeats per pool.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Write raw samples and summary as JSON.")
@click.option("--quick", is_flag=True, help="Fewer repeats, for a quick look.")
@click.pass_context
def bench(ctx: click.Context, workloads: tuple[str, ...], workers: int | None,
          repeat: int | None, json_file: str | None, quick: bool) -> None:
    """Benchmark shmrt.Pool against ProcessPoolExecutor and multiprocessing.Pool.

    Other options (--scale, --peers, --list, --check, ...) are passed through
    to `python -m shmrt.tools.bench`.
    """
    _run_tool(ctx, "shmrt.tools.bench", "shmrt bench",
              list(_bench_argv(workloads, workers, repeat, json_file, quick)))


def _bench_argv(workloads: Sequence[str], workers: int | None, repeat: int | None,
                json_file: str | None, quick: bool) -> Iterator[str]:
    yield from workloads
    if workers is not None:
        yield from ("--workers", str(workers))
    if repeat is not None:
        yield from ("--repeat", str(repeat))
    if json_file is not None:
        yield from ("--json", json_file)
    if quick:
        yield "--quick"


from .relay_cli import relay as _relay_cmd  # noqa: E402 - registered on the group

main.add_command(_relay_cmd)

if __name__ == "__main__":
    main(prog_name="shmrt")
