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
 *   T2 refill (worker 2): pop inject twice
 *
 * The 6 tasks are queued tasks of client 0 (slots 0-5, NOTIFIED, filled at
 * setup); a thread that takes one begins it (task.c, atomic here: RUNNING,
 * owned by its worker).
 * Invariant: each of the 6 tasks is taken by exactly one thread or still
 * queued (local queues, LIFO slots, inject) exactly once.
 * Crashes: the real reclaim (reclaim.h): a dead owner's queues are emptied,
 * a dead thief's victim left mid-steal (steal != real) gets the steal's last
 * step (steal = real), and every queued task found nowhere (the batch the
 * thief held, a task popped and not begun) goes back to inject; what a dead
 * thread had begun is returned to the coordinator (it counts as taken by
 * that thread: it is the coordinator's to retry or fail, once).
 * SHMRT_MUTANT_RECLAIM_UNCLAIM (reclaim.h) instead un-claims the batch (head
 * = (steal, steal)), as the reclaim's first draft did.
 */
#include "coord.h"
#include "ghost.h"
#include "queue.h"
#include "runq.h"

#define NTASK 6
static ghost_t G;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 3, .n_slots = NTASK, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    tk_carve(NTASK);
    for (u64 v = 0; v < NTASK; v++) tk_fill(v, STATE_INITIAL, 0);
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

/* Thread tid (worker tid) takes task v: records it, begins it. */
static void take(int tid, long v) {
    if (v < 0) return;
    gh_took(&G, tid, v);
    if (v < NTASK) tk_begin((u64)tid, (u64)v);
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
    for (u64 w = 0; w < 3; w++) {
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

/* Threads are workers 0-2. */
static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    for (int t = 0; t < 3; t++) d.w[t] = (dead >> t) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    /* what it returns is exactly what the dead had taken (and begun) */
    int n = 0;
    for (int t = 0; t < 3; t++)
        if ((dead >> t) & 1)
            for (int i = 0; i < G.ntook[t]; i++, n++)
                CHK_ASSERT(chk_returned(&r, (u64)G.took[t][i]), "task %d begun by dead T%d not returned",
                           G.took[t][i], t);
    CHK_ASSERT(r.n.running == (u64)n, "the reclaim returned %llu tasks, the dead began %d",
               (unsigned long long)r.n.running, n);
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
