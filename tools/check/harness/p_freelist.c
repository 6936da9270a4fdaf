/*
 * p_freelist.c -- the slot free list (freestack.h: slots_alloc /
 * slots_push_free over the ABA-tagged Treiber stack; the arena's per-class
 * stacks are the same fs_pop / fs_push).  3 slots: 0 and 1 on the stack
 * (0 on top), 2 never used (carved on demand).
 *
 *   T0: a = alloc, b = alloc, free a, free b
 *   T1: x = alloc, y = alloc, free x, free y
 *   T2: z = alloc, free z
 *
 * Invariants: a slot is never handed to two holders at once (the ghost
 * holder of each slot), each slot goes back exactly once (the stack has no
 * duplicate and no cycle), free_count matches, every slot is free at the
 * end.  SHMRT_MUTANT_NO_ABA_TAG (freestack.h) must be caught: T0 reads top
 * 0 and its next 1, T1 pops 0 and 1 and pushes 0 back, T0's CAS succeeds
 * and makes slot 1 (held by T1) the top.
 * The threads are clients 0-2.  A slot a thread holds is a completed task
 * whose result it has not harvested (COMPLETE | JOIN_INTEREST, its handle's
 * reference, the thread its holder): filled right after the pop, dropped
 * (harvest) right before the push, both atomic here (task.c).
 * Crashes: the real reclaim (reclaim.h) drops a dead client's handles and
 * rebuilds the stack from the reference counts: every carved slot no live
 * thread holds.
 */
#include "coord.h"
#include "freestack.h"
#include "ghost.h"

#define NS 3
static int holder[NS];

static void setup(void) {
    chk_cfg_t c = {.n_workers = 1, .n_slots = NS, .local_cap = 4, .n_clients = 3};
    chk_layout(&c);
    header_t *h = lay_hdr(&chk_L);
    h->slots_carved = 2;
    h->free_count = NS;
    for (int i = 1; i >= 0; i--) { /* 0 on top of 1, before any thread runs */
        lay_slot(&chk_L, (u64)i)->next = h->free_head & FS_TOP_MASK;
        h->free_head = fs_next_head(h->free_head, (u64)i + 1);
    }
    chk_name(&h->free_head, 8, "free_head");
    chk_name(&h->free_count, 8, "free_count");
    chk_name(&h->slots_carved, 8, "slots_carved");
    for (int i = 0; i < NS; i++) {
        static const char *nm[] = {"slot0.next", "slot1.next", "slot2.next"};
        chk_name(&lay_slot(&chk_L, (u64)i)->next, 8, nm[i]);
        holder[i] = -1;
    }
}

static long alloc(int tid) {
    long i = slots_alloc(&chk_L);
    CHK_ASSERT(i >= -1 && i < NS, "T%d: slots_alloc returned %ld (corrupt stack)", tid, i);
    if (i >= 0) {
        CHK_ASSERT(holder[i] == -1, "slot %ld handed to T%d while T%d holds it", i, tid, holder[i]);
        CHK_ASSERT(st_refs(lay_slot(&chk_L, (u64)i)->state) == 0, "slot %ld handed out in use", i);
        holder[i] = tid;
        chk_atomic(1); /* the rest of the step: filled, completed, its handle ours */
        tk_fill((u64)i, S_COMPLETE | S_JOIN_INTEREST | REF_ONE, (u64)tid);
        chk_atomic(0);
    }
    return i;
}

static void release(int tid, long i) {
    if (i < 0) return;
    holder[i] = -1; /* before the push: the next pop may hand it out at once */
    chk_atomic(1); /* harvest: the handle's reference, the last one */
    CHK_ASSERT(drop_handle(&lay_slot(&chk_L, (u64)i)->state) == TR_LAST_REF, "slot %ld still referenced", i);
    chk_atomic(0);
    slots_push_free(&chk_L, (u64)i);
}

static void thread(int tid) {
    if (tid < 2) {
        long a = alloc(tid), b = alloc(tid);
        release(tid, a);
        release(tid, b);
    } else {
        release(tid, alloc(tid));
    }
}

static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    for (int t = 0; t < 3; t++) d.c[t] = (dead >> t) & 1;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    for (int i = 0; i < NS; i++) /* a dead client's slots are free again */
        if (holder[i] >= 0 && ((dead >> holder[i]) & 1)) holder[i] = -1;
}

static void check(unsigned dead) {
    header_t *h = lay_hdr(&chk_L);
    for (int i = 0; i < NS; i++)
        CHK_ASSERT(holder[i] == -1, "slot %d still held by T%d at the end", i, holder[i]);
    int on[NS] = {0}, n = 0;
    for (u64 top = h->free_head & FS_TOP_MASK; top; top = lay_slot(&chk_L, top - 1)->next) {
        CHK_ASSERT(top <= NS, "free stack links to slot %llu", (unsigned long long)top - 1);
        if (top > NS) return;
        CHK_ASSERT(!on[top - 1], "slot %llu is on the free stack twice (or a cycle)",
                   (unsigned long long)top - 1);
        if (on[top - 1]) return;
        on[top - 1] = 1;
        n++;
    }
    CHK_ASSERT((u64)n == h->slots_carved, "free stack holds %d slots, %llu carved", n,
               (unsigned long long)h->slots_carved);
    CHK_ASSERT(h->free_count == NS, "free_count %llu, expected %d", (unsigned long long)h->free_count, NS);
}

const chk_proto_t chk_proto_freelist = {
    .name = "freelist",
    .about = "slot free list / arena free stacks: ABA-tagged Treiber stack (freestack.h)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .reclaim = reclaim,
    .check = check,
};
