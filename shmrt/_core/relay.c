/*
 * relay.c -- the relay's shared mechanisms: the in-flight budget with its
 * FIFO of waiters, and the send rings with their waitlists.
 *
 * Why this file exists (iroh #3067): when many senders wait on one bounded
 * queue, a single shared waker slot loses wakeups (each registration
 * overwrites the last) and "check capacity, then register" returns Pending
 * while the queue has room.  Here every waiter owns its own wait state, and
 * the order is always register -> re-check -> sleep.
 *
 * Budget (relay_t.avail, a counting semaphore in shared memory)
 * --------------------------------------------------------------
 *   acquire:  fast path CAS avail-1.  Else claim a waiter entry, set it
 *             WAITING (new generation), push its token (entry, gen) on the
 *             FIFO, THEN re-check avail: got a unit -> cancel the entry (if
 *             a releaser already woke it, we hold two units: pass one on).
 *             Else sleep on the entry's own futex word until WOKEN.
 *   release:  avail+1, THEN if the FIFO is non-empty take the unit back and
 *             hand it to the first live token (CAS WAITING -> WOKEN, wake
 *             its futex): one wake per freed unit.  A stale token (cancelled
 *             or re-registered entry) gives the unit back and moves on.
 * Both sides use SeqCst on (FIFO length, avail): either the waiter's
 * re-check sees the unit or the releaser sees the waiter.  A waiter sleeps
 * with a safety timeout; waking by that timeout while units are free would
 * be a lost wakeup and is counted (pending_with_capacity, must stay 0).
 *
 * Send rings (one per send worker; flow hash % send workers)
 * ----------------------------------------------------------
 * A CPU worker never blocks: a finished packet whose ring is full is pushed
 * on the ring's waitlist (a ring of slot indices sized for every slot), and
 * then the CPU worker re-checks the ring and moves waitlisted slots in while
 * there is room.  The send worker, after popping, moves waitlisted slots in
 * too.  Same handshake: push-then-check on both sides.
 */
#include "relay.h"
/* budget.h's slow path sleeps: each stretch between sleeps is a protocol step
 * (section.h) of the acquiring thread's Segment, set in acquire() below. */
#include "arena.h"
#include "scheduler.h"
#include "slots.h"
#include "section.h"
static __thread SegmentObject *budget_step_seg;
#define BUDGET_STEP_PAUSE() section_leave(budget_step_seg)
#define BUDGET_STEP_RESUME() section_enter(budget_step_seg)
#include "budget.h"
#include "holds.h"
#include "sendq.h"
#include "crash.h"
#include "section.h"
#include "queue.h"
#include "state.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>


static relay_t *relay_of(SegmentObject *s) {
    return s->L.n_send ? (relay_t *)(s->L.base + s->L.relay_off) : NULL;
}
static ring_t *fifo_of(relay_t *r) { return (ring_t *)(void *)r->fifo; }
static send_t *relay_send_at(SegmentObject *s, u64 i) {
    if (i >= s->L.n_send) return NULL;
    return (send_t *)(s->L.base + s->L.relay_off + s->L.relay_hdr +
                      s->L.n_waiters * sizeof(waiter_t) + i * s->L.send_stride);
}
static ring_t *relay_ring_of(send_t *t) { return (ring_t *)(void *)t->rings; }
static ring_t *relay_waitlist_of(SegmentObject *s, send_t *t) {
    u64 rb = (ring_bytes(s->L.send_cap) + CACHE_LINE - 1) & ~(u64)(CACHE_LINE - 1);
    return (ring_t *)(void *)((char *)t->rings + rb);
}
#define send_at relay_send_at
#define ring_of relay_ring_of
#define waitlist_of relay_waitlist_of

int relay_init(SegmentObject *s) {
    relay_t *r = relay_of(s);
    if (!r) return 0;
    r->avail = r->capacity = s->L.inflight;
    ring_init(fifo_of(r), fifo_cap(s->L.n_waiters));
    for (u64 i = 0; i < s->L.n_send; i++) {
        send_t *t = send_at(s, i);
        ring_init(ring_of(t), s->L.send_cap);
        ring_init(waitlist_of(s, t), s->L.inject_cap);
    }
    return 0;
}

static int relay_check(SegmentObject *s, relay_t **r, int need_write) {
    if (seg_check_open(s, need_write)) return -1;
    *r = relay_of(s);
    if (!*r) {
        PyErr_SetString(SegmentError, "this runtime has no relay region");
        return -1;
    }
    return 0;
}

/* ---- budget ------------------------------------------------------------- */
/* budget.h: the semaphore, the FIFO of waiter tokens, register ->
 * re-check -> sleep (checked by tools/check, scenario budget). */
static int sem_try(relay_t *r) { return budget_try(r); }

static void sem_release_one(SegmentObject *s, relay_t *r) { budget_release_one(&s->L, r); }

/* 0 acquired, 1 full (nowait), 2 timed out.  Runs without the GIL. */
static int acquire(SegmentObject *s, relay_t *r, double timeout, int nowait) {
    budget_step_seg = s;
    section_enter(s);
    int rc = budget_acquire(&s->L, r, (u64)getpid(), timeout, nowait, s->units);
    section_leave(s);
    return rc;
}

/* relay_acquire(timeout=-1, nowait=False) -> 0 ok, 1 full, 2 timeout */
/* Budget units a client holds between acquire and submit are counted in its
 * own record (client_t.units), in the step that moves them, so a crash
 * reclaim can recompute the budget: avail = capacity - packets in flight -
 * units held by live clients - units handed to live waiters (reclaim.h). */
static void unit_taken(SegmentObject *s) {
    if (s->units) FETCH_ADD_RLX(s->units, 1); /* published by section_leave */
}
static void unit_given(SegmentObject *s) {
    if (s->units && LOAD_RLX(s->units)) FETCH_SUB_ACQREL(s->units, 1);
}

#define ACQUIRE_SLICE_S 0.5
/* One unit, waiting as long as it takes (in slices: a runtime that breaks
 * meanwhile ends the wait, broken.c).  Runs without the GIL; counted in
 * s->units in the step that takes it (budget.h).  BUDGET_OK, or
 * BUDGET_TIMEOUT when the runtime broke. */
static int acquire_sliced(SegmentObject *s, relay_t *r, double timeout, int nowait) {
    double end = timeout >= 0 ? (double)now_ns() * 1e-9 + timeout : -1;
    int rc;
    for (;;) {
        double left = end >= 0 ? end - (double)now_ns() * 1e-9 : ACQUIRE_SLICE_S;
        rc = acquire(s, r, left < 0 ? 0 : left < ACQUIRE_SLICE_S ? left : ACQUIRE_SLICE_S, nowait);
        if (rc != BUDGET_TIMEOUT || seg_broken(s) || (end >= 0 && left <= ACQUIRE_SLICE_S)) break;
    }
    return rc;
}

/* For udp.c (GIL released): up to `want` units without waiting, counted in
 * s->units, inside the caller's section.  Returns how many. */
u64 relay_units_try(SegmentObject *s, u64 want) {
    relay_t *r = relay_of(s);
    u64 got = 0;
    while (r && got < want && sem_try(r)) {
        unit_taken(s);
        got++;
    }
    if (got) FETCH_ADD_RLX(&r->fast, got);
    return got;
}
/* One unit, waiting (outside any section): BUDGET_OK or BUDGET_TIMEOUT. */
int relay_units_wait(SegmentObject *s, double timeout) {
    relay_t *r = relay_of(s);
    return r ? acquire_sliced(s, r, timeout, 0) : BUDGET_TIMEOUT;
}
/* A unit a packet now holds (inside the step that filled it). */
void relay_unit_in_packet(SegmentObject *s) { unit_given(s); }
/* A unit given back unused (inside a section). */
void relay_unit_back(SegmentObject *s) {
    unit_given(s);
    sem_release_one(s, relay_of(s));
}
/* The unit of a packet that left the relay (relay_done's per-packet part). */
void relay_packet_done(SegmentObject *s, u64 idx) {
    drop_handle_ref(s, idx); /* the pipeline's handle (state.h drop_handle): the slot is free now */
    sem_release_one(s, relay_of(s));
}
/* flush(): packets left; wake a flusher.  After the counters are bumped. */
void relay_done_bump(SegmentObject *s) {
    relay_t *r = relay_of(s);
    FETCH_ADD_SEQ(&r->done_seq, 1);
    if (LOAD_SEQ(&r->flushing)) futex_wake_u32(&r->done_seq, 64);
}

static PyObject *R_acquire(SegmentObject *s, PyObject *args) {
    double timeout = -1;
    int nowait = 0;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "|dp", &timeout, &nowait) || relay_check(s, &r, 1)) return NULL;
    u64 avail = LOAD_RLX(&r->avail), cap = LOAD_RLX(&r->capacity);
    if (avail > cap || cap != s->L.inflight)
        return seg_corrupt(s, "relay: budget holds %llu free units of %llu (configured %llu)",
                           (unsigned long long)avail, (unsigned long long)cap,
                           (unsigned long long)s->L.inflight);
    section_enter(s);
    int got = sem_try(r);
    if (got) unit_taken(s);
    section_leave(s);
    if (got) {
        FETCH_ADD_RLX(&r->fast, 1);
        return PyLong_FromLong(0);
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    /* The slow path sleeps: its stretches between sleeps are steps, and the
     * unit it obtains is counted in the step that takes it (budget.h). */
    rc = acquire_sliced(s, r, timeout, nowait);
    Py_END_ALLOW_THREADS
    if (rc == BUDGET_TIMEOUT && seg_broken(s)) return seg_raise_broken(s);
    /* one per acquire that gave up, not per slice (a wait of more than a
     * slice under load is not a timeout) */
    if (rc == BUDGET_TIMEOUT) FETCH_ADD_RLX(&r->timeouts, 1);
    return PyLong_FromLong(rc);
}

/* relay_release(n=1): give back units (a waiter that no longer wants one) */
static PyObject *R_release(SegmentObject *s, PyObject *args) {
    long n = 1;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "|l", &n) || relay_check(s, &r, 1)) return NULL;
    for (long i = 0; i < n; i++) {
        unit_given(s);
        sem_release_one(s, r);
    }
    Py_RETURN_NONE;
}

/* ---- packets in ----------------------------------------------------------- */
/* relay_submit(cid, fn_id, data, flow, seq, args_blob=-1) -> key | -1 */
static PyObject *R_submit(SegmentObject *s, PyObject *args) {
    unsigned long long cid, fn_id, flow, seq;
    long long blob = -1;
    Py_buffer b;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "KKy*KK|L", &cid, &fn_id, &b, &flow, &seq, &blob)) return NULL;
    if (relay_check(s, &r, 1) || !client_at(s, cid)) {
        if (!PyErr_Occurred()) PyErr_Format(SegmentError, "bad client id %llu", cid);
        PyBuffer_Release(&b);
        return NULL;
    }
    u64 key, idx, packet[2] = {flow, seq};
    int rc = task_new(s, HOLDER_RELAY, fn_id, &b, blob, 0, 0, packet, &key, &idx);
    PyBuffer_Release(&b);
    if (rc) return rc < 0 ? NULL : PyLong_FromLong(-1);
    unit_given(s); /* the packet's slot holds the unit now (same step) */
    if (ring_push_inl(inject_ring(s), s->L.inject_cap, idx))
        return seg_corrupt(s, "inject ring: no room for slot %llu (capacity %llu)",
                           (unsigned long long)idx, (unsigned long long)s->L.inject_cap);
    sched_notify(s);
    return PyLong_FromUnsignedLongLong(key);
}

/* ---- packets out ------------------------------------------------------------ */
static void move_waiters(SegmentObject *s, send_t *t) { sendq_move_waiters(&s->L, t); }

/* relay_flow_min(flow) -> int | None: the lowest sequence number of the
 * flow's packets still in flight (slots allocated: queued, transforming, on
 * a send ring, held, or re-delivered after a send worker died).  A send
 * worker that meets a flow it has no state for (it was just started, e.g.
 * replacing a dead one) starts that flow there: everything below was handed
 * to the sink already.  O(slots); once per unknown flow. */
int relay_flow_min(SegmentObject *s, u64 flow, u64 *best) {
    u64 carved = LOAD_ACQ(&HDR(s)->slots_carved); /* pairs with slots_alloc's CAS */
    int found = 0;
    if (carved > s->L.n_slots) carved = s->L.n_slots;
    for (u64 i = 0; i < carved; i++) {
        slot_t *sl = slot_at(s, i);
        if (st_refs(LOAD_ACQ(&sl->state)) == 0 || LOAD_RLX(&sl->kind) != 1 ||
            LOAD_RLX(&sl->flow) != flow)
            continue;
        u64 q = LOAD_RLX(&sl->seq);
        if (!found || q < *best) *best = q;
        found = 1;
    }
    return found;
}

static PyObject *R_flow_min(SegmentObject *s, PyObject *arg) {
    unsigned long long flow = PyLong_AsUnsignedLongLong(arg);
    relay_t *r;
    if (PyErr_Occurred() || relay_check(s, &r, 0)) return NULL;
    u64 best = 0;
    if (!relay_flow_min(s, flow, &best)) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(best);
}

/* relay_sending(idx): the send worker is about to hand this packet to its
 * sink.  If it dies before relay_done, the crash reclaim cannot know whether
 * the sink got the packet: it is counted `in_doubt` (a named drop) instead
 * of being sent again, so nothing reaches the sink twice (reclaim.h). */
static PyObject *R_sending(SegmentObject *s, PyObject *arg) {
    unsigned long long idx = PyLong_AsUnsignedLongLong(arg);
    relay_t *r;
    if (PyErr_Occurred() || relay_check(s, &r, 1)) return NULL;
    slot_t *sl = slot_at(s, idx);
    if (!sl) return PyErr_Format(SegmentError, "bad slot index %llu", idx);
    FETCH_OR_ACQREL(&sl->flags, SLOT_F_SENDING); /* read by the reclaim after busy == 0 */
    Py_RETURN_NONE;
}

/* relay_take(sw, max) -> [(idx, flow, seq, status, data), ...] */
static PyObject *R_take(SegmentObject *s, PyObject *args) {
    unsigned long long sw;
    long max = 256;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "K|l", &sw, &max) || relay_check(s, &r, 1)) return NULL;
    send_t *t = send_at(s, sw);
    if (!t) return PyErr_Format(SegmentError, "bad send worker id %llu", sw);
    ring_t *ring = ring_of(t);
    if (!ring_nonempty(ring, s->L.send_cap) && ring_nonempty(waitlist_of(s, t), s->L.inject_cap))
        FETCH_ADD_RLX(&t->pending_with_capacity, 1); /* stranded waiters: must stay 0 */
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (long i = 0; i < max; i++) {
        long v = ring_pop_inl(ring, s->L.send_cap);
        if (v < 0) {
            move_waiters(s, t);
            v = ring_pop_inl(ring, s->L.send_cap);
            if (v < 0) break;
        }
        move_waiters(s, t); /* one freed unit: let a waitlisted slot in */
        CRASH_POINT(CP_TAKEN);
        slot_t *sl = slot_at(s, (u64)v);
        u64 st = sl ? LOAD_ACQ(&sl->state) : 0; /* pairs with complete's release */
        if (!sl || !(st & S_COMPLETE) || LOAD_RLX(&sl->holder) != HOLDER_RELAY) {
            Py_DECREF(out);
            return seg_corrupt(s, "send ring %llu: held slot %ld, not a finished packet "
                               "(state %#llx, n_slots %llu)", sw, v, (unsigned long long)st,
                               (unsigned long long)s->L.n_slots);
        }
        u64 res = LOAD_RLX(&sl->result), n = res & 0xffffffffULL;
        if (n > payload_cap(s)) {
            Py_DECREF(out);
            return seg_corrupt(s, "slot %ld: result length %llu exceeds the slot's %llu bytes", v,
                               (unsigned long long)n, (unsigned long long)payload_cap(s));
        }
        PyObject *data = (sl->flags & SLOT_F_RESULT_BLOB)
                             ? blobview_slot(s, (u64)v, sl->result_blob, "result")
                             : PyBytes_FromStringAndSize(slot_payload(s, sl), (Py_ssize_t)n);
        PyObject *item = data ? Py_BuildValue("(lKKKN)", v, (unsigned long long)sl->flow,
                                              (unsigned long long)sl->seq, res >> 32, data)
                              : NULL;
        if (!item || PyList_Append(out, item)) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        /* held by this send worker until relay_done: a crash reclaim
         * re-delivers what a dead send worker held (reclaim.h) */
        STORE_RLX(&sl->owner, (s->pid << 32) | OWNER_SENDER | sw);
        FETCH_ADD_RLX(&t->popped, 1);
    }
    return out;
}

/* relay_done(sw, [idx...], sent, filtered, errors, crashed): the packets were
 * handed to the sink (or dropped): free their slots, release their budget. */
static PyObject *R_done(SegmentObject *s, PyObject *args) {
    unsigned long long sw, sent = 0, filtered = 0, errors = 0, crashed = 0;
    PyObject *idxs;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "KO|KKKK", &sw, &idxs, &sent, &filtered, &errors, &crashed) ||
        relay_check(s, &r, 1))
        return NULL;
    send_t *t = send_at(s, sw);
    if (!t) return PyErr_Format(SegmentError, "bad send worker id %llu", sw);
    PyObject *seq = PySequence_Fast(idxs, "relay_done needs a sequence of slot indices");
    if (!seq) return NULL;
    /* Count first: flush() returns once the last unit is back, and whoever
     * it returns to reads these counters. */
    COUNTER_BUMP(&t->sent, sent);
    COUNTER_BUMP(&t->filtered, filtered);
    COUNTER_BUMP(&t->errors, errors);
    COUNTER_BUMP(&t->crashed, crashed);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long idx = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred() || idx >= s->L.n_slots) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_Format(SegmentError, "bad slot index %llu", idx);
            return NULL;
        }
        relay_packet_done(s, idx);
    }
    Py_DECREF(seq);
    relay_done_bump(s);
    Py_RETURN_NONE;
}

/* relay_wait(sw, timeout, spin=0) -> bool: the send worker polls its ring for
 * `spin` seconds, then sleeps until it (or its waitlist) is non-empty. */
static PyObject *R_wait(SegmentObject *s, PyObject *args) {
    unsigned long long sw;
    double timeout, spin = 0;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "Kd|d", &sw, &timeout, &spin) || relay_check(s, &r, 1))
        return NULL;
    send_t *t = send_at(s, sw);
    if (!t) return PyErr_Format(SegmentError, "bad send worker id %llu", sw);
    int got;
    Py_BEGIN_ALLOW_THREADS
    if (spin > 0) {
        u64 end = now_ns() + (u64)(spin * 1e9);
        unsigned i = 0;
        while (!ring_nonempty(ring_of(t), s->L.send_cap)) {
            if ((++i & 15) == 0) {
                if (now_ns() >= end) break;
                sched_yield();
            } else {
                cpu_relax();
            }
        }
    }
    got = sendq_wait(&s->L, t, timeout); /* sendq.h */
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(got);
}

/* relay_flush_wait(timeout) -> bool: every unit of budget is back */
static PyObject *R_flush_wait(SegmentObject *s, PyObject *args) {
    double timeout;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "d", &timeout) || relay_check(s, &r, 1)) return NULL;
    int done;
    Py_BEGIN_ALLOW_THREADS
    u32 seq = (u32)LOAD_SEQ(&r->done_seq);
    FETCH_ADD_SEQ(&r->flushing, 1);
    done = LOAD_SEQ(&r->avail) >= LOAD_RLX(&r->capacity);
    if (!done) futex_wait_u32(&r->done_seq, seq, timeout);
    FETCH_SUB_SEQ(&r->flushing, 1);
    done = LOAD_SEQ(&r->avail) >= LOAD_RLX(&r->capacity);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(done);
}

static PyObject *R_set_backlog(SegmentObject *s, PyObject *args) {
    unsigned long long sw, n, pid;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "KKK", &sw, &n, &pid) || relay_check(s, &r, 1)) return NULL;
    send_t *t = send_at(s, sw);
    if (!t) return PyErr_Format(SegmentError, "bad send worker id %llu", sw);
    STORE_RLX(&t->backlog, n);
    STORE_RLX(&t->pid, pid);
    Py_RETURN_NONE;
}

/* The crash reclaim's budget reset and wake-up are budget.h's budget_reset
 * and sendq.h's sendq_wake_all (reclaim.h). */
static void relay_wake_all(SegmentObject *s) { sendq_wake_all(&s->L); }

static PyObject *R_wake_send(SegmentObject *s, PyObject *unused) {
    relay_t *r;
    if (relay_check(s, &r, 1)) return NULL;
    relay_wake_all(s);
    Py_RETURN_NONE;
}

/* relay_register(sw, pid, start): a (re)started send worker claims its entry;
 * from here its relay steps are sections (section.h). */
static PyObject *R_register(SegmentObject *s, PyObject *args) {
    unsigned long long sw, pid, start;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "KKK", &sw, &pid, &start) || relay_check(s, &r, 1)) return NULL;
    send_t *t = send_at(s, sw);
    if (!t) return PyErr_Format(SegmentError, "bad send worker id %llu", sw);
    STORE_RLX(&t->start, start);
    STORE_REL(&t->pid, pid);
    s->busy = &t->busy;
    section_enter(s);
    arena_set_holds(s, lay_holds(&s->L, hold_rec_send(&s->L, sw)));
    section_leave(s);
    Py_RETURN_NONE;
}

/* relay_fn(fid=-1) -> int | None: the relay's transform (function id), set
 * by its owner, read by processes that connect to a named relay. */
static PyObject *R_fn(SegmentObject *s, PyObject *args) {
    long long fid = -1;
    relay_t *r;
    if (!PyArg_ParseTuple(args, "|L", &fid) || relay_check(s, &r, fid >= 0)) return NULL;
    u64 *w = &send_at(s, 0)->relay_fn;
    if (fid >= 0) STORE_REL(w, (u64)fid + 1); /* pairs with the acquire below */
    u64 v = LOAD_ACQ(w);
    if (!v || v - 1 >= s->L.n_funcs) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(v - 1);
}

/* relay_stats() -> dict (budget + waiter counters, per ring counters) */
static PyObject *R_stats(SegmentObject *s, PyObject *unused) {
    relay_t *r;
    if (relay_check(s, &r, 0)) return NULL;
    PyObject *rings = PyList_New(0);
    if (!rings) return NULL;
    for (u64 i = 0; i < s->L.n_send; i++) {
        send_t *t = send_at(s, i);
        int64_t depth = (int64_t)ring_count(ring_of(t), s->L.send_cap),
                waiting = (int64_t)ring_count(waitlist_of(s, t), s->L.inject_cap);
        PyObject *d = Py_BuildValue(
            "{sKsLsLsKsKsKsKsKsKsKsKsKsKsKsK}", "pid", LOAD_RLX(&t->pid), "depth",
            (long long)(depth < 0 ? 0 : depth), "waitlist", (long long)(waiting < 0 ? 0 : waiting),
            "backlog", LOAD_RLX(&t->backlog), "pushed", LOAD_RLX(&t->pushed), "popped",
            LOAD_RLX(&t->popped), "registrations", LOAD_RLX(&t->registrations), "wakes",
            LOAD_RLX(&t->wakes), "pending_with_capacity", LOAD_RLX(&t->pending_with_capacity),
            "sent", LOAD_RLX(&t->sent), "filtered", LOAD_RLX(&t->filtered), "errors",
            LOAD_RLX(&t->errors), "crashed", LOAD_RLX(&t->crashed), "in_doubt",
            LOAD_RLX(&t->in_doubt), "capacity",
            (unsigned long long)s->L.send_cap);
        if (!d || PyList_Append(rings, d)) {
            Py_XDECREF(d);
            Py_DECREF(rings);
            return NULL;
        }
        Py_DECREF(d);
    }
    send_t *t0 = send_at(s, 0); /* the UDP ingress's counters (layout.h) */
    PyObject *ingress = Py_BuildValue("{sKsKsK}", "received", LOAD_RLX(&t0->rx_received),
                                      "kernel_drops", LOAD_RLX(&t0->rx_kernel_drops),
                                      "no_space", LOAD_RLX(&t0->rx_no_space));
    if (!ingress) {
        Py_DECREF(rings);
        return NULL;
    }
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsNsN}", "avail", LOAD_RLX(&r->avail), "capacity",
                         LOAD_RLX(&r->capacity), "registrations", LOAD_RLX(&r->registrations),
                         "wakes", LOAD_RLX(&r->wakes), "spurious", LOAD_RLX(&r->spurious),
                         "pending_with_capacity", LOAD_RLX(&r->pending_with_capacity),
                         "passed_on", LOAD_RLX(&r->passed_on), "fast", LOAD_RLX(&r->fast), "full",
                         LOAD_RLX(&r->full), "timeouts", LOAD_RLX(&r->timeouts), "recheck",
                         LOAD_RLX(&r->recheck), "withdrawn", LOAD_RLX(&r->withdrawn), "rings",
                         rings, "ingress", ingress);
}

SECTIONED(R_release)
SECTIONED(R_submit)
SECTIONED(R_take)
SECTIONED(R_sending)
SECTIONED(R_done)

PyMethodDef relay_methods[] = {
    {"relay_acquire", (PyCFunction)R_acquire, METH_VARARGS,
     "relay_acquire(timeout=-1, nowait=False) -> 0 ok, 1 full, 2 timeout (GIL released)"},
    {"relay_release", (PyCFunction)R_release_s, METH_VARARGS, "relay_release(n=1)"},
    {"relay_submit", (PyCFunction)R_submit_s, METH_VARARGS,
     "relay_submit(cid, fn_id, data, flow, seq, args_blob=-1) -> key | -1"},
    {"relay_flow_min", (PyCFunction)R_flow_min, METH_O,
     "relay_flow_min(flow) -> lowest sequence number in flight, or None"},
    {"relay_sending", (PyCFunction)R_sending_s, METH_O, "relay_sending(idx): about to sink it"},
    {"relay_take", (PyCFunction)R_take_s, METH_VARARGS,
     "relay_take(sw, max=256) -> [(idx, flow, seq, status, data)]"},
    {"relay_done", (PyCFunction)R_done_s, METH_VARARGS,
     "relay_done(sw, idxs, sent=0, filtered=0, errors=0, crashed=0)"},
    {"relay_wait", (PyCFunction)R_wait, METH_VARARGS, "relay_wait(sw, timeout, spin=0) -> bool"},
    {"relay_flush_wait", (PyCFunction)R_flush_wait, METH_VARARGS, "relay_flush_wait(timeout) -> bool"},
    {"relay_set_backlog", (PyCFunction)R_set_backlog, METH_VARARGS, "relay_set_backlog(sw, n, pid)"},
    {"relay_wake_send", (PyCFunction)R_wake_send, METH_NOARGS, "relay_wake_send()"},
    {"relay_register", (PyCFunction)R_register, METH_VARARGS, "relay_register(sw, pid, start)"},
    {"relay_stats", (PyCFunction)R_stats, METH_NOARGS, "relay_stats() -> dict"},
    {"relay_fn", (PyCFunction)R_fn, METH_VARARGS, "relay_fn(fid=-1) -> the transform's id | None"},
    {NULL}};
