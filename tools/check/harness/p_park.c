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
 * Task 0 is a task worker 2 spawns (its handle), task 1 one client 0
 * submits; both filled (NOTIFIED) at setup.
 * Crashes: the real reclaim (reclaim.h): a dead worker's queues are
 * emptied and their tasks (and a task popped and never begun) go back to
 * inject, what it had begun is returned to the coordinator, and the idle
 * word is rebuilt from the workers' states (a dead worker counts as
 * unparked: its replacement takes over the count).  Worker 2 (T2) is a
 * worker running user code, so if it dies its queue is emptied too.
 * Mutants: SHMRT_MUTANT_PARK_SEQ_LATE (park.h: bug 2, fixed in 44178b1) and
 * SHMRT_MUTANT_RECLAIM_WORKER_DEAD (reclaim.h: the idle word fixed up from
 * the state a dead worker died in, as admin.c's worker_dead did; with a
 * crash).
 */
#include "worker_model.h"

#define NTASK 2
static ghost_t G;
static wm_t M[3];

static void setup(void) {
    chk_cfg_t c = {.n_workers = 3, .n_slots = 4, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    const layout_t *L = &chk_L;
    tk_carve(NTASK);
    tk_fill(0, STATE_INITIAL, HOLDER_WORKER | 2); /* spawned by worker 2 */
    tk_fill(1, STATE_INITIAL, 0);                  /* submitted by client 0 */
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
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid < 2) {
        wm_loop(&M[tid], &G, tid, 6);
        return;
    }
    runq_push_local(L, 2, 0); /* spawn */
    park_notify(L, &M[2].rot);
    ring_push_inl(lay_inject(L), L->inject_cap, 1); /* submit */
    park_notify(L, &M[2].rot);
}

static int should_wake(int tid) { return tid < 2 && wm_work_visible(); }

/* Threads are workers 0-2. */
static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    for (int t = 0; t < 3; t++) d.w[t] = (dead >> t) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    int n = 0; /* it returns exactly what the dead had begun: theirs, taken once */
    for (int t = 0; t < 3; t++)
        if ((dead >> t) & 1)
            for (int i = 0; i < G.ntook[t]; i++, n++)
                CHK_ASSERT(chk_returned(&r, (u64)G.took[t][i]), "task %d begun by dead T%d not returned",
                           G.took[t][i], t);
    CHK_ASSERT(r.n.running == (u64)n, "the reclaim returned %llu tasks, the dead began %d",
               (unsigned long long)r.n.running, n);
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
