/*
 * task.c -- a task's life in its slot: allocate, submit / spawn, begin,
 * finish, deliver, harvest / join, cancel, free.  Plus the function table and
 * client registration, and the coordinator's crash reclaim.
 *
 * A task is named by its key = (gen << 32) | index; gen is bumped at every
 * allocation, so a stale key can never touch a recycled slot.
 *
 * Life of a client task (refs: H = handle, S = scheduler):
 *   submit:  alloc, fill, state = NOTIFIED|JOIN_INTEREST|2 refs, push inject
 *   begin:   NOTIFIED -> RUNNING (acquire; pairs with submit's release)
 *   finish:  write result, RUNNING -> COMPLETE (release), push the index on
 *            the holder's completion ring (client) or wake the joiner
 *            (worker, if JOIN_WAKER), drop S
 *   harvest: pop the ring, copy / view the result, drop H (and its
 *            JOIN_INTEREST: state.h drop_handle) -> slot freed
 * Whoever drops the last ref frees the slot: its blob refs are released and
 * it is pushed on the free stack (Treiber stack, ABA tag in the head).
 */
#include "arena.h"
#include "scheduler.h"
#include "slots.h"
#include "freestack.h"
#include "park.h"
#include "wake.h"
#include "crash.h"
#include "fastargs.h"
#include "section.h"
#include "queue.h"
#include "state.h"

#include <stdio.h>
#include <unistd.h>


/* submit(cid, fn_id, data, args_blob=-1, retries=0) -> key, or -1 if no slot.
 * args_blob >= 0: the slot takes over the caller's reference on that block. */
static PyObject *T_submit(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long cid, fn_id, retries = 0;
    long long args_blob = -1;
    double limit_s = 0;
    Py_buffer b;
    if (fa_nargs("submit", nargs, 3, 6) || fa_K(args[0], &cid) || fa_K(args[1], &fn_id) ||
        (nargs > 3 && fa_L(args[3], &args_blob)) || (nargs > 4 && fa_K(args[4], &retries)) ||
        (nargs > 5 && fa_d(args[5], &limit_s)) || fa_y(args[2], &b))
        return NULL;
    client_t *c = client_at(s, cid);
    u64 key, idx;
    int rc = c ? task_new(s, cid, fn_id, &b, args_blob, retries, 0, NULL, &key, &idx) : -1;
    if (!c) PyErr_Format(SegmentError, "bad client id %llu", cid);
    PyBuffer_Release(&b);
    if (rc) return rc < 0 ? NULL : PyLong_FromLong(-1);
    if (limit_s > 0) { /* published by the push below, like the rest of the slot */
        STORE_RLX(&slot_at(s, idx)->limit_ns, (u64)(limit_s * 1e9));
        FETCH_ADD_RLX(&HDR(s)->watch, 1);
    }
    if (ring_push_inl(inject_ring(s), s->L.inject_cap, idx)) /* publishes the slot */
        return seg_corrupt(s, "inject ring: no room for slot %llu (capacity %llu)",
                           (unsigned long long)idx, (unsigned long long)s->L.inject_cap);
    CRASH_POINT(CP_QUEUED);
    COUNTER_BUMP(&c->submitted, 1);
    sched_notify(s);
    return PyLong_FromUnsignedLongLong(key);
}

/* spawn(wid, fn_id, data, args_blob=-1, parent_idx=-1) -> key, or -1 */
static PyObject *T_spawn(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid, fn_id;
    long long args_blob = -1, parent = -1;
    Py_buffer b;
    if (fa_nargs("spawn", nargs, 3, 5) || fa_K(args[0], &wid) || fa_K(args[1], &fn_id) ||
        (nargs > 3 && fa_L(args[3], &args_blob)) || (nargs > 4 && fa_L(args[4], &parent)) ||
        fa_y(args[2], &b))
        return NULL;
    u64 key, idx, par = (parent >= 0 && (u64)parent < s->L.n_slots) ? (u64)parent + 1 : 0;
    int rc = worker_at(s, wid) ? task_new(s, HOLDER_WORKER | wid, fn_id, &b, args_blob, 0, par,
                                          NULL, &key, &idx)
                               : -1;
    if (!worker_at(s, wid)) PyErr_Format(SegmentError, "bad worker id %llu", wid);
    PyBuffer_Release(&b);
    if (rc) return rc < 0 ? NULL : PyLong_FromLong(-1);
    if (sched_push_lifo(s, wid, (u32)idx)) return NULL; /* publishes the slot; corrupt: broken */
    sched_notify(s);
    return PyLong_FromUnsignedLongLong(key);
}

/* begin(wid, idx) -> None (cancelled: dropped) or (key, fn_id, data, parent, kind)
 * data is bytes (inline) or a BlobView (args block). */
static PyObject *T_begin(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid, idx;
    if (fa_nargs("begin", nargs, 2, 2) || fa_K(args[0], &wid) || fa_K(args[1], &idx) ||
        seg_check_open(s, 1))
        return NULL;
    worker_t *w = worker_at(s, wid);
    slot_t *sl = slot_at(s, idx);
    if (!w || !sl) return PyErr_Format(SegmentError, "bad worker %llu or slot %llu", wid, idx);
    STORE_RLX(&w->taking, 0); /* from here the slot's state and owner say where it is */
    STORE_RLX(&sl->owner, (s->pid << 32) | (wid + 1)); /* before RUNNING: the reclaim reads it */
    tr_t r = transition_to_running(&sl->state);
    if (r == TR_CANCELLED) {
        drop_ref(s, idx);
        Py_RETURN_NONE;
    }
    if (r != TR_OK) /* a queue handed out a slot that is not queued */
        return seg_corrupt(s, "slot %llu: state %#llx cannot begin (not a queued task)", idx,
                           (unsigned long long)LOAD_RLX(&sl->state));
    CRASH_POINT(CP_BEGUN);
    u64 t = now_ns();
    STORE_RLX(&sl->started_ns, t);
    STORE_PLAIN(&sl->attempts, LOAD_PLAIN(&sl->attempts) + 1); /* owner only: we run it */
    STORE_RLX(&w->current, idx + 1);
    STORE_RLX(&w->current_since, t);
    u64 depth = LOAD_RLX(&w->help_depth); /* owner-only: tasks on this stack */
    STORE_RLX(&w->help_depth, depth + 1);
    if (depth) COUNTER_BUMP(&w->helped, 1);
    PyObject *data;
    if (sl->flags & SLOT_F_ARGS_BLOB) {
        data = blobview_slot(s, idx, sl->args_blob, "args");
    } else {
        u64 n = sl->args_len;
        if (n > payload_cap(s))
            return seg_corrupt(s, "slot %llu: args length %llu exceeds the slot's %llu bytes", idx,
                               (unsigned long long)n, (unsigned long long)payload_cap(s));
        data = PyBytes_FromStringAndSize(slot_payload(s, sl), (Py_ssize_t)n);
    }
    if (!data) return NULL;
    u64 key = (LOAD_RLX(&sl->gen) << 32) | idx;
    long long parent = sl->parent ? (long long)sl->parent - 1 : -1;
    PyObject *items[5] = {PyLong_FromUnsignedLongLong(key),
                          PyLong_FromUnsignedLongLong(sl->fn_id), data,
                          PyLong_FromLongLong(parent),
                          PyLong_FromUnsignedLongLong(LOAD_RLX(&sl->kind))};
    return fa_tuple(5, items);
}

/* finish(wid, idx, status, data, result_blob=-1, outer=-1) */
static PyObject *T_finish(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long wid, idx, status;
    long long outer = -1, result_blob = -1;
    Py_buffer b;
    if (fa_nargs("finish", nargs, 4, 6) || fa_K(args[0], &wid) || fa_K(args[1], &idx) ||
        fa_K(args[2], &status) || (nargs > 4 && fa_L(args[4], &result_blob)) ||
        (nargs > 5 && fa_L(args[5], &outer)) || fa_y(args[3], &b))
        return NULL;
    worker_t *w = worker_at(s, wid);
    slot_t *sl = slot_at(s, idx);
    int rc = -1;
    if (seg_check_open(s, 1)) goto out;
    if (!w || !sl) {
        PyErr_Format(SegmentError, "bad worker %llu or slot %llu", wid, idx);
        goto out;
    }
    if ((LOAD_RLX(&sl->owner) & 0xffff) != wid + 1) {
        seg_corrupt(s, "slot %llu: owner %#llx, but worker %llu finishes it", idx,
                    (unsigned long long)LOAD_RLX(&sl->owner), wid);
        goto out;
    }
    COUNTER_BUMP(&w->tasks_run, 1); /* before the result is visible, like `completed` */
    rc = complete_slot(s, idx, sl, status, &b, result_blob);
    u64 depth = LOAD_RLX(&w->help_depth);
    STORE_RLX(&w->help_depth, depth ? depth - 1 : 0);
    STORE_RLX(&w->current, outer >= 0 ? (u64)outer + 1 : 0);
    STORE_RLX(&w->current_since, outer >= 0 ? now_ns() : 0);
out:
    PyBuffer_Release(&b);
    if (rc) return NULL;
    Py_RETURN_NONE;
}

/* A completed slot's result: bytes (inline) or a BlobView, and its status;
 * NULL with an exception (a corrupt length). */
static PyObject *result_data(SegmentObject *s, u64 idx, slot_t *sl, u64 *status) {
    u64 r = LOAD_RLX(&sl->result), n = r & 0xffffffffULL;
    if (n > payload_cap(s))
        return seg_corrupt(s, "slot %llu: result length %llu exceeds the slot's %llu bytes",
                           (unsigned long long)idx, (unsigned long long)n,
                           (unsigned long long)payload_cap(s));
    *status = r >> 32;
    return (sl->flags & SLOT_F_RESULT_BLOB)
               ? blobview_slot(s, idx, sl->result_blob, "result")
               : PyBytes_FromStringAndSize(slot_payload(s, sl), (Py_ssize_t)n);
}

/* Read a completed slot's result: (status, bytes | BlobView). */
static PyObject *take_result(SegmentObject *s, u64 idx, slot_t *sl) {
    u64 status = 0;
    PyObject *data = result_data(s, idx, sl, &status);
    if (!data) return NULL;
    PyObject *items[2] = {PyLong_FromUnsignedLongLong(status), data};
    return fa_tuple(2, items);
}

/* harvest(cid, max=1024) -> [(key, status, data), ...]; drops the handle refs */
static PyObject *T_harvest(SegmentObject *s, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long cid;
    long long max = 1024;
    if (fa_nargs("harvest", nargs, 1, 2) || fa_K(args[0], &cid) ||
        (nargs > 1 && fa_L(args[1], &max)) || seg_check_open(s, 1))
        return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    char what[48]; /* written where a message needs it: not per call */
    for (long long i = 0; i < max; i++) {
        long v = ring_pop_inl(client_ring(c), s->L.inject_cap);
        /* Corruption found here marks the runtime broken but is not raised:
         * the client's harvester thread ends on an exception (client.py),
         * and it must live on to fail the client's futures once the
         * runtime is not running.  The reason is in broken_reason(). */
        if (v < 0) { /* empty: is it, or is its head scribbled? (broken.c) */
            snprintf(what, sizeof what, "client %llu completion ring", cid);
            if (ring_check_head(s, client_ring(c), s->L.inject_cap, what)) PyErr_Clear();
            break;
        }
        slot_t *sl = slot_at(s, (u64)v);
        u64 st = sl ? LOAD_ACQ(&sl->state) : 0; /* pairs with complete's release */
        const char *bad = !sl ? "is not a slot index"
                          : !(st & S_COMPLETE) || !(st & S_JOIN_INTEREST) || !st_refs(st)
                              ? "is not a completed task with a handle"
                          : LOAD_RLX(&sl->holder) != cid ? "belongs to another holder"
                                                          : NULL;
        if (bad) {
            snprintf(what, sizeof what, "client %llu completion ring", cid);
            seg_mark_broken(s, "%s: slot %ld %s (state %#llx, holder %#llx, n_slots %llu)",
                            what, v, bad, (unsigned long long)st,
                            (unsigned long long)(sl ? LOAD_RLX(&sl->holder) : 0),
                            (unsigned long long)s->L.n_slots);
            break;
        }
        u64 status = 0, key = (LOAD_RLX(&sl->gen) << 32) | (u64)v;
        PyObject *data = result_data(s, (u64)v, sl, &status);
        if (!data) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *parts[3] = {PyLong_FromUnsignedLongLong(key),
                              PyLong_FromUnsignedLongLong(status), data};
        PyObject *item = fa_tuple(3, parts);
        if (!item || PyList_Append(out, item)) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        CRASH_POINT(CP_HARVEST);
        drop_handle_ref(s, (u64)v); /* the handle's reference, with its interest */
        COUNTER_BUMP(&c->harvested, 1);
    }
    return out;
}

/* join_poll(key) -> None while running, else (status, data); drops the handle */
static PyObject *T_join_poll(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 1, &idx);
    if (!sl) return NULL;
    if (!(LOAD_ACQ(&sl->state) & S_COMPLETE)) Py_RETURN_NONE; /* pairs with complete */
    PyObject *res = take_result(s, idx, sl);
    if (res) drop_handle_ref(s, idx); /* the handle's reference, with its interest */
    return res;
}

/* join_register(key) -> bool: ask for a wake on completion; False if done */
static PyObject *T_join_register(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 1, &idx);
    if (!sl) return NULL;
    return PyBool_FromLong(set_join_waker(&sl->state) == TR_OK);
}

/* cancel(key) -> 0 cancelled (handle dropped), 1 running, 2 complete */
static PyObject *T_cancel(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 1, &idx);
    if (!sl) return NULL;
    tr_t r = transition_to_cancelled(&sl->state);
    if (r == TR_OK) {
        unset_join_interest(&sl->state);
        drop_ref(s, idx);
        return PyLong_FromLong(0);
    }
    if (r == TR_INVALID)
        return seg_corrupt(s, "slot %llu: state %#llx holds no reference (cancel)",
                           (unsigned long long)idx,
                           (unsigned long long)LOAD_RLX(&sl->state));
    return PyLong_FromLong(r == TR_RUNNING ? 1 : 2);
}

/* task_state(key) -> the task's state word (read-only; a stale key raises) */
static PyObject *T_state(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 0, &idx);
    if (!sl) return NULL;
    return PyLong_FromUnsignedLongLong(LOAD_ACQ(&sl->state)); /* pairs with the transitions */
}

/* release(key): drop a handle without reading the result */
static PyObject *T_release(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 1, &idx);
    if (!sl) return NULL;
    unset_join_interest(&sl->state);
    drop_ref(s, idx);
    Py_RETURN_NONE;
}

SECTIONED_FAST(T_submit)
SECTIONED_FAST(T_spawn)
SECTIONED_FAST(T_begin)
SECTIONED_FAST(T_finish)
SECTIONED_FAST(T_harvest)
SECTIONED(T_join_poll)
SECTIONED(T_join_register)
SECTIONED(T_cancel)
SECTIONED(T_release)

PyMethodDef task_methods[] = {
    FASTCALL_METHOD("submit", T_submit_s,
                    "submit(cid, fn_id, data, args_blob=-1, retries=0, limit_s=0) -> key | -1 "
                    "(no free slot)"),
    FASTCALL_METHOD("spawn", T_spawn_s,
                    "spawn(wid, fn_id, data, args_blob=-1, parent=-1) -> key | -1"),
    FASTCALL_METHOD("begin", T_begin_s,
                    "begin(wid, idx) -> None | (key, fn, data, parent, kind)"),
    FASTCALL_METHOD("finish", T_finish_s,
                    "finish(wid, idx, status, data, result_blob=-1, outer=-1)"),
    FASTCALL_METHOD("harvest", T_harvest_s, "harvest(cid, max=1024) -> [(key, status, data)]"),
    {"join_poll", (PyCFunction)T_join_poll_s, METH_O, "join_poll(key) -> None | (status, data)"},
    {"join_register", (PyCFunction)T_join_register_s, METH_O, "join_register(key) -> bool"},
    {"cancel", (PyCFunction)T_cancel_s, METH_O, "cancel(key) -> 0 cancelled, 1 running, 2 done"},
    {"task_state", (PyCFunction)T_state, METH_O, "task_state(key) -> state word"},
    {"release", (PyCFunction)T_release_s, METH_O, "release(key)"},
    {NULL}};
