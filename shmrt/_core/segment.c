/*
 * segment.c -- mapping, validation and raw typed access to the segment.
 *
 * A Segment maps one POSIX shared-memory object (the fd comes from
 * posix_ipc in Python).  Two ways in:
 *
 *   Segment(fd, writable=True, create=cfg)  the creator: lays the segment out
 *       from cfg, writes the header, initialises queues and the free list.
 *   Segment(fd, writable=...)                everyone else: validates before
 *       trusting anything (owner uid, mode, magic, version, recorded size vs
 *       fstat, every count and offset re-derived from the counts).
 *
 * After validation the configuration lives in a private layout_t and shared
 * memory is never consulted for a bound again.  The raw accessors (load64,
 * cas64, futex_wait, ...) take absolute byte offsets and check alignment and
 * range by subtraction.
 */
#include "core.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

PyObject *SegmentError;

u64 now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000ULL + (u64)ts.tv_nsec;
}

/* futex on the low 32 bits of a 64-bit word (little endian).  Returns 1 if
 * woken or the value differed, 0 on timeout, -1 on other error.  Called with
 * the GIL released. */
int futex_wait_u32(u64 *word, u32 expected, double timeout_s) {
    struct timespec ts, *tsp = NULL;
    if (timeout_s >= 0) {
        ts.tv_sec = (time_t)timeout_s;
        ts.tv_nsec = (long)((timeout_s - (double)ts.tv_sec) * 1e9);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (u32 *)word, FUTEX_WAIT, expected, tsp, NULL, 0);
    if (r == 0) return 1;
    if (errno == EAGAIN || errno == EINTR) return 1;
    if (errno == ETIMEDOUT) return 0;
    return -1;
}

int futex_wake_u32(u64 *word, int n) {
    long r = syscall(SYS_futex, (u32 *)word, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

int seg_check_open(SegmentObject *s, int need_write) {
    if (s->closed || s->L.base == NULL) {
        PyErr_SetString(SegmentError, "segment is closed");
        return -1;
    }
    if (need_write && !s->L.writable) {
        PyErr_SetString(SegmentError, "segment is mapped read-only");
        return -1;
    }
    return 0;
}

_Thread_local int section_depth; /* section.h */
int (*seg_init_structures)(SegmentObject *s); /* core.h: set by module.c */

/* ---- layout computation (the single source of truth) -------------------- */
typedef struct {
    u64 n_workers, n_slots, slot_size, local_cap, n_clients, n_funcs, arena_size;
    u64 n_send, send_cap, n_waiters, inflight;
} cfg_t;

static u64 align_up(u64 v, u64 a) { return (v + a - 1) & ~(a - 1); }
static int is_pow2(u64 v) { return v && !(v & (v - 1)); }

static const char *cfg_check(const cfg_t *c) {
    if (c->n_workers < 1 || c->n_workers > 1024) return "n_workers out of range (1..1024)";
    if (c->n_slots < 2 || c->n_slots > (1u << 24)) return "n_slots out of range (2..16M)";
    if (c->slot_size < 256 || c->slot_size > (1u << 20) || c->slot_size % CACHE_LINE)
        return "slot_size must be a multiple of 64 in 256..1MiB";
    if (!is_pow2(c->local_cap) || c->local_cap < 2 || c->local_cap > LOCAL_CAP_MAX)
        return "local_cap must be a power of two in 2..256";
    if (c->n_clients < 1 || c->n_clients > 256) return "n_clients out of range (1..256)";
    if (c->n_funcs < 1 || c->n_funcs > (1u << 20)) return "n_funcs out of range";
    if (c->arena_size % ARENA_MIN_BLOCK || c->arena_size > (1ULL << 40))
        return "arena_size must be a multiple of 4096 and < 1 TiB";
    if (c->n_send > 64) return "n_send out of range (0..64)";
    if (c->n_send && (!is_pow2(c->send_cap) || c->send_cap < 2 || c->send_cap > (1u << 20)))
        return "send_cap must be a power of two in 2..1M";
    if (c->n_send && (c->n_waiters < 1 || c->n_waiters > 4096)) return "n_waiters out of range";
    if (c->n_send && (c->inflight < 1 || c->inflight > c->n_slots))
        return "inflight must be in 1..n_slots";
    return NULL;
}

static void cfg_layout(const cfg_t *c, layout_t *L, u64 *total) {
    u64 cap = 1;
    while (cap < c->n_slots) cap <<= 1;
    L->n_workers = c->n_workers;
    L->n_slots = c->n_slots;
    L->slot_size = c->slot_size;
    L->local_cap = c->local_cap;
    L->inject_cap = cap;
    L->n_clients = c->n_clients;
    L->n_funcs = c->n_funcs;
    L->arena_size = c->arena_size;
    L->client_stride = client_stride(cap);
    u64 off = HEADER_SIZE;
    L->workers_off = off;
    off = align_up(off + c->n_workers * sizeof(worker_t), CACHE_LINE);
    L->queues_off = off;
    off = align_up(off + c->n_workers * sizeof(local_queue_t), CACHE_LINE);
    L->inject_off = off;
    off = align_up(off + ring_bytes(cap), CACHE_LINE);
    L->clients_off = off;
    off = align_up(off + c->n_clients * L->client_stride, CACHE_LINE);
    L->funcs_off = off;
    off = align_up(off + c->n_funcs * sizeof(func_t), CACHE_LINE);
    L->holds_off = off;
    off = align_up(off + (c->n_workers + c->n_clients + c->n_send) * sizeof(holds_t), CACHE_LINE);
    L->n_send = c->n_send;
    L->send_cap = c->n_send ? c->send_cap : 0;
    L->n_waiters = c->n_send ? c->n_waiters : 0;
    L->inflight = c->n_send ? c->inflight : 0;
    L->relay_off = off;
    L->relay_hdr = c->n_send ? align_up(sizeof(relay_t) + ring_bytes(fifo_cap(c->n_waiters)), CACHE_LINE) : 0;
    L->send_stride = c->n_send ? align_up(sizeof(send_t) + align_up(ring_bytes(c->send_cap), CACHE_LINE) + ring_bytes(cap), CACHE_LINE) : 0;
    if (c->n_send)
        off += L->relay_hdr + c->n_waiters * sizeof(waiter_t) + c->n_send * L->send_stride;
    off = align_up(off, 4096);
    L->slots_off = off;
    off = align_up(off + c->n_slots * c->slot_size, 4096);
    L->arena_off = off;
    off += c->arena_size;
    *total = off;
}

static int dict_u64(PyObject *d, const char *k, u64 *out, u64 dflt) {
    PyObject *v = PyDict_GetItemString(d, k);
    if (!v) { *out = dflt; return 0; }
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (PyErr_Occurred()) return -1;
    *out = x;
    return 0;
}

/* A key the configuration must have: no default here.  The defaults live
 * in one place, Python's shmrt.layout.Config (a second copy here had
 * drifted: 4096 slots against 16384). */
static int dict_need(PyObject *d, const char *k, u64 *out) {
    if (!PyDict_GetItemString(d, k)) {
        PyErr_Format(PyExc_ValueError, "config lacks %s", k);
        return -1;
    }
    return dict_u64(d, k, out, 0);
}

static int cfg_from_dict(PyObject *d, cfg_t *c) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "config must be a dict");
        return -1;
    }
    if (dict_need(d, "n_workers", &c->n_workers) || dict_need(d, "n_slots", &c->n_slots) ||
        dict_need(d, "slot_size", &c->slot_size) || dict_need(d, "local_cap", &c->local_cap) ||
        dict_need(d, "n_clients", &c->n_clients) || dict_need(d, "n_funcs", &c->n_funcs) ||
        dict_need(d, "arena_size", &c->arena_size) || dict_u64(d, "n_send", &c->n_send, 0))
        return -1;
    /* the relay's keys matter only with send workers */
    if (c->n_send ? dict_need(d, "send_cap", &c->send_cap) ||
                        dict_need(d, "n_waiters", &c->n_waiters) ||
                        dict_need(d, "inflight", &c->inflight)
                  : dict_u64(d, "send_cap", &c->send_cap, 0) ||
                        dict_u64(d, "n_waiters", &c->n_waiters, 0) ||
                        dict_u64(d, "inflight", &c->inflight, 0))
        return -1;
    const char *err = cfg_check(c);
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    return 0;
}

/* compute_layout(cfg: dict) -> dict of offsets and total_size */
PyObject *core_compute_layout(PyObject *self, PyObject *arg) {
    cfg_t c;
    layout_t L;
    u64 total;
    if (cfg_from_dict(arg, &c)) return NULL;
    cfg_layout(&c, &L, &total);
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsKsKsK}", "total_size", total, "inject_cap", L.inject_cap,
        "holds_off", L.holds_off,
        "relay_off", L.relay_off, "relay_hdr", L.relay_hdr, "send_stride", L.send_stride,
        "workers_off",
        L.workers_off, "queues_off", L.queues_off, "inject_off", L.inject_off, "clients_off",
        L.clients_off, "funcs_off", L.funcs_off, "slots_off", L.slots_off, "arena_off",
        L.arena_off, "client_stride", L.client_stride);
}

/* ---- validation of an existing header ------------------------------------ */
static const char *validate_header(const header_t *h, u64 file_size, layout_t *L) {
    if (file_size < HEADER_SIZE) return "segment smaller than its header (truncated?)";
    if (h->magic != SHMRT_MAGIC) return "bad magic: not a shmrt segment";
    if (h->version != SHMRT_LAYOUT_VERSION) return "unsupported layout version";
    if (h->total_size != file_size) return "recorded size does not match the file size";
    cfg_t c = {h->n_workers, h->n_slots, h->slot_size, h->local_cap, h->n_clients,
               h->n_funcs, h->arena_size, h->n_send, h->send_cap, h->n_waiters, h->inflight};
    const char *err = cfg_check(&c);
    if (err) return err;
    u64 total;
    cfg_layout(&c, L, &total);
    if (total != h->total_size || L->inject_cap != h->inject_cap ||
        L->workers_off != h->workers_off || L->queues_off != h->queues_off ||
        L->inject_off != h->inject_off || L->clients_off != h->clients_off ||
        L->funcs_off != h->funcs_off || L->slots_off != h->slots_off ||
        L->arena_off != h->arena_off || L->relay_off != h->relay_off ||
        L->holds_off != h->holds_off)
        return "header offsets are inconsistent with its counts";
    if (h->max_payload > h->arena_size && h->max_payload > h->slot_size)
        return "max_payload larger than the arena";
    L->max_payload = h->max_payload;
    return NULL;
}

static int Segment_init(SegmentObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"fd", "writable", "create", "check_owner", NULL};
    int fd, writable = 1, check_owner = 1;
    PyObject *create = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|pOp", kwlist, &fd, &writable, &create,
                                     &check_owner))
        return -1;
    if (self->L.base) {
        PyErr_SetString(SegmentError, "Segment already initialised");
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (check_owner) {
        if (st.st_uid != geteuid()) {
            PyErr_Format(SegmentError, "segment belongs to uid %u, not to us (uid %u)",
                         (unsigned)st.st_uid, (unsigned)geteuid());
            return -1;
        }
        if (st.st_mode & 077) {
            PyErr_Format(SegmentError, "segment mode %03o is open to group/other; refusing",
                         (unsigned)(st.st_mode & 0777));
            return -1;
        }
    }
    cfg_t c;
    layout_t L;
    u64 total = (u64)st.st_size;
    if (create != Py_None) {
        if (cfg_from_dict(create, &c)) return -1;
        cfg_layout(&c, &L, &total);
        if ((u64)st.st_size != total) {
            PyErr_Format(SegmentError, "file size %lld does not match layout size %llu",
                         (long long)st.st_size, (unsigned long long)total);
            return -1;
        }
        writable = 1;
    } else if (total < HEADER_SIZE) {
        PyErr_SetString(SegmentError, "segment smaller than its header (truncated?)");
        return -1;
    }
    void *base = mmap(NULL, total, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    header_t *h = (header_t *)base;
    if (create != Py_None) {
        u64 mp = 0;
        if (dict_u64(create, "max_payload", &mp, c.arena_size / 3)) goto fail;
        u64 v;
        memset(h, 0, HEADER_SIZE);
        h->version = SHMRT_LAYOUT_VERSION;
        h->total_size = total;
        h->n_workers = c.n_workers;
        h->n_slots = c.n_slots;
        h->slot_size = c.slot_size;
        h->local_cap = c.local_cap;
        h->inject_cap = L.inject_cap;
        h->n_clients = c.n_clients;
        h->n_funcs = c.n_funcs;
        h->arena_size = c.arena_size;
        h->workers_off = L.workers_off;
        h->queues_off = L.queues_off;
        h->inject_off = L.inject_off;
        h->clients_off = L.clients_off;
        h->funcs_off = L.funcs_off;
        h->slots_off = L.slots_off;
        h->arena_off = L.arena_off;
        h->n_send = L.n_send;
        h->send_cap = L.send_cap;
        h->n_waiters = L.n_waiters;
        h->inflight = L.inflight;
        h->relay_off = L.relay_off;
        h->holds_off = L.holds_off;
        h->owner_uid = geteuid();
        h->max_payload = mp;
        if (dict_u64(create, "coord_pid", &v, (u64)getpid())) goto fail;
        h->coord_pid = v;
        if (dict_u64(create, "coord_start", &v, 0)) goto fail;
        h->coord_start = v;
        /* the arena bytes the creator reserved (segment.create: none when
         * they are reserved as carved, arena.c; all by default) */
        if (dict_u64(create, "arena_reserved", &v, L.arena_size)) goto fail;
        h->arena_reserved = v < L.arena_size ? v : L.arena_size;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        h->created_ns = (u64)ts.tv_sec * 1000000000ULL + (u64)ts.tv_nsec;
        L.max_payload = mp;
    } else {
        const char *err = validate_header(h, total, &L);
        if (err) {
            munmap(base, total);
            PyErr_Format(SegmentError, "invalid segment: %s", err);
            return -1;
        }
    }
    L.base = (char *)base;
    L.size = total;
    L.writable = writable;
    self->L = L;
    self->fd = fd;
    self->closed = 0;
    self->pid = (u64)getpid();
    if (create != Py_None) {
        if (seg_init_structures) seg_init_structures(self); /* cannot fail: plain stores */
        /* Publish: the magic goes last, with release order, so that a process
         * that sees the magic (acquire in attach via fstat+read) sees a
         * complete header.  Pairs with nobody reading before this. */
        STORE_REL(&h->magic, SHMRT_MAGIC);
    }
    return 0;
fail:
    munmap(base, total);
    return -1;
}

static void Segment_dealloc(SegmentObject *self) {
    if (self->L.base && self->exports == 0) munmap(self->L.base, self->L.size);
    /* With live exports the mapping is leaked on purpose: a BlobView still
     * points into it (it holds a reference to us, so this cannot happen). */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Segment_close(SegmentObject *self, PyObject *unused) {
    if (!self->closed && self->L.base) {
        if (self->exports > 0) {
            PyErr_Format(SegmentError, "cannot close: %zd blob views still alive", self->exports);
            return NULL;
        }
        munmap(self->L.base, self->L.size);
        self->L.base = NULL;
    }
    self->closed = 1;
    self->busy = NULL;
    self->units = NULL;
    Py_RETURN_NONE;
}

/* ---- raw typed access ---------------------------------------------------- */
static u64 *word_at(SegmentObject *s, unsigned long long off, u64 width) {
    if (seg_check_open(s, 0)) return NULL;
    if (off % width || s->L.size < width || off > s->L.size - width) {
        PyErr_Format(SegmentError, "offset %llu out of bounds or misaligned", off);
        return NULL;
    }
    return (u64 *)(s->L.base + off);
}

static PyObject *Segment_load64(SegmentObject *s, PyObject *arg) {
    unsigned long long off = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    u64 *p = word_at(s, off, 8);
    if (!p) return NULL;
    return PyLong_FromUnsignedLongLong(LOAD_ACQ(p)); /* pairs with any release store */
}

static PyObject *Segment_store64(SegmentObject *s, PyObject *args) {
    unsigned long long off, v;
    if (!PyArg_ParseTuple(args, "KK", &off, &v) || seg_check_open(s, 1)) return NULL;
    u64 *p = word_at(s, off, 8);
    if (!p) return NULL;
    STORE_REL(p, v); /* pairs with load64's acquire */
    Py_RETURN_NONE;
}

static PyObject *Segment_cas64(SegmentObject *s, PyObject *args) {
    unsigned long long off, exp, des;
    if (!PyArg_ParseTuple(args, "KKK", &off, &exp, &des) || seg_check_open(s, 1)) return NULL;
    u64 *p = word_at(s, off, 8);
    if (!p) return NULL;
    u64 e = exp;
    int ok = CAS_SEQ(p, &e, des); /* full fence: used by tests and tools */
    return Py_BuildValue("(NK)", PyBool_FromLong(ok), (unsigned long long)e);
}

#define FETCH_OP(name, MACRO)                                                \
    static PyObject *Segment_##name(SegmentObject *s, PyObject *args) {      \
        unsigned long long off, v;                                           \
        if (!PyArg_ParseTuple(args, "KK", &off, &v) || seg_check_open(s, 1)) \
            return NULL;                                                     \
        u64 *p = word_at(s, off, 8);                                         \
        if (!p) return NULL;                                                 \
        return PyLong_FromUnsignedLongLong(MACRO(p, v));                     \
    }
FETCH_OP(fetch_add64, FETCH_ADD_ACQREL)
FETCH_OP(fetch_or64, FETCH_OR_ACQREL)
FETCH_OP(fetch_and64, FETCH_AND_ACQREL)

static PyObject *Segment_futex_wait(SegmentObject *s, PyObject *args) {
    unsigned long long off, expected;
    double timeout = -1;
    if (!PyArg_ParseTuple(args, "KK|d", &off, &expected, &timeout)) return NULL;
    u64 *p = word_at(s, off, 8);
    if (!p) return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = futex_wait_u32(p, (u32)expected, timeout);
    Py_END_ALLOW_THREADS
    if (r < 0) return PyErr_SetFromErrno(PyExc_OSError);
    return PyBool_FromLong(r);
}

static PyObject *Segment_futex_wake(SegmentObject *s, PyObject *args) {
    unsigned long long off;
    int n = 1;
    if (!PyArg_ParseTuple(args, "K|i", &off, &n)) return NULL;
    u64 *p = word_at(s, off, 8);
    if (!p) return NULL;
    return PyLong_FromLong(futex_wake_u32(p, n));
}

/* read(off, n) -> bytes: a plain copy (the inspector retries torn reads) */
static PyObject *Segment_read(SegmentObject *s, PyObject *args) {
    unsigned long long off, n;
    if (!PyArg_ParseTuple(args, "KK", &off, &n) || seg_check_open(s, 0)) return NULL;
    if (n > s->L.size || off > s->L.size - n) {
        PyErr_Format(SegmentError, "read of %llu bytes at %llu out of bounds", n, off);
        return NULL;
    }
    return PyBytes_FromStringAndSize(s->L.base + off, (Py_ssize_t)n);
}

static PyObject *Segment_write(SegmentObject *s, PyObject *args) {
    unsigned long long off;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "Ky*", &off, &b)) return NULL;
    if (seg_check_open(s, 1) || (u64)b.len > s->L.size || off > s->L.size - (u64)b.len) {
        if (!PyErr_Occurred()) PyErr_SetString(SegmentError, "write out of bounds");
        PyBuffer_Release(&b);
        return NULL;
    }
    memcpy(s->L.base + off, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

static PyObject *Segment_get_layout(SegmentObject *s, void *c) {
    if (seg_check_open(s, 0)) return NULL;
    layout_t *L = &s->L;
    /* key by key: a format string with 28 pairs had drifted one short */
    struct { const char *k; u64 v; } kv[] = {
        {"total_size", L->size}, {"n_workers", L->n_workers}, {"n_slots", L->n_slots},
        {"slot_size", L->slot_size}, {"local_cap", L->local_cap}, {"inject_cap", L->inject_cap},
        {"n_clients", L->n_clients}, {"n_funcs", L->n_funcs}, {"arena_size", L->arena_size},
        {"max_payload", L->max_payload}, {"workers_off", L->workers_off},
        {"queues_off", L->queues_off}, {"inject_off", L->inject_off},
        {"clients_off", L->clients_off}, {"funcs_off", L->funcs_off},
        {"slots_off", L->slots_off}, {"arena_off", L->arena_off},
        {"client_stride", L->client_stride}, {"writable", (u64)L->writable},
        {"n_send", L->n_send}, {"send_cap", L->send_cap}, {"n_waiters", L->n_waiters},
        {"inflight", L->inflight}, {"relay_off", L->relay_off}, {"relay_hdr", L->relay_hdr},
        {"send_stride", L->send_stride}, {"holds_off", L->holds_off}};
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < sizeof kv / sizeof kv[0]; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(kv[i].v);
        if (!v || PyDict_SetItemString(d, kv[i].k, v)) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *Segment_get_exports(SegmentObject *s, void *c) {
    return PyLong_FromSsize_t(s->exports);
}

PyMethodDef segment_methods[] = {
    {"close", (PyCFunction)Segment_close, METH_NOARGS, "Unmap the segment."},
    {"load64", (PyCFunction)Segment_load64, METH_O, "load64(off) -> int (acquire)"},
    {"store64", (PyCFunction)Segment_store64, METH_VARARGS, "store64(off, v) (release)"},
    {"cas64", (PyCFunction)Segment_cas64, METH_VARARGS, "cas64(off, exp, new) -> (ok, actual)"},
    {"fetch_add64", (PyCFunction)Segment_fetch_add64, METH_VARARGS, "fetch_add64(off, v) -> old"},
    {"fetch_or64", (PyCFunction)Segment_fetch_or64, METH_VARARGS, "fetch_or64(off, v) -> old"},
    {"fetch_and64", (PyCFunction)Segment_fetch_and64, METH_VARARGS, "fetch_and64(off, v) -> old"},
    {"futex_wait", (PyCFunction)Segment_futex_wait, METH_VARARGS,
     "futex_wait(off, expected, timeout=-1) -> bool (False on timeout); GIL released"},
    {"futex_wake", (PyCFunction)Segment_futex_wake, METH_VARARGS, "futex_wake(off, n=1) -> woken"},
    {"read", (PyCFunction)Segment_read, METH_VARARGS, "read(off, n) -> bytes"},
    {"write", (PyCFunction)Segment_write, METH_VARARGS, "write(off, data)"},
    {NULL}};

static PyGetSetDef Segment_getset[] = {
    {"layout", (getter)Segment_get_layout, NULL, "validated private layout", NULL},
    {"exports", (getter)Segment_get_exports, NULL, "live blob views", NULL},
    {NULL}};


PyTypeObject Segment_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmrt._core.Segment",
    .tp_basicsize = sizeof(SegmentObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Segment_init,
    .tp_dealloc = (destructor)Segment_dealloc,
    .tp_getset = Segment_getset,
    .tp_doc = "A mapped, validated shmrt segment.",
};

