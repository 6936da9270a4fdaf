/*
 * p_holds.c -- who holds an arena block (holds.h): per-process hold tables
 * and the block reference counts they stand for, and the crash reclaim's
 * recount.  Two class-0 blocks: A (offset 0) held by function entry 0 (a
 * pickled callable), B on the free stack.  Clients 0-2 are the threads:
 *
 *   T0: view A, view A again, drop both (a nested view: one reference)
 *   T1: view A, drop it
 *   T2: allocate B (arena_pop + arena_take + hold_adopt, as blob_alloc),
 *       hand one reference to slot 0 (hold_give, as submit), drop the other
 *       (the producer's view), then the slot's (the task's completion)
 *
 * Invariants: A never loses the function entry's reference while views come
 * and go (A.refs >= 1 after every step), and at the end every block's count
 * is its holders: A 1 (the entry), B 0 and on the free stack exactly once,
 * the live byte count A's, every table empty.  With a crash: the real
 * reclaim (reclaim.h, holds.h arena_recount) repairs whatever step the dead
 * thread was in, and the same end state must hold.  The mutant
 * SHMRT_MUTANT_RECOUNT_KEEPS_DEAD counts a dead process's table as if it
 * were alive (its views would then hold A for ever).
 */
#include "coord.h"
#include "holds.h"

#define OFF_A 0ULL
static u64 off_b;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 1, .n_slots = 2, .local_cap = 4, .n_clients = 3,
                   .arena_blocks = 2};
    chk_layout(&c);
    const layout_t *L = &chk_L;
    header_t *h = lay_hdr(L);
    u64 size = arena_class_bytes(0);
    off_b = size;
    for (u64 off = 0; off < 2 * size; off += size) {
        block_t *b = (block_t *)(void *)(L->base + L->arena_off + off);
        b->magic_class = (u64)BLOCK_MAGIC << 32;
    }
    h->arena_bump = 2 * size;
    /* A: the callable of function entry 0 */
    lay_block(L, OFF_A)->refs = 1;
    lay_block(L, OFF_A)->len = 100;
    func_t *f = (func_t *)(void *)(L->base + L->funcs_off);
    f->state = FN_READY;
    f->blob = OFF_A;
    h->fn_count = 1;
    h->arena_live_bytes = size;
    /* B: free */
    h->arena_free[0] = fs_next_head(0, HOLD_TOP(off_b));
    chk_name(&lay_block(L, OFF_A)->refs, 8, "A.refs");
    chk_name(&lay_block(L, off_b)->refs, 8, "B.refs");
    chk_name(&h->arena_free[0], 8, "free[0]");
    chk_name(&h->arena_live_bytes, 8, "live_bytes");
}

static holds_t *table(int tid) { return lay_holds(&chk_L, hold_rec_client(&chk_L, (u64)tid)); }

static void a_still_held(int tid) {
    CHK_ASSERT(LOAD_RLX(&lay_block(&chk_L, OFF_A)->refs) >= 1,
               "T%d: block A lost the function entry's reference", tid);
}

static void view_a(int tid, int times) {
    for (int i = 0; i < times; i++) {
        CHK_ASSERT(hold_get(&chk_L, table(tid), OFF_A) == HOLD_OK, "T%d: cannot view A", tid);
        a_still_held(tid);
    }
    for (int i = 0; i < times; i++) {
        CHK_ASSERT(hold_put(&chk_L, table(tid), OFF_A) == HOLD_OK, "T%d: drops a view of A it "
                   "does not hold", tid);
        a_still_held(tid);
    }
}

static void producer(int tid) {
    const layout_t *L = &chk_L;
    u64 off = ~0ULL;
    int r = arena_pop(L, 0, &off);
    CHK_ASSERT(r == ARENA_POP_OK && off == off_b, "T%d: arena_pop gave %d (offset %llu)", tid, r,
               (unsigned long long)off);
    if (r != ARENA_POP_OK) return;
    arena_take(L, off, 64);
    hold_adopt(L, table(tid), off, lay_block(L, off), 2); /* the offset's and the view's */
    slot_t *sl = lay_slot(L, 0);
    chk_atomic(1); /* submit's step: the slot takes one of our references (task_new) */
    tk_carve(1);
    tk_fill(0, S_NOTIFIED | S_JOIN_INTEREST | 2 * REF_ONE, (u64)tid);
    sl->args_blob = off;
    sl->flags = SLOT_F_ARGS_BLOB;
    CHK_ASSERT(hold_give(L, table(tid), off) == HOLD_OK, "T%d: gives a block it does not hold", tid);
    chk_atomic(0);
    CHK_ASSERT(hold_put(L, table(tid), off) == HOLD_OK, "T%d: the producer's view", tid);
    /* the task ran and its handle was harvested: the slot's last reference
     * goes, and with it the block's (slots.c slot_release_blobs) */
    chk_atomic(1);
    sl->flags = 0;
    CHK_ASSERT(block_unref(L, off, lay_block(L, off)) == 0, "T%d: B had no reference left", tid);
    sl->state = 0;
    tk_carve(1);
    slots_push_free(L, 0);
    chk_atomic(0);
}

static void thread(int tid) {
    if (tid == 0) view_a(tid, 2);
    else if (tid == 1) view_a(tid, 1);
    else producer(tid);
}

static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    for (int t = 0; t < 3; t++) d.c[t] = (dead >> t) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
}

static void check(unsigned dead) {
    const layout_t *L = &chk_L;
    header_t *h = lay_hdr(L);
    u64 a = lay_block(L, OFF_A)->refs, b = lay_block(L, off_b)->refs;
    /* after a crash, slot 0 may still carry B: a dead client's submitted
     * task is cancelled and stays queued until a worker drops it */
    slot_t *sl = lay_slot(L, 0);
    u64 want_b = (h->slots_carved && st_refs(sl->state) && (sl->flags & SLOT_F_ARGS_BLOB)) ? 1 : 0;
    CHK_ASSERT(a == 1, "block A has %llu references at the end, its holder is the function entry",
               (unsigned long long)a);
    CHK_ASSERT(b == want_b, "block B has %llu references at the end, %llu holders",
               (unsigned long long)b, (unsigned long long)want_b);
    u64 top = h->arena_free[0] & FS_TOP_MASK, n = 0;
    for (; top && n < 4; n++) top = lay_block(L, (top - 1) * CACHE_LINE)->next & FS_TOP_MASK;
    CHK_ASSERT(n == 1 - want_b && (want_b || (h->arena_free[0] & FS_TOP_MASK) == HOLD_TOP(off_b)),
               "the free stack holds %llu blocks (%llu expected)", (unsigned long long)n,
               (unsigned long long)(1 - want_b));
    CHK_ASSERT(h->arena_live_bytes == (1 + want_b) * arena_class_bytes(0),
               "live bytes %llu, %llu blocks' expected", (unsigned long long)h->arena_live_bytes,
               (unsigned long long)(1 + want_b));
    for (int t = 0; t < 3; t++)
        CHK_ASSERT(table(t)->count == 0, "T%d's hold table still names %llu blocks", t,
                   (unsigned long long)table(t)->count);
}

const chk_proto_t chk_proto_holds = {
    .name = "holds",
    .about = "arena block holds: per-process tables, counts, the reclaim's recount (holds.h)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .reclaim = reclaim,
    .check = check,
};
