/*
 * p_join.c -- the join wake: set_join_waker (state.h), the completer's
 * join_wake and the joiner's park with its child's state word (park.h),
 * driven by cpu.py's Worker.join (worker_model.h).
 *
 *   T0: worker 0 joins child slot 0 (RUNNING on worker 1): poll COMPLETE;
 *       help (find); register JOIN_WAKER; park with the child; when the join
 *       returns, give back a searching slot it got by a notify
 *   T1: worker 1 completes the child (to_complete, join_wake, drop its
 *       ref), then runs its loop
 *   T2: a client submits task 1 to inject and notifies (so the joiner can
 *       be notified -- and counted searching -- while it waits)
 *
 * Invariants: no lost wakeup (a sleeping joiner's child is not COMPLETE; a
 * sleeping worker sees no work); the join returns; task 1 is taken exactly
 * once; when T0 is back in user code it holds no searching count, and the
 * idle word's searching count equals the workers still searching.
 * Mutants: SHMRT_MUTANT_JOIN_NO_RECHECK (park.h: the joiner's re-check of
 * COMPLETE after reading park_seq, 4354918) and SHMRT_MUTANT_JOIN_KEEPS_SEARCH
 * (worker_model.h: the searching slot kept after a join, 4354918), and
 * SHMRT_MUTANT_LAST_SEARCHER_SILENT (park.h: bug 3, fixed in 44178b1).
 */
#include <string.h>

#include "worker_model.h"

static ghost_t G;
static wm_t M[2];
static u64 *CHILD;
static int joined;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = 4, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    const layout_t *L = &chk_L;
    ring_init(lay_inject(L), L->inject_cap);
    lay_hdr(L)->idle = 2 * IDLE_UNPARK_ONE;
    for (u64 i = 0; i < 2; i++) {
        lay_worker(L, i)->state = W_RUNNING;
        M[i] = (wm_t){i, 0, 0};
    }
    slot_t *child = lay_slot(L, 0);
    child->state = S_RUNNING | S_JOIN_INTEREST | 2 * REF_ONE;
    child->holder = HOLDER_WORKER | 0;
    CHILD = &child->state;
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
            ref_dec(CHILD); /* the handle's reference */
            joined = 1;
            return;
        }
        long idx = wm_find(m); /* help_once */
        if (idx >= 0) {
            gh_took(&G, chk_tid(), idx);
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

/* Crash reclaim (reclaim.c's rules for these words): a dead completer's
 * RUNNING child is completed as crashed and its joiner woken, its scheduler
 * reference recomputed; a dead joiner's handle is dropped; a dead worker's
 * idle and searching counts are rebuilt from the live workers' states. */
static void reclaim(unsigned dead) {
    const layout_t *L = &chk_L;
    u64 s = *CHILD;
    if ((dead & 2) && (s & S_RUNNING)) {
        u64 prev = 0;
        transition_to_complete(CHILD, &prev);
        join_wake(lay_worker(L, 0), prev);
    }
    s = *CHILD;
    u64 refs = ((dead & 2) ? 0 : st_refs(s) >= 1 && !(s & S_COMPLETE) ? 1 : 0) +
               ((s & S_JOIN_INTEREST) && !joined && !(dead & 1) ? 1 : 0);
    if (dead & 1) {
        joined = 1; /* its join is over */
        M[0].searching = 0;
    }
    if (dead & 2) M[1].searching = 0;
    *CHILD = (s & S_FLAGS_MASK) | refs * REF_ONE;
    u64 unparked = 0, searching = 0;
    for (u64 w = 0; w < 2; w++) {
        u64 st = lay_worker(L, w)->state;
        if ((dead >> w) & 1) {
            lay_worker(L, w)->state = W_DEAD;
            unparked++; /* kept for its replacement */
            continue;
        }
        unparked += st != W_PARKED;
        searching += st == W_SEARCHING || st == W_NOTIFIED;
    }
    lay_hdr(L)->idle = unparked * IDLE_UNPARK_ONE + searching;
}

static int should_wake(int tid) {
    if (tid == 0 && (*CHILD & S_COMPLETE)) return 1;
    return tid < 2 && wm_work_visible();
}

static void check(unsigned dead) {
    const layout_t *L = &chk_L;
    CHK_ASSERT(joined, "the join never returned");
    if (!dead) CHK_ASSERT(st_refs(*CHILD) == 0, "child keeps %llu refs", (unsigned long long)st_refs(*CHILD));
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
