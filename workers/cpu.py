"""The CPU worker: a process that runs the scheduling loop and the tasks.

Why this shape: tokio's multi-thread worker, one process per core instead of
one thread.  The mechanisms (queues, park/notify, state words) are in the C
core; this module is the policy that strings them together:

1. Take from the LIFO slot (at most 3 in a row), else the local queue.
2. Every ``GLOBAL_QUEUE_INTERVAL`` tasks look at the inject queue first, so
   remote submissions are never starved by a busy local queue.
3. Local queue empty: refill from the inject queue (a batch).
4. Still nothing: become a searcher (only if 2 * searching < workers) and
   steal half of another worker's queue, victims in random order.
5. Nothing: a searcher spins briefly (a spin hit costs ~0.3 us, a futex wake
   ~47 us), then everyone parks on its futex word with a timeout; the park
   re-checks every queue after announcing itself (no lost work).
6. Found work as the last searcher with more left: wake one parked worker.

Joining a spawned child runs other ready tasks while waiting ("work
helping"), so recursive fork-join cannot deadlock the pool; the nesting depth
is bounded, beyond it a joiner just parks until its child completes.

Imports are kept light: a worker's start-up time is part of pool start-up.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
from collections.abc import Callable

from shmrt import _core, codec
from shmrt.errors import NotInWorker
from shmrt.layout import Header
from shmrt.protocol import NO_FN, ByValue, encode_exception, fn_id_for, task_outcome

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import Any

GLOBAL_QUEUE_INTERVAL = 61
LIFO_MAX = 3
SPIN_S = 50e-6
PARK_TIMEOUT_S = 0.5
JOIN_PARK_S = 0.05
HELP_DEPTH_MAX = 64
FROM_LIFO = 1 << 30
MEM_CHECK_EVERY = 8  # tasks between two RSS reads when max_worker_memory is set

_current: Worker | None = None
CRASH = _core.crash_armed()  # a test run armed a crash point (crash.h); else never True


def current_worker() -> Worker:
    if _current is None:
        raise NotInWorker("shmrt.spawn() is only available inside a task running on a shmrt worker")
    return _current


# ---- frame-stack chunk padding ---------------------------------------------
# CPython 3.11 keeps frames in 16 KiB chunks and frees a chunk whenever the
# stack pops below its base: a recursion that oscillates across a chunk
# boundary pays an mmap + munmap per crossing (cpython gh-142183; fixed by a
# chunk cache only in 3.13.x/3.14).  Work helping starts nested tasks at
# arbitrary depths, and fork-join benchmarks ran 2-5x slower from it
# (strace: ~10,000 mmap/munmap pairs for one fib(30) run).  So a task that
# would start with less than PAD_ROOM bytes left in its chunk is called
# through a trampoline whose frame is just too big for that room: the
# trampoline opens a fresh chunk and the task gets >= 8 KiB of headroom.
PAD_ROOM = 8192
_PAD_STEP = 1024


def _make_pad(nbytes: int) -> Callable[..., Any]:
    names = " = ".join(f"_{i}" for i in range(nbytes // 8))
    ns: dict[str, Any] = {}
    exec(f"def pad(fn, args, kwargs):\n    if 0:\n        {names} = 0\n"
         f"    return fn(*args, **kwargs)\n", ns)
    return ns["pad"]


_PADS: dict[int, Callable[..., Any]] = {}  # built on first need: compiling costs ~1 ms each


def call_task(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    room = _core.datastack_room()
    if room >= PAD_ROOM:
        return fn(*args, **kwargs)
    step = room // _PAD_STEP
    pad = _PADS.get(step)
    if pad is None:
        pad = _PADS[step] = _make_pad((step + 1) * _PAD_STEP)
    return pad(fn, args, kwargs)


class Worker:
    """One worker process's scheduler state.  Only this process touches it."""

    def __init__(self, seg: _core.Segment, wid: int, coord_pid: int, coord_start: int):
        self.seg = seg
        self.wid = wid
        lay = seg.layout
        self.n = lay["n_workers"]
        self.inline_cap = lay["slot_size"] - _core.SLOT_HEADER_SIZE
        self.max_payload = lay["max_payload"]
        self.others = [i for i in range(self.n) if i != wid]
        self.fns: dict[int, Callable[..., Any]] = {}
        self.fn_ids: dict[Any, int] = {}
        self.byval = ByValue()
        self.stack: list[int] = []  # slot indices of the tasks running, innermost last
        self.tick = 0
        self.lifo_streak = 0
        self.searching = False
        self.coord = (coord_pid, coord_start)
        self.run_off = Header.TABLE["run_state"]
        self.spin_s = SPIN_S
        self.max_tasks = 0  # retire after this many tasks from the loop (0: never)
        self.max_memory = 0  # retire when RSS exceeds this many bytes (0: never)

    # ---- finding work ----------------------------------------------------
    def find(self, helping: bool = False) -> int:
        """A runnable slot index, or -1.  Updates the searching role.

        A joiner that helps (``helping``) skips the periodic inject check:
        that check is fairness for remote submissions, and inside a join it
        would stack unrelated top-level tasks on the joiner instead of its
        own descendants."""
        seg, wid = self.seg, self.wid
        self.tick += 1
        idx = -1
        if not helping and self.tick % GLOBAL_QUEUE_INTERVAL == 0:
            idx = seg.refill(wid)
        if idx < 0:
            idx = seg.next_local(wid, self.lifo_streak < LIFO_MAX, helping)
            if idx >= 0:
                if idx & FROM_LIFO:
                    idx &= ~FROM_LIFO
                    self.lifo_streak += 1
                else:
                    self.lifo_streak = 0
        if idx < 0:
            idx = seg.refill(wid, helping)
        if idx < 0 and self.others:
            if not self.searching:
                self.searching = seg.try_search(wid)
            if self.searching:
                victims = self.others
                start = random.randrange(len(victims))
                for k in range(len(victims)):
                    idx = seg.steal(wid, victims[(start + k) % len(victims)], helping)
                    if idx >= 0:
                        break
                if idx < 0:
                    idx = seg.refill(wid, helping)
        if idx >= 0 and self.searching:
            self.searching = False
            seg.end_search(wid, seg.queue_len(wid) > 0)
        return idx

    def park(self, timeout: float, joined: int = -1) -> int:
        r = self.seg.park(self.wid, self.spin_s if self.searching else 0.0, timeout,
                          self.searching, joined)
        self.searching = r == 1
        return r

    # ---- running ----------------------------------------------------------
    def load_fn(self, fn_id: int) -> Callable[..., Any]:
        fn = self.fns.get(fn_id)
        if fn is None:
            data = self.seg.get_fn(fn_id)
            if data is None:
                raise RuntimeError(f"function {fn_id} is not registered")
            fn = self.fns[fn_id] = pickle.loads(data)
        return fn

    def run(self, idx: int) -> None:
        seg = self.seg
        t = seg.begin(self.wid, idx)
        if t is None:
            return  # cancelled before it started
        key, fn_id, data, _parent, kind = t
        # Nothing of the task's may outlive it here: a view of its args block
        # (``t``, ``data``, the arguments) keeps the block held, and the caller,
        # which has the result once we finish, may need that memory for its
        # next payload (a near-full arena refused it).  So every name that can
        # hold one is cleared before ``finish``.
        del t
        outer = self.stack[-1] if self.stack else -1
        if kind == 1:
            self.run_packet(idx, fn_id, data, outer)
            return
        self.stack.append(idx)
        try:
            args, kwargs = codec.decode(data, call=True, seg=self.seg)
            del data
            if fn_id == NO_FN:
                fn, args = args[0], args[1:]
            else:
                fn = self.load_fn(fn_id)
            if CRASH:
                _core.crash_point("worker.in_task")
            result = call_task(fn, args, kwargs)
            enc = codec.encode(seg, result, call=False, kwargs=None,
                               inline_cap=self.inline_cap, max_payload=self.max_payload)
            status = _core.ST_OK
        except BaseException as e:  # noqa: B036 - a task's failure is data, like ProcessPoolExecutor
            if isinstance(e, KeyboardInterrupt):
                raise
            enc = encode_exception(seg, e, self.inline_cap, self.max_payload)
            status = _core.ST_ERROR
        finally:
            self.stack.pop()
        # dropped before finish (see above); the names may be unbound after an error
        data = b""  # noqa: F841
        args = kwargs = fn = result = None  # noqa: F841
        seg.finish(self.wid, idx, status, enc.inline, enc.blob, outer)
        if CRASH:
            _core.crash_point("worker.after_finish")

    def run_packet(self, idx: int, fn_id: int, data: Any, outer: int) -> None:
        """A relay packet: transform(memoryview) -> bytes-like | None.  The
        output goes to the send ring (the C core's deliver), never blocks."""
        seg = self.seg
        blob = -1
        self.stack.append(idx)
        try:
            out = self.load_fn(fn_id)(memoryview(data))
            del data
            if out is None:
                status, out = _core.ST_FILTERED, b""
            else:
                status = _core.ST_OK
                n = memoryview(out).nbytes
                if n > self.inline_cap:
                    got = seg.blob_alloc(n)
                    if got is None:
                        raise MemoryError(f"arena exhausted for a {n}-byte packet")
                    blob, view = got
                    memoryview(view).cast("B")[:] = memoryview(out).cast("B")
                    del view
                    out = b""
        except Exception as e:
            status, out, blob = _core.ST_ERROR, f"{type(e).__name__}: {e}".encode()[:200], -1
        finally:
            self.stack.pop()
        seg.finish(self.wid, idx, status, out, blob, outer)

    def loop(self) -> bool:
        """Run tasks until the runtime stops (False) or this worker retires
        (True): after ``max_tasks`` tasks, or when its RSS, read every
        MEM_CHECK_EVERY tasks, is over ``max_memory``.  A retiring worker
        leaves between tasks; what its queue still holds is given back by
        the coordinator's reclaim when it sees the exit."""
        seg = self.seg
        run_off = self.run_off
        budget, ceiling, done = self.max_tasks, self.max_memory, 0
        while True:
            idx = self.find()
            if idx >= 0:
                if CRASH:
                    _core.crash_point("worker.after_find")
                self.run(idx)
                if budget or ceiling:
                    done += 1
                    if budget and done >= budget:
                        return True
                    if ceiling and done % MEM_CHECK_EVERY == 1 and rss_bytes() > ceiling:
                        return True
                continue
            if seg.load64(run_off) != _core.RUN_RUNNING:
                return False
            if self.park(PARK_TIMEOUT_S) == 2 and not self.coordinator_alive():
                return False

    def coordinator_alive(self) -> bool:
        from shmrt.segment import process_alive

        return process_alive(*self.coord)

    # ---- spawn / join (called from inside tasks) ----------------------------
    def fn_id(self, fn: Callable[..., Any]) -> int:
        return fn_id_for(self.seg, self.fn_ids, fn, self.byval)

    def spawn(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Handle | InlineHandle:
        if len(self.stack) >= HELP_DEPTH_MAX:
            return InlineHandle(fn, args, kwargs)
        fid = self.fn_id(fn)
        if fid == NO_FN:
            args = (fn, *args)
        enc = codec.encode(self.seg, args, call=True, kwargs=kwargs,
                           inline_cap=self.inline_cap, max_payload=self.max_payload)
        parent = self.stack[-1] if self.stack else -1
        if len(self.stack) < HELP_DEPTH_MAX:
            key = self.seg.spawn(self.wid, fid, enc.inline, enc.blob, parent)
            if key >= 0:
                return Handle(self, key)
        # At the nesting bound, or no free slot: run the child right here
        # (fork-join's usual fallback; waiting for a slot could wait on
        # ourselves).
        if enc.blob >= 0:
            self.seg.blob_release(enc.blob)
        return InlineHandle(fn, args if fid != NO_FN else args[1:], kwargs)

    def help_once(self) -> bool:
        """Run one other ready task while waiting (work helping).

        The nesting is bounded: at HELP_DEPTH_MAX tasks on this worker's
        stack it helps no more, and spawn() runs children inline there.  So
        a join that has to wait always sits below the bound, where it can
        help, and no join at the bound can wait for a queued child (which
        would deadlock: nobody else may take from a LIFO slot)."""
        if len(self.stack) >= HELP_DEPTH_MAX:
            return False
        idx = self.find(helping=True)
        if idx < 0:
            return False
        self.run(idx)
        return True

    def join(self, key: int) -> Any:
        seg = self.seg
        while True:
            r = seg.join_poll(key)
            if r is not None:
                if self.searching:  # back to user code: give the searching slot back
                    self.searching = False
                    seg.end_search(self.wid, True)
                value, exc = task_outcome(*r)
                del r  # the result's block: not kept by the exception's traceback
                if exc is not None:
                    raise exc
                return value
            if self.help_once():
                continue
            if not seg.join_register(key):
                continue  # completed meanwhile
            self.park(JOIN_PARK_S, key)  # ends when the child completes (or work appears)


class Handle:
    """What shmrt.spawn() returns: join() waits for the child's result."""

    __slots__ = ("_worker", "_key", "_done", "_value")

    def __init__(self, worker: Worker, key: int):
        self._worker = worker
        self._key = key
        self._done = False
        self._value: Any = None

    def join(self) -> Any:
        if not self._done:
            self._done = True
            self._value = self._worker.join(self._key)
        return self._value

    def __del__(self) -> None:
        if not self._done and _current is self._worker:
            try:
                self._worker.seg.release(self._key)
            except Exception:
                pass


class InlineHandle:
    """A spawn that found no free slot: the child ran inline, in the caller."""

    __slots__ = ("_value", "_exc")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict):
        self._value: Any = None
        self._exc: BaseException | None = None
        try:
            self._value = fn(*args, **kwargs)
        except Exception as e:
            self._exc = e

    def join(self) -> Any:
        if self._exc is not None:
            raise self._exc
        return self._value


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size (/proc/self/statm, ~3 us)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _set_pdeathsig() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
