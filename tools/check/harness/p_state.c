/*
 * p_state.c -- the task state word (state.h) on one slot, initial word
 * NOTIFIED | JOIN_INTEREST | 2 refs (handle + scheduler): a task spawned by
 * worker 1 (its handle), popped by worker 0 (in its `taking` word).
 *
 *   T0 runner, worker 0 (scheduler ref):  begin (T_begin: taking = 0, owner,
 *                               to_running); OK -> to_complete (the wake goes
 *                               to the joiner iff prev had JOIN_WAKER); drop
 *                               the ref (CANCELLED: just drop it)
 *   T1 handle, worker 1:        cancel; cancelled -> unset JOIN_INTEREST, drop;
 *                               else set_join_waker, wait for COMPLETE, drop
 *                               the handle (join_poll: drop_handle)
 *
 * Invariants: no transition returns TR_INVALID; the count never goes below
 * zero and exactly one drop is the last (the slot is freed once); the task
 * ran iff it was not cancelled; a joiner that registered (TR_OK) is woken
 * (the completer saw JOIN_WAKER: no lost join wake); final count 0.
 * Crashes: the real reclaim (reclaim.h) recomputes the count from the
 * flags; then the coordinator does what pool.py does: a task RUNNING on the
 * dead worker is completed (crash_task: no retries), and a replacement
 * worker runs what the reclaim re-queued (a task popped but never begun runs
 * once); a dead joiner's handle is dropped by the reclaim.
 * Mutant: SHMRT_MUTANT_HANDLE_KEEPS_INTEREST (state.h: bug 5, the handle
 * dropped with its JOIN_INTEREST left set; with a crash).
 */
#include "coord.h"

static u64 *W;
static int ran, cancelled, last_refs, registered, woken;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = 1, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    tk_carve(1);
    tk_fill(0, STATE_INITIAL, HOLDER_WORKER | 1);
    lay_worker(&chk_L, 0)->taking = 1; /* worker 0 popped it (sched.c taken) */
    W = &lay_slot(&chk_L, 0)->state;
    chk_name(W, 8, "state");
    chk_name(&lay_slot(&chk_L, 0)->owner, 8, "owner");
    chk_name(&lay_worker(&chk_L, 0)->taking, 8, "w0.taking");
    ran = cancelled = last_refs = registered = woken = 0;
}

static void dropped(const char *who, tr_t r) {
    CHK_ASSERT(r != TR_INVALID, "%s: a reference dropped below zero", who);
    if (r == TR_LAST_REF) last_refs++;
}
static void drop(const char *who) { dropped(who, ref_dec(W)); }

/* The runner's part after to_running: complete, deliver (join_wake), drop. */
static void run_it(void) {
    ran = 1;
    u64 prev = 0;
    CHK_ASSERT(transition_to_complete(W, &prev) == TR_OK, "to_complete refused");
    if ((prev & S_JOIN_INTEREST) && (prev & S_JOIN_WAKER)) woken = 1;
    drop("runner");
}

static void thread(int tid) {
    if (tid == 0) {
        /* T_begin: from here the slot's state and owner say where it is */
        STORE_RLX(&lay_worker(&chk_L, 0)->taking, 0);
        STORE_RLX(&lay_slot(&chk_L, 0)->owner, (CHK_PID_WORKER(0) << 32) | 1);
        tr_t r = transition_to_running(W);
        CHK_ASSERT(r == TR_OK || r == TR_CANCELLED, "to_running returned %d", r);
        if (r == TR_OK) {
            slot_t *sl = lay_slot(&chk_L, 0);
            STORE_PLAIN(&sl->attempts, LOAD_PLAIN(&sl->attempts) + 1); /* owner only */
            run_it();
        } else {
            drop("runner");
        }
    } else {
        tr_t r = transition_to_cancelled(W);
        CHK_ASSERT(r != TR_INVALID, "cancel returned TR_INVALID");
        if (r == TR_OK) {
            cancelled = 1;
            unset_join_interest(W);
            drop("handle");
            return;
        }
        if (set_join_waker(W) == TR_OK) {
            registered = 1;
            while (!(LOAD_ACQ(W) & S_COMPLETE)) cpu_relax(); /* parked; the wake is checked */
        }
        dropped("handle", drop_handle(W)); /* join_poll: the result taken */
    }
}

static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    d.w[0] = dead & 1;
    d.w[1] = (dead >> 1) & 1;
    u64 had = st_refs(*W);
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    if (had && !st_refs(*W)) last_refs++; /* the reclaim freed it */
    for (u64 i = 0; i < r.n.running; i++) { /* pool.py: no retries, crash_task */
        u64 prev = 0;
        CHK_ASSERT(transition_to_complete(W, &prev) == TR_OK, "crash_task: not running");
        if ((prev & S_JOIN_INTEREST) && (prev & S_JOIN_WAKER)) woken = 1;
        drop("crash_task");
    }
    long v;
    while ((v = ring_pop_inl(lay_inject(&chk_L), chk_L.inject_cap)) >= 0) {
        /* the replacement of worker 0 runs what the reclaim re-queued */
        CHK_ASSERT(v == 0, "inject held slot %ld", v);
        tr_t t = transition_to_running(W);
        CHK_ASSERT(t == TR_OK || t == TR_CANCELLED, "replacement: to_running returned %d", t);
        if (t == TR_OK) run_it();
        else drop("replacement");
    }
    if (dead & 2) registered = 0; /* nobody waits any more */
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
