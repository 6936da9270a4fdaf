/*
 * broken.c -- corruption is detected, not amplified.
 *
 * Why a broken state: any process of the same user can write into a live
 * segment (a bug, a stray pointer, malice).  Every index, length, state word
 * and ring cell read back from shared memory is checked before it is used;
 * the question is what to do when a check fails.  Skipping the bad entry
 * silently loses the task behind it (a future nobody will ever resolve),
 * "repairing" it writes through values nobody can vouch for, and failing only
 * the operation at hand leaves every other process running on a structure
 * known to be corrupt.  So a failed check is final for the runtime:
 *
 *   seg_mark_broken(s, "inject ring: ...")   (broken.h's broken_mark on the layout)
 *     1. CAS the run state to RUN_BROKEN (SeqCst; from anything but STOPPED
 *        or BROKEN).  The first writer wins: it stores the reason text in
 *        the header (broken_reason), then its length with release order.
 *     2. Wake every futex in the segment: workers' park_seq, send workers'
 *        seq, the relay's done_seq and waiter entries, the shutdown and
 *        reclaim words, and the clients' seq words.  Nobody sleeps through it:
 *        a woken client's harvester fails its pending futures with
 *        BrokenPool naming the reason (client.py reads broken_reason).
 *   the wrapper then raises SegmentError(reason) (seg_corrupt).
 *
 * What follows is Python's: workers stop once the run state is not RUNNING
 * and the scheduler hands out no work while broken (sched.c), clients'
 * harvesters fail pending futures once the runtime is not running, and the
 * coordinator does not replace a worker that stopped on a broken runtime:
 * it fails everything pending with BrokenPool(reason) (pool.py).  The crash
 * reclaim validates before it repairs and refuses a corrupt segment
 * (reclaim.h).  The reason names the region first ("inject ring: ...",
 * "slot 17: ...", "arena: ..."), so the error says where to look; the
 * inspector shows it too.
 *
 * The reason lives in shared memory, so it is read back bounded and with
 * anything but printable ASCII replaced: a scribbled reason is ugly, never
 * dangerous.
 */
#include "core.h"
#include "access.h"
#include "broken.h"
#include "futex.h"
#include "queue.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* broken.h does the work on the layout (the crash reclaim, reclaim.h, marks
 * a corrupt segment through it too); here: the SegmentObject wrappers. */
void seg_wake_everyone(SegmentObject *s) { run_wake_all(&s->L); }

int seg_vmark_broken(SegmentObject *s, const char *fmt, va_list ap) {
    char text[BROKEN_REASON_MAX];
    vsnprintf(text, sizeof text, fmt, ap);
    return broken_mark(&s->L, text);
}

int seg_mark_broken(SegmentObject *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int won = seg_vmark_broken(s, fmt, ap);
    va_end(ap);
    return won;
}

PyObject *seg_corrupt(SegmentObject *s, const char *fmt, ...) {
    char text[BROKEN_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    seg_mark_broken(s, "%s", text);
    PyErr_SetString(SegmentError, text);
    return NULL;
}

/* Raise SegmentError with the recorded reason (a helper that marked the
 * runtime broken without raising: deliver, the arena). */
PyObject *seg_raise_broken(SegmentObject *s) {
    PyObject *why = PyObject_CallMethod((PyObject *)s, "broken_reason", NULL);
    if (!why) return NULL;
    PyErr_SetString(SegmentError,
                    why != Py_None ? PyUnicode_AsUTF8(why) : "shared memory failed a check");
    Py_DECREF(why);
    return NULL;
}

int seg_broken(SegmentObject *s) { return broken_is(&s->L); }

/* ---- rings ------------------------------------------------------------------
 * A pop that found nothing: is the head of the ring in a state the protocol
 * can produce (queue.h)?  At the consumer hint deq = p the cell is free for p
 * (seq p), published (p + 1) or consumed with deq lagging (>= p + cap).  A
 * sequence below p is impossible (deq never passes an unconsumed cell), and
 * so is a free cell at p once enq has moved past p (enq moves only after
 * cell p was written, and our acquire of enq makes that write visible).
 * Returns 0, or -1 with the runtime broken and SegmentError set. */
int ring_check_head(SegmentObject *s, ring_t *r, u64 cap, const char *what) {
    u64 p = LOAD_ACQ(&r->deq); /* pairs with ring_hint_advance */
    u64 *c = &r->cells[p & (cap - 1)];
    u64 w = LOAD_ACQ(c); /* pairs with the CAS that wrote it */
    int32_t d = seq_diff(cell_seq(w), p + 1);
    if (d < -1) {
        seg_corrupt(s, "%s: cell %llu holds sequence %u at position %llu (a free cell holds %u)",
                    what, (unsigned long long)(p & (cap - 1)), cell_seq(w),
                    (unsigned long long)p, (u32)p);
        return -1;
    }
    if (d != -1) return 0;
    u64 e = LOAD_ACQ(&r->enq); /* pairs with the pusher's hint advance after its cell CAS */
    if ((int64_t)(e - p) <= 0) return 0;
    w = LOAD_ACQ(c); /* once written, a cell never holds sequence p again */
    if (seq_diff(cell_seq(w), p + 1) == -1) {
        seg_corrupt(s, "%s: enq hint %llu is past position %llu, whose cell %llu is empty",
                    what, (unsigned long long)e, (unsigned long long)p,
                    (unsigned long long)(p & (cap - 1)));
        return -1;
    }
    return 0;
}

/* ring_validate (the whole ring, world stopped): broken.h. */

/* ---- Python ---------------------------------------------------------------- */
/* broken_reason() -> None while the run state is a run state other than
 * RUN_BROKEN; else the reason (a run-state word that is no run state at all
 * is its own reason). */
static PyObject *B_broken_reason(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 0)) return NULL;
    header_t *h = HDR(s);
    u64 rs = LOAD_ACQ(&h->run_state); /* pairs with the marker's CAS */
    if (rs <= RUN_STOPPED) Py_RETURN_NONE;
    if (rs != RUN_BROKEN)
        return PyUnicode_FromFormat("header: run state %llu is not a run state",
                                    (unsigned long long)rs);
    u64 len = 0;
    /* the winner writes the text right after its CAS: wait for it, briefly
     * (it may have died in between) */
    for (int i = 0; i < 1000 && !(len = LOAD_ACQ(&h->broken_len)); i++) /* pairs with the store */
        sched_yield();
    if (!len) return PyUnicode_FromString("runtime marked broken (no reason recorded)");
    char buf[BROKEN_REASON_MAX];
    if (len > BROKEN_REASON_MAX - 1) len = BROKEN_REASON_MAX - 1;
    memcpy(buf, h->broken_reason, (size_t)len);
    size_t n = 0;
    while (n < len && buf[n]) n++;
    for (size_t i = 0; i < n; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e) buf[i] = '?';
    return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
}

/* mark_broken(reason) -> bool: a validation site in Python (or a test)
 * reports corruption; True if this call made the runtime broken. */
static PyObject *B_mark_broken(SegmentObject *s, PyObject *arg) {
    const char *text = PyUnicode_AsUTF8(arg);
    if (!text || seg_check_open(s, 1)) return NULL;
    return PyBool_FromLong(seg_mark_broken(s, "%s", text));
}

/* run_start() / run_stop() / run_finish() -> 0 moved, 1 already there,
 * 2 refused (past it: broken).  The run state's named transitions
 * (runstate.h): one SeqCst CAS, then everyone woken. */
static PyObject *B_run_start(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    return PyLong_FromLong(run_start(&s->L));
}
static PyObject *B_run_stop(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    return PyLong_FromLong(run_stop(&s->L));
}
static PyObject *B_run_finish(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 1)) return NULL;
    return PyLong_FromLong(run_finish(&s->L));
}

PyMethodDef broken_methods[] = {
    {"run_start", (PyCFunction)B_run_start, METH_NOARGS,
     "run_start() -> 0 | 1 | 2: INIT -> RUNNING, everyone woken (runstate.h)"},
    {"run_stop", (PyCFunction)B_run_stop, METH_NOARGS,
     "run_stop() -> 0 | 1 | 2: INIT/RUNNING -> STOPPING, everyone woken (runstate.h)"},
    {"run_finish", (PyCFunction)B_run_finish, METH_NOARGS,
     "run_finish() -> 0 | 1 | 2: -> STOPPED unless broken, everyone woken (runstate.h)"},
    {"broken_reason", (PyCFunction)B_broken_reason, METH_NOARGS,
     "broken_reason() -> None, or why the runtime is broken (corrupt shared memory)"},
    {"mark_broken", (PyCFunction)B_mark_broken, METH_O,
     "mark_broken(reason) -> bool: run state RUN_BROKEN, reason recorded, everyone woken"},
    {NULL}};
