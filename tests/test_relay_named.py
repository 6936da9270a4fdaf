"""Named relays: started by name, fed by other processes (Relay.connect);
per-flow order holds per (sender, flow)."""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import struct

import pytest
import relaysink

import shmrt
from shmrt.errors import RuntimeNotFound
from shmrt.relay import udp_socket

pytestmark = pytest.mark.timeout(120)


def test_named_relay_fed_by_three_processes_keeps_per_process_flow_order() -> None:
    """3 processes x 4 flows x 500 packets, the transform jitters (CPU
    workers finish out of order), the same flow numbers in every process:
    each (process, flow) comes out in order, nothing lost or doubled."""
    procs_n, flows, per = 3, 4, 2000
    name = f"named-{os.getpid()}"
    rx = udp_socket(("127.0.0.1", 0), 16 << 20)
    ctx = mp.get_context("spawn")
    procs = []
    got: list[bytes] = []
    try:
        with shmrt.Relay(relaysink.jitter, shmrt.UdpSink(rx.getsockname()[:2]), workers=2,
                         name=name, max_inflight=512) as r:
            r.wait_ready(30)
            procs = [ctx.Process(target=relaysink.feed_named, args=(name, p, per, flows))
                     for p in range(procs_n)]
            for p in procs:
                p.start()
            while len(got) < procs_n * per:
                if not select.select([rx], [], [], 20)[0]:
                    break
                got.append(rx.recv(65536))
            for p in procs:
                p.join(30)
                assert p.exitcode == 0
            assert r.flush(30)
            st = r.statistics()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        rx.close()
    assert len(got) == procs_n * per
    nxt = {(p, f): 0 for p in range(procs_n) for f in range(flows)}
    for d in got:
        seq, p, f = struct.unpack_from("<IHH", d)
        assert seq == nxt[(p, f)], f"process {p} flow {f}: seq {seq}, expected {nxt[(p, f)]}"
        nxt[(p, f)] += 1
    assert all(v == per // flows for v in nxt.values())
    assert st["sent"] == procs_n * per
    assert st["pending_with_capacity"] == 0


def test_connect_errors() -> None:
    with pytest.raises(RuntimeNotFound):
        shmrt.Relay.connect(f"no-such-relay-{os.getpid()}")
    with shmrt.Pool(1, name=f"plainpool-{os.getpid()}") as pool:
        with pytest.raises(RuntimeNotFound, match="not a relay"):
            shmrt.Relay.connect(pool.name)


def test_cli_named_relay_fed_by_connect() -> None:
    """``shmrt relay --name NAME`` (no --listen): a process connects by name
    and sends; the datagrams arrive in order; SIGINT stops it cleanly."""
    import signal
    import subprocess
    import sys

    name = f"clinamed-{os.getpid()}"
    rx = udp_socket(("127.0.0.1", 0), 8 << 20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shmrt.cli", "relay", "--name", name, "--to",
         f"127.0.0.1:{rx.getsockname()[1]}", "--workers", "1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert "named" in line and f"shmrt.Relay.connect('{name}')" in line, line
        with shmrt.Relay.connect(name) as r:
            for i in range(300):
                r.send(struct.pack("<I", i), flow=i % 3)
            assert r.flush(30)
        got = []
        while len(got) < 300 and select.select([rx], [], [], 10)[0]:
            got.append(struct.unpack("<I", rx.recv(64))[0])
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        rx.close()
    assert proc.returncode == 0, err
    for f in range(3):
        seqs = [i for i in got if i % 3 == f]
        assert seqs == sorted(seqs) and len(seqs) == 100
    import json

    assert json.loads(out.strip().splitlines()[-1])["sent"] == 300


def test_cli_relay_needs_listen_or_name() -> None:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "shmrt.cli", "relay", "--to", "127.0.0.1:9"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "--listen HOST:PORT, --name NAME" in p.stderr
