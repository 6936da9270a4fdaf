/*
 * arena.c -- the blob arena: refcounted blocks for payloads that do not fit
 * in a slot, and BlobView, a buffer exporter over one block.
 *
 * Allocation is by size classes in half-steps (4K, 6K, 8K, 12K, 16K, ... of
 * payload, plus a 64-byte header: a block wastes at most a third, and a
 * power-of-two payload fits its own class).  Each class
 * has a free stack (Treiber, ABA tag in the head, link in the block header);
 * a class with an empty stack carves a new block from the bump pointer, and
 * when the arena is all carved, takes a free block of a larger class.  The
 * stacks are freestack.h's (checked by tools/check, scenario freelist).  Blocks
 * are never split or merged: simple, lock-free, and crash-tolerant (a dead
 * process can leak a block, never corrupt the allocator).  The cost is
 * fragmentation when a workload's sizes drift; statistics() shows live and
 * carved bytes.
 *
 * A block's refs count its holders: the slot that carries it (args or
 * result), the function entry whose callable it is, and every process
 * holding views of it, once per process (holds.h: each process writes the
 * blocks it holds into its record's hold table, so the crash reclaim can
 * drop a dead process's references).  The last release pushes it on its
 * class's free stack.  So a numpy array unpickled on top of a BlobView keeps
 * its memory alive for exactly as long as the array lives, in any process:
 * zero-copy without use-after-free, and without a leak when that process
 * is killed.
 *
 * Offsets are arena-relative block offsets (multiples of 64) on the wire, and
 * every one read back is checked: inside the arena, aligned, header magic and
 * class consistent, length within the block.
 *
 * Reservation (arena_reserve).  A segment's pages must exist in /dev/shm
 * before anyone touches them: a page the kernel cannot allocate on first
 * touch is a SIGBUS, where it must be an error.  The creator reserves the
 * control part (header to slots) with posix_fallocate; the arena, most of
 * the segment (64 MiB by default, ~20 ms of page clearing that every new
 * pool used to wait for), is reserved as it is carved: before its bump CAS
 * a carver populates the pages up to the end of its block, rounded up to
 * RESERVE_CHUNK, with MADV_POPULATE_WRITE (which fails with an errno where
 * a touch would SIGBUS), and then raises header.arena_reserved.  A block's
 * memory is only ever touched after it is carved, so every touched arena
 * page was populated first.  The mark is a hint, never trusted beyond the
 * arena and only raised after a populate succeeded: a carver killed inside
 * the populate leaves it where it was, and the next one populates again
 * (idempotent; nothing else in the segment changed).  Without
 * MADV_POPULATE_WRITE (kernels before 5.14: ARENA_LAZY is 0) the creator
 * reserves the whole segment and sets the mark to the arena's size.
 */
#include "arena.h"
#include "freestack.h"
#include "holds.h"
#include "section.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#define RESERVE_CHUNK (2ULL << 20) /* populate at least this much at a time */

u64 arena_class_size(u64 c) { return arena_class_bytes(c); }

static block_t *block_at(SegmentObject *s, u64 off) { return lay_block(&s->L, off); }

static int class_for(u64 need) {
    for (int c = 0; c < ARENA_CLASSES; c++)
        if (need <= arena_class_bytes((u64)c)) return c;
    return -1;
}

/* Pop a free block of class c (holds.h arena_pop): its offset, -1 if none,
 * -2 if corrupt (the runtime is broken then). */
static long long pop_free(SegmentObject *s, int c) {
    u64 off = 0;
    int r = arena_pop(&s->L, c, &off);
    if (r == ARENA_POP_BAD_HEAD) {
        seg_mark_broken(s, "arena: free stack of class %d: head %#llx is not a block", c,
                        (unsigned long long)LOAD_RLX(&HDR(s)->arena_free[c]));
        return -2;
    }
    if (r == ARENA_POP_IN_USE) {
        block_t *b = block_at(s, off);
        seg_mark_broken(s, "arena: free stack of class %d handed out block %llu (class %llu, "
                        "%llu refs)", c, (unsigned long long)off,
                        (unsigned long long)(LOAD_RLX(&b->magic_class) & 0xffffffffULL),
                        (unsigned long long)LOAD_RLX(&b->refs));
        return -2;
    }
    return r == ARENA_POP_OK ? (long long)off : -1;
}

int arena_lazy_supported(void) {
    static int ok = -1; /* probed once per process: an anonymous page */
    if (ok < 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ok = p != MAP_FAILED && madvise(p, 4096, MADV_POPULATE_WRITE) == 0;
        if (p != MAP_FAILED) munmap(p, 4096);
    }
    return ok;
}

/* Make the arena's pages below `end` exist (see the top of the file):
 * 0, -2 corrupt (the runtime is broken), -3 the kernel refused (errno set:
 * /dev/shm full, or out of memory). */
static int arena_reserve(SegmentObject *s, u64 end) {
    header_t *h = HDR(s);
    u64 have = LOAD_ACQ(&h->arena_reserved); /* pairs with the CAS below: pages exist below it */
    if (end <= have) return 0;
    if (have > s->L.arena_size) {
        seg_mark_broken(s, "arena: reserved mark %llu is past the arena (%llu bytes)",
                        (unsigned long long)have, (unsigned long long)s->L.arena_size);
        return -2;
    }
    u64 from = have & ~4095ULL, to = (end + RESERVE_CHUNK - 1) & ~(RESERVE_CHUNK - 1);
    if (to > s->L.arena_size) to = s->L.arena_size; /* arena_size: a multiple of 4096 */
    if (madvise(s->L.base + s->L.arena_off + from, (size_t)(to - from), MADV_POPULATE_WRITE))
        return -3;
    CRASH_POINT(CP_RESERVE);
    /* raise it to `to` unless someone raised it further (acq_rel: our pages
     * are in the file before the mark says so; pairs with the load above) */
    while (have < to && !CAS_ACQREL(&h->arena_reserved, &have, to)) {
    }
    return 0;
}

/* Returns the block's arena offset, -1 when the arena is exhausted, -2
 * when it is corrupt (the runtime is broken then, broken.c), or -3 when the
 * kernel could not reserve its pages (errno set: /dev/shm is full). */
long long arena_alloc_block(SegmentObject *s, u64 len) {
    if (len > s->L.arena_size) return -1;
    int c = class_for(len + BLOCK_HEADER_SIZE); /* class sizes count the header */
    if (c < 0) return -1;
    header_t *h = HDR(s);
    long long off = pop_free(s, c);
    if (off == -2) return -2; /* corrupt stack: refuse rather than trust it */
    if (off < 0) { /* carve from the bump pointer */
        u64 size = arena_class_size((u64)c);
        u64 bump = LOAD_ACQ(&h->arena_bump);
        for (;;) {
            if (bump > s->L.arena_size || bump % CACHE_LINE) {
                seg_mark_broken(s, "arena: bump pointer %llu is not inside the arena (%llu bytes)",
                                (unsigned long long)bump, (unsigned long long)s->L.arena_size);
                return -2;
            }
            if (size > s->L.arena_size - bump) break;
            int rr = arena_reserve(s, bump + size); /* before the CAS: see the top of the file */
            if (rr) {
                if (s->holds) STORE_RLX(&s->holds->carving, 0);
                return rr;
            }
            /* write-ahead for the reclaim's walk (holds.h): if we die
             * between the CAS and the header, this says how big the hole is */
            if (s->holds) STORE_RLX(&s->holds->carving, (HOLD_TOP(bump) << 8) | (u64)c);
            if (CAS_ACQREL(&h->arena_bump, &bump, bump + size)) {
                CRASH_POINT(CP_CARVE);
                /* ours now, and never carved before: its header is still
                 * zero (the segment starts zeroed); a magic there means the
                 * pointer was moved back over live blocks */
                block_t *nb = (block_t *)(s->L.base + s->L.arena_off + bump);
                if ((LOAD_RLX(&nb->magic_class) >> 32) == BLOCK_MAGIC) {
                    seg_mark_broken(s, "arena: bump pointer %llu points at a carved block",
                                    (unsigned long long)bump);
                    return -2;
                }
                off = (long long)bump;
                STORE_RLX(&nb->magic_class, ((u64)BLOCK_MAGIC << 32) | (u64)c);
                break;
            }
        }
        if (s->holds) STORE_RLX(&s->holds->carving, 0);
    }
    for (int cc = c + 1; off < 0 && cc < ARENA_CLASSES; cc++) { /* all carved: a bigger one */
        off = pop_free(s, cc);
        if (off == -2) return -2;
    }
    if (off < 0) return -1;
    arena_take(&s->L, (u64)off, len);
    return off;
}

char *arena_block_data(SegmentObject *s, u64 off, u64 *len_out) {
    block_t *b = block_at(s, off);
    if (!b) return NULL;
    u64 c = LOAD_RLX(&b->magic_class) & 0xffffffffULL;
    u64 len = LOAD_RLX(&b->len);
    if (len > arena_class_size(c) - BLOCK_HEADER_SIZE) return NULL;
    *len_out = len;
    return (char *)b + BLOCK_HEADER_SIZE;
}

/* Drop a slot's or a function entry's reference; the last one frees the
 * block.  Returns 0, or -1 for a bad offset / refcount (nothing is changed
 * then; the caller knows whether the offset came from shared memory, i.e.
 * whether that is corruption). */
int arena_release_block(SegmentObject *s, u64 off) {
    block_t *b = block_at(s, off);
    return b ? block_unref(&s->L, off, b) : -1;
}

/* The offset a caller hands to a slot (submit, finish) must be a block this
 * process holds (from blob_alloc): 0, or -1 with SegmentError set. */
int arena_check_held(SegmentObject *s, long long off, const char *what) {
    if (off < 0 || hold_check(&s->L, s->holds, (u64)off) == HOLD_OK) return 0;
    PyErr_Format(SegmentError, "%s block at arena offset %lld is not one this process holds",
                 what, off);
    return -1;
}

/* ...and in the step that stores it in the slot, one of our references on
 * it becomes the slot's (holds.h hold_give). */
int arena_give(SegmentObject *s, long long off, const char *what) {
    if (off < 0 || hold_give(&s->L, s->holds, (u64)off) == HOLD_OK) return 0;
    PyErr_Format(SegmentError, "%s block at arena offset %lld is not one this process holds",
                 what, off);
    return -1;
}

/* This process's record (claimed or registered): from here its references
 * are in the record's table.  A table left by a dead owner no recount
 * cleared has its references dropped first (holds.h hold_drop_stale). */
void arena_set_holds(SegmentObject *s, holds_t *t) {
    if (t && (LOAD_RLX(&t->count) || LOAD_RLX(&t->used)) && hold_drop_stale(&s->L, t) < 0)
        seg_mark_broken(s, "hold table: a stale entry names no live block");
    s->holds = t;
}

/* ---- process records ---------------------------------------------------- */
/* The second half of a client's release (admin.c's client_release defers it
 * while the process holds blocks): the entry can be claimed again. */
void record_release_finish(SegmentObject *s) {
    client_t *c = s->release_cid ? client_at(s, s->release_cid - 1) : NULL;
    s->release_cid = 0;
    if (!c) return;
    if (s->busy == &c->busy) {
        s->busy = NULL;
        s->holds = NULL;
    }
    if (s->units == &c->units) s->units = NULL;
    STORE_RLX(&c->busy, 0);
    STORE_REL(&c->pid, 0); /* pairs with the next claim's CAS */
}

/* ---- BlobView ------------------------------------------------------------ */
typedef struct {
    PyObject_HEAD
    SegmentObject *seg;
    u64 off;
    u64 len;
    char *data;
    int readonly;
} BlobViewObject;

/* The view object over block off, on a local reference the caller took
 * (or none: a read-only mapping is an observer). */
static PyObject *blobview_wrap(SegmentObject *s, u64 off, char *data, u64 len) {
    BlobViewObject *v = PyObject_New(BlobViewObject, &BlobView_Type);
    if (!v) return NULL;
    Py_INCREF(s);
    v->seg = s;
    v->off = off;
    v->len = len;
    v->data = data;
    v->readonly = !s->L.writable;
    s->exports++;
    return (PyObject *)v;
}

/* Drop one local reference (a view, an offset in hand); the caller is in a
 * section.  -1: we held none on off. */
static int arena_put(SegmentObject *s, u64 off) { return hold_put(&s->L, s->holds, off); }

/* A view of a block a slot carries (args or result): the offset and the
 * block come from shared memory, so a bad one is corruption (broken.c).
 * Called inside the step that reads the slot.  When this process's hold
 * table is full, the payload is copied into bytes instead (decode takes
 * either). */
PyObject *blobview_slot(SegmentObject *s, u64 idx, u64 off, const char *what) {
    u64 len;
    char *data = arena_block_data(s, off, &len);
    block_t *b = block_at(s, off);
    if (!data || !b || (s->L.writable && !LOAD_RLX(&b->refs)))
        return seg_corrupt(s, "slot %llu: %s block at arena offset %llu is not a live block",
                           (unsigned long long)idx, what, (unsigned long long)off);
    if (!s->L.writable) return blobview_wrap(s, off, data, len);
    int r = hold_get(&s->L, s->holds, off);
    if (r == HOLD_FULL) return PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    if (r != HOLD_OK)
        return seg_corrupt(s, "slot %llu: %s block at arena offset %llu is not a live block",
                           (unsigned long long)idx, what, (unsigned long long)off);
    PyObject *v = blobview_wrap(s, off, data, len);
    if (!v) arena_put(s, off);
    return v;
}

/* A view of block off named by the caller (blob_view): refused if the block
 * is not live, or if the hold table is full. */
PyObject *blobview_new(SegmentObject *s, u64 off) {
    u64 len;
    char *data = arena_block_data(s, off, &len);
    if (!data) return PyErr_Format(SegmentError, "bad arena block offset %llu", off);
    if (s->L.writable) {
        int r = hold_get(&s->L, s->holds, off);
        if (r == HOLD_FULL)
            return PyErr_Format(SegmentError, "this process holds views of %d arena blocks, "
                                "the most it may (drop some)", HOLD_CAP);
        if (r != HOLD_OK) return PyErr_Format(SegmentError, "arena block %llu already freed", off);
    }
    PyObject *v = blobview_wrap(s, off, data, len);
    if (!v && s->L.writable) arena_put(s, off);
    return v;
}

/* Give a client record back once its last hold is gone (admin.c deferred
 * the release while views were alive). */
static void maybe_finish_release(SegmentObject *s) {
    if (s->release_cid && (!s->holds || !LOAD_RLX(&s->holds->count))) record_release_finish(s);
}

static void BlobView_dealloc(BlobViewObject *v) {
    SegmentObject *s = v->seg;
    if (s) {
        s->exports--;
        /* the view holds a reference: a block that refuses it was scribbled */
        if (!s->closed && s->L.writable) {
            section_enter(s);
            int bad = arena_put(s, v->off);
            section_leave(s);
            if (bad)
                seg_mark_broken(s, "arena: block at offset %llu lost the reference of a view",
                                (unsigned long long)v->off);
            maybe_finish_release(s);
        }
        Py_DECREF(s);
    }
    PyObject_Free(v);
}

static int BlobView_getbuffer(BlobViewObject *v, Py_buffer *view, int flags) {
    if (v->seg->closed) {
        PyErr_SetString(SegmentError, "segment is closed");
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)v, v->data, (Py_ssize_t)v->len, v->readonly, flags);
}

static PyBufferProcs BlobView_as_buffer = {(getbufferproc)BlobView_getbuffer, NULL};

static Py_ssize_t BlobView_len(BlobViewObject *v) { return (Py_ssize_t)v->len; }
static PySequenceMethods BlobView_as_seq = {.sq_length = (lenfunc)BlobView_len};

static PyObject *BlobView_get_offset(BlobViewObject *v, void *c) {
    return PyLong_FromUnsignedLongLong(v->off);
}
static PyObject *BlobView_get_segment(BlobViewObject *v, void *c) {
    Py_INCREF(v->seg);
    return (PyObject *)v->seg;
}
static PyGetSetDef BlobView_getset[] = {
    {"offset", (getter)BlobView_get_offset, NULL, "arena offset of the block", NULL},
    {"segment", (getter)BlobView_get_segment, NULL, "the Segment the block belongs to", NULL},
    {NULL}};

/* locate(buffer) -> start: where a buffer's memory (a contiguous export, e.g.
 * a PickleBuffer's raw()) starts inside this view, or -1 when it is not
 * wholly inside it.  How the codec sends an array that already lives in the
 * arena by reference instead of copying it (shared arrays). */
static PyObject *BlobView_locate(BlobViewObject *v, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE)) return NULL;
    uintptr_t p = (uintptr_t)b.buf, d = (uintptr_t)v->data; /* unrelated objects: compare as integers */
    long long start = -1;
    if (p >= d && (u64)(p - d) <= v->len && (u64)b.len <= v->len - (u64)(p - d))
        start = (long long)(p - d);
    PyBuffer_Release(&b);
    return PyLong_FromLongLong(start);
}
static PyMethodDef BlobView_methods[] = {
    {"locate", (PyCFunction)BlobView_locate, METH_O,
     "locate(buffer) -> start of its memory in this view, or -1"},
    {NULL}};

PyTypeObject BlobView_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmrt._core.BlobView",
    .tp_basicsize = sizeof(BlobViewObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)BlobView_dealloc,
    .tp_as_buffer = &BlobView_as_buffer,
    .tp_as_sequence = &BlobView_as_seq,
    .tp_getset = BlobView_getset,
    .tp_methods = BlobView_methods,
    .tp_doc = "A zero-copy view of one arena block; keeps the block alive.",
};

/* ---- Python methods ------------------------------------------------------ */
/* blob_alloc(len) -> (offset, BlobView) writable view for the producer, or
 * None when the arena is exhausted.  The process holds two references: the
 * view's, and the offset's, which submit / finish / relay_submit hand to the
 * slot (or blob_release drops). */
static PyObject *AR_blob_alloc(SegmentObject *s, PyObject *arg) {
    unsigned long long len = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    if (!holds_room(s->holds))
        return PyErr_Format(SegmentError, "this process holds %d arena blocks, the most it may "
                            "(drop some views or arrays)", HOLD_CAP);
    long long off = arena_alloc_block(s, len);
    if (off == -2) return seg_raise_broken(s);
    if (off == -3) { /* EFAULT: a touch would SIGBUS, i.e. no room in /dev/shm */
        int e = errno == EFAULT ? ENOSPC : errno;
        PyObject *exc = PyObject_CallFunction(
            PyExc_OSError, "iN", e,
            PyUnicode_FromFormat("/dev/shm cannot hold more of the arena: a block of %llu bytes "
                                 "was refused (%s); free /dev/shm space, or lower arena_size",
                                 (unsigned long long)len, strerror(e)));
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (off < 0) Py_RETURN_NONE;
    u64 n;
    char *data = arena_block_data(s, (u64)off, &n);
    hold_adopt(&s->L, s->holds, (u64)off, block_at(s, (u64)off), 2);
    PyObject *v = blobview_wrap(s, (u64)off, data, n);
    if (!v) {
        arena_put(s, (u64)off);
        arena_put(s, (u64)off);
        return NULL;
    }
    return Py_BuildValue("(LN)", off, v);
}

static PyObject *AR_blob_release(SegmentObject *s, PyObject *arg) {
    unsigned long long off = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    if (arena_put(s, off)) return PyErr_Format(SegmentError, "bad blob offset %llu", off);
    Py_RETURN_NONE;
}

static PyObject *AR_blob_view(SegmentObject *s, PyObject *arg) {
    unsigned long long off = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    return blobview_new(s, off);
}

SECTIONED(AR_blob_alloc)
SECTIONED(AR_blob_release)
SECTIONED(AR_blob_view)

static PyObject *AR_arena_stats(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 0)) return NULL;
    header_t *h = HDR(s);
    return Py_BuildValue("{sKsKsKsKsK}", "size", s->L.arena_size, "carved",
                         LOAD_RLX(&h->arena_bump), "live", LOAD_RLX(&h->arena_live_bytes),
                         "untracked", LOAD_RLX(&h->arena_untracked), "reserved",
                         LOAD_RLX(&h->arena_reserved));
}

/* arena_census() -> dict: every carved block, held (refs > 0) or free, and
 * how many free blocks the free stacks reach.  Exact only when the runtime
 * is quiescent (tests, a stopped runtime): on a busy one it is a sample.
 * function_bytes: what the function table holds; held_by_processes: hold
 * table entries (blocks held by processes, once per process).
 * A block that is free and on no stack, or a hole in the carved area, is a
 * leak (the crash reclaim's recount repairs both: holds.h). */
typedef struct {
    recount_t rc;
    u64 held, held_bytes, free, free_bytes;
} census_t;

static int census_visit(const layout_t *L, u64 off, block_t *b, void *ctx) {
    census_t *c = (census_t *)ctx;
    u64 size = arena_class_bytes(LOAD_RLX(&b->magic_class) & 0xffffffffULL);
    if (LOAD_RLX(&b->refs)) {
        c->held++;
        c->held_bytes += size;
    } else {
        c->free++;
        c->free_bytes += size;
    }
    return 0;
}

static PyObject *AR_arena_census(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 0)) return NULL;
    census_t c = {0};
    char why[BROKEN_REASON_MAX] = "";
    int bad = arena_walk(&s->L, NULL, &c.rc, census_visit, &c, why, sizeof why);
    u64 reachable = 0, limit = c.held + c.free;
    for (int k = 0; !bad && k < ARENA_CLASSES; k++) {
        u64 top = LOAD_ACQ(&HDR(s)->arena_free[k]) & FS_TOP_MASK; /* pairs with fs_push */
        for (u64 n = 0; top && n <= limit; n++, reachable++) {
            block_t *b = block_at(s, (top - 1) * CACHE_LINE);
            if (!b) {
                snprintf(why, sizeof why, "arena: free stack %d reaches offset %llu, no block", k,
                         (unsigned long long)((top - 1) * CACHE_LINE));
                break;
            }
            top = LOAD_ACQ(&b->next) & FS_TOP_MASK;
        }
    }
    u64 fn_bytes = 0, nf = LOAD_ACQ(&HDR(s)->fn_count), tables = 0;
    for (u64 i = 0; i < nf && i < s->L.n_funcs; i++) { /* blocks the function table holds */
        func_t *f = func_at(s, i);
        block_t *b = LOAD_ACQ(&f->state) == FN_READY ? block_at(s, LOAD_RLX(&f->blob)) : NULL;
        if (b) fn_bytes += arena_class_bytes(LOAD_RLX(&b->magic_class) & 0xffffffffULL);
    }
    for (u64 r = 0; r < holds_records(&s->L); r++) tables += LOAD_RLX(&lay_holds(&s->L, r)->count);
    return Py_BuildValue("{sKsKsKsKsKsKsKss}", "held", c.held, "held_bytes", c.held_bytes, "free",
                         c.free, "free_bytes", c.free_bytes, "on_free_stacks", reachable,
                         "function_bytes", fn_bytes, "held_by_processes", tables, "error", why);
}

PyMethodDef arena_methods[] = {
    {"arena_census", (PyCFunction)AR_arena_census, METH_NOARGS,
     "arena_census() -> dict: held and free blocks, free blocks reachable (exact when quiescent)"},
    {"blob_alloc", (PyCFunction)AR_blob_alloc_s, METH_O,
     "blob_alloc(len) -> (offset, writable BlobView) | None"},
    {"blob_release", (PyCFunction)AR_blob_release_s, METH_O, "blob_release(offset)"},
    {"blob_view", (PyCFunction)AR_blob_view_s, METH_O, "blob_view(offset) -> BlobView"},
    {"arena_stats", (PyCFunction)AR_arena_stats, METH_NOARGS, "arena_stats() -> dict"},
    {NULL}};
