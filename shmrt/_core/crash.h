/*
 * crash.h -- named crash points: where a process death changes what the
 * others must do, and a test switch that kills this process at one of them.
 *
 * Why named points: "a worker can die between any two instructions" is only
 * testable if the instructions that matter have names.  Each point below is
 * a place where the process holds something the others cannot see through
 * the usual protocol (a popped slot, a claimed batch, a completion not yet
 * delivered, a packet taken off a send ring), so the crash reclaim
 * (reclaim.c) must find it.  tests/test_crashpoints.py kills each role at
 * each point and checks that every future resolves and nothing leaks.
 *
 * Arming (tests only): the environment variable
 *
 *     SHMRT_CRASH_AT=<point>:<n>:<role>:<marker file>
 *
 * read once when shmrt._core is imported, makes the first process of that
 * role (worker, sender, client; see crash_set_role) that crosses <point> for
 * the n-th time, and manages to create <marker file> exclusively, SIGKILL
 * itself there.  The marker makes it one death per run: the replacement of
 * a killed worker inherits the environment but finds the marker.  Unarmed,
 * a crossing costs one predictable branch on a process-local flag.
 */
#ifndef SHMRT_CRASH_H
#define SHMRT_CRASH_H

/* X(id, name): C points first, then the ones crossed from Python (between
 * two C calls: what a process holds there is in its own record). */
#define CRASH_POINTS(X)                                                       \
    X(CP_ALLOC, "alloc.after_pop")            /* free slot taken, not filled */ \
    X(CP_FILLED, "submit.after_fill")          /* filled, not queued */         \
    X(CP_QUEUED, "submit.after_push")          /* queued, nobody notified */    \
    X(CP_POPPED, "pop.after_pop")              /* popped, not in `taking` */    \
    X(CP_STEAL_CLAIM, "steal.after_claim")     /* batch claimed, not copied */  \
    X(CP_STEAL_DONE, "steal.after_finish")     /* victim released, not ours */  \
    X(CP_LIFO, "lifo.after_xchg")              /* LIFO swapped, old one held */ \
    X(CP_OVERFLOW, "overflow.after_claim")     /* half claimed, not injected */ \
    X(CP_BEGUN, "begin.after_running")         /* RUNNING, owner not set */     \
    X(CP_RESULT, "finish.after_result")        /* result stored, not COMPLETE */ \
    X(CP_COMPLETE, "finish.after_complete")    /* COMPLETE, not delivered */    \
    X(CP_DELIVERED, "finish.after_deliver")    /* delivered, ref not dropped */ \
    X(CP_LAST_REF, "free.after_last_ref")      /* count 0, not on free stack */ \
    X(CP_HARVEST, "harvest.after_pop")         /* completion popped, handle kept */ \
    X(CP_PARKED, "park.after_state")           /* PARKED, idle not updated */   \
    X(CP_SEARCH, "search.after_idle")          /* counted searching, state not */ \
    X(CP_TAKEN, "relay_take.after_pop")        /* packet off the ring, unmarked */ \
    X(CP_RESERVE, "arena.after_reserve")       /* pages populated, mark not raised */ \
    X(CP_CARVE, "arena.after_carve")           /* bump moved, no block header */ \
    X(CP_BLOCK_POP, "arena.after_pop")         /* free block popped, not counted */ \
    X(CP_HOLD_GET, "hold.after_ref")           /* block counted, not in the table */ \
    X(CP_HOLD_PUT, "hold.after_clear")         /* out of the table, not dropped */ \
    X(CP_PY_FOUND, "worker.after_find")        /* Python: popped, not begun */  \
    X(CP_PY_RUNNING, "worker.in_task")         /* Python: task body running */  \
    X(CP_PY_FINISHED, "worker.after_finish")   /* Python: between tasks */      \
    X(CP_PY_SUBMITTED, "client.after_submit")  /* Python: key not yet a future */ \
    X(CP_PY_HELD, "sender.after_take")         /* Python: packets held */       \
    X(CP_PY_SUNK, "sender.after_sink")         /* Python: sent, not done */

#define CP_ENUM(id, name) id,
enum { CRASH_POINTS(CP_ENUM) CP__COUNT };
#undef CP_ENUM

extern int crash_armed; /* 1 in a process armed by SHMRT_CRASH_AT */
void crash_cross(int point);

#define CRASH_POINT(p)                                                        \
    do {                                                                      \
        if (__builtin_expect(crash_armed, 0)) crash_cross(p);                 \
    } while (0)

#endif
