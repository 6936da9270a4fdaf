/*
 * p_sendq.c -- a relay send ring of capacity 2 with its waitlist (sendq.h),
 * and the send worker's per-flow reorder (workers/relay.py, modelled).
 *
 *   T0: CPU worker 0 finishes flow A seq 0 (slot 0), then flow A seq 1
 *       (slot 1): complete, deliver (sendq_deliver), drop its reference
 *   T1: CPU worker 1 finishes flow B seq 0 (slot 2)
 *   T2: send worker 0: take; nothing -> wait (futex); until it has 3
 *       packets.  A packet taken is held (owner, relay_take); the reorder
 *       buffer emits each flow in seq order, and an emitted packet is marked
 *       SENDING (relay_sending), handed to the sink, then done (relay_done:
 *       its handle dropped, its budget unit released)
 *
 * The three packets are relay slots RUNNING on their CPU worker, each
 * holding a budget unit (capacity 3, none free); the task.c steps around
 * the protocol (complete, drop, take, done) are atomic here, the sink is a
 * scheduling point of its own.
 * Invariants: no lost wakeup (the send worker never sleeps while its ring or
 * waitlist holds a packet and nothing else can run); each packet is taken
 * exactly once and none is stranded on the waitlist; per flow, the reorder
 * buffer emits seq 0, 1, ... with no gap left at the end; no slot keeps a
 * reference and the budget is back to its capacity.
 * Crashes: the real reclaim (reclaim.h) with the dead thread's process
 * (workers 0 and 1, send worker 0) re-delivers what a dead CPU worker
 * completed and never delivered and what a dead send worker held; pool.py
 * completes as crashed what a dead CPU worker still ran (crash_task,
 * delivered as a packet too); a packet its send worker died sinking is
 * in doubt (counted, never sent again).  A replacement send worker drains
 * the ring.  Each packet reaches the sink at most once, and exactly once
 * unless in doubt.
 */
#include "coord.h"

static send_t *T;
static relay_t *R;
static int taken_n[3], emitted[2][2], n_emitted[2], next_seq[2], held_back[2][2];
static int sending[3], sunk[3], drained[3];
static u64 sink_word;
static const int flow_of[3] = {0, 0, 1}, seq_of[3] = {0, 1, 0};

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = 3, .local_cap = 4, .n_clients = 1,
                   .n_send = 1, .send_cap = 2, .n_waiters = 1, .inflight = 3};
    chk_layout(&c);
    T = lay_send(&chk_L, 0);
    R = lay_relay(&chk_L);
    R->avail = 0; /* one unit in each packet */
    tk_carve(3);
    for (u64 v = 0; v < 3; v++) {
        tk_fill(v, S_RUNNING | S_JOIN_INTEREST | 2 * REF_ONE, HOLDER_RELAY);
        tk_running_on(v, v == 2 ? 1 : 0);
        slot_t *sl = lay_slot(&chk_L, v);
        sl->kind = 1;
        sl->flow = (u64)flow_of[v];
        sl->seq = (u64)seq_of[v];
    }
    chk_quiet(&T->pushed, 16 * sizeof(u64));
    chk_quiet(&R->registrations, 9 * sizeof(u64));
    chk_name(&T->seq, 8, "send.seq");
    chk_name(&T->sleeping, 8, "send.sleeping");
    chk_name(lay_send_ring(T)->cells, 8 * chk_L.send_cap, "ring.cell");
    chk_name(&lay_send_ring(T)->enq, 8, "ring.enq");
    chk_name(&lay_send_ring(T)->deq, 8, "ring.deq");
    chk_name(lay_waitlist(&chk_L, T)->cells, 8 * chk_L.inject_cap, "waitlist.cell");
    chk_name(&lay_waitlist(&chk_L, T)->enq, 8, "waitlist.enq");
    chk_name(&lay_waitlist(&chk_L, T)->deq, 8, "waitlist.deq");
    chk_name(&sink_word, 8, "sink");
    for (int i = 0; i < 3; i++) taken_n[i] = sending[i] = sunk[i] = drained[i] = 0;
    for (int f = 0; f < 2; f++) n_emitted[f] = next_seq[f] = held_back[f][0] = held_back[f][1] = 0;
    sink_word = 0;
}

/* relay_done for packet v: the pipeline's handle dropped, its unit back. */
static void done(u64 v) {
    tk_drop_handle(v);
    chk_atomic(1);
    budget_release_one(&chk_L, R);
    chk_atomic(0);
}

/* relay_sending, the sink, relay_done: packet v leaves the pipeline. */
static void sink(int v) {
    chk_atomic(1);
    FETCH_OR_ACQREL(&lay_slot(&chk_L, (u64)v)->flags, SLOT_F_SENDING);
    sending[v] = 1;
    chk_atomic(0);
    STORE_RLX(&sink_word, (u64)v + 1); /* the sink: a death here leaves it in doubt */
    sunk[v]++;
    done((u64)v);
}

/* The send worker's reorder buffer: emit a flow's packets in seq order. */
static void receive(long v) {
    CHK_ASSERT(v >= 0 && v < 3, "send ring held slot %ld", v);
    if (v < 0 || v >= 3) return;
    chk_atomic(1); /* relay_take: held by this send worker */
    STORE_RLX(&lay_slot(&chk_L, (u64)v)->owner, (CHK_PID_SENDER(0) << 32) | OWNER_SENDER | 0);
    chk_atomic(0);
    taken_n[v]++;
    int f = flow_of[v];
    held_back[f][seq_of[v]] = 1;
    while (next_seq[f] < 2 && held_back[f][next_seq[f]]) {
        emitted[f][n_emitted[f]++] = next_seq[f];
        held_back[f][next_seq[f]] = 0;
        next_seq[f]++;
        for (int k = 0; k < 3; k++)
            if (flow_of[k] == f && seq_of[k] == next_seq[f] - 1) sink(k);
    }
}

/* complete_slot on a CPU worker: COMPLETE, deliver, drop its reference. */
static void finish(u64 v) {
    u64 prev = tk_complete(v);
    if (prev & S_JOIN_INTEREST) sendq_deliver(&chk_L, T, v);
    tk_drop(v);
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid == 0) {
        finish(0);
        finish(1);
    } else if (tid == 1) {
        finish(2);
    } else {
        for (int got = 0, round = 0; got < 3 && round < 12; round++) {
            long v = sendq_take(L, T);
            if (v >= 0) {
                receive(v);
                got++;
            } else {
                sendq_wait(L, T, 0.05);
            }
        }
    }
}

/* T0, T1 are CPU workers 0 and 1, T2 send worker 0. */
static int in_doubt_expected;
static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    d.w[0] = dead & 1;
    d.w[1] = (dead >> 1) & 1;
    d.s[0] = (dead >> 2) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    in_doubt_expected = 0;
    for (int v = 0; v < 3; v++) in_doubt_expected += (dead & 4) && sending[v] && !sunk[v];
    CHK_ASSERT(r.n.in_doubt == (u64)in_doubt_expected, "the reclaim counted %llu packets in doubt, %d were",
               (unsigned long long)r.n.in_doubt, in_doubt_expected);
    for (u64 i = 0; i < r.n.running; i++) chk_coord_task(&r.running[i], &d); /* pool.py */
}

static int should_wake(int tid) {
    return tid == 2 && (ring_nonempty(lay_send_ring(T), chk_L.send_cap) ||
                        ring_nonempty(lay_waitlist(&chk_L, T), chk_L.inject_cap));
}

/* No slot keeps a reference, every budget unit is back. */
static void no_leak(void) {
    for (u64 v = 0; v < 3; v++)
        CHK_ASSERT(st_refs(lay_slot(&chk_L, v)->state) == 0, "packet %llu keeps %llu references (state %#llx)",
                   (unsigned long long)v, (unsigned long long)st_refs(lay_slot(&chk_L, v)->state),
                   (unsigned long long)lay_slot(&chk_L, v)->state);
    CHK_ASSERT(R->avail == R->capacity, "budget: %llu of %llu units back", (unsigned long long)R->avail,
               (unsigned long long)R->capacity);
}

static void check(unsigned dead) {
    if (dead) { /* a replacement send worker drains the ring: each packet sunk once */
        const layout_t *L = &chk_L;
        long v;
        while ((v = sendq_take(L, T)) >= 0) {
            CHK_ASSERT(v < 3, "send ring held slot %ld", v);
            if (v >= 3) return;
            drained[v]++;
            done((u64)v);
        }
        for (int k = 0; k < 3; k++) {
            int out = sunk[k] + drained[k];
            int doubt = (dead & 4) && sending[k] && !sunk[k];
            CHK_ASSERT(out <= 1, "packet %d reached the sink %d times", k, out);
            CHK_ASSERT(out == 1 || doubt, "packet %d lost", k);
        }
        no_leak();
        return;
    }
    for (int v = 0; v < 3; v++) CHK_ASSERT(taken_n[v] == 1, "packet %d taken %d times", v, taken_n[v]);
    CHK_ASSERT(!sendq_stranded(&chk_L, T), "a packet stranded on the waitlist");
    int expect[2] = {2, 1};
    for (int f = 0; f < 2; f++) {
        CHK_ASSERT(n_emitted[f] == expect[f], "flow %d: %d of %d packets emitted (a gap)", f,
                   n_emitted[f], expect[f]);
        for (int i = 0; i < n_emitted[f]; i++)
            CHK_ASSERT(emitted[f][i] == i, "flow %d emitted seq %d at %d", f, emitted[f][i], i);
    }
    no_leak();
}

const chk_proto_t chk_proto_sendq = {
    .name = "sendq",
    .about = "relay send ring + waitlist, send worker wait, per-flow order (sendq.h)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .should_wake = should_wake,
    .reclaim = reclaim,
    .check = check,
};
