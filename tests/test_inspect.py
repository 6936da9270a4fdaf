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
import msgspec
import pytest
import relaysink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shmrt.tools.inspect import InspectError, main
from shmrt.tools.inspect import layout as L
from shmrt.tools.inspect.analyze import Options, build_report
from shmrt.tools.inspect.model import schema
from shmrt.tools.inspect.source import (
    Image,
    RecordedProcs,
    RelayRecheck,
    parse_snapshot,
    proc_stat,
)

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


# the same with a relay region: 2 send rings of 4, 3 waiter entries, a budget of 4
RCFG = dict(CFG, n_send=2, send_cap=4, n_waiters=3, inflight=4)


def _image(cfg: dict[str, int] = CFG, **over: int) -> bytearray:
    lay = L.compute_layout(cfg)
    buf = bytearray(lay.total_size)
    vals = dict(
        cfg,
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
        relay_off=lay.relay_off,
        holds_off=lay.holds_off,
        owner_uid=UID,
        created_ns=time.time_ns(),
        coord_pid=0,
        coord_start=0,
        max_payload=0,
        free_count=cfg["n_slots"],
    )
    vals.update(over)
    for k, v in vals.items():
        struct.pack_into("<Q", buf, L.HF[k], v)
    if lay.n_send:  # relay_init: a full budget
        for k in ("avail", "capacity"):
            struct.pack_into("<Q", buf, lay.relay_off + L.RF[k], lay.inflight)
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


# ---- layout: the C core's, read through shmrt.layout ---------------------------------------
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
        RCFG,
        dict(RCFG, n_send=0),  # relay keys without send workers: no relay region
        dict(RCFG, n_slots=1000, n_send=3, send_cap=1024, n_waiters=64, inflight=1000),
        dict(RCFG, n_send=64, send_cap=2, n_waiters=4096, inflight=1),
    ):
        mine = L.compute_layout(cfg)
        core = _core.compute_layout(cfg)
        assert {k: getattr(mine, k) for k in core} == core
        assert mine.relay_off + mine.relay_len <= mine.slots_off
        if not cfg.get("n_send"):
            assert (mine.relay_len, mine.relay_hdr, mine.send_stride, mine.send_cap) == (0,) * 4
    for bad in (
        dict(RCFG, n_send=65),
        dict(RCFG, send_cap=3),
        dict(RCFG, send_cap=1),
        dict(RCFG, n_waiters=0),
        dict(RCFG, inflight=0),
        dict(RCFG, inflight=RCFG["n_slots"] + 1),
    ):
        with pytest.raises(ValueError):
            _core.compute_layout(bad)
        with pytest.raises(InspectError):
            L.compute_layout(bad)


@pytest.mark.timeout(60)
def _schema_shape(node: object) -> object:
    """The schema with prose normalised: msgspec versions differ in how they
    dedent docstrings into descriptions, and that is not a schema change."""
    if isinstance(node, dict):
        return {k: (" ".join(v.split()) if k == "description" and isinstance(v, str)
                    else _schema_shape(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_schema_shape(v) for v in node]
    return node


def test_schema_doc_is_current() -> None:
    doc = json.loads((ROOT / "docs" / "inspect-schema.json").read_text())
    assert _schema_shape(doc) == _schema_shape(json.loads(json.dumps(schema())))


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
        ("relay-off", {"relay_off": 0}),
    ):
        out[case] = bytes(_image(**over))
    for case, over in (
        ("relay-n-send", {"n_send": 65}),
        ("relay-send-cap", {"send_cap": 3}),
        ("relay-waiters", {"n_waiters": 5000}),
        ("relay-inflight", {"inflight": RCFG["n_slots"] + 1}),
        ("relay-relay-off", {"relay_off": 4096}),
        ("relay-dropped", {"n_send": 0}),  # the relay region is still there: sizes disagree
    ):
        out[case] = bytes(_image(RCFG, **over))
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
    assert rc == 2 and "is a FIFO" in err and "refusing" in err and err.count("\n") == 1
    os.unlink(path)
    os.symlink("/etc/hostname", path)
    rc, _, err = _inspect(capsys, segname)
    assert rc == 2 and "is a symbolic link to '/etc/hostname'" in err and err.count("\n") == 1
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
@given(
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from([0, 1, 2, 8, 255]),
    st.booleans(),
)
def test_fuzz_body_with_valid_header(seed: int, fill: int, relay: bool) -> None:
    """Random workers, queues, rings, clients, relay region and slots behind a
    valid header: the whole analysis must hold up (bounds checks, not exceptions)."""
    cfg = RCFG if relay else CFG
    buf = _image(cfg)
    rnd = random.Random(seed)
    body = bytearray(rnd.randbytes(len(buf) - L.HEADER_SIZE))
    for i in range(0, len(body), 8):  # many small values: they pass more checks
        if rnd.random() < 0.7:
            struct.pack_into("<Q", body, i, rnd.choice([0, 1, 2, 3, fill, rnd.randrange(16)]))
    buf[L.HEADER_SIZE :] = body
    for k in ("run_state", "idle", "free_head", "free_count", "fn_count", "completed"):
        struct.pack_into("<Q", buf, L.HF[k], rnd.getrandbits(64))
    img = _img(buf)
    if relay and rnd.random() < 0.5:  # a hostile re-check too (it comes from snapshots)
        small = [0, 1, 2, 4, 1 << 63, (1 << 64) - 1]
        img.relay_recheck = RelayRecheck(
            delay_ns=rnd.getrandbits(64),
            avail=rnd.choice(small),
            waiters=[(rnd.choice(small), rnd.choice(small)) for _ in range(rnd.randrange(6))],
            rings=[
                tuple(rnd.choice(small) for _ in range(3))  # type: ignore[misc]
                for _ in range(rnd.randrange(4))
            ],
        )
    rep = build_report(img, Options(worker=0, older_than_s=0.0))
    assert rep.summary.n_workers == cfg["n_workers"]
    assert (rep.relay is not None) == relay
    json.loads(msgspec.json.encode(rep))


# ---- the relay view and its lints (synthetic) -----------------------------------------------
def _img(buf: bytearray, recheck: RelayRecheck | None = None) -> Image:
    return Image(
        L.decode_header(buf, len(buf)),
        bytes(buf),
        "snapshot",
        "synthetic",
        "synthetic",
        False,
        time.monotonic_ns(),
        time.time_ns(),
        UID,
        0o600,
        RecordedProcs({}),
        lambda fid: None,
        relay_recheck=recheck,
    )


def _put(buf: bytearray, off: int, v: int) -> None:
    struct.pack_into("<Q", buf, off, v)


def _push_ring(buf: bytearray, off: int, cap: int, entries: list[int], start: int = 5) -> None:
    """Publish ``entries`` on the ring at ``off`` (positions from ``start``):
    one word per cell, (seq << 32) | value, seq = position + 1 (queue.h)."""
    _put(buf, off + L.QF["deq"], start)
    _put(buf, off + L.QF["enq"], start + len(entries))
    for i, v in enumerate(entries):
        pos = start + i
        cell = off + L.RING_HDR + L.CELL_SIZE * (pos & (cap - 1))
        _put(buf, cell, ((pos + 1) << 32) | v)


WAITING = _core.WT_WAITING


def _relay_image() -> bytearray:
    """A relay in trouble: a waiter WAITING with budget free, ring 0 stranded
    (room on the ring, a packet on its waitlist), counters that must stay 0
    non-zero, and three relay packets."""
    buf = _image(RCFG)
    lay = L.compute_layout(RCFG)
    r = lay.relay_off
    _put(buf, r + L.RF["avail"], 2)
    for k, v in (
        ("registrations", 9),
        ("wakes", 6),
        ("recheck", 2),
        ("pending_with_capacity", 1),
        ("fast", 100),
        ("full", 7),
    ):
        _put(buf, r + L.RF[k], v)
    _put(buf, L.waiter_off(lay, 0) + L.WTF["pid"], os.getpid())
    _put(buf, L.waiter_off(lay, 0) + L.WTF["state"], (5 << 8) | WAITING)
    _put(buf, L.waiter_off(lay, 1) + L.WTF["pid"], 123)
    _put(buf, L.waiter_off(lay, 1) + L.WTF["state"], (1 << 8) | _core.WT_WOKEN)
    _put(buf, L.waiter_off(lay, 2) + L.WTF["state"], (3 << 8) | _core.WT_CANCELLED)  # free
    s0, s1 = L.send_off(lay, 0), L.send_off(lay, 1)
    _push_ring(buf, s0 + L.TF["rings"], lay.send_cap, [1, 2])
    _push_ring(buf, s0 + lay.waitlist_rel, lay.inject_cap, [3])
    for k, v in (
        ("pid", 4242),
        ("backlog", 5),
        ("pending_with_capacity", 3),
        ("sent", 10),
        ("filtered", 2),
        ("errors", 1),
        ("crashed", 1),
    ):
        _put(buf, s1 + L.TF[k], v)
    done = _core.S_COMPLETE | _core.REF_ONE
    for idx in (1, 2, 3):
        _put_slot(buf, idx, state=done, kind=1, holder=_core.HOLDER_RELAY, flow=0xABC, seq=10 + idx)
    _put_slot(buf, 3, result=_core.ST_FILTERED << 32)
    return buf


@pytest.mark.timeout(60)
def test_relay_view_and_lints(
    capsys: pytest.CaptureFixture[str], segname: str, tmp_path: Path
) -> None:
    _write_segment(segname, bytes(_relay_image()))
    rep = _report(capsys, segname)
    relay = rep["relay"]
    assert relay is not None
    assert (relay["budget_capacity"], relay["budget_avail"], relay["budget_used"]) == (4, 2, 2)
    assert (relay["waiter_entries"], relay["waiters_in_use"]) == (3, 2)
    assert relay["waiters"] == [
        {"index": 0, "pid": os.getpid(), "state": "waiting", "gen": 5},
        {"index": 1, "pid": 123, "state": "woken", "gen": 1},
    ]
    assert relay["drops"] == {"filtered": 2, "error": 1, "crashed": 1, "in_doubt": 0, "full": 7,
                              "kernel": 0, "no_space": 0}
    assert (relay["registrations"], relay["wakes"], relay["recheck"]) == (9, 6, 2)
    r0, r1 = relay["rings"]
    assert (r0["depth"], r0["waitlist"], r0["capacity"], r0["pid"]) == (2, 1, 4, 0)
    assert (r1["depth"], r1["pid"], r1["backlog"], r1["sent"]) == (0, 4242, 5, 10)
    assert r1["pending_with_capacity"] == 3
    lints = [(x["name"], x["pid"]) for x in rep["lints"] if x["name"] != "coordinator-dead"]
    assert sorted(lints, key=str) == sorted(
        [
            ("waiter-not-woken", os.getpid()),  # the WAITING entry, budget free
            ("waiter-not-woken", None),  # relay pending_with_capacity
            ("waiter-not-woken", 4242),  # ring 1 pending_with_capacity
            ("send-ring-stranded", None),  # ring 0
        ],
        key=str,
    )
    waiter = next(x for x in rep["lints"] if x["pid"] == os.getpid())
    assert "still" in waiter["message"]  # a live read confirmed it with a re-check
    slots = {s["index"]: s for s in rep["slots"]}
    assert sorted(slots) == [1, 2, 3]
    for i, where in ((1, ["send 0"]), (2, ["send 0"]), (3, ["waitlist 0"])):
        s = slots[i]
        assert (s["kind"], s["holder"], s["flow"], s["seq"], s["where"]) == (
            "packet",
            "relay",
            0xABC,
            10 + i,
            where,
        )
    assert slots[3]["status"] == "filtered"
    # text: the relay view is shown by default
    rc, out, err = _inspect(capsys, segname, "--sample", "0")
    assert rc == 0 and err == ""
    assert "send rings" in out and "relay budget" in out and "flow 0xabc seq 11" in out
    rc, out, _ = _inspect(
        capsys, segname, "--check", "--sample", "0", "-A", "all", "-W", "send-ring-stranded"
    )
    assert rc == 1 and out.count("\n") == 1 and "send-ring-stranded" in out
    # a snapshot keeps the re-check, and gives the same lints
    snap = tmp_path / "relay.snap"
    rc, _, _ = _inspect(capsys, segname, "--save", str(snap), "--sample", "0")
    assert rc == 0
    rc, out, _ = _inspect(capsys, "--from", str(snap), "--json")
    rep2 = json.loads(out)
    assert rep2["relay"] == relay
    assert [x["message"] for x in rep2["lints"]] == [x["message"] for x in rep["lints"]]
    rc, out, _ = _inspect(capsys, "--from", str(snap), "--view", "relay")
    assert rc == 0 and "send rings" in out and "workers" not in out


@pytest.mark.timeout(60)
def test_no_relay_no_relay_view(capsys: pytest.CaptureFixture[str], segname: str) -> None:
    _write_segment(segname, bytes(_image()))
    assert _report(capsys, segname)["relay"] is None
    rc, out, _ = _inspect(capsys, segname, "--sample", "0")
    assert rc == 0 and "relay budget" not in out and "send rings" not in out
    rc, out, _ = _inspect(capsys, segname, "--sample", "0", "--view", "relay")
    assert rc == 0 and "no relay" in out


@pytest.mark.timeout(60)
def test_relay_lints_need_the_state_to_persist() -> None:
    """A waiter WAITING with budget free, or a stranded waitlist, is also a
    healthy relay in the middle of a hand-off: when a re-check was taken, the
    lints fire only if the same state was still there."""
    buf = _relay_image()
    lay = L.compute_layout(RCFG)
    waiters = [(w.state, w.pid) for w in (L.decode_waiter(buf, lay, i) for i in range(3))]
    wl_deq = L.decode_send(buf, lay, 0).waitlist.deq

    def fired(recheck: RelayRecheck | None) -> set[str]:
        rep = build_report(_img(buf, recheck), Options())
        return {
            x.message.split(" ")[0] + " " + x.name
            for x in rep.lints
            if x.pid != 4242 and x.name != "coordinator-dead"
        }

    both = {"relay waiter-not-woken", "relay: waiter-not-woken", "send send-ring-stranded"}
    assert fired(None) == both  # a snapshot without a re-check: one read decides
    assert fired(RelayRecheck(delay_ns=1, avail=2, waiters=waiters, rings=[(2, 1, wl_deq)])) == both
    moved = RelayRecheck(
        delay_ns=1,
        avail=0,  # the unit was handed over
        waiters=[((6 << 8) | WAITING, os.getpid())] + waiters[1:],  # and it registered again
        rings=[(2, 1, wl_deq + 1)],  # the waitlist moved
    )
    assert fired(moved) == {"relay: waiter-not-woken"}  # the counter stays
    # a new generation of the same entry is a new registration, not the same wait
    regen = RelayRecheck(
        delay_ns=1, avail=2, waiters=[((6 << 8) | WAITING, os.getpid())], rings=[(4, 1, wl_deq)]
    )
    assert fired(regen) == {"relay: waiter-not-woken"}
    # no budget free: waiting is what a waiter does
    _put(buf, lay.relay_off + L.RF["avail"], 0)
    assert "relay waiter-not-woken" not in fired(None)


@pytest.mark.timeout(60)
def test_relay_corrupt_values_are_lints() -> None:
    buf = _relay_image()
    lay = L.compute_layout(RCFG)
    _put(buf, lay.relay_off + L.RF["avail"], 9)  # more free than the capacity
    _put(buf, L.waiter_off(lay, 2) + L.WTF["state"], 77)  # unknown waiter state
    _put(buf, L.send_off(lay, 1) + L.TF["rings"] + L.QF["enq"], 1000)  # 1000 entries, cap 4
    _push_ring(buf, L.send_off(lay, 0) + L.TF["rings"], lay.send_cap, [1, 99])  # not a slot
    _put_slot(buf, 4, state=_core.REF_ONE, kind=1, holder=_core.HOLDER_RELAY)
    rep = build_report(_img(buf), Options())
    msgs = [x.message for x in rep.lints if x.name == "corrupt"]
    assert any("budget units free of 4" in m for m in msgs)
    assert any("relay waiter 2: unknown state 77" in m for m in msgs)
    assert any("send ring 1: 1000 entries" in m for m in msgs)
    assert any("send ring 0: entry 99" in m for m in msgs)
    assert rep.relay is not None and rep.relay.rings[1].depth == 0
    # a relay packet or holder in a runtime without a relay
    plain = _image()
    _put_slot(plain, 1, state=_core.REF_ONE, kind=1, holder=_core.HOLDER_RELAY)
    rep = build_report(_img(plain), Options())
    assert rep.relay is None
    assert {(x.name, x.slot) for x in rep.lints} >= {("corrupt", 1)}
    assert len([x for x in rep.lints if x.slot == 1]) == 2


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


@pytest.mark.timeout(90)
def test_live_relay(capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    name = f"insp-relay-{os.getpid()}"
    with shmrt.Relay(
        relaysink.jitter, relaysink.discard, workers=1, max_inflight=4, name=name
    ) as r:
        for i in range(100):
            r.send(struct.pack("<I", i) * 4, flow=i % 3)
        assert r.flush(30)
        rep = _wait(
            lambda: (x := _report(capsys, name))["relay"]["rings"][0]["sent"] == 100 and x,
            "the send worker to count its packets",
        )
        relay = rep["relay"]
        assert (relay["budget_capacity"], relay["budget_avail"], relay["budget_used"]) == (4, 4, 0)
        ring = relay["rings"][0]
        assert ring["pid"] > 0 and ring["depth"] == ring["waitlist"] == 0
        assert ring["pushed"] == ring["popped"] == 100
        assert relay["drops"] == {"filtered": 0, "error": 0, "crashed": 0, "in_doubt": 0,
                                  "full": 0, "kernel": 0, "no_space": 0}
        assert relay["pending_with_capacity"] == 0 and relay["waiters"] == []
        assert not [x for x in rep["lints"] if x["name"] != "long-running"]
        # the send worker's pid finds the runtime
        rc, out, _ = _inspect(capsys, "--pid", str(ring["pid"]), "--json", "--sample", "0")
        assert rc == 0 and json.loads(out)["source"]["name"] == name
        # a sender blocked on a used-up budget: one waiter entry, WAITING, no lint
        taken = 0
        while r._seg.relay_acquire(0.0, True) == 0:
            taken += 1
        assert taken == 4
        t = threading.Thread(target=r.send, args=(b"late" * 4,), daemon=True)
        t.start()
        try:
            rep = _wait(
                lambda: (x := _report(capsys, name))["relay"]["waiters"] and x,
                "the sender to register as a waiter",
            )
            relay = rep["relay"]
            assert relay["waiters"][0]["pid"] == os.getpid()
            assert relay["waiters"][0]["state"] == "waiting"
            assert relay["budget_avail"] == 0 and relay["full"] == 1
            assert not [x for x in rep["lints"] if x["name"] != "long-running"]
            rc, out, _ = _inspect(capsys, name, "--sample", "0", "--view", "relay")
            assert rc == 0 and "waiting" in out and "send rings" in out
        finally:
            r._seg.relay_release(taken)
            t.join(30)
        assert not t.is_alive()
        assert r.flush(30)


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


@pytest.mark.timeout(60)
def test_real_reference_leak_and_unwoken_waiter(capsys: pytest.CaptureFixture[str]) -> None:
    """Lints from real runtimes, not synthetic images: a reference leaked on
    purpose (what a buggy build would do: one extra ref on a completed task,
    so the slot never returns to the free list) fires refcount-leak; a waiter
    entry left WAITING while the relay's budget is free fires
    waiter-not-woken; --check then exits 1."""
    from shmrt import _core

    name = f"insp-leak-{os.getpid()}"
    with shmrt.Pool(1, name=name, **SMALL) as pool:
        fut = pool.submit(helpers.square, 3)
        assert fut.result() == 9
        seg = pool._seg
        idx = fut._key & 0xFFFFFFFF
        state_off = seg.layout["slots_off"] + idx * seg.layout["slot_size"]
        _wait(lambda: seg.load64(state_off) & _core.S_COMPLETE and
              seg.load64(state_off) >> _core.REF_SHIFT == 0, "the slot to be freed")
        seg.fetch_add64(state_off, _core.REF_ONE)  # the leak: a reference nobody holds
        try:
            rc, out, err = _inspect(capsys, name, "--json", "--sample", "0", "--leak-after", "0")
            assert rc == 0, err
            lints = {lint["name"] for lint in json.loads(out)["lints"]}
            assert "refcount-leak" in lints
            rc, _, _ = _inspect(capsys, name, "--check", "--leak-after", "0")
            assert rc == 1
        finally:
            seg.fetch_add64(state_off, (1 << 64) - _core.REF_ONE)  # undo before shutdown
    relay_name = f"insp-waiter-{os.getpid()}"
    with shmrt.Relay(relaysink.jitter, relaysink.discard, workers=1, max_inflight=4,
                     name=relay_name) as relay:
        seg = relay._seg
        lay = seg.layout
        waiter = lay["relay_off"] + lay["relay_hdr"]  # entry 0
        wf = _core.WAITER_FIELDS
        seg.store64(waiter + wf["pid"], os.getpid())
        seg.store64(waiter + wf["state"], (7 << 8) | _core.WT_WAITING)  # asleep, never woken
        try:
            assert seg.relay_stats()["avail"] == 4  # the budget is free: it should have been woken
            rc, out, err = _inspect(capsys, relay_name, "--json", "--sample", "0")
            assert rc == 0, err
            assert "waiter-not-woken" in {lint["name"] for lint in json.loads(out)["lints"]}
        finally:
            seg.store64(waiter + wf["state"], (7 << 8) | _core.WT_CANCELLED)
            seg.store64(waiter + wf["pid"], 0)


@pytest.mark.timeout(60)
def test_arena_classes_come_from_the_core() -> None:
    """The inspector's block checks use the C core's half-step size classes
    (it once assumed 24 power-of-two classes where the core has 48)."""
    assert L.ARENA_CLASSES == _core.ARENA_CLASSES == len(L.ARENA_CLASS_SIZES)
    assert L.ARENA_CLASS_SIZES[:4] == (4096 + 64, 6144 + 64, 8192 + 64, 12288 + 64)
    lay = L.compute_layout({**CFG, "arena_size": 1 << 20})
    hdr = bytearray(64)
    struct.pack_into("<QQQ", hdr, 0, (L.BLOCK_MAGIC << 32) | 1, 1, 6144 - 64)
    assert L.decode_block(hdr, lay, 0) == (1, 1, 6144 - 64)
    struct.pack_into("<Q", hdr, 16, 7000)  # fits a power-of-two class 1 (8 KiB), not 6 KiB
    with pytest.raises(L.InspectError, match="exceeds the block"):
        L.decode_block(hdr, lay, 0)
