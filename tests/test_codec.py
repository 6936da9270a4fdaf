"""The inline message kinds of shmrt.codec, without a runtime: plain values
round-trip exactly through marshal, pickle takes the rest, and a message
that is not one of ours is refused with ValueError (the runtime never
trusts what it reads from shared memory)."""

from __future__ import annotations

import marshal
import math
import sys
from typing import Any

import pytest

from shmrt import codec

CAP = 4096


def enc(value: Any, *, call: bool) -> bytes:
    e = codec.encode(None, value, call=call, kwargs=None, inline_cap=CAP, max_payload=1 << 20)
    assert e.blob == -1 and e.size == len(e.inline)
    return e.inline


PLAIN_CALLS = [(), (1,), (True, False, None), (1 << 80, -(1 << 70)), (2.5, -0.0, math.inf),
               ("abc", b"\x00\xff", "\udc80 lone surrogate"), (0,) * 40]
PLAIN_RESULTS = [None, 0, -7, 1 << 100, 1.5, "s", b"b", True, [1, "a", None, 2.5], []]


@pytest.mark.parametrize("args", PLAIN_CALLS)
def test_plain_calls_are_marshal_and_round_trip(args: tuple) -> None:
    msg = enc(args, call=True)
    assert msg[0] < 0x80  # marshal v2: no pickle, no special prefix
    got, kwargs = codec.decode(msg, call=True)
    assert got == args and kwargs == {}
    assert [type(a) for a in got] == [type(a) for a in args]


@pytest.mark.parametrize("value", PLAIN_RESULTS)
def test_plain_results_round_trip_with_their_types(value: Any) -> None:
    msg = enc(value, call=False)
    assert msg[0] < 0x80
    got = codec.decode(msg, call=False)
    assert got == value and type(got) is type(value)


def test_nan_and_negative_zero_keep_their_bits() -> None:
    (nan, nz), _ = codec.decode(enc((math.nan, -0.0), call=True), call=True)
    assert math.isnan(nan) and math.copysign(1.0, nz) == -1.0


def test_other_values_are_pickled() -> None:
    for value in [(1, {"a": 1}), {"k": [1, 2]}, (1.5j,), [[1]]]:
        msg = enc(value, call=False)
        assert msg[0] == codec.PICKLE_START
        assert codec.decode(msg, call=False) == value


@pytest.mark.parametrize("bad, why", [
    (marshal.dumps([1, 2], 2), "not a tuple"),  # a call must be a tuple
    (marshal.dumps((1, 2), 4)[:1] + marshal.dumps((1, 2), 2)[1:], "marshal v2"),  # ref flag
    (marshal.dumps((1, 2, 3), 2)[:-3], "malformed"),  # truncated
    (b"\x01\x02\x03", "malformed"),  # no such type code
])
def test_malformed_call_messages_are_refused(bad: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        codec.decode(bad, call=True)


def test_empty_message_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        codec.decode(b"", call=False)


def test_worker_start_up_imports_none_of_the_heavy_modules() -> None:
    """What the zygote imports before it forks a pool's first workers is on
    every cold pool's way to its first result: not msgspec (why marshal), not
    multiprocessing (the main import does without it), not dataclasses or
    typing (~5 and ~2-3 ms).  The zygote's own first lines (shmrt/zygote.py
    _LOAD), run without ``site``, whose ``.pth`` files may import any of them."""
    import subprocess

    from shmrt import zygote

    probe = ("import shmrt.workers.boot, shmrt.workers.zygote, shmrt.segment\n"
             "print(sorted(m for m in ('msgspec', 'multiprocessing', 'dataclasses', 'typing')"
             " if m in sys.modules))\n")
    argv = ["-S", "-c", zygote._LOAD + probe, "", "", "", *zygote._packages(), *sys.path]
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
