/*
 * arena.h -- arena.c's API: refcounted blocks, BlobView (a zero-copy view
 * of one block), and the process's hold table (holds.h) behind both.  Uses
 * only core.h; slots.c and the units above use it.
 */
#ifndef SHMRT_ARENA_H
#define SHMRT_ARENA_H

#include "core.h"

extern PyTypeObject BlobView_Type;

u64 arena_class_size(u64 cls); /* bytes of a block of size class cls (header included) */
/* a block with one reference, owned by the caller's data structure (a
 * function entry); -1 exhausted, -2 corrupt (broken) */
long long arena_alloc_block(SegmentObject *s, u64 len);
/* 1 if this kernel has MADV_POPULATE_WRITE: a new segment's arena is then
 * reserved as it is carved (arena.c), else all at creation. */
int arena_lazy_supported(void);
char *arena_block_data(SegmentObject *s, u64 off, u64 *len_out);
/* drop a slot's or an entry's reference (0, or -1: not a live block) */
int arena_release_block(SegmentObject *s, u64 off);
/* raising: the offset must name a block this process holds */
int arena_check_held(SegmentObject *s, long long off, const char *what);
/* raising: one of our references on off becomes a slot's */
int arena_give(SegmentObject *s, long long off, const char *what);
/* this process's record table (claim / registration), stale entries dropped */
void arena_set_holds(SegmentObject *s, holds_t *t);
/* a client record whose release waited for its last hold (admin.c defers) */
void record_release_finish(SegmentObject *s);

/* raising: a view of the block a slot carries (a full hold table: a copy) */
PyObject *blobview_slot(SegmentObject *s, u64 idx, u64 off, const char *what);
/* raising: a view of a block the caller names */
PyObject *blobview_new(SegmentObject *s, u64 off);

#endif
