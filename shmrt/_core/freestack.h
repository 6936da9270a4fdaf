/*
 * freestack.h -- the lock-free free stacks: free task slots (task.c) and
 * the arena's per-class free blocks (arena.c).  A Treiber stack whose head
 * carries an ABA tag:
 *
 *   head:  | tag (u32) | top (u32): node number + 1, 0 = empty |
 *   node:  its own `next` word: the node below it (number + 1), 0 = bottom
 *
 *   pop:   read head (acquire), read top's next, CAS head (tag+1, next)
 *   push:  node.next = top (relaxed: published by the CAS), CAS head
 *          (tag+1, node) with release; pairs with pop's acquire.
 *
 * Why the tag: between a popper's read of `next` and its CAS, another
 * process may pop the top, pop the next, and push the first back: the top
 * is the same but `next` is stale.  Without a tag the CAS succeeds and
 * installs a node that is in use as the new top (ABA).  The tag changes on
 * every successful CAS, so a stale CAS fails.  SHMRT_MUTANT_NO_ABA_TAG drops
 * it for the checker to find.
 *
 * Slots: never-used slots are not on the stack: slots_alloc carves them
 * from header.slots_carved, so creating a runtime touches no slot memory.
 */
#ifndef SHMRT_FREESTACK_H
#define SHMRT_FREESTACK_H

#include "access.h"

#define FS_TOP_MASK 0xffffffffULL
#define FS_CORRUPT ((u64)-1)

static inline u64 fs_next_head(u64 head, u64 top) {
#ifdef SHMRT_MUTANT_NO_ABA_TAG
    (void)head;
    return top;
#else
    return (((head >> 32) + 1) << 32) | (top & FS_TOP_MASK);
#endif
}

/* The `next` word of node `top` (number + 1), or NULL if top is not a valid
 * node: the caller's bounds and integrity check. */
typedef u64 *(*fs_link_fn)(const void *ctx, u64 top);

/* Pop: returns the node's number + 1, 0 when empty, FS_CORRUPT for a bad top
 * (nothing is changed then).  A `next` above max_top is cut to 0 when cut is
 * set (the slot stack cuts a corrupt tail; the arena keeps the link as it
 * is and lets block_at refuse it on the next pop). */
static inline u64 fs_pop(u64 *head_p, fs_link_fn link, const void *ctx, u64 max_top, int cut) {
    u64 head = LOAD_ACQ(head_p); /* pairs with fs_push's release CAS */
    for (;;) {
        u64 top = head & FS_TOP_MASK;
        if (top == 0) return 0;
        if (top > max_top) return FS_CORRUPT;
        u64 *nextp = link(ctx, top);
        if (!nextp) return FS_CORRUPT;
        u64 next = LOAD_ACQ(nextp);
        if (cut && next > max_top) next = 0; /* corrupt link: cut the stack */
        if (CAS_ACQREL(head_p, &head, fs_next_head(head, next))) return top;
    }
}

/* Push node `top` whose link word is nextp. */
static inline void fs_push(u64 *head_p, u64 *nextp, u64 top) {
    u64 head = LOAD_RLX(head_p);
    for (;;) {
        STORE_RLX(nextp, head & FS_TOP_MASK); /* published by the CAS below */
        if (CAS_REL(head_p, &head, fs_next_head(head, top))) return; /* pairs with fs_pop */
    }
}

/* ---- the slot free list -------------------------------------------------- */
static inline u64 *slots_link(const void *ctx, u64 top) {
    slot_t *sl = lay_slot((const layout_t *)ctx, top - 1);
    return sl ? &sl->next : NULL;
}

/* A free slot index, -1 when none is left, -2 when the stack is corrupt. */
static inline long slots_alloc(const layout_t *L) {
    header_t *h = lay_hdr(L);
    u64 top = fs_pop(&h->free_head, slots_link, L, L->n_slots, 1);
    if (top == FS_CORRUPT) return -2;
    if (top) {
        FETCH_SUB_SEQ(&h->free_count, 1);
        return (long)(top - 1);
    }
    /* stack empty: a never-used slot, if any are left */
    u64 c = LOAD_ACQ(&h->slots_carved);
    for (;;) {
        if (c >= L->n_slots) return -1;
        if (CAS_ACQREL(&h->slots_carved, &c, c + 1)) {
            FETCH_SUB_SEQ(&h->free_count, 1);
            return (long)c;
        }
    }
}

/* Put slot idx back (its owner fields already cleared by the caller). */
static inline void slots_push_free(const layout_t *L, u64 idx) {
    header_t *h = lay_hdr(L);
    fs_push(&h->free_head, &lay_slot(L, idx)->next, idx + 1);
    FETCH_ADD_SEQ(&h->free_count, 1);
}

#endif
