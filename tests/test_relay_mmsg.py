"""The relay's batched UDP path (shmrt/_core/udp.c, udp_send.c) in process:
recvmmsg into slots, the built-in identity completed at the ingress, a
Python transform on the CPU workers, sendmmsg from the send workers; every
datagram checked byte for byte, per-flow order kept; kernel drops counted
from SO_RXQ_OVFL."""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys

import pytest

import shmrt
from shmrt.relay import udp_socket
from shmrt.transforms import TAG_SIZE, tag_of

pytestmark = pytest.mark.timeout(120)
FLOWS = 4


def _payload(flow: int, seq: int, size: int) -> bytes:
    head = struct.pack("<HI", flow, seq)
    return head + bytes((seq + i) & 0xFF for i in range(size - len(head)))


def _run(transform: str, sizes: list[int], n: int, ordered: bool = True,
         send_workers: int = 2) -> tuple[dict, list[bytes], list[bytes]]:
    """n datagrams (sizes cycling) from FLOWS sockets through a relay fed by
    serve_udp; returns (statistics, what was sent, what came back)."""
    rx = udp_socket(("127.0.0.1", 0), 8 << 20)
    ingress = udp_socket(("127.0.0.1", 0), 8 << 20)
    senders = [udp_socket(("127.0.0.1", 0), 1 << 20) for _ in range(FLOWS)]
    sent: list[bytes] = []
    got: list[bytes] = []
    try:
        with shmrt.Relay(transform, shmrt.UdpSink(rx.getsockname()[:2]), workers=2,
                         send_workers=send_workers, ordered=ordered, max_inflight=256) as r:
            r.wait_ready(30)
            seqs = [0] * FLOWS
            for i in range(n):
                f = i % FLOWS
                data = _payload(f, seqs[f], sizes[i % len(sizes)])
                seqs[f] += 1
                senders[f].sendto(data, ingress.getsockname()[:2])
                sent.append(data)
                if i % 32 == 31 or i == n - 1:  # a window: nothing overruns a buffer
                    while r.serve_udp(ingress, timeout=0.05):
                        pass
                    _drain(rx, got, block=False)
            r.flush(30)
            st = r.statistics()
        while len(got) < n and _drain(rx, got, block=True):
            pass
    finally:
        for s in (rx, ingress, *senders):
            s.close()
    return st, sent, got


def _drain(rx: socket.socket, got: list[bytes], block: bool) -> bool:
    if not select.select([rx], [], [], 5 if block else 0)[0]:
        return False
    while select.select([rx], [], [], 0)[0]:
        got.append(rx.recv(65536))
    return True


def _check_order(sent: list[bytes], got: list[bytes], strip: int = 0) -> None:
    want = {_key(d): d for d in sent}
    nxt = [0] * FLOWS
    for d in got:
        body = d[:len(d) - strip] if strip else d
        f, seq = struct.unpack_from("<HI", body)
        assert seq == nxt[f], f"flow {f}: seq {seq}, expected {nxt[f]}"
        nxt[f] += 1
        assert body == want[(f, seq)], f"flow {f} seq {seq}: payload differs"


def _key(d: bytes) -> tuple[int, int]:
    return struct.unpack_from("<HI", d)


def test_identity_in_c_small_and_large_datagrams() -> None:
    """Identity never reaches a CPU worker; datagrams past the slot (arena
    blocks) and up to 60,000 bytes come back intact and in per-flow order."""
    sizes = [64, 1000, 1900, 2100, 9000, 60_000]
    st, sent, got = _run("shmrt.transforms:identity", sizes, 600)
    assert len(got) == len(sent) == 600
    _check_order(sent, got)
    assert st["sent"] == 600 and st["received"] == 600
    assert sum(w["tasks_run"] for w in st["runtime"]["workers"]) == 0  # done at the ingress
    assert all(v == 0 for v in st["dropped"].values()), st["dropped"]
    assert st["pending_with_capacity"] == 0


def test_python_transform_through_the_c_ingress_tags_verified() -> None:
    """blake2b_tag runs on the CPU workers (Python); ingress and send in C."""
    st, sent, got = _run("shmrt.transforms:blake2b_tag", [100, 1500, 5000], 900)
    assert len(got) == 900
    for d in got:
        body, tag = d[:-TAG_SIZE], d[-TAG_SIZE:]
        assert tag == tag_of(body)
    _check_order(sent, got, strip=TAG_SIZE)
    assert st["sent"] == 900 and st["received"] == 900


def test_unordered_c_send_loses_nothing() -> None:
    st, sent, got = _run("shmrt.transforms:identity", [200], 400, ordered=False, send_workers=1)
    assert sorted(got) == sorted(sent)
    assert st["sent"] == 400


def test_kernel_drops_from_so_rxq_ovfl() -> None:
    """A burst that overruns a 4 KiB receive buffer before the relay reads:
    the drop count the kernel attaches to the next datagram (SO_RXQ_OVFL)
    is in statistics(), and sent == received + kernel drops + counted drops."""
    rx = udp_socket(("127.0.0.1", 0), 8 << 20)
    tx = udp_socket(("127.0.0.1", 0), 1 << 20)
    try:
        with shmrt.Relay("shmrt.transforms:identity", shmrt.UdpSink(rx.getsockname()[:2]),
                         workers=1, name=f"kdrops-{os.getpid()}") as r:
            r.wait_ready(30)
            ingress = udp_socket(("127.0.0.1", 0), 4096)
            r.serve_udp(ingress, timeout=0.01)  # sets SO_RXQ_OVFL before the burst
            total = 400
            for i in range(total - 1):
                tx.sendto(struct.pack("<I", i) + b"x" * 1000, ingress.getsockname()[:2])
            received = r.serve_udp(ingress, timeout=0.1)
            tx.sendto(b"last", ingress.getsockname()[:2])  # carries the drop count
            received += r.serve_udp(ingress, timeout=0.5)
            r.flush(30)
            ingress_ctr = r.statistics()["ingress"]  # the C counter alone, before /proc
            insp = subprocess.run([sys.executable, "-m", "shmrt.cli", "inspect", r.name, "--json",
                                   "--sample", "0"], capture_output=True, text=True, timeout=60)
            st = r.statistics()
            ingress.close()
    finally:
        rx.close()
        tx.close()
    counted = sum(v for k, v in st["dropped"].items() if k != "kernel")
    assert ingress_ctr["kernel_drops"] > 0
    assert ingress_ctr["kernel_drops"] == total - received - counted
    assert st["kernel_drops"] == total - received - counted
    assert st["received"] == received
    assert insp.returncode == 0, insp.stderr
    assert json.loads(insp.stdout)["relay"]["drops"]["kernel"] == ingress_ctr["kernel_drops"]
