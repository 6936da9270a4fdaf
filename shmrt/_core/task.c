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
#include "core.h"
#include "freestack.h"
#include "park.h"
#include "wake.h"
#include "crash.h"
#include "section.h"
#include "queue.h"
#include "state.h"

#include <stdio.h>
#include <unistd.h>

int sched_push_lifo(SegmentObject *s, u64 wid, u32 idx);
int sched_notify(SegmentObject *s);
PyObject *blobview_new(SegmentObject *s, u64 off);

#define KEY_IDX(k) ((u64)(k) & 0xffffffffULL)
#define KEY_GEN(k) ((u64)(k) >> 32)

/* ---- free stack ---------------------------------------------------------- */
/* freestack.h: the ABA-tagged Treiber stack, never-used slots carved on
 * demand (checked by tools/check, scenario freelist). */
static u64 slot_index(SegmentObject *s, slot_t *sl) {
    return (u64)((char *)sl - (s->L.base + s->L.slots_off)) / s->L.slot_size;
}

/* A free slot index, -1 when none is left, -2 (marked broken; no Python
 * error set, so it runs without the GIL: udp.c) when the allocator handed
 * out a slot that is in use: a scribbled free stack or carve counter would
 * otherwise give one slot to two tasks. */
static long slot_alloc(SegmentObject *s) {
    long i = slots_alloc(&s->L);
    if (i == -2) {
        seg_mark_broken(s, "free-slot stack: head %#llx is not a free slot",
                        (unsigned long long)LOAD_RLX(&HDR(s)->free_head));
        return -2;
    }
    if (i < 0) return i;
    u64 st = LOAD_ACQ(&slot_at(s, (u64)i)->state); /* pairs with the last dropper's release */
    if (st_refs(st) != 0) {
        seg_mark_broken(s, "free-slot stack: slot %ld is in use (state %#llx; free head %#llx, "
                        "carved %llu)", i, (unsigned long long)st,
                    (unsigned long long)LOAD_RLX(&HDR(s)->free_head),
                    (unsigned long long)LOAD_RLX(&HDR(s)->slots_carved));
        return -2;
    }
    return i;
}

/* Drop the slot's references on its argument / result blocks, exactly once:
 * the flag is taken with an exchange before the block is released, so a
 * death in between leaks a block (the inspector shows it) and never
 * releases one twice (the crash reclaim calls this for leaked slots too). */
void slot_release_blobs(SegmentObject *s, slot_t *sl) {
    u64 f = XCHG_ACQREL(&sl->flags, 0); /* pairs with the fill / complete that set it */
    u64 a = LOAD_RLX(&sl->args_blob), r = LOAD_RLX(&sl->result_blob);
    if ((f & SLOT_F_ARGS_BLOB) && arena_release_block(s, a))
        seg_mark_broken(s, "slot %llu: args block at arena offset %llu is not a live block",
                        (unsigned long long)slot_index(s, sl), (unsigned long long)a);
    if ((f & SLOT_F_RESULT_BLOB) && arena_release_block(s, r))
        seg_mark_broken(s, "slot %llu: result block at arena offset %llu is not a live block",
                        (unsigned long long)slot_index(s, sl), (unsigned long long)r);
}

static void slot_free(SegmentObject *s, u64 idx) {
    slot_t *sl = slot_at(s, idx);
    slot_release_blobs(s, sl);
    STORE_RLX(&sl->owner, 0);
    slots_push_free(&s->L, idx);
}

static int dropped(SegmentObject *s, u64 idx, tr_t r) {
    if (r == TR_INVALID) /* no reference left to drop: a scribbled state word */
        seg_mark_broken(s, "slot %llu: state %#llx holds no reference to drop",
                        (unsigned long long)idx,
                        (unsigned long long)LOAD_RLX(&slot_at(s, idx)->state));
    if (r == TR_LAST_REF) {
        CRASH_POINT(CP_LAST_REF);
        slot_free(s, idx);
    }
    return r;
}

int drop_ref(SegmentObject *s, u64 idx) { return dropped(s, idx, ref_dec(&slot_at(s, idx)->state)); }

/* A handle that took the result is dropped with its JOIN_INTEREST (state.h
 * drop_handle): the crash reclaim must not count it again. */
int drop_handle_ref(SegmentObject *s, u64 idx) {
    return dropped(s, idx, drop_handle(&slot_at(s, idx)->state));
}

/* Resolve a key to its slot, or raise. */
slot_t *slot_for_key(SegmentObject *s, unsigned long long key, u64 *idx) {
    *idx = KEY_IDX(key);
    slot_t *sl = slot_at(s, *idx);
    if (!sl || LOAD_RLX(&sl->gen) != KEY_GEN(key)) {
        PyErr_Format(SegmentError, "stale or invalid task key %llu (slot %llu)", key,
                     key & 0xffffffffULL);
        return NULL;
    }
    return sl;
}

/* The slot a task key passed from Python names, or NULL with the error set:
 * the one parse, open check and key check of every method taking a key. */
slot_t *slot_of_key_arg(SegmentObject *s, PyObject *arg, int need_write, u64 *idx) {
    unsigned long long key = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, need_write)) return NULL;
    return slot_for_key(s, key, idx);
}

/* Fill a freshly allocated slot.  Returns the key. */
static u64 slot_fill(SegmentObject *s, u64 idx, u64 holder, u64 fn_id, Py_buffer *b,
                     long long args_blob, u64 retries, u64 parent, const u64 *packet) {
    slot_t *sl = slot_at(s, idx);
    if (!sl) return 0; /* unreachable: idx comes from slot_alloc, which checks */
    u64 gen = (LOAD_RLX(&sl->gen) + 1) & 0xffffffffULL;
    STORE_RLX(&sl->gen, gen);
    STORE_PLAIN(&sl->fn_id, fn_id);
    STORE_PLAIN(&sl->holder, holder);
    STORE_PLAIN(&sl->owner, 0);
    STORE_PLAIN(&sl->flags, args_blob >= 0 ? SLOT_F_ARGS_BLOB : 0);
    STORE_PLAIN(&sl->args_blob, args_blob >= 0 ? (u64)args_blob : 0);
    STORE_PLAIN(&sl->result_blob, 0);
    STORE_PLAIN(&sl->args_len, (u64)b->len);
    STORE_PLAIN(&sl->result, 0);
    STORE_PLAIN(&sl->submitted_ns, now_ns());
    STORE_PLAIN(&sl->started_ns, 0);
    STORE_PLAIN(&sl->finished_ns, 0);
    STORE_PLAIN(&sl->attempts, retries << 32);
    STORE_PLAIN(&sl->parent, parent);
    /* a relay packet is one from its first visible state on: a crash reclaim
     * may re-queue it before its submitter returns */
    STORE_PLAIN(&sl->kind, packet ? 1 : 0);
    STORE_PLAIN(&sl->limit_ns, 0);
    STORE_PLAIN(&sl->flow, packet ? packet[0] : 0);
    STORE_PLAIN(&sl->seq, packet ? packet[1] : 0);
    if (b->len && b->buf) memcpy(slot_payload(s, sl), b->buf, (size_t)b->len); /* NULL: in place (udp.c) */
    STORE_REL(&sl->state, STATE_INITIAL); /* publishes the fields above */
    return (gen << 32) | idx;
}

static int check_payload(SegmentObject *s, Py_buffer *b) {
    if ((u64)b->len > payload_cap(s)) {
        PyErr_Format(PyExc_ValueError, "inline payload of %zd bytes exceeds the slot (%llu)",
                     b->len, (unsigned long long)payload_cap(s));
        return -1;
    }
    return 0;
}

/* udp.c receives datagrams straight into slots: it allocates first and
 * fills after the receive (b->buf NULL: the payload is already written). */
long task_slot_alloc(SegmentObject *s) { return slot_alloc(s); }
u64 task_slot_fill(SegmentObject *s, u64 idx, u64 holder, u64 fn_id, Py_buffer *b,
                   long long blob, const u64 *packet) {
    FETCH_ADD_RLX(&HDR(s)->submitted, 1);
    return slot_fill(s, idx, holder, fn_id, b, blob, 0, 0, packet);
}

/* Allocate and fill a slot for a new task (not yet queued: the caller pushes
 * it, which publishes the slot to the worker that pops it).  Returns 0 and
 * the key / index, 1 when no slot is free, or -1 with an exception set. */
int task_new(SegmentObject *s, u64 holder, u64 fn_id, Py_buffer *b, long long blob,
             u64 retries, u64 parent, const u64 *packet, u64 *key, u64 *idx) {
    if (seg_check_open(s, 1) || check_payload(s, b)) return -1;
    long i = slot_alloc(s);
    if (i == -2) return seg_raise_broken(s), -1; /* corrupt: broken */
    if (i < 0) return 1;
    CRASH_POINT(CP_ALLOC);
    *idx = (u64)i;
    *key = slot_fill(s, (u64)i, holder, fn_id, b, blob, retries, parent, packet);
    FETCH_ADD_RLX(&HDR(s)->submitted, 1);
    CRASH_POINT(CP_FILLED);
    return 0;
}

/* submit(cid, fn_id, data, args_blob=-1, retries=0) -> key, or -1 if no slot.
 * args_blob >= 0: the slot takes over the caller's reference on that block. */
static PyObject *T_submit(SegmentObject *s, PyObject *args) {
    unsigned long long cid, fn_id, retries = 0;
    long long args_blob = -1;
    double limit_s = 0;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "KKy*|LKd", &cid, &fn_id, &b, &args_blob, &retries, &limit_s))
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
    if (ring_push(inject_ring(s), s->L.inject_cap, idx)) /* publishes the slot */
        return seg_corrupt(s, "inject ring: no room for slot %llu (capacity %llu)",
                           (unsigned long long)idx, (unsigned long long)s->L.inject_cap);
    CRASH_POINT(CP_QUEUED);
    COUNTER_BUMP(&c->submitted, 1);
    sched_notify(s);
    return PyLong_FromUnsignedLongLong(key);
}

/* spawn(wid, fn_id, data, args_blob=-1, parent_idx=-1) -> key, or -1 */
static PyObject *T_spawn(SegmentObject *s, PyObject *args) {
    unsigned long long wid, fn_id;
    long long args_blob = -1, parent = -1;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "KKy*|LL", &wid, &fn_id, &b, &args_blob, &parent)) return NULL;
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
static PyObject *T_begin(SegmentObject *s, PyObject *args) {
    unsigned long long wid, idx;
    if (!PyArg_ParseTuple(args, "KK", &wid, &idx) || seg_check_open(s, 1)) return NULL;
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
    return Py_BuildValue("(KKNLK)", key, (unsigned long long)sl->fn_id, data, parent,
                         (unsigned long long)LOAD_RLX(&sl->kind));
}

/* Deliver a completed task to whoever holds its handle.  0, or -1 with the
 * runtime broken (a holder that names nobody, a ring that refuses it). */
static int deliver(SegmentObject *s, u64 idx, slot_t *sl, u64 prev_state) {
    u64 holder = LOAD_RLX(&sl->holder);
    if (holder == HOLDER_RELAY) return relay_deliver(s, idx, sl);
    if ((holder & ~0xffffULL) == HOLDER_WORKER && (holder & 0xffff) < s->L.n_workers) {
        join_wake(worker_at(s, holder & 0xffff), prev_state); /* park.h: wake a joiner */
        return 0;
    }
    client_t *c = client_at(s, holder);
    if (!c) {
        seg_mark_broken(s, "slot %llu: holder %#llx names no client, worker or relay",
                        (unsigned long long)idx, (unsigned long long)holder);
        return -1;
    }
    if (client_deliver(c, s->L.inject_cap, idx)) { /* wake.h: push, bump seq, wake */
        seg_mark_broken(s, "client %llu completion ring: no room for slot %llu",
                        (unsigned long long)holder, (unsigned long long)idx);
        return -1;
    }
    return 0;
}

int complete_slot(SegmentObject *s, u64 idx, slot_t *sl, u64 status, Py_buffer *b,
                  long long result_blob) {
    if ((u64)b->len > payload_cap(s)) {
        PyErr_Format(PyExc_ValueError, "inline result of %zd bytes exceeds the slot", b->len);
        return -1;
    }
    /* args consumed: drop the slot's ref, exactly once (see slot_release_blobs) */
    if ((FETCH_AND_ACQREL(&sl->flags, ~SLOT_F_ARGS_BLOB) & SLOT_F_ARGS_BLOB) &&
        arena_release_block(s, LOAD_RLX(&sl->args_blob))) {
        seg_corrupt(s, "slot %llu: args block at arena offset %llu is not a live block",
                    (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->args_blob));
        return -1;
    }
    if (result_blob >= 0) {
        STORE_RLX(&sl->result_blob, (u64)result_blob);
        FETCH_OR_ACQREL(&sl->flags, SLOT_F_RESULT_BLOB);
    }
    if (b->len) memcpy(slot_payload(s, sl), b->buf, (size_t)b->len);
    STORE_PLAIN(&sl->result, (status << 32) | (u64)b->len);
    STORE_PLAIN(&sl->finished_ns, now_ns()); /* both published by the COMPLETE CAS below */
    u64 prev;
    if (transition_to_complete(&sl->state, &prev) != TR_OK) {
        seg_corrupt(s, "slot %llu: state %#llx cannot complete (not running)",
                    (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->state));
        return -1;
    }
    CRASH_POINT(CP_COMPLETE);
    /* Count before delivering: once delivered, the holder may read the
     * counters, and they must already include this task. */
    FETCH_ADD_RLX(&HDR(s)->completed, 1);
    /* Nobody wants the result any more (a released spawn handle, or the
     * handle of a client or worker that died): do not deliver it. */
    int rc = (prev & S_JOIN_INTEREST) ? deliver(s, idx, sl, prev) : 0;
    CRASH_POINT(CP_DELIVERED);
    drop_ref(s, idx); /* the scheduler's reference */
    if (rc) { /* broken by deliver: say why */
        seg_raise_broken(s);
        return -1;
    }
    return 0;
}

/* finish(wid, idx, status, data, result_blob=-1, outer=-1) */
static PyObject *T_finish(SegmentObject *s, PyObject *args) {
    unsigned long long wid, idx, status;
    long long outer = -1, result_blob = -1;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "KKKy*|LL", &wid, &idx, &status, &b, &result_blob, &outer))
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

/* Read a completed slot's result: (status, bytes | BlobView). */
static PyObject *take_result(SegmentObject *s, u64 idx, slot_t *sl) {
    u64 r = LOAD_RLX(&sl->result), n = r & 0xffffffffULL;
    if (n > payload_cap(s))
        return seg_corrupt(s, "slot %llu: result length %llu exceeds the slot's %llu bytes",
                           (unsigned long long)idx, (unsigned long long)n,
                           (unsigned long long)payload_cap(s));
    PyObject *data = (sl->flags & SLOT_F_RESULT_BLOB)
                         ? blobview_slot(s, idx, sl->result_blob, "result")
                         : PyBytes_FromStringAndSize(slot_payload(s, sl), (Py_ssize_t)n);
    if (!data) return NULL;
    return Py_BuildValue("(KN)", r >> 32, data);
}

/* harvest(cid, max=1024) -> [(key, status, data), ...]; drops the handle refs */
static PyObject *T_harvest(SegmentObject *s, PyObject *args) {
    unsigned long long cid;
    long max = 1024;
    if (!PyArg_ParseTuple(args, "K|l", &cid, &max) || seg_check_open(s, 1)) return NULL;
    client_t *c = client_at(s, cid);
    if (!c) return PyErr_Format(SegmentError, "bad client id %llu", cid);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    char what[48];
    snprintf(what, sizeof what, "client %llu completion ring", cid);
    for (long i = 0; i < max; i++) {
        long v = ring_pop(client_ring(c), s->L.inject_cap);
        /* Corruption found here marks the runtime broken but is not raised:
         * the client's harvester thread ends on an exception (client.py),
         * and it must live on to fail the client's futures once the
         * runtime is not running.  The reason is in broken_reason(). */
        if (v < 0) { /* empty: is it, or is its head scribbled? (broken.c) */
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
            seg_mark_broken(s, "%s: slot %ld %s (state %#llx, holder %#llx, n_slots %llu)",
                            what, v, bad, (unsigned long long)st,
                            (unsigned long long)(sl ? LOAD_RLX(&sl->holder) : 0),
                            (unsigned long long)s->L.n_slots);
            break;
        }
        PyObject *res = take_result(s, (u64)v, sl);
        if (!res) {
            Py_DECREF(out);
            return NULL;
        }
        u64 key = (LOAD_RLX(&sl->gen) << 32) | (u64)v;
        PyObject *item = Py_BuildValue("(KOO)", key, PyTuple_GET_ITEM(res, 0), PyTuple_GET_ITEM(res, 1));
        Py_DECREF(res);
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

SECTIONED(T_submit)
SECTIONED(T_spawn)
SECTIONED(T_begin)
SECTIONED(T_finish)
SECTIONED(T_harvest)
SECTIONED(T_join_poll)
SECTIONED(T_join_register)
SECTIONED(T_cancel)
SECTIONED(T_release)

PyMethodDef task_methods[] = {
    {"submit", (PyCFunction)T_submit_s, METH_VARARGS,
     "submit(cid, fn_id, data, args_blob=-1, retries=0) -> key | -1 (no free slot)"},
    {"spawn", (PyCFunction)T_spawn_s, METH_VARARGS,
     "spawn(wid, fn_id, data, args_blob=-1, parent=-1) -> key | -1"},
    {"begin", (PyCFunction)T_begin_s, METH_VARARGS, "begin(wid, idx) -> None | (key, fn, data, parent)"},
    {"finish", (PyCFunction)T_finish_s, METH_VARARGS,
     "finish(wid, idx, status, data, result_blob=-1, outer=-1)"},
    {"harvest", (PyCFunction)T_harvest_s, METH_VARARGS, "harvest(cid, max) -> [(key, status, data)]"},
    {"join_poll", (PyCFunction)T_join_poll_s, METH_O, "join_poll(key) -> None | (status, data)"},
    {"join_register", (PyCFunction)T_join_register_s, METH_O, "join_register(key) -> bool"},
    {"cancel", (PyCFunction)T_cancel_s, METH_O, "cancel(key) -> 0 cancelled, 1 running, 2 done"},
    {"task_state", (PyCFunction)T_state, METH_O, "task_state(key) -> state word"},
    {"release", (PyCFunction)T_release_s, METH_O, "release(key)"},
    {NULL}};
