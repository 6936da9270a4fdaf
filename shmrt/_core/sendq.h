/*
 * sendq.h -- the relay's send rings (one per send worker; flow hash % send
 * workers) with their waitlists.  relay.c wraps these for Python; the model
 * checker (tools/check, scenario sendq) runs them as they are.
 *
 * A CPU worker never blocks on a full send ring: the finished packet's slot
 * is pushed on the ring's waitlist (a ring sized for every slot), and then
 * the CPU worker re-checks the ring and moves waitlisted slots in while there
 * is room.  The send worker, after each pop, moves waitlisted slots in too.
 * Same handshake as the budget: push-then-check on both sides, so a slot is
 * never stranded on the waitlist while the ring has room and nobody will
 * look again.  The send worker restores per-flow order by sequence number
 * (workers/relay.py): rings and waitlists need not keep it.
 *
 *   deliver (CPU worker):   push ring, else push waitlist + move_waiters;
 *                           seq += 1; if sleeping: futex_wake(seq)
 *   take (send worker):     pop ring (empty: move_waiters, pop again);
 *                           move_waiters after each pop
 *   wait (send worker):     s = seq; sleeping += 1; re-check ring and
 *                           waitlist; futex_wait(seq, s); sleeping -= 1
 *
 * The crash reclaim (reclaim.h) re-delivers packets a dead send worker held
 * with sendq_deliver, counts the one it was sinking (sendq_count_in_doubt)
 * and wakes every send worker (sendq_wake_all).
 */
#ifndef SHMRT_SENDQ_H
#define SHMRT_SENDQ_H

#include "access.h"
#include "futex.h"
#include "queue.h"

/* The send worker a packet of `flow` goes to (flow hash % send workers), or
 * NULL when the runtime has no relay. */
static inline send_t *sendq_of_flow(const layout_t *L, u64 flow) {
    return L->n_send ? lay_send(L, flow % L->n_send) : NULL;
}

/* Move waitlisted slots into the ring while it has room. */
static inline void sendq_move_waiters(const layout_t *L, send_t *t) {
    ring_t *ring = lay_send_ring(t), *wl = lay_waitlist(L, t);
    while (ring_count(ring, L->send_cap) < L->send_cap && ring_nonempty(wl, L->inject_cap)) {
        long v = ring_pop_inl(wl, L->inject_cap);
        if (v < 0) break;
        if (ring_push_inl(ring, L->send_cap, (u64)v)) {
            ring_push_inl(wl, L->inject_cap, (u64)v);
            break;
        }
        FETCH_ADD_RLX(&t->wakes, 1);
    }
}

/* A finished packet (slot idx) for send worker t.  Never blocks.  Returns
 * 0, or -1 when the waitlist refused it too (corrupt: it has room for every
 * slot). */
static inline int sendq_deliver(const layout_t *L, send_t *t, u64 idx) {
    int rc = 0;
    if (ring_push_inl(lay_send_ring(t), L->send_cap, idx)) {
        rc = ring_push_inl(lay_waitlist(L, t), L->inject_cap, idx); /* register ... */
        FETCH_ADD_RLX(&t->registrations, 1);
        sendq_move_waiters(L, t); /* ... then re-check */
    }
    FETCH_ADD_RLX(&t->pushed, 1);
    FETCH_ADD_SEQ(&t->seq, 1);
    if (LOAD_SEQ(&t->sleeping)) futex_wake_u32(&t->seq, 1); /* pairs with sendq_wait */
    return rc;
}

/* The send worker takes one packet: a slot index, or -1 when none. */
static inline long sendq_take(const layout_t *L, send_t *t) {
    ring_t *ring = lay_send_ring(t);
    long v = ring_pop_inl(ring, L->send_cap);
    if (v < 0) {
        sendq_move_waiters(L, t);
        v = ring_pop_inl(ring, L->send_cap);
        if (v < 0) return -1;
    }
    sendq_move_waiters(L, t); /* one freed unit: let a waitlisted slot in */
    return v;
}

/* Is a slot stranded: the waitlist holds one while the ring is empty? */
static inline int sendq_stranded(const layout_t *L, send_t *t) {
    return !ring_nonempty(lay_send_ring(t), L->send_cap) &&
           ring_nonempty(lay_waitlist(L, t), L->inject_cap);
}

/* The send worker sleeps until its ring (or waitlist) is non-empty; returns
 * 1 if the ring is non-empty after.  Sleeps only while running. */
static inline int sendq_wait(const layout_t *L, send_t *t, double timeout_s) {
    u32 seq = (u32)LOAD_SEQ(&t->seq);
    FETCH_ADD_SEQ(&t->sleeping, 1);
    int got = ring_nonempty(lay_send_ring(t), L->send_cap) ||
              ring_nonempty(lay_waitlist(L, t), L->inject_cap);
    if (!got && LOAD_SEQ(&lay_hdr(L)->run_state) == RUN_RUNNING)
        futex_wait_u32(&t->seq, seq, timeout_s);
    FETCH_SUB_SEQ(&t->sleeping, 1);
    return ring_nonempty(lay_send_ring(t), L->send_cap);
}

/* The crash reclaim (reclaim.h): a packet its send worker died handing to
 * the sink is counted, not sent again. */
static inline void sendq_count_in_doubt(send_t *t) {
    FETCH_ADD_RLX(&t->in_doubt, 1); /* a counter: the inspector reads it */
}

/* Every send worker looks again (a reclaim, a broken runtime): bump its
 * futex word, then wake it. */
static inline void sendq_wake_all(const layout_t *L) {
    for (u64 i = 0; i < L->n_send; i++) {
        send_t *t = lay_send(L, i);
        FETCH_ADD_SEQ(&t->seq, 1); /* pairs with sendq_wait's read of seq */
        futex_wake_u32(&t->seq, 8);
    }
}

#endif
