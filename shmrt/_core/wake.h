/*
 * wake.h -- the client completion wake: a completer pushes a finished task
 * on its client's completion ring and wakes a client thread that sleeps;
 * client threads poll (spin) or sleep on the client's futex word `seq`.
 * slots.c (deliver) and admin.c (client_spin, client_wait, client_wake) wrap
 * these; the model checker (tools/check, scenario client) runs them as they
 * are.
 *
 *   completer:  push idx (SeqCst CAS on the cell); seq += 1; if sleeping and
 *               nobody spinning: futex_wake(seq)
 *   spinner:    spinning += 1; poll the ring; spinning -= 1; re-check
 *   sleeper:    s = seq (or the caller's earlier read); sleeping += 1;
 *               re-check the ring; futex_wait(seq, s); sleeping -= 1
 *
 * Dekker pairs, all SeqCst: (cell, sleeping) against (sleeping, cell) -- a
 * sleeper's re-check sees the value or the completer sees the sleeper; and
 * (cell, spinning) against (spinning--, cell) -- a completer that skipped the
 * wake because someone polled is covered by the poller's last re-check.  A
 * caller that checks a flag of its own before sleeping (the harvester's
 * closed flag, client.py) reads seq before that check and passes it in: a
 * wake between the check and the wait then changes seq and is not lost
 * (the shutdown wait fixed in 4354918).
 */
#ifndef SHMRT_WAKE_H
#define SHMRT_WAKE_H

#include "access.h"
#include "futex.h"
#include "queue.h"

/* Completer: deliver slot idx to client c (ring capacity cap).  Returns 0,
 * or -1 when the ring refused it (corrupt: it has room for every slot). */
static inline int client_deliver(client_t *c, u64 cap, u64 idx) {
    int rc = ring_push_inl(client_ring(c), cap, idx);
    FETCH_ADD_SEQ(&c->seq, 1);
    /* SeqCst: pairs with the client's RMW of sleeping/spinning followed by
     * its re-check of the ring (client_wait_core / client_spin_core). */
    if (LOAD_SEQ(&c->sleeping) && !LOAD_SEQ(&c->spinning)) futex_wake_u32(&c->seq, 1);
    return rc;
}

/* Poll the ring for up to budget_ns.  1 as soon as it is non-empty. */
static inline int client_spin_core(client_t *c, u64 cap, u64 budget_ns) {
    int got = 0;
    FETCH_ADD_SEQ(&c->spinning, 1);
    u64 end = now_ns() + budget_ns;
    unsigned i = 0;
    for (;;) {
        if (ring_nonempty(client_ring(c), cap)) {
            got = 1;
            break;
        }
        if ((++i & 63) == 0) {
            if (now_ns() >= end) break;
            os_yield();
        } else {
            cpu_relax();
        }
    }
    FETCH_SUB_SEQ(&c->spinning, 1);
    /* SeqCst RMW above, then re-check: a completer that saw spinning > 0
     * skipped its wake; if it pushed, we see the value here. */
    if (!got && ring_nonempty(client_ring(c), cap)) got = 1;
    return got;
}

/* Sleep until a completion arrives (or a client_wake).  seen >= 0: the seq
 * the caller read before checking a flag of its own.  1 if the ring is
 * non-empty on return. */
static inline int client_wait_core(client_t *c, u64 cap, long long seen, double timeout_s) {
    u32 seq = seen >= 0 ? (u32)seen : (u32)LOAD_SEQ(&c->seq);
    FETCH_ADD_SEQ(&c->sleeping, 1);
    /* pairs with client_deliver: push (SeqCst CAS), bump seq, load sleeping */
    int got = ring_nonempty(client_ring(c), cap);
    if (!got) futex_wait_u32(&c->seq, seq, timeout_s);
    FETCH_SUB_SEQ(&c->sleeping, 1);
    return ring_nonempty(client_ring(c), cap);
}

/* client_seq(): the value a caller reads before its own check. */
static inline u32 client_seq_read(client_t *c) { return (u32)LOAD_SEQ(&c->seq); }

/* client_wake(): wake every sleeper (close, shutdown). */
static inline int client_wake_all(client_t *c) {
    FETCH_ADD_SEQ(&c->seq, 1);
    return futex_wake_u32(&c->seq, 64);
}

#endif
