/*
 * runq.h -- a worker's run queues as one unit: its local queue (queue.h),
 * the overflow to the inject ring, and the stealable LIFO slot.  sched.c
 * wraps these for Python (plus the helping filter and index checks); the
 * model checker (tools/check) runs them as they are.
 *
 *   push_local   lq_push; when full, half the queue and the new task go to
 *                the inject ring (tokio's overflow)
 *   push_lifo    owner XCHG of worker.lifo; the previous occupant goes to
 *                the local queue
 *   take_lifo    owner XCHG to 0 (after a plain look: a thief may race us)
 *   steal        half of a victim's local queue into ours (queue.h); when
 *                it is empty, the victim's LIFO slot by CAS
 *
 * A dead worker's queues are the crash reclaim's (reclaim.h): it empties
 * them and re-queues their tasks from the slots' state words.
 *
 * The LIFO slot is stealable (unlike tokio's): fork-join code spawns one
 * half and computes the other inline, so the spawned half sits in the LIFO
 * slot for the whole of that computation and must be takeable by an idle
 * worker.  The owner puts and takes with an exchange, a thief takes with a
 * CAS; AcqRel pairs the thief with the owner's put (which follows the
 * slot's publication).
 *
 * Every index read back is a slot index from shared memory: callers check
 * it against n_slots before use.
 */
#ifndef SHMRT_RUNQ_H
#define SHMRT_RUNQ_H

#include "access.h"
#include "queue.h"

/* Returns the number of values the ring refused (0 unless it is corrupt:
 * its capacity covers every slot). */
static inline u32 runq_inject_many(const layout_t *L, u32 *v, u32 n) {
    u32 refused = 0;
    for (u32 i = 0; i < n; i++) refused += ring_push_inl(lay_inject(L), L->inject_cap, v[i]) != 0;
    return refused;
}

/* Push onto wid's local queue (overflow: half + this task to inject).
 * Returns the number of tasks that went to inject (0: none), or -1 when the
 * inject ring refused some (corrupt: the caller marks the runtime broken). */
static inline long runq_push_local(const layout_t *L, u64 wid, u32 idx) {
    local_queue_t *q = lay_queue(L, wid);
    u32 moved[LOCAL_CAP_MAX / 2 + 1], n = 0;
    if (lq_push(q, L->local_cap, idx, moved, &n)) {
        CRASH_POINT(CP_OVERFLOW);
        u32 refused = runq_inject_many(L, moved, n);
        COUNTER_BUMP(&lay_worker(L, wid)->overflows, 1);
        return refused ? -1 : (long)n;
    }
    return 0;
}

/* Put a task in the LIFO slot; the previous occupant goes to the queue.
 * 0, or -1 as runq_push_local. */
static inline int runq_push_lifo(const layout_t *L, u64 wid, u32 idx) {
    worker_t *w = lay_worker(L, wid);
    u64 prev = XCHG_ACQREL(&w->lifo, (u64)idx + 1); /* pairs with a thief's CAS */
    if (prev) {
        CRASH_POINT(CP_LIFO);
        return runq_push_local(L, wid, (u32)(prev - 1)) < 0 ? -1 : 0;
    }
    return 0;
}

/* Owner: empty the LIFO slot.  Returns index + 1, or 0 when it was empty. */
static inline u64 runq_take_lifo(const layout_t *L, u64 wid) {
    worker_t *w = lay_worker(L, wid);
    return LOAD_ACQ(&w->lifo) ? XCHG_ACQREL(&w->lifo, 0) : 0; /* a thief may race us */
}

/* Steal from victim into wid's queue.  Returns a slot index to run now (the
 * rest of the batch is published in our queue), or -1.  *batch: 1 when it
 * came with a batch, 0 when it is the victim's LIFO slot. */
static inline long runq_steal(const layout_t *L, u64 wid, u64 victim, int *batch) {
    worker_t *w = lay_worker(L, wid);
    local_queue_t *dst = lay_queue(L, wid), *src = lay_queue(L, victim);
    COUNTER_BUMP(&w->steal_attempts, 1);
    u64 cap = L->local_cap;
    *batch = 0;
    u32 dst_tail = (u32)LOAD_RLX(&dst->tail); /* owner-only writer: us */
    u32 dst_steal = head_steal(LOAD_ACQ(&dst->head));
    if (dst_tail - dst_steal > cap / 2) return -1;
    u32 n = lq_steal_into2(src, dst, cap, dst_tail);
    if (n == 0) { /* queue empty: take the victim's LIFO slot */
        worker_t *vw = lay_worker(L, victim);
        u64 l = LOAD_ACQ(&vw->lifo);
        if (!l || !CAS_ACQREL(&vw->lifo, &l, 0)) return -1; /* pairs with the owner's XCHG */
        COUNTER_BUMP(&w->steals, 1);
        COUNTER_BUMP(&w->stolen_tasks, 1);
        return (long)(l - 1);
    }
    CRASH_POINT(CP_STEAL_DONE);
    *batch = 1;
    n -= 1;
    long ret = (long)LOAD_RLX(&dst->buf[(dst_tail + n) & (cap - 1)]);
    if (n) STORE_REL(&dst->tail, (u64)(dst_tail + n)); /* pairs with stealers' acquire */
    COUNTER_BUMP(&w->steals, 1);
    COUNTER_BUMP(&w->stolen_tasks, n + 1);
    return ret;
}

#endif
