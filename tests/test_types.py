"""Static checks of the library in CI: mypy over ``shmrt`` (with the C core's
stubs, shmrt/_core.pyi) and ``shmrt.workers``, and ruff over the repository.

mypy cannot follow the package-dir mapping of pyproject.toml (``shmrt.workers``
is the top-level workers/ directory), so it runs on a tree of symbolic links
with that shape, under build/ (the same path every run, so its cache helps)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "mypy-tree"
TIMEOUT_S = 300


def _tree() -> Path:
    """build/mypy-tree/shmrt: links to shmrt/'s modules, workers/ as shmrt/workers."""
    pkg = TREE / "shmrt"
    if TREE.exists():
        shutil.rmtree(TREE)
    pkg.mkdir(parents=True)
    for entry in (ROOT / "shmrt").iterdir():
        if entry.name in ("_core", "__pycache__") or entry.suffix == ".so":
            continue  # C sources; the compiled core is typed by _core.pyi
        (pkg / entry.name).symlink_to(entry)
    (pkg / "workers").symlink_to(ROOT / "workers")
    return TREE


@pytest.mark.timeout(TIMEOUT_S)
def test_mypy_library() -> None:
    pytest.importorskip("mypy")
    tree = _tree()
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / "build" / "mypy-cache"), "--no-error-summary",
         "-p", "shmrt"],
        cwd=tree, capture_output=True, text=True, timeout=TIMEOUT_S,
        env={**os.environ, "MYPYPATH": ""})
    errors = [ln for ln in out.stdout.splitlines() if ": error:" in ln]
    assert out.returncode == 0 and not errors, "mypy:\n" + (out.stdout + out.stderr)[-6000:]


@pytest.mark.timeout(120)
def test_ruff_clean() -> None:
    pytest.importorskip("ruff")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
