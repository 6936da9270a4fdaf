"""One repetition of the "/dev/shm fills up" scenario (tests/test_hostile.py).

Why a script: a full /dev/shm used to kill the process with SIGBUS, which no
test can catch in-process, and filling the real /dev/shm would hurt every
other process on the machine.  tests/test_hostile.py runs this under
``unshare -m --propagation private`` (root only); it mounts a small tmpfs
over /dev/shm in that private mount namespace, starts a pool while something
fills /dev/shm (or fills it right after), moves payloads through the arena,
and prints one JSON line.  Exit 0: every outcome was clean (the pool ran and
every payload came back intact, or creation failed with an OSError that
names /dev/shm and left nothing behind).  A signal kills the process instead
(negative return code), anything unexpected exits 1 with a traceback.

Modes:

* ``full-before``: /dev/shm is nearly full before the pool starts;
* ``filled-in-window``: another writer takes the space between the free-space
  check and the reservation (made deterministic by running the filler from
  inside the free-space check);
* ``filled-during-start``: a filler thread starts writing the moment the
  segment's name appears in /dev/shm, racing the pool's reservation (the
  window in which a background reservation used to lose, and the first
  submit then died of SIGBUS);
* ``filled-after-start``: the pool starts, then /dev/shm is filled to the
  last byte, then payloads flow: each comes back intact or, where the arena
  would have to grow (it is reserved as it is carved: shmrt/_core/arena.c),
  fails with an OSError (ENOSPC) naming /dev/shm; the pool then still runs
  tasks.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from typing import Any

TMPFS = "16m"
ARENA = 12 << 20  # the segment is ~12.2 MiB of the 16
SLOTS = 256
CHUNK = 256 << 10
# one payload per size class (256K, 768K, 1.5M, 3M): args and results of one
# round fill ~11 MiB of the arena, so nearly every arena page gets written
SIZES = (200_000, 700_000, 1_400_000, 2_900_000)
ROUNDS = 2


def mount_tmpfs() -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS},mode=1777", "tmpfs",
                        "/dev/shm"], capture_output=True, text=True, timeout=30)
    if r.returncode:
        print(json.dumps({"skip": f"mount failed: {r.stderr.strip()}"}))
        sys.exit(77)


def fill(path: str, leave: int = 0) -> int:
    """Write into ``path`` until /dev/shm has ``leave`` bytes free (or is full);
    write(2), not a mapping: the filler gets ENOSPC, never SIGBUS."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    buf = b"\xa5" * CHUNK
    taken = 0
    try:
        while True:
            st = os.statvfs("/dev/shm")
            room = st.f_bavail * st.f_frsize - leave
            if room <= 0:
                break
            try:
                n = os.write(fd, buf[: min(CHUNK, room)])
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    break
                raise
            taken += n
    finally:
        os.close(fd)
    return taken


def fill_once_created(path: str, give_up: threading.Event) -> None:
    """Spin until a segment's name shows up in /dev/shm, then fill it up
    (``give_up``: the pool failed before creating one)."""
    while not leftovers():
        if give_up.is_set():
            return
    fill(path)


def leftovers() -> list[str]:
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith("shmrt."))


def run_payloads(pool: Any) -> tuple[int, int]:
    """Payloads through the arena both ways: (intact, refused).  Each must
    come back intact or be refused with ENOSPC naming /dev/shm (the arena
    could not grow), in the caller or as the task's error."""
    sent = refused = 0
    for rnd in range(ROUNDS):
        for size in SIZES:
            data = os.urandom(size)
            try:
                got = pool.submit(bytes, data).result(timeout=60)
            except OSError as e:
                if e.errno != errno.ENOSPC or "/dev/shm" not in str(e):
                    raise
                refused += 1
                continue
            if got != data:
                raise AssertionError(f"round {rnd}: payload of {size} bytes came back altered")
            sent += 1
    return sent, refused


def scenario(mode: str) -> dict[str, Any]:
    import shmrt
    from shmrt import _core, segment

    out: dict[str, Any] = {"mode": mode}
    filler: threading.Thread | None = None
    give_up = threading.Event()
    if mode == "full-before":
        fill("/dev/shm/filler-before", leave=4 << 20)
    elif mode == "filled-in-window":
        real = segment._shm_free
        done: list[int] = []

        def free_then_fill() -> int:
            free = real()
            if not done:
                done.append(fill("/dev/shm/filler-window"))
            return free

        segment._shm_free = free_then_fill  # type: ignore[assignment]
    elif mode == "filled-during-start":
        filler = threading.Thread(target=fill_once_created, args=("/dev/shm/filler-race", give_up))
        filler.start()
    try:
        pool = shmrt.Pool(2, slots=SLOTS, arena_size=ARENA)
    except OSError as e:
        if filler is not None:
            give_up.set()
            filler.join()
        out.update(outcome="refused", error=str(e))
        if e.errno != errno.ENOSPC or "/dev/shm" not in str(e):
            raise
        if leftovers():
            raise AssertionError(f"a failed creation left {leftovers()} behind") from e
        return out
    try:
        if filler is not None:
            filler.join()
        if mode == "filled-after-start":
            fill("/dev/shm/filler-after")
        st = os.statvfs("/dev/shm")
        out["free_while_running"] = st.f_bavail * st.f_frsize
        out["payloads"], out["refused"] = run_payloads(pool)
        out["attempted"] = ROUNDS * len(SIZES)
        out["lazy"] = bool(_core.ARENA_LAZY)
        if pool.submit(sum, [1, 2, 3]).result(timeout=60) != 6:
            raise AssertionError("the pool does not run tasks after the payloads")
        crashed = pool.statistics()["crashed"]
        if crashed:
            raise AssertionError(f"{crashed} tasks crashed (a worker died: SIGBUS?)")
    finally:
        pool.shutdown(wait=True)
    if leftovers():
        raise AssertionError(f"shutdown left {leftovers()} behind")
    out["outcome"] = "ok"
    return out


def main() -> None:
    mount_tmpfs()
    print(json.dumps(scenario(sys.argv[1])), flush=True)


if __name__ == "__main__":
    main()
