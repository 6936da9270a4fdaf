"""How a task's arguments and result travel between the driver and a node.

Why its own step: between machines the bytes must cross Ray, inside a node
they cross shmrt's arena, and a large payload must be copied at each hop
but pickled at neither.  So:

* **Arguments** are pickled once, at ``submit`` in the driver (a pickling
  error is raised there, as a local pool does, and one task's bad argument
  cannot spoil a batch).  Buffers of ``BIG`` bytes and more -- numpy
  arrays anywhere in the arguments (pickle 5 hands them out of band), and
  ``bytes``/``bytearray``/``memoryview`` given as an argument -- are taken
  out of band and put in Ray's object store with one ``ray.put``: the
  batch carries only the reference, so a task that is stolen or re-run
  elsewhere moves no payload again.  The node actor gets the buffers from
  its object store (zero-copy for a local object), unpickles the small
  stream on top of them, and submits the value to its shmrt pool, whose
  codec copies large buffers into the arena out of band: one copy per hop,
  no pickling of the bytes.
* **Results** come back in the node's poll reply, which Ray serializes with
  pickle 5 (numpy arrays out of band; a reply over ~100 KiB goes through
  the object store).  A large ``bytes``/``bytearray``/``memoryview``
  result is wrapped (``raw``) so that Ray takes it out of band too.
* A function travels once per node, not per task (``ray_pool`` keeps the
  table); a callable that is not a plain function (a partial, a bound
  method) travels with each task, as it does in a local pool.

Pickling is plain ``pickle`` (fast) unless that fails or the stream names
``__main__`` (a script's functions or classes, which a node cannot import):
then cloudpickle, by value, as Ray itself would.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from itertools import starmap
from typing import Any

from ..codec import Keeper

BIG = 64 * 1024
_RAW = (bytes, bytearray, memoryview)


def _nbytes(x: Any) -> int:
    return x.nbytes if type(x) is memoryview else len(x)


def _has_big_raw(args: tuple, kwargs: dict) -> bool:
    for a in args:
        if type(a) in _RAW and _nbytes(a) >= BIG:
            return True
    for a in kwargs.values():
        if type(a) in _RAW and _nbytes(a) >= BIG:
            return True
    return False


def as_view(buf: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    """A memoryview of ``fmt``/``shape`` over an out-of-band buffer."""
    mv = memoryview(buf)
    return mv if fmt == "B" and len(shape) == 1 else mv.cast("B").cast(fmt, shape)  # type: ignore[call-overload]


class Raw:
    """A large bytes, bytearray or memoryview, wrapped so that pickle 5
    takes its buffer out of band (pickle hands out only numpy arrays and
    PickleBuffers by itself, and calls no reducer hook for ``bytes``).  It
    unpickles as what it wrapped: a bytes or bytearray (one copy out of the
    received buffer), or a read-only memoryview over it (no copy)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __reduce_ex__(self, protocol: Any) -> Any:
        obj = self.obj
        if type(obj) is memoryview:
            if obj.c_contiguous:
                return as_view, (pickle.PickleBuffer(obj), obj.format, obj.shape)
            obj = obj.tobytes()
        return type(obj), (pickle.PickleBuffer(obj),)


def raw(value: Any) -> Any:
    """``value``, wrapped in Raw if it is a large raw buffer."""
    if type(value) in _RAW and _nbytes(value) >= BIG:
        return Raw(value)
    return value


def dumps_call(fn: Callable[..., Any] | None, args: tuple,
               kwargs: dict) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle a call's arguments (with its callable, unless ``fn`` is None)
    once: the stream, and its buffers of ``BIG`` bytes and more, out of
    band."""
    keep = Keeper(min_bytes=BIG)
    bufs = keep.bufs

    if _has_big_raw(args, kwargs):
        args = tuple(map(raw, args))
        kwargs = {k: raw(v) for k, v in kwargs.items()}
    value = (args, kwargs) if fn is None else (fn, args, kwargs)
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=keep)
        if b"__main__" not in data:
            return data, bufs
    except Exception:  # a lambda, a closure, ...: by value below
        pass
    bufs.clear()
    from ray import cloudpickle

    return cloudpickle.dumps(value, protocol=5, buffer_callback=keep), bufs


def dumps_fn(fn: Callable[..., Any]) -> bytes:
    """A function for a node's table: by reference when it can be imported
    there, by value (cloudpickle) when it comes from ``__main__`` or cannot
    be pickled by name."""
    from ray import cloudpickle

    return cloudpickle.dumps(fn, protocol=5)


def loads_call(data: bytes, buffers: list[Any] | None) -> Any:
    return pickle.loads(data, buffers=buffers or ())


def pack(value: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """A batch (of tasks, or of results) as one pickle stream plus its large
    buffers.  Why not let Ray serialize the list: its serializer costs
    ~1.3 us per small tuple (~0.7 ms for a batch of 500), plain pickle
    ~0.1 us; Ray then carries one bytes object, and the buffers out of
    band.  Plain pickle by reference unless that fails (a class only a
    by-value function defines): then cloudpickle."""
    keep = Keeper(min_bytes=BIG)
    bufs = keep.bufs

    try:
        return pickle.dumps(value, protocol=5, buffer_callback=keep), bufs
    except Exception:
        bufs.clear()
    from ray import cloudpickle

    return cloudpickle.dumps(value, protocol=5, buffer_callback=keep), bufs


def unpack(data: bytes, buffers: list[Any] | None) -> Any:
    return pickle.loads(data, buffers=buffers or ())


def dumps_value(value: Any) -> bytes:
    """Plain pickle, or cloudpickle when that fails or names ``__main__``."""
    try:
        data = pickle.dumps(value, protocol=5)
        if b"__main__" not in data:
            return data
    except Exception:
        pass
    from ray import cloudpickle

    return cloudpickle.dumps(value, protocol=5)


def map_packed(fn: Callable[..., Any], items: bytes, star: bool) -> bytes:
    """One chunk of ``map``, run as one task on a node.  The items arrive
    and the results leave as the pickle bytes the driver made and will
    read: the node actor and the shmrt codec only copy them, so each item
    is pickled once each way, as with plain Ray tasks (not three times)."""
    chunk = pickle.loads(items)
    return dumps_value(list(starmap(fn, chunk) if star else map(fn, chunk)))
