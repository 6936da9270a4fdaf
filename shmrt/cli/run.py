"""``shmrt start``, ``stop`` and ``submit``: run a named runtime in the
foreground, stop one, run one task on one."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..errors import RemoteTraceback, RuntimeExists, RuntimeNotFound, SegmentError, WorkerCrashed
from ..resolve import ResolveError, resolve
from .app import main
from .common import (
    READY_TIMEOUT_S,
    RESULT_CHECK_S,
    STOP_POLL_S,
    STOP_TIMEOUT_S,
    Size,
    _coord_of,
    _fail,
    _open_ro,
    _shm_path,
    _Signals,
    _valid_name,
    coordinator_status,
)


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
    from ..stats import runtime_statistics

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
    from ..pool import Pool

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


def _parse_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _resolve(target: str) -> Callable[..., Any]:
    try:
        return resolve(target, "MOD:FUNC")
    except ResolveError as e:
        if "expected MODULE:FUNCTION" in str(e):
            raise click.BadParameter(f"{target!r}: expected MODULE:FUNCTION",
                                     param_hint="MOD:FUNC") from None
        raise click.ClickException(str(e).removeprefix("MOD:FUNC: ")) from None


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

    from ..client import connect

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
