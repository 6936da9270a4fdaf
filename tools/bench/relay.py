"""``bench relay``: packets per second and latency through a UDP relay.

What is measured: a load generator (this process) sends datagrams over
loopback to a relay process, which transforms each and sends it on to the
generator's receive socket.  The generator keeps ``window`` datagrams in
flight (closed loop: no kernel buffer overflows, so nothing is lost and the
figure is the relay's sustained rate), stamps each datagram with
``perf_counter_ns`` (CLOCK_MONOTONIC, the same clock in every process) and
records the latency when it comes back.  Each datagram carries its flow and
sequence number, and the generator checks per-flow order for the relays
that promise it.  The generator sends and receives in batches of up to 32
(sendmmsg / recvmmsg through ctypes, tools/bench/mmsg.py): it shares the 2
cores with the relay under test, and a datagram-at-a-time Python generator
(~5 us of CPU per datagram) was the bottleneck of the fastest relays.

Relays, each measured in the same run, interleaved per repeat:
  shmrt    ``shmrt relay`` (C ingress + CPU workers + C send worker)
  asyncio  one process: receive, transform, send (the single-process loop)
  ppe      asyncio front end + ProcessPoolExecutor (spawn) for the transform
  plain    blocking recvfrom/sendto forwarder, no transform (identity only)
  mmsg     recvmmsg/sendmmsg forwarder, batches of 64 (identity only)

Also: latency at half of each relay's measured maximum rate (open loop,
paced), and shmrt's throughput against the datagram size (64 B .. 64 KiB).
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

from .mmsg import Batch

HEAVY = "shmrt.transforms:blake2b_tag_heavy"
LIGHT = "shmrt.transforms:identity"
_HDR = struct.Struct("<QHI")  # send time ns, flow, seq
BATCH = 32
SIZES = (64, 256, 1024, 4096, 16384, 65000)  # 65000: the largest a UDP datagram can be, rounded


def _start(kind: str, to_port: int, transform: str, count: int, workers: int) -> subprocess.Popen:
    if kind == "shmrt":
        cmd = [sys.executable, "-m", "shmrt.cli", "relay", "--listen", "127.0.0.1:0",
               "--to", f"127.0.0.1:{to_port}", "--transform", transform, "--workers",
               str(workers), "--count", str(count)]
    else:
        cmd = [sys.executable, "-m", "shmrt.tools.bench.relay_peers", kind, "0", str(to_port),
               transform, str(count), str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, now."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total / tick


def run_one(kind: str, transform: str, n: int, workers: int = 2, window: int = 256,
            flows: int = 8, size: int = 1024, rate: float | None = None) -> dict[str, Any]:
    """Push ``n`` datagrams through one relay; returns pps and latency
    figures.  ``rate``: open loop, paced at this many datagrams/s (the
    window still bounds what is in flight)."""
    rx = udp_socket(("127.0.0.1", 0), 32 << 20)
    proc = _start(kind, rx.getsockname()[1], transform, n, workers)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if not m:
            raise RuntimeError(f"{kind} relay did not start: {line!r}")
        tx.connect(("127.0.0.1", int(m.group(1))))
        out, inb = Batch(BATCH, max(size, _HDR.size)), Batch(BATCH, 65536)
        for i in range(BATCH):  # the padding, once
            out.buf(i)[_HDR.size:size] = bytes(size - _HDR.size)
        lat: list[int] = []
        expected = [0] * flows
        disorder = 0
        perf = time.perf_counter_ns
        pack, unpack = _HDR.pack_into, _HDR.unpack_from
        view, osize = out.view, out.size
        iview, isize = inb.view, inb.size
        for j in range(BATCH):
            out.iov[j].iov_len = size

        def drain(block: bool) -> None:
            nonlocal disorder
            if block and not select.select([rx], [], [], 10)[0]:
                raise RuntimeError(f"{kind}: no datagram for 10 s ({len(lat)}/{n} back)")
            while True:
                r = inb.recv_n(rx)
                if not r:
                    return
                now = perf()
                for off in range(0, r * isize, isize):
                    t0, f, seq = unpack(iview, off)
                    lat.append(now - t0)
                    if seq != expected[f]:
                        disorder += 1
                    expected[f] = seq + 1

        import resource

        cpu0, gen0 = _tree_cpu_s(proc.pid), resource.getrusage(resource.RUSAGE_SELF)
        t_start = time.perf_counter()
        sent = 0
        while sent < n:
            k = min(BATCH, n - sent, window - (sent - len(lat)))
            if rate is not None:  # open loop: what is due by now
                due = int((time.perf_counter() - t_start) * rate) + 1
                k = min(k, due - sent)
            if k <= 0:
                if rate is not None and sent - len(lat) < window:
                    drain(False)
                    time.sleep(50e-6)
                else:
                    drain(True)
                continue
            now = perf()
            for j in range(k):
                i = sent + j
                pack(view, j * osize, now, i % flows, i // flows)
            out.send_n(tx, k)
            sent += k
            drain(False)
        while len(lat) < n:
            drain(True)
        elapsed = time.perf_counter() - t_start
        cpu1, gen1 = _tree_cpu_s(proc.pid), resource.getrusage(resource.RUSAGE_SELF)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rx.close()
        tx.close()
    lat.sort()
    gen_s = gen1.ru_utime + gen1.ru_stime - gen0.ru_utime - gen0.ru_stime
    return {"pps": n / elapsed, "p50_us": lat[len(lat) // 2] / 1e3,
            "p99_us": lat[int(len(lat) * 0.99)] / 1e3, "out_of_order": disorder,
            # CPU per packet while the packets flowed (the relay's process tree; this
            # generator): the figure the other users of the 2 cores do not change
            "cpu_us": (cpu1 - cpu0) / n * 1e6, "gen_cpu_us": gen_s / n * 1e6}


def _median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return ({m: statistics.median(s[m] for s in samples)
             for m in ("pps", "p50_us", "p99_us", "cpu_us", "gen_cpu_us")}
            | {"out_of_order": max(s["out_of_order"] for s in samples)})


def run(repeat: int = 3, n_heavy: int = 20_000, n_light: int = 50_000, workers: int = 2,
        progress: Any = None) -> dict[str, Any]:
    """Both transforms, every relay, ``repeat`` interleaved rounds; medians."""
    plan = [("heavy", HEAVY, n_heavy, ("shmrt", "asyncio", "ppe")),
            ("identity", LIGHT, n_light, ("shmrt", "asyncio", "ppe", "plain", "mmsg"))]
    out: dict[str, Any] = {}
    for label, transform, n, kinds in plan:
        samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for r in range(repeat):
            for kind in kinds:
                if progress:
                    progress(f"relay {label}: {kind} (round {r + 1}/{repeat})")
                # the PPE relay is ~10x slower: fewer packets keep its round short
                samples[kind].append(run_one(kind, transform, n // 4 if kind == "ppe" else n,
                                             workers))
        med = {k: _median(v) for k, v in samples.items()}
        base = med["shmrt"]["pps"]
        for k in kinds:
            med[k]["shmrt_speedup"] = base / med[k]["pps"]
        out[label] = {"transform": transform, "packets": n, "median": med, "samples": samples}
    return out


def latency(res: dict[str, Any], n: int = 20_000, workers: int = 2,
            kinds: tuple[str, ...] = ("shmrt", "asyncio"), progress: Any = None) -> dict[str, Any]:
    """p50 / p99 latency of each relay paced at half of its own maximum rate
    (from ``run``'s medians), for both transforms."""
    out: dict[str, Any] = {}
    for label, r in res.items():
        out[label] = {}
        for kind in kinds:
            target = r["median"][kind]["pps"] / 2
            if progress:
                progress(f"relay latency {label}: {kind} at {target:,.0f} pkt/s")
            m = min(n, int(target * 2) + 1000)  # about two seconds
            got = run_one(kind, r["transform"], m, workers, rate=target)
            out[label][kind] = got | {"rate": target}
    return out


def sizes(n: int = 20_000, workers: int = 2, kinds: tuple[str, ...] = ("shmrt", "plain"),
          progress: Any = None) -> dict[str, Any]:
    """pkt/s and MB/s of the identity relay against the datagram size."""
    out: dict[str, Any] = {}
    for kind in kinds:
        out[kind] = {}
        for size in SIZES:
            if progress:
                progress(f"relay sizes: {kind} {size} B")
            m = n if size <= 4096 else n // 4
            got = run_one(kind, LIGHT, m, workers, size=size, window=64 if size > 16384 else 256)
            out[kind][size] = got | {"mb_s": got["pps"] * size / 1e6}
    return out


def format_table(res: dict[str, Any]) -> str:
    lines = []
    for label, r in res.items():
        lines.append(f"relay, {label} transform ({r['transform']}), {r['packets']} x 1 KiB, "
                     "window 256, 8 flows")
        lines.append(f"  {'relay':<8} {'pkt/s':>10} {'p50 us':>9} {'p99 us':>9} "
                     f"{'shmrt x':>8} {'disorder':>9} {'cpu us/pkt':>11}")
        for kind, m in r["median"].items():
            lines.append(f"  {kind:<8} {m['pps']:>10.0f} {m['p50_us']:>9.1f} {m['p99_us']:>9.1f} "
                         f"{m['shmrt_speedup']:>8.2f} {m['out_of_order']:>9} "
                         f"{m.get('cpu_us', 0):>11.1f}")
    lines.append("cpu us/pkt: CPU time of the relay's processes per packet while packets flowed")
    return "\n".join(lines)


def format_latency(lat: dict[str, Any]) -> str:
    lines = ["latency at half of each relay's maximum rate (open loop, paced)"]
    for label, kinds in lat.items():
        for kind, m in kinds.items():
            lines.append(f"  {label:<9} {kind:<8} at {m['rate']:>9,.0f} pkt/s: p50 "
                         f"{m['p50_us']:>8.1f} us  p99 {m['p99_us']:>8.1f} us  "
                         f"(achieved {m['pps']:,.0f} pkt/s)")
    return "\n".join(lines)


def format_sizes(sz: dict[str, Any], width: int = 40) -> str:
    """A text chart: MB/s per datagram size, one bar per relay."""
    top = max(m["mb_s"] for k in sz.values() for m in k.values()) or 1.0
    lines = ["identity relay throughput against datagram size (MB/s of payload; pkt/s)"]
    for size in SIZES:
        for kind, k in sz.items():
            m = k.get(size) or k.get(str(size))
            if m is None:
                continue
            bar = "#" * max(1, round(m["mb_s"] / top * width))
            lines.append(f"  {size:>6} B {kind:<6} {bar:<{width}} {m['mb_s']:>8.1f} MB/s "
                         f"{m['pps']:>9,.0f} pkt/s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="shmrt bench relay")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--heavy", type=int, default=20_000, help="packets, heavy transform")
    ap.add_argument("--light", type=int, default=50_000, help="packets, identity")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency", action="store_true",
                    help="also: p50/p99 at half of the maximum rate (shmrt, asyncio)")
    ap.add_argument("--sizes", action="store_true",
                    help="also: identity throughput for 64 B .. 64 KiB datagrams")
    ap.add_argument("--json", dest="json_path")
    a = ap.parse_args(argv)

    def say(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    res = run(a.repeat, a.heavy, a.light, a.workers, progress=say)
    print(format_table(res))
    doc: dict[str, Any] = {"runs": res}
    if a.latency:
        doc["latency"] = latency(res, workers=a.workers, progress=say)
        print(format_latency(doc["latency"]))
    if a.sizes:
        doc["sizes"] = sizes(workers=a.workers, progress=say)
        print(format_sizes(doc["sizes"]))
    if a.json_path:
        with open(a.json_path, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
