/*
 * core.h -- the Segment object, its bounds-checked accessors, and the error
 * convention every C unit follows.  The base of the C layers:
 *
 *   pure protocol headers (layout.h, atomics.h, state.h, queue.h, park.h,
 *     freestack.h, budget.h, sendq.h, wake.h, holds.h, runstate.h, broken.h,
 *     reclaim.h): no Python, shared with the model checker
 *   core.h        segment.c (mapping, validation), broken.c (corruption)
 *   arena.h       arena.c: blocks, views, hold tables, process records
 *   slots.h       slots.c: slots, references, completion and delivery
 *   scheduler.h   sched.c: idle word, park / notify, run queues
 *   task.c, relay.c (relay.h), admin.c, kill.c, reclaim.c: Python methods
 *                 over the layers below; they never call each other
 *   udp.h         udp.c, udp_send.c: the relay's batched UDP I/O, on relay.h
 *   methods.h     every unit's method table; module.c assembles them
 *
 * Error convention (one, everywhere):
 *   - pure headers return status codes (>= 0 success, < 0 failure) and know
 *     nothing of Python;
 *   - a C helper on a SegmentObject either never raises and returns a status
 *     code, or is a *raising* helper that sets a Python exception and
 *     returns -1 / NULL (its comment says so: seg_check_open, slot_for_key,
 *     slot_of_key_arg, task_new, complete_slot, arena_check_held,
 *     arena_give, blobview_new / blobview_slot);
 *   - what could only come from corrupt shared memory is reported through
 *     broken.c: seg_corrupt (mark broken, raise SegmentError naming the
 *     region) where the caller can raise, seg_mark_broken where it must
 *     not (a destructor, a client going away);
 *   - a bad index or offset from Python (a caller bug) raises SegmentError
 *     or ValueError without marking anything broken.
 * Every index and offset coming from Python or read back from shared memory
 * is checked against the private layout copy before it is used; checks are
 * written as subtractions (`off <= size - n`) so they cannot overflow.
 */
#ifndef SHMRT_CORE_H
#define SHMRT_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "layout.h"

typedef struct {
    PyObject_HEAD
    layout_t L;
    int fd;
    int closed;
    Py_ssize_t exports; /* live BlobViews / buffer exports */
    u64 pid;            /* getpid() at mapping time: begin() stamps it per task */
    u64 *busy;          /* this process's section counter in its own record, once it
                         * has one (section.h); NULL before and after */
    u64 *units;         /* a client's relay budget units in hand (client_t.units) */
    holds_t *holds;     /* the arena blocks this process holds: its record's table
                         * (holds.h), set with busy; NULL: untracked references */
    u64 release_cid;    /* client id + 1 whose release waits for the last hold to go */
} SegmentObject;

extern PyObject *SegmentError;

/* ---- bounds-checked accessors (return NULL when out of bounds) ---------- */
static inline header_t *HDR(SegmentObject *s) { return (header_t *)s->L.base; }

static inline worker_t *worker_at(SegmentObject *s, u64 wid) {
    if (wid >= s->L.n_workers) return NULL;
    return (worker_t *)(s->L.base + s->L.workers_off + wid * sizeof(worker_t));
}
static inline local_queue_t *queue_at(SegmentObject *s, u64 wid) {
    if (wid >= s->L.n_workers) return NULL;
    return (local_queue_t *)(s->L.base + s->L.queues_off + wid * sizeof(local_queue_t));
}
static inline slot_t *slot_at(SegmentObject *s, u64 idx) {
    if (idx >= s->L.n_slots) return NULL;
    return (slot_t *)(s->L.base + s->L.slots_off + idx * s->L.slot_size);
}
static inline client_t *client_at(SegmentObject *s, u64 cid) {
    if (cid >= s->L.n_clients) return NULL;
    return (client_t *)(s->L.base + s->L.clients_off + cid * s->L.client_stride);
}
static inline func_t *func_at(SegmentObject *s, u64 fid) {
    if (fid >= s->L.n_funcs) return NULL;
    return (func_t *)(s->L.base + s->L.funcs_off + fid * sizeof(func_t));
}
static inline ring_t *inject_ring(SegmentObject *s) {
    return (ring_t *)(s->L.base + s->L.inject_off);
}
static inline char *slot_payload(SegmentObject *s, slot_t *sl) {
    return (char *)sl + SLOT_HEADER_SIZE;
}
static inline u64 payload_cap(SegmentObject *s) { return s->L.slot_size - SLOT_HEADER_SIZE; }

/* ---- segment.c: the Segment object ---------------------------------------- */
extern PyTypeObject Segment_Type;
int seg_check_open(SegmentObject *s, int need_write); /* raising (see the top) */
u64 now_ns(void);
int futex_wait_u32(u64 *word, u32 expected, double timeout_s);
int futex_wake_u32(u64 *word, int n);
/* What a new segment's shared structures need before anyone else maps it
 * (the run queues, the relay region): set by module.c, which knows the
 * units that own them; segment.c only creates and validates. */
extern int (*seg_init_structures)(SegmentObject *s);

/* ---- broken.c: the one way corruption is reported ------------------------ *
 * A failed check on shared memory marks the runtime broken (first reason
 * wins, everyone woken); seg_corrupt also sets SegmentError and returns NULL,
 * for `return seg_corrupt(s, "region: detail", ...)` in a wrapper.  Reasons
 * start with the region: "inject ring: ...", "slot 17: ...", "arena: ...". */
int seg_mark_broken(SegmentObject *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
PyObject *seg_corrupt(SegmentObject *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int seg_broken(SegmentObject *s);
PyObject *seg_raise_broken(SegmentObject *s);
void seg_wake_everyone(SegmentObject *s);
int ring_check_head(SegmentObject *s, ring_t *r, u64 cap, const char *what);

#endif
