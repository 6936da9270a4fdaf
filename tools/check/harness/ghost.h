/*
 * ghost.h -- the scenarios' bookkeeping of which task went where ("ghost"
 * state: plain harness memory, never a scheduling point).
 *
 * A task is a small integer (a slot index).  Each logical thread records the
 * tasks it took; at the end check() gathers those with what is still in the
 * queues and asserts each task exactly once.
 */
#ifndef CHK_GHOST_H
#define CHK_GHOST_H

#include "explore.h"

#define GH_MAX 16

typedef struct {
    int took[CHK_MAX_THREADS][GH_MAX];
    int ntook[CHK_MAX_THREADS];
    int seen[GH_MAX];
} ghost_t;

static inline void gh_reset(ghost_t *g) { __builtin_memset(g, 0, sizeof *g); }

static inline void gh_took(ghost_t *g, int tid, long v) {
    CHK_ASSERT(v >= 0 && v < GH_MAX, "T%d took a task that does not exist: %ld", tid, v);
    if (v >= 0 && v < GH_MAX && g->ntook[tid] < GH_MAX) g->took[tid][g->ntook[tid]++] = (int)v;
}

/* Count a task found somewhere (a queue at the end, or taken by a thread). */
static inline void gh_seen(ghost_t *g, long v, const char *where) {
    CHK_ASSERT(v >= 0 && v < GH_MAX, "%s held a task that does not exist: %ld", where, v);
    if (v >= 0 && v < GH_MAX) g->seen[v]++;
}

static inline void gh_count_took(ghost_t *g, int n_threads) {
    for (int t = 0; t < n_threads; t++)
        for (int i = 0; i < g->ntook[t]; i++) gh_seen(g, g->took[t][i], "a thread");
}

/* Every task in [lo, hi) exactly once. */
static inline void gh_exactly_once(ghost_t *g, int lo, int hi) {
    for (int v = lo; v < hi; v++) {
        CHK_ASSERT(g->seen[v] <= 1, "task %d taken or queued %d times", v, g->seen[v]);
        CHK_ASSERT(g->seen[v] >= 1, "task %d lost (neither taken nor queued)", v);
    }
}

#endif
