/*
 * coord.h -- the runtime around the protocols, for the crash scenarios.
 *
 * The real crash reclaim (shmrt/_core/reclaim.h) recomputes everything from
 * the slots' state words, owners, holders and the workers' `taking` words,
 * so a scenario's block must carry them as the runtime would: a task popped
 * is begun (task.c T_begin), a task run is completed and delivered
 * (complete_slot), a handle is dropped as harvest / join_poll drop it.  The
 * tk_* helpers here do task.c's part of a step on a slot inside chk_atomic:
 * no scheduling point, like the rest of a section for the reclaim (it never
 * runs inside a live process's step).  What a scenario explores -- the
 * protocol of its header -- stays real accesses.
 *
 * After a schedule with a crash, chk_reclaim runs reclaim.h on the block
 * with the dead threads' processes (stop_world finds nobody inside a step:
 * the survivors have finished or sleep; then reclaim_stopped, start_world
 * and the wake-up), and chk_coord_task does what pool.py does with each
 * task the reclaim returns (retry or crash_task).
 */
#ifndef CHK_COORD_H
#define CHK_COORD_H

#include "explore.h"
#include "freestack.h"
#include "park.h"
#include "reclaim.h"
#include "sendq.h"
#include "state.h"
#include "wake.h"

#define CHK_PROCS 4 /* workers, clients, send workers a scenario may name */
typedef struct {
    unsigned char w[CHK_PROCS], c[CHK_PROCS], s[CHK_PROCS];
} chk_dead_t;

#define CHK_RUNNING_MAX 8
typedef struct {
    reclaim_counts_t n;
    reclaim_task_t running[CHK_RUNNING_MAX];
} chk_reclaimed_t;

/* The coordinator's reclaim for these dead processes; a segment it refuses
 * (validation failed) fails the schedule. */
void chk_reclaim(const chk_dead_t *d, chk_reclaimed_t *out);

/* Is slot idx among the tasks the reclaim returned? */
static inline int chk_returned(const chk_reclaimed_t *r, u64 idx) {
    for (u64 i = 0; i < r->n.running && i < CHK_RUNNING_MAX; i++)
        if ((r->running[i].key & 0xffffffffULL) == idx) return 1;
    return 0;
}

/* ---- task.c's steps on a slot -------------------------------------------- */
/* setup: slots [0, n) carved (in use or on the free stack). */
static inline void tk_carve(u64 n) {
    header_t *h = lay_hdr(&chk_L);
    h->slots_carved = n;
    h->free_count = chk_L.n_slots - n;
}

/* setup: slot idx filled for holder with this state word (slot_fill: gen 1,
 * no retries). */
static inline void tk_fill(u64 idx, u64 state, u64 holder) {
    slot_t *sl = lay_slot(&chk_L, idx);
    sl->gen = 1;
    sl->holder = holder;
    sl->attempts = 0;
    sl->state = state;
}

/* setup: slot idx is RUNNING on worker wid (begun once). */
static inline void tk_running_on(u64 idx, u64 wid) {
    slot_t *sl = lay_slot(&chk_L, idx);
    sl->owner = (CHK_PID_WORKER(wid) << 32) | (wid + 1);
    sl->attempts = 1;
}

/* drop_ref (or drop_handle_ref): the last reference frees the slot
 * (slot_free). */
static inline tr_t tk_dropped(u64 idx, tr_t r) {
    slot_t *sl = lay_slot(&chk_L, idx);
    CHK_ASSERT(r != TR_INVALID, "slot %llu: a reference dropped below zero", (unsigned long long)idx);
    if (r == TR_LAST_REF) {
        STORE_RLX(&sl->owner, 0);
        slots_push_free(&chk_L, idx);
    }
    return r;
}
static inline tr_t tk_ref_dec(u64 idx) { return tk_dropped(idx, ref_dec(&lay_slot(&chk_L, idx)->state)); }

/* T_begin: taking cleared, owner stored, NOTIFIED -> RUNNING; a cancelled
 * task is dropped.  TR_OK or TR_CANCELLED. */
static inline tr_t tk_begin(u64 wid, u64 idx) {
    const layout_t *L = &chk_L;
    slot_t *sl = lay_slot(L, idx);
    chk_atomic(1);
    STORE_RLX(&lay_worker(L, wid)->taking, 0);
    STORE_RLX(&sl->owner, (CHK_PID_WORKER(wid) << 32) | (wid + 1));
    tr_t r = transition_to_running(&sl->state);
    if (r == TR_OK) sl->attempts += 1;
    if (r == TR_CANCELLED) tk_ref_dec(idx);
    chk_atomic(0);
    CHK_ASSERT(r == TR_OK || r == TR_CANCELLED, "worker %llu cannot begin slot %llu (state %#llx)",
               (unsigned long long)wid, (unsigned long long)idx, (unsigned long long)sl->state);
    return r;
}

/* complete_slot's transition: RUNNING -> COMPLETE; returns the word before. */
static inline u64 tk_complete(u64 idx) {
    u64 prev = 0;
    chk_atomic(1);
    tr_t r = transition_to_complete(&lay_slot(&chk_L, idx)->state, &prev);
    chk_atomic(0);
    CHK_ASSERT(r == TR_OK, "slot %llu cannot complete (state %#llx)", (unsigned long long)idx,
               (unsigned long long)lay_slot(&chk_L, idx)->state);
    return prev;
}

/* task.c deliver: the completed task to whoever holds its handle. */
static inline void tk_deliver(u64 idx, u64 prev) {
    const layout_t *L = &chk_L;
    slot_t *sl = lay_slot(L, idx);
    u64 holder = sl->holder;
    if (!(prev & S_JOIN_INTEREST)) return; /* nobody wants it */
    if (holder == HOLDER_RELAY)
        sendq_deliver(L, sendq_of_flow(L, sl->flow), idx);
    else if ((holder & ~0xffffULL) == HOLDER_WORKER)
        join_wake(lay_worker(L, holder & 0xffff), prev);
    else
        client_deliver(lay_client(L, holder), L->inject_cap, idx);
}

/* complete_slot's last step: drop the scheduler's reference. */
static inline void tk_drop(u64 idx) {
    chk_atomic(1);
    tk_ref_dec(idx);
    chk_atomic(0);
}

/* The holder drops its handle after taking the result (harvest,
 * join_poll, relay_done: task.c drop_handle_ref, state.h drop_handle). */
static inline void tk_drop_handle(u64 idx) {
    chk_atomic(1);
    tk_dropped(idx, drop_handle(&lay_slot(&chk_L, idx)->state));
    chk_atomic(0);
}

/* pool.py's _worker_died with a task the reclaim returned: retry
 * (retry_task: RUNNING -> NOTIFIED, owner 0, push inject) when attempts <=
 * max_retries and its holder is not the dead worker itself, else crash_task
 * (complete_slot: COMPLETE, deliver, drop the scheduler's reference).
 * Returns 1 when it was crashed, 0 when retried. */
static inline int chk_coord_task(const reclaim_task_t *t, const chk_dead_t *d) {
    const layout_t *L = &chk_L;
    u64 idx = t->key & 0xffffffffULL;
    slot_t *sl = lay_slot(L, idx);
    int orphan = (t->holder & ~0xffffULL) == HOLDER_WORKER && (t->holder & 0xffff) < CHK_PROCS &&
                 d->w[t->holder & 0xffff];
    if (t->attempts <= t->max_retries && !orphan) {
        CHK_ASSERT(transition_to_notified_retry(&sl->state) == TR_OK, "retry: slot %llu not running",
                   (unsigned long long)idx);
        sl->owner = 0;
        ring_push_inl(lay_inject(L), L->inject_cap, idx);
        return 0;
    }
    u64 prev = tk_complete(idx);
    tk_deliver(idx, prev);
    tk_drop(idx);
    return 1;
}

#endif
