"""Progress of a benchmark run on stderr: where a long run is, and how long is left.

A run is a known number of *steps* (one timed sample of one pool, one relay
round, ...).  On a terminal one status line is redrawn in place with a bar,
the step count, the elapsed time and a rough estimate of the time left (the
mean time per step so far times the steps left: steps differ a lot in
length, so it is a hint, not a promise); finished workloads are printed as
permanent lines above it.  Off a terminal (CI logs, a pipe) only the
permanent lines are printed, each prefixed with the percentage done, so a
log still shows where the run was.  Nothing here goes to stdout: the tables
do.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]

BAR_WIDTH = 24


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Status line + permanent lines on ``stream`` (``None``: silent)."""

    def __init__(
        self,
        stream: TextIO | None,
        total: int = 0,
        *,
        done: int = 0,
        started: float | None = None,
        fixed: bool = False,
    ) -> None:
        """``done``/``started`` (epoch seconds)/``fixed``: continue the bar of a
        parent run in a child process (``fixed``: the total is the parent's)."""
        self.stream = stream
        self.tty = bool(stream is not None and stream.isatty())
        self.total = total
        self.done = done
        self.started = time.time() if started is None else started
        self.fixed = fixed
        self._base = done
        self._own_t0 = time.time()
        self._open = False
        self._text = ""

    # -- steps --------------------------------------------------------------

    def add_total(self, steps: int) -> None:
        if not self.fixed:
            self.total += max(0, steps)

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps) if self.total else self.done + steps
        if self.tty and self._text:
            self._draw()

    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def bar(self) -> str:
        """``[#####-------]  41%  12/29  1:03 elapsed, ~1:31 left``."""
        frac = self.fraction()
        fill = round(frac * BAR_WIDTH)
        now = time.time()
        elapsed = now - self.started
        text = f"[{'#' * fill}{'-' * (BAR_WIDTH - fill)}] {frac * 100:3.0f}%"
        if self.total:
            text += f" {self.done}/{self.total}"
        text += f" {_clock(elapsed)} elapsed"
        left = self.total - self.done
        if self.done > self._base and left > 0:  # the pace of this process's steps
            text += f", ~{_clock((now - self._own_t0) / (self.done - self._base) * left)} left"
        elif 0 < self.done and left > 0:
            text += f", ~{_clock(elapsed / self.done * left)} left"
        return text

    def state(self) -> str:
        """``started,done,total``: what a child process needs to continue the bar."""
        return f"{self.started:.3f},{self.done},{self.total}"

    # -- output -------------------------------------------------------------

    def _draw(self) -> None:
        assert self.stream is not None
        line = f"{self.bar()} | {self._text}"
        self.stream.write("\r\x1b[K" + line)
        self._open = True
        self.stream.flush()

    def update(self, text: str) -> None:
        """Replace the status line (terminal only)."""
        self._text = text
        if self.stream is None or not self.tty:
            return
        self._draw()

    def line(self, text: str) -> None:
        """Print a permanent line (above the status line on a terminal)."""
        if self.stream is None:
            return
        if self.tty and self._open:
            self.stream.write("\r\x1b[K")
            self._open = False
        prefix = f"{self.fraction() * 100:3.0f}% " if self.total and not self.tty else ""
        self.stream.write(prefix + text + "\n")
        if self.tty and self._text:
            self._draw()
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.tty and self._open:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._open = False
        self._text = ""
