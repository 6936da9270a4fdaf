"""Relay sinks for tests: run in the send worker process."""

from __future__ import annotations

import os
from typing import Any

OUT = os.environ.get("SHMRT_TEST_SINK_FILE")


def collect(packet: Any, flow: int) -> None:
    """Append (flow, first 8 bytes) records to $SHMRT_TEST_SINK_FILE, if set."""
    if OUT:
        with open(OUT, "ab") as f:
            f.write(flow.to_bytes(8, "little") + bytes(packet[:8]))


def discard(packet: Any, flow: int) -> None:
    pass


_fd: int | None = None


def record(packet: Any, flow: int) -> None:
    """Append (flow u64, seq u32) records to $SHMRT_TEST_SINK_FILE (fd kept open)."""
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["SHMRT_TEST_SINK_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, flow.to_bytes(8, "little") + bytes(packet[:4]))


def jitter(packet: memoryview) -> bytes:
    """Identity after a pseudo-random busy delay of 0-40 us (seeded by the
    packet), so CPU workers finish packets out of order."""
    import time

    seq = int.from_bytes(packet[:4], "little")
    end = time.perf_counter() + ((seq * 2654435761) % 41) * 1e-6
    while time.perf_counter() < end:
        pass
    return bytes(packet)


def flaky(packet: memoryview) -> bytes | None:
    """Raise for packets whose first byte is 0xEE, filter 0xFF, else identity."""
    if packet[0] == 0xEE:
        raise ValueError("bad packet")
    if packet[0] == 0xFF:
        return None
    return bytes(packet)


def slow_or_die(packet: memoryview) -> bytes:
    """Packets starting with b'K' kill their worker (once: a marker file)."""
    import signal
    import time

    if packet[:1] == b"K":
        marker = os.environ["SHMRT_TEST_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.0005)
    return bytes(packet)


def producer(shm_file: str, n: int, out: str) -> None:
    """Acquire n units of the relay budget (blocking), recording each."""
    from shmrt.segment import attach_path

    seg = attach_path(shm_file, writable=True)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for _ in range(n):
        rc = seg.relay_acquire(30.0, False)
        os.write(fd, b"1" if rc == 0 else b"X")
    os.close(fd)
    seg.close()


def slow_record(packet: Any, flow: int) -> None:
    """record(), after 200 us: a slow consumer behind a tiny send ring."""
    import time

    end = time.perf_counter() + 200e-6
    while time.perf_counter() < end:
        pass
    record(packet, flow)


def identity_packet(packet: memoryview) -> bytes:
    return bytes(packet)


def feed_named(name: str, proc: int, n: int, flows: int) -> None:
    """A process of its own feeding the named relay: n packets
    (seq u32, proc u16, flow u16, padding) round-robin over `flows` flows."""
    import struct

    import shmrt

    seqs = [0] * flows
    with shmrt.Relay.connect(name) as r:
        for i in range(n):
            f = i % flows
            r.send(struct.pack("<IHH", seqs[f], proc, f) + b"n" * (40 + i % 300), flow=f)
            seqs[f] += 1


def ingress_named(name: str, port_file: str) -> None:
    """A process of its own running the UDP ingress of a named relay: binds a
    socket, writes its port to `port_file`, receives until killed (a crash
    test arms it) or idle for 5 s."""
    import shmrt
    from shmrt.relay import udp_socket

    sock = udp_socket(("127.0.0.1", 0), 8 << 20)
    with shmrt.Relay.connect(name) as r:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(sock.getsockname()[1]))
        os.rename(port_file + ".tmp", port_file)
        while r.serve_udp(sock, timeout=5.0):
            pass
