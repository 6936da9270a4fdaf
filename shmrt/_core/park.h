/*
 * park.h -- the idle word, park / notify, the searching throttle and the
 * join wake: how a worker goes to sleep without missing work, and who wakes
 * it.  sched.c wraps these for Python; the model checker (tools/check) runs
 * them as they are.
 *
 * Idle word (header.idle), after tokio scheduler/multi_thread/idle.rs:
 *
 *   | 63 ..... 32 | 31 ........ 16 | 15 ......... 0 |
 *   |   unused    |  num_unparked  | num_searching  |
 *
 * Park protocol (no lost wakeups).  Worker w going to sleep:
 *   1. state[w] = PARKED                                  (SeqCst store)
 *   2. idle -= one unparked (and one searching if it was searching)
 *   3. seq = park_seq[w]; re-check its joined child, the inject queue, the
 *      run state and (last searcher only) every local queue   (SeqCst)
 *   4. work seen: CAS state PARKED -> RUNNING; success = unparked again.
 *   5. else futex_wait(park_seq[w], seq, timeout)
 *   6. after waking: CAS PARKED -> RUNNING (timeout / spurious: unpark self),
 *      or find NOTIFIED: a notifier already counted us unparked + searching.
 * Notifier, after making work visible (SeqCst push):
 *   if num_searching == 0 and num_unparked < n: CAS idle += (1 unparked,
 *   1 searching); CAS some worker PARKED -> NOTIFIED; bump its park_seq;
 *   futex_wake.  If no worker is PARKED after all (it is self-unparking in
 *   step 4/6), undo the idle increment: that worker will look for work anyway.
 * Either the parker's step 3 sees the work, or the notifier sees PARKED:
 * both sides use SeqCst on (queue cells, state), a Dekker handshake.
 *
 * Join wake.  A joiner sets JOIN_WAKER on its child (state.h, SeqCst CAS),
 * then parks with the child's state word: step 3 reads COMPLETE *after*
 * reading park_seq.  The completer sets COMPLETE (SeqCst-strength RMW) and
 * then bumps the joiner's park_seq and wakes it (join_wake).  Either the
 * joiner's re-check sees COMPLETE, or its futex_wait sees the bumped seq.
 * (The lost join wake fixed in 4354918 read park_seq only after the
 * re-check; SHMRT_MUTANT_JOIN_NO_RECHECK brings it back for the checker.)
 */
#ifndef SHMRT_PARK_H
#define SHMRT_PARK_H

#include "access.h"
#include "futex.h"
#include "queue.h"
#include "state.h"

#define IDLE_SEARCH_MASK 0xffffULL
#define IDLE_UNPARK_ONE (1ULL << 16)

enum { PARK_UNPARKED = 0, PARK_NOTIFIED = 1, PARK_TIMEOUT = 2 };

/* Wake one parked worker if nobody is searching.  *rot rotates the choice
 * (caller-owned: a thread-local in the extension).  Returns 1 if it woke
 * (and counted as an unparked searcher) a worker. */
static inline int park_notify(const layout_t *L, u64 *rot) {
    header_t *h = lay_hdr(L);
    u64 n = L->n_workers;
    u64 st = LOAD_SEQ(&h->idle); /* pairs with the parker's SeqCst idle RMW */
    for (;;) {
        if ((st & IDLE_SEARCH_MASK) != 0 || (st >> 16) >= n) return 0;
        if (CAS_SEQ(&h->idle, &st, st + 1 + IDLE_UNPARK_ONE)) break;
    }
    for (u64 k = 0; k < n; k++) {
        worker_t *w = lay_worker(L, (*rot + k) % n);
        u64 exp = W_PARKED;
        if (LOAD_SEQ(&w->state) == W_PARKED && CAS_SEQ(&w->state, &exp, W_NOTIFIED)) {
            *rot += k + 1;
            FETCH_ADD_SEQ(&w->park_seq, 1); /* makes a racing futex_wait return */
            futex_wake_u32(&w->park_seq, 1);
            return 1;
        }
    }
    FETCH_SUB_SEQ(&h->idle, 1 + IDLE_UNPARK_ONE); /* nobody to wake: undo */
    return 0;
}

/* Is there visible work anywhere?  SeqCst loads: step 3 of the protocol.
 * joined: the state word of the child a joiner waits for, or NULL. */
static inline int park_has_work(const layout_t *L, u64 *joined, int all_queues) {
#ifndef SHMRT_MUTANT_JOIN_NO_RECHECK
    /* A joiner parks for its child too: COMPLETE is set (SeqCst RMW) before
     * the completer bumps park_seq, so reading it after park_seq closes the
     * window in which the wake would be lost. */
    if (joined && (LOAD_SEQ(joined) & S_COMPLETE)) return 1;
#endif
    if (ring_nonempty(lay_inject(L), L->inject_cap)) return 1;
    if (LOAD_SEQ(&lay_hdr(L)->run_state) != RUN_RUNNING) return 1;
    /* Local queues: only the last searcher looks (tokio's rule).  Work in a
     * local queue is its owner's, or a searcher's to steal; a worker that may
     * not search (throttled) would only spin on it. */
    for (u64 i = 0; all_queues && i < L->n_workers; i++) {
        if (LOAD_SEQ(&lay_worker(L, i)->lifo)) return 1; /* stealable too */
        local_queue_t *q = lay_queue(L, i);
        u64 hd = LOAD_SEQ(&q->head);
        if ((u32)LOAD_SEQ(&q->tail) != head_real(hd)) return 1;
    }
    return 0;
}

/* The park in three parts, so that the extension can put each short step
 * in a protocol section (section.h) and sleep outside one:
 *   park_announce  steps 1-2; returns 1 if we were the last searcher
 *   park_wait      steps 3 and 5; returns 1 if it slept
 *   park_leave     step 4/6; returns PARK_*
 * park_sleep runs them in a row (the checker's view of one park). */
static inline int park_announce(const layout_t *L, u64 wid, int searching, u32 *seq_out) {
    header_t *h = lay_hdr(L);
    worker_t *w = lay_worker(L, wid);
#ifndef SHMRT_MUTANT_PARK_SEQ_LATE
    /* Read the futex word before a notifier can see PARKED, so its bump
     * makes futex_wait return (tools/check found the lost wake when it was
     * read after: docs/checking.md, bug 2). */
    *seq_out = (u32)LOAD_SEQ(&w->park_seq);
#else
    *seq_out = 0;
#endif
    STORE_SEQ(&w->state, (u64)W_PARKED);                                        /* step 1 */
    CRASH_POINT(CP_PARKED);
    u64 prev = FETCH_SUB_SEQ(&h->idle, IDLE_UNPARK_ONE + (searching ? 1 : 0)); /* step 2 */
    return searching && (prev & IDLE_SEARCH_MASK) == 1;
}

static inline int park_wait(const layout_t *L, u64 wid, int last, u64 *joined, u32 seq,
                            double timeout_s) {
    worker_t *w = lay_worker(L, wid);
#ifdef SHMRT_MUTANT_PARK_SEQ_LATE
    /* The mutant: a notifier that claims us between step 1 and this load
     * bumps park_seq before we read it, and its wake is lost (bug 2). */
    (void)seq;
    seq = (u32)LOAD_SEQ(&w->park_seq);                                          /* step 3 */
#endif
    if (park_has_work(L, joined, last)) return 0;
    COUNTER_BUMP(&w->parks, 1);
    futex_wait_u32(&w->park_seq, seq, timeout_s);                              /* step 5 */
    return 1;
}

static inline int park_leave(const layout_t *L, u64 wid, int last, u64 *joined, int woke) {
    header_t *h = lay_hdr(L);
    worker_t *w = lay_worker(L, wid);
    u64 exp = W_PARKED;
    if (CAS_SEQ(&w->state, &exp, (u64)W_RUNNING)) {                             /* step 4/6 */
        FETCH_ADD_SEQ(&h->idle, IDLE_UNPARK_ONE);
#ifndef SHMRT_MUTANT_LAST_SEARCHER_SILENT
        /* The last searcher may leave for its joined child alone; work it
         * saw besides (which suppressed notifies while it was counted
         * searching) gets a worker, as tokio's notify_if_work_pending does
         * (tools/check: docs/checking.md, bug 3). */
        if (last && joined && park_has_work(L, NULL, 1)) {
            u64 rot = wid + 1;
            park_notify(L, &rot);
        }
#else
        (void)last;
#endif
        return woke && !park_has_work(L, joined, 0) ? PARK_TIMEOUT : PARK_UNPARKED;
    }
    /* A notifier moved us PARKED -> NOTIFIED and counted us as an unparked
     * searcher. */
    STORE_SEQ(&w->state, (u64)W_SEARCHING);
    COUNTER_BUMP(&w->wakeups, 1);
    return PARK_NOTIFIED;
}

/* Steps 1-6 (the spin before them is the caller's).  Returns PARK_*. */
static inline int park_sleep(const layout_t *L, u64 wid, int searching, u64 *joined,
                             double timeout_s) {
    u32 seq;
    int last = park_announce(L, wid, searching, &seq);
    int woke = park_wait(L, wid, last, joined, seq, timeout_s);
    return park_leave(L, wid, last, joined, woke);
}

/* Become a searcher if 2 * searching < workers. */
static inline int search_try(const layout_t *L, u64 wid) {
    header_t *h = lay_hdr(L);
    u64 st = LOAD_SEQ(&h->idle);
    for (;;) {
        if (2 * (st & IDLE_SEARCH_MASK) >= L->n_workers) return 0;
        if (CAS_SEQ(&h->idle, &st, st + 1)) {
            CRASH_POINT(CP_SEARCH);
            STORE_RLX(&lay_worker(L, wid)->state, (u64)W_SEARCHING);
            return 1;
        }
    }
}

/* Leave the searching state; the last searcher wakes a parked worker when it
 * saw more work than it took (tokio wakes unconditionally; waking only on a
 * backlog saves a futex wake per task when one task at a time trickles in).
 * Returns -1 (and changes nothing) if wid was not counted as searching. */
static inline int search_end(const layout_t *L, u64 wid, int more, u64 *rot) {
    header_t *h = lay_hdr(L);
    STORE_RLX(&lay_worker(L, wid)->state, (u64)W_RUNNING);
    u64 prev = FETCH_SUB_SEQ(&h->idle, 1);
    if ((prev & IDLE_SEARCH_MASK) == 0) {
        FETCH_ADD_SEQ(&h->idle, 1); /* was not counted: undo, corrupt caller */
        return -1;
    }
    if ((prev & IDLE_SEARCH_MASK) == 1) {
        if (more || ring_nonempty(lay_inject(L), L->inject_cap)) park_notify(L, rot);
    }
    return 0;
}

/* Crash reclaim: the coordinator marks worker wid gone and fixes the idle
 * word for the state it died in (parked: it had given up its unparked
 * count, which its replacement takes over; searching or notified: it held a
 * searching count).  Returns the state it died in.  (admin.c worker_dead.) */
static inline u64 park_worker_dead(const layout_t *L, u64 wid, int exited) {
    worker_t *w = lay_worker(L, wid);
    header_t *h = lay_hdr(L);
    u64 st = LOAD_SEQ(&w->state);
    if (st == W_PARKED) FETCH_ADD_SEQ(&h->idle, IDLE_UNPARK_ONE);
    if (st == W_SEARCHING || st == W_NOTIFIED) FETCH_SUB_SEQ(&h->idle, 1);
    STORE_SEQ(&w->state, (u64)(exited ? W_EXITED : W_DEAD));
    return st;
}

/* The completer's half of the join wake: prev_state is the child's word
 * before RUNNING -> COMPLETE; wake the joiner only if it asked. */
static inline void join_wake(worker_t *joiner, u64 prev_state) {
    if (joiner && (prev_state & S_JOIN_WAKER)) {
        FETCH_ADD_SEQ(&joiner->park_seq, 1); /* pairs with park_sleep's step 3 load */
        futex_wake_u32(&joiner->park_seq, 1);
    }
}

#endif
