"""``python -m shmrt.tools.bench.policy``: the measurements behind three claims.

1. An idle pool uses < 1% CPU: worker and coordinator CPU time over 10 s of
   idleness (after the spin budget has run out, workers sleep on futexes
   with a 0.5 s timeout).
2. Spin-then-park matters: round-trip latency with the default spin budget
   (an idle searching worker polls for 50 us before it parks) against
   ``spin_us=0`` (park at once; every submit then pays a futex wake).
3. ``shmrt inspect --watch`` is cheap: spawn_many throughput with and without
   a live ``--watch`` (0.25 s refresh) attached, interleaved, medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

from .workloads import noop


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        r = f.read().rsplit(")", 1)[1].split()
    return (int(r[11]) + int(r[12])) / os.sysconf("SC_CLK_TCK")


def _rtt(p: Any, n: int = 3000) -> tuple[float, float]:
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        p.submit(noop).result()
        lat.append(time.perf_counter() - t)
    lat.sort()
    return lat[n // 2] * 1e6, lat[int(n * 0.99)] * 1e6


def _spawn_many(p: Any, n: int = 10_000) -> float:
    t = time.perf_counter()
    fs = [p.submit(noop) for _ in range(n)]
    for f in fs:
        f.result()
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    import shmrt

    with shmrt.Pool(2) as p:
        p.wait_ready()
        p.submit(noop).result()
        time.sleep(1.0)  # past the spin budget: the workers are parked now
        pids = [*p.worker_pids, os.getpid()]
        c0 = [_cpu_s(x) for x in pids]
        t0 = time.monotonic()
        time.sleep(10)  # measuring idleness: nothing to wait for
        dt = time.monotonic() - t0
        use = [round((_cpu_s(x) - a) / dt * 100, 2) for x, a in zip(pids, c0, strict=True)]
    print(f"1. idle 10 s: CPU % per worker {use[:-1]}, coordinator {use[-1]}")
    for spin in (50.0, 0.0):
        with shmrt.Pool(2, spin_us=spin) as p:
            p.wait_ready()
            _rtt(p, 300)
            res = [_rtt(p) for _ in range(3)]
        print(f"2. spin_us={spin:>4}: rtt median {statistics.median(r[0] for r in res):.1f} us, "
              f"p99 {statistics.median(r[1] for r in res):.1f} us")
    name = f"policy-watch-{os.getpid()}"
    with shmrt.Pool(2, name=name) as p:
        p.wait_ready()
        _spawn_many(p, 2000)
        base: list[float] = []
        watched: list[float] = []
        for _ in range(6):
            base += [_spawn_many(p) for _ in range(5)]
            w = subprocess.Popen([sys.executable, "-m", "shmrt.cli", "inspect", name, "--watch",
                                  "--interval", "0.25"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let it attach and start refreshing
            watched += [_spawn_many(p) for _ in range(5)]
            w.terminate()
            w.wait()
    b, wv = statistics.median(base), statistics.median(watched)
    print(f"3. spawn_many tasks/s: alone {b:,.0f}, with inspect --watch attached {wv:,.0f} "
          f"({(1 - wv / b) * 100:+.1f}% slower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
