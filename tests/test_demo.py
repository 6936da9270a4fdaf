"""``shmrt demo`` runs end to end (the README's first command) and says so."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_demo_runs_and_reports_every_stage() -> None:
    out = subprocess.run([sys.executable, "-m", "shmrt.cli", "demo", "--workers", "2"],
                         capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for stage in ("1. fork-join", "2. burst", "3. the same burst on ProcessPoolExecutor",
                  "4. relay"):
        assert stage in text
    assert "(correct)" in text
    assert "20,000" in text and "lost" in text
