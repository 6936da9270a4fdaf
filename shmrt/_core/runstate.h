/*
 * runstate.h -- the runtime's run state (header.run_state) and its named
 * transitions, like state.h for a slot's state word.
 *
 *   INIT ──run_start──▶ RUNNING ──run_stop──▶ STOPPING ──run_finish──▶ STOPPED
 *     │                    │                      │
 *     └────────────────────┴──────────────────────┴──broken_mark──▶ BROKEN
 *
 *   transition    from                        who
 *   ----------    -------------------------   ---------------------------------
 *   run_start     INIT                        the coordinator, workers started
 *   run_stop      INIT, RUNNING               the coordinator (shutdown, a pool
 *                                             that broke while starting)
 *   run_finish    INIT, RUNNING, STOPPING     the coordinator, processes gone
 *   broken_mark   anything but STOPPED        whoever finds corruption (broken.h)
 *
 * Each is one SeqCst CAS, then run_wake_all: shutdown_seq and every
 * sequence word bumped, every futex in the segment woken (parked workers,
 * sleeping clients, send workers, relay waiters, sections waiting on a
 * reclaim).  SeqCst pairs with park.h's and sendq.h's SeqCst loads of the
 * run state after they read their sequence word: a sleeper either sees the
 * new state or is woken.  Everyone else only reads the word.
 *
 * A transition returns RS_OK (it moved the state), RS_ALREADY (the state
 * was already the target: idempotent, nothing woken) or RS_REFUSED (the
 * state is past it, e.g. BROKEN: a broken runtime stays broken until it
 * is unlinked).
 */
#ifndef SHMRT_RUNSTATE_H
#define SHMRT_RUNSTATE_H

#include "access.h"
#include "futex.h"
#include "sendq.h"

#define RUN_WAKE_ALL (1 << 30)

typedef enum { RS_OK = 0, RS_ALREADY = 1, RS_REFUSED = 2 } rs_t;

/* Wake every sleeper on the segment's futex words.  The words that carry a
 * sequence are bumped first (a sleeper that has read the old value and not
 * yet slept then returns at once); the relay's waiter entries are only
 * woken (their word is their state: they re-check after their 100 ms
 * safety timeout, and relay.c's acquire looks at the run state between
 * slices).  Clients too: a woken harvester sees the run state (and, when
 * broken, fails its pending futures with the reason). */
static inline void run_wake_all(const layout_t *L) {
    header_t *h = lay_hdr(L);
    FETCH_ADD_SEQ(&h->shutdown_seq, 1); /* pairs with any waiter's read before sleeping */
    futex_wake_u32(&h->shutdown_seq, RUN_WAKE_ALL);
    futex_wake_u32(&h->reclaim, RUN_WAKE_ALL);
    for (u64 i = 0; i < L->n_workers; i++) {
        worker_t *w = lay_worker(L, i);
        FETCH_ADD_SEQ(&w->park_seq, 1); /* pairs with park_wait's read of park_seq */
        futex_wake_u32(&w->park_seq, RUN_WAKE_ALL);
    }
    for (u64 i = 0; i < L->n_clients; i++) {
        client_t *c = lay_client(L, i);
        if (!LOAD_ACQ(&c->pid)) continue; /* pairs with the claim's CAS */
        FETCH_ADD_SEQ(&c->seq, 1);        /* pairs with client_wait's read of seq */
        futex_wake_u32(&c->seq, RUN_WAKE_ALL);
    }
    relay_t *r = lay_relay(L);
    if (!r) return;
    FETCH_ADD_SEQ(&r->done_seq, 1); /* pairs with flush_wait's read of done_seq */
    futex_wake_u32(&r->done_seq, RUN_WAKE_ALL);
    for (u64 i = 0; i < L->n_waiters; i++)
        futex_wake_u32(&lay_waiter(L, i)->state, RUN_WAKE_ALL);
    sendq_wake_all(L);
}

/* Move the run state from one of the states in `from` (a bit mask of
 * 1 << RUN_*) to `to`. */
static inline rs_t run_transition(const layout_t *L, u64 from, u64 to) {
    header_t *h = lay_hdr(L);
    u64 cur = LOAD_ACQ(&h->run_state);
    for (;;) {
        if (cur == to) return RS_ALREADY;
        if (cur >= 64 || !((from >> cur) & 1)) return RS_REFUSED;
        if (CAS_SEQ(&h->run_state, &cur, to)) break; /* pairs with park.h's SeqCst load */
    }
    run_wake_all(L);
    return RS_OK;
}

#define RS_FROM(s) (1ULL << (s))
static inline rs_t run_start(const layout_t *L) {
    return run_transition(L, RS_FROM(RUN_INIT), RUN_RUNNING);
}
static inline rs_t run_stop(const layout_t *L) {
    return run_transition(L, RS_FROM(RUN_INIT) | RS_FROM(RUN_RUNNING), RUN_STOPPING);
}
static inline rs_t run_finish(const layout_t *L) {
    return run_transition(L, RS_FROM(RUN_INIT) | RS_FROM(RUN_RUNNING) | RS_FROM(RUN_STOPPING),
                          RUN_STOPPED);
}

#endif
