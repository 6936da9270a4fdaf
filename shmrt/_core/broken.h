/*
 * broken.h -- the broken state on a layout_t: mark it, wake everyone, and
 * validate a quiescent ring.  The Python-free part of broken.c, so that the
 * crash reclaim (reclaim.h) refuses a corrupt segment the same way in the
 * extension and in the model checker (tools/check).
 *
 * Why a failed check is final for the runtime, and what the others do once
 * the run state is RUN_BROKEN: broken.c's module comment.  Here:
 *
 *   broken_mark(L, text)
 *     1. CAS the run state to RUN_BROKEN (SeqCst; from anything but STOPPED
 *        or BROKEN).  The first writer wins: it stores the reason text in
 *        the header (broken_reason), then its length with release order.
 *     2. run_wake_all (runstate.h): every futex in the segment, the
 *        clients' seq words included (a woken client fails its futures
 *        with the reason).  The run state's other transitions: runstate.h.
 *   ring_validate(...)  the whole of a quiescent ring is in a state the
 *     protocol can produce (the reclaim checks before it repairs).
 */
#ifndef SHMRT_BROKEN_H
#define SHMRT_BROKEN_H

#include "access.h"
#include "futex.h"
#include "queue.h"
#include "runstate.h"
#include "sendq.h"

#include <stdio.h>
#include <string.h>

/* Mark the runtime broken with `text` (first reason wins) and wake
 * everyone.  1 if this call moved the run state to RUN_BROKEN.  An observer
 * (a read-only mapping) reports, never marks: 0. */
static inline int broken_mark(const layout_t *L, const char *text) {
    if (!L->base || !L->writable) return 0;
    header_t *h = lay_hdr(L);
    u64 cur = LOAD_ACQ(&h->run_state);
    int won = 0;
    for (;;) {
        if (cur == RUN_BROKEN || cur == RUN_STOPPED) break;
        /* SeqCst: pairs with park.h's SeqCst load of the run state after it
         * read park_seq (bumped below): a parker sees BROKEN or is woken. */
        if (CAS_SEQ(&h->run_state, &cur, (u64)RUN_BROKEN)) {
            won = 1;
            break;
        }
    }
    if (won) {
        size_t n = 0;
        while (n < BROKEN_REASON_MAX - 1 && text[n]) n++;
        memcpy(h->broken_reason, text, n); /* published by the release store below */
        h->broken_reason[n] = 0;
        STORE_REL(&h->broken_len, (u64)n ? (u64)n : 1); /* pairs with broken_reason's acquire */
    }
    run_wake_all(L);
    return won;
}

/* Is the runtime broken?  A hint (relaxed); the CAS in broken_mark decides. */
static inline int broken_is(const layout_t *L) {
    return LOAD_RLX(&lay_hdr(L)->run_state) == RUN_BROKEN;
}

/* The whole ring of a quiescent segment (the crash reclaim has the world
 * stopped): from deq on, cells consumed with deq lagging (a consumer died
 * between its cell CAS and the hint), then one lap of published cells
 * (values < max_val) followed by free cells, each with the sequence its
 * position says; enq not past the first free cell.  The lap starts after
 * the lagging cells: from deq, it missed the newest cells of a full ring
 * (docs/checking.md bug 7).  0, or -1 with `why`. */
static inline int ring_validate(ring_t *r, u64 cap, u64 max_val, const char *what, char *why,
                                size_t n) {
    u64 p = LOAD_ACQ(&r->deq), end = 0; /* pairs with ring_hint_advance */
    for (u64 i = 0; i < cap; i++, p++) { /* consumed, deq lagging */
        u64 w = LOAD_ACQ(&r->cells[p & (cap - 1)]); /* pairs with the CAS that wrote it */
        if (seq_diff(cell_seq(w), p + 1) <= 0) break;
    }
    int phase = 1; /* 1 published, 2 free */
    for (u64 i = 0; i < cap; i++, p++) {
        u64 w = LOAD_ACQ(&r->cells[p & (cap - 1)]); /* pairs with the CAS that wrote it */
        int32_t d = seq_diff(cell_seq(w), p + 1);
        if (d == 0 && phase == 1) {
            if ((w & RING_VAL_MASK) >= max_val) {
                snprintf(why, n, "%s: cell %llu holds value %llu (limit %llu)", what,
                         (unsigned long long)(p & (cap - 1)),
                         (unsigned long long)(w & RING_VAL_MASK), (unsigned long long)max_val);
                return -1;
            }
            continue;
        }
        if (d == -1) {
            if (phase == 1) end = p;
            phase = 2;
            continue;
        }
        snprintf(why, n, "%s: cell %llu holds sequence %u at position %llu", what,
                 (unsigned long long)(p & (cap - 1)), cell_seq(w), (unsigned long long)p);
        return -1;
    }
    u64 e = LOAD_ACQ(&r->enq); /* pairs with ring_hint_advance */
    if (phase == 2 && (int64_t)(e - end) > 0) {
        snprintf(why, n, "%s: enq hint %llu is past the first free position %llu", what,
                 (unsigned long long)e, (unsigned long long)end);
        return -1;
    }
    return 0;
}

#endif
