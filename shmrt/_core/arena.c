/*
 * arena.c -- the blob arena: refcounted blocks for payloads that do not fit
 * in a slot, and BlobView, a buffer exporter over one block.
 *
 * Allocation is by size classes in half-steps (4K, 6K, 8K, 12K, 16K, ...: a
 * block wastes at most a third; a 64-byte header is included).  Each class
 * has a free stack (Treiber, ABA tag in the head, link in the block header);
 * a class with an empty stack carves a new block from the bump pointer, and
 * when the arena is all carved, takes a free block of a larger class.  The
 * stacks are freestack.h's (checked by tools/check, scenario freelist).  Blocks
 * are never split or merged: simple, lock-free, and crash-tolerant (a dead
 * process can leak a block, never corrupt the allocator).  The cost is
 * fragmentation when a workload's sizes drift; statistics() shows live and
 * carved bytes.
 *
 * A block's refs count its owners: the slot that carries it (args or result)
 * and every BlobView over it.  The last release pushes it on its class's
 * free stack.  So a numpy array unpickled on top of a BlobView keeps its
 * memory alive for exactly as long as the array lives: zero-copy without
 * use-after-free.
 *
 * Offsets are arena-relative block offsets (multiples of 64) on the wire, and
 * every one read back is checked: inside the arena, aligned, header magic and
 * class consistent, length within the block.
 */
#include "core.h"
#include "freestack.h"

u64 arena_class_size(u64 c) {
    return (c & 1) ? (u64)(ARENA_MIN_BLOCK * 3 / 2) << (c / 2) : (u64)ARENA_MIN_BLOCK << (c / 2);
}

static int class_for(u64 need) {
    for (int c = 0; c < ARENA_CLASSES; c++)
        if (need <= arena_class_size((u64)c)) return c;
    return -1;
}

static block_t *block_at(SegmentObject *s, u64 off) {
    if (off % CACHE_LINE || s->L.arena_size < BLOCK_HEADER_SIZE ||
        off > s->L.arena_size - BLOCK_HEADER_SIZE)
        return NULL;
    block_t *b = (block_t *)(s->L.base + s->L.arena_off + off);
    u64 mc = LOAD_RLX(&b->magic_class);
    u64 c = mc & 0xffffffffULL;
    if ((mc >> 32) != BLOCK_MAGIC || c >= ARENA_CLASSES) return NULL;
    if (arena_class_size(c) > s->L.arena_size - off) return NULL;
    return b;
}

/* fs_pop's link check: the `next` word of block number top (offset / 64 + 1),
 * after block_at's bounds and header checks. */
typedef struct {
    SegmentObject *s;
} arena_ctx_t;

static u64 *arena_link(const void *ctx, u64 top) {
    block_t *b = block_at(((const arena_ctx_t *)ctx)->s, (top - 1) * CACHE_LINE);
    return b ? &b->next : NULL;
}

/* Pop a free block of class c: its offset, -1 if none, -2 if corrupt (the
 * runtime is broken then: a free stack whose top is no block, or whose block
 * is in use or of another class, would hand one block to two owners). */
static long long pop_free(SegmentObject *s, int c) {
    arena_ctx_t ctx = {s};
    u64 *head = &HDR(s)->arena_free[c];
    u64 top = fs_pop(head, arena_link, &ctx, FS_TOP_MASK, 0);
    if (top == FS_CORRUPT) {
        seg_mark_broken(s, "arena: free stack of class %d: head %#llx is not a block", c,
                        (unsigned long long)LOAD_RLX(head));
        return -2;
    }
    if (!top) return -1;
    u64 off = (top - 1) * CACHE_LINE;
    block_t *b = block_at(s, off);
    u64 refs = LOAD_ACQ(&b->refs); /* pairs with the last release's CAS */
    if (refs != 0 || (LOAD_RLX(&b->magic_class) & 0xffffffffULL) != (u64)c) {
        seg_mark_broken(s, "arena: free stack of class %d handed out block %llu (class %llu, "
                        "%llu refs)", c, (unsigned long long)off,
                        (unsigned long long)(LOAD_RLX(&b->magic_class) & 0xffffffffULL),
                        (unsigned long long)refs);
        return -2;
    }
    return (long long)off;
}

/* Returns the block's arena offset, -1 when the arena is exhausted, or -2
 * when it is corrupt (the runtime is broken then, broken.c). */
long long arena_alloc_block(SegmentObject *s, u64 len) {
    if (len > s->L.arena_size) return -1;
    int c = class_for(len + BLOCK_HEADER_SIZE);
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
            if (CAS_ACQREL(&h->arena_bump, &bump, bump + size)) {
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
    }
    for (int cc = c + 1; off < 0 && cc < ARENA_CLASSES; cc++) { /* all carved: a bigger one */
        off = pop_free(s, cc);
        if (off == -2) return -2;
    }
    if (off < 0) return -1;
    block_t *b = (block_t *)(s->L.base + s->L.arena_off + off);
    STORE_RLX(&b->len, len);
    STORE_REL(&b->refs, 1);
    FETCH_ADD_RLX(&h->arena_live_bytes, arena_class_size(LOAD_RLX(&b->magic_class) & 0xffffffffULL));
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

/* Drop one reference; the last one frees the block.  Returns 0, or -1 for a
 * bad offset / refcount (nothing is changed then; the caller knows whether
 * the offset came from shared memory, i.e. whether that is corruption). */
int arena_release_block(SegmentObject *s, u64 off) {
    block_t *b = block_at(s, off);
    if (!b) return -1;
    u64 r = LOAD_RLX(&b->refs);
    for (;;) {
        if (r == 0) return -1; /* never underflow */
        if (CAS_ACQREL(&b->refs, &r, r - 1)) break; /* last dropper sees all writes */
    }
    if (r != 1) return 0;
    u64 c = LOAD_RLX(&b->magic_class) & 0xffffffffULL;
    header_t *h = HDR(s);
    FETCH_SUB_ACQREL(&h->arena_live_bytes, arena_class_size(c));
    fs_push(&h->arena_free[c], &b->next, off / CACHE_LINE + 1); /* pairs with pop_free */
    return 0;
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

/* A view of a block a slot carries (args or result): the offset and the
 * block come from shared memory, so a bad one is corruption (broken.c). */
PyObject *blobview_slot(SegmentObject *s, u64 idx, u64 off, const char *what) {
    u64 len;
    block_t *b = block_at(s, off);
    if (!b || !arena_block_data(s, off, &len) || (s->L.writable && !LOAD_RLX(&b->refs)))
        return seg_corrupt(s, "slot %llu: %s block at arena offset %llu is not a live block",
                           (unsigned long long)idx, what, (unsigned long long)off);
    return blobview_new(s, off);
}

PyObject *blobview_new(SegmentObject *s, u64 off) {
    u64 len;
    char *data = arena_block_data(s, off, &len);
    block_t *b = block_at(s, off);
    if (!data || !b) return PyErr_Format(SegmentError, "bad arena block offset %llu", off);
    u64 r = LOAD_RLX(&b->refs);
    /* take our own reference; refuse a dead block.  A read-only mapping
     * cannot (it is an observer: the block may be recycled under it). */
    for (; s->L.writable;) {
        if (r == 0) return PyErr_Format(SegmentError, "arena block %llu already freed", off);
        if (CAS_ACQREL(&b->refs, &r, r + 1)) break;
    }
    BlobViewObject *v = PyObject_New(BlobViewObject, &BlobView_Type);
    if (!v) {
        if (s->L.writable) arena_release_block(s, off);
        return NULL;
    }
    Py_INCREF(s);
    v->seg = s;
    v->off = off;
    v->len = len;
    v->data = data;
    v->readonly = !s->L.writable;
    s->exports++;
    return (PyObject *)v;
}

static void BlobView_dealloc(BlobViewObject *v) {
    if (v->seg) {
        v->seg->exports--;
        /* the view holds a reference: a block that refuses it was scribbled */
        if (!v->seg->closed && v->seg->L.writable && arena_release_block(v->seg, v->off))
            seg_mark_broken(v->seg, "arena: block at offset %llu lost the reference of a view",
                            (unsigned long long)v->off);
        Py_DECREF(v->seg);
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
static PyGetSetDef BlobView_getset[] = {
    {"offset", (getter)BlobView_get_offset, NULL, "arena offset of the block", NULL}, {NULL}};

PyTypeObject BlobView_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmrt._core.BlobView",
    .tp_basicsize = sizeof(BlobViewObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)BlobView_dealloc,
    .tp_as_buffer = &BlobView_as_buffer,
    .tp_as_sequence = &BlobView_as_seq,
    .tp_getset = BlobView_getset,
    .tp_doc = "A zero-copy view of one arena block; keeps the block alive.",
};

/* ---- Python methods ------------------------------------------------------ */
/* blob_alloc(len) -> (offset, BlobView) writable view for the producer, or
 * None when the arena is exhausted.  The slot-side reference is the one
 * returned by alloc; the view holds a second. */
static PyObject *AR_blob_alloc(SegmentObject *s, PyObject *arg) {
    unsigned long long len = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    long long off = arena_alloc_block(s, len);
    if (off == -2) return seg_raise_broken(s);
    if (off < 0) Py_RETURN_NONE;
    PyObject *v = blobview_new(s, (u64)off);
    if (!v) {
        arena_release_block(s, (u64)off);
        return NULL;
    }
    return Py_BuildValue("(LN)", off, v);
}

static PyObject *AR_blob_release(SegmentObject *s, PyObject *arg) {
    unsigned long long off = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 1)) return NULL;
    if (arena_release_block(s, off)) return PyErr_Format(SegmentError, "bad blob offset %llu", off);
    Py_RETURN_NONE;
}

static PyObject *AR_blob_view(SegmentObject *s, PyObject *arg) {
    unsigned long long off = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || seg_check_open(s, 0)) return NULL;
    return blobview_new(s, off);
}

static PyObject *AR_arena_stats(SegmentObject *s, PyObject *unused) {
    if (seg_check_open(s, 0)) return NULL;
    header_t *h = HDR(s);
    return Py_BuildValue("{sKsKsK}", "size", s->L.arena_size, "carved", LOAD_RLX(&h->arena_bump),
                         "live", LOAD_RLX(&h->arena_live_bytes));
}

PyMethodDef arena_methods[] = {
    {"blob_alloc", (PyCFunction)AR_blob_alloc, METH_O,
     "blob_alloc(len) -> (offset, writable BlobView) | None"},
    {"blob_release", (PyCFunction)AR_blob_release, METH_O, "blob_release(offset)"},
    {"blob_view", (PyCFunction)AR_blob_view, METH_O, "blob_view(offset) -> BlobView"},
    {"arena_stats", (PyCFunction)AR_arena_stats, METH_NOARGS, "arena_stats() -> dict"},
    {NULL}};
