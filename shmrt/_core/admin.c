/*
 * admin.c -- the slower paths: function table, client registration and the
 * client's wait / spin, worker registration, crash reclaim, and read-only
 * snapshots of slots and workers (inspector, tests).
 *
 * Function table: a client pickles a callable once, stores it in an arena
 * block and publishes (blob, len) in entry fn_id with FN_READY (release);
 * workers read it with an acquire load and cache the unpickled callable.
 *
 * Crash reclaim (coordinator, after a worker died): the dead worker's LIFO
 * slot and local queue go to the inject queue (sched.c drain_worker); slots
 * it was RUNNING are listed by dead_running() and then either re-queued
 * (retry_task) or completed as crashed (crash_task); join handles it held on
 * its children are dropped (drop_worker_handles).  The dead process cannot
 * race any of this: only it could have touched those words.
 */
#include "core.h"
#include "queue.h"
#include "state.h"

#include <sched.h>

/* ---- function table ------------------------------------------------------ */
static PyObject *A_register_fn(SegmentObject *s, PyObject *arg) {
    Py_buffer b;
    if (seg_check_open(s, 1) || PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE)) return NULL;
    header_t *h = HDR(s);
    u64 fid = FETCH_ADD_ACQREL(&h->fn_count, 1);
    if (fid >= s->L.n_funcs) {
        PyBuffer_Release(&b);
        return PyLong_FromLong(-1); /* table full: caller sends the callable inline */
    }
    long long off = arena_alloc_block(s, (u64)b.len);
    if (off < 0) {
        PyBuffer_Release(&b);
        return PyLong_FromLong(-1);
    }
    u64 len;
    char *dst = arena_block_data(s, (u64)off, &len);
    memcpy(dst, b.buf, (size_t)b.len);
    func_t *f = func_at(s, fid);
    f->blob = (u64)off;
    f->len = (u64)b.len;
    STORE_REL(&f->state, (u64)FN_READY); /* pairs with get_fn's acquire */
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLongLong(fid);
}

static PyObject *A_get_fn(SegmentObject *s, PyObject *arg) {
    unsigned long long fid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    func_t *f = func_at(s, fid);
    if (!f) return PyErr_Format(SegmentError, "bad function id %llu", fid);
    if (LOAD_ACQ(&f->state) != FN_READY) Py_RETURN_NONE;
    u64 len;
    char *p = arena_block_data(s, f->blob, &len);
    if (!p || f->len > len) return PyErr_Format(SegmentError, "function %llu: bad block", fid);
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)f->len);
}

/* ---- clients --------------------------------------------------------------- */
static PyObject *A_client_claim(SegmentObject *s, PyObject *args) {
    unsigned long long pid, start;
    if (!PyArg_ParseTuple(args, "KK", &pid, &start) || seg_check_open(s, 1)) return NULL;
    for (u64 i = 0; i < s->L.n_clients; i++) {
        client_t *c = client_at(s, i);
        u64 exp = 0;
        if (CAS_ACQREL(&c->pid, &exp, pid)) {
            if (!LOAD_ACQ(&c->ring_ready)) { /* first claim of this entry ever */
                ring_init(client_ring(c), s->L.inject_cap);
                STORE_REL(&c->ring_ready, 1); /* pairs with nothing racing: we own it */
            }
            STORE_RLX(&c->start, start);
            STORE_RLX(&c->sleeping, 0);
            STORE_RLX(&c->spinning, 0);
            return PyLong_FromUnsignedLongLong(i);
        }
    }
    return PyLong_FromLong(-1);
}

/* client_release(cid) -> n: drop the handles of everything left on the
 * client's ring (a client that goes away) and free the entry. */
static PyObject *A_client_release(SegmentObject *s, PyObject *arg) {
    unsigned long long cid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    long n = 0, v;
    while ((v = ring_pop(client_ring(c), s->L.inject_cap)) >= 0)
        if ((u64)v < s->L.n_slots) {
            drop_ref(s, (u64)v);
            n++;
        }
    STORE_REL(&c->pid, 0);
    return PyLong_FromLong(n);
}

/* client_spin(cid, budget_s) -> bool: poll the completion ring with the GIL
 * released; True as soon as it is non-empty.  While spinning, completers skip
 * the futex wake (spinning counter). */
static PyObject *A_client_spin(SegmentObject *s, PyObject *args) {
    unsigned long long cid;
    double budget;
    if (!PyArg_ParseTuple(args, "Kd", &cid, &budget) || seg_check_open(s, 1)) return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    int got = 0;
    Py_BEGIN_ALLOW_THREADS
    FETCH_ADD_SEQ(&c->spinning, 1);
    u64 end = now_ns() + (u64)(budget * 1e9);
    unsigned i = 0;
    for (;;) {
        if (ring_nonempty(client_ring(c), s->L.inject_cap)) { got = 1; break; }
        if ((++i & 63) == 0) {
            if (now_ns() >= end) break;
            sched_yield();
        } else {
            cpu_relax();
        }
    }
    FETCH_SUB_SEQ(&c->spinning, 1);
    /* SeqCst RMW above, then re-check: a completer that saw spinning > 0
     * skipped its wake; if it pushed, we see the length here. */
    if (!got && ring_nonempty(client_ring(c), s->L.inject_cap)) got = 1;
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(got);
}

/* client_wait(cid, timeout_s, seq=-1) -> bool (ring non-empty): sleep on the
 * client's futex word until a completion arrives (or client_wake).  A caller
 * that checks a flag of its own first passes the seq it read before that
 * check (client_seq), so a wake in between is not lost. */
static PyObject *A_client_wait(SegmentObject *s, PyObject *args) {
    unsigned long long cid;
    double timeout;
    long long seen = -1;
    if (!PyArg_ParseTuple(args, "Kd|L", &cid, &timeout, &seen) || seg_check_open(s, 1))
        return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    int got;
    Py_BEGIN_ALLOW_THREADS
    u32 seq = seen >= 0 ? (u32)seen : (u32)LOAD_SEQ(&c->seq);
    FETCH_ADD_SEQ(&c->sleeping, 1);
    /* pairs with deliver(): push (SeqCst CAS), bump seq, load sleeping */
    got = ring_nonempty(client_ring(c), s->L.inject_cap);
    if (!got) futex_wait_u32(&c->seq, seq, timeout);
    FETCH_SUB_SEQ(&c->sleeping, 1);
    got = ring_nonempty(client_ring(c), s->L.inject_cap);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(got);
}

static PyObject *A_client_seq(SegmentObject *s, PyObject *arg) {
    unsigned long long cid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    return PyLong_FromUnsignedLong((u32)LOAD_SEQ(&c->seq)); /* pairs with client_wake */
}

static PyObject *A_client_wake(SegmentObject *s, PyObject *arg) {
    unsigned long long cid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    FETCH_ADD_SEQ(&c->seq, 1);
    return PyLong_FromLong(futex_wake_u32(&c->seq, 64));
}

/* ---- workers ------------------------------------------------------------- */
/* worker_register(wid, pid, start, epoch): a (re)started worker claims its
 * entry and counts itself unparked (the idle word was initialised with all
 * workers unparked; a dead worker's count is restored by worker_dead). */
static PyObject *A_worker_register(SegmentObject *s, PyObject *args) {
    unsigned long long wid, pid, start, epoch;
    if (!PyArg_ParseTuple(args, "KKKK", &wid, &pid, &start, &epoch) || seg_check_open(s, 1))
        return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    STORE_RLX(&w->pid, pid);
    STORE_RLX(&w->start, start);
    STORE_RLX(&w->epoch, epoch);
    STORE_RLX(&w->current, 0);
    STORE_RLX(&w->help_depth, 0);
    STORE_SEQ(&w->state, (u64)W_RUNNING);
    Py_RETURN_NONE;
}

/* worker_dead(wid, exited): the coordinator marks a worker gone and fixes
 * the idle word for the state it died in (parked: it had given up its
 * unparked count; searching: it held a searching count). */
static PyObject *A_worker_dead(SegmentObject *s, PyObject *args) {
    unsigned long long wid;
    int exited = 0;
    if (!PyArg_ParseTuple(args, "K|p", &wid, &exited) || seg_check_open(s, 1)) return NULL;
    worker_t *w = worker_at(s, wid);
    if (!w) return PyErr_Format(SegmentError, "bad worker id %llu", wid);
    u64 st = LOAD_SEQ(&w->state);
    header_t *h = HDR(s);
    if (st == W_PARKED) FETCH_ADD_SEQ(&h->idle, 1ULL << 16);
    if (st == W_SEARCHING || st == W_NOTIFIED) FETCH_SUB_SEQ(&h->idle, 1);
    STORE_SEQ(&w->state, (u64)(exited ? W_EXITED : W_DEAD));
    return PyLong_FromUnsignedLongLong(st);
}

/* ---- crash reclaim ------------------------------------------------------- */
static PyObject *A_dead_running(SegmentObject *s, PyObject *arg) {
    unsigned long long wid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (u64 i = 0; i < s->L.n_slots; i++) {
        slot_t *sl = slot_at(s, i);
        u64 st = LOAD_ACQ(&sl->state);
        if (!(st & S_RUNNING) || st_refs(st) == 0) continue;
        if ((LOAD_RLX(&sl->owner) & 0xffff) != wid + 1) continue;
        u64 key = (LOAD_RLX(&sl->gen) << 32) | i;
        u64 att = LOAD_RLX(&sl->attempts);
        PyObject *t = Py_BuildValue("(KKKK)", key, att >> 32, att & 0xffffffffULL,
                                    (unsigned long long)LOAD_RLX(&sl->holder));
        if (!t || PyList_Append(out, t)) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

/* crash_task(key, status, data): complete a dead worker's task as failed */
static PyObject *A_crash_task(SegmentObject *s, PyObject *args) {
    unsigned long long key, status;
    Py_buffer b;
    u64 idx;
    if (!PyArg_ParseTuple(args, "KKy*", &key, &status, &b)) return NULL;
    slot_t *sl = seg_check_open(s, 1) ? NULL : slot_for_key(s, key, &idx);
    int rc = -1;
    if (sl) { /* count before the crash is delivered (the holder may read it) */
        FETCH_ADD_RLX(&HDR(s)->crashed, 1);
        rc = complete_slot(s, idx, sl, status, &b, -1);
        if (rc) FETCH_SUB_ACQREL(&HDR(s)->crashed, 1);
    }
    PyBuffer_Release(&b);
    if (rc) return NULL;
    Py_RETURN_NONE;
}

/* retry_task(key): RUNNING -> NOTIFIED, back on the inject queue */
static PyObject *A_retry_task(SegmentObject *s, PyObject *arg) {
    unsigned long long key = PyLong_AsUnsignedLongLong(arg);
    u64 idx;
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    slot_t *sl = slot_for_key(s, key, &idx);
    if (!sl) return NULL;
    if (transition_to_notified_retry(&sl->state) != TR_OK)
        return PyErr_Format(SegmentError, "slot %llu: not running, cannot retry", idx);
    STORE_RLX(&sl->owner, 0);
    ring_push(inject_ring(s), s->L.inject_cap, idx);
    FETCH_ADD_RLX(&HDR(s)->retried, 1);
    sched_notify(s);
    Py_RETURN_NONE;
}

/* drop_worker_handles(wid) -> n: a dead worker's spawn handles */
static PyObject *A_drop_worker_handles(SegmentObject *s, PyObject *arg) {
    unsigned long long wid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    long n = 0;
    for (u64 i = 0; i < s->L.n_slots; i++) {
        slot_t *sl = slot_at(s, i);
        u64 st = LOAD_ACQ(&sl->state); /* pairs with slot_fill's release */
        if (st_refs(st) == 0 || !(st & S_JOIN_INTEREST)) continue;
        if (LOAD_RLX(&sl->holder) != (HOLDER_WORKER | wid)) continue;
        unset_join_interest(&sl->state);
        drop_ref(s, i);
        n++;
    }
    return PyLong_FromLong(n);
}

/* ---- snapshots ----------------------------------------------------------- */
static PyObject *A_slot_info(SegmentObject *s, PyObject *arg) {
    unsigned long long idx = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    slot_t *sl = slot_at(s, idx);
    if (!sl) return PyErr_Format(SegmentError, "bad slot index %llu", idx);
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsKsKsK}", "state", LOAD_ACQ(&sl->state), "fn_id",
        LOAD_RLX(&sl->fn_id), "holder", LOAD_RLX(&sl->holder), "owner", LOAD_RLX(&sl->owner),
        "flags", LOAD_RLX(&sl->flags), "args_len", LOAD_RLX(&sl->args_len), "result",
        LOAD_RLX(&sl->result), "submitted_ns", LOAD_RLX(&sl->submitted_ns), "started_ns",
        LOAD_RLX(&sl->started_ns), "finished_ns", LOAD_RLX(&sl->finished_ns), "attempts",
        LOAD_RLX(&sl->attempts), "parent", LOAD_RLX(&sl->parent), "gen", LOAD_RLX(&sl->gen),
        "kind", LOAD_RLX(&sl->kind));
}

static PyObject *A_free_count(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 0)) return NULL;
    return PyLong_FromUnsignedLongLong(LOAD_ACQ(&HDR(s)->free_count));
}

PyMethodDef admin_methods[] = {
    {"register_fn", (PyCFunction)A_register_fn, METH_O, "register_fn(data) -> fn_id | -1"},
    {"get_fn", (PyCFunction)A_get_fn, METH_O, "get_fn(fn_id) -> bytes | None"},
    {"client_claim", (PyCFunction)A_client_claim, METH_VARARGS, "client_claim(pid, start) -> cid"},
    {"client_release", (PyCFunction)A_client_release, METH_O, "client_release(cid) -> dropped"},
    {"client_spin", (PyCFunction)A_client_spin, METH_VARARGS, "client_spin(cid, budget) -> bool"},
    {"client_wait", (PyCFunction)A_client_wait, METH_VARARGS,
     "client_wait(cid, timeout, seq=-1) -> bool"},
    {"client_seq", (PyCFunction)A_client_seq, METH_O, "client_seq(cid) -> int"},
    {"client_wake", (PyCFunction)A_client_wake, METH_O, "client_wake(cid)"},
    {"worker_register", (PyCFunction)A_worker_register, METH_VARARGS,
     "worker_register(wid, pid, start, epoch)"},
    {"worker_dead", (PyCFunction)A_worker_dead, METH_VARARGS, "worker_dead(wid, exited=False)"},
    {"dead_running", (PyCFunction)A_dead_running, METH_O,
     "dead_running(wid) -> [(key, max_retries, attempts, holder)]"},
    {"crash_task", (PyCFunction)A_crash_task, METH_VARARGS, "crash_task(key, status, data)"},
    {"retry_task", (PyCFunction)A_retry_task, METH_O, "retry_task(key)"},
    {"drop_worker_handles", (PyCFunction)A_drop_worker_handles, METH_O,
     "drop_worker_handles(wid) -> n"},
    {"slot_info", (PyCFunction)A_slot_info, METH_O, "slot_info(idx) -> dict"},
    {"free_count", (PyCFunction)A_free_count, METH_NOARGS, "free_count() -> int"},
    {NULL}};
