/*
 * queue.h -- the run queues: per-worker local queue (tokio's
 * scheduler/multi_thread/queue.rs) and a bounded MPMC ring (Dmitry Vyukov's
 * array queue) used for the inject queue and the completion rings.
 *
 * Local queue
 * -----------
 *   head (u64):  | steal (u32) | real (u32) |     tail (u32, owner-only writes)
 *
 *   owner push:  write buf[tail], then store tail+1 (release; pairs with the
 *                stealer's acquire load of tail).
 *   owner pop:   CAS head.real forward (if steal == real, move both).
 *   steal half:  CAS head.real forward by n, keeping steal (claims the batch
 *                and marks "steal in progress"); copy the batch into the
 *                stealer's own buffer; CAS head.steal up to head.real.
 *                Only one steal at a time: a stealer that sees steal != real
 *                backs off.
 *   overflow:    owner full and no steal in progress: claim half the queue
 *                with a CAS of head, move it and the new task to inject.
 * Positions are wrapping u32; the buffer index is pos & (cap - 1), cap a
 * power of two <= LOCAL_CAP_MAX.
 *
 * Values read from a buffer are slot indices and are bounds-checked by the
 * caller before use (slot_at returns NULL for a bad one).
 *
 * Crash-safe ring (after Vyukov's bounded MPMC array queue)
 * -----------------------------------------------------------
 * Vyukov's ring claims a cell with a CAS on `enq` and publishes it with a
 * later store: a producer that dies between the two blocks the ring at that
 * cell for good.  Here a cell is one 64-bit word, so claiming and publishing
 * are the same CAS, and `enq`/`deq` are only hints that anyone may advance:
 *
 *   cell word:  | seq (u32) | val (u32; 31 bits used) |
 *
 *     seq == p           free for position p (initially seq(i) = i)
 *     seq == p + 1       holds the value pushed at position p
 *     seq == p + cap     consumed at p: free for position p + cap
 *
 *   push(v):  at enq position p, CAS the cell (p, _) -> (p + 1, v): the value
 *             is in the ring the instant the CAS succeeds.  Then CAS enq
 *             p -> p + 1.  A cell already at p + 1 means a producer pushed
 *             and has not moved enq yet (or died): help it, move on.
 *   pop():    at deq position p, CAS the cell (p + 1, v) -> (p + cap, 0); the
 *             value is ours the instant the CAS succeeds.  Then CAS deq.  A
 *             cell at p + cap means a consumer has not moved deq: help.
 *
 * A process can die between any two of these steps and leave only a lagging
 * hint, which the next operation repairs: no claimed-but-unpublished cell,
 * no length counter to drift.  Emptiness is read from the cells themselves
 * (ring_nonempty), so "empty" proves no value was published at that moment
 * (SeqCst, for the park/notify handshake).  ring_count() (enq - deq) is an
 * estimate for sizing decisions only.
 *
 * Capacity is a power of two >= 2 and >= the number of values that can be
 * in the ring at once (slots, tokens), so a push fails only when shared
 * memory is corrupt.  Positions are u64; cells compare their low 32 bits
 * (wrapping, signed difference), far beyond what a preempted process can
 * miss.
 */
#ifndef SHMRT_QUEUE_H
#define SHMRT_QUEUE_H

#include "layout.h"

static inline u32 head_steal(u64 h) { return (u32)(h >> 32); }
static inline u32 head_real(u64 h) { return (u32)h; }
static inline u64 head_pack(u32 steal, u32 real) { return ((u64)steal << 32) | real; }

/* ---- crash-safe ring ---------------------------------------------------- */
#define RING_VAL_MASK 0x7fffffffULL

static inline u64 cell_pack(u64 seq, u64 val) { return (seq << 32) | (val & 0xffffffffULL); }
static inline u32 cell_seq(u64 w) { return (u32)(w >> 32); }
static inline int32_t seq_diff(u32 a, u64 pos) { return (int32_t)(a - (u32)pos); }

/* Advance a hint from pos to pos + 1 unless someone already did.  A failed
 * CAS means another process moved it: either way it is past pos now. */
static inline void ring_hint_advance(u64 *hint, u64 pos) {
    u64 exp = pos;
    CAS_ACQREL(hint, &exp, pos + 1); /* pairs with the acquire loads of the hint */
}

/* Push a value (< 2^31).  0 pushed, -1 full or corrupt. */
static inline int ring_push_inl(ring_t *r, u64 cap, u64 val) {
    u64 pos = LOAD_ACQ(&r->enq); /* pairs with ring_hint_advance */
    for (u64 spins = 0;; spins++) {
        u64 *c = &r->cells[pos & (cap - 1)];
        u64 w = LOAD_ACQ(c); /* pairs with the consumer's CAS freeing the cell */
        int32_t d = seq_diff(cell_seq(w), pos);
        if (d == 0) {
            /* SeqCst: the publication is one side of the park/notify Dekker
             * handshake (the pusher then reads the idle word; a parker
             * stores its state, then reads the cells). */
            if (CAS_SEQ(c, &w, cell_pack(pos + 1, val & RING_VAL_MASK))) {
                ring_hint_advance(&r->enq, pos);
                return 0;
            }
            continue; /* the cell changed under us: look again */
        }
        if (d < 0) return -1; /* an unconsumed value of the previous lap: full */
#ifdef SHMRT_MUTANT_RING_STALE_ENQ
        if (d != 1) { /* the first draft: only "pushed, enq not moved" was helped */
            u64 now = LOAD_ACQ(&r->enq);
            if (now == pos || spins > cap) return -1;
            pos = now;
            continue;
        }
#endif
        /* d > 0: position pos is used (pushed, and maybe consumed since) and
         * enq was not moved past it: its pusher is slow or dead.  Help.
         * (Helping only d == 1 reported a consumed cell as "full" forever
         * after a pusher died there: tools/check, docs/checking.md bug 1.) */
        ring_hint_advance(&r->enq, pos);
        u64 now = LOAD_ACQ(&r->enq);
        pos = (int64_t)(now - pos) > 0 ? now : pos + 1;
        if (spins > 4 * cap) return -1; /* corrupt cells everywhere: never spin */
    }
}

/* Pop a value.  Returns 1 and sets *out, or 0 when empty (or corrupt). */
static inline int ring_pop_u64(ring_t *r, u64 cap, u64 *out) {
    u64 pos = LOAD_ACQ(&r->deq); /* pairs with ring_hint_advance */
    for (u64 spins = 0;; spins++) {
        u64 *c = &r->cells[pos & (cap - 1)];
        u64 w = LOAD_ACQ(c); /* pairs with the producer's CAS publishing it */
        int32_t d = seq_diff(cell_seq(w), pos + 1);
        if (d == 0) {
            if (CAS_SEQ(c, &w, cell_pack(pos + cap, 0))) { /* pairs with push's load */
                ring_hint_advance(&r->deq, pos);
                *out = w & RING_VAL_MASK;
                return 1;
            }
            continue;
        }
        if (d < 0) return 0; /* free for pos: nothing was pushed there */
        /* d > 0: consumed at pos (and maybe pushed again a lap later), deq
         * not moved past it: its consumer is slow or dead.  Help. */
        ring_hint_advance(&r->deq, pos);
        u64 now = LOAD_ACQ(&r->deq);
        pos = (int64_t)(now - pos) > 0 ? now : pos + 1;
        if (spins > 4 * cap) return 0; /* corrupt cells everywhere: never spin */
    }
}

/* Pop a slot index, or -1. */
static inline long ring_pop_inl(ring_t *r, u64 cap) {
    u64 v;
    return ring_pop_u64(r, cap, &v) ? (long)v : -1;
}

/* Is a value published at the head?  Exact at the moment of the SeqCst cell
 * load (the parker's half of the Dekker handshake); deq may lag behind
 * consumed cells, which are skipped. */
static inline int ring_nonempty(ring_t *r, u64 cap) {
    u64 pos = LOAD_SEQ(&r->deq);
    for (u64 i = 0; i < 2 * cap; i++, pos++) {
        int32_t d = seq_diff(cell_seq(LOAD_SEQ(&r->cells[pos & (cap - 1)])), pos + 1);
        if (d == 0) return 1;
        if (d < 0) return 0; /* free for pos: empty here */
        /* d > 0: consumed at pos, deq lags: look further */
    }
    return 0;
}

/* Number of values in the ring: an estimate from the hints (they may lag by
 * the operations in flight), clamped to [0, cap]. */
static inline u64 ring_count(ring_t *r, u64 cap) {
    u64 d = LOAD_ACQ(&r->deq), e = LOAD_ACQ(&r->enq);
    int64_t n = (int64_t)(e - d);
    return n < 0 ? 0 : (u64)n > cap ? cap : (u64)n;
}

static inline void ring_init(ring_t *r, u64 cap) {
    for (u64 i = 0; i < cap; i++) r->cells[i] = cell_pack(i, 0);
    r->enq = r->deq = 0;
}

/* ---- local queue --------------------------------------------------------- */
static inline u32 lq_len(local_queue_t *q) {
    u64 h = LOAD_ACQ(&q->head);
    u32 t = (u32)LOAD_ACQ(&q->tail);
    return t - head_real(h);
}

/* Owner pop.  Returns a slot index, or -1 when empty. */
static inline long lq_pop(local_queue_t *q, u64 cap) {
    u64 h = LOAD_ACQ(&q->head);
    for (;;) {
        u32 steal = head_steal(h), real = head_real(h);
        u32 tail = (u32)LOAD_RLX(&q->tail); /* owner-only writer: us */
        if (real == tail) return -1;
        u32 nreal = real + 1;
        u64 next = steal == real ? head_pack(nreal, nreal) : head_pack(steal, nreal);
        if (CAS_ACQREL(&q->head, &h, next))
            return (long)LOAD_RLX(&q->buf[real & (cap - 1)]);
    }
}

/* Owner push.  Returns 0 on success; 1 when the queue is full, in which case
 * *moved (up to cap/2 + 1 entries, the new task last) holds the tasks the
 * caller must push to the inject queue. */
static inline int lq_push(local_queue_t *q, u64 cap, u32 idx, u32 *moved, u32 *n_moved) {
    for (;;) {
        u64 h = LOAD_ACQ(&q->head); /* pairs with a stealer's CAS release */
        u32 steal = head_steal(h), real = head_real(h);
        u32 tail = (u32)LOAD_RLX(&q->tail);
        if (tail - steal < (u32)cap) {
            STORE_RLX(&q->buf[tail & (cap - 1)], idx);
            STORE_REL(&q->tail, (u64)(tail + 1)); /* pairs with stealer's acquire */
            return 0;
        }
        if (steal != real) { /* a steal is freeing room: send just this task */
            moved[0] = idx;
            *n_moved = 1;
            return 1;
        }
        u32 half = (u32)cap / 2;
        u64 next = head_pack(real + half, real + half);
        if (!CAS_ACQREL(&q->head, &h, next)) continue; /* a stealer raced: retry */
        for (u32 i = 0; i < half; i++) moved[i] = LOAD_RLX(&q->buf[(real + i) & (cap - 1)]);
        moved[half] = idx;
        *n_moved = half + 1;
        return 1;
    }
}

/* Steal half of src into dst (dst is owned by the caller and empty enough).
 * Returns the number of tasks moved into dst's buffer (not yet published). */
static inline u32 lq_steal_into2(local_queue_t *src, local_queue_t *dst, u64 cap, u32 dst_tail) {
    u64 prev = LOAD_ACQ(&src->head);
    u64 next;
    u32 n;
    for (;;) {
        u32 steal = head_steal(prev), real = head_real(prev);
        if (steal != real) return 0; /* another stealer is active */
        u32 tail = (u32)LOAD_ACQ(&src->tail); /* pairs with owner's release */
        n = tail - real;
        n -= n / 2;
        if (n == 0 || n > (u32)cap) return 0; /* empty, or a torn/corrupt read */
        next = head_pack(steal, real + n);
        if (CAS_ACQREL(&src->head, &prev, next)) break;
    }
#ifdef SHMRT_CRASH_H
    CRASH_POINT(CP_STEAL_CLAIM); /* crash.h: tests kill a thief here */
#endif
    u32 first = head_steal(next);
    for (u32 i = 0; i < n; i++) {
        u32 v = LOAD_RLX(&src->buf[(first + i) & (cap - 1)]);
        STORE_RLX(&dst->buf[(dst_tail + i) & (cap - 1)], v);
    }
    /* Finish: steal catches up with real.  The owner may pop meanwhile
     * (moving real), so loop. */
    prev = next;
    for (;;) {
        u32 real = head_real(prev);
        u64 done = head_pack(real, real);
        if (CAS_ACQREL(&src->head, &prev, done)) break;
    }
    return n;
}

#endif
