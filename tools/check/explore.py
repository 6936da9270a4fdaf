"""Run a checker binary and read its report.

Both binaries print one line per scenario,

    RESULT protocol=NAME schedules=N preemptions=P crashes=C verdict=ok|VIOLATION

and, after a violation, a `violation:` line and the counterexample (the
explorer's compressed schedule and replay string, or relacy's execution
history).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

RESULT = re.compile(
    r"^RESULT protocol=(?P<name>\S+) schedules=(?P<n>\d+) preemptions=(?P<p>\d+) "
    r"crashes=(?P<c>\d+) verdict=(?P<v>\S+)$")


@dataclass
class Outcome:
    protocol: str
    schedules: int
    preemptions: int
    crashes: int
    ok: bool
    violation: str = ""
    counterexample: list[str] = field(default_factory=list)


def parse(text: str) -> list[Outcome]:
    out: list[Outcome] = []
    pending: list[str] = []  # relacy prints its history before the RESULT line
    for line in text.splitlines():
        m = RESULT.match(line)
        if m:
            out.append(Outcome(m["name"], int(m["n"]), int(m["p"]), int(m["c"]), m["v"] == "ok"))
            if m["v"] != "ok" and pending:
                out[-1].counterexample = pending[-80:]
            pending = []
        elif line.startswith("violation: ") and out and not out[-1].ok and not out[-1].violation:
            out[-1].violation = line[len("violation: "):]
        elif out and not out[-1].ok and out[-1].violation and not line.startswith("RESULT"):
            out[-1].counterexample.append(line)
        elif line.strip():
            pending.append(line)
    return out


def run_explorer(exe: Path, protocols: list[str], preemptions: int, crashes: int, seed: int = 0,
                 timeout: float | None = None) -> list[Outcome]:
    cmd = [str(exe), *protocols, "--preemptions", str(preemptions), "--crashes", str(crashes),
           "--seed", str(seed)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr[-2000:]}")
    return parse(r.stdout)


def run_relacy(exe: Path, protocol: str, preemptions: int,
               timeout: float | None = None) -> list[Outcome]:
    r = subprocess.run([str(exe), str(preemptions), protocol], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"relacy {protocol} exited {r.returncode}: {r.stderr[-2000:]}")
    return parse(r.stdout)
