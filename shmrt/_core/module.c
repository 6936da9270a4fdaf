/*
 * module.c -- shmrt._core: assembles the units (their method tables into the
 * Segment type, the creation hook of a new segment's structures), and
 * exports the constants and field-offset tables that let Python
 * (shmrt/layout, the inspector) read the structs of layout.h without
 * restating them.  The top of the C layers (core.h lists them).
 */
#include "arena.h"
#include "methods.h"
#include "relay.h"
#include "scheduler.h"
#include "park.h" /* IDLE_SEARCH_MASK, IDLE_UNPARK_ONE: the idle word's packing */
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>


#define FIELD(d, T, f)                                                        \
    do {                                                                      \
        PyObject *v = PyLong_FromSize_t(offsetof(T, f));                      \
        if (!v || PyDict_SetItemString((d), #f, v)) { Py_XDECREF(v); return -1; } \
        Py_DECREF(v);                                                         \
    } while (0)

static int add_table(PyObject *m, const char *name, PyObject *d) {
    if (!d) return -1;
    return PyModule_AddObject(m, name, d) ? (Py_DECREF(d), -1) : 0;
}

static int header_fields(PyObject *m) {
    PyObject *d = PyDict_New();
    if (!d) return -1;
    FIELD(d, header_t, magic); FIELD(d, header_t, version); FIELD(d, header_t, total_size);
    FIELD(d, header_t, n_workers); FIELD(d, header_t, n_slots); FIELD(d, header_t, slot_size);
    FIELD(d, header_t, local_cap); FIELD(d, header_t, inject_cap); FIELD(d, header_t, n_clients);
    FIELD(d, header_t, n_funcs); FIELD(d, header_t, arena_size); FIELD(d, header_t, workers_off);
    FIELD(d, header_t, queues_off); FIELD(d, header_t, inject_off); FIELD(d, header_t, clients_off);
    FIELD(d, header_t, funcs_off); FIELD(d, header_t, slots_off); FIELD(d, header_t, arena_off);
    FIELD(d, header_t, owner_uid); FIELD(d, header_t, created_ns); FIELD(d, header_t, coord_pid);
    FIELD(d, header_t, coord_start); FIELD(d, header_t, max_payload); FIELD(d, header_t, run_state);
    FIELD(d, header_t, epoch); FIELD(d, header_t, shutdown_seq);
    FIELD(d, header_t, reclaim); FIELD(d, header_t, reclaims); FIELD(d, header_t, watch); FIELD(d, header_t, idle);
    FIELD(d, header_t, free_head); FIELD(d, header_t, free_count);
    FIELD(d, header_t, slots_carved); FIELD(d, header_t, fn_count);
    FIELD(d, header_t, arena_bump); FIELD(d, header_t, arena_live_bytes);
    FIELD(d, header_t, arena_free); /* u64[ARENA_CLASSES] */
    FIELD(d, header_t, submitted); FIELD(d, header_t, completed); FIELD(d, header_t, crashed);
    FIELD(d, header_t, retried); FIELD(d, header_t, n_send); FIELD(d, header_t, send_cap);
    FIELD(d, header_t, n_waiters); FIELD(d, header_t, inflight); FIELD(d, header_t, relay_off);
    FIELD(d, header_t, holds_off); FIELD(d, header_t, arena_untracked);
    FIELD(d, header_t, arena_reserved);
    FIELD(d, header_t, broken_len); FIELD(d, header_t, broken_reason);
    return add_table(m, "HEADER_FIELDS", d);
}

static int worker_fields(PyObject *m) {
    PyObject *d = PyDict_New();
    if (!d) return -1;
    FIELD(d, worker_t, pid); FIELD(d, worker_t, start); FIELD(d, worker_t, epoch);
    FIELD(d, worker_t, state); FIELD(d, worker_t, current); FIELD(d, worker_t, current_since);
    FIELD(d, worker_t, lifo); FIELD(d, worker_t, help_depth); FIELD(d, worker_t, park_seq);
    FIELD(d, worker_t, tasks_run); FIELD(d, worker_t, steals); FIELD(d, worker_t, steal_attempts);
    FIELD(d, worker_t, stolen_tasks); FIELD(d, worker_t, parks); FIELD(d, worker_t, wakeups);
    FIELD(d, worker_t, inject_pulls); FIELD(d, worker_t, overflows); FIELD(d, worker_t, spins);
    FIELD(d, worker_t, lifo_hits); FIELD(d, worker_t, helped);
    FIELD(d, worker_t, busy); FIELD(d, worker_t, taking);
    return add_table(m, "WORKER_FIELDS", d);
}

static int slot_fields(PyObject *m) {
    PyObject *d = PyDict_New();
    if (!d) return -1;
    FIELD(d, slot_t, state); FIELD(d, slot_t, next); FIELD(d, slot_t, fn_id);
    FIELD(d, slot_t, holder); FIELD(d, slot_t, owner); FIELD(d, slot_t, flags);
    FIELD(d, slot_t, args_len); FIELD(d, slot_t, result); FIELD(d, slot_t, submitted_ns);
    FIELD(d, slot_t, started_ns); FIELD(d, slot_t, finished_ns); FIELD(d, slot_t, attempts);
    FIELD(d, slot_t, parent); FIELD(d, slot_t, gen); FIELD(d, slot_t, args_blob);
    FIELD(d, slot_t, result_blob); FIELD(d, slot_t, flow); FIELD(d, slot_t, seq);
    FIELD(d, slot_t, kind); FIELD(d, slot_t, limit_ns);
    return add_table(m, "SLOT_FIELDS", d);
}

static int queue_fields(PyObject *m) {
    PyObject *d = PyDict_New();
    if (!d) return -1;
    FIELD(d, local_queue_t, head); FIELD(d, local_queue_t, tail); FIELD(d, local_queue_t, buf);
    FIELD(d, ring_t, enq); FIELD(d, ring_t, deq); FIELD(d, ring_t, cells);
    FIELD(d, client_t, pid); FIELD(d, client_t, start); FIELD(d, client_t, submitted);
    FIELD(d, client_t, harvested); FIELD(d, client_t, ring_ready); FIELD(d, client_t, seq); FIELD(d, client_t, sleeping);
    FIELD(d, client_t, spinning); FIELD(d, client_t, busy); FIELD(d, client_t, units); FIELD(d, client_t, ring);
    return add_table(m, "QUEUE_FIELDS", d);
}

/* One table per struct (QUEUE_FIELDS above is the older union of the
 * local queue's, the ring's and the client entry's, kept for its readers). */
static int struct_fields(PyObject *m) {
    PyObject *d;
    if (!(d = PyDict_New())) return -1;
    FIELD(d, client_t, pid); FIELD(d, client_t, start); FIELD(d, client_t, submitted);
    FIELD(d, client_t, harvested); FIELD(d, client_t, ring_ready); FIELD(d, client_t, busy);
    FIELD(d, client_t, units); FIELD(d, client_t, seq); FIELD(d, client_t, sleeping);
    FIELD(d, client_t, spinning); FIELD(d, client_t, ring);
    if (add_table(m, "CLIENT_FIELDS", d)) return -1;
    if (!(d = PyDict_New())) return -1;
    FIELD(d, local_queue_t, head); FIELD(d, local_queue_t, tail); FIELD(d, local_queue_t, buf);
    if (add_table(m, "LOCAL_QUEUE_FIELDS", d)) return -1;
    if (!(d = PyDict_New())) return -1;
    FIELD(d, ring_t, enq); FIELD(d, ring_t, deq); FIELD(d, ring_t, cells);
    if (add_table(m, "RING_FIELDS", d)) return -1;
    if (!(d = PyDict_New())) return -1;
    FIELD(d, func_t, state); FIELD(d, func_t, blob); FIELD(d, func_t, len); FIELD(d, func_t, hash);
    if (add_table(m, "FUNC_FIELDS", d)) return -1;
    if (!(d = PyDict_New())) return -1;
    FIELD(d, block_t, magic_class); FIELD(d, block_t, refs); FIELD(d, block_t, len);
    FIELD(d, block_t, next); FIELD(d, block_t, recount);
    if (add_table(m, "BLOCK_FIELDS", d)) return -1;
    if (!(d = PyDict_New())) return -1;
    FIELD(d, holds_t, carving); FIELD(d, holds_t, used); FIELD(d, holds_t, count);
    FIELD(d, holds_t, refused); FIELD(d, holds_t, e);
    return add_table(m, "HOLDS_FIELDS", d);
}

static int relay_fields(PyObject *m) {
    PyObject *d = PyDict_New(), *e = PyDict_New(), *w = PyDict_New();
    if (!d || !e || !w) { Py_XDECREF(d); Py_XDECREF(e); Py_XDECREF(w); return -1; }
    FIELD(d, relay_t, avail); FIELD(d, relay_t, capacity); FIELD(d, relay_t, done_seq);
    FIELD(d, relay_t, flushing); FIELD(d, relay_t, registrations); FIELD(d, relay_t, wakes);
    FIELD(d, relay_t, spurious); FIELD(d, relay_t, pending_with_capacity);
    FIELD(d, relay_t, passed_on); FIELD(d, relay_t, fast); FIELD(d, relay_t, full);
    FIELD(d, relay_t, timeouts); FIELD(d, relay_t, recheck); FIELD(d, relay_t, withdrawn);
    FIELD(d, relay_t, fifo);
    FIELD(e, send_t, seq); FIELD(e, send_t, sleeping); FIELD(e, send_t, pid);
    FIELD(e, send_t, backlog); FIELD(e, send_t, pushed); FIELD(e, send_t, popped);
    FIELD(e, send_t, busy); FIELD(e, send_t, start);
    FIELD(e, send_t, registrations); FIELD(e, send_t, wakes);
    FIELD(e, send_t, pending_with_capacity); FIELD(e, send_t, sent); FIELD(e, send_t, filtered);
    FIELD(e, send_t, errors); FIELD(e, send_t, crashed); FIELD(e, send_t, in_doubt);
    FIELD(e, send_t, rings);
    FIELD(e, send_t, rx_received); FIELD(e, send_t, rx_kernel_drops);
    FIELD(e, send_t, rx_no_space); FIELD(e, send_t, relay_fn);
    FIELD(w, waiter_t, state); FIELD(w, waiter_t, pid);
    if (add_table(m, "SEND_FIELDS", e)) { Py_DECREF(d); Py_DECREF(w); return -1; }
    if (add_table(m, "WAITER_FIELDS", w)) { Py_DECREF(d); return -1; }
    return add_table(m, "RELAY_FIELDS", d);
}

/* datastack_room() -> bytes left in the interpreter's current frame-stack
 * chunk.  CPython 3.11+ keeps Python frames in 16 KiB chunks and frees a
 * chunk as soon as the stack pops below its base, so code that recurses
 * back and forth across a chunk boundary pays an mmap + munmap per crossing
 * (cpython gh-142183, fixed by a chunk cache in 3.13.x/3.14 only).  Work
 * helping starts nested tasks at arbitrary depths; the worker uses this to
 * start a task on a fresh chunk when little room is left (workers/cpu.py). */
static PyObject *core_datastack_room(PyObject *self, PyObject *unused) {
#if PY_VERSION_HEX >= 0x030B0000 && !defined(Py_LIMITED_API)
    PyThreadState *ts = PyThreadState_Get();
    if (ts->datastack_top && ts->datastack_limit && ts->datastack_limit >= ts->datastack_top)
        return PyLong_FromSsize_t((char *)ts->datastack_limit - (char *)ts->datastack_top);
#endif
    return PyLong_FromLong(1L << 30);
}


/* watch_parent(ppid, interval_s): a detached C thread that _exit()s this
 * process once its parent is no longer ppid (it died; we were re-parented).
 * A worker's parent is its coordinator.  The kernel's parent-death signal
 * follows the thread that forked us, so a pool built in a short-lived
 * thread cannot use it; and a Python-level watchdog would need the GIL,
 * which a task in C code may hold for minutes. */
typedef struct {
    pid_t ppid;
    useconds_t interval_us;
} watch_t;

static void *watch_main(void *arg) {
    watch_t w = *(watch_t *)arg;
    free(arg);
    for (;;) {
        if (getppid() != w.ppid) _exit(70); /* EX_SOFTWARE: orphaned */
        usleep(w.interval_us);
    }
    return NULL;
}

static PyObject *core_watch_parent(PyObject *self, PyObject *args) {
    long long ppid;
    double interval;
    if (!PyArg_ParseTuple(args, "Ld", &ppid, &interval)) return NULL;
    if (interval <= 0 || interval > 60) return PyErr_Format(PyExc_ValueError, "bad interval");
    watch_t *w = malloc(sizeof *w);
    if (!w) return PyErr_NoMemory();
    w->ppid = (pid_t)ppid;
    w->interval_us = (useconds_t)(interval * 1e6);
    pthread_attr_t at;
    pthread_t th;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 << 10);
    int rc = pthread_create(&th, &at, watch_main, w);
    pthread_attr_destroy(&at);
    if (rc) {
        free(w);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"watch_parent", core_watch_parent, METH_VARARGS,
     "watch_parent(ppid, interval_s): _exit(70) once the parent is not ppid (a C thread)"},
    {"crash_points", crash_py_points, METH_NOARGS,
     "crash_points() -> tuple of the crash point names (crash.h)"},
    {"crash_set_role", crash_py_set_role, METH_O,
     "crash_set_role(role): worker | sender | client | coordinator (SHMRT_CRASH_AT filter)"},
    {"crash_point", crash_py_point, METH_O, "crash_point(name): a crossing from Python"},
    {"crash_armed", crash_py_armed, METH_NOARGS, "crash_armed() -> bool"},
    {"datastack_room", core_datastack_room, METH_NOARGS,
     "datastack_room() -> bytes left in the current CPython frame-stack chunk"},
    {"compute_layout", core_compute_layout, METH_O,
     "compute_layout(cfg: dict) -> dict: offsets and total size for a configuration"},
    {NULL}};

static struct PyModuleDef coremodule = {PyModuleDef_HEAD_INIT, "shmrt._core",
                                        "shmrt's C core: atomics, futex, lock-free protocols.",
                                        -1, module_methods};

/* ---- assembly ------------------------------------------------------------ */
#define MAX_METHODS 128
static PyMethodDef all_methods[MAX_METHODS];

/* The Segment type's methods: every unit's table, merged. */
static int segment_type_ready(void) {
    PyMethodDef *tables[] = {segment_methods, sched_methods,   task_methods,
                             admin_methods,   arena_methods,   relay_methods,
                             reclaim_methods, kill_methods,    broken_methods,
                             udp_methods};
    int n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (PyMethodDef *md = tables[t]; md->ml_name; md++) {
            if (n >= MAX_METHODS - 1) return -1;
            all_methods[n++] = *md;
        }
    all_methods[n].ml_name = NULL;
    Segment_Type.tp_methods = all_methods;
    return PyType_Ready(&Segment_Type);
}

/* A new segment's shared structures: the run queues and free-slot state
 * (sched.c), the relay region (relay.c). */
static int init_structures(SegmentObject *s) {
    int rc = sched_init_structures(s);
    return relay_init(s) || rc;
}

PyMODINIT_FUNC PyInit__core(void) {
    seg_init_structures = init_structures;
    if (segment_type_ready() < 0 || PyType_Ready(&BlobView_Type) < 0) return NULL;
    crash_init();
    PyObject *m = PyModule_Create(&coremodule);
    if (!m) return NULL;
    /* The root of shmrt's exceptions lives here so that the C core's own
     * SegmentError can be one of them (errors.py re-exports both). */
    PyObject *root = PyErr_NewExceptionWithDoc("shmrt._core.ShmrtError",
                                               "Base class of shmrt's own errors.", NULL, NULL);
    if (!root || PyModule_AddObject(m, "ShmrtError", root)) goto fail;
    PyObject *bases = PyTuple_Pack(2, root, PyExc_RuntimeError);
    if (!bases) goto fail;
    SegmentError = PyErr_NewExceptionWithDoc(
        "shmrt._core.SegmentError",
        "A segment that cannot be trusted or used: bad header, offset or index, wrong owner or "
        "mode, closed or read-only mapping.", bases, NULL);
    Py_DECREF(bases);
    if (!SegmentError) goto fail;
    Py_INCREF(SegmentError);
    Py_INCREF(root);
    Py_INCREF(&Segment_Type);
    Py_INCREF(&BlobView_Type);
    if (PyModule_AddObject(m, "SegmentError", SegmentError) ||
        PyModule_AddObject(m, "Segment", (PyObject *)&Segment_Type) ||
        PyModule_AddObject(m, "BlobView", (PyObject *)&BlobView_Type) ||
        header_fields(m) || worker_fields(m) || slot_fields(m) || queue_fields(m) ||
        struct_fields(m) || relay_fields(m))
        goto fail;
#define CONST(n) if (PyModule_AddIntConstant(m, #n, (long long)(n))) goto fail
    if (PyModule_AddIntConstant(m, "ARENA_LAZY", arena_lazy_supported())) goto fail;
    CONST(SHMRT_LAYOUT_VERSION); CONST(LOCAL_CAP_MAX); CONST(HEADER_SIZE);
    CONST(SLOT_HEADER_SIZE); CONST(CACHE_LINE); CONST(BLOCK_HEADER_SIZE);
    CONST(S_RUNNING); CONST(S_COMPLETE); CONST(S_NOTIFIED); CONST(S_JOIN_INTEREST);
    CONST(S_JOIN_WAKER); CONST(S_CANCELLED); CONST(REF_ONE); CONST(REF_SHIFT);
    CONST(HOLDER_WORKER); CONST(SLOT_F_ARGS_BLOB); CONST(SLOT_F_ARGS_GONE); CONST(SLOT_F_RESULT_BLOB);
    CONST(HOLDER_RELAY); CONST(ST_FILTERED); CONST(ST_TIMEOUT);
    CONST(SLOT_F_SENDING); CONST(SLOT_F_KILL_TIMEOUT); CONST(SLOT_F_KILL_CANCEL);
    CONST(ST_NONE); CONST(ST_OK); CONST(ST_ERROR); CONST(ST_CRASHED); CONST(ST_CANCELLED);
    CONST(W_EMPTY); CONST(W_STARTING); CONST(W_RUNNING); CONST(W_SEARCHING);
    CONST(W_PARKED); CONST(W_NOTIFIED); CONST(W_DEAD); CONST(W_EXITED);
    CONST(RUN_INIT); CONST(RUN_RUNNING); CONST(RUN_STOPPING); CONST(RUN_STOPPED);
    CONST(RUN_BROKEN); CONST(BROKEN_REASON_MAX);
    CONST(FN_EMPTY); CONST(FN_WRITING); CONST(FN_READY); CONST(WT_FREE); CONST(WT_WAITING); CONST(WT_WOKEN); CONST(WT_CANCELLED); CONST(WT_MASK);
    if (PyModule_AddIntConstant(m, "WORKER_SIZE", (long)sizeof(worker_t)) ||
        PyModule_AddIntConstant(m, "QUEUE_SIZE", (long)sizeof(local_queue_t)) ||
        PyModule_AddIntConstant(m, "RELAY_SIZE", (long)sizeof(relay_t)) ||
        PyModule_AddIntConstant(m, "WAITER_SIZE", (long)sizeof(waiter_t)) ||
        PyModule_AddIntConstant(m, "SEND_SIZE", (long)sizeof(send_t)) ||
        PyModule_AddIntConstant(m, "RING_SIZE", (long)sizeof(ring_t)) ||
        PyModule_AddIntConstant(m, "HOLDS_SIZE", (long)sizeof(holds_t)))
        goto fail;
    CONST(S_FLAGS_MASK); CONST(STATE_INITIAL); CONST(OWNER_SENDER);
    CONST(IDLE_SEARCH_MASK); CONST(IDLE_UNPARK_ONE);
    if (PyModule_AddIntConstant(m, "HEADER_STRUCT_SIZE", (long)sizeof(header_t)) ||
        PyModule_AddIntConstant(m, "SLOT_STRUCT_SIZE", (long)sizeof(slot_t)) ||
        PyModule_AddIntConstant(m, "CLIENT_SIZE", (long)sizeof(client_t)) ||
        PyModule_AddIntConstant(m, "FUNC_SIZE", (long)sizeof(func_t)) ||
        PyModule_AddIntConstant(m, "BLOCK_SIZE", (long)sizeof(block_t)) ||
        PyModule_AddIntConstant(m, "CELL_SIZE", (long)sizeof(((ring_t *)0)->cells[0])))
        goto fail;
#define UCONST(n) if (PyModule_AddObject(m, #n, PyLong_FromUnsignedLongLong(n))) goto fail
    UCONST(SHMRT_MAGIC); UCONST(RECLAIM_TAG); UCONST(RECLAIM_TAG_MASK); UCONST(HOLD_OFF_MASK);
    if (PyModule_AddObject(m, "MAGIC", PyLong_FromUnsignedLongLong(SHMRT_MAGIC))) goto fail;
    CONST(ARENA_CLASSES); CONST(ARENA_MIN_BLOCK); CONST(BLOCK_MAGIC);
    CONST(HOLD_CAP); CONST(HOLD_COUNT_SHIFT);
    { /* the arena's size classes, for readers of a segment (the inspector) */
        PyObject *sizes = PyTuple_New(ARENA_CLASSES);
        for (int c = 0; sizes && c < ARENA_CLASSES; c++) {
            PyObject *v = PyLong_FromUnsignedLongLong(arena_class_size((u64)c));
            if (!v) {
                Py_CLEAR(sizes);
                break;
            }
            PyTuple_SET_ITEM(sizes, c, v);
        }
        if (!sizes || PyModule_AddObject(m, "ARENA_CLASS_SIZES", sizes)) goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
