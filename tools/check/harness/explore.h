/*
 * explore.h -- the model checker's interface for protocol scenarios.
 *
 * A scenario (one p_*.c file) declares a chk_proto_t: how many logical
 * threads, what each one does (calls into the real protocol headers of
 * shmrt/_core, built with -DSHMRT_CHECKED so every shared access is a
 * scheduling point), the single-threaded reclaim that runs after a schedule
 * in which threads died (the real crash reclaim, reclaim.h, through
 * coord.h), and the invariants checked at the end of every schedule.
 * explore.c enumerates the schedules (see its header comment).
 */
#ifndef CHK_EXPLORE_H
#define CHK_EXPLORE_H

#include <stddef.h>
#include <stdint.h>

#include "access.h" /* shmrt/_core, on the include path */

#define CHK_MAX_THREADS 4

typedef struct chk_proto {
    const char *name;
    const char *about;
    int n_threads;
    int timeouts;                   /* modelled futex timeouts per thread and run */
    void (*setup)(void);            /* fresh block: initialise it and the ghost state */
    void (*thread)(int tid);        /* logical thread tid's operations */
    /* A thread blocked in futex_wait when nothing else can run: 1 if its wake
     * condition holds (a lost wakeup), else 0. */
    int (*should_wake)(int tid);
    void (*reclaim)(unsigned dead); /* after a schedule with crashes (bit per dead tid):
                                     * coord.h's chk_reclaim with the dead processes */
    void (*check)(unsigned dead);   /* invariants at the end of the schedule */
} chk_proto_t;

/* ---- for scenarios ------------------------------------------------------- */
extern layout_t chk_L;       /* the block: real layout.h structs, small capacities */

/* Process ids in the block (worker i, client i, send worker i): every entry
 * is registered / claimed from the start (chk_layout). */
#define CHK_PID_WORKER(i) (1000 + (u64)(i))
#define CHK_PID_CLIENT(i) (2000 + (u64)(i))
#define CHK_PID_SENDER(i) (3000 + (u64)(i))
void chk_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define CHK_ASSERT(c, ...)                                                    \
    do {                                                                      \
        if (!(c)) chk_fail(__VA_ARGS__);                                      \
    } while (0)
int chk_tid(void);           /* the running logical thread (-1 in setup/reclaim/check) */
int chk_blocked(int tid);    /* still blocked in futex_wait at the end */
int chk_finished(int tid);   /* ran to completion */
void chk_quiet(const void *p, size_t n);             /* counters: not scheduling points */
void chk_name(const void *p, size_t n, const char *name); /* names in counterexamples */
/* Harness code between chk_atomic(1) and chk_atomic(0) makes no scheduling
 * point: the rest of a protocol step the scenario is not about (a begin, a
 * drop), atomic as a section is for the reclaim.  Never around a sleep. */
void chk_atomic(int on);
/* From a reclaim: thread tid dies too (a sibling of the dead thread in the
 * same process).  It never runs again and counts as dead in check(). */
void chk_kill(int tid);

/* Block configuration (call in setup() before touching memory; the block is
 * zeroed and laid out anew for every schedule).  The block is a valid empty
 * segment, as segment.c creates it and the crash reclaim (reclaim.h)
 * validates it: rings initialised, every worker registered and RUNNING,
 * every client claimed with its completion ring ready, the relay budget
 * full; no slot carved. */
typedef struct {
    u64 n_workers, n_slots, local_cap, n_clients, n_send, send_cap, n_waiters, inflight;
    u64 arena_blocks; /* room for this many class-0 arena blocks (none carved) */
} chk_cfg_t;
void chk_layout(const chk_cfg_t *c);

#endif
