/*
 * reclaim.c -- the crash reclaim for Python: argument parsing, the world
 * stopped without the GIL, the result dict.
 *
 * Why the logic is elsewhere: everything the reclaim does (stop the world,
 * validate, repair from the slots' state words, start the world) lives in
 * reclaim.h on a layout_t, with no Python, so that the model checker
 * (tools/check) runs the very code the coordinator runs after a logical
 * thread died.  reclaim.h's module comment says what the reclaim repairs and
 * why it stops the world; this file only turns Python ids into dead sets
 * and the repair's counts into a dict.
 *
 * The world is stopped without the GIL (our own threads may be waiting at a
 * section boundary, and they need the GIL to back off); the repair runs
 * with it, as before, so no thread of this process that has no section
 * record (section.h) runs beside it.
 */
#include "slots.h"
#include "reclaim.h"

#include <stdlib.h>
#include <unistd.h>

/* reclaim.h's hook: a slot put back on the free stack drops its arena
 * blocks (task.c). */
static void release_blobs(void *ctx, slot_t *sl) { slot_release_blobs((SegmentObject *)ctx, sl); }

static int ids_arg(PyObject *seq, unsigned char *out, u64 n, const char *what) {
    PyObject *f = PySequence_Fast(seq, "reclaim: ids must be a sequence of ints");
    if (!f) return -1;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(f); k++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(f, k));
        if (PyErr_Occurred() || v >= n) {
            Py_DECREF(f);
            if (!PyErr_Occurred()) PyErr_Format(SegmentError, "reclaim: bad %s id %llu", what, v);
            return -1;
        }
        out[v] = 1;
    }
    Py_DECREF(f);
    return 0;
}

static PyObject *running_list(const reclaim_task_t *t, u64 n) {
    PyObject *l = PyList_New(0);
    for (u64 i = 0; l && i < n; i++) {
        PyObject *x = Py_BuildValue("(KKKK)", (unsigned long long)t[i].key,
                                    (unsigned long long)t[i].max_retries,
                                    (unsigned long long)t[i].attempts,
                                    (unsigned long long)t[i].holder);
        if (!x || PyList_Append(l, x)) {
            Py_XDECREF(x);
            Py_CLEAR(l);
        } else {
            Py_DECREF(x);
        }
    }
    return l;
}

/* reclaim(dead_workers, dead_clients, dead_senders, timeout=2.0) -> dict
 *   running: [(key, max_retries, attempts, holder)] tasks the dead were running
 *   broken: "" repaired, else why not ("already broken", or what failed)
 *   requeued, in_doubt, delivered, refs_fixed, freed, cancelled, duplicates: counts
 *   blocks_fixed, blocks_freed, holds_dropped, block_holes, arena_skipped: the
 *   arena recount's (holds.h) */
static PyObject *RC_reclaim(SegmentObject *s, PyObject *args) {
    PyObject *dw, *dc, *ds;
    double timeout = 2.0;
    if (!PyArg_ParseTuple(args, "OOO|d", &dw, &dc, &ds, &timeout) || seg_check_open(s, 1))
        return NULL;
    const layout_t *L = &s->L;
    u64 total = L->n_slots + 2 * (L->n_workers + L->n_clients + L->n_send) + 4;
    unsigned char *mem = calloc(total, 1);
    /* at most one RUNNING task per carved slot */
    reclaim_task_t *running = calloc(L->n_slots + 1, sizeof *running);
    if (!mem || !running) {
        free(mem);
        free(running);
        return PyErr_NoMemory();
    }
    unsigned char *dead_w = mem + L->n_slots, *dead_c = dead_w + L->n_workers,
                  *dead_s = dead_c + L->n_clients;
    reclaim_t rc = {.dead_w = dead_w, .dead_c = dead_c, .dead_s = dead_s, .mark = mem,
                    .running = running, .running_cap = L->n_slots + 1,
                    .release_blobs = release_blobs, .ctx = s,
                    .dead_rec = dead_s + L->n_send};
    if (ids_arg(dw, dead_w, L->n_workers, "worker") ||
        ids_arg(dc, dead_c, L->n_clients, "client") ||
        ids_arg(ds, dead_s, L->n_send, "send worker")) {
        free(mem);
        free(running);
        return NULL;
    }
    u64 who = 0;
    int stopped;
    Py_BEGIN_ALLOW_THREADS
    stopped = reclaim_stop_world(L, &rc, (u32)getpid(), timeout, &who);
    if (stopped != 0) reclaim_start_world(L);
    Py_END_ALLOW_THREADS
    if (stopped != 0) {
        free(mem);
        free(running);
        static const char *kinds[] = {"worker", "client", "send worker"};
        return PyErr_Format(PyExc_TimeoutError,
                            "reclaim: %s %llu stayed inside a protocol step for %.1f s "
                            "(stopped by a debugger or SIGSTOP?)",
                            kinds[(who >> 32) % 3], (unsigned long long)(who & 0xffffffffULL),
                            timeout);
    }
    /* The world is stopped: no process can enter a step until
     * reclaim_start_world().  A broken runtime is not repaired (its structure
     * cannot be trusted), nor one that fails validation now. */
    char why[BROKEN_REASON_MAX] = "";
    reclaim_counts_t n;
    reclaim_stopped(L, &rc, &n, why, sizeof why);
    Py_BEGIN_ALLOW_THREADS
    reclaim_start_world(L);
    reclaim_wake_all(L); /* everyone looks again */
    Py_END_ALLOW_THREADS
    PyObject *list = running_list(running, n.running < rc.running_cap ? n.running : rc.running_cap);
    free(mem);
    free(running);
    if (!list) return NULL;
    return Py_BuildValue("{sNsssKsKsKsKsKsKsKsKsKsKsKsK}", "running", list, "broken", why,
                         "requeued", n.requeued, "in_doubt", n.in_doubt,
                         "delivered", n.delivered, "refs_fixed", n.refs_fixed, "freed",
                         n.freed, "cancelled", n.cancelled, "duplicates", n.duplicates,
                         "blocks_fixed", n.arena.fixed, "blocks_freed", n.arena.freed,
                         "holds_dropped", n.arena.dropped, "block_holes", n.arena.holes,
                         "arena_skipped", n.arena.skipped);
}

PyMethodDef reclaim_methods[] = {
    {"reclaim", (PyCFunction)RC_reclaim, METH_VARARGS,
     "reclaim(dead_workers, dead_clients, dead_senders, timeout=2.0) -> dict: stop the world, "
     "repair what the dead left half done, return the tasks they were running"},
    {NULL}};
