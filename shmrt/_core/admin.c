/*
 * admin.c -- the slower paths: function table, client registration and the
 * client's wait / spin, worker registration, re-queue / crash of a dead
 * worker's tasks (after the crash reclaim), and read-only
 * snapshots of slots and workers (inspector, tests).
 *
 * Function table: a client pickles a callable once, stores it in an arena
 * block and publishes (blob, len) in entry fn_id with FN_READY (release);
 * workers read it with an acquire load and cache the unpickled callable.
 *
 * Crash reclaim lives in reclaim.c (a stop-the-world repair); registration
 * here makes a process's steps sections (section.h): worker_register and
 * client_claim point the Segment's busy counter at the process's own record.
 */
#include "arena.h"
#include "fastargs.h"
#include "holds.h"
#include "scheduler.h"
#include "slots.h"
#include "section.h"
#include "queue.h"
#include "state.h"
#include "wake.h"


/* ---- function table ------------------------------------------------------ */
static u64 fnv1a(const unsigned char *p, Py_ssize_t n) {
    u64 x = 0xcbf29ce484222325ULL;
    for (Py_ssize_t i = 0; i < n; i++) x = (x ^ p[i]) * 0x100000001b3ULL;
    return x;
}

/* An entry already holding exactly these bytes (the same function,
 * registered by another process, or by a client that came and went): every
 * process that connects registers its functions once, and without this the
 * table grew by an entry per client and function, never reclaimed. */
static long long find_fn(SegmentObject *s, const Py_buffer *b, u64 hash) {
    u64 n = LOAD_ACQ(&HDR(s)->fn_count);
    if (n > s->L.n_funcs) n = s->L.n_funcs;
    for (u64 fid = 0; fid < n; fid++) {
        func_t *f = func_at(s, fid);
        if (LOAD_ACQ(&f->state) != FN_READY) continue; /* pairs with register's release */
        if (LOAD_PLAIN(&f->hash) != hash || LOAD_PLAIN(&f->len) != (u64)b->len) continue;
        u64 len;
        char *p = arena_block_data(s, LOAD_PLAIN(&f->blob), &len);
        if (p && len >= (u64)b->len && !memcmp(p, b->buf, (size_t)b->len)) return (long long)fid;
    }
    return -1;
}

static PyObject *A_register_fn(SegmentObject *s, PyObject *arg) {
    Py_buffer b;
    if (seg_check_open(s, 1) || PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE)) return NULL;
    header_t *h = HDR(s);
    u64 hash = fnv1a((const unsigned char *)b.buf, b.len);
    long long known = find_fn(s, &b, hash);
    if (known >= 0) {
        PyBuffer_Release(&b);
        return PyLong_FromLongLong(known);
    }
    u64 fid = FETCH_ADD_ACQREL(&h->fn_count, 1);
    if (fid >= s->L.n_funcs) {
        PyBuffer_Release(&b);
        return PyLong_FromLong(-1); /* table full: caller sends the callable inline */
    }
    func_t *f = func_at(s, fid);
    u64 fst = FN_EMPTY;
    if (!CAS_ACQREL(&f->state, &fst, (u64)FN_WRITING)) { /* pairs with get_fn's acquire */
        PyBuffer_Release(&b); /* two registrations on one entry: fn_count went back */
        return seg_corrupt(s, "function table: entry %llu is taken (state %llu), but fn_count "
                           "handed it out again", (unsigned long long)fid,
                           (unsigned long long)fst);
    }
    long long off = arena_alloc_block(s, (u64)b.len);
    if (off < 0) {
        STORE_REL(&f->state, (u64)FN_EMPTY); /* nobody can name this entry: let it be */
        PyBuffer_Release(&b);
        return off == -2 ? seg_raise_broken(s) : PyLong_FromLong(-1);
    }
    u64 len;
    char *dst = arena_block_data(s, (u64)off, &len);
    memcpy(dst, b.buf, (size_t)b.len);
    STORE_PLAIN(&f->blob, (u64)off);
    STORE_PLAIN(&f->len, (u64)b.len);
    STORE_PLAIN(&f->hash, hash); /* all three published by the FN_READY release */
    STORE_REL(&f->state, (u64)FN_READY); /* pairs with get_fn's acquire */
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLongLong(fid);
}

static PyObject *A_get_fn(SegmentObject *s, PyObject *arg) {
    unsigned long long fid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    /* fid comes from a task's slot: a bad one, an entry that is not ready
     * (a task names a function only after its registration published it),
     * a bad block or bytes that fail their checksum are corruption */
    func_t *f = func_at(s, fid);
    if (!f)
        return seg_corrupt(s, "function table: id %llu is out of range (%llu entries)", fid,
                           (unsigned long long)s->L.n_funcs);
    u64 st = LOAD_ACQ(&f->state); /* pairs with register_fn's release */
    if (st != FN_READY)
        return seg_corrupt(s, "function table: entry %llu is not ready (state %llu)", fid,
                           (unsigned long long)st);
    u64 len, blob = LOAD_PLAIN(&f->blob), flen = LOAD_PLAIN(&f->len);
    char *p = arena_block_data(s, blob, &len);
    if (!p || flen > len)
        return seg_corrupt(s, "function table: entry %llu: block at arena offset %llu (%llu "
                           "bytes) is not a live block", fid, (unsigned long long)blob,
                           (unsigned long long)flen);
    if (fnv1a((const unsigned char *)p, (Py_ssize_t)flen) != LOAD_PLAIN(&f->hash))
        return seg_corrupt(s, "function table: entry %llu: the pickled callable at arena offset "
                           "%llu fails its checksum", fid, (unsigned long long)blob);
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)flen);
}

/* ---- clients --------------------------------------------------------------- */
static PyObject *A_client_claim(SegmentObject *s, PyObject *args) {
    unsigned long long pid, start;
    if (!PyArg_ParseTuple(args, "KK", &pid, &start) || seg_check_open(s, 1)) return NULL;
    for (u64 i = 0; i < s->L.n_clients; i++) {
        client_t *c = client_at(s, i);
        u64 exp = 0;
        if (CAS_ACQREL(&c->pid, &exp, pid)) {
            STORE_RLX(&c->busy, 0);
            s->busy = &c->busy; /* from here our steps are sections (section.h) */
            s->units = &c->units;
            section_enter(s);
            arena_set_holds(s, lay_holds(&s->L, hold_rec_client(&s->L, i)));
            if (!LOAD_ACQ(&c->ring_ready)) { /* first claim of this entry ever */
                ring_init(client_ring(c), s->L.inject_cap);
                STORE_REL(&c->ring_ready, 1); /* pairs with the reclaim's acquire */
            }
            STORE_RLX(&c->start, start);
            STORE_RLX(&c->sleeping, 0);
            STORE_RLX(&c->spinning, 0);
            STORE_RLX(&c->units, 0);
            section_leave(s);
            return PyLong_FromUnsignedLongLong(i);
        }
    }
    return PyLong_FromLong(-1);
}

/* client_release(cid) -> n: a client going away drops the handles of
 * everything left on its ring and frees its entry (a dead client's entry is
 * freed by the crash reclaim instead).  Its other threads must be done. */
static PyObject *A_client_release(SegmentObject *s, PyObject *arg) {
    unsigned long long cid = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    section_enter(s);
    long n = 0, v;
    /* a client going away must get away: corruption found here is
     * recorded (broken.c), not raised */
    while ((v = ring_pop_inl(client_ring(c), s->L.inject_cap)) >= 0) {
        slot_t *sl = slot_at(s, (u64)v);
        if (!sl || LOAD_RLX(&sl->holder) != cid || !(LOAD_ACQ(&sl->state) & S_JOIN_INTEREST)) {
            seg_mark_broken(s, "client %llu completion ring: held slot %ld, not one of its "
                            "completed tasks", cid, v);
            continue;
        }
        unset_join_interest(&sl->state);
        drop_ref(s, (u64)v);
        n++;
    }
    /* Tasks still queued or running: nobody wants their results.  Dropping
     * the handles now frees them when they finish (complete_slot does not
     * deliver without JOIN_INTEREST), instead of leaving them on a ring the
     * next claimer of this entry would inherit. */
    for (u64 i = 0; i < s->L.n_slots && LOAD_ACQ(&c->pid); i++) {
        slot_t *sl = slot_at(s, i);
        u64 st = LOAD_ACQ(&sl->state);
        if (st_refs(st) == 0 || !(st & S_JOIN_INTEREST) || LOAD_RLX(&sl->holder) != cid) continue;
        if (transition_to_cancelled(&sl->state) == TR_INVALID) continue;
        if (FETCH_AND_ACQREL(&sl->state, ~S_JOIN_INTEREST) & S_JOIN_INTEREST) drop_ref(s, i);
        n++;
    }
    section_leave(s);
    s->release_cid = cid + 1;
    /* Views of arena blocks still alive in this process keep the record
     * (its hold table names them) until the last one goes (arena.c). */
    if (!s->holds || !LOAD_RLX(&s->holds->count) || s->busy != &c->busy)
        record_release_finish(s);
    return PyLong_FromLong(n);
}

/* client_spin(cid, budget_s) -> bool: poll the completion ring with the GIL
 * released; True as soon as it is non-empty.  While spinning, completers skip
 * the futex wake (wake.h: client_spin_core, the code tools/check explores). */
static PyObject *A_client_spin(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long cid;
    double budget;
    if (fa_nargs("client_spin", nargs, 2, 2) || fa_K(args[0], &cid) || fa_d(args[1], &budget) ||
        seg_check_open(s, 1))
        return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    int got;
    u64 budget_ns = budget > 0 ? (u64)(budget * 1e9) : 0;
    Py_BEGIN_ALLOW_THREADS
    got = client_spin_core(c, s->L.inject_cap, budget_ns);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(got);
}

/* client_wait(cid, timeout_s, seq=-1) -> bool (ring non-empty): sleep on the
 * client's futex word until a completion arrives (or client_wake).  A caller
 * that checks a flag of its own first passes the seq it read before that
 * check (client_seq), so a wake in between is not lost (wake.h:
 * client_wait_core). */
static PyObject *A_client_wait(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long cid;
    double timeout;
    long long seen = -1;
    if (fa_nargs("client_wait", nargs, 2, 3) || fa_K(args[0], &cid) || fa_d(args[1], &timeout) ||
        (nargs > 2 && fa_L(args[2], &seen)) || seg_check_open(s, 1))
        return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    int got;
    Py_BEGIN_ALLOW_THREADS
    got = client_wait_core(c, s->L.inject_cap, seen, timeout);
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
    return PyLong_FromLong(client_wake_all(c));
}

/* ---- workers ------------------------------------------------------------- */
/* worker_register(wid, pid, start, epoch): a (re)started worker claims its
 * entry and counts itself unparked (the idle word was initialised with all
 * workers unparked; the crash reclaim recomputes it from the states). */
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
    STORE_RLX(&w->taking, 0);
    STORE_RLX(&w->busy, 0);
    s->busy = &w->busy; /* from here our steps are sections (section.h) */
    section_enter(s);
    arena_set_holds(s, lay_holds(&s->L, hold_rec_worker(&s->L, wid)));
    STORE_SEQ(&w->state, (u64)W_RUNNING);
    section_leave(s);
    Py_RETURN_NONE;
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
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 1, &idx);
    if (!sl) return NULL;
    if (transition_to_notified_retry(&sl->state) != TR_OK)
        return seg_corrupt(s, "slot %llu: state %#llx is not running, cannot retry",
                           (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->state));
    STORE_RLX(&sl->owner, 0);
    if (ring_push_inl(inject_ring(s), s->L.inject_cap, idx))
        return seg_corrupt(s, "inject ring: no room for slot %llu (capacity %llu)",
                           (unsigned long long)idx, (unsigned long long)s->L.inject_cap);
    FETCH_ADD_RLX(&HDR(s)->retried, 1);
    sched_notify(s);
    Py_RETURN_NONE;
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

SECTIONED(A_register_fn)
SECTIONED(A_crash_task)
SECTIONED(A_retry_task)

PyMethodDef admin_methods[] = {
    {"register_fn", (PyCFunction)A_register_fn_s, METH_O, "register_fn(data) -> fn_id | -1"},
    {"get_fn", (PyCFunction)A_get_fn, METH_O, "get_fn(fn_id) -> bytes | None"},
    {"client_claim", (PyCFunction)A_client_claim, METH_VARARGS, "client_claim(pid, start) -> cid"},
    {"client_release", (PyCFunction)A_client_release, METH_O, "client_release(cid) -> dropped"},
    FASTCALL_METHOD("client_spin", A_client_spin, "client_spin(cid, budget) -> bool"),
    FASTCALL_METHOD("client_wait", A_client_wait, "client_wait(cid, timeout, seq=-1) -> bool"),
    {"client_seq", (PyCFunction)A_client_seq, METH_O, "client_seq(cid) -> int"},
    {"client_wake", (PyCFunction)A_client_wake, METH_O, "client_wake(cid)"},
    {"worker_register", (PyCFunction)A_worker_register, METH_VARARGS,
     "worker_register(wid, pid, start, epoch)"},
    {"crash_task", (PyCFunction)A_crash_task_s, METH_VARARGS, "crash_task(key, status, data)"},
    {"retry_task", (PyCFunction)A_retry_task_s, METH_O, "retry_task(key)"},
    {"slot_info", (PyCFunction)A_slot_info, METH_O, "slot_info(idx) -> dict"},
    {"free_count", (PyCFunction)A_free_count, METH_NOARGS, "free_count() -> int"},
    {NULL}};
