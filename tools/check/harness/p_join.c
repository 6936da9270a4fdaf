/*
 * p_join.c -- the join wake: set_join_waker (state.h), the completer's
 * join_wake and the joiner's park with its child's state word (park.h),
 * driven by cpu.py's Worker.join (worker_model.h).
 *
 *   T0: worker 0 joins child slot 0 (RUNNING on worker 1): poll COMPLETE;
 *       help (find); register JOIN_WAKER; park with the child; when the join
 *       returns, give back a searching slot it got by a notify, and drop
 *       the handle (join_poll: drop_handle)
 *   T1: worker 1 completes the child (to_complete, join_wake, drop its
 *       ref), then runs its loop
 *   T2: a client submits task 1 to inject and notifies (so the joiner can
 *       be notified -- and counted searching -- while it waits)
 *
 * The child is slot 0, spawned by worker 0 (its handle) and RUNNING on
 * worker 1; task 1 is client 0's (NOTIFIED, filled at setup).
 *
 * Invariants: no lost wakeup (a sleeping joiner's child is not COMPLETE; a
 * sleeping worker sees no work); the join returns; the child keeps no
 * reference at the end (with a crash too); task 1 is taken exactly once;
 * when T0 is back in user code it holds no searching count, and the idle
 * word's searching count equals the workers still searching.
 * Mutants: SHMRT_MUTANT_JOIN_NO_RECHECK (park.h: the joiner's re-check of
 * COMPLETE after reading park_seq, 4354918) and SHMRT_MUTANT_JOIN_KEEPS_SEARCH
 * (worker_model.h: the searching slot kept after a join, 4354918), and
 * SHMRT_MUTANT_LAST_SEARCHER_SILENT (park.h: bug 3, fixed in 44178b1).
 * Crashes: the real reclaim (reclaim.h) with the dead thread's process
 * (T0, T1 workers 0 and 1; T2 client 0), then pool.py's part: a task the
 * dead worker was running is completed as crashed (crash_task, which wakes
 * the joiner); a dead joiner's handle is dropped by the reclaim.
 */
#include "worker_model.h"

static ghost_t G;
static wm_t M[2];
static u64 *CHILD;
static int joined;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = 4, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    const layout_t *L = &chk_L;
    tk_carve(2);
    tk_fill(0, S_RUNNING | S_JOIN_INTEREST | 2 * REF_ONE, HOLDER_WORKER | 0); /* the child */
    tk_running_on(0, 1);
    tk_fill(1, STATE_INITIAL, 0); /* client 0's task 1 */
    lay_hdr(L)->idle = 2 * IDLE_UNPARK_ONE;
    for (u64 i = 0; i < 2; i++) {
        lay_worker(L, i)->state = W_RUNNING;
        M[i] = (wm_t){i, 0, 0};
    }
    CHILD = &lay_slot(L, 0)->state;
    chk_name(CHILD, 8, "child.state");
    chk_name(&lay_hdr(L)->idle, 8, "idle");
    chk_name(&lay_worker(L, 0)->state, 8, "w0.state");
    chk_name(&lay_worker(L, 1)->state, 8, "w1.state");
    chk_name(&lay_worker(L, 0)->park_seq, 8, "w0.park_seq");
    chk_name(&lay_worker(L, 1)->park_seq, 8, "w1.park_seq");
    chk_name(lay_inject(L)->cells, 8 * L->inject_cap, "inject.cell");
    gh_reset(&G);
    joined = 0;
}

/* Worker.join(key) */
static void join(wm_t *m) {
    for (int round = 0; round < 8; round++) {
        if (LOAD_ACQ(CHILD) & S_COMPLETE) { /* join_poll: pairs with complete's release */
#ifndef SHMRT_MUTANT_JOIN_KEEPS_SEARCH
            if (m->searching) { /* back to user code: give the searching slot back */
                m->searching = 0;
                search_end(&chk_L, m->wid, 1, &m->rot);
            }
#endif
            drop_handle(CHILD); /* join_poll: the handle's reference, with its interest */
            joined = 1;
            return;
        }
        long idx = wm_find(m); /* help_once */
        if (idx >= 0) {
            wm_take(m, &G, chk_tid(), idx);
            continue;
        }
        if (set_join_waker(CHILD) != TR_OK) continue; /* completed meanwhile */
        wm_park(m, CHILD);
    }
    chk_fail("the join did not return in 8 rounds");
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid == 0) {
        join(&M[0]);
    } else if (tid == 1) {
        u64 prev = 0;
        CHK_ASSERT(transition_to_complete(CHILD, &prev) == TR_OK, "to_complete refused");
        join_wake(lay_worker(L, 0), prev);
        ref_dec(CHILD); /* the scheduler's reference */
        wm_loop(&M[1], &G, 1, 4);
    } else {
        ring_push_inl(lay_inject(L), L->inject_cap, 1);
        u64 rot = 0;
        park_notify(L, &rot);
    }
}

/* T0 and T1 are workers 0 and 1, T2 is client 0. */
static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    d.w[0] = dead & 1;
    d.w[1] = (dead >> 1) & 1;
    d.c[0] = (dead >> 2) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    for (u64 i = 0; i < r.n.running; i++) chk_coord_task(&r.running[i], &d); /* pool.py */
    if (dead & 1) {
        joined = 1; /* its join is over */
        M[0].searching = 0;
    }
    if (dead & 2) M[1].searching = 0;
}

static int should_wake(int tid) {
    if (tid == 0 && (*CHILD & S_COMPLETE)) return 1;
    return tid < 2 && wm_work_visible();
}

static void check(unsigned dead) {
    const layout_t *L = &chk_L;
    CHK_ASSERT(joined, "the join never returned");
    /* no leak: the handle and the scheduler dropped theirs, or the reclaim
     * and crash_task did it for the dead */
    CHK_ASSERT(st_refs(*CHILD) == 0, "child keeps %llu refs", (unsigned long long)st_refs(*CHILD));
    ghost_t g = G;
    gh_count_took(&g, 3);
    long v;
    while ((v = ring_pop_inl(lay_inject(L), L->inject_cap)) >= 0) gh_seen(&g, v, "inject");
    CHK_ASSERT(g.seen[1] == 1 || (dead && g.seen[1] == 0), "task 1 taken or queued %d times", g.seen[1]);
    CHK_ASSERT(!M[0].searching, "the joiner went back to user code holding a searching slot");
    if (dead) return; /* the rebuilt idle word is checked by the park scenario */
    u64 idle = lay_hdr(L)->idle, searching = 0;
    for (int t = 0; t < 2; t++) /* a sleeper gave its count back when it parked */
        searching += !chk_blocked(t) && M[t].searching;
    CHK_ASSERT((idle & IDLE_SEARCH_MASK) == searching, "idle counts %llu searching, %llu search",
               (unsigned long long)(idle & IDLE_SEARCH_MASK), (unsigned long long)searching);
}

const chk_proto_t chk_proto_join = {
    .name = "join",
    .about = "join waker: set_join_waker, completer's wake, joiner's park (state.h, park.h, cpu.py join)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .should_wake = should_wake,
    .reclaim = reclaim,
    .check = check,
};
