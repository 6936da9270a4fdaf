/*
 * kill.c -- tasks that must be stopped while they run: over their time
 * limit, or force-cancelled.  Python cannot interrupt a task blocked in C
 * code, so the only sure stop is the worker's process: the coordinator kills
 * it, and the crash reclaim (reclaim.c) returns the task, whose flag says
 * why, so the coordinator completes it with TaskTimeout / TaskCancelled
 * instead of WorkerCrashed, and never retries it.  The worker is replaced;
 * other tasks it was running nested (work helping) fail with WorkerCrashed
 * or are retried, as for any death.
 *
 *   submit(limit_s)   slot.limit_ns = limit; header.watch += 1
 *   request_kill(key) RUNNING: flags |= KILL_CANCEL; watch += 1
 *   to_kill(now)      (coordinator, polled while watch != 0) RUNNING slots
 *                     over their limit get KILL_TIMEOUT; every RUNNING slot
 *                     with a KILL_* flag is listed with its worker's pid
 *
 * The flag is set before the kill, and a worker that finishes the task
 * first simply completes it (the flag dies with the slot).
 */
#include "slots.h"
#include "section.h"
#include "state.h"

/* request_kill(key) -> 0 cancelled before it ran, 1 kill requested (it is
 * running), 2 already complete */
static PyObject *K_request_kill(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 1, &idx);
    if (!sl) return NULL;
    tr_t r = transition_to_cancelled(&sl->state);
    if (r == TR_OK) { /* not started: an ordinary cancel */
        unset_join_interest(&sl->state);
        drop_ref(s, idx);
        return PyLong_FromLong(0);
    }
    if (r == TR_COMPLETE) return PyLong_FromLong(2);
    if (r != TR_RUNNING) return PyErr_Format(SegmentError, "slot %llu: impossible state", idx);
    FETCH_OR_ACQREL(&sl->flags, SLOT_F_KILL_CANCEL); /* pairs with to_kill's acquire load */
    FETCH_ADD_ACQREL(&HDR(s)->watch, 1);
    return PyLong_FromLong(1);
}

/* to_kill(now_ns=-1) -> [(key, pid, reason)]: reason 1 time limit, 2 cancel */
static PyObject *K_to_kill(SegmentObject *s, PyObject *args) {
    long long now_arg = -1;
    if (!PyArg_ParseTuple(args, "|L", &now_arg) || seg_check_open(s, 1)) return NULL;
    u64 now = now_arg >= 0 ? (u64)now_arg : now_ns();
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    u64 carved = LOAD_ACQ(&HDR(s)->slots_carved);
    if (carved > s->L.n_slots) carved = s->L.n_slots;
    for (u64 i = 0; i < carved; i++) {
        slot_t *sl = slot_at(s, i);
        u64 st = LOAD_ACQ(&sl->state);
        if (!(st & S_RUNNING) || st_refs(st) == 0) continue;
        u64 lim = LOAD_RLX(&sl->limit_ns), started = LOAD_RLX(&sl->started_ns);
        if (lim && started && now > started && now - started > lim)
            FETCH_OR_ACQREL(&sl->flags, SLOT_F_KILL_TIMEOUT);
        u64 f = LOAD_ACQ(&sl->flags);
        if (!(f & (SLOT_F_KILL_TIMEOUT | SLOT_F_KILL_CANCEL))) continue;
        PyObject *t = Py_BuildValue("(KKi)", (LOAD_RLX(&sl->gen) << 32) | i,
                                    (unsigned long long)(LOAD_RLX(&sl->owner) >> 32),
                                    (f & SLOT_F_KILL_TIMEOUT) ? 1 : 2);
        if (!t || PyList_Append(out, t)) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

/* task_flags(key) -> the slot's SLOT_F_* flags (the coordinator, for a dead
 * worker's task: was it killed on purpose?) */
static PyObject *K_task_flags(SegmentObject *s, PyObject *arg) {
    u64 idx;
    slot_t *sl = slot_of_key_arg(s, arg, 0, &idx);
    if (!sl) return NULL;
    return Py_BuildValue("(KK)", (unsigned long long)LOAD_ACQ(&sl->flags),
                         (unsigned long long)LOAD_RLX(&sl->limit_ns));
}

SECTIONED(K_request_kill)

PyMethodDef kill_methods[] = {
    {"request_kill", (PyCFunction)K_request_kill_s, METH_O,
     "request_kill(key) -> 0 cancelled, 1 kill requested (running), 2 complete"},
    {"to_kill", (PyCFunction)K_to_kill, METH_VARARGS,
     "to_kill(now_ns=-1) -> [(key, pid, reason)]: 1 over its time limit, 2 force-cancelled"},
    {"task_flags", (PyCFunction)K_task_flags, METH_O, "task_flags(key) -> (flags, limit_ns)"},
    {NULL}};
