/*
 * slots.h -- slots.c's API: task slots and their references, below both
 * task.c and relay.c.  A task key is (gen << 32) | index.
 */
#ifndef SHMRT_SLOTS_H
#define SHMRT_SLOTS_H

#include "core.h"

#define KEY_IDX(k) ((u64)(k) & 0xffffffffULL)
#define KEY_GEN(k) ((u64)(k) >> 32)

/* drop one reference (the last frees the slot and its blocks): TR_* */
int drop_ref(SegmentObject *s, u64 idx);
/* drop a handle's reference with its JOIN_INTEREST (state.h drop_handle) */
int drop_handle_ref(SegmentObject *s, u64 idx);
/* the slot's references on its arena blocks, dropped exactly once */
void slot_release_blobs(SegmentObject *s, slot_t *sl);
/* raising: the slot a key names (a stale key is a SegmentError) */
slot_t *slot_for_key(SegmentObject *s, unsigned long long key, u64 *idx);
/* raising: parse a key from Python, check the segment is open, resolve it */
slot_t *slot_of_key_arg(SegmentObject *s, PyObject *arg, int need_write, u64 *idx);
/* raising: allocate and fill a slot (not yet queued): 0, 1 no free slot, -1 */
int task_new(SegmentObject *s, u64 holder, u64 fn_id, Py_buffer *b, long long blob,
             u64 retries, u64 parent, const u64 *packet, u64 *key, u64 *idx);
/* for udp.c (no GIL): a free slot (-1 none, -2 corrupt: marked broken), and
 * its fill once the datagram is in its payload (b->buf NULL) or in blob */
long task_slot_alloc(SegmentObject *s);
u64 task_slot_fill(SegmentObject *s, u64 idx, u64 holder, u64 fn_id, Py_buffer *b,
                   long long blob, const u64 *packet);
/* a completed relay packet to its send ring (never blocks; -1: broken) */
int slot_deliver_packet(SegmentObject *s, u64 idx, slot_t *sl);
/* raising: write the result, RUNNING -> COMPLETE, deliver, drop the
 * scheduler's reference */
int complete_slot(SegmentObject *s, u64 idx, slot_t *sl, u64 status, Py_buffer *b,
                  long long result_blob);

#endif
