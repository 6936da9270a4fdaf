"""Payload encoding: how arguments and results travel between processes.

Why: per-task cost is the product, and most task arguments are a few small
scalars.  Those go through marshal (a few tens of nanoseconds, and built
into the interpreter: a worker's start-up imports nothing for it, where
msgspec's import cost ~15 ms of every cold pool's time to its first result);
anything else goes through pickle protocol 5.  Large buffers (bytes, bytearray,
memoryview, numpy arrays of 64 KiB and more) are taken out of band by
pickle 5 and copied once into one arena block next to the pickle stream;
the receiver unpickles on top of a zero-copy view of that block, so a 16 MiB
array is never pickled, piped or copied a second time.  (bytearray and
numpy go out of band through pickle 5 itself, anywhere in the value; bytes
and memoryview through _OOBPickler when they are a top-level argument or the
result; a bytes arrives as bytes, one copy; a bytearray is rebuilt, one copy;
numpy arrays and memoryviews arrive as zero-copy views of the arena.)

Message kinds, told apart by the first byte, so the common cases carry no
prefix at all:

    0x80        pickle 5 stream, in band (pickle 5 always starts 0x80 0x05)
    0xc1 0x02   pickle 5 with out-of-band buffers: u32 count, then count *
                (u64 offset, u64 length) relative to the message start, then
                the pickle stream; buffers 64-byte aligned
    0xc1 0x11   (call messages) pickle 5 of (args, kwargs)
    0xc1 0x12   (call messages) out-of-band form of (args, kwargs)
    0xc1 0x06   pickle 5 with out-of-band buffers, some of them shared: u32
    0xc1 0x16   count, then count * (u64 source, u64 offset, u64 length):
                source 0, offset relative to the message (as above), or
                source = arena block offset + 1 and offset inside that block
                (an array that already lives in the arena: shared arrays,
                sent by reference, never copied; the sender keeps the block
                alive until the task is done: Encoded.pins)
    anything    marshal (format version 2) of the value: only tuples of
    else        scalars (calls) and scalars or short lists of scalars
                (results) take this path; version 2 writes no reference
                flag, so its first byte is an ASCII type code (< 0x80) and
                never 0x80 or 0xc1.  A call must decode to a tuple.

A message that fits in the slot payload travels inline; otherwise (or when it
has out-of-band buffers) the whole message lives in one arena block.  Every
length and offset is checked against the buffer before use.

By value when by reference cannot work: plain pickle stores functions and
classes by reference (module + name), which fails for a lambda or a closure
and, worse, *succeeds* in the caller but fails in the worker for anything
defined in a ``__main__`` the workers cannot import (``python -c``, a script
read from stdin, the REPL, a notebook).  Such values are pickled again with
cloudpickle (the ecosystem's standard, used by joblib/loky, Dask and Ray),
whose stream plain ``pickle.loads`` reads: only when plain pickle failed, or
when ``__main__`` is not importable and the stream names it.  Scripts and
importable modules never pay for it; cloudpickle is imported on first need.
"""

from __future__ import annotations

import io
import marshal
import os
import pickle
import struct
import sys

from . import _core
from .errors import PayloadTooLarge

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import Any

OOB_MIN = 64 * 1024
PICKLE_START = 0x80
SPECIAL = 0xC1
K_OOB, K_SHARED, K_KW = 0x02, 0x04, 0x10
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
MARSHAL_VERSION = 2  # no reference flags: the first byte stays below 0x80
_marshal_dumps = marshal.dumps
_marshal_loads = marshal.loads
_U32 = struct.Struct("<I")
_PAIR = struct.Struct("<QQ")
_TRIPLE = struct.Struct("<QQQ")


class Encoded:
    """An encoded message: inline bytes, or an arena block (offset >= 0)."""

    __slots__ = ("inline", "blob", "size", "pins")

    def __init__(self, inline: bytes, blob: int, size: int, pins: tuple = ()):
        self.inline = inline
        self.blob = blob  # -1: none
        self.size = size
        # the arena blocks of arrays sent by reference (BlobViews): the
        # sender keeps them until the task is done (TaskFuture._pins)
        self.pins = pins


def _as_memoryview(buf: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    mv = memoryview(buf)
    return mv if fmt == "B" and len(shape) == 1 else mv.cast("B").cast(fmt, shape)  # type: ignore[call-overload]


class _OOBPickler(pickle.Pickler):
    """Pickle 5 sends bytearray and numpy buffers out of band by itself; this
    does the same for big ``bytes`` (rebuilt as bytes: one copy on arrival,
    no pickling) and ``memoryview`` (rebuilt zero-copy over the arena)."""

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if t is bytes and len(obj) >= OOB_MIN:
            return bytes, (pickle.PickleBuffer(obj),)
        if t is memoryview and obj.nbytes >= OOB_MIN and obj.c_contiguous:
            return _as_memoryview, (pickle.PickleBuffer(obj), obj.format, obj.shape)
        return NotImplemented


_BIG_RAW = (bytes, memoryview)


def main_importable() -> bool:
    """Can a worker import this process's ``__main__`` (as multiprocessing's
    spawn does, from its file or module name)?  Not for ``python -c``, a
    script read from stdin, the REPL, a notebook, or ``python -m pkg``
    (whose ``pkg.__main__`` spawn does not re-import)."""
    main = sys.modules.get("__main__")
    if main is None:
        return False
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return not (name == "__main__" or name.endswith(".__main__"))
    path = getattr(main, "__file__", None)
    if not path:
        return False
    if not os.path.isabs(path):
        from multiprocessing import process

        path = os.path.join(process.ORIGINAL_DIR or os.getcwd(), path)  # type: ignore[attr-defined]
    return os.path.isfile(path)


_main_ok: bool | None = None  # main_importable(), computed on first need


def main_by_value() -> bool:
    """Whether what ``__main__`` defines must travel by value (cached: the
    main module of a process does not change)."""
    global _main_ok
    if _main_ok is None:
        _main_ok = main_importable()
    return not _main_ok


class Keeper:
    """pickle's buffer_callback: buffers of ``min_bytes`` and more go out of
    band (kept in ``bufs``), and (with ``seg``) any buffer that already lives
    in seg's arena, so that a shared array is sent by reference whatever its
    size.  Also the Ray backend's (cluster/payload.py)."""

    __slots__ = ("bufs", "seg", "min_bytes")

    def __init__(self, seg: Any = None, min_bytes: int = OOB_MIN):
        self.bufs: list[pickle.PickleBuffer] = []
        self.seg = seg
        self.min_bytes = min_bytes

    def __call__(self, pb: pickle.PickleBuffer) -> bool:
        if pb.raw().nbytes >= self.min_bytes or (
                self.seg is not None and _arena_home(self.seg, pb) is not None):
            self.bufs.append(pb)
            return False  # out of band
        return True


def _pickle(value: Any, raw_oob: bool,
            seg: Any = None) -> tuple[bytes, list[pickle.PickleBuffer]]:
    keep = Keeper(seg)
    bufs = keep.bufs
    try:
        if not raw_oob:
            body = pickle.dumps(value, protocol=5, buffer_callback=keep)
        else:
            f = io.BytesIO()
            _OOBPickler(f, protocol=5, buffer_callback=keep).dump(value)
            body = f.getvalue()
    except Exception:  # a lambda, a closure, a class of a lost __main__, ...
        return _cloudpickle(value, raw_oob, seg)
    if main_by_value() and b"__main__" in body:  # (the flag first: no search of a big stream)
        return _cloudpickle(value, raw_oob, seg)
    return body, bufs


_CloudOOB: Any = None


def _cloudpickle(value: Any, raw_oob: bool,
                 seg: Any = None) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle with cloudpickle (by value where needed), keeping the
    out-of-band buffers.  Its error, if it fails too, is the caller's."""
    global _CloudOOB
    if _CloudOOB is None:
        import cloudpickle

        class CloudOOB(cloudpickle.Pickler):
            raw_oob = False

            def reducer_override(self, obj: Any) -> Any:
                if self.raw_oob:
                    r = _OOBPickler.reducer_override(self, obj)  # type: ignore[arg-type]
                    if r is not NotImplemented:
                        return r
                return super().reducer_override(obj)

        _CloudOOB = CloudOOB
    keep = Keeper(seg)
    f = io.BytesIO()
    p = _CloudOOB(f, protocol=5, buffer_callback=keep)
    p.raw_oob = raw_oob
    p.dump(value)
    return f.getvalue(), keep.bufs


def dumps_fn(fn: Any) -> tuple[bytes, bool]:
    """A function or class for the function table: (pickle, by_value).  By
    reference when a worker can resolve it, else by value (cloudpickle)."""
    if getattr(fn, "__module__", None) != "__main__" or not main_by_value():
        try:
            return pickle.dumps(fn, protocol=5), False
        except Exception:  # lambda, closure, nested class: by value below
            pass
    import cloudpickle

    return cloudpickle.dumps(fn, protocol=5), True


def _arena_home(seg: Any, pb: pickle.PickleBuffer) -> tuple[Any, int] | None:
    """(BlobView, start) when an out-of-band buffer already lives in an arena
    block of ``seg`` (an array from Client.empty/share, or a view of a
    result), else None.  Walks the exporter chain: ndarray.base ...,
    memoryview.obj, down to the BlobView."""
    raw = pb.raw()
    obj: Any = raw.obj
    for _ in range(32):
        if type(obj) is _core.BlobView:
            if obj.segment is not seg:
                return None
            start = obj.locate(raw)
            return (obj, start) if start >= 0 else None
        nxt = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
        if nxt is None:
            return None
        obj = nxt
    return None


def encode(seg: Any, value: Any, *, call: bool, kwargs: dict | None, inline_cap: int,
           max_payload: int, share: bool = False) -> Encoded:
    """Encode ``value`` (the args tuple when ``call``) for one slot.

    share: arrays that already live in this runtime's arena are sent by
    reference (the caller keeps ``Encoded.pins`` until the task is done)."""
    if call:
        _check_raw_size(value, kwargs, max_payload)
        if not kwargs:
            for a in value:
                if type(a) not in _PLAIN or (type(a) in (bytes, str) and len(a) > inline_cap):
                    break  # cannot be inline: no marshal copy of a big string
            else:
                msg = _marshal_dumps(value, MARSHAL_VERSION)
                if len(msg) <= inline_cap:
                    return Encoded(msg, -1, len(msg))
        kw = bool(kwargs)
        obj = (value, kwargs) if kw else value
        raw_oob = any(type(a) in _BIG_RAW for a in value) or bool(
            kwargs and any(type(a) in _BIG_RAW for a in kwargs.values()))
    else:
        t = type(value)
        if t in _PLAIN or (t is list and len(value) <= 64 and all(type(x) in _PLAIN for x in value)):
            msg = _marshal_dumps(value, MARSHAL_VERSION)
            if len(msg) <= inline_cap:
                return Encoded(msg, -1, len(msg))
        kw = False
        obj = value
        raw_oob = t in _BIG_RAW
        if raw_oob:
            _check_raw_size((value,), None, max_payload)
    body, bufs = _pickle(obj, raw_oob, seg if share else None)
    if bufs and share:
        homes = [_arena_home(seg, pb) for pb in bufs]
        if any(homes):
            return _encode_shared(seg, kw, body, bufs, homes, inline_cap, max_payload)
    if not bufs:
        msg = bytes((SPECIAL, K_KW | 1)) + body if kw else body
        if len(msg) <= inline_cap:
            return Encoded(msg, -1, len(msg))
        return _to_blob(seg, [msg], [], max_payload)
    head = bytearray((SPECIAL, (K_KW if kw else 0) | K_OOB))
    n = len(bufs)
    head += _U32.pack(n)
    pos = len(head) + n * _PAIR.size + len(body)
    raws = [pb.raw() for pb in bufs]
    layout = []
    for r in raws:
        pos = (pos + 63) & ~63
        layout.append((pos, r.nbytes))
        pos += r.nbytes
    for off, ln in layout:
        head += _PAIR.pack(off, ln)
    return _to_blob(seg, [bytes(head), body], list(zip(layout, raws, strict=True)), max_payload)


def _encode_shared(seg: Any, kw: bool, body: bytes, bufs: list[pickle.PickleBuffer],
                   homes: list[tuple[Any, int] | None], inline_cap: int,
                   max_payload: int) -> Encoded:
    """The K_SHARED form: buffers in the arena go by (block, start, length);
    the others are copied after the pickle stream as usual.  With nothing to
    copy the message is small and usually travels inline."""
    head = bytearray((SPECIAL, (K_KW if kw else 0) | K_OOB | K_SHARED))
    n = len(bufs)
    head += _U32.pack(n)
    pos = len(head) + n * _TRIPLE.size + len(body)
    copies = []
    pins = []
    for pb, home in zip(bufs, homes, strict=True):
        raw = pb.raw()
        if home is not None:
            bv, start = home
            head += _TRIPLE.pack(bv.offset + 1, start, raw.nbytes)
            pins.append(bv)
            continue
        pos = (pos + 63) & ~63
        head += _TRIPLE.pack(0, pos, raw.nbytes)
        copies.append(((pos, raw.nbytes), raw))
        pos += raw.nbytes
    if not copies and len(head) + len(body) <= inline_cap:
        return Encoded(bytes(head) + body, -1, len(head) + len(body), tuple(pins))
    enc = _to_blob(seg, [bytes(head), body], copies, max_payload)
    enc.pins = tuple(pins)
    return enc


def _check_raw_size(args: tuple, kwargs: dict | None, max_payload: int) -> None:
    """Refuse a payload whose raw buffers alone exceed the limit before
    anything is copied or pickled (a 1 GB bytes took seconds to refuse)."""
    total = 0
    for a in (*args, *(kwargs.values() if kwargs else ())):
        if type(a) is bytes:
            total += len(a)
        elif type(a) is memoryview:
            total += a.nbytes
    if total > max_payload:
        raise PayloadTooLarge(f"payload of at least {total} bytes exceeds the limit of "
                              f"{max_payload} bytes (Pool(max_payload=...) / arena_size)")


def _to_blob(seg: Any, parts: list[bytes], bufs: list, max_payload: int) -> Encoded:
    size = sum(len(p) for p in parts)
    if bufs:
        (last_off, last_len), _ = bufs[-1]
        size = last_off + last_len
    if size > max_payload:
        raise PayloadTooLarge(f"payload of {size} bytes exceeds the limit of {max_payload} bytes "
                              "(Pool(max_payload=...) / arena_size)")
    got = seg.blob_alloc(size)
    if got is None:
        raise PayloadTooLarge(f"arena exhausted: no block of {size} bytes free "
                              "(raise Pool(arena_size=...))")
    off, view = got
    mv = memoryview(view).cast("B")
    pos = 0
    for p in parts:
        mv[pos:pos + len(p)] = p
        pos += len(p)
    for (boff, blen), raw in bufs:
        mv[boff:boff + blen] = raw.cast("B") if raw.format != "B" or raw.ndim != 1 else raw
    mv.release()
    del view
    return Encoded(b"", off, size)


def _shared_buffers(mv: memoryview, n: int, seg: Any) -> tuple[list, int]:
    """The buffer table of a K_SHARED message: (buffers, end of header)."""
    if n < 6:
        raise ValueError("truncated message header")
    (count,) = _U32.unpack_from(mv, 2)
    if count > (n - 6) // _TRIPLE.size:
        raise ValueError("message buffer table longer than the message")
    buffers: list[Any] = []
    for i in range(count):
        src, off, ln = _TRIPLE.unpack_from(mv, 6 + i * _TRIPLE.size)
        if src == 0:
            if off > n or ln > n - off:
                raise ValueError("message buffer out of bounds")
            buffers.append(mv[off:off + ln])
            continue
        if seg is None:
            raise ValueError("message names a shared arena block, and no segment to read it")
        view = memoryview(seg.blob_view(src - 1))  # checks the block, takes our reference
        if off > view.nbytes or ln > view.nbytes - off:
            raise ValueError("shared buffer out of its block's bounds")
        buffers.append(view[off:off + ln])
    return buffers, 6 + count * _TRIPLE.size


def decode(data: Any, *, call: bool, seg: Any = None) -> Any:
    """Decode a message (bytes or a BlobView).  For calls: (args, kwargs).
    seg: the segment shared arrays are read from (K_SHARED messages)."""
    mv = memoryview(data)
    n = mv.nbytes
    if n == 0:
        raise ValueError("empty message")
    first = mv[0]
    if first == PICKLE_START:
        obj = pickle.loads(mv)
        return (tuple(obj), {}) if call else obj
    if first != SPECIAL:  # marshal v2
        if first & 0x80:  # a reference flag: not one of ours
            raise ValueError("malformed message: not a marshal v2 value")
        try:
            obj = _marshal_loads(mv)  # bounded by mv: a truncated message raises EOFError
        except (EOFError, TypeError, ValueError) as e:
            raise ValueError(f"malformed message: {e}") from None
        if not call:
            return obj
        if type(obj) is not tuple:
            raise ValueError("malformed message: call arguments are not a tuple")
        return obj, {}
    if n < 2:
        raise ValueError("truncated message")
    kind = mv[1]
    if kind & K_SHARED:
        buffers, hdr_end = _shared_buffers(mv, n, seg)
        obj = pickle.loads(mv[hdr_end:], buffers=buffers)
    elif kind & K_OOB:
        if n < 6:
            raise ValueError("truncated message header")
        (count,) = _U32.unpack_from(mv, 2)
        if count > (n - 6) // _PAIR.size:
            raise ValueError("message buffer table longer than the message")
        hdr_end = 6 + count * _PAIR.size
        buffers = []
        for i in range(count):
            off, ln = _PAIR.unpack_from(mv, 6 + i * _PAIR.size)
            if off > n or ln > n - off:
                raise ValueError("message buffer out of bounds")
            buffers.append(mv[off:off + ln])
        # pickle ignores the bytes after its STOP opcode (the buffers)
        obj = pickle.loads(mv[hdr_end:], buffers=buffers)
    elif kind & K_KW:
        obj = pickle.loads(mv[2:])
    else:
        raise ValueError(f"unknown message kind {kind:#x}")
    if not call:
        return obj
    if kind & K_KW:
        args, kwargs = obj
        return tuple(args), kwargs
    return tuple(obj), {}
