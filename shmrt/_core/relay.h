/*
 * relay.h -- relay.c's API: the relay region of a new segment (module.c),
 * the budget and a packet's end for the batched UDP I/O above it (udp.c).
 * (Completed packets reach their send ring through slots.c's delivery, on
 * sendq.h.)
 */
#ifndef SHMRT_RELAY_H
#define SHMRT_RELAY_H

#include "core.h"

int relay_init(SegmentObject *s);

/* the budget and a packet's end, for the UDP I/O (udp.c) without the GIL */
u64 relay_units_try(SegmentObject *s, u64 want); /* inside a section */
int relay_units_wait(SegmentObject *s, double timeout); /* outside: BUDGET_OK or _TIMEOUT */
void relay_unit_in_packet(SegmentObject *s);     /* a unit now held by a packet */
void relay_unit_back(SegmentObject *s);          /* a unit given back unused */
void relay_packet_done(SegmentObject *s, u64 idx); /* slot freed, its unit released */
void relay_done_bump(SegmentObject *s);          /* flush(): wake a flusher */
int relay_flow_min(SegmentObject *s, u64 flow, u64 *best);


#endif
