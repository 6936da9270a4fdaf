/*
 * p_localq.c -- a worker's run queues (runq.h over queue.h): local queue of
 * capacity 4, push / pop, steal-half, overflow to inject, the stealable LIFO
 * slot.
 *
 *   T0 owner (worker 0):  lifo 0; local 1 2 3 4 (full); lifo 5 (0 goes to
 *                         the full queue: 1, 2 and 0 overflow to inject);
 *                         take lifo; pop; pop
 *   T1 thief (worker 1):  steal from worker 0 (half, or the LIFO slot when
 *                         the queue is empty); pop its own queue dry
 *   T2 refill:            pop inject twice
 *
 * Invariant: each of the 6 tasks is taken by exactly one thread or still
 * queued (local queues, LIFO slots, inject) exactly once.
 * Crashes: a dead owner's queues are drained to inject (runq_drain); a dead
 * thief's victim is left mid-steal (steal != real): the reclaim finishes
 * the steal's last step (steal = real), and every task found nowhere (the
 * batch the thief held) goes back to inject -- the recompute-from-state
 * rule of the crash reclaim, with the ghost standing in for state words.
 * SHMRT_MUTANT_RECLAIM_UNCLAIM instead un-claims the batch (head = (steal,
 * steal)), as reclaim.c's first draft did.
 */
#include <string.h>

#include "ghost.h"
#include "queue.h"
#include "runq.h"

#define NTASK 6
static ghost_t G;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = NTASK, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    ring_init(lay_inject(&chk_L), chk_L.inject_cap);
    chk_name(&lay_queue(&chk_L, 0)->head, 8, "q0.head");
    chk_name(&lay_queue(&chk_L, 0)->tail, 8, "q0.tail");
    chk_name(lay_queue(&chk_L, 0)->buf, 4 * LOCAL_CAP_MAX, "q0.buf");
    chk_name(&lay_queue(&chk_L, 1)->head, 8, "q1.head");
    chk_name(&lay_queue(&chk_L, 1)->tail, 8, "q1.tail");
    chk_name(lay_queue(&chk_L, 1)->buf, 4 * LOCAL_CAP_MAX, "q1.buf");
    chk_name(&lay_worker(&chk_L, 0)->lifo, 8, "w0.lifo");
    chk_name(&lay_worker(&chk_L, 1)->lifo, 8, "w1.lifo");
    chk_name(&lay_inject(&chk_L)->enq, 8, "inject.enq");
    chk_name(&lay_inject(&chk_L)->deq, 8, "inject.deq");
    chk_name(lay_inject(&chk_L)->cells, 8 * chk_L.inject_cap, "inject.cell");
    gh_reset(&G);
}

static void take(int tid, long v) {
    if (v >= 0) gh_took(&G, tid, v);
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid == 0) {
        runq_push_lifo(L, 0, 0);
        for (u32 i = 1; i <= 4; i++) runq_push_local(L, 0, i);
        runq_push_lifo(L, 0, 5);
        u64 l = runq_take_lifo(L, 0);
        if (l) take(0, (long)l - 1);
        take(0, lq_pop(lay_queue(L, 0), L->local_cap));
        take(0, lq_pop(lay_queue(L, 0), L->local_cap));
    } else if (tid == 1) {
        int batch;
        take(1, runq_steal(L, 1, 0, &batch));
        long v;
        while ((v = lq_pop(lay_queue(L, 1), L->local_cap)) >= 0) take(1, v);
    } else {
        take(2, ring_pop_inl(lay_inject(L), L->inject_cap));
        take(2, ring_pop_inl(lay_inject(L), L->inject_cap));
    }
}

/* Collect what is still queued (single-threaded, at the end). */
static void count_queued(ghost_t *g) {
    const layout_t *L = &chk_L;
    for (u64 w = 0; w < 2; w++) {
        u64 l = LOAD_RLX(&lay_worker(L, w)->lifo);
        if (l) gh_seen(g, (long)l - 1, "a LIFO slot");
        local_queue_t *q = lay_queue(L, w);
        u64 h = LOAD_RLX(&q->head);
        CHK_ASSERT(head_steal(h) == head_real(h), "worker %llu's queue left mid-steal", (unsigned long long)w);
        long v;
        while ((v = lq_pop(q, L->local_cap)) >= 0) gh_seen(g, v, "a local queue");
    }
    long v;
    while ((v = ring_pop_inl(lay_inject(L), L->inject_cap)) >= 0) gh_seen(g, v, "inject");
}

static void reclaim(unsigned dead) {
    const layout_t *L = &chk_L;
    if (dead & 1) runq_drain(L, 0); /* dead owner */
    if (dead & 2) runq_drain(L, 1);
    for (u64 w = 0; w < 2; w++) { /* a queue left mid-steal by a dead thief */
        local_queue_t *q = lay_queue(L, w);
        u64 h = LOAD_RLX(&q->head);
        if (head_steal(h) != head_real(h)) {
#ifdef SHMRT_MUTANT_RECLAIM_UNCLAIM
            STORE_REL(&q->head, head_pack(head_steal(h), head_steal(h)));
#else
            STORE_REL(&q->head, head_pack(head_real(h), head_real(h)));
#endif
        }
    }
    /* orphans: tasks neither taken by a live thread nor queued anywhere */
    ghost_t g = G;
    memset(g.seen, 0, sizeof g.seen);
    for (int t = 0; t < 3; t++)
        if (!((dead >> t) & 1))
            for (int i = 0; i < g.ntook[t]; i++) g.seen[g.took[t][i]]++;
    /* a look without disturbing the queues: walk them */
    for (u64 w = 0; w < 2; w++) {
        u64 l = LOAD_RLX(&lay_worker(L, w)->lifo);
        if (l && l - 1 < NTASK) g.seen[l - 1]++;
        local_queue_t *q = lay_queue(L, w);
        u32 real = head_real(LOAD_RLX(&q->head)), tail = (u32)LOAD_RLX(&q->tail);
        for (u32 p = real; p != tail && tail - real <= L->local_cap; p++) {
            u32 v = LOAD_RLX(&q->buf[p & (L->local_cap - 1)]);
            if (v < NTASK) g.seen[v]++;
        }
    }
    ring_t *r = lay_inject(L);
    u64 pos = LOAD_RLX(&r->deq);
    for (u64 i = 0; i < L->inject_cap; i++, pos++) {
        u64 w = LOAD_RLX(&r->cells[pos & (L->inject_cap - 1)]);
        int32_t d = seq_diff(cell_seq(w), pos + 1);
        if (d == 0 && (w & RING_VAL_MASK) < NTASK) g.seen[w & RING_VAL_MASK]++;
        else if ((u64)d != L->inject_cap - 1) break;
    }
    for (int v = 0; v < NTASK; v++)
        if (!g.seen[v]) ring_push_inl(r, L->inject_cap, (u64)v);
    /* what the dead took is theirs no more */
    for (int t = 0; t < 3; t++)
        if ((dead >> t) & 1) G.ntook[t] = 0;
}

static void check(unsigned dead) {
    ghost_t g = G;
    gh_count_took(&g, 3);
    count_queued(&g);
    gh_exactly_once(&g, 0, NTASK);
}

const chk_proto_t chk_proto_localq = {
    .name = "localq",
    .about = "local queue push/pop/steal-half/overflow and the stealable LIFO slot (queue.h, runq.h)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .reclaim = reclaim,
    .check = check,
};
