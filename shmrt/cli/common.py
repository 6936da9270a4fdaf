"""What the shmrt commands share: argument types, reading a runtime's
segment read-only, coordinator liveness, the signal handling of the
long-running commands, and the one-line error convention (``fail``:
``click.ClickException``, never a traceback)."""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from typing import Any, NoReturn

import click

from .. import _core
from ..errors import RuntimeNotFound, SegmentError
from ..layout import RUN_STATES, View, header_word
from ..segment import (
    SHM_DIR,
    SuspiciousFile,
    attach_path,
    proc_start_time,
    process_alive,
    runtime_name_of,
    shm_name,
)

_PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}
STOP_TIMEOUT_S = 10.0
STOP_POLL_S = 0.05
READY_TIMEOUT_S = 60.0
RESULT_CHECK_S = 0.5




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
    return header_word(seg, "coord_pid"), header_word(seg, "coord_start")


def _run_state(seg: _core.Segment) -> str:
    return RUN_STATES.get(header_word(seg, "run_state"), "?")


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
        view = View(seg)
        h = view.header()
        total = view.layout.n_slots
        pid, start, created = h.coord_pid, h.coord_start, h.created_ns
        info.update(
            workers=view.layout.n_workers, coord_pid=pid,
            coordinator=coordinator_status(pid, start),
            run_state=RUN_STATES.get(h.run_state, "?"),
            slots_used=total - seg.free_count(), slots_total=total,
            submitted=h.submitted, completed=h.completed,
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


def _fail(msg: str, code: int = 1) -> NoReturn:
    click.echo(msg, err=True)
    raise SystemExit(code)
