/*
 * relay.h -- relay.c's API for the units that assemble the module: the
 * relay region of a new segment.  (Completed packets reach their send ring
 * through slots.c's delivery, on sendq.h.)
 */
#ifndef SHMRT_RELAY_H
#define SHMRT_RELAY_H

#include "core.h"

int relay_init(SegmentObject *s);

#endif
