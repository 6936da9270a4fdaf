/*
 * udp.h -- the relay's batched UDP I/O (udp.c) and what it uses of relay.c
 * and task.c.  See udp.c for the design.
 */
#ifndef SHMRT_UDP_H
#define SHMRT_UDP_H

#include "core.h"

/* ---- udp.c -------------------------------------------------------------- */
extern PyMethodDef udp_methods[];
#define UDP_BATCH_MAX 256
/* ---- udp_send.c ----------------------------------------------------------- */
PyObject *udp_send_py(SegmentObject *s, PyObject *args);
void udp_timer_slack(void); /* short naps stay short (udp.c) */

/* ---- task.c: a slot filled in place (the datagram is already in it) ---- */
long task_slot_alloc(SegmentObject *s);
u64 task_slot_fill(SegmentObject *s, u64 idx, u64 holder, u64 fn_id, Py_buffer *b,
                   long long blob, const u64 *packet);

/* ---- relay.c: the budget and the packets' end, for code without the GIL -- */
u64 relay_units_try(SegmentObject *s, u64 want); /* inside a section */
int relay_units_wait(SegmentObject *s, double timeout); /* outside: BUDGET_OK or _TIMEOUT */
void relay_unit_in_packet(SegmentObject *s);     /* a unit now held by a packet */
void relay_unit_back(SegmentObject *s);          /* a unit given back unused */
void relay_packet_done(SegmentObject *s, u64 idx); /* slot freed, its unit released */
void relay_done_bump(SegmentObject *s);          /* flush(): wake a flusher */
int relay_flow_min(SegmentObject *s, u64 flow, u64 *best);

#endif
