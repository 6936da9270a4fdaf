"""The segment as a security and validation boundary: names, ownership, mode,
header validation, bounds checks of every C entry point, read-only mapping.
Bad input must raise a clear error (SegmentError / ValueError), never crash."""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shmrt
from shmrt import _core
from shmrt.layout import Header
from shmrt.segment import Config, attach, create, shm_name, unlink

pytestmark = pytest.mark.timeout(120)

SegmentError = shmrt.SegmentError
SMALL = Config(n_workers=2, n_slots=64, n_clients=2, n_funcs=16, arena_size=256 * 1024)
HEADER = _core.HEADER_SIZE
H = Header.TABLE


def shm_path(name: str) -> str:
    return "/dev/shm" + shm_name(name)


def unique(tag: str) -> str:
    return f"t-{tag}-{os.getpid()}-{random.randrange(1 << 30):x}"


@pytest.fixture
def seg() -> Iterator[Any]:
    """A freshly created small segment (no workers), unlinked afterwards."""
    name = unique("seg")
    s, sname = create(name, SMALL)
    try:
        yield s
    finally:
        unlink(sname)


@pytest.fixture
def small() -> Iterator[tuple[Any, str]]:
    name = unique("small")
    s, sname = create(name, SMALL)
    try:
        yield s, name
    finally:
        unlink(sname)


def write_shm_file(name: str, data: bytes, mode: int = 0o600) -> str:
    path = shm_path(name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


@functools.lru_cache(maxsize=1)
def real_image() -> bytes:
    """The bytes of a freshly created small segment."""
    name = unique("image")
    s, sname = create(name, SMALL)
    try:
        with open(shm_path(name), "rb") as f:
            data = f.read()
    finally:
        s.close()
        unlink(sname)
    assert len(data) == s_total(data)
    return data


def s_total(data: bytes) -> int:
    return int.from_bytes(data[H["total_size"]:H["total_size"] + 8], "little")


# ---- names ---------------------------------------------------------------------------


def test_runtime_exists() -> None:
    name = unique("exists")
    s, sname = create(name, SMALL)
    try:
        with pytest.raises(shmrt.RuntimeExists):
            create(name, SMALL)
        with pytest.raises(shmrt.RuntimeExists):
            shmrt.Pool(1, name=name)
        # the first one is untouched
        assert s.load64(H["magic"]) == _core.MAGIC
    finally:
        s.close()
        unlink(sname)


def test_pool_name_taken_by_running_pool() -> None:
    name = unique("pool")
    with shmrt.Pool(1, name=name) as p:
        with pytest.raises(shmrt.RuntimeExists):
            shmrt.Pool(1, name=name)
        assert p.submit(helpers.square, 5).result(timeout=60) == 25


def test_name_taken_by_foreign_file() -> None:
    name = unique("foreign")
    write_shm_file(name, b"not a segment")
    try:
        with pytest.raises(shmrt.RuntimeExists):
            create(name, SMALL)
        assert Path(shm_path(name)).read_bytes() == b"not a segment"  # not clobbered
    finally:
        os.unlink(shm_path(name))


def test_attach_missing_runtime() -> None:
    with pytest.raises(shmrt.RuntimeNotFound):
        attach(unique("missing"))
    with pytest.raises(shmrt.RuntimeNotFound):
        attach(unique("missing"), writable=False)
    with pytest.raises(shmrt.RuntimeNotFound):
        shmrt.connect(unique("missing"))


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "a b", "x" * 101, "név", "a\x00b"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(ValueError):
        shm_name(bad)
    with pytest.raises(ValueError):
        attach(bad)
    if bad:  # Pool(name="") means "no name": a random one
        with pytest.raises(ValueError):
            shmrt.Pool(1, name=bad).shutdown()


# ---- ownership and mode ------------------------------------------------------------------


def test_group_readable_segment_refused() -> None:
    name = unique("mode")
    with shmrt.Pool(1, name=name) as p:
        path = shm_path(name)
        assert os.stat(path).st_mode & 0o777 == 0o600
        os.chmod(path, 0o644)
        try:
            with pytest.raises(SegmentError, match="644"):
                attach(name)
            with pytest.raises(SegmentError):
                attach(name, writable=False)
            with pytest.raises(SegmentError):  # connect refuses too
                shmrt.connect(name)
            # the C core checks on its own as well (defence in depth)
            fd = os.open(path, os.O_RDONLY)
            try:
                with pytest.raises(SegmentError, match="group/other"):
                    _core.Segment(fd, writable=False)
            finally:
                os.close(fd)
        finally:
            os.chmod(path, 0o600)
        assert p.submit(helpers.square, 4).result(timeout=60) == 16


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_foreign_owner_refused() -> None:
    name = unique("owner")
    path = write_shm_file(name, real_image())
    try:
        os.chown(path, 4242, -1)
        with pytest.raises(SegmentError, match="uid"):
            attach(name)
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(SegmentError, match="uid"):
                _core.Segment(fd, writable=False)
        finally:
            os.close(fd)
    finally:
        os.unlink(path)


def test_created_segment_is_private() -> None:
    name = unique("private")
    old = os.umask(0)  # a permissive umask must not widen the mode
    try:
        s, sname = create(name, SMALL)
    finally:
        os.umask(old)
    try:
        st_ = os.stat(shm_path(name))
        assert st_.st_mode & 0o777 == 0o600
        assert st_.st_uid == os.geteuid()
    finally:
        s.close()
        unlink(sname)


# ---- hand-made bad files -----------------------------------------------------------------


def _magic_only() -> bytes:
    return _core.MAGIC.to_bytes(8, "little") + bytes(HEADER - 8)


def _with_word(word: str, value: int) -> bytes:
    img = bytearray(real_image())
    img[H[word]:H[word] + 8] = (value % 2**64).to_bytes(8, "little")
    return bytes(img)


BAD_FILES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "tiny": lambda: b"SHMRMTv1",
    "zeros": lambda: bytes(HEADER),
    "random-4k": lambda: random.Random(1).randbytes(HEADER),
    "random-1m": lambda: random.Random(2).randbytes(1 << 20),
    "magic-only": _magic_only,
    "bad-magic": lambda: _with_word("magic", 0x1234),
    "bad-version": lambda: _with_word("version", 99),
    "truncated-header": lambda: real_image()[:HEADER // 2],
    "truncated-body": lambda: real_image()[: len(real_image()) // 2],
    "extended": lambda: real_image() + bytes(4096),
    "size-lies": lambda: _with_word("total_size", len(real_image()) + 4096),
    "workers-huge": lambda: _with_word("n_workers", 2**40),
    "slots-zero": lambda: _with_word("n_slots", 0),
    "slot-size-odd": lambda: _with_word("slot_size", 1000),
    "local-cap-3": lambda: _with_word("local_cap", 3),
    "offset-outside": lambda: _with_word("arena_off", 2**62),
    "offset-shifted": lambda: _with_word("slots_off", 64),
    "max-payload-huge": lambda: _with_word("max_payload", 2**62),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("writable", [True, False], ids=["rw", "ro"])
def test_bad_segment_file_refused(kind: str, writable: bool) -> None:
    name = unique("bad")
    write_shm_file(name, BAD_FILES[kind]())
    try:
        with pytest.raises(SegmentError):
            attach(name, writable=writable)
    finally:
        os.unlink(shm_path(name))


def test_real_image_copy_attaches() -> None:
    """Control for the cases above: an unmodified copy is accepted."""
    name = unique("copy")
    write_shm_file(name, real_image())
    try:
        s = attach(name, writable=False)
        assert s.layout["n_slots"] == SMALL.n_slots
        s.close()
    finally:
        os.unlink(shm_path(name))


# ---- bounds checks of the C entry points ------------------------------------------------

BAD_CALLS: dict[str, Callable[[Any], Any]] = {
    "slot_info-huge": lambda s: s.slot_info(10**9),
    "slot_info-end": lambda s: s.slot_info(SMALL.n_slots),
    "steal-victim": lambda s: s.steal(0, 99),
    "steal-self": lambda s: s.steal(0, 0),
    "steal-thief": lambda s: s.steal(99, 0),
    "load64-end": lambda s: s.load64(s.layout["total_size"]),
    "load64-last-partial": lambda s: s.load64(s.layout["total_size"] - 4),
    "load64-misaligned": lambda s: s.load64(3),
    "store64-end": lambda s: s.store64(s.layout["total_size"], 1),
    "store64-misaligned": lambda s: s.store64(4097, 1),
    "cas64-end": lambda s: s.cas64(s.layout["total_size"], 0, 1),
    "fetch_add64-misaligned": lambda s: s.fetch_add64(12, 1),
    "futex_wait-end": lambda s: s.futex_wait(s.layout["total_size"], 0, 0.0),
    "futex_wake-misaligned": lambda s: s.futex_wake(5),
    "read-over-end": lambda s: s.read(s.layout["total_size"] - 1, 2),
    "read-too-long": lambda s: s.read(0, s.layout["total_size"] + 1),
    "write-over-end": lambda s: s.write(s.layout["total_size"], b"x"),
    "blob_release-bad": lambda s: s.blob_release(12345),
    "blob_release-end": lambda s: s.blob_release(SMALL.arena_size),
    "blob_release-unallocated": lambda s: s.blob_release(0),
    "blob_view-bad": lambda s: s.blob_view(12345),
    "next_local-bad-worker": lambda s: s.next_local(99, False),
    "refill-bad-worker": lambda s: s.refill(99),
    "queue_len-bad-worker": lambda s: s.queue_len(99),
    "reclaim-bad-worker": lambda s: s.reclaim([99], [], []),
    "reclaim-bad-client": lambda s: s.reclaim([], [99], []),
    "park-bad-worker": lambda s: s.park(99, 0.0, 0.0, False),
    "try_search-bad": lambda s: s.try_search(99),
    "end_search-without-search": lambda s: s.end_search(0, False),
    "worker_register-bad": lambda s: s.worker_register(99, 1, 1, 1),
    "lq_push-bad-slot": lambda s: s.lq_push(0, 10**9),
    "lq_push-bad-worker": lambda s: s.lq_push(99, 0),
    "inject_push-bad-slot": lambda s: s.inject_push(10**9),
    "submit-bad-client": lambda s: s.submit(99, 0, b"x"),
    "spawn-bad-worker": lambda s: s.spawn(99, 0, b"x"),
    "harvest-bad-client": lambda s: s.harvest(99),
    "client_release-bad": lambda s: s.client_release(99),
    "client_wait-bad": lambda s: s.client_wait(99, 0.0),
    "client_spin-bad": lambda s: s.client_spin(99, 0.0),
    "client_wake-bad": lambda s: s.client_wake(99),
    "get_fn-bad": lambda s: s.get_fn(10**9),
    "join_poll-bad-index": lambda s: s.join_poll((1 << 32) | 10**6),
    "join_poll-stale-gen": lambda s: s.join_poll((999 << 32) | 0),
    "join_register-stale": lambda s: s.join_register((999 << 32) | 0),
    "cancel-stale": lambda s: s.cancel((999 << 32) | 1),
    "release-stale": lambda s: s.release((999 << 32) | 1),
    "retry_task-stale": lambda s: s.retry_task((999 << 32) | 1),
    "crash_task-stale": lambda s: s.crash_task((999 << 32) | 1, 3, b""),
    "begin-bad-slot": lambda s: s.begin(0, 10**9),
    "begin-free-slot": lambda s: s.begin(0, 0),  # a corrupt queue entry
    "finish-bad-slot": lambda s: s.finish(0, 10**9, 1, b""),
    "finish-not-owned": lambda s: s.finish(0, 0, 1, b""),
}


@pytest.mark.parametrize("call", sorted(BAD_CALLS))
def test_bad_index_raises_segment_error(seg: Any, call: str) -> None:
    with pytest.raises(SegmentError):
        BAD_CALLS[call](seg)
    # and the segment is still sound
    assert seg.free_count() == SMALL.n_slots
    assert seg.inject_len() == 0


def test_oversized_inline_payload_raises_value_error(seg: Any) -> None:
    with pytest.raises(ValueError):
        seg.submit(0, 0, b"x" * (SMALL.slot_size * 2))
    assert seg.free_count() == SMALL.n_slots


def test_negative_and_huge_python_ints(seg: Any) -> None:
    for bad in (-1, 2**64, 10**30):
        with pytest.raises((OverflowError, SegmentError)):
            seg.load64(bad)
        with pytest.raises((OverflowError, SegmentError)):
            seg.slot_info(bad)


def test_blob_alloc_too_big_is_none(seg: Any) -> None:
    assert seg.blob_alloc(2**40) is None
    assert seg.blob_alloc(SMALL.arena_size + 1) is None


def test_closed_segment_raises(small: tuple[Any, str]) -> None:
    s, _ = small
    s.close()
    for call in (lambda: s.load64(0), lambda: s.free_count(), lambda: s.submit(0, 0, b"x"),
                 lambda: s.layout, lambda: s.blob_alloc(10)):
        with pytest.raises(SegmentError, match="closed"):
            call()


def test_valid_calls_work(seg: Any) -> None:
    """Control: the same entry points with good arguments succeed."""
    assert seg.load64(H["magic"]) == _core.MAGIC
    assert seg.slot_info(SMALL.n_slots - 1)["state"] == 0
    assert seg.steal(0, 1) == -1
    assert seg.next_local(0, True) == -1
    got = seg.blob_alloc(100)
    assert got is not None
    off, view = got
    assert len(view) == 100
    del view, got
    seg.blob_release(off)
    assert seg.arena_stats()["live"] == 0


# ---- read-only attach -------------------------------------------------------------------

WRITES: dict[str, Callable[[Any], Any]] = {
    "store64": lambda s: s.store64(H["epoch"], 1),
    "cas64": lambda s: s.cas64(H["epoch"], 0, 1),
    "fetch_add64": lambda s: s.fetch_add64(H["epoch"], 1),
    "fetch_or64": lambda s: s.fetch_or64(H["epoch"], 1),
    "fetch_and64": lambda s: s.fetch_and64(H["epoch"], 0),
    "write": lambda s: s.write(H["epoch"], b"\x01"),
    "submit": lambda s: s.submit(0, 0, b"\x90"),
    "spawn": lambda s: s.spawn(0, 0, b"\x90"),
    "blob_alloc": lambda s: s.blob_alloc(10),
    "blob_release": lambda s: s.blob_release(0),
    "register_fn": lambda s: s.register_fn(b"x"),
    "client_claim": lambda s: s.client_claim(1, 1),
    "harvest": lambda s: s.harvest(0),
    "lq_push": lambda s: s.lq_push(0, 0),
    "inject_push": lambda s: s.inject_push(0),
    "inject_pop": lambda s: s.inject_pop(),
    "next_local": lambda s: s.next_local(0, True),
    "refill": lambda s: s.refill(0),
    "steal": lambda s: s.steal(0, 1),
    "park": lambda s: s.park(0, 0.0, 0.0, False),
    "wake_all": lambda s: s.wake_all(),
    "notify": lambda s: s.notify(),
    "worker_register": lambda s: s.worker_register(0, 1, 1, 1),
    "reclaim": lambda s: s.reclaim([0], [], []),
}


@pytest.mark.parametrize("call", sorted(WRITES))
def test_read_only_attach_refuses_writes(small: tuple[Any, str], call: str) -> None:
    rw, name = small
    before = rw.read(0, HEADER)
    ro = attach(name, writable=False)
    try:
        with pytest.raises(SegmentError, match="read-only"):
            WRITES[call](ro)
        # reads work
        assert ro.load64(H["magic"]) == _core.MAGIC
        assert ro.free_count() == SMALL.n_slots
        assert ro.slot_info(0)["state"] == 0
    finally:
        ro.close()
    assert rw.read(0, HEADER) == before


READONLY_BLOB_VIEW = textwrap.dedent("""
    import sys
    from shmrt import segment
    from shmrt.segment import Config
    name = sys.argv[1]
    seg, sname = segment.create(name, Config(n_workers=1, n_slots=64, arena_size=1 << 20))
    try:
        off, view = seg.blob_alloc(100)
        ro = segment.attach(name, writable=False)
        try:
            v = ro.blob_view(off)
            print("OK", len(v))
        except segment.SegmentError as e:
            print("SegmentError", e)
    finally:
        segment.unlink(sname)
""")


def test_read_only_blob_view_does_not_crash() -> None:
    name = unique("robv")
    try:
        out = subprocess.run([sys.executable, "-c", READONLY_BLOB_VIEW, name],
                             capture_output=True, text=True, timeout=60)
    finally:
        unlink(shm_name(name))  # a crashed child cannot clean up
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.startswith(("OK", "SegmentError")), out.stdout


# ---- fuzzing the header ------------------------------------------------------------------

_N_WORDS = HEADER // 8
_CFG_WORDS = 32  # the configuration block: where validation matters most

word_index = st.one_of(st.integers(0, _CFG_WORDS - 1), st.integers(0, _N_WORDS - 1))
special = st.sampled_from([0, 1, 2, 3, 63, 64, 4096, 2**31, 2**32, 2**32 - 1, 2**63,
                           2**64 - 1, 2**64 - 4096])
edit = st.tuples(word_index, st.sampled_from(["set", "add"]),
                 st.one_of(st.integers(0, 2**64 - 1), special, st.integers(-4096, 4096)))


def _exercise(s: Any) -> None:
    """Operations that read the (possibly fuzzed) mutable header words."""
    from shmrt.stats import runtime_statistics

    runtime_statistics(s)
    s.slot_info(0)
    s.inject_pop()
    s.next_local(0, True)
    s.refill(0)
    s.steal(0, 1)
    key = s.submit(0, 0, b"\x90")
    if key >= 0:
        s.cancel(key)
    got = s.blob_alloc(100)
    if got is not None:
        off, view = got
        del view, got
        s.blob_release(off)
    s.harvest(0)
    s.client_spin(0, 0.0)


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(edit, min_size=1, max_size=4))
def test_fuzz_header_words(edits: list[tuple[int, str, int]]) -> None:
    img = bytearray(real_image())
    for idx, how, v in edits:
        old = int.from_bytes(img[idx * 8:idx * 8 + 8], "little")
        new = v if how == "set" else old + v
        img[idx * 8:idx * 8 + 8] = (new % 2**64).to_bytes(8, "little")
    name = unique("fuzz")
    write_shm_file(name, bytes(img))
    try:
        try:
            s = attach(name, writable=True)
        except (SegmentError, ValueError):
            return
        try:
            _exercise(s)
        except (SegmentError, ValueError):
            pass
        finally:
            s.close()
    finally:
        os.unlink(shm_path(name))


# ---- argument checks of the per-task methods (fastargs.h) -----------------------------


@pytest.mark.parametrize("call, match", [
    (lambda s: s.submit(), r"submit\(\) takes from 3 to 6 arguments \(0 given\)"),
    (lambda s: s.submit(0, 0, b"", -1, 0, 0.0, 7), r"submit\(\) takes from 3 to 6 arguments \(7"),
    (lambda s: s.submit("0", 0, b""), "an integer is required, not str"),
    (lambda s: s.submit(0, 0, "text"), "bytes-like object is required"),
    (lambda s: s.submit(0, 0, b"", 1.5), "an integer is required, not float"),
    (lambda s: s.submit(0, 0, b"", -1, 0, "soon"), "must be real number"),
    (lambda s: s.spawn(0, 0), r"spawn\(\) takes from 3 to 5 arguments \(2 given\)"),
    (lambda s: s.begin(0), r"begin\(\) takes exactly 2 arguments \(1 given\)"),
    (lambda s: s.finish(0, 0, 0), r"finish\(\) takes from 4 to 6 arguments \(3 given\)"),
    (lambda s: s.harvest(), r"harvest\(\) takes from 1 to 2 arguments \(0 given\)"),
    (lambda s: s.park(0, "fast", 0.0, True), "must be real number"),
    (lambda s: s.next_local(0), r"next_local\(\) takes from 2 to 3 arguments"),
    (lambda s: s.steal(None, 1), "an integer is required, not NoneType"),
    (lambda s: s.client_spin(0), r"client_spin\(\) takes exactly 2 arguments"),
    (lambda s: s.client_wait(0, 0.0, 1, 2), r"client_wait\(\) takes from 2 to 3 arguments"),
])
def test_per_task_methods_refuse_bad_arguments(seg: Any, call: Callable[[Any], Any],
                                               match: str) -> None:
    with pytest.raises(TypeError, match=match):
        call(seg)


@pytest.mark.parametrize("call", [
    lambda s: s.submit(7, 0, b""),  # no such client
    lambda s: s.harvest(2**64 - 1),
    lambda s: s.begin(-1, 0),  # masked to 2**64 - 1, as PyArg's K did: no such worker
    lambda s: s.begin(0, 10**6),  # no such slot
    lambda s: s.finish(5, 0, 0, b""),
    lambda s: s.client_wait(99, 0.0),
])
def test_per_task_methods_refuse_bad_ids(seg: Any, call: Callable[[Any], Any]) -> None:
    with pytest.raises(SegmentError):
        call(seg)
