"""The task protocol above the codec, shared by every process that submits
or runs tasks (clients, the relay, workers): function-table ids (a callable
is pickled once per process, then sent by id), and how a task's outcome
travels (its exception with the worker's traceback; decoding a finished
task's status and payload into a value or the exception to raise).

Why here and not in workers/cpu.py, where it lived: the library's clients
need it as much as the workers do, and the library must not import the
worker's scheduling loop to get it (dependencies point down: workers import
the protocol layer, never the reverse)."""

from __future__ import annotations

from collections.abc import Callable

from . import _core, codec

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import Any

NO_FN = 0xFFFFFFFF  # no function-table id: the callable travels with each call


class ByValue:
    """Function-table ids of callables sent by value (lambdas, closures,
    what a lost ``__main__`` defines).  Held weakly: an interactive session
    that makes a new lambda per call must not keep them all alive; identical
    pickles (the same lambda made again) share one id, so the table fills
    only with distinct functions.  One per client or worker process."""

    __slots__ = ("ids", "by_data")

    def __init__(self) -> None:
        import weakref

        self.ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.by_data: dict[bytes, int] = {}


def fn_id_for(seg: _core.Segment, cache: dict[Any, int], fn: Callable[..., Any],
              byval: ByValue | None = None) -> int:
    """The function-table id of ``fn``: pickled once per process, then by id.

    Only plain functions, builtins and classes are cached; anything else
    (bound methods, partials, callable instances) carries state and is
    pickled with every call (NO_FN).  A function a worker could not import
    by name goes by value (codec.dumps_fn, cloudpickle), also once: its id
    is kept in ``byval`` (weakly), not in ``cache``."""
    if type(fn) not in _BY_REF:
        return NO_FN
    fid = cache.get(fn)
    if fid is None and byval is not None:
        fid = byval.ids.get(fn)
    if fid is not None:
        return fid
    data, by_value = codec.dumps_fn(fn)
    if by_value and byval is not None:
        fid = byval.by_data.get(data)
        if fid is None:
            fid = seg.register_fn(data)
            if fid < 0:
                return NO_FN  # table full: this one travels with each call
            byval.by_data[data] = fid
        byval.ids[fn] = fid
        return fid
    fid = seg.register_fn(data)
    if fid < 0:
        fid = NO_FN
    cache[fn] = fid
    return fid


_BY_REF = {type(fn_id_for), type(len), type}


def encode_exception(seg: _core.Segment, e: BaseException, cap: int, max_payload: int) -> codec.Encoded:
    """The task's exception and the worker's traceback.  Never raises: an
    exception that cannot be pickled (or formatted, e.g. a RecursionError
    deep in the stack) is replaced by a ShmrtError saying so, so the task is
    always finished and its future always completes."""
    from shmrt.errors import ShmrtError

    try:
        import traceback  # here: not on every worker's start-up path

        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    except BaseException:
        tb = f"{type(e).__name__} (traceback unavailable)\n"
    e.__traceback__ = None
    try:
        return codec.encode(seg, (e, tb), call=False, kwargs=None, inline_cap=cap,
                            max_payload=max_payload)
    except BaseException as pe:
        try:
            sub = ShmrtError(f"task raised {type(e).__name__}: {e!r:.300} (unpicklable: {pe!r:.200})")
        except BaseException:
            sub = ShmrtError(f"task raised {type(e).__name__} (unpicklable)")
        return codec.encode(seg, (sub, tb[-2000:]), call=False, kwargs=None, inline_cap=cap,
                            max_payload=max_payload)


def task_outcome(status: int, data: Any) -> tuple[Any, BaseException | None]:
    """(value, None) of a finished task, or (None, its exception) with the
    worker's traceback as ``__cause__``.  Not raised here: a raised exception
    keeps the frames it passed through, and with them the caller's ``data``
    (a view of the result's arena block), for as long as anyone keeps the
    exception (a future does): callers drop ``data`` first, then raise."""
    value = codec.decode(data, call=False)
    if status == _core.ST_OK:
        return value, None
    from shmrt.errors import RemoteTraceback

    if status == _core.ST_ERROR:
        exc, tb = value
        exc.__cause__ = RemoteTraceback(tb)
        return None, exc
    if status == _core.ST_TIMEOUT:
        from shmrt.errors import TaskTimeout

        return None, TaskTimeout(*value)
    if status == _core.ST_CANCELLED:
        from shmrt.errors import TaskCancelled  # type: ignore[attr-defined]

        return None, TaskCancelled(f"task force-cancelled while running; its worker (pid "
                                   f"{value[0]}) was killed")
    if status == _core.ST_CRASHED:
        from shmrt.errors import WorkerCrashed

        return None, WorkerCrashed(*value)
    return None, RuntimeError(f"task finished with unknown status {status}")


def decode_result(status: int, data: Any) -> Any:
    """Value of a finished task, or raise its exception (task_outcome)."""
    value, exc = task_outcome(status, data)
    del data  # not kept alive by the traceback
    if exc is not None:
        raise exc
    return value


