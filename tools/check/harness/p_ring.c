/*
 * p_ring.c -- the crash-safe MPMC ring (queue.h ring_push_inl / ring_pop_u64
 * / ring_nonempty), capacity 4: two producers and two consumers.
 *
 *   T0: push 1, push 2          T1: push 3, pop          T2: pop, pop
 *
 * Invariants: every value pushed is popped or still in the ring exactly
 * once; each consumer sees each producer's values in push order (FIFO);
 * ring_nonempty agrees with the contents; afterwards the ring still takes
 * and gives back a full lap (the hints repair themselves).
 * The ring is the inject queue and its values are tasks (slots 1-3,
 * queued: NOTIFIED, filled at setup): T0 is client 0 submitting 1 and 2,
 * T1 worker 0 overflowing 3 from its local queue and popping, T2 worker 1
 * popping; a pop begins the task (task.c, atomic here).
 * Crashes: the ring itself needs no repair (a lagging hint is repaired by
 * the next operation); the real reclaim (reclaim.h) re-queues a task its
 * producer died before pushing, or its consumer died between the pop and
 * the begin, after whatever is in the ring (those are out of push order:
 * the reclaim pushed them).  A value is never out twice; one a dead
 * producer never pushed, or a dead consumer took, may be missing.
 * Mutant: SHMRT_MUTANT_RING_STALE_ENQ (queue.h: bug 1, fixed in 96f42e4).
 */
#include <string.h>

#include "coord.h"

#define NV 4
static int popped[3][4], npopped[3];
static const int pusher[NV + 1] = {0, 0, 0, 1, 0};
static int pushed_by[NV + 1]; /* 3: re-queued by the reclaim */
static int done_push[NV + 1];

static ring_t *R(void) { return lay_inject(&chk_L); }

static void setup(void) {
    chk_cfg_t c = {.n_workers = 2, .n_slots = 4, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    tk_carve(4);
    slots_push_free(&chk_L, 0); /* slot 0: free; 1-3: queued tasks of client 0 */
    for (u64 v = 1; v <= 3; v++) tk_fill(v, STATE_INITIAL, 0);
    memcpy(pushed_by, pusher, sizeof pushed_by);
    chk_name(&R()->enq, 8, "enq");
    chk_name(&R()->deq, 8, "deq");
    chk_name(R()->cells, 8 * chk_L.inject_cap, "cell");
    memset(npopped, 0, sizeof npopped);
    memset(done_push, 0, sizeof done_push);
}

static void push(int v) {
    CHK_ASSERT(ring_push_inl(R(), chk_L.inject_cap, (u64)v) == 0, "push %d: ring full", v);
    done_push[v] = 1;
}
static void pop(int tid) {
    u64 v;
    if (ring_pop_u64(R(), chk_L.inject_cap, &v)) {
        popped[tid][npopped[tid]++] = (int)v;
        if (v >= 1 && v <= 3) tk_begin((u64)tid - 1, v); /* worker tid - 1 */
    }
}

/* T0 is client 0, T1 worker 0, T2 worker 1. */
static void reclaim(unsigned dead) {
    chk_dead_t d = {{0}};
    d.c[0] = dead & 1;
    d.w[0] = (dead >> 1) & 1;
    d.w[1] = (dead >> 2) & 1;
    int before[NV + 1] = {0};
    ring_t *r = R();
    u64 cap = chk_L.inject_cap;
    for (u64 p = r->deq, i = 0; i < cap; i++, p++) { /* what the ring holds now */
        u64 w = r->cells[p & (cap - 1)];
        int32_t dd = seq_diff(cell_seq(w), p + 1);
        if (dd == 0 && (w & RING_VAL_MASK) <= NV) before[w & RING_VAL_MASK] = 1;
        else if (dd < 0) break;
    }
    chk_reclaimed_t res;
    chk_reclaim(&d, &res);
    for (int v = 1; v <= 3; v++) {
        int requeued = lay_slot(&chk_L, (u64)v)->state & S_NOTIFIED && !before[v];
        /* a task begun by a dead consumer is returned, and is its pop */
        int mine = 0;
        for (int t = 1; t < 3; t++)
            for (int i = 0; i < npopped[t]; i++) mine |= popped[t][i] == v && ((dead >> t) & 1);
        CHK_ASSERT(chk_returned(&res, (u64)v) == (mine && !requeued),
                   "task %d: returned running %d, popped by the dead %d", v,
                   chk_returned(&res, (u64)v), mine);
        if (requeued) {
            CHK_ASSERT(!mine || !(lay_slot(&chk_L, (u64)v)->state & S_RUNNING), "task %d twice", v);
            pushed_by[v] = 3;
        }
    }
    CHK_ASSERT(res.n.requeued == 0 || dead, "re-queued without a death");
}

static void thread(int tid) {
    if (tid == 0) { push(1); push(2); }
    if (tid == 1) { push(3); pop(1); }
    if (tid == 2) { pop(2); pop(2); }
}

static void check(unsigned dead) {
    int seen[NV + 1] = {0};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < npopped[t]; i++) {
            int v = popped[t][i];
            CHK_ASSERT(v >= 1 && v <= 3, "T%d popped a value never pushed: %d", t, v);
            seen[v]++;
            for (int j = 0; j < i; j++) /* FIFO per producer, per consumer */
                CHK_ASSERT(!(pushed_by[popped[t][j]] == pushed_by[v] && pushed_by[v] != 3 &&
                             popped[t][j] > v),
                           "T%d popped %d after %d: out of push order", t, v, popped[t][j]);
        }
    int left = 0, order_last = 0;
    int nonempty = ring_nonempty(R(), chk_L.inject_cap);
    u64 v;
    while (ring_pop_u64(R(), chk_L.inject_cap, &v)) {
        CHK_ASSERT(v >= 1 && v <= 3, "ring held a value never pushed: %llu", (unsigned long long)v);
        seen[v]++;
        left++;
        if (pushed_by[v] == 0) {
            CHK_ASSERT((int)v > order_last, "drain: %llu after %d", (unsigned long long)v, order_last);
            order_last = (int)v;
        }
    }
    CHK_ASSERT(nonempty == (left > 0), "ring_nonempty said %d with %d values in the ring", nonempty, left);
    int consumer_died = (dead & 6) != 0;
    for (int x = 1; x <= 3; x++) {
        CHK_ASSERT(seen[x] <= 1, "value %d came out %d times", x, seen[x]);
        int producer_died = (dead >> pusher[x]) & 1;
        if (done_push[x] && !consumer_died)
            CHK_ASSERT(seen[x] == 1, "value %d was pushed and is lost", x);
        if (!producer_died && !consumer_died)
            CHK_ASSERT(seen[x] == 1, "value %d lost", x);
    }
    /* a full lap still fits and comes back in order: the hints repaired */
    for (u64 i = 0; i < chk_L.inject_cap; i++)
        CHK_ASSERT(ring_push_inl(R(), chk_L.inject_cap, 10 + i) == 0, "ring refuses value %llu of a lap",
                   (unsigned long long)i);
    for (u64 i = 0; i < chk_L.inject_cap; i++) {
        CHK_ASSERT(ring_pop_u64(R(), chk_L.inject_cap, &v) && v == 10 + i, "lap: wrong value back");
    }
}

const chk_proto_t chk_proto_ring = {
    .name = "ring",
    .about = "crash-safe MPMC ring (queue.h): one-CAS push/pop, enq/deq hints",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .reclaim = reclaim,
    .check = check,
};
