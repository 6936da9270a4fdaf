/*
 * p_sendq.c -- a relay send ring of capacity 2 with its waitlist (sendq.h),
 * and the send worker's per-flow reorder (workers/relay.py, modelled).
 *
 *   T0: CPU worker delivers flow A seq 0 (slot 0), then flow A seq 1 (slot 1)
 *   T1: CPU worker delivers flow B seq 0 (slot 2)
 *   T2: send worker: take; nothing -> wait (futex); until it has 3 packets
 *
 * Invariants: no lost wakeup (the send worker never sleeps while its ring or
 * waitlist holds a packet and nothing else can run); each packet is taken
 * exactly once and none is stranded on the waitlist; per flow, the reorder
 * buffer emits seq 0, 1, ... with no gap left at the end.
 */
#include "explore.h"
#include "sendq.h"

static send_t *T;
static int taken_n[3], emitted[2][2], n_emitted[2], next_seq[2], held_back[2][2];
static const int flow_of[3] = {0, 0, 1}, seq_of[3] = {0, 1, 0};

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = 3, .local_cap = 4, .n_clients = 1,
                   .n_send = 1, .send_cap = 2, .n_waiters = 1, .inflight = 3};
    chk_layout(&c);
    T = lay_send(&chk_L, 0);
    ring_init(lay_send_ring(T), chk_L.send_cap);
    ring_init(lay_waitlist(&chk_L, T), chk_L.inject_cap);
    chk_quiet(&T->pushed, 16 * sizeof(u64));
    chk_name(&T->seq, 8, "send.seq");
    chk_name(&T->sleeping, 8, "send.sleeping");
    chk_name(lay_send_ring(T)->cells, 8 * chk_L.send_cap, "ring.cell");
    chk_name(&lay_send_ring(T)->enq, 8, "ring.enq");
    chk_name(&lay_send_ring(T)->deq, 8, "ring.deq");
    chk_name(lay_waitlist(&chk_L, T)->cells, 8 * chk_L.inject_cap, "waitlist.cell");
    chk_name(&lay_waitlist(&chk_L, T)->enq, 8, "waitlist.enq");
    chk_name(&lay_waitlist(&chk_L, T)->deq, 8, "waitlist.deq");
    for (int i = 0; i < 3; i++) taken_n[i] = 0;
    for (int f = 0; f < 2; f++) n_emitted[f] = next_seq[f] = held_back[f][0] = held_back[f][1] = 0;
}

/* The send worker's reorder buffer: emit a flow's packets in seq order. */
static void receive(long v) {
    CHK_ASSERT(v >= 0 && v < 3, "send ring held slot %ld", v);
    if (v < 0 || v >= 3) return;
    taken_n[v]++;
    int f = flow_of[v];
    held_back[f][seq_of[v]] = 1;
    while (next_seq[f] < 2 && held_back[f][next_seq[f]]) {
        emitted[f][n_emitted[f]++] = next_seq[f];
        held_back[f][next_seq[f]] = 0;
        next_seq[f]++;
    }
}

static void thread(int tid) {
    const layout_t *L = &chk_L;
    if (tid == 0) {
        sendq_deliver(L, T, 0);
        sendq_deliver(L, T, 1);
    } else if (tid == 1) {
        sendq_deliver(L, T, 2);
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

/* Crash reclaim: a packet a dead CPU worker completed but never put on the
 * ring or waitlist is delivered again (reclaim.c: COMPLETE relay slots go
 * where their state says); packets a dead send worker took are its
 * replacement's (counted as received here). */
static int found[3];
static void reclaim(unsigned dead) {
    const layout_t *L = &chk_L;
    for (int v = 0; v < 3; v++) found[v] = taken_n[v];
    ring_t *rs[2] = {lay_send_ring(T), lay_waitlist(L, T)};
    u64 caps[2] = {L->send_cap, L->inject_cap};
    for (int k = 0; k < 2; k++)
        for (u64 p = rs[k]->deq, i = 0; i < caps[k]; i++, p++) {
            u64 w = rs[k]->cells[p & (caps[k] - 1)];
            int32_t d = seq_diff(cell_seq(w), p + 1);
            if (d == 0 && (w & RING_VAL_MASK) < 3) found[w & RING_VAL_MASK]++;
            else if (d != 0 && (u64)d != caps[k] - 1) break;
        }
    for (int v = 0; v < 3; v++)
        if (!found[v] && ((dead >> (v == 2 ? 1 : 0)) & 1)) sendq_deliver(L, T, (u64)v);
    if (dead & 4) T->sleeping = 0;
}

static int should_wake(int tid) {
    return tid == 2 && (ring_nonempty(lay_send_ring(T), chk_L.send_cap) ||
                        ring_nonempty(lay_waitlist(&chk_L, T), chk_L.inject_cap));
}

static void check(unsigned dead) {
    if (dead) { /* every packet received or still queued, once */
        const layout_t *L = &chk_L;
        long v;
        while ((v = sendq_take(L, T)) >= 0) taken_n[v]++;
        for (int k = 0; k < 3; k++) {
            CHK_ASSERT(taken_n[k] <= 1, "packet %d taken %d times", k, taken_n[k]);
            int lost_with = k == 2 ? 2 : 1; /* its CPU worker died before delivering */
            CHK_ASSERT(taken_n[k] == 1 || (dead & lost_with) || (dead & 4), "packet %d lost", k);
        }
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
