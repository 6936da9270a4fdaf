"""``bench relay``: packets per second and latency through a UDP relay.

What is measured: a load generator (this process) sends 1 KiB datagrams over
loopback to a relay process, which transforms each and sends it on to the
generator's receive socket.  The generator keeps ``window`` datagrams in
flight (closed loop: no kernel buffer overflows, so nothing is lost and the
figure is the relay's sustained rate), stamps each datagram with
``perf_counter_ns`` (CLOCK_MONOTONIC, the same clock in every process) and
records the latency when it comes back.  Each datagram carries its flow and
sequence number, and the generator checks per-flow order for the relays
that promise it.

Relays, each measured in the same run, interleaved per repeat:
  shmrt    ``shmrt relay`` (listener + CPU workers + send worker)
  asyncio  one process: receive, transform, send
  ppe      asyncio front end + ProcessPoolExecutor (spawn) for the transform
  plain    blocking recvfrom/sendto forwarder, no transform (identity only)

The machine has 2 cores, and the generator needs a good part of one: every
relay competes with it equally.
"""

from __future__ import annotations

import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Any

from shmrt.relay import udp_socket

HEAVY = "shmrt.transforms:blake2b_tag_heavy"
LIGHT = "shmrt.transforms:identity"
_HDR = struct.Struct("<QHI")  # send time ns, flow, seq


def _start(kind: str, to_port: int, transform: str, count: int, workers: int) -> subprocess.Popen:
    if kind == "shmrt":
        cmd = [sys.executable, "-m", "shmrt.cli", "relay", "--listen", "127.0.0.1:0",
               "--to", f"127.0.0.1:{to_port}", "--transform", transform, "--workers",
               str(workers), "--count", str(count)]
    else:
        cmd = [sys.executable, "-m", "shmrt.tools.bench.relay_peers", kind, "0", str(to_port),
               transform, str(count), str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_one(kind: str, transform: str, n: int, workers: int = 2, window: int = 256,
            flows: int = 8, size: int = 1024) -> dict[str, Any]:
    """Push ``n`` datagrams through one relay; returns pps and latency figures."""
    rx = udp_socket()
    proc = _start(kind, rx.getsockname()[1], transform, n, workers)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if not m:
            raise RuntimeError(f"{kind} relay did not start: {line!r}")
        dst = ("127.0.0.1", int(m.group(1)))
        pad = b"\0" * (size - _HDR.size)
        lat: list[int] = []
        expected = [0] * flows
        disorder = 0
        rx.setblocking(False)
        recv = rx.recv
        perf = time.perf_counter_ns

        def drain(block: bool) -> None:
            nonlocal disorder
            if block and not select.select([rx], [], [], 10)[0]:
                raise RuntimeError(f"{kind}: no datagram for 10 s ({len(lat)}/{n} back)")
            while True:
                try:
                    data = recv(65536)
                except BlockingIOError:
                    return
                t0, f, seq = _HDR.unpack_from(data)
                lat.append(perf() - t0)
                if seq != expected[f]:
                    disorder += 1
                expected[f] = seq + 1

        t_start = time.perf_counter()
        for i in range(n):
            tx.sendto(_HDR.pack(perf(), i % flows, i // flows) + pad, dst)
            while i + 1 - len(lat) > window:
                drain(True)
        while len(lat) < n:
            drain(True)
        elapsed = time.perf_counter() - t_start
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rx.close()
        tx.close()
    lat.sort()
    return {"pps": n / elapsed, "p50_us": lat[len(lat) // 2] / 1e3,
            "p99_us": lat[int(len(lat) * 0.99)] / 1e3, "out_of_order": disorder}


def run(repeat: int = 3, n_heavy: int = 20_000, n_light: int = 50_000, workers: int = 2,
        progress: Any = None) -> dict[str, Any]:
    """Both transforms, every relay, ``repeat`` interleaved rounds; medians."""
    plan = [("heavy", HEAVY, n_heavy, ("shmrt", "asyncio", "ppe")),
            ("identity", LIGHT, n_light, ("shmrt", "asyncio", "ppe", "plain"))]
    out: dict[str, Any] = {}
    for label, transform, n, kinds in plan:
        samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for r in range(repeat):
            for kind in kinds:
                if progress:
                    progress(f"relay {label}: {kind} (round {r + 1}/{repeat})")
                samples[kind].append(run_one(kind, transform, n, workers))
        med = {k: {m: statistics.median(s[m] for s in v) for m in ("pps", "p50_us", "p99_us")}
               | {"out_of_order": max(s["out_of_order"] for s in v)}
               for k, v in samples.items()}
        base = med["shmrt"]["pps"]
        for k in kinds:
            med[k]["shmrt_speedup"] = base / med[k]["pps"]
        out[label] = {"transform": transform, "packets": n, "median": med, "samples": samples}
    return out


def format_table(res: dict[str, Any]) -> str:
    lines = []
    for label, r in res.items():
        lines.append(f"relay, {label} transform ({r['transform']}), {r['packets']} x 1 KiB, "
                     "window 256, 8 flows")
        lines.append(f"  {'relay':<8} {'pkt/s':>10} {'p50 us':>9} {'p99 us':>9} "
                     f"{'shmrt x':>8} {'disorder':>9}")
        for kind, m in r["median"].items():
            lines.append(f"  {kind:<8} {m['pps']:>10.0f} {m['p50_us']:>9.1f} {m['p99_us']:>9.1f} "
                         f"{m['shmrt_speedup']:>8.2f} {m['out_of_order']:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="shmrt bench relay")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--heavy", type=int, default=20_000, help="packets, heavy transform")
    ap.add_argument("--light", type=int, default=50_000, help="packets, identity")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", dest="json_path")
    a = ap.parse_args(argv)
    res = run(a.repeat, a.heavy, a.light, a.workers,
              progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(res))
    if a.json_path:
        with open(a.json_path, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
