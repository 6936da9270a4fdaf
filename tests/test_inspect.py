"""Tests of ``shmrt inspect`` (shmrt.tools.inspect).

Why these: the inspector is the tool people reach for when the runtime is
in trouble, so it is tested on trouble -- a live pool, a coordinator killed
with SIGKILL (stale segment), a worker killed mid-task while the coordinator
is frozen and cannot reclaim, hostile files in /dev/shm, and fuzzed bytes
for the pure-Python decoders (which may raise only InspectError).
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shmrt.tools.inspect import InspectError, main
from shmrt.tools.inspect import layout as L
from shmrt.tools.inspect.analyze import Options, build_report
from shmrt.tools.inspect.model import schema
from shmrt.tools.inspect.source import Image, RecordedProcs, parse_snapshot, proc_stat

import shmrt
from shmrt import _core

ROOT = Path(__file__).resolve().parent.parent
UID = os.geteuid()
SMALL = {"slots": 64, "arena_size": 1 << 20}


def _seg_path(name: str) -> str:
    return f"/dev/shm/shmrt.{UID}.{name}"


def _unlink(name: str) -> None:
    try:
        os.unlink(_seg_path(name))
    except FileNotFoundError:
        pass


def _inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _report(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, Any]:
    rc, out, err = _inspect(capsys, name, "--json", "--sample", "0")
    assert rc == 0, err
    return json.loads(out)


def _wait(pred: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    st_ = proc_stat(pid)
    return st_ is None or st_[0] in ("Z", "X")


# ---- a synthetic, valid image (no runtime needed) ------------------------------------------
CFG = {
    "n_workers": 2,
    "n_slots": 8,
    "slot_size": 256,
    "local_cap": 4,
    "n_clients": 1,
    "n_funcs": 1,
    "arena_size": 0,
}


def _image(**over: int) -> bytearray:
    lay = L.compute_layout(CFG)
    buf = bytearray(lay.total_size)
    vals = dict(
        CFG,
        magic=L.MAGIC,
        version=L.VERSION,
        total_size=lay.total_size,
        inject_cap=lay.inject_cap,
        workers_off=lay.workers_off,
        queues_off=lay.queues_off,
        inject_off=lay.inject_off,
        clients_off=lay.clients_off,
        funcs_off=lay.funcs_off,
        slots_off=lay.slots_off,
        arena_off=lay.arena_off,
        owner_uid=UID,
        created_ns=time.time_ns(),
        coord_pid=0,
        coord_start=0,
        max_payload=0,
        free_count=CFG["n_slots"],
    )
    vals.update(over)
    for k, v in vals.items():
        struct.pack_into("<Q", buf, L.HF[k], v)
    return buf


def _put_slot(buf: bytearray, idx: int, **fields: int) -> None:
    lay = L.decode_header(buf, len(buf)).layout
    for k, v in fields.items():
        struct.pack_into("<Q", buf, L.slot_off(lay, idx) + L.SF[k], v)


def _write_segment(name: str, data: bytes, mode: int = 0o600) -> str:
    path = _seg_path(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


@pytest.fixture
def segname(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"insp-{os.getpid()}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    _unlink(name)
    yield name
    _unlink(name)


# ---- layout mirror ---------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_layout_mirror_matches_core() -> None:
    for cfg in (
        CFG,
        dict(
            CFG,
            n_workers=7,
            n_slots=1000,
            slot_size=512,
            local_cap=256,
            n_clients=16,
            n_funcs=4096,
            arena_size=64 << 20,
        ),
    ):
        mine = L.compute_layout(cfg, cross_check=False)
        core = _core.compute_layout(cfg)
        assert {k: getattr(mine, k) for k in core} == core


@pytest.mark.timeout(60)
def test_schema_doc_is_current() -> None:
    doc = json.loads((ROOT / "docs" / "inspect-schema.json").read_text())
    assert doc == json.loads(json.dumps(schema()))


@pytest.mark.timeout(60)
def test_pickle_global_name_never_unpickles() -> None:
    import pickle

    for proto in (0, 2, 5):
        assert (
            L.pickle_global_name(pickle.dumps(helpers.square, protocol=proto)) == "helpers.square"
        )
    assert L.pickle_global_name(b"\x80\x05garbage") is None
    # a global whose name could style the terminal is refused
    evil = pickle.dumps(helpers.square, protocol=0).replace(b"square", b"sq[u]e")
    assert L.pickle_global_name(evil) is None


# ---- synthetic images: views and lints -------------------------------------------------------
@pytest.mark.timeout(60)
def test_synthetic_segment_and_snapshot(
    capsys: pytest.CaptureFixture[str], segname: str, tmp_path: Path
) -> None:
    buf = _image()
    now = time.monotonic_ns()
    R, C, N = _core.S_RUNNING, _core.S_COMPLETE, _core.S_NOTIFIED
    _put_slot(buf, 1, state=R | C | _core.REF_ONE)  # impossible
    _put_slot(buf, 2, state=N | 2 * _core.REF_ONE, submitted_ns=now - 100 * 10**9)  # stuck
    _put_slot(
        buf,
        3,
        state=R | 2 * _core.REF_ONE,
        owner=(2**31 << 32) | 1,
        submitted_ns=now - 10**9,
        started_ns=now - 10**9,
    )  # dead owner
    _put_slot(buf, 4, state=R | 64 * _core.REF_ONE, owner=(1 << 32) | 9)  # refs, bad worker
    _put_slot(buf, 5, state=C | _core.S_JOIN_INTEREST)  # free (refs 0): normal leftover flags
    _write_segment(segname, bytes(buf))
    rc, out, err = _inspect(capsys, segname, "--json", "--sample", "0")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["schema_version"] == 1
    lints = {(x["name"], x["slot"]) for x in rep["lints"]}
    assert ("impossible-state", 1) in lints
    assert ("stuck-in-queue", 2) in lints
    assert ("dead-owner", 3) in lints
    assert ("impossible-state", 4) in lints and ("corrupt", 4) in lints
    assert ("coordinator-dead", None) in lints
    assert not any(s == 5 for _, s in lints)
    assert [s["index"] for s in rep["slots"]] == [1, 2, 3, 4]
    # filters, -A, --check, tables
    rc, out, _ = _inspect(capsys, segname, "--json", "--sample", "0", "--state", "notified")
    assert [s["index"] for s in json.loads(out)["slots"]] == [2]
    rc, out, _ = _inspect(
        capsys, segname, "--check", "--sample", "0", "-A", "all", "-W", "dead-owner"
    )
    assert rc == 1 and out.count("\n") == 1 and "dead-owner" in out
    rc, out, _ = _inspect(capsys, segname, "--check", "--sample", "0", "-A", "all")
    assert (rc, out) == (0, "")
    for extra in ((), ("--tree",), ("--view", "all")):
        rc, out, err = _inspect(capsys, segname, "--sample", "0", *extra)
        assert rc == 0 and err == "" and "slot" in out
    # snapshot round trip
    snap = tmp_path / "s.snap"
    rc, _, err = _inspect(capsys, segname, "--save", str(snap), "--sample", "0")
    assert rc == 0 and os.stat(snap).st_mode & 0o777 == 0o600
    rc, out, _ = _inspect(capsys, "--from", str(snap), "--json")
    rep2 = json.loads(out)
    assert rep2["source"]["kind"] == "snapshot"
    assert [s["index"] for s in rep2["slots"]] == [1, 2, 3, 4]
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0xFF
    snap.write_bytes(bytes(data))
    rc, _, err = _inspect(capsys, "--from", str(snap))
    assert rc == 2 and "checksum" in err and err.count("\n") == 1


def _hostile_cases() -> dict[str, bytes]:
    good = _image()
    out = {
        "random": os.urandom(16384),
        "empty": b"",
        "truncated-header": bytes(good[:100]),
        "short-file": bytes(good[:-4096]),
    }
    for case, over in (
        ("magic", {"magic": 0x1234}),
        ("version", {"version": 99}),
        ("offsets", {"slots_off": 1 << 40}),
        ("size", {"total_size": 1 << 62}),
        ("counts", {"n_workers": 0}),
        ("slot-size", {"slot_size": 100}),
        ("inject-cap", {"inject_cap": 4}),
        ("payload", {"max_payload": 1 << 50}),
    ):
        out[case] = bytes(_image(**over))
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(_hostile_cases()))
def test_hostile_file_is_refused(
    capsys: pytest.CaptureFixture[str], segname: str, case: str
) -> None:
    _write_segment(segname, _hostile_cases()[case])
    rc, out, err = _inspect(capsys, segname)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err


@pytest.mark.timeout(60)
def test_open_permissions_and_odd_files(capsys: pytest.CaptureFixture[str], segname: str) -> None:
    path = _write_segment(segname, bytes(_image()), mode=0o644)
    rc, _, err = _inspect(capsys, segname)
    assert rc == 2 and "mode 644" in err and "permissions" in err and err.count("\n") == 1
    os.unlink(path)
    os.mkfifo(path, 0o600)  # must not block on open
    rc, _, err = _inspect(capsys, segname)
    assert rc == 2 and "not a regular file" in err
    os.unlink(path)
    os.symlink("/etc/hostname", path)
    rc, _, err = _inspect(capsys, segname)
    assert rc == 2 and "symbolic link" in err
    os.unlink(path)
    rc, _, err = _inspect(capsys, segname)
    assert rc == 2 and "no runtime segment" in err
    rc, _, err = _inspect(capsys, "../etc")
    assert rc == 2 and err.count("\n") == 1
    rc, _, err = _inspect(capsys, "--pid", str(2**31 - 2))
    assert rc == 2 and "no shmrt segment" in err


# ---- fuzz: only InspectError may escape the decoders -----------------------------------------
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.timeout(60)
@FUZZ
@given(st.binary(max_size=6000), st.integers(min_value=0, max_value=1 << 64))
def test_fuzz_header(data: bytes, size: int) -> None:
    try:
        L.decode_header(data, size)
    except InspectError:
        pass


@pytest.mark.timeout(60)
@FUZZ
@given(st.binary(max_size=400), st.integers(min_value=-10, max_value=400))
def test_fuzz_slot_and_pickle(data: bytes, off: int) -> None:
    try:
        s = L.decode_slot_at(data, off)
        assert s.refs >= 0
    except InspectError:
        pass
    name = L.pickle_global_name(data)
    assert name is None or L._NAME_OK.match(name.split(".")[0])
    try:
        parse_snapshot(data)
    except InspectError:
        pass


@pytest.mark.timeout(60)
@FUZZ
@given(st.integers(min_value=0, max_value=2**32), st.sampled_from([0, 1, 2, 8, 255]))
def test_fuzz_body_with_valid_header(seed: int, fill: int) -> None:
    """Random workers, queues, rings, clients and slots behind a valid header:
    the whole analysis must hold up (bounds checks, not exceptions)."""
    buf = _image()
    rnd = random.Random(seed)
    body = bytearray(rnd.randbytes(len(buf) - L.HEADER_SIZE))
    for i in range(0, len(body), 8):  # many small values: they pass more checks
        if rnd.random() < 0.7:
            struct.pack_into("<Q", body, i, rnd.choice([0, 1, 2, 3, fill, rnd.randrange(16)]))
    buf[L.HEADER_SIZE :] = body
    for k in ("run_state", "idle", "free_head", "free_count", "fn_count", "completed"):
        struct.pack_into("<Q", buf, L.HF[k], rnd.getrandbits(64))
    hdr = L.decode_header(buf, len(buf))
    img = Image(
        hdr,
        bytes(buf),
        "snapshot",
        "fuzz",
        "fuzz",
        False,
        time.monotonic_ns(),
        time.time_ns(),
        UID,
        0o600,
        RecordedProcs({}),
        lambda fid: None,
    )
    rep = build_report(img, Options(worker=0, older_than_s=0.0))
    assert rep.summary.n_workers == CFG["n_workers"]


# ---- live runtimes ----------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_live_pool(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    name = f"insp-live-{os.getpid()}"
    with shmrt.Pool(2, name=name, **SMALL) as pool:
        assert pool.submit(helpers.square, 4).result() == 16
        futs = [pool.submit(helpers.sleep_then, i, 3.0) for i in range(2)]
        rep = _wait(
            lambda: (
                (r := _report(capsys, name))
                and {w["pid"] for w in r["workers"]} == set(pool.worker_pids)
                and any(
                    s["function"] == "helpers.sleep_then" and "RUNNING" in s["flags"]
                    for s in r["slots"]
                )
                and r
            ),
            "workers to register and run",
        )
        assert len(rep["workers"]) == 2
        assert all(w["alive"] for w in rep["workers"])
        assert (
            rep["summary"]["coordinator_alive"] and rep["summary"]["coordinator_pid"] == os.getpid()
        )
        assert rep["summary"]["completed"] >= 1
        assert not [x for x in rep["lints"] if x["name"] != "long-running"]
        rc, out, _ = _inspect(
            capsys, "--pid", str(pool.worker_pids[1]), "--json", "--sample", "0.1"
        )
        assert rc == 0 and json.loads(out)["source"]["name"] == name
        snap = tmp_path / "live.snap"
        rc, _, _ = _inspect(capsys, name, "--save", str(snap), "--sample", "0")
        rc, out, _ = _inspect(capsys, "--from", str(snap), "--json")
        assert rc == 0
        assert {w["pid"] for w in json.loads(out)["workers"]} == set(pool.worker_pids)
        # --watch: refreshes until Ctrl-C, which exits 0
        w = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shmrt.tools.inspect",
                name,
                "--watch",
                "--json",
                "--interval",
                "0.1",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert w.stdout is not None
            lines = [w.stdout.readline(), w.stdout.readline()]
            assert all(json.loads(x)["source"]["name"] == name for x in lines)
            w.send_signal(signal.SIGINT)
            assert w.wait(timeout=20) == 0
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
            if w.stdout is not None:
                w.stdout.close()
        assert [f.result(timeout=30) for f in futs] == [0, 1]


COORDINATOR = textwrap.dedent("""
    import sys, time
    import helpers, shmrt

    if __name__ == "__main__":
        pool = shmrt.Pool(2, name=sys.argv[1], slots=64, arena_size=1 << 20)
        fut = pool.submit(helpers.sleep_then, 1, 120)
        print(" ".join(map(str, pool.worker_pids)), flush=True)
        time.sleep(120)
""")


def _start_coordinator(tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "coordinator.py"
    script.write_text(COORDINATOR)
    p = subprocess.Popen([sys.executable, str(script), name], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        p.wait()
        raise AssertionError("the coordinator script failed to start its pool")
    return p, [int(x) for x in line.split()]


def _stop_coordinator(p: subprocess.Popen[str], workers: list[int], name: str) -> None:
    try:
        if p.poll() is None:
            p.kill()  # SIGKILL ends a SIGSTOPped process too
        p.wait(timeout=20)
        if p.stdout is not None:
            p.stdout.close()
        _wait(lambda: all(_gone(w) for w in workers), "workers to exit", 20)
    finally:
        _unlink(name)


@pytest.mark.timeout(60)
def test_coordinator_killed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    name = f"insp-coord-{os.getpid()}"
    p, workers = _start_coordinator(tmp_path, name)
    try:
        _wait(
            lambda: {w["pid"] for w in _report(capsys, name)["workers"]} == set(workers),
            "workers to register",
        )
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=20)
        _wait(lambda: all(_gone(w) for w in workers), "workers to exit after their coordinator")
        rep = _report(capsys, name)
        assert not rep["summary"]["coordinator_alive"]
        assert rep["summary"]["coordinator_pid"] == p.pid
        names = {x["name"] for x in rep["lints"]}
        assert "coordinator-dead" in names
        assert not any(w["alive"] for w in rep["workers"])
        rc, out, err = _inspect(capsys, name, "--check")
        assert rc == 1 and "coordinator-dead" in out and err == ""
        rc, out, _ = _inspect(capsys, name, "--sample", "0")
        assert rc == 0 and "DEAD" in out
    finally:
        _stop_coordinator(p, workers, name)


@pytest.mark.timeout(60)
def test_worker_killed_while_coordinator_frozen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = f"insp-frozen-{os.getpid()}"
    p, workers = _start_coordinator(tmp_path, name)
    try:

        def running() -> dict[str, Any] | None:
            for s in _report(capsys, name)["slots"]:
                if "RUNNING" in s["flags"] and s["owner_pid"] in workers:
                    return s
            return None

        slot = _wait(running, "the long task to start")
        os.kill(p.pid, signal.SIGSTOP)  # frozen: it cannot reap or reclaim
        os.kill(slot["owner_pid"], signal.SIGKILL)
        _wait(lambda: _gone(slot["owner_pid"]), "the worker to die")
        rep = _report(capsys, name)
        dead = [x for x in rep["lints"] if x["name"] == "dead-owner"]
        assert [x["slot"] for x in dead] == [slot["index"]]
        assert dead[0]["pid"] == slot["owner_pid"]
        rc, out, _ = _inspect(capsys, name, "--check", "-A", "all", "-W", "dead-owner")
        assert rc == 1 and "dead-owner" in out
    finally:
        _stop_coordinator(p, workers, name)
