/*
 * scheduler.h -- sched.c's API: the run queues and the park / notify
 * handshake, for task.c and relay.c (which push the tasks they create).
 * sched.c itself uses slots.h (a task key to its slot).
 */
#ifndef SHMRT_SCHEDULER_H
#define SHMRT_SCHEDULER_H

#include "core.h"

/* a new runtime's run queues and free-slot state (before anyone maps it) */
int sched_init_structures(SegmentObject *s);
/* wake a parked worker if none is searching: 1 if one was notified */
int sched_notify(SegmentObject *s);
/* push on worker wid's LIFO slot (the displaced one to its queue); -1 corrupt */
int sched_push_lifo(SegmentObject *s, u64 wid, u32 idx);

#endif
