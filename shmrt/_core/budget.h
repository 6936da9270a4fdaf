/*
 * budget.h -- the relay's in-flight budget: a counting semaphore in shared
 * memory with a FIFO of per-waiter entries.  relay.c wraps it for Python;
 * the model checker (tools/check, scenario budget) runs it as it is.
 *
 * Why per-waiter entries (iroh #3067): when many senders wait on one bounded
 * queue, a single shared waker slot loses wakeups (each registration
 * overwrites the last), and "check capacity, then register" returns Pending
 * while the queue has room.  Here every waiter owns its own wait state, and
 * the order is always register -> re-check -> sleep.
 *
 *   relay.avail          units free now
 *   waiter.state         | gen (56) | WT_* (8) |   low 32 bits: futex word
 *   FIFO token (31 bits) | entry (12) | gen & TOKEN_GEN_MASK (19) |
 *
 *   acquire:  fast path CAS avail-1.  Else claim a waiter entry, set it
 *             WAITING (new generation), push its token on the FIFO, THEN
 *             re-check avail: got a unit -> cancel the entry (if a releaser
 *             already woke it, we hold two units: pass one on).  Else sleep
 *             on the entry's own futex word until WOKEN.
 *   release:  avail+1, THEN if the FIFO is non-empty take the unit back and
 *             hand it to the first live token (CAS WAITING -> WOKEN, wake
 *             its futex): one wake per freed unit.  A stale token (cancelled
 *             or re-registered entry) gives the unit back and moves on.
 * Both sides use SeqCst on (FIFO cells, avail): either the waiter's re-check
 * sees the unit or the releaser sees the waiter's token.  A waiter sleeps
 * with a safety timeout; waking by it while units are free would be a lost
 * wakeup and is counted (pending_with_capacity, must stay 0).
 *
 * Mutants for the checker: SHMRT_MUTANT_IROH_CHECK_THEN_REGISTER (no
 * re-check after registering) and SHMRT_MUTANT_SHARED_WAITER_SLOT (every
 * waiter uses entry 0, as a single shared waker slot would).
 */
#ifndef SHMRT_BUDGET_H
#define SHMRT_BUDGET_H

#include "access.h"
#include "futex.h"
#include "queue.h"

#define BUDGET_SAFETY_TIMEOUT_S 0.1
/* A FIFO token is one ring value (31 bits): waiter entry (< 4096, 12 bits)
 * and the low 19 bits of the registration's generation.  A stale token's
 * generation would have to match after 2^19 re-registrations of its entry
 * while it sat in the FIFO, which holds at most 4 * n_waiters + 4 tokens. */
#define TOKEN_GEN_BITS 19
#define TOKEN_GEN_MASK ((1ULL << TOKEN_GEN_BITS) - 1)

enum { BUDGET_OK = 0, BUDGET_FULL = 1, BUDGET_TIMEOUT = 2 };

/* The extension's hooks (relay.c): budget_acquire sleeps, so each stretch
 * between two sleeps is one protocol step there (section.h), and `units`
 * (the client's record of units in hand) is bumped in the step that takes
 * the unit.  A crash reclaim therefore never finds a unit that is neither
 * free, in a packet, in a client's record nor handed to a live waiter.
 * The checker keeps the defaults. */
#ifndef BUDGET_STEP_PAUSE
#define BUDGET_STEP_PAUSE()  /* leave the step: about to sleep */
#define BUDGET_STEP_RESUME() /* a step again */
#endif
static inline int budget_got(u64 *units) {
    if (units) FETCH_ADD_RLX(units, 1); /* published when the step ends (release) */
    return BUDGET_OK;
}

static inline int budget_try(relay_t *r) {
    u64 v = LOAD_SEQ(&r->avail); /* pairs with release's SeqCst add */
    while (v > 0)
        if (CAS_SEQ(&r->avail, &v, v - 1)) return 1;
    return 0;
}

/* Give one unit back and hand it to the first live waiter, if any. */
static inline void budget_release_one(const layout_t *L, relay_t *r) {
    FETCH_ADD_SEQ(&r->avail, 1); /* step 1: the unit is visible to re-checkers */
    ring_t *f = lay_fifo(r);
    u64 fc = fifo_cap(L->n_waiters);
    for (;;) {
        if (!ring_nonempty(f, fc)) return; /* step 2: any waiter? */
        if (!budget_try(r)) return;        /* somebody took the unit: nothing to hand */
        u64 tok;
        if (!ring_pop_u64(f, fc, &tok)) {
            /* the token we saw was taken (by a releaser, or its own waiter's
             * cleanup): give the unit back */
            FETCH_ADD_SEQ(&r->avail, 1);
#ifndef SHMRT_MUTANT_BUDGET_GIVE_BACK
            /* (tools/check: docs/checking.md, bug 4) a waiter that registered
             * and re-checked while we held the unit missed it; look again. */
            continue;
#else
            return; /* as relay.c did: that waiter sleeps with the unit free */
#endif
        }
        waiter_t *w = lay_waiter(L, tok >> TOKEN_GEN_BITS);
        if (w) {
            u64 st = LOAD_SEQ(&w->state);
            if (((st >> 8) & TOKEN_GEN_MASK) == (tok & TOKEN_GEN_MASK) &&
                (st & WT_MASK) == WT_WAITING &&
                CAS_SEQ(&w->state, &st, (st & ~WT_MASK) | WT_WOKEN)) { /* pairs with waiter's load */
                FETCH_ADD_RLX(&r->wakes, 1);
                futex_wake_u32(&w->state, 1);
                return;
            }
        }
        FETCH_ADD_SEQ(&r->avail, 1); /* stale token: give the unit back, next one */
    }
}

/* The crash reclaim's new budget (world stopped, reclaim.h): `avail` units
 * are free.  They are released one by one, so waiters asleep in the FIFO
 * get them as from any release (no waiter sleeps while units are free). */
static inline void budget_reset(const layout_t *L, relay_t *r, u64 avail) {
    STORE_SEQ(&r->avail, 0); /* pairs with budget_try's SeqCst load */
    for (u64 i = 0; i < avail; i++) budget_release_one(L, r);
}

static inline waiter_t *budget_claim_waiter(const layout_t *L, u64 pid, u64 *widx) {
#ifdef SHMRT_MUTANT_SHARED_WAITER_SLOT
    *widx = 0; /* one shared entry: each registration overwrites the last */
    STORE_RLX(&lay_waiter(L, 0)->pid, pid);
    return lay_waiter(L, 0);
#endif
    for (u64 i = 0; i < L->n_waiters; i++) {
        waiter_t *w = lay_waiter(L, i);
        u64 exp = 0;
        if (LOAD_RLX(&w->pid) == 0 && CAS_ACQREL(&w->pid, &exp, pid)) {
            *widx = i;
            return w;
        }
    }
    return NULL;
}

/* Acquire one unit: BUDGET_OK, BUDGET_FULL (nowait) or BUDGET_TIMEOUT.
 * timeout < 0: wait as long as it takes.  pid: ours, to claim an entry. */
static inline int budget_acquire(const layout_t *L, relay_t *r, u64 pid, double timeout,
                                 int nowait, u64 *units) {
    if (budget_try(r)) {
        FETCH_ADD_RLX(&r->fast, 1);
        return budget_got(units);
    }
    if (nowait) {
        FETCH_ADD_RLX(&r->full, 1);
        return BUDGET_FULL;
    }
    double deadline = timeout >= 0 ? (double)now_ns() * 1e-9 + timeout : -1;
    u64 widx;
    waiter_t *w = budget_claim_waiter(L, pid, &widx);
    if (!w) { /* more blocked threads than entries: poll (counted as spurious) */
        for (;;) {
            if (budget_try(r)) return budget_got(units);
            if (deadline >= 0 && (double)now_ns() * 1e-9 >= deadline)
                return BUDGET_TIMEOUT; /* counted by the caller: its wait may go on */
            FETCH_ADD_RLX(&r->spurious, 1);
            BUDGET_STEP_PAUSE();
            os_nap_ns(50000);
            BUDGET_STEP_RESUME();
        }
    }
    int rc = BUDGET_OK;
    for (;;) { /* one registration per pass */
        u64 gen = (LOAD_RLX(&w->state) >> 8) + 1;
        u64 me = gen << 8, exp;
        STORE_SEQ(&w->state, me | WT_WAITING);
        if (ring_push_inl(lay_fifo(r), fifo_cap(L->n_waiters),
                          (widx << TOKEN_GEN_BITS) | (gen & TOKEN_GEN_MASK))) {
            STORE_SEQ(&w->state, me | WT_CANCELLED); /* FIFO full of stale tokens */
            BUDGET_STEP_PAUSE();
            os_nap_ns(50000);
            BUDGET_STEP_RESUME();
            if (budget_try(r)) goto done;
            continue;
        }
        FETCH_ADD_RLX(&r->registrations, 1);
#ifndef SHMRT_MUTANT_IROH_CHECK_THEN_REGISTER
        if (budget_try(r)) { /* the re-check after registering */
            FETCH_ADD_RLX(&r->recheck, 1);
            exp = me | WT_WAITING;
            if (!CAS_SEQ(&w->state, &exp, me | WT_CANCELLED)) {
                FETCH_ADD_RLX(&r->passed_on, 1); /* woken too: two units, pass one on */
                budget_release_one(L, r);
            }
            goto done;
        }
#endif
        for (;;) {
            double now = (double)now_ns() * 1e-9;
            double left = deadline >= 0 ? deadline - now : BUDGET_SAFETY_TIMEOUT_S;
            if (deadline >= 0 && left <= 0) {
                exp = me | WT_WAITING;
                if (CAS_SEQ(&w->state, &exp, me | WT_CANCELLED)) {
                    FETCH_ADD_RLX(&r->withdrawn, 1);
                    rc = BUDGET_TIMEOUT; /* the caller counts a timeout: its wait may go on */
                }
                goto done; /* else: woken just now, we hold the unit */
            }
            BUDGET_STEP_PAUSE();
            int woke = futex_wait_u32(&w->state, (u32)(me | WT_WAITING),
                                      left < BUDGET_SAFETY_TIMEOUT_S ? left : BUDGET_SAFETY_TIMEOUT_S);
            BUDGET_STEP_RESUME();
            u64 st = LOAD_SEQ(&w->state); /* pairs with the releaser's CAS */
            if ((st & WT_MASK) == WT_WOKEN) goto done;
            if (woke) {
                FETCH_ADD_RLX(&r->spurious, 1);
                continue;
            }
            if (LOAD_SEQ(&r->avail) > 0 && (deadline < 0 || (double)now_ns() * 1e-9 < deadline)) {
                /* slept through free capacity: a lost wakeup.  Count it and
                 * recover by registering again. */
                FETCH_ADD_RLX(&r->pending_with_capacity, 1);
                exp = me | WT_WAITING;
                if (!CAS_SEQ(&w->state, &exp, me | WT_CANCELLED)) goto done;
                if (budget_try(r)) goto done;
                break; /* re-register */
            }
        }
    }
done:
    if (rc == BUDGET_OK) budget_got(units); /* the unit is ours: counted before ... */
    STORE_REL(&w->pid, 0);                  /* ... the entry (a WOKEN one held it) is freed */
    return rc;
}

#endif
