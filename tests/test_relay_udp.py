"""End to end: 100,000 datagrams through ``shmrt relay`` over loopback UDP."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

import pytest

from shmrt.relay import udp_socket
from shmrt.transforms import TAG_SIZE, tag_of

N = 100_000
FLOWS = 8
WINDOW = 512  # datagrams in flight: keeps every socket buffer far from full


def _udp(rcvbuf: int = 8 << 20) -> socket.socket:
    return udp_socket(("127.0.0.1", 0), rcvbuf)


@pytest.mark.timeout(180)
def test_udp_relay_end_to_end() -> None:
    rx = _udp()
    rx_port = rx.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "shmrt.cli", "relay", "--listen", "127.0.0.1:0",
         "--to", f"127.0.0.1:{rx_port}", "--transform", "shmrt.transforms:blake2b_tag",
         "--workers", "2", "--count", str(N), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    senders = [_udp(1 << 20) for _ in range(FLOWS)]
    try:
        line = proc.stderr.readline()
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        assert m, line
        dst = ("127.0.0.1", int(m.group(1)))
        flow_of = {s.getsockname()[1]: i for i, s in enumerate(senders)}
        expected = [0] * FLOWS
        received = bad = 0
        rx.setblocking(False)

        def drain(block: bool) -> None:
            nonlocal received, bad
            if block:
                r, _, _ = select.select([rx], [], [], 10)
                assert r, f"no datagram for 10 s (received {received})"
            while True:
                try:
                    data = rx.recv(65536)
                except BlockingIOError:
                    return
                body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
                if tag != tag_of(body):
                    bad += 1
                    continue
                port, seq = struct.unpack_from("<HI", body)
                f = flow_of[port]
                assert seq == expected[f], f"flow {f}: got seq {seq}, expected {expected[f]}"
                expected[f] += 1
                received += 1

        pad = b"p" * 58
        for i in range(N):
            s = senders[i % FLOWS]
            s.sendto(struct.pack("<HI", s.getsockname()[1], i // FLOWS) + pad, dst)
            while i + 1 - received > WINDOW:
                drain(block=True)
            if i % 64 == 0:
                drain(block=False)
        while received < N:
            drain(block=True)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        rx.close()
        for s in senders:
            s.close()
    assert bad == 0
    assert received == N
    assert expected == [N // FLOWS] * FLOWS
    assert summary["received"] == N
    assert summary["sent"] == N
    assert summary["dropped"] == {"filtered": 0, "error": 0, "crashed": 0, "in_doubt": 0,
                                  "full": 0, "kernel": 0, "no_space": 0}
    assert summary["pending_with_capacity"] == 0
    assert os.path.exists("/dev/shm") and not any(
        f.startswith(f"shmrt.{os.geteuid()}.pool-{proc.pid}-") for f in os.listdir("/dev/shm"))


@pytest.mark.timeout(120)
def test_kernel_drops_are_counted_and_count_still_fires() -> None:
    """A burst that overruns the listening socket (a 4 KiB receive buffer):
    the kernel drops datagrams, the relay reports them, received + drops
    equals what was sent, and --count N fires although the last datagrams
    never reached the relay."""
    total = 3000
    rx = _udp()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shmrt.cli", "relay", "--listen", "127.0.0.1:0",
         "--to", f"127.0.0.1:{rx.getsockname()[1]}", "--transform", "shmrt.transforms:identity",
         "--workers", "1", "--count", str(total), "--rcvbuf", "4096", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tx = _udp(1 << 20)
    try:
        line = proc.stderr.readline()
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        assert m, line
        dst = ("127.0.0.1", int(m.group(1)))
        for i in range(total):  # faster than the relay takes them from a 4 KiB buffer
            tx.sendto(struct.pack("<I", i) + b"x" * 1000, dst)
            if i % 100 == 99:  # pacing: stay under the loopback device's backlog (1,000
                time.sleep(0.001)  # packets), whose drops no socket counter sees
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        tx.close()
        rx.close()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["kernel_drops"] > 0, summary
    assert summary["received"] + summary["kernel_drops"] == total, summary
    # kernel drops happen before the relay's count of received datagrams
    dropped = sum(v for k, v in summary["dropped"].items() if k != "kernel")
    assert summary["dropped"]["kernel"] == summary["kernel_drops"]
    assert summary["sent"] + dropped == summary["received"], summary
