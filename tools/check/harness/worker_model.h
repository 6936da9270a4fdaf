/*
 * worker_model.h -- the scheduling policy of workers/cpu.py (Worker.find,
 * Worker.loop, Worker.join), transcribed over the C protocol headers so that
 * the park and join scenarios drive the real park.h / runq.h code in the
 * order the Python worker calls it.  The Python-only parts (running the
 * task, the periodic inject check, helping depth) are left out.
 *
 * A task found is taken: recorded (ghost) and begun (task.c's T_begin,
 * atomic: RUNNING, owned by this worker), so that the crash reclaim sees it
 * where the runtime would have it.
 *
 * SHMRT_MUTANT_JOIN_KEEPS_SEARCH: a join that returns does not give back the
 * searching slot it got by being notified while parked (the leak fixed in
 * 4354918, which lives in cpu.py's join and so is re-introduced here).
 */
#ifndef CHK_WORKER_MODEL_H
#define CHK_WORKER_MODEL_H

#include "coord.h"
#include "ghost.h"
#include "park.h"
#include "runq.h"

typedef struct {
    u64 wid;
    int searching;
    u64 rot;
} wm_t;

/* Worker.find: LIFO, local queue, inject, then search (steal, inject). */
static inline long wm_find(wm_t *m) {
    const layout_t *L = &chk_L;
    long idx = -1;
    u64 l = runq_take_lifo(L, m->wid);
    if (l) idx = (long)l - 1;
    if (idx < 0) idx = lq_pop(lay_queue(L, m->wid), L->local_cap);
    if (idx < 0) idx = ring_pop_inl(lay_inject(L), L->inject_cap); /* refill */
    if (idx < 0 && L->n_workers > 1) {
        if (!m->searching) m->searching = search_try(L, m->wid);
        if (m->searching) {
            int batch;
            for (u64 k = 0; idx < 0 && k < L->n_workers; k++)
                if (k != m->wid) idx = runq_steal(L, m->wid, k, &batch);
            if (idx < 0) idx = ring_pop_inl(lay_inject(L), L->inject_cap);
        }
    }
    if (idx >= 0 && m->searching) {
        m->searching = 0;
        u64 h = LOAD_ACQ(&lay_queue(L, m->wid)->head);
        u32 len = (u32)LOAD_ACQ(&lay_queue(L, m->wid)->tail) - head_real(h);
        search_end(L, m->wid, len > 0, &m->rot);
    }
    return idx;
}

/* The worker takes task idx: the ghost records it, T_begin begins it. */
static inline void wm_take(wm_t *m, ghost_t *g, int tid, long idx) {
    gh_took(g, tid, idx);
    if (idx >= 0 && (u64)idx < chk_L.n_slots) tk_begin(m->wid, (u64)idx);
}

/* Worker.park */
static inline int wm_park(wm_t *m, u64 *joined) {
    int r = park_sleep(&chk_L, m->wid, m->searching, joined, 0.05);
    m->searching = r == PARK_NOTIFIED;
    return r;
}

/* Worker.loop, bounded: take up to `rounds` tasks or parks (no timeouts are
 * modelled, so a park ends only by a notify or a self-unpark). */
static inline void wm_loop(wm_t *m, ghost_t *g, int tid, int rounds) {
    for (int i = 0; i < rounds; i++) {
        long idx = wm_find(m);
        if (idx >= 0) {
            wm_take(m, g, tid, idx);
            continue;
        }
        if (LOAD_RLX(&lay_hdr(&chk_L)->run_state) != RUN_RUNNING) return;
        wm_park(m, NULL);
    }
}

/* Is any task visible anywhere (a sleeping worker's wake condition when
 * nothing else can run)? */
static inline int wm_work_visible(void) {
    const layout_t *L = &chk_L;
    if (ring_nonempty(lay_inject(L), L->inject_cap)) return 1;
    for (u64 i = 0; i < L->n_workers; i++) {
        if (lay_worker(L, i)->lifo) return 1;
        local_queue_t *q = lay_queue(L, i);
        if ((u32)q->tail != head_real(q->head)) return 1;
    }
    return 0;
}

#endif
