/*
 * rl_queues.cpp -- queue.h's crash-safe ring and local queue under relacy's
 * C++11 memory model (weak memory: what the sequentially consistent
 * explorer cannot see).  Built by tools/check (weak.py) with g++
 * -DSHMRT_RELACY against Debian's relacy-dev.
 *
 * Each test publishes a slot's contents with plain stores (STORE_PLAIN,
 * relacy vars) before the push that publishes its index, and the taker
 * reads them after its pop: relacy reports a data race if the push/pop pair
 * is not a release/acquire edge, and the invariants (each index exactly
 * once, the value that was written) catch stale reads of atomics.
 *
 *   ring:    two producers push 1 and 2 (cap 4), one consumer pops twice
 *   localq:  the owner pushes 1, 2, 3 (cap 4) and pops; a thief steals
 *            half into its own queue and pops it
 */
#include "shadow.hpp"

extern "C++" {
#include "queue.h"
}

shrl_shadow *shrl;

/* A plain "slot payload" per task index, published by the queue. */
static uint64_t payload[4];

struct ring_test : rl::test_suite<ring_test, 3> {
    shrl_shadow sh;
    alignas(64) char mem[256];
    ring_t *r;
    int seen[3];

    void before() {
        shrl = &sh;
        sh.n64 = sh.n32 = sh.nv = 0;
        r = (ring_t *)(void *)mem;
        shrl_word64(&r->enq, 0);
        shrl_word64(&r->deq, 0);
        for (u64 i = 0; i < 4; i++) shrl_word64(&r->cells[i], cell_pack(i, 0));
        for (int v = 1; v <= 2; v++) shrl_plain(&payload[v]);
        seen[0] = seen[1] = seen[2] = 0;
    }
    void thread(unsigned t) {
        if (t < 2) {
            u64 v = t + 1;
            STORE_PLAIN(&payload[v], 100 + v); /* fill the slot ... */
            RL_ASSERT(ring_push_inl(r, 4, v) == 0); /* ... then publish it */
        } else {
            for (int k = 0; k < 2; k++) {
                u64 v;
                if (!ring_pop_u64(r, 4, &v)) continue;
                RL_ASSERT(v == 1 || v == 2);
                RL_ASSERT(LOAD_PLAIN(&payload[v]) == 100 + v);
                seen[v]++;
            }
        }
    }
    void after() {
        u64 v;
        while (ring_pop_u64(r, 4, &v)) seen[v]++;
        RL_ASSERT(seen[1] == 1 && seen[2] == 1);
    }
};

struct localq_test : rl::test_suite<localq_test, 2> {
    shrl_shadow sh;
    alignas(64) local_queue_t q[2];
    int seen[4];

    void before() {
        shrl = &sh;
        sh.n64 = sh.n32 = sh.nv = 0;
        for (int i = 0; i < 2; i++) {
            shrl_word64(&q[i].head, 0);
            shrl_word64(&q[i].tail, 0);
            for (int k = 0; k < 4; k++) shrl_word32(&q[i].buf[k], 0);
        }
        for (int v = 1; v <= 3; v++) shrl_plain(&payload[v]);
        sh.relaxed_tail[0] = &q[0].tail;
        sh.relaxed_tail[1] = &q[1].tail;
        for (int v = 0; v < 4; v++) seen[v] = 0;
    }
    void take(long v) {
        if (v < 0) return;
        RL_ASSERT(v >= 1 && v <= 3);
        RL_ASSERT(LOAD_PLAIN(&payload[v]) == 100 + (u64)v);
        seen[v]++;
    }
    void thread(unsigned t) {
        u32 moved[3], n = 0;
        if (t == 0) {
            for (u32 v = 1; v <= 3; v++) {
                STORE_PLAIN(&payload[v], 100 + (u64)v);
                RL_ASSERT(lq_push(&q[0], 4, v, moved, &n) == 0);
            }
            take(lq_pop(&q[0], 4));
        } else {
            u32 tail = (u32)LOAD_RLX(&q[1].tail);
            u32 got = lq_steal_into2(&q[0], &q[1], 4, tail);
            if (got) STORE_REL(&q[1].tail, (u64)(tail + got)); /* publish the batch */
            long v;
            while ((v = lq_pop(&q[1], 4)) >= 0) take(v);
        }
    }
    void after() {
        long v;
        while ((v = lq_pop(&q[0], 4)) >= 0) seen[v]++;
        for (int k = 1; k <= 3; k++) RL_ASSERT(seen[k] == 1);
    }
};

static bool run(const char *name, bool (*sim)(rl::test_params &), unsigned bound) {
    static std::ostream quiet(nullptr); /* relacy's progress lines */
    rl::test_params p;
    p.search_type = rl::sched_bound;
    p.context_bound = bound;
    p.collect_history = true;
    p.output_history = true;
    p.progress_stream = &quiet;
    std::cout.flush();
    bool ok = sim(p);
    std::cout.flush();
    printf("RESULT protocol=%s schedules=%llu preemptions=%u crashes=0 verdict=%s\n", name,
           (unsigned long long)p.stop_iteration, bound, ok ? "ok" : "VIOLATION");
    if (!ok) printf("violation: %s (relacy's execution history above)\n", rl::test_result_str(p.test_result));
    fflush(stdout);
    return ok;
}

static bool sim_ring(rl::test_params &p) { return rl::simulate<ring_test>(p); }
static bool sim_localq(rl::test_params &p) { return rl::simulate<localq_test>(p); }

int main(int argc, char **argv) {
    unsigned bound = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    const char *which = argc > 2 ? argv[2] : "all";
    int bad = 0;
    if (!strcmp(which, "all") || !strcmp(which, "weak-ring")) bad |= !run("weak-ring", sim_ring, bound);
    if (!strcmp(which, "all") || !strcmp(which, "weak-localq"))
        bad |= !run("weak-localq", sim_localq, bound);
    return bad;
}
