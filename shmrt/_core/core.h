/*
 * core.h -- the Segment object and the internal API shared by the C files.
 *
 * Error convention (one, everywhere): a C helper returns a small status code
 * (>= 0 success, < 0 failure) and never raises; the Python-facing wrapper turns
 * a failure into an exception (SegmentError for a bad index or offset, i.e.
 * something that could only come from corrupt shared memory or a caller bug).
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

extern PyTypeObject Segment_Type;
extern PyTypeObject BlobView_Type;
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

/* ---- helpers implemented in segment.c ---------------------------------- */
int seg_check_open(SegmentObject *s, int need_write);
u64 now_ns(void);
int futex_wait_u32(u64 *word, u32 expected, double timeout_s);
int futex_wake_u32(u64 *word, int n);

/* ---- sched.c ----------------------------------------------------------- */
extern PyMethodDef sched_methods[];
int sched_init_structures(SegmentObject *s);
long ring_pop(ring_t *r, u64 cap);
int ring_push(ring_t *r, u64 cap, u64 val);

/* ---- task.c / admin.c --------------------------------------------------- */
extern PyMethodDef task_methods[];
extern PyMethodDef admin_methods[];
int drop_ref(SegmentObject *s, u64 idx);
int drop_handle_ref(SegmentObject *s, u64 idx);
slot_t *slot_for_key(SegmentObject *s, unsigned long long key, u64 *idx);
slot_t *slot_of_key_arg(SegmentObject *s, PyObject *arg, int need_write, u64 *idx);
int complete_slot(SegmentObject *s, u64 idx, slot_t *sl, u64 status, Py_buffer *b,
                  long long result_blob);
int sched_notify(SegmentObject *s);
PyObject *blobview_new(SegmentObject *s, u64 off);
PyObject *blobview_slot(SegmentObject *s, u64 idx, u64 off, const char *what);

/* ---- relay.c ----------------------------------------------------------- */
extern PyMethodDef relay_methods[];
int relay_init(SegmentObject *s);
int relay_deliver(SegmentObject *s, u64 idx, slot_t *sl);
send_t *relay_send_at(SegmentObject *s, u64 i);
ring_t *relay_ring_of(send_t *t);
ring_t *relay_waitlist_of(SegmentObject *s, send_t *t);
void relay_wake_all(SegmentObject *s);

/* ---- broken.c ---------------------------------------------------------- *
 * A failed check on shared memory marks the runtime broken (first reason
 * wins, everyone woken); seg_corrupt also sets SegmentError and returns NULL,
 * for `return seg_corrupt(s, "region: detail", ...)` in a wrapper.  Reasons
 * start with the region: "inject ring: ...", "slot 17: ...", "arena: ...". */
extern PyMethodDef broken_methods[];
int seg_mark_broken(SegmentObject *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
PyObject *seg_corrupt(SegmentObject *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int seg_broken(SegmentObject *s);
PyObject *seg_raise_broken(SegmentObject *s);
void seg_wake_everyone(SegmentObject *s);
int ring_check_head(SegmentObject *s, ring_t *r, u64 cap, const char *what);

/* ---- kill.c ------------------------------------------------------------ */
extern PyMethodDef kill_methods[];

/* ---- reclaim.c --------------------------------------------------------- */
extern PyMethodDef reclaim_methods[];
void slot_release_blobs(SegmentObject *s, slot_t *sl);

/* ---- arena.c ----------------------------------------------------------- */
extern PyMethodDef arena_methods[];
int arena_release_block(SegmentObject *s, u64 off);
u64 arena_class_size(u64 cls); /* bytes of a block of size class cls (header included) */
long long arena_alloc_block(SegmentObject *s, u64 len);
char *arena_block_data(SegmentObject *s, u64 off, u64 *len_out);
int arena_give(SegmentObject *s, long long off, const char *what);
int arena_check_held(SegmentObject *s, long long off, const char *what);
void arena_set_holds(SegmentObject *s, holds_t *t);

/* ---- admin.c ----------------------------------------------------------- */
void client_release_finish(SegmentObject *s);

#endif
