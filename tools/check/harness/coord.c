/*
 * coord.c -- the coordinator's crash reclaim in the checker: the real
 * reclaim.h on the scenario's block (coord.h says when and why).
 */
#include "coord.h"

#include <string.h>

#define CHK_SLOTS_MAX 64

void chk_reclaim(const chk_dead_t *d, chk_reclaimed_t *out) {
    const layout_t *L = &chk_L;
    static unsigned char mark[CHK_SLOTS_MAX], dead_rec[3 * CHK_PROCS];
    CHK_ASSERT(L->n_slots <= CHK_SLOTS_MAX && L->n_workers <= CHK_PROCS &&
               L->n_clients <= CHK_PROCS && L->n_send <= CHK_PROCS, "block too large for chk_reclaim");
    memset(mark, 0, sizeof mark);
    memset(out, 0, sizeof *out);
    reclaim_t rc = {.dead_w = d->w, .dead_c = d->c, .dead_s = d->s, .mark = mark,
                    .running = out->running, .running_cap = CHK_RUNNING_MAX,
                    .dead_rec = dead_rec}; /* the arena recount too (holds.h) */
    u64 who = 0;
    /* nobody is inside a step: the survivors have finished or sleep */
    CHK_ASSERT(reclaim_stop_world(L, &rc, 4242, 0, &who) == 0,
               "reclaim: %llu stayed inside a step", (unsigned long long)who);
    char why[BROKEN_REASON_MAX];
    int r = reclaim_stopped(L, &rc, &out->n, why, sizeof why);
    reclaim_start_world(L);
    reclaim_wake_all(L);
    CHK_ASSERT(r == RECLAIM_REPAIRED, "the reclaim refused the segment: %s", why);
    CHK_ASSERT(out->n.running <= CHK_RUNNING_MAX, "the reclaim returned %llu running tasks",
               (unsigned long long)out->n.running);
    CHK_ASSERT(out->n.duplicates == 0, "the reclaim found %llu slots in two places",
               (unsigned long long)out->n.duplicates);
}
