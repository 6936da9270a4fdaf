/*
 * section.h -- protocol sections: how a crash reclaim stops the world.
 *
 * Why: a process can be SIGKILLed between any two instructions of a
 * lock-free protocol step (a pop and the begin that records its owner, a
 * steal's claim and its publish, a completion and its delivery).  Tracking
 * every such window with write-ahead records would put bookkeeping on every
 * fast path and still leave the reclaim racing the survivors.  Instead the
 * reclaim (reclaim.h) stops the world: it waits until no live process is
 * inside a protocol step, then reads a quiescent segment, where every
 * structure is either consistent or was left half-done by a dead process,
 * and repairs it by recomputing from the state words (which slot is queued,
 * how many references each holds, which worker is parked).
 *
 * A protocol step is one C entry point (submit, begin, finish, harvest,
 * steal, ...): short, never blocking.  Calls that sleep (park, a relay
 * acquire) leave the section before sleeping and re-enter after.  What a
 * process holds *between* calls is written into its own record inside the
 * step that took it (worker.taking for a popped task, the slot's owner for a
 * running task or a packet held by a send worker, client.units for relay
 * budget), so a stopped world shows everything.
 *
 *   enter:  busy += 1 (SeqCst); if reclaim != 0: busy -= 1, wait for
 *           reclaim == 0 on its futex, retry.
 *   leave:  busy -= 1 (release: the step's writes are visible to the
 *           reclaim's acquire load of busy == 0).
 *   reclaim: reclaim = RECLAIM_TAG | pid (SeqCst); wait until every live process's busy is
 *           0 (SeqCst loads).  Dekker: either the entrant sees reclaim != 0
 *           and backs off, or the reclaim sees its busy != 0 and waits.
 *
 * `busy` is a count, not a flag: a client's threads share one record.  A
 * process that has no record yet (a client before its claim, the inspector,
 * protocol tests poking a raw segment) has s->busy == NULL and its steps are
 * not sections: it must not race a reclaim (the coordinator's own
 * bookkeeping before workers start, or tests on a private segment).
 *
 * Cost: two uncontended atomic RMWs on a line the process owns (~40 cycles)
 * per step.
 */
#ifndef SHMRT_SECTION_H
#define SHMRT_SECTION_H

#include "core.h"

#include <errno.h>
#include <signal.h>

#define SECTION_WAIT_S 0.01 /* re-check period while a reclaim runs */

/* A non-zero reclaim word nobody will clear would stop every process for
 * good: it must be RECLAIM_TAG | pid (layout.h), and after SECTION_STALE_S
 * that pid must still run (a coordinator SIGKILLed inside its reclaim).
 * Either failure marks the runtime broken (broken.c), and the step goes on:
 * waiting would only hang everyone. */
#define SECTION_STALE_S 2.0
static inline int section_reclaim_bad(SegmentObject *s, u64 r, u64 *since) {
    if ((r & RECLAIM_TAG_MASK) != RECLAIM_TAG) {
        seg_mark_broken(s, "header: reclaim word %#llx is no reclaim in progress",
                        (unsigned long long)r);
        return 1;
    }
    u64 now = now_ns();
    if (!*since) *since = now;
    if (now - *since < (u64)(SECTION_STALE_S * 1e9)) return 0;
    if (kill((pid_t)(u32)r, 0) != 0 && errno == ESRCH) {
        seg_mark_broken(s, "header: reclaim word names pid %u, which is not running", (u32)r);
        return 1;
    }
    return 0;
}

/* Sections this thread is inside (segment.c).  A step can run Python code
 * that frees a BlobView, whose release is a section of its own: nested in
 * the one we are in, it must not wait for a reclaim that waits for us.  So
 * a nested enter only counts.  (Nested across two runtimes, the inner one
 * is not waited for: a garbage collection inside a step of one runtime that
 * frees a view of another.  Rare, and documented in holds.h.) */
extern _Thread_local int section_depth;

static inline void section_enter(SegmentObject *s) {
    u64 *busy = s->busy;
    if (!busy) return;
    if (section_depth++) {
        FETCH_ADD_SEQ(busy, 1); /* pairs with the reclaim's SeqCst load of busy */
        return;
    }
    header_t *h = HDR(s);
    u64 since = 0;
    for (;;) {
        FETCH_ADD_SEQ(busy, 1);
        u64 r = LOAD_SEQ(&h->reclaim); /* pairs with the reclaim's SeqCst store */
        if (!r || section_reclaim_bad(s, r, &since)) return;
        FETCH_SUB_SEQ(busy, 1);
        /* Never wait holding the GIL: the reclaim may be a thread of this
         * very process, and it needs the GIL back when it is done. */
        PyThreadState *ts = PyGILState_Check() ? PyEval_SaveThread() : NULL;
        futex_wait_u32(&h->reclaim, (u32)r, SECTION_WAIT_S);
        if (ts) PyEval_RestoreThread(ts);
    }
}

static inline void section_leave(SegmentObject *s) {
    if (!s->busy) return;
    section_depth--;
    FETCH_SUB_ACQREL(s->busy, 1); /* pairs with the reclaim's acquire of busy */
}

/* A method that is one protocol step: NAME_s wraps NAME in a section.  All
 * PyCFunction kinds used here share the (self, arg) signature. */
#define SECTIONED(name)                                                        \
    static PyObject *name##_s(SegmentObject *s, PyObject *arg) {              \
        section_enter(s);                                                     \
        PyObject *r = name(s, arg);                                           \
        section_leave(s);                                                     \
        return r;                                                             \
    }

/* The same for a METH_FASTCALL method (fastargs.h). */
#define SECTIONED_FAST(name)                                                   \
    static PyObject *name##_s(SegmentObject *s, PyObject *const *args,       \
                              Py_ssize_t nargs) {                             \
        section_enter(s);                                                     \
        PyObject *r = name(s, args, nargs);                                   \
        section_leave(s);                                                     \
        return r;                                                             \
    }

/* A METH_FASTCALL entry of a method table. */
#define FASTCALL_METHOD(pyname, fn, doc) \
    {pyname, (PyCFunction)(void (*)(void))(fn), METH_FASTCALL, doc}

#endif
