/*
 * slots.c -- task slots and their references: allocation, filling, the
 * reference drops that free a slot (and its arena blocks), task keys, and
 * completion with its delivery to whoever holds the handle (a client's
 * completion ring, a joining worker, a relay send ring).
 *
 * The layer below both tasks (task.c) and the relay (relay.c): either
 * fills slots through task_new and completes them through complete_slot;
 * neither calls the other.  Life of a slot, and why a stale key can never
 * touch a recycled one: task.c's module comment.
 */
#include "slots.h"

#include "arena.h"
#include "crash.h"
#include "freestack.h"
#include "park.h"
#include "queue.h"
#include "sendq.h"
#include "state.h"
#include "wake.h"

#include <string.h>

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
    if (seg_check_open(s, 1) || check_payload(s, b) || arena_check_held(s, blob, "args"))
        return -1;
    long i = slot_alloc(s);
    if (i == -2) return seg_raise_broken(s), -1; /* corrupt: broken */
    if (i < 0) return 1;
    CRASH_POINT(CP_ALLOC);
    *idx = (u64)i;
    *key = slot_fill(s, (u64)i, holder, fn_id, b, blob, retries, parent, packet);
    arena_give(s, blob, "args"); /* cannot fail: checked above, same step */
    FETCH_ADD_RLX(&HDR(s)->submitted, 1);
    CRASH_POINT(CP_FILLED);
    return 0;
}

/* Called by deliver() when a relay packet completes (CPU worker, or the
 * coordinator for a crashed one).  Never blocks. */
int slot_deliver_packet(SegmentObject *s, u64 idx, slot_t *sl) {
    u64 flow = LOAD_RLX(&sl->flow);
    send_t *t = sendq_of_flow(&s->L, flow); /* sendq.h: flow hash % send workers */
    if (!t) {
        seg_mark_broken(s, "slot %llu: a relay packet, but the runtime has no relay",
                        (unsigned long long)idx);
        return -1;
    }
    if (sendq_deliver(&s->L, t, idx)) { /* sendq.h: ring, else waitlist + re-check; wake */
        seg_mark_broken(s, "waitlist of send ring %llu: no room for slot %llu",
                        (unsigned long long)(flow % s->L.n_send), (unsigned long long)idx);
        return -1;
    }
    return 0;
}

/* Deliver a completed task to whoever holds its handle.  0, or -1 with the
 * runtime broken (a holder that names nobody, a ring that refuses it). */
static int deliver(SegmentObject *s, u64 idx, slot_t *sl, u64 prev_state) {
    u64 holder = LOAD_RLX(&sl->holder);
    if (holder == HOLDER_RELAY) return slot_deliver_packet(s, idx, sl);
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
    if (arena_check_held(s, result_blob, "result")) return -1;
    /* A result block left by an attempt whose worker died inside this very
     * step (after storing it, before COMPLETE): that attempt is over (its
     * task was returned by the crash reclaim, then retried or crashed), so
     * its block goes, or this completion would be decoded from it. */
    /* (a plain look first: the rare case pays the RMW, not every task; the
     * flag is only set by the worker running the slot, which is us) */
    if ((LOAD_RLX(&sl->flags) & SLOT_F_RESULT_BLOB) &&
        (FETCH_AND_ACQREL(&sl->flags, ~SLOT_F_RESULT_BLOB) & SLOT_F_RESULT_BLOB) &&
        arena_release_block(s, LOAD_RLX(&sl->result_blob))) {
        seg_corrupt(s, "slot %llu: result block at arena offset %llu is not a live block",
                    (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->result_blob));
        return -1;
    }
    if (result_blob >= 0) {
        STORE_RLX(&sl->result_blob, (u64)result_blob);
        FETCH_OR_ACQREL(&sl->flags, SLOT_F_RESULT_BLOB);
        arena_give(s, result_blob, "result"); /* cannot fail: checked above, same step */
    }
    /* An inline result is written over the inline args: from here a reclaim
     * after our death must not re-run the task on them.  Set before the
     * copy, AcqRel; pairs with task_flags' acquire in the coordinator, which
     * reads it after this process died (supervisor.py: WorkerCrashed, no
     * retry).  Args in a block survive until COMPLETE (below). */
    if (b->len && LOAD_RLX(&sl->args_len)) FETCH_OR_ACQREL(&sl->flags, SLOT_F_ARGS_GONE);
    if (b->len) memcpy(slot_payload(s, sl), b->buf, (size_t)b->len);
    STORE_PLAIN(&sl->result, (status << 32) | (u64)b->len);
    STORE_PLAIN(&sl->finished_ns, now_ns()); /* both published by the COMPLETE CAS below */
    CRASH_POINT(CP_RESULT);
    u64 prev;
    if (transition_to_complete(&sl->state, &prev) != TR_OK) {
        seg_corrupt(s, "slot %llu: state %#llx cannot complete (not running)",
                    (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->state));
        return -1;
    }
    CRASH_POINT(CP_COMPLETE);
    /* The args are consumed only now: a worker that dies before COMPLETE
     * leaves them for the retry.  Dropped exactly once (see
     * slot_release_blobs); we still hold the scheduler's reference, so
     * nobody frees the slot meanwhile. */
    /* (the plain look as above: the flag was set before the slot was
     * published, and our begin's acquire of the state made it visible; the
     * RMW, which pairs with slot_release_blobs', decides who drops it) */
    if ((LOAD_RLX(&sl->flags) & SLOT_F_ARGS_BLOB) &&
        (FETCH_AND_ACQREL(&sl->flags, ~SLOT_F_ARGS_BLOB) & SLOT_F_ARGS_BLOB) &&
        arena_release_block(s, LOAD_RLX(&sl->args_blob)))
        seg_mark_broken(s, "slot %llu: args block at arena offset %llu is not a live block",
                        (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->args_blob));
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

