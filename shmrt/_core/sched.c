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
#include "scheduler.h"
#include "slots.h"
#include "crash.h"
#include "fastargs.h"
#include "park.h"
#include "queue.h"
#include "runq.h"
#include "section.h"
#include "state.h"

#include <sched.h>
#include <stdio.h>


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
/* The protocols live in park.h (idle word, park / notify, searching) and
 * runq.h (local queue, overflow, LIFO slot, steal); tools/check explores
 * them.  Here: argument checks, sections, counters, and Python results. */
static int notify_parked(SegmentObject *s) {
    static __thread u64 rot = 0;
    return park_notify(&s->L, &rot);
}

int sched_notify(SegmentObject *s) { return notify_parked(s); }

static int has_work(SegmentObject *s, slot_t *joined, int all_queues) {
    return park_has_work(&s->L, joined ? &joined->state : NULL, all_queues);
}

/* park(wid, spin_s, timeout_s, searching, joined_key=-1) -> 0 self-unparked
 * (not searching), 1 notified (now a searcher, already counted), 2 timed out
 * (not searching).  Spins first (GIL released) for spin_s seconds watching
 * for work.  With joined_key, the park also ends when that task completes
 * (the joiner must have set JOIN_WAKER on it before calling). */
static PyObject *S_park(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid;
    double spin_s, timeout_s;
    int searching;
    long long jkey = -1;
    if (fa_nargs("park", nargs, 4, 5) || fa_K(args[0], &wid) || fa_d(args[1], &spin_s) ||
        fa_d(args[2], &timeout_s) || fa_p(args[3], &searching) ||
        (nargs > 4 && fa_L(args[4], &jkey)) || seg_check_open(s, 1))
        return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    slot_t *joined = NULL;
    if (jkey >= 0) {
        u64 jidx;
        joined = slot_for_key(s, (unsigned long long)jkey, &jidx);
        if (!joined) return NULL;
    }
    u64 *jw = joined ? &joined->state : NULL;
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
        u32 seq;
        int last = park_announce(&s->L, wid, searching, &seq);                /* steps 1-2 */
        section_leave(s);
        int woke = park_wait(&s->L, wid, last, jw, seq, timeout_s);           /* steps 3, 5 */
        section_enter(s);
        result = park_leave(&s->L, wid, last, jw, woke);                      /* step 4/6 */
        section_leave(s);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(result);
}

/* try_search(wid) -> bool: become a searcher if 2 * searching < workers. */
static PyObject *S_try_search(SegmentObject *s, PyObject *arg) {
    unsigned long long wid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    if (!worker_at(s, wid)) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    return PyBool_FromLong(search_try(&s->L, wid));
}

/* end_search(wid, more_work) -> None: leave the searching state; the last
 * searcher wakes a parked worker when it saw more work than it took (tokio
 * wakes unconditionally; waking only on a backlog saves a futex wake per
 * task when one task at a time trickles in). */
static PyObject *S_end_search(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid;
    int more = 1;
    if (fa_nargs("end_search", nargs, 1, 2) || fa_K(args[0], &wid) ||
        (nargs > 1 && fa_p(args[1], &more)) || seg_check_open(s, 1))
        return NULL;
    if (!worker_at(s, wid)) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    static __thread u64 rot = 0;
    if (search_end(&s->L, wid, more, &rot) < 0) /* the idle word counts no searcher */
        return seg_corrupt(s, "header: idle word %#llx counts no searcher, but worker %llu was one",
                           (unsigned long long)LOAD_RLX(&HDR(s)->idle), wid);
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
/* Push onto wid's local queue (overflow: half + this task to inject). */
static int sched_push_local(SegmentObject *s, u64 wid, u32 idx) {
    if (runq_push_local(&s->L, wid, idx) < 0) {
        seg_corrupt(s, "inject ring: no room for the overflow of worker %llu's local queue",
                    (unsigned long long)wid);
        return -1;
    }
    return 0;
}

/* Put a task in the (stealable) LIFO slot; the previous occupant goes to the
 * queue (runq.h). */
int sched_push_lifo(SegmentObject *s, u64 wid, u32 idx) {
    if (runq_push_lifo(&s->L, wid, idx) < 0) {
        seg_corrupt(s, "inject ring: no room for the overflow of worker %llu's local queue",
                    (unsigned long long)wid);
        return -1;
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
    if (ring_push_inl(inject_ring(s), s->L.inject_cap, (u64)v)) {
        seg_corrupt(s, "inject ring: no room to put back slot %ld (capacity %llu)", v,
                    (unsigned long long)s->L.inject_cap);
        return -2;
    }
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

/* A slot index read back from a queue: -1 stays "none", an index out of
 * range breaks the runtime (broken.c) and is -2 with SegmentError set. */
static long checked_idx(SegmentObject *s, long v, const char *what) {
    if (v < 0) return -1;
    if ((u64)v >= s->L.n_slots) {
        seg_corrupt(s, "%s: held slot index %ld (n_slots %llu)", what, v,
                    (unsigned long long)s->L.n_slots);
        return -2;
    }
    return v;
}

/* The owner's view of its local queue: steal <= real <= tail within cap
 * (queue.h).  Anything else is a scribbled head or tail: -1, broken. */
static int check_local(SegmentObject *s, u64 wid) {
    local_queue_t *q = queue_at(s, wid);
    u64 h = LOAD_ACQ(&q->head); /* pairs with a stealer's CAS */
    u32 steal = head_steal(h), real = head_real(h), tail = (u32)LOAD_RLX(&q->tail);
    if (tail - steal <= (u32)s->L.local_cap && real - steal <= tail - steal) return 0;
    seg_corrupt(s, "local queue of worker %llu: head %u/%u and tail %u do not fit its capacity %llu",
                (unsigned long long)wid, steal, real, tail, (unsigned long long)s->L.local_cap);
    return -1;
}

/* next_local(wid, use_lifo) -> slot index (| NEXT_FROM_LIFO when it came
 * from the LIFO slot) or -1. */
#define NEXT_FROM_LIFO (1L << 30)
static PyObject *S_next_local(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid;
    int use_lifo, helping = 0;
    if (fa_nargs("next_local", nargs, 2, 3) || fa_K(args[0], &wid) || fa_p(args[1], &use_lifo) ||
        (nargs > 2 && fa_p(args[2], &helping)) || seg_check_open(s, 1))
        return NULL;
    if (seg_broken(s)) return PyLong_FromLong(-1); /* corrupt: no more work (broken.c) */
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    if (check_local(s, wid)) return NULL;
    long v = -1;
    char what[64];
    u64 l = runq_take_lifo(&s->L, wid); /* a thief may race us */
    if (l && l - 1 >= s->L.n_slots)
        return seg_corrupt(s, "LIFO slot of worker %llu: held slot index %llu (n_slots %llu)",
                           wid, (unsigned long long)(l - 1), (unsigned long long)s->L.n_slots);
    if (l && use_lifo) {
        v = (long)(l - 1);
        COUNTER_BUMP(&w->lifo_hits, 1);
    } else if (l) {
        /* LIFO streak exhausted: the task goes to the back of the queue, where
         * it is run in turn (tokio does the same). */
        if (sched_push_local(s, wid, (u32)(l - 1))) return NULL;
    }
    long from_lifo = v >= 0 ? NEXT_FROM_LIFO : 0;
    snprintf(what, sizeof what, "local queue of worker %llu", wid);
    for (u64 n = 0; v < 0 && n <= s->L.local_cap; n++) { /* helping: skip roots */
        v = checked_idx(s, lq_pop(queue_at(s, wid), s->L.local_cap), what);
        if (v == -2) return NULL;
        if (v < 0) break;
        if (helping) v = skip_root(s, v);
        if (v == -2) return NULL;
    }
    return taken(w, v, from_lifo);
}

/* refill(wid, helping=False) -> slot index or -1: take min(len / workers + 1,
 * cap / 2) from inject, run the first, keep the rest in the local queue.
 * Helping: roots are passed over (a bounded scan). */
static PyObject *S_refill(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid;
    int helping = 0;
    if (fa_nargs("refill", nargs, 1, 2) || fa_K(args[0], &wid) ||
        (nargs > 1 && fa_p(args[1], &helping)) || seg_check_open(s, 1))
        return NULL;
    if (seg_broken(s)) return PyLong_FromLong(-1); /* corrupt: no more work (broken.c) */
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
        long v = checked_idx(s, ring_pop_inl(r, s->L.inject_cap), "inject ring");
        if (v == -2) return NULL;
        if (v < 0) { /* empty: is it, or is its head scribbled? (broken.c) */
            if (ring_check_head(s, r, s->L.inject_cap, "inject ring")) return NULL;
            break;
        }
        if (helping) {
            long k = skip_root(s, v);
            if (k == -2) return NULL;
            if (k < 0) continue;
        }
        got++;
        if (first < 0)
            first = v;
        else if (sched_push_local(s, wid, (u32)v))
            return NULL;
    }
    if (first >= 0) COUNTER_BUMP(&w->inject_pulls, 1);
    return taken(w, first, 0);
}

/* steal(wid, victim) -> slot index or -1: steal half of victim's queue. */
static PyObject *S_steal(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid, victim;
    int helping = 0;
    if (fa_nargs("steal", nargs, 2, 3) || fa_K(args[0], &wid) || fa_K(args[1], &victim) ||
        (nargs > 2 && fa_p(args[2], &helping)) || seg_check_open(s, 1))
        return NULL;
    if (seg_broken(s)) return PyLong_FromLong(-1); /* corrupt: no more work (broken.c) */
    worker_t *w = worker_at(s, wid);
    if (!w || !worker_at(s, victim) || wid == victim)
        return PyErr_Format(SegmentError, "bad worker ids %llu/%llu", wid, victim);
    int batch;
    char what[96];
    snprintf(what, sizeof what, "local queue or LIFO slot of worker %llu (stolen by %llu)",
             victim, wid);
    long ret = checked_idx(s, runq_steal(&s->L, wid, victim, &batch), what);
    if (ret == -2) return NULL;
    if (ret < 0) return taken(w, -1, 0);
    if (!batch) { /* the victim's LIFO slot */
        if (helping) ret = skip_root(s, ret);
        if (ret == -2) return NULL;
        return taken(w, ret, 0);
    }
    local_queue_t *dst = queue_at(s, wid);
    u64 cap = s->L.local_cap;
    if (helping) ret = skip_root(s, ret);
    if (ret == -2) return NULL;
    if (ret < 0) { /* the rest of the batch is ours now */
        snprintf(what, sizeof what, "local queue of worker %llu", wid);
        for (u64 k = 0; ret < 0 && k <= s->L.local_cap; k++) {
            long v = checked_idx(s, lq_pop(dst, cap), what);
            if (v == -2) return NULL;
            if (v < 0) break;
            ret = skip_root(s, v);
            if (ret == -2) return NULL;
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
    if (sched_push_local(s, wid, (u32)idx)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *S_inject_pop(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    long v = checked_idx(s, ring_pop_inl(inject_ring(s), s->L.inject_cap), "inject ring");
    if (v == -2) return NULL;
    if (v < 0 && ring_check_head(s, inject_ring(s), s->L.inject_cap, "inject ring")) return NULL;
    return PyLong_FromLong(v);
}

static PyObject *S_inject_push(SegmentObject *s, PyObject *arg) {
    unsigned long long idx = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    if (idx >= s->L.n_slots) return PyErr_Format(SegmentError, "bad slot index %llu", idx);
    if (ring_push_inl(inject_ring(s), s->L.inject_cap, idx))
        return seg_corrupt(s, "inject ring: no room for slot %llu (capacity %llu)", idx,
                           (unsigned long long)s->L.inject_cap);
    Py_RETURN_NONE;
}

SECTIONED(S_try_search)
SECTIONED_FAST(S_end_search)
SECTIONED(S_notify)
SECTIONED_FAST(S_next_local)
SECTIONED_FAST(S_refill)
SECTIONED_FAST(S_steal)
SECTIONED(S_lq_push)
SECTIONED(S_inject_pop)
SECTIONED(S_inject_push)

PyMethodDef sched_methods[] = {
    FASTCALL_METHOD("park", S_park,
                    "park(wid, spin_s, timeout_s, searching, joined_key=-1) -> 0 self-unparked, "
                    "1 notified (searcher), 2 timeout"),
    {"try_search", (PyCFunction)S_try_search_s, METH_O, "try_search(wid) -> bool"},
    FASTCALL_METHOD("end_search", S_end_search_s, "end_search(wid, more=True)"),
    {"notify", (PyCFunction)S_notify_s, METH_NOARGS, "notify() -> bool: wake one parked worker"},
    {"wake_all", (PyCFunction)S_wake_all, METH_NOARGS, "wake_all() -> n"},
    FASTCALL_METHOD("next_local", S_next_local_s,
                    "next_local(wid, use_lifo, helping=False) -> idx|-1"),
    FASTCALL_METHOD("refill", S_refill_s, "refill(wid, helping=False) -> idx|-1"),
    FASTCALL_METHOD("steal", S_steal_s, "steal(wid, victim, helping=False) -> idx|-1"),
    {"queue_len", (PyCFunction)S_queue_len, METH_O, "queue_len(wid) -> int"},
    {"inject_len", (PyCFunction)S_inject_len, METH_NOARGS, "inject_len() -> int"},
    {"lq_push", (PyCFunction)S_lq_push_s, METH_VARARGS, "test hook: owner push"},
    {"inject_pop", (PyCFunction)S_inject_pop_s, METH_NOARGS, "test hook: pop inject"},
    {"inject_push", (PyCFunction)S_inject_push_s, METH_O, "test hook: push inject"},
    {NULL}};
