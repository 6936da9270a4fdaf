/*
 * state.h -- the task slot state word (after tokio runtime/task/state.rs).
 *
 *   | 63 ........................ 6 |   5   |    4    |   3   |   2   |  1  |  0  |
 *   |        reference count        | CANCL | JWAKER  | JOIN  | NOTIF | CMPL| RUN |
 *
 *   RUNNING        a worker is executing the task (owner field says which)
 *   COMPLETE       result written; never cleared until the slot is freed
 *   NOTIFIED       the task sits in a run queue (or is about to)
 *   JOIN_INTEREST  a handle (client future or spawn handle) wants the result
 *   JOIN_WAKER     a worker joining this task is parked and wants a wake
 *   CANCELLED      cancelled before it started; the runner drops it
 *
 * References (REF_ONE each): the handle (client future / spawn handle) and the
 * scheduler (queue entry, then the running worker).  A slot goes back to the
 * free list exactly once: by whoever drops the count to zero (ref_dec).
 *
 * Every transition is one CAS loop or fetch-op returning a tr_t.  An
 * impossible starting state returns TR_INVALID and changes nothing: shared
 * memory is not trusted, and a corrupt word must not be made worse.
 */
#ifndef SHMRT_STATE_H
#define SHMRT_STATE_H

#include "atomics.h"

#define S_RUNNING 1ULL
#define S_COMPLETE 2ULL
#define S_NOTIFIED 4ULL
#define S_JOIN_INTEREST 8ULL
#define S_JOIN_WAKER 16ULL
#define S_CANCELLED 32ULL
#define S_FLAGS_MASK 63ULL
#define REF_ONE 64ULL
#define REF_SHIFT 6

typedef enum {
    TR_OK = 0,
    TR_CANCELLED = 1, /* to_running: the task was cancelled; drop it */
    TR_COMPLETE = 2,  /* already complete */
    TR_RUNNING = 3,   /* already running (cancel refused) */
    TR_LAST_REF = 4,  /* ref_dec: this was the last reference */
    TR_INVALID = -1,  /* impossible starting state: corrupt word or bug */
} tr_t;

static inline u64 st_refs(u64 s) { return s >> REF_SHIFT; }

/* The initial word of a freshly submitted task: queued, a handle wants the
 * result, two references (handle + scheduler). */
#define STATE_INITIAL (S_NOTIFIED | S_JOIN_INTEREST | 2 * REF_ONE)

/* A fresh relay packet whose transform is built in (identity) is complete
 * as soon as it is filled: INITIAL -> COMPLETE | JOIN_INTEREST, one ref (the
 * scheduler's is dropped; the pipeline's handle stays).  Release: publishes
 * the result; pairs with the send worker's acquire load (relay_take). */
static inline tr_t transition_initial_to_complete(u64 *w) {
    u64 cur = STATE_INITIAL;
    return CAS_ACQREL(w, &cur, S_COMPLETE | S_JOIN_INTEREST | REF_ONE) ? TR_OK : TR_INVALID;
}

/* NOTIFIED -> RUNNING (or drop it when CANCELLED). Acquire: pairs with the
 * release CAS/store that published the slot's contents (submit/spawn). */
static inline tr_t transition_to_running(u64 *w) {
    u64 cur = LOAD_ACQ(w);
    for (;;) {
        if (!(cur & S_NOTIFIED) || (cur & (S_RUNNING | S_COMPLETE)) || st_refs(cur) == 0)
            return TR_INVALID;
        u64 next = cur & ~S_NOTIFIED;
        tr_t r = TR_CANCELLED;
        if (!(cur & S_CANCELLED)) {
            next |= S_RUNNING;
            r = TR_OK;
        }
        if (CAS_ACQREL(w, &cur, next)) return r;
    }
}

/* RUNNING -> COMPLETE.  Release: the result written before it is visible to
 * whoever sees COMPLETE with an acquire load (harvest, join).  *prev receives
 * the word before the transition (the caller checks JOIN_WAKER). */
static inline tr_t transition_to_complete(u64 *w, u64 *prev) {
    u64 cur = LOAD_ACQ(w);
    for (;;) {
        if (!(cur & S_RUNNING) || (cur & S_COMPLETE)) return TR_INVALID;
        u64 next = (cur & ~S_RUNNING) | S_COMPLETE;
        if (CAS_ACQREL(w, &cur, next)) {
            *prev = cur;
            return TR_OK;
        }
    }
}

/* Cancel a task that has not started.  Refused once RUNNING or COMPLETE. */
static inline tr_t transition_to_cancelled(u64 *w) {
    u64 cur = LOAD_ACQ(w);
    for (;;) {
        if (cur & S_COMPLETE) return TR_COMPLETE;
        if (cur & S_RUNNING) return TR_RUNNING;
        if (cur & S_CANCELLED) return TR_OK;
        if (st_refs(cur) == 0) return TR_INVALID;
        if (CAS_ACQREL(w, &cur, cur | S_CANCELLED)) return TR_OK;
    }
}

/* RUNNING -> NOTIFIED: the coordinator re-queues a task whose worker died
 * (retry).  The dead worker can no longer touch the word. */
static inline tr_t transition_to_notified_retry(u64 *w) {
    u64 cur = LOAD_ACQ(w);
    for (;;) {
        if (!(cur & S_RUNNING) || (cur & S_COMPLETE)) return TR_INVALID;
        u64 next = (cur & ~S_RUNNING) | S_NOTIFIED;
        if (CAS_ACQREL(w, &cur, next)) return TR_OK;
    }
}

/* A joiner registers for a wake.  SeqCst: pairs with the RMW in
 * transition_to_complete, so either the joiner sees COMPLETE here or the
 * completer sees JOIN_WAKER and wakes it. */
static inline tr_t set_join_waker(u64 *w) {
    u64 cur = LOAD_SEQ(w);
    for (;;) {
        if (cur & S_COMPLETE) return TR_COMPLETE;
        if (CAS_SEQ(w, &cur, cur | S_JOIN_WAKER)) return TR_OK;
    }
}

static inline tr_t unset_join_interest(u64 *w) {
    FETCH_AND_ACQREL(w, ~S_JOIN_INTEREST);
    return TR_OK;
}

/* The handle is dropped after it took the result (harvest, join_poll,
 * relay_done): JOIN_INTEREST and the handle's reference go in one CAS.  The
 * crash reclaim (reclaim.h) sets a COMPLETE slot's count from its flags;
 * an interest left set by a handle already gone was counted again when the
 * completer died before its own drop (tools/check, docs/checking.md bug 5:
 * a joined slot leaked, a harvested result delivered twice, a relay
 * packet's slot and budget unit kept).  SHMRT_MUTANT_HANDLE_KEEPS_INTEREST
 * drops only the reference, as those three did.  AcqRel: as ref_dec. */
static inline tr_t drop_handle(u64 *w) {
    u64 cur = LOAD_RLX(w);
    for (;;) {
        if (st_refs(cur) == 0) return TR_INVALID; /* never underflow */
#ifndef SHMRT_MUTANT_HANDLE_KEEPS_INTEREST
        u64 next = (cur & ~S_JOIN_INTEREST) - REF_ONE;
#else
        u64 next = cur - REF_ONE;
#endif
        if (CAS_ACQREL(w, &cur, next)) return st_refs(cur) == 1 ? TR_LAST_REF : TR_OK;
    }
}

static inline tr_t ref_inc(u64 *w) {
    u64 prev = FETCH_ADD_ACQREL(w, REF_ONE);
    return st_refs(prev) == 0 ? TR_INVALID : TR_OK;
}

/* AcqRel: the last dropper must see every write made under the other refs
 * before it recycles the slot. */
static inline tr_t ref_dec(u64 *w) {
    u64 cur = LOAD_RLX(w);
    for (;;) {
        if (st_refs(cur) == 0) return TR_INVALID; /* never underflow */
        if (CAS_ACQREL(w, &cur, cur - REF_ONE))
            return st_refs(cur) == 1 ? TR_LAST_REF : TR_OK;
    }
}

#endif
