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
 * Vyukov ring
 * -----------
 * cells[i].seq starts at i.  A producer claims enq position p when
 * cells[p].seq == p (CAS enq), writes val, stores seq = p + 1 (release).  A
 * consumer claims deq position p when cells[p].seq == p + 1 (CAS deq), reads
 * val, stores seq = p + cap (release).  `len` is raised before a push and
 * lowered after a pop, so it never under-counts: len == 0 proves the ring
 * was empty at that moment (SeqCst, for the park/notify handshake).
 * Capacity >= number of slots, and a slot is in at most one ring at a time,
 * so a push cannot fail unless shared memory is corrupt.
 */
#ifndef SHMRT_QUEUE_H
#define SHMRT_QUEUE_H

#include "layout.h"

static inline u32 head_steal(u64 h) { return (u32)(h >> 32); }
static inline u32 head_real(u64 h) { return (u32)h; }
static inline u64 head_pack(u32 steal, u32 real) { return ((u64)steal << 32) | real; }

/* ---- Vyukov ring -------------------------------------------------------- */
static inline int ring_push_inl(ring_t *r, u64 cap, u64 val) {
    FETCH_ADD_SEQ(&r->len, 1); /* pairs with the SeqCst len load in park */
    u64 pos = LOAD_RLX(&r->enq);
    ring_cell_t *c;
    for (;;) {
        c = &r->cells[pos & (cap - 1)];
        u64 seq = LOAD_ACQ(&c->seq); /* pairs with the consumer's release */
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (CAS_ACQREL(&r->enq, &pos, pos + 1)) break;
        } else if (diff < 0) {
            FETCH_SUB_SEQ(&r->len, 1);
            return -1; /* full: impossible by sizing unless corrupt */
        } else {
            u64 now = LOAD_RLX(&r->enq);
            if (now == pos) { /* the cell is ahead but nobody moved enq: corrupt */
                FETCH_SUB_SEQ(&r->len, 1);
                return -1;
            }
            pos = now;
        }
    }
    STORE_RLX(&c->val, val);
    STORE_REL(&c->seq, pos + 1); /* publishes val; pairs with pop's acquire */
    return 0;
}

/* Pop the full 64-bit value (tokens).  Returns 1 and sets *out, or 0. */
static inline int ring_pop_u64(ring_t *r, u64 cap, u64 *out) {
    u64 pos = LOAD_RLX(&r->deq);
    ring_cell_t *c;
    for (;;) {
        c = &r->cells[pos & (cap - 1)];
        u64 seq = LOAD_ACQ(&c->seq); /* pairs with the producer's release */
        int64_t diff = (int64_t)(seq - (pos + 1));
        if (diff == 0) {
            if (CAS_ACQREL(&r->deq, &pos, pos + 1)) break;
        } else if (diff < 0) {
            return 0;
        } else {
            u64 now = LOAD_RLX(&r->deq);
            if (now == pos) return 0; /* corrupt cell: never spin */
            pos = now;
        }
    }
    *out = LOAD_RLX(&c->val);
    STORE_REL(&c->seq, pos + cap); /* frees the cell for the next lap */
    FETCH_SUB_SEQ(&r->len, 1);
    return 1;
}

/* Pop a slot index (masked to 31 bits; the caller bounds-checks it), or -1. */
static inline long ring_pop_inl(ring_t *r, u64 cap) {
    u64 v;
    return ring_pop_u64(r, cap, &v) ? (long)(v & 0x7fffffff) : -1;
}

static inline void ring_init(ring_t *r, u64 cap) {
    for (u64 i = 0; i < cap; i++) r->cells[i].seq = i;
    r->enq = r->deq = r->len = 0;
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
