/*
 * holds.h -- who holds an arena block: per-process hold tables, and the
 * crash reclaim's recount of every block's references.
 *
 * Why: a block's `refs` counts its holders.  Slots (args, result) and
 * function entries are holders the reclaim can see in shared memory; a
 * process holding a view of a block (a numpy array unpickled over it, a
 * payload encoded and not yet in a slot) was invisible, so when that process
 * died its references were never dropped and the block leaked for the life
 * of the runtime.  Now every process that has a record (worker, client,
 * send worker) writes the blocks it holds into its own hold table, and the
 * reclaim recomputes every block's count from what is visible:
 *
 *   refs(block) = slots carrying it (SLOT_F_ARGS_BLOB / SLOT_F_RESULT_BLOB)
 *               + ready function entries whose pickled callable it is
 *               + live records whose hold table names it
 *
 * A record counts once per block however many views its process has: the
 * per-process count of views lives in the entry, beside the offset, and only
 * the owner reads it.  So a process's first view of a block takes a
 * reference, its last one drops it, and views in between touch no shared
 * word at all.
 *
 *   entry:  | local count (24) | block offset / 64 + 1 (40) |   0 = empty
 *
 *   hold_get     one more local reference: first one -> refs += 1, entry
 *   hold_put     one fewer: last one -> entry cleared, refs -= 1 (the last
 *                reference frees the block)
 *   hold_give    one local reference becomes a slot's or an entry's: last
 *                one -> entry cleared, refs unchanged; else refs += 1
 *   hold_adopt   a block just allocated (refs = 1) enters the table with n
 *                local references
 *
 * Every one runs inside a protocol section (section.h), so with the world
 * stopped each live table agrees with the counts; a dead process's table
 * is ignored (it may be half written) and cleared.  Windows inside a step
 * (a reference counted before its entry is written, an entry cleared
 * before its reference is dropped, a block popped off a free stack and not
 * yet counted, a slot flag taken and its block not yet released) need no
 * write-ahead record: the recount does not replay, it recomputes.  The one
 * write-ahead record is `carving`: a process that moves the bump pointer
 * and dies before writing the new block's header leaves a hole the walk
 * could not step over; the record says how big it is.
 *
 * A writable mapping without a record (the creator before it claims client
 * 0, tests on a raw segment) holds untracked references, counted in
 * header.arena_untracked; while that is non-zero the recount is skipped
 * (it would free what those hold), and dead records are left for their next
 * claimant, which drops their entries (hold_drop_stale).
 *
 * Pure: on a layout_t, like reclaim.h, so the model checker runs it
 * (tools/check, scenario holds; SHMRT_MUTANT_RECOUNT_KEEPS_DEAD counts a
 * dead process's table as alive, and must be caught).
 */
#ifndef SHMRT_HOLDS_H
#define SHMRT_HOLDS_H

#include "access.h"
#include "freestack.h"
#include "state.h"

#include <stdio.h>

#define HOLD_TOP(off) ((off) / CACHE_LINE + 1)
#define HOLD_ONE (1ULL << HOLD_COUNT_SHIFT)
#define HOLD_COUNT_MAX ((1ULL << (64 - HOLD_COUNT_SHIFT)) - 1)

/* ---- blocks ------------------------------------------------------------ */
/* Bytes of a block of size class c: its payload capacity in half steps
 * (4K, 6K, 8K, 12K, ...) plus the 64-byte header, so that a power-of-two
 * payload (a 16 MiB array) takes a block of its own size, not the next
 * class up. */
static inline u64 arena_class_bytes(u64 c) {
    return ((c & 1) ? (u64)(ARENA_MIN_BLOCK * 3 / 2) << (c / 2) : (u64)ARENA_MIN_BLOCK << (c / 2)) +
           BLOCK_HEADER_SIZE;
}

/* The block at arena offset off, or NULL: aligned, inside the arena, header
 * magic and class consistent, the whole block inside the arena. */
static inline block_t *lay_block(const layout_t *L, u64 off) {
    if (off % CACHE_LINE || L->arena_size < BLOCK_HEADER_SIZE ||
        off > L->arena_size - BLOCK_HEADER_SIZE)
        return NULL;
    block_t *b = (block_t *)(void *)(L->base + L->arena_off + off);
    u64 mc = LOAD_RLX(&b->magic_class);
    u64 c = mc & 0xffffffffULL;
    if ((mc >> 32) != BLOCK_MAGIC || c >= ARENA_CLASSES) return NULL;
    if (arena_class_bytes(c) > L->arena_size - off) return NULL;
    return b;
}

/* Pop a free block of class c off its stack (freestack.h; the link check
 * is lay_block's).  ARENA_POP_OK with *off set; ARENA_POP_EMPTY;
 * ARENA_POP_BAD_HEAD (the top is no block); ARENA_POP_IN_USE (the stack
 * handed out a block in use or of another class, *off names it): both
 * corruption, which would give one block to two owners. */
enum { ARENA_POP_OK = 0, ARENA_POP_EMPTY = -1, ARENA_POP_BAD_HEAD = -2, ARENA_POP_IN_USE = -3 };

static inline u64 *arena_link(const void *ctx, u64 top) {
    block_t *b = lay_block((const layout_t *)ctx, (top - 1) * CACHE_LINE);
    return b ? &b->next : NULL;
}

static inline int arena_pop(const layout_t *L, int c, u64 *off) {
    u64 top = fs_pop(&lay_hdr(L)->arena_free[c], arena_link, L, FS_TOP_MASK, 0);
    if (top == FS_CORRUPT) return ARENA_POP_BAD_HEAD;
    if (!top) return ARENA_POP_EMPTY;
    CRASH_POINT(CP_BLOCK_POP);
    *off = (top - 1) * CACHE_LINE;
    block_t *b = lay_block(L, *off);
    u64 refs = LOAD_ACQ(&b->refs); /* pairs with the last release's CAS */
    if (refs != 0 || (LOAD_RLX(&b->magic_class) & 0xffffffffULL) != (u64)c) return ARENA_POP_IN_USE;
    return ARENA_POP_OK;
}

/* A block just popped or carved becomes live with len bytes and one
 * reference (the caller's). */
static inline void arena_take(const layout_t *L, u64 off, u64 len) {
    block_t *b = lay_block(L, off);
    STORE_RLX(&b->len, len);
    STORE_REL(&b->refs, 1); /* pairs with a holder's acquire (block_ref's CAS) */
    FETCH_ADD_RLX(&lay_hdr(L)->arena_live_bytes,
                  arena_class_bytes(LOAD_RLX(&b->magic_class) & 0xffffffffULL));
}

/* Take a reference on a live block; -1 if it has none left (freed). */
static inline int block_ref(block_t *b) {
    u64 r = LOAD_RLX(&b->refs);
    for (;;) {
        if (r == 0) return -1;
        if (CAS_ACQREL(&b->refs, &r, r + 1)) return 0; /* pairs with block_unref's CAS */
    }
}

/* Put a block without references on its class's free stack. */
static inline void block_free(const layout_t *L, u64 off, block_t *b) {
    u64 c = LOAD_RLX(&b->magic_class) & 0xffffffffULL;
    header_t *h = lay_hdr(L);
    FETCH_SUB_ACQREL(&h->arena_live_bytes, arena_class_bytes(c));
    fs_push(&h->arena_free[c], &b->next, HOLD_TOP(off)); /* pairs with the alloc's fs_pop */
}

/* Drop a reference; the last one frees the block.  0, or -1 when the block
 * had none (nothing changed: the caller knows whether that is corruption). */
static inline int block_unref(const layout_t *L, u64 off, block_t *b) {
    u64 r = LOAD_RLX(&b->refs);
    for (;;) {
        if (r == 0) return -1; /* never underflow */
        if (CAS_ACQREL(&b->refs, &r, r - 1)) break; /* the last dropper sees all writes */
    }
    if (r == 1) block_free(L, off, b);
    return 0;
}

/* ---- hold tables ------------------------------------------------------- */
static inline u64 holds_records(const layout_t *L) {
    return L->n_workers + L->n_clients + L->n_send;
}
/* record numbers: workers, then clients, then send workers */
static inline u64 hold_rec_worker(const layout_t *L, u64 i) { return i; }
static inline u64 hold_rec_client(const layout_t *L, u64 i) { return L->n_workers + i; }
static inline u64 hold_rec_send(const layout_t *L, u64 i) { return L->n_workers + L->n_clients + i; }

static inline holds_t *lay_holds(const layout_t *L, u64 rec) {
    if (rec >= holds_records(L)) return NULL;
    return (holds_t *)(void *)(L->base + L->holds_off + rec * sizeof(holds_t));
}

/* The entry naming block off in the owner's table, or -1. */
static inline long holds_find(holds_t *t, u64 off) {
    u64 used = LOAD_RLX(&t->used), top = HOLD_TOP(off); /* owner-only words */
    if (used > HOLD_CAP) used = HOLD_CAP;
    for (u64 i = 0; i < used; i++)
        if ((LOAD_RLX(&t->e[i]) & HOLD_OFF_MASK) == top) return (long)i;
    return -1;
}

/* A free entry (used grows if needed), or -1 when the table is full. */
static inline long holds_free_entry(holds_t *t) {
    u64 used = LOAD_RLX(&t->used);
    if (used > HOLD_CAP) used = HOLD_CAP;
    if (LOAD_RLX(&t->count) < used)
        for (u64 i = 0; i < used; i++)
            if (!LOAD_RLX(&t->e[i])) return (long)i;
    if (used >= HOLD_CAP) return -1;
    STORE_RLX(&t->used, used + 1);
    return (long)used;
}

static inline void holds_clear_entry(holds_t *t, long i) {
    STORE_RLX(&t->e[i], 0);
    STORE_RLX(&t->count, LOAD_RLX(&t->count) - 1);
    u64 used = LOAD_RLX(&t->used);
    while (used && !LOAD_RLX(&t->e[used - 1])) used--; /* keep scans short */
    STORE_RLX(&t->used, used);
}

enum { HOLD_OK = 0, HOLD_BAD = -1, HOLD_FULL = -2 };

/* One more local reference on block off (a view).  t NULL: no record, the
 * reference is untracked.  HOLD_BAD: not a live block; HOLD_FULL: the table
 * has no room for another block (the caller copies instead). */
static inline int hold_get(const layout_t *L, holds_t *t, u64 off) {
    block_t *b = lay_block(L, off);
    if (!b) return HOLD_BAD;
    if (!t) {
        if (block_ref(b)) return HOLD_BAD;
        FETCH_ADD_RLX(&lay_hdr(L)->arena_untracked, 1);
        return HOLD_OK;
    }
    long i = holds_find(t, off);
    if (i >= 0) {
        u64 e = LOAD_RLX(&t->e[i]);
        if ((e >> HOLD_COUNT_SHIFT) >= HOLD_COUNT_MAX) return HOLD_FULL;
        STORE_RLX(&t->e[i], e + HOLD_ONE);
        return HOLD_OK;
    }
    i = holds_free_entry(t);
    if (i < 0) {
        STORE_RLX(&t->refused, LOAD_RLX(&t->refused) + 1);
        return HOLD_FULL;
    }
    if (block_ref(b)) return HOLD_BAD;
    CRASH_POINT(CP_HOLD_GET);
    STORE_RLX(&t->e[i], HOLD_ONE | HOLD_TOP(off));
    STORE_RLX(&t->count, LOAD_RLX(&t->count) + 1);
    return HOLD_OK;
}

/* Room for one more block in the table (checked before an allocation). */
static inline int holds_room(holds_t *t) {
    return !t || LOAD_RLX(&t->count) < HOLD_CAP;
}

/* A block just allocated (refs = 1, ours) enters the table with n local
 * references.  The caller checked holds_room first. */
static inline void hold_adopt(const layout_t *L, holds_t *t, u64 off, block_t *b, u64 n) {
    if (!t) {
        if (n > 1) FETCH_ADD_RLX(&b->refs, n - 1); /* nobody else can see it yet */
        FETCH_ADD_RLX(&lay_hdr(L)->arena_untracked, n);
        return;
    }
    long i = holds_free_entry(t); /* >= 0: holds_room said so */
    if (i < 0) return;
    STORE_RLX(&t->e[i], n * HOLD_ONE | HOLD_TOP(off));
    STORE_RLX(&t->count, LOAD_RLX(&t->count) + 1);
}

/* One fewer local reference on block off.  to_slot: it becomes a slot's
 * (or an entry's) instead of being dropped.  The process's last local
 * reference leaves the table; its shared count then goes to the slot as it
 * is, or is dropped (the last drop frees the block).  A local reference that
 * is not the last stays counted once for the process, so a slot taking one
 * takes a count of its own.  HOLD_BAD: we hold no reference on off (or the
 * block lost its count: corruption). */
static inline int hold_release(const layout_t *L, holds_t *t, u64 off, int to_slot) {
    block_t *b = lay_block(L, off);
    if (!b) return HOLD_BAD;
    if (!t) {
        if (!to_slot && block_unref(L, off, b)) return HOLD_BAD;
        FETCH_SUB_RLX(&lay_hdr(L)->arena_untracked, 1);
        return HOLD_OK;
    }
    long i = holds_find(t, off);
    if (i < 0) return HOLD_BAD;
    u64 e = LOAD_RLX(&t->e[i]);
    if ((e >> HOLD_COUNT_SHIFT) > 1) {
        if (to_slot && block_ref(b)) return HOLD_BAD;
        STORE_RLX(&t->e[i], e - HOLD_ONE);
        return HOLD_OK;
    }
    holds_clear_entry(t, i);
    CRASH_POINT(CP_HOLD_PUT);
    return (!to_slot && block_unref(L, off, b)) ? HOLD_BAD : HOLD_OK;
}

static inline int hold_put(const layout_t *L, holds_t *t, u64 off) {
    return hold_release(L, t, off, 0);
}
static inline int hold_give(const layout_t *L, holds_t *t, u64 off) {
    return hold_release(L, t, off, 1);
}

/* Is off a block we hold?  (A payload handed to a slot must be.) */
static inline int hold_check(const layout_t *L, holds_t *t, u64 off) {
    if (!lay_block(L, off)) return HOLD_BAD;
    return (!t || holds_find(t, off) >= 0) ? HOLD_OK : HOLD_BAD;
}

/* A record claimed again whose table still names blocks (its last owner
 * died and no recount cleared it): drop one reference per entry, which is
 * what the entry stood for (the reference is counted before the entry is
 * written, and the entry cleared before the reference is dropped).  Returns
 * the entries dropped, or -1 on a bad one (corruption; the rest are left). */
static inline long hold_drop_stale(const layout_t *L, holds_t *t) {
    long n = 0;
    u64 used = LOAD_RLX(&t->used);
    if (used > HOLD_CAP) used = HOLD_CAP;
    for (u64 i = 0; i < used; i++) {
        u64 top = LOAD_RLX(&t->e[i]) & HOLD_OFF_MASK;
        if (!top) continue;
        u64 off = (top - 1) * CACHE_LINE;
        block_t *b = lay_block(L, off);
        if (!b || block_unref(L, off, b)) return -1;
        STORE_RLX(&t->e[i], 0);
        n++;
    }
    STORE_RLX(&t->used, 0);
    STORE_RLX(&t->count, 0);
    STORE_RLX(&t->carving, 0);
    return n;
}

/* ---- the crash reclaim's recount (world stopped) ------------------------ */
typedef struct {
    u64 blocks;   /* carved blocks walked */
    u64 fixed;    /* blocks whose count was wrong */
    u64 freed;    /* blocks that had holders and now have none */
    u64 dropped;  /* entries of dead records' tables dropped */
    u64 holes;    /* dead carvers' headers written from their `carving` record */
    u64 skipped;  /* 1: untracked references exist, nothing recounted */
} recount_t;

/* Walk the carved blocks: calls visit(L, off, b, ctx) for each; -1 with why
 * set when the walk meets no block header where one must be. */
static inline int arena_walk(const layout_t *L, const unsigned char *dead_rec, recount_t *out,
                             int (*visit)(const layout_t *, u64, block_t *, void *), void *ctx,
                             char *why, size_t n) {
    u64 bump = LOAD_ACQ(&lay_hdr(L)->arena_bump); /* pairs with the carver's CAS */
    if (bump > L->arena_size || bump % CACHE_LINE) {
        snprintf(why, n, "arena: bump pointer %llu is not inside the arena (%llu bytes)",
                 (unsigned long long)bump, (unsigned long long)L->arena_size);
        return -1;
    }
    for (u64 off = 0; off < bump;) {
        block_t *b = (block_t *)(void *)(L->base + L->arena_off + off);
        if ((LOAD_RLX(&b->magic_class) >> 32) != BLOCK_MAGIC && bump - off >= BLOCK_HEADER_SIZE) {
            /* a carver that died between its CAS and its header store? */
            for (u64 r = 0; dead_rec && r < holds_records(L); r++) {
                u64 cv = dead_rec[r] ? LOAD_RLX(&lay_holds(L, r)->carving) : 0;
                if ((cv >> 8) != HOLD_TOP(off) || (cv & 0xff) >= ARENA_CLASSES) continue;
                STORE_RLX(&b->refs, 0);
                STORE_RLX(&b->len, 0);
                STORE_RLX(&b->magic_class, ((u64)BLOCK_MAGIC << 32) | (cv & 0xff));
                out->holes++;
                break;
            }
        }
        block_t *ok = lay_block(L, off);
        u64 size = ok ? arena_class_bytes(LOAD_RLX(&b->magic_class) & 0xffffffffULL) : 0;
        if (!ok || size > bump - off) {
            snprintf(why, n, "arena: no block header at offset %llu inside the carved area "
                     "(%llu bytes)", (unsigned long long)off, (unsigned long long)bump);
            return -1;
        }
        if (visit(L, off, b, ctx)) {
            snprintf(why, n, "arena: block at offset %llu is free, yet held", (unsigned long long)off);
            return -1;
        }
        off += size;
    }
    return 0;
}

static inline int recount_zero(const layout_t *L, u64 off, block_t *b, void *ctx) {
    STORE_RLX(&b->recount, 0);
    ((recount_t *)ctx)->blocks++;
    return 0;
}

/* one holder of the block at off; -1: off names no block */
static inline int recount_one(const layout_t *L, u64 off) {
    block_t *b = lay_block(L, off);
    if (!b) return -1;
    STORE_RLX(&b->recount, LOAD_RLX(&b->recount) + 1);
    return 0;
}

typedef struct {
    recount_t *out;
    u64 tops[ARENA_CLASSES]; /* the free stacks being rebuilt */
    u64 live;
} recount_apply_t;

static inline int recount_apply(const layout_t *L, u64 off, block_t *b, void *ctx) {
    recount_apply_t *a = (recount_apply_t *)ctx;
    u64 want = LOAD_RLX(&b->recount), refs = LOAD_ACQ(&b->refs); /* pairs with the last drop */
    u64 c = LOAD_RLX(&b->magic_class) & 0xffffffffULL;
    if (want != refs) a->out->fixed++;
    if (want && !refs) return -1; /* on a free stack, and someone names it */
    if (!want) {
        if (refs) a->out->freed++;
        STORE_RLX(&b->refs, 0);
        STORE_RLX(&b->next, a->tops[c]); /* published by the heads' release below */
        a->tops[c] = HOLD_TOP(off);
        return 0;
    }
    STORE_RLX(&b->refs, want);
    a->live += arena_class_bytes(c);
    return 0;
}

/* Recompute every carved block's count from its visible holders (module
 * comment), rebuild the free stacks and the live byte count, and clear the
 * dead records' tables.  dead_rec: one byte per record (workers, clients,
 * send workers), 1 = dead.  0, or -1 with why set (corruption: the caller
 * marks the runtime broken; some counts may be half recomputed then, which
 * a broken runtime no longer trusts anyway). */
static inline int arena_recount(const layout_t *L, const unsigned char *dead_rec,
                                recount_t *out, char *why, size_t n) {
    header_t *h = lay_hdr(L);
    *out = (recount_t){0};
    if (LOAD_RLX(&h->arena_untracked)) {
        out->skipped = 1;
        return 0;
    }
    if (arena_walk(L, dead_rec, out, recount_zero, out, why, n)) return -1;
    u64 carved = LOAD_ACQ(&h->slots_carved);
    if (carved > L->n_slots) carved = L->n_slots;
    for (u64 i = 0; i < carved; i++) { /* slots that hold a reference */
        slot_t *sl = lay_slot(L, i);
        if (!st_refs(LOAD_ACQ(&sl->state))) continue; /* pairs with the last drop */
        u64 f = LOAD_RLX(&sl->flags);
        if (((f & SLOT_F_ARGS_BLOB) && recount_one(L, LOAD_RLX(&sl->args_blob))) ||
            ((f & SLOT_F_RESULT_BLOB) && recount_one(L, LOAD_RLX(&sl->result_blob)))) {
            snprintf(why, n, "slot %llu: its block is not a block of the arena",
                     (unsigned long long)i);
            return -1;
        }
    }
    u64 nf = LOAD_ACQ(&h->fn_count);
    if (nf > L->n_funcs) nf = L->n_funcs;
    for (u64 i = 0; i < nf; i++) { /* ready function entries */
        func_t *f = (func_t *)(void *)(L->base + L->funcs_off + i * sizeof(func_t));
        if (LOAD_ACQ(&f->state) != FN_READY) continue; /* pairs with the registration's release */
        if (recount_one(L, LOAD_RLX(&f->blob))) {
            snprintf(why, n, "function table: entry %llu: its block is not a block of the arena",
                     (unsigned long long)i);
            return -1;
        }
    }
    for (u64 r = 0; r < holds_records(L); r++) { /* live records' tables */
        holds_t *t = lay_holds(L, r);
        u64 used = LOAD_RLX(&t->used);
        if (used > HOLD_CAP) used = HOLD_CAP;
        for (u64 i = 0; i < used; i++) {
            u64 top = LOAD_RLX(&t->e[i]) & HOLD_OFF_MASK;
            if (!top) continue;
#ifdef SHMRT_MUTANT_RECOUNT_KEEPS_DEAD
            if (0) {
#else
            if (dead_rec[r]) {
#endif
                out->dropped++;
            } else if (recount_one(L, (top - 1) * CACHE_LINE)) {
                snprintf(why, n, "hold table %llu: entry %llu names no block",
                         (unsigned long long)r, (unsigned long long)i);
                return -1;
            }
        }
    }
    recount_apply_t a = {.out = out};
    u64 blocks = out->blocks;
    if (arena_walk(L, NULL, out, recount_apply, &a, why, n)) return -1;
    out->blocks = blocks;
    for (int c = 0; c < ARENA_CLASSES; c++) {
        u64 old = LOAD_RLX(&h->arena_free[c]);
        STORE_REL(&h->arena_free[c], fs_next_head(old, a.tops[c])); /* pairs with fs_pop */
    }
    STORE_RLX(&h->arena_live_bytes, a.live);
    for (u64 r = 0; r < holds_records(L); r++) { /* dead tables: nothing of theirs is held */
        if (!dead_rec[r]) continue;
        holds_t *t = lay_holds(L, r);
        for (u64 i = 0; i < HOLD_CAP; i++) STORE_RLX(&t->e[i], 0);
        STORE_RLX(&t->used, 0);
        STORE_RLX(&t->count, 0);
        STORE_RLX(&t->carving, 0);
    }
    return 0;
}

#endif
