/*
 * p_park.c -- the idle word, park / notify and the last-searcher re-check
 * (park.h), driven by the worker policy of cpu.py (worker_model.h).
 *
 *   T0, T1: workers 0 and 1 in their loop (find: LIFO, local, inject,
 *           search + steal; else park)
 *   T2:     worker 2 inside a task: spawns task 0 into its local queue and
 *           notifies, submits task 1 to inject and notifies, then keeps
 *           running user code (never takes work again)
 *
 * Invariants: no lost wakeup (when nothing can run, no worker sleeps while a
 * task is visible in any queue); each task is taken exactly once; at the end
 * the idle word counts exactly the workers that are not parked and no
 * searcher (a leaked searching count would stop every later notify).
 * Crashes: the reclaim follows reclaim.c (below); worker 2 (T2) is a worker
 * running user code, so if it dies its queue is drained too.
 * Mutants: SHMRT_MUTANT_PARK_SEQ_LATE (park.h: bug 2, fixed in 44178b1) and
 * SHMRT_MUTANT_RECLAIM_WORKER_DEAD (below, with a crash).
 */
#include <string.h>

#include "worker_model.h"

#define NTASK 2
static ghost_t G;
static wm_t M[3];
static int published[NTASK];

static void setup(void) {
    chk_cfg_t c = {.n_workers = 3, .n_slots = 4, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    const layout_t *L = &chk_L;
    ring_init(lay_inject(L), L->inject_cap);
    lay_hdr(L)->idle = 3 * IDLE_UNPARK_ONE; /* all unparked, none searching */
    for (u64 i = 0; i < 3; i++) {
        lay_worker(L, i)->state = W_RUNNING;
        M[i] = (wm_t){i, 0, 0};
    }
    chk_name(&lay_hdr(L)->idle, 8, "idle");
    static const char *st[] = {"w0.state", "w1.state", "w2.state"};
    static const char *ps[] = {"w0.park_seq", "w1.park_seq", "w2.park_seq"};
    static const char *lf[] = {"w0.lifo", "w1.lifo", "w2.lifo"};
    static const char *qh[] = {"q0.head", "q1.head", "q2.head"};
    static const char *qt[] = {"q0.tail", "q1.tail", "q2.tail"};
    for (u64 i = 0; i < 3; i++) {
        chk_name(&lay_worker(L, i)->state, 8, st[i]);
        chk_name(&lay_worker(L, i)->park_seq, 8, ps[i]);
        chk_name(&lay_worker(L, i)->lifo, 8, lf[i]);
        chk_name(&lay_queue(L, i)->head, 8, qh[i]);
        chk_name(&lay_queue(L, i)->tail, 8, qt[i]);
    }
    chk_name(lay_inject(L)->cells, 8 * L->inject_cap, "inject.cell");
    chk_name(&lay_inject(L)->deq, 8, "inject.deq");
    chk_name(&lay_hdr(L)->run_state, 8, "run_state");
    gh_reset(&G);
    memset(published, 0, sizeof published);
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid < 2) {
        wm_loop(&M[tid], &G, tid, 6);
        return;
    }
    runq_push_local(L, 2, 0); /* spawn */
    published[0] = 1;
    park_notify(L, &M[2].rot);
    ring_push_inl(lay_inject(L), L->inject_cap, 1); /* submit */
    published[1] = 1;
    park_notify(L, &M[2].rot);
}

static int should_wake(int tid) { return tid < 2 && wm_work_visible(); }

/* reclaim.c's rules: a dead worker's queues are emptied and their tasks
 * found again as orphans (runq_drain here), tasks found nowhere go back to
 * inject, and the idle word is rebuilt from the workers' states (a dead
 * worker counts as unparked: its replacement takes over the count).
 * SHMRT_MUTANT_RECLAIM_WORKER_DEAD instead fixes the idle word up from the
 * state the worker died in (admin.c worker_dead, the coordinator's path
 * before reclaim.c). */
static void reclaim(unsigned dead) {
    const layout_t *L = &chk_L;
    for (u64 w = 0; w < 3; w++)
        if ((dead >> w) & 1) {
#ifdef SHMRT_MUTANT_RECLAIM_WORKER_DEAD
            park_worker_dead(L, w, 0);
#else
            lay_worker(L, w)->state = W_DEAD;
#endif
            runq_drain(L, w);
            G.ntook[w] = 0; /* what it held is found again below */
        }
#ifndef SHMRT_MUTANT_RECLAIM_WORKER_DEAD
    u64 parked = 0, searching = 0;
    for (u64 w = 0; w < 3; w++) {
        u64 st = lay_worker(L, w)->state;
        parked += st == W_PARKED;
        searching += st == W_SEARCHING || st == W_NOTIFIED;
    }
    lay_hdr(L)->idle = (3 - parked) * IDLE_UNPARK_ONE + searching;
#endif
    int seen[NTASK] = {0};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < G.ntook[t]; i++) seen[G.took[t][i]]++;
    for (u64 i = 0; i < 3; i++) {
        local_queue_t *q = lay_queue(L, i);
        for (u32 p = head_real(q->head); p != (u32)q->tail; p++) seen[q->buf[p & 3]]++;
        if (lay_worker(L, i)->lifo) seen[lay_worker(L, i)->lifo - 1]++;
    }
    ring_t *r = lay_inject(L);
    for (u64 p = r->deq, i = 0; i < L->inject_cap; i++, p++) {
        u64 w = r->cells[p & (L->inject_cap - 1)];
        int32_t d = seq_diff(cell_seq(w), p + 1);
        if (d == 0) seen[w & RING_VAL_MASK]++;
        else if ((u64)d != L->inject_cap - 1) break;
    }
    for (int v = 0; v < NTASK; v++)
        if (!seen[v] && (published[v] || !((dead >> 2) & 1))) ring_push_inl(r, L->inject_cap, (u64)v);
    /* a task T2 died before publishing may still be lost: it never existed */
}

static void check(unsigned dead) {
    const layout_t *L = &chk_L;
    ghost_t g = G;
    gh_count_took(&g, 3);
    while (lq_pop(lay_queue(L, 2), L->local_cap) >= 0) {} /* T2 never runs its own */
    for (int v = 0; v < NTASK; v++) {
        CHK_ASSERT(g.seen[v] <= 1, "task %d taken %d times", v, g.seen[v]);
        if (!((dead >> 2) & 1)) CHK_ASSERT(g.seen[v] == 1 || wm_work_visible(), "task %d lost", v);
    }
    u64 idle = lay_hdr(L)->idle, parked = 0, searching = 0;
    for (u64 i = 0; i < 3; i++) {
        u64 st = lay_worker(L, i)->state;
        parked += st == W_PARKED;
        searching += st == W_SEARCHING || st == W_NOTIFIED;
    }
    CHK_ASSERT((idle >> 16) == 3 - parked, "idle word counts %llu unparked, %llu workers are not parked",
               (unsigned long long)(idle >> 16), (unsigned long long)(3 - parked));
    CHK_ASSERT((idle & IDLE_SEARCH_MASK) == searching,
               "idle word counts %llu searching, %llu workers are searching",
               (unsigned long long)(idle & IDLE_SEARCH_MASK), (unsigned long long)searching);
}

const chk_proto_t chk_proto_park = {
    .name = "park",
    .about = "idle word, park / notify, last-searcher re-check (park.h, cpu.py's loop)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .should_wake = should_wake,
    .reclaim = reclaim,
    .check = check,
};
