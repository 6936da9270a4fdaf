"""Compile the checker: the explorer (C, harness/) and the relacy tests (C++,
relacy/), each against the C core's headers in shmrt/_core as they are, with
the given mutant flags.  Binaries are cached by a hash of their sources and
flags in a directory under the system's temporary directory, so a second run
of the same configuration starts at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORE = HERE.parent.parent / "shmrt" / "_core"
HARNESS = HERE / "harness"
RELACY = HERE / "relacy"
RELACY_HEADER = Path("/usr/include/relacy/relacy.hpp")


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    d = Path(os.environ.get("SHMRT_CHECK_CACHE", Path(tempfile.gettempdir()) / "shmrt-check"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest(files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    return h.hexdigest()[:16]


def _compile(kind: str, defines: list[str]) -> Path:
    if not (CORE / "queue.h").exists():
        raise BuildError(f"no C core headers in {CORE}: the checker runs from a source checkout")
    flags = [f"-D{d}" for d in sorted(set(defines))]
    if kind == "sc":
        sources = sorted(HARNESS.glob("*.c"))
        deps = sources + sorted(HARNESS.glob("*.h")) + sorted(CORE.glob("*.h"))
        cc, std = "gcc", ["-std=gnu11", "-DSHMRT_CHECKED"]
    else:
        sources = [RELACY / "rl_queues.cpp"]
        deps = sources + sorted(RELACY.glob("*.hpp")) + sorted(CORE.glob("*.h"))
        cc, std = "g++", ["-std=c++11", "-DSHMRT_RELACY", "-w"]
    key = _digest(deps, [kind, *flags])
    out = cache_dir() / f"{kind}-{key}"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        exe = Path(tmp) / "bin"
        cmd = [cc, *std, "-O2", "-g", f"-I{CORE}", f"-I{HARNESS if kind == 'sc' else RELACY}",
               *flags, *map(str, sources), "-o", str(exe)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"{' '.join(cmd)}\n{r.stderr[-4000:]}")
        os.replace(exe, out)
    return out


def explorer(defines: list[str] = []) -> Path:  # noqa: B006
    """The explorer binary for these flags."""
    return _compile("sc", defines)


def relacy_tests(defines: list[str] = []) -> Path:  # noqa: B006
    """The relacy binary for these flags (relacy-dev must be installed)."""
    if not RELACY_HEADER.exists():
        raise BuildError("relacy is not installed (apt-get install -y relacy-dev)")
    return _compile("weak", defines)


def ensure_relacy() -> str | None:
    """Install relacy-dev (and g++) with apt-get when missing.  None when
    ready, else the reason it could not be installed."""
    if RELACY_HEADER.exists() and shutil.which("g++"):
        return None
    if not shutil.which("apt-get"):
        return "relacy-dev is missing and there is no apt-get to install it"
    pkgs = ["relacy-dev", "g++"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in ([], ["update"]):
        if attempt:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=300)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], capture_output=True, text=True,
                           env=env, timeout=600)
        if r.returncode == 0 and RELACY_HEADER.exists() and shutil.which("g++"):
            return None
    return f"apt-get install -y relacy-dev g++ failed: {r.stderr.strip()[-500:]}"
