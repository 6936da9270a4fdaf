/*
 * p_budget.c -- the relay in-flight budget (budget.h): capacity 1, two
 * waiter entries, the unit initially in flight (held by T2).
 *
 *   T0, T1: acquire (blocking), then release
 *   T2:     release the unit it holds
 *
 * Invariants: no lost wakeup (no waiter sleeps while a unit is free and
 * nothing else can run), no pending_with_capacity, never more units held
 * than the capacity, every live acquirer succeeds, and the budget is
 * conserved (avail == capacity at the end, with a crash too; every waiter
 * entry freed).
 * Mutants: SHMRT_MUTANT_IROH_CHECK_THEN_REGISTER, SHMRT_MUTANT_SHARED_WAITER_SLOT,
 * SHMRT_MUTANT_BUDGET_GIVE_BACK (budget.h: bug 4, fixed in 44178b1; bound 3).
 * The threads are clients 0-2 (their pids claim waiter entries); the unit
 * a client holds is counted in its record (client.units: relay.c's
 * unit_taken / unit_given, atomic here after the acquire and before the
 * release).
 * Crashes: the real reclaim (reclaim.h) recomputes the budget from its
 * holders (avail = capacity - units in live clients' records - units
 * handed to live waiters), cancels a dead client's waiter entries, and
 * hands the free units out one by one to live waiters.
 */
#include "budget.h"
#include "coord.h"

static relay_t *R;
static int held[3], max_held, got[2];

static void setup(void) {
    chk_cfg_t c = {.n_workers = 1, .n_slots = 3, .local_cap = 4, .n_clients = 3,
                   .n_send = 1, .send_cap = 4, .n_waiters = 2, .inflight = 1};
    chk_layout(&c);
    R = lay_relay(&chk_L);
    R->capacity = 1;
    R->avail = 0;
    lay_client(&chk_L, 2)->units = 1; /* T2 holds the unit */
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

/* relay.c's unit_taken / unit_given: the client's record of its units. */
static void units(int tid, int d) {
    chk_atomic(1);
    lay_client(&chk_L, (u64)tid)->units += (u64)(long)d;
    chk_atomic(0);
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid < 2) {
        int rc = budget_acquire(L, R, CHK_PID_CLIENT(tid), -1, 0, NULL);
        CHK_ASSERT(rc == BUDGET_OK, "T%d: acquire returned %d", tid, rc);
        units(tid, 1);
        got[tid] = 1;
        held[tid]++;
        int total = held[0] + held[1] + held[2];
        if (total > max_held) max_held = total;
        CHK_ASSERT(total <= 1, "%d units held with a capacity of 1", total);
        held[tid]--; /* before the release: the unit may be handed on at once */
        units(tid, -1);
        budget_release_one(L, R);
    } else {
        held[2]--;
        units(2, -1);
        budget_release_one(L, R);
    }
}

static int should_wake(int tid) { return tid < 2 && LOAD_RLX(&R->avail) > 0; }

/* The threads are clients 0-2. */
static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    for (int t = 0; t < 3; t++) d.c[t] = (dead >> t) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    for (int t = 0; t < 3; t++)
        if ((dead >> t) & 1) held[t] = 0; /* its units are free again */
}

static void check(unsigned dead) {
    const layout_t *L = &chk_L;
    CHK_ASSERT(R->pending_with_capacity == 0, "pending_with_capacity = %llu",
               (unsigned long long)R->pending_with_capacity);
    CHK_ASSERT(R->avail <= R->capacity, "avail %llu above the capacity", (unsigned long long)R->avail);
    /* the reclaim recomputes the budget from its holders: exactly conserved */
    CHK_ASSERT(R->avail == R->capacity, "budget not conserved: avail %llu at the end",
               (unsigned long long)R->avail);
    for (int t = 0; t < 2; t++)
        CHK_ASSERT(got[t] || ((dead >> t) & 1), "T%d never got a unit", t);
    for (u64 i = 0; i < L->n_waiters; i++)
        CHK_ASSERT(lay_waiter(L, i)->pid == 0 ||
                       chk_blocked((int)(lay_waiter(L, i)->pid - CHK_PID_CLIENT(0))),
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
