/*
 * sched.c -- the scheduler's shared mechanisms: idle word, park / notify, and
 * the worker-side queue operations (local pop, LIFO slot, refill from inject,
 * steal).  The policy that strings them together (LIFO at most 3 in a row,
 * inject check every ~61 tasks, when to search) lives in workers/cpu.py.
 *
 * Idle word (header.idle), after tokio scheduler/multi_thread/idle.rs:
 *
 *   | 63 ..... 32 | 31 ........ 16 | 15 ......... 0 |
 *   |   unused    |  num_unparked  | num_searching  |
 *
 * Park protocol (no lost wakeups).  Worker w going to sleep:
 *   1. state[w] = PARKED                                  (SeqCst store)
 *   2. idle -= one unparked (and one searching if it was searching)
 *   3. seq = park_seq[w]; re-check every queue and the run state   (SeqCst)
 *   4. work seen: CAS state PARKED -> RUNNING; success = unparked again.
 *   5. else futex_wait(park_seq[w], seq, timeout)
 *   6. after waking: CAS PARKED -> RUNNING (timeout / spurious: unpark self),
 *      or find NOTIFIED: a notifier already counted us unparked + searching.
 * Notifier, after making work visible (SeqCst push):
 *   if num_searching == 0 and num_unparked < n: CAS idle += (1 unparked,
 *   1 searching); CAS some worker PARKED -> NOTIFIED; bump its park_seq;
 *   futex_wake.  If no worker is PARKED after all (it is self-unparking in
 *   step 4/6), undo the idle increment: that worker will look for work anyway.
 * Either the parker's step 3 sees the work, or the notifier sees PARKED:
 * both sides use SeqCst on (queue length, state), a Dekker handshake.
 */
#include "core.h"
#include "crash.h"
#include "section.h"
#include "queue.h"
#include "state.h"

#include <sched.h>

#define IDLE_SEARCH_MASK 0xffffULL
#define IDLE_UNPARK_ONE (1ULL << 16)

int ring_push(ring_t *r, u64 cap, u64 val) { return ring_push_inl(r, cap, val); }
long ring_pop(ring_t *r, u64 cap) { return ring_pop_inl(r, cap); }

int sched_init_structures(SegmentObject *s) {
    header_t *h = HDR(s);
    ring_init(inject_ring(s), s->L.inject_cap);
    /* client rings: at first claim (admin.c); slots: carved on first use
     * (task.c slot_alloc).  A new runtime touches neither. */
    h->free_head = 0;
    h->slots_carved = 0;
    h->free_count = s->L.n_slots;
    h->idle = s->L.n_workers * IDLE_UNPARK_ONE; /* all unparked, none searching */
    h->run_state = RUN_INIT;
    return 0;
}

/* ---- notify ------------------------------------------------------------- */
static int notify_parked(SegmentObject *s) {
    header_t *h = HDR(s);
    u64 n = s->L.n_workers;
    u64 st = LOAD_SEQ(&h->idle); /* pairs with the parker's SeqCst idle RMW */
    for (;;) {
        if ((st & IDLE_SEARCH_MASK) != 0 || (st >> 16) >= n) return 0;
        if (CAS_SEQ(&h->idle, &st, st + 1 + IDLE_UNPARK_ONE)) break;
    }
    static __thread u64 rot = 0;
    for (u64 k = 0; k < n; k++) {
        worker_t *w = worker_at(s, (rot + k) % n);
        u64 exp = W_PARKED;
        if (LOAD_SEQ(&w->state) == W_PARKED && CAS_SEQ(&w->state, &exp, W_NOTIFIED)) {
            rot += k + 1;
            FETCH_ADD_SEQ(&w->park_seq, 1); /* makes a racing futex_wait return */
            futex_wake_u32(&w->park_seq, 1);
            return 1;
        }
    }
    FETCH_SUB_SEQ(&h->idle, 1 + IDLE_UNPARK_ONE); /* nobody to wake: undo */
    return 0;
}

int sched_notify(SegmentObject *s) { return notify_parked(s); }

/* Is there visible work anywhere?  SeqCst loads: step 3 of the protocol. */
static int has_work(SegmentObject *s, slot_t *joined, int all_queues) {
    /* A joiner parks for its child too: COMPLETE is set (SeqCst RMW) before
     * the completer bumps park_seq, so reading it after park_seq closes the
     * window in which the wake would be lost. */
    if (joined && (LOAD_SEQ(&joined->state) & S_COMPLETE)) return 1;
    if (ring_nonempty(inject_ring(s), s->L.inject_cap)) return 1;
    if (LOAD_SEQ(&HDR(s)->run_state) != RUN_RUNNING) return 1;
    /* Local queues: only the last searcher looks (tokio's rule).  Work in a
     * local queue is its owner's, or a searcher's to steal; a worker that may
     * not search (throttled) would only spin on it. */
    for (u64 i = 0; all_queues && i < s->L.n_workers; i++) {
        if (LOAD_SEQ(&worker_at(s, i)->lifo)) return 1; /* stealable too */
        local_queue_t *q = queue_at(s, i);
        u64 hd = LOAD_SEQ(&q->head);
        if ((u32)LOAD_SEQ(&q->tail) != head_real(hd)) return 1;
    }
    return 0;
}

/* park(wid, spin_s, timeout_s, searching, joined_key=-1) -> 0 self-unparked
 * (not searching), 1 notified (now a searcher, already counted), 2 timed out
 * (not searching).  Spins first (GIL released) for spin_s seconds watching
 * for work.  With joined_key, the park also ends when that task completes
 * (the joiner must have set JOIN_WAKER on it before calling). */
static PyObject *S_park(SegmentObject *s, PyObject *args) {
    unsigned long long wid;
    double spin_s, timeout_s;
    int searching;
    long long jkey = -1;
    if (!PyArg_ParseTuple(args, "Kddp|L", &wid, &spin_s, &timeout_s, &searching, &jkey) ||
        seg_check_open(s, 1))
        return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    slot_t *joined = NULL;
    if (jkey >= 0) {
        u64 jidx;
        joined = slot_for_key(s, (unsigned long long)jkey, &jidx);
        if (!joined) return NULL;
    }
    header_t *h = HDR(s);
    int result = 0, seen = 0;
    Py_BEGIN_ALLOW_THREADS
    if (spin_s > 0) {
        u64 end = now_ns() + (u64)(spin_s * 1e9);
        unsigned i = 0;
        while (!(seen = has_work(s, joined, 1))) {
            if ((++i & 15) == 0) {
                if (now_ns() >= end) break;
                sched_yield(); /* 2 cores: let a runnable process have the CPU */
            } else {
                cpu_relax();
            }
        }
        COUNTER_BUMP(&w->spins, 1);
    }
    if (seen) {
        result = searching ? 1 : 0; /* work seen while spinning: keep our role */
    } else {
        /* Two sections (section.h): announcing the park, and leaving it.  The
         * sleep between them is outside, so a crash reclaim never waits for a
         * parked worker; it counts it parked from its state word. */
        section_enter(s);
        STORE_SEQ(&w->state, (u64)W_PARKED);                                  /* step 1 */
        CRASH_POINT(CP_PARKED);
        u64 prev = FETCH_SUB_SEQ(&h->idle, IDLE_UNPARK_ONE + (searching ? 1 : 0)); /* step 2 */
        section_leave(s);
        int last = searching && (prev & IDLE_SEARCH_MASK) == 1;
        u32 seq = (u32)LOAD_SEQ(&w->park_seq);                                /* step 3 */
        int woke = 0;
        if (!has_work(s, joined, last)) {
            COUNTER_BUMP(&w->parks, 1);
            futex_wait_u32(&w->park_seq, seq, timeout_s);                    /* step 5 */
            woke = 1;
        }
        section_enter(s);
        u64 exp = W_PARKED;
        if (CAS_SEQ(&w->state, &exp, (u64)W_RUNNING)) {                       /* step 4/6 */
            FETCH_ADD_SEQ(&h->idle, IDLE_UNPARK_ONE);
            result = woke && !has_work(s, joined, 0) ? 2 : 0;
        } else {
            /* A notifier moved us PARKED -> NOTIFIED and counted us as an
             * unparked searcher. */
            STORE_SEQ(&w->state, (u64)W_SEARCHING);
            COUNTER_BUMP(&w->wakeups, 1);
            result = 1;
        }
        section_leave(s);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(result);
}

/* try_search(wid) -> bool: become a searcher if 2 * searching < workers. */
static PyObject *S_try_search(SegmentObject *s, PyObject *arg) {
    unsigned long long wid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    header_t *h = HDR(s);
    u64 st = LOAD_SEQ(&h->idle);
    for (;;) {
        if (2 * (st & IDLE_SEARCH_MASK) >= s->L.n_workers) Py_RETURN_FALSE;
        if (CAS_SEQ(&h->idle, &st, st + 1)) {
            CRASH_POINT(CP_SEARCH);
            STORE_RLX(&w->state, (u64)W_SEARCHING);
            Py_RETURN_TRUE;
        }
    }
}

/* end_search(wid, more_work) -> None: leave the searching state; the last
 * searcher wakes a parked worker when it saw more work than it took (tokio
 * wakes unconditionally; waking only on a backlog saves a futex wake per
 * task when one task at a time trickles in). */
static PyObject *S_end_search(SegmentObject *s, PyObject *args) {
    unsigned long long wid;
    int more = 1;
    if (!PyArg_ParseTuple(args, "K|p", &wid, &more) || seg_check_open(s, 1)) return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    STORE_RLX(&w->state, (u64)W_RUNNING);
    u64 prev = FETCH_SUB_SEQ(&HDR(s)->idle, 1);
    if ((prev & IDLE_SEARCH_MASK) == 0) {
        FETCH_ADD_SEQ(&HDR(s)->idle, 1); /* was not counted: undo, corrupt caller */
        return PyErr_Format(SegmentError, "end_search without search");
    }
    if ((prev & IDLE_SEARCH_MASK) == 1) {
        if (more || ring_nonempty(inject_ring(s), s->L.inject_cap)) notify_parked(s);
    }
    Py_RETURN_NONE;
}

static PyObject *S_notify(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    return PyBool_FromLong(notify_parked(s));
}

/* wake_all() -> int: bump every park word (shutdown). */
static PyObject *S_wake_all(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    int n = 0;
    for (u64 i = 0; i < s->L.n_workers; i++) {
        worker_t *w = worker_at(s, i);
        FETCH_ADD_SEQ(&w->park_seq, 1);
        n += futex_wake_u32(&w->park_seq, 1);
    }
    return PyLong_FromLong(n);
}

/* ---- worker-side queue operations ---------------------------------------- */
static void inject_many(SegmentObject *s, u32 *v, u32 n) {
    for (u32 i = 0; i < n; i++) ring_push_inl(inject_ring(s), s->L.inject_cap, v[i]);
}

/* Push onto wid's local queue (overflow: half + this task to inject). */
int sched_push_local(SegmentObject *s, u64 wid, u32 idx) {
    local_queue_t *q = queue_at(s, wid);
    u32 moved[LOCAL_CAP_MAX / 2 + 1], n = 0;
    if (lq_push(q, s->L.local_cap, idx, moved, &n)) {
        CRASH_POINT(CP_OVERFLOW);
        inject_many(s, moved, n);
        COUNTER_BUMP(&worker_at(s, wid)->overflows, 1);
    }
    return 0;
}

/* Put a task in the LIFO slot; the previous occupant goes to the queue.
 *
 * The LIFO slot is stealable (unlike tokio's): fork-join code spawns one
 * half and computes the other inline, so the spawned half sits in the LIFO
 * slot for the whole of that computation and must be takeable by an idle
 * worker.  The owner puts and takes with an exchange, a thief takes with a
 * CAS (sched.c S_steal); AcqRel pairs the thief with the owner's put. */
int sched_push_lifo(SegmentObject *s, u64 wid, u32 idx) {
    worker_t *w = worker_at(s, wid);
    u64 prev = XCHG_ACQREL(&w->lifo, (u64)idx + 1);
    if (prev) {
        CRASH_POINT(CP_LIFO);
        sched_push_local(s, wid, (u32)(prev - 1));
    }
    return 0;
}

/* A root is a task a client submitted (not spawned from a task).  A joiner
 * that helps never runs one nested: it only ever waits for spawned tasks, so
 * leaving roots to workers in their main loop cannot block it, and its stack
 * then grows only with spawned work.  skip_root() sends a root back to the
 * inject queue and returns -1; anything else passes through. */
static long skip_root(SegmentObject *s, long v) {
    if (v < 0) return v;
    slot_t *sl = slot_at(s, (u64)v);
    if (!sl || LOAD_RLX(&sl->holder) >= HOLDER_WORKER) return v; /* read after the pop's acquire */
    ring_push_inl(inject_ring(s), s->L.inject_cap, (u64)v);
    return -1;
}

/* A popped task is recorded in the worker's `taking` word in the same step
 * that popped it, until begin() records it as running: a crash reclaim finds
 * it there (section.h).  Returns the Python result. */
static PyObject *taken(worker_t *w, long v, long tag) {
    if (v >= 0) {
        CRASH_POINT(CP_POPPED);
        STORE_RLX(&w->taking, (u64)v + 1); /* published by section_leave */
    }
    return PyLong_FromLong(v < 0 ? v : v | tag);
}

static long checked_idx(SegmentObject *s, long v) {
    if (v < 0) return -1;
    if ((u64)v >= s->L.n_slots) {
        PyErr_Format(SegmentError, "queue held out-of-range slot index %ld", v);
        return -2;
    }
    return v;
}

/* next_local(wid, use_lifo) -> slot index (| NEXT_FROM_LIFO when it came
 * from the LIFO slot) or -1. */
#define NEXT_FROM_LIFO (1L << 30)
static PyObject *S_next_local(SegmentObject *s, PyObject *args) {
    unsigned long long wid;
    int use_lifo, helping = 0;
    if (!PyArg_ParseTuple(args, "Kp|p", &wid, &use_lifo, &helping) || seg_check_open(s, 1))
        return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    long v = -1;
    u64 l = LOAD_ACQ(&w->lifo) ? XCHG_ACQREL(&w->lifo, 0) : 0; /* a thief may race us */
    if (l && use_lifo) {
        v = (long)(l - 1);
        COUNTER_BUMP(&w->lifo_hits, 1);
    } else if (l) {
        /* LIFO streak exhausted: the task goes to the back of the queue, where
         * it is run in turn (tokio does the same). */
        if (l - 1 < s->L.n_slots) sched_push_local(s, wid, (u32)(l - 1));
    }
    long from_lifo = v >= 0 ? NEXT_FROM_LIFO : 0;
    for (u64 n = 0; v < 0 && n <= s->L.local_cap; n++) { /* helping: skip roots */
        v = checked_idx(s, lq_pop(queue_at(s, wid), s->L.local_cap));
        if (v == -2) return NULL;
        if (v < 0) break;
        if (helping) v = skip_root(s, v);
    }
    v = checked_idx(s, v);
    if (v == -2) return NULL;
    return taken(w, v, from_lifo);
}

/* refill(wid, helping=False) -> slot index or -1: take min(len / workers + 1,
 * cap / 2) from inject, run the first, keep the rest in the local queue.
 * Helping: roots are passed over (a bounded scan). */
static PyObject *S_refill(SegmentObject *s, PyObject *args) {
    unsigned long long wid;
    int helping = 0;
    if (!PyArg_ParseTuple(args, "K|p", &wid, &helping) || seg_check_open(s, 1)) return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    ring_t *r = inject_ring(s);
    u64 len = ring_count(r, s->L.inject_cap);
    if (len == 0 && !ring_nonempty(r, s->L.inject_cap)) return PyLong_FromLong(-1);
    u64 want = len / s->L.n_workers + 1;
    u32 cur = lq_len(queue_at(s, wid));
    u64 half = s->L.local_cap / 2, room = cur < half ? half - cur : 0;
    if (want > room + 1) want = room + 1;
    long first = -1;
    u64 budget = helping ? 2 * want + 8 : want; /* pops, roots passed over included */
    for (u64 i = 0, got = 0; got < want && i < budget; i++) {
        long v = checked_idx(s, ring_pop_inl(r, s->L.inject_cap));
        if (v == -2) return NULL;
        if (v < 0) break;
        if (helping && skip_root(s, v) < 0) continue;
        got++;
        if (first < 0)
            first = v;
        else
            sched_push_local(s, wid, (u32)v);
    }
    if (first >= 0) COUNTER_BUMP(&w->inject_pulls, 1);
    return taken(w, first, 0);
}

/* steal(wid, victim) -> slot index or -1: steal half of victim's queue. */
static PyObject *S_steal(SegmentObject *s, PyObject *args) {
    unsigned long long wid, victim;
    int helping = 0;
    if (!PyArg_ParseTuple(args, "KK|p", &wid, &victim, &helping) || seg_check_open(s, 1))
        return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w || !worker_at(s, victim) || wid == victim)
        return PyErr_Format(SegmentError, "bad worker ids %llu/%llu", wid, victim);
    local_queue_t *dst = queue_at(s, wid), *src = queue_at(s, victim);
    COUNTER_BUMP(&w->steal_attempts, 1);
    u64 cap = s->L.local_cap;
    u32 dst_tail = (u32)LOAD_RLX(&dst->tail);
    u32 dst_steal = head_steal(LOAD_ACQ(&dst->head));
    if (dst_tail - dst_steal > cap / 2) return PyLong_FromLong(-1);
    u32 n = lq_steal_into2(src, dst, cap, dst_tail);
    if (n == 0) { /* queue empty: take the victim's LIFO slot */
        worker_t *vw = worker_at(s, victim);
        u64 l = LOAD_ACQ(&vw->lifo);
        if (!l || !CAS_ACQREL(&vw->lifo, &l, 0)) return PyLong_FromLong(-1);
        COUNTER_BUMP(&w->steals, 1);
        COUNTER_BUMP(&w->stolen_tasks, 1);
        long v = checked_idx(s, (long)(l - 1));
        if (v == -2) return NULL;
        if (helping && skip_root(s, v) < 0) v = -1;
        return taken(w, v, 0);
    }
    CRASH_POINT(CP_STEAL_DONE);
    n -= 1;
    long ret = (long)LOAD_RLX(&dst->buf[(dst_tail + n) & (cap - 1)]);
    if (n) STORE_REL(&dst->tail, (u64)(dst_tail + n)); /* pairs with stealers' acquire */
    COUNTER_BUMP(&w->steals, 1);
    COUNTER_BUMP(&w->stolen_tasks, n + 1);
    ret = checked_idx(s, ret);
    if (ret == -2) return NULL;
    if (helping && skip_root(s, ret) < 0) { /* the rest of the batch is ours now */
        ret = -1;
        for (u64 k = 0; ret < 0 && k <= s->L.local_cap; k++) {
            long v = checked_idx(s, lq_pop(dst, cap));
            if (v < 0) break;
            ret = skip_root(s, v);
        }
    }
    return taken(w, ret, 0);
}

static PyObject *S_queue_len(SegmentObject *s, PyObject *arg) {
    unsigned long long wid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    if (!queue_at(s, wid)) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    return PyLong_FromUnsignedLong(lq_len(queue_at(s, wid)));
}

static PyObject *S_inject_len(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 0)) return NULL;
    return PyLong_FromUnsignedLongLong(ring_count(inject_ring(s), s->L.inject_cap));
}

/* Test hooks for the protocol stress tests: raw push/pop on a local queue,
 * acting as its owner. */
static PyObject *S_lq_push(SegmentObject *s, PyObject *args) {
    unsigned long long wid, idx;
    if (!PyArg_ParseTuple(args, "KK", &wid, &idx) || seg_check_open(s, 1)) return NULL;
    if (!queue_at(s, wid) || idx >= s->L.n_slots) return PyErr_Format(SegmentError, "bad args");
    sched_push_local(s, wid, (u32)idx);
    Py_RETURN_NONE;
}

static PyObject *S_inject_pop(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    long v = checked_idx(s, ring_pop_inl(inject_ring(s), s->L.inject_cap));
    if (v == -2) return NULL;
    return PyLong_FromLong(v);
}

static PyObject *S_inject_push(SegmentObject *s, PyObject *arg) {
    unsigned long long idx = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    if (idx >= s->L.n_slots) return PyErr_Format(SegmentError, "bad slot index %llu", idx);
    if (ring_push_inl(inject_ring(s), s->L.inject_cap, idx))
        return PyErr_Format(SegmentError, "inject ring full (corrupt?)");
    Py_RETURN_NONE;
}

SECTIONED(S_try_search)
SECTIONED(S_end_search)
SECTIONED(S_notify)
SECTIONED(S_next_local)
SECTIONED(S_refill)
SECTIONED(S_steal)
SECTIONED(S_lq_push)
SECTIONED(S_inject_pop)
SECTIONED(S_inject_push)

PyMethodDef sched_methods[] = {
    {"park", (PyCFunction)S_park, METH_VARARGS,
     "park(wid, spin_s, timeout_s, searching, joined_key=-1) -> 0 self-unparked, 1 notified "
     "(searcher), 2 timeout"},
    {"try_search", (PyCFunction)S_try_search_s, METH_O, "try_search(wid) -> bool"},
    {"end_search", (PyCFunction)S_end_search_s, METH_VARARGS, "end_search(wid, more=True)"},
    {"notify", (PyCFunction)S_notify_s, METH_NOARGS, "notify() -> bool: wake one parked worker"},
    {"wake_all", (PyCFunction)S_wake_all, METH_NOARGS, "wake_all() -> n"},
    {"next_local", (PyCFunction)S_next_local_s, METH_VARARGS,
     "next_local(wid, use_lifo, helping=False) -> idx|-1"},
    {"refill", (PyCFunction)S_refill_s, METH_VARARGS, "refill(wid, helping=False) -> idx|-1"},
    {"steal", (PyCFunction)S_steal_s, METH_VARARGS, "steal(wid, victim, helping=False) -> idx|-1"},
    {"queue_len", (PyCFunction)S_queue_len, METH_O, "queue_len(wid) -> int"},
    {"inject_len", (PyCFunction)S_inject_len, METH_NOARGS, "inject_len() -> int"},
    {"lq_push", (PyCFunction)S_lq_push_s, METH_VARARGS, "test hook: owner push"},
    {"inject_pop", (PyCFunction)S_inject_pop_s, METH_NOARGS, "test hook: pop inject"},
    {"inject_push", (PyCFunction)S_inject_push_s, METH_O, "test hook: push inject"},
    {NULL}};
