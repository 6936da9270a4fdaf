/*
 * access.h -- bounds-checked pointers into the segment from a validated
 * private layout_t, for the pure protocol headers (park.h, runq.h,
 * freestack.h, budget.h, sendq.h, wake.h).
 *
 * core.h has the same accessors on a SegmentObject (it includes Python.h);
 * these take only the layout, so the protocols compile into the model
 * checker (tools/check) unchanged.  Every accessor returns NULL for an index
 * out of range, exactly like core.h's.
 */
#ifndef SHMRT_ACCESS_H
#define SHMRT_ACCESS_H

#include "layout.h"

/* Named crash points (crash.h) in the extension; nothing in the model
 * checker, which may kill a thread at every access anyway. */
#ifdef SHMRT_CHECKED
#define CRASH_POINT(p) ((void)0)
#else
#include "crash.h"
#endif

static inline header_t *lay_hdr(const layout_t *L) { return (header_t *)(void *)L->base; }

static inline worker_t *lay_worker(const layout_t *L, u64 wid) {
    if (wid >= L->n_workers) return NULL;
    return (worker_t *)(void *)(L->base + L->workers_off + wid * sizeof(worker_t));
}
static inline local_queue_t *lay_queue(const layout_t *L, u64 wid) {
    if (wid >= L->n_workers) return NULL;
    return (local_queue_t *)(void *)(L->base + L->queues_off + wid * sizeof(local_queue_t));
}
static inline slot_t *lay_slot(const layout_t *L, u64 idx) {
    if (idx >= L->n_slots) return NULL;
    return (slot_t *)(void *)(L->base + L->slots_off + idx * L->slot_size);
}
static inline client_t *lay_client(const layout_t *L, u64 cid) {
    if (cid >= L->n_clients) return NULL;
    return (client_t *)(void *)(L->base + L->clients_off + cid * L->client_stride);
}
static inline ring_t *lay_inject(const layout_t *L) {
    return (ring_t *)(void *)(L->base + L->inject_off);
}

/* ---- relay region (NULL when the runtime has no relay) ------------------ */
static inline relay_t *lay_relay(const layout_t *L) {
    return L->n_send ? (relay_t *)(void *)(L->base + L->relay_off) : NULL;
}
static inline ring_t *lay_fifo(relay_t *r) { return (ring_t *)(void *)r->fifo; }
static inline waiter_t *lay_waiter(const layout_t *L, u64 i) {
    if (i >= L->n_waiters) return NULL;
    return (waiter_t *)(void *)(L->base + L->relay_off + L->relay_hdr + i * sizeof(waiter_t));
}
static inline send_t *lay_send(const layout_t *L, u64 i) {
    if (i >= L->n_send) return NULL;
    return (send_t *)(void *)(L->base + L->relay_off + L->relay_hdr +
                              L->n_waiters * sizeof(waiter_t) + i * L->send_stride);
}
static inline ring_t *lay_send_ring(send_t *t) { return (ring_t *)(void *)t->rings; }
static inline ring_t *lay_waitlist(const layout_t *L, send_t *t) {
    u64 rb = (ring_bytes(L->send_cap) + CACHE_LINE - 1) & ~(u64)(CACHE_LINE - 1);
    return (ring_t *)(void *)((char *)t->rings + rb);
}

#endif
