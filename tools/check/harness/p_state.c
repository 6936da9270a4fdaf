/*
 * p_state.c -- the task state word (state.h) on one slot, initial word
 * NOTIFIED | JOIN_INTEREST | 2 refs (handle + scheduler).
 *
 *   T0 runner (scheduler ref):  to_running; OK -> to_complete (the wake goes
 *                               to the joiner iff prev had JOIN_WAKER); drop
 *                               the ref (CANCELLED: just drop it)
 *   T1 handle:                  cancel; cancelled -> unset JOIN_INTEREST, drop;
 *                               else set_join_waker, wait for COMPLETE, drop
 *
 * Invariants: no transition returns TR_INVALID; the count never goes below
 * zero and exactly one drop is the last (the slot is freed once); the task
 * ran iff it was not cancelled; a joiner that registered (TR_OK) is woken
 * (the completer saw JOIN_WAKER: no lost join wake); final count 0.
 * Crashes: the reclaim recomputes the count from the flags, as reclaim.c
 * does: a dead runner's RUNNING task is completed (crashed), a NOTIFIED one
 * was never begun and runs now; a dead handle's interest is dropped; refs =
 * (NOTIFIED or RUNNING) + (JOIN_INTEREST and a live handle).
 */
#include "explore.h"
#include "state.h"

static u64 *W;
static int ran, cancelled, last_refs, registered, woken, handle_dropped, runner_dropped;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 1, .n_slots = 1, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    W = &lay_slot(&chk_L, 0)->state;
    *W = STATE_INITIAL;
    chk_name(W, 8, "state");
    ran = cancelled = last_refs = registered = woken = handle_dropped = runner_dropped = 0;
}

static void drop(const char *who) {
    tr_t r = ref_dec(W);
    CHK_ASSERT(r != TR_INVALID, "%s: ref_dec below zero", who);
    if (r == TR_LAST_REF) last_refs++;
}

static void thread(int tid) {
    if (tid == 0) {
        tr_t r = transition_to_running(W);
        CHK_ASSERT(r == TR_OK || r == TR_CANCELLED, "to_running returned %d", r);
        if (r == TR_OK) {
            ran = 1;
            u64 prev = 0;
            CHK_ASSERT(transition_to_complete(W, &prev) == TR_OK, "to_complete refused");
            if (prev & S_JOIN_WAKER) woken = 1;
        }
        drop("runner");
        runner_dropped = 1;
    } else {
        tr_t r = transition_to_cancelled(W);
        CHK_ASSERT(r != TR_INVALID, "cancel returned TR_INVALID");
        if (r == TR_OK) {
            cancelled = 1;
            unset_join_interest(W);
        } else if (set_join_waker(W) == TR_OK) {
            registered = 1;
            while (!(LOAD_ACQ(W) & S_COMPLETE)) cpu_relax(); /* parked; the wake is checked */
        }
        drop("handle");
        handle_dropped = 1;
    }
}

static void reclaim(unsigned dead) {
    u64 s = *W;
    if ((dead & 1) && (s & S_RUNNING)) { /* crash_task */
        u64 prev = 0;
        transition_to_complete(W, &prev);
        if (prev & S_JOIN_WAKER) woken = 1;
    } else if ((dead & 1) && (s & S_NOTIFIED) && !(s & S_CANCELLED)) { /* never begun: run it */
        transition_to_running(W);
        ran = 1;
        u64 prev = 0;
        transition_to_complete(W, &prev);
        if (prev & S_JOIN_WAKER) woken = 1;
    }
    if (dead & 2) *W &= ~S_JOIN_INTEREST; /* a dead handle's interest goes */
    s = *W;
    u64 refs = ((s & (S_NOTIFIED | S_RUNNING)) && !runner_dropped && !(dead & 1) ? 1 : 0) +
               ((s & S_JOIN_INTEREST) && !handle_dropped && !(dead & 2) ? 1 : 0);
    u64 had = st_refs(s);
    *W = (s & S_FLAGS_MASK) | refs * REF_ONE;
    if (had && !refs) last_refs++; /* the reclaim frees it */
    if (dead & 2) registered = 0;  /* nobody waits any more */
}

static void check(unsigned dead) {
    u64 s = *W;
    CHK_ASSERT(st_refs(s) == 0, "final count %llu, expected 0", (unsigned long long)st_refs(s));
    CHK_ASSERT(last_refs == 1, "the slot was freed %d times", last_refs);
    CHK_ASSERT(ran != cancelled || dead, "ran=%d cancelled=%d", ran, cancelled);
    CHK_ASSERT(!(ran && cancelled), "a cancelled task ran");
    CHK_ASSERT(!registered || woken, "the joiner registered but the completer did not see JOIN_WAKER");
}

const chk_proto_t chk_proto_state = {
    .name = "state",
    .about = "task state word transitions and reference count (state.h)",
    .n_threads = 2,
    .setup = setup,
    .thread = thread,
    .reclaim = reclaim,
    .check = check,
};
