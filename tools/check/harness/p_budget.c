/*
 * p_budget.c -- the relay in-flight budget (budget.h): capacity 1, two
 * waiter entries, the unit initially in flight (held by T2).
 *
 *   T0, T1: acquire (blocking), then release
 *   T2:     release the unit it holds
 *
 * Invariants: no lost wakeup (no waiter sleeps while a unit is free and
 * nothing else can run), no pending_with_capacity, never more units held
 * than the capacity, both acquires succeed, and the budget is conserved
 * (avail == capacity at the end; every waiter entry freed).
 * Mutants: SHMRT_MUTANT_IROH_CHECK_THEN_REGISTER, SHMRT_MUTANT_SHARED_WAITER_SLOT,
 * SHMRT_MUTANT_BUDGET_GIVE_BACK (budget.h: bug 4, fixed in 44178b1; bound 3).
 * Crashes: the reclaim returns the units the dead held (the ghost stands in
 * for the per-client unit record of section.h), cancels a dead waiter's
 * entry, and hands units left free to live waiters.  A thread that dies
 * inside budget_try's CAS, between budget_release_one's take-back and its
 * hand-off, or after being handed a unit loses that unit: at most one per
 * dead thread (docs/checking.md).
 */
#include "budget.h"
#include "explore.h"

static relay_t *R;
static int held[3], max_held, got[2];

static void setup(void) {
    chk_cfg_t c = {.n_workers = 1, .n_slots = 3, .local_cap = 4, .n_clients = 1,
                   .n_send = 1, .send_cap = 4, .n_waiters = 2, .inflight = 1};
    chk_layout(&c);
    R = lay_relay(&chk_L);
    R->capacity = 1;
    R->avail = 0;
    ring_init(lay_fifo(R), fifo_cap(chk_L.n_waiters));
    chk_quiet(&R->registrations, 9 * sizeof(u64)); /* counters */
    chk_name(&R->avail, 8, "avail");
    chk_name(lay_fifo(R)->cells, 8 * fifo_cap(2), "fifo.cell");
    chk_name(&lay_fifo(R)->enq, 8, "fifo.enq");
    chk_name(&lay_fifo(R)->deq, 8, "fifo.deq");
    chk_name(&lay_waiter(&chk_L, 0)->state, 8, "waiter0.state");
    chk_name(&lay_waiter(&chk_L, 1)->state, 8, "waiter1.state");
    chk_name(&lay_waiter(&chk_L, 0)->pid, 8, "waiter0.pid");
    chk_name(&lay_waiter(&chk_L, 1)->pid, 8, "waiter1.pid");
    held[0] = held[1] = 0;
    held[2] = 1;
    max_held = 1;
    got[0] = got[1] = 0;
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid < 2) {
        int rc = budget_acquire(L, R, 100 + (u64)tid, -1, 0);
        CHK_ASSERT(rc == BUDGET_OK, "T%d: acquire returned %d", tid, rc);
        got[tid] = 1;
        held[tid]++;
        int total = held[0] + held[1] + held[2];
        if (total > max_held) max_held = total;
        CHK_ASSERT(total <= 1, "%d units held with a capacity of 1", total);
        held[tid]--; /* before the release: the unit may be handed on at once */
        budget_release_one(L, R);
    } else {
        held[2]--;
        budget_release_one(L, R);
    }
}

static int should_wake(int tid) { return tid < 2 && LOAD_RLX(&R->avail) > 0; }

static void reclaim(unsigned dead) {
    const layout_t *L = &chk_L;
    for (int t = 0; t < 3; t++) {
        if (!((dead >> t) & 1)) continue;
        for (; held[t] > 0; held[t]--) budget_release_one(L, R);
        for (u64 i = 0; i < L->n_waiters; i++) {
            waiter_t *w = lay_waiter(L, i);
            if (w->pid != 100 + (u64)t) continue;
            /* WOKEN here may be a previous owner's (an entry keeps WOKEN after
             * its owner returns): a unit handed to the dead cannot be told
             * from it, and is lost (at most one per dead thread). */
            u64 st = w->state;
            w->state = (st & ~WT_MASK) | WT_CANCELLED;
            w->pid = 0;
        }
    }
    /* Units left free by a releaser that died before its hand-off go to
     * the live waiters (otherwise they sleep to their safety timeout). */
    int k = 0;
    while (budget_try(R)) k++;
    while (k--) budget_release_one(L, R);
}

static void check(unsigned dead) {
    const layout_t *L = &chk_L;
    CHK_ASSERT(R->pending_with_capacity == 0, "pending_with_capacity = %llu",
               (unsigned long long)R->pending_with_capacity);
    CHK_ASSERT(R->avail <= R->capacity, "avail %llu above the capacity", (unsigned long long)R->avail);
    int n_dead = __builtin_popcount(dead);
    CHK_ASSERT(R->avail + (u64)n_dead >= R->capacity, "budget not conserved: avail %llu at the end",
               (unsigned long long)R->avail);
    for (int t = 0; t < 2 && !dead; t++) /* a unit lost with a dead thread may starve one */
        CHK_ASSERT(got[t], "T%d never got a unit", t);
    for (u64 i = 0; i < L->n_waiters; i++)
        CHK_ASSERT(lay_waiter(L, i)->pid == 0 || chk_blocked((int)(lay_waiter(L, i)->pid - 100)),
                   "waiter entry %llu still claimed", (unsigned long long)i);
}

const chk_proto_t chk_proto_budget = {
    .name = "budget",
    .about = "relay budget: semaphore + FIFO of per-waiter entries, pass-on (budget.h)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .should_wake = should_wake,
    .reclaim = reclaim,
    .check = check,
};
