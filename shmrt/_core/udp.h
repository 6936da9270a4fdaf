/*
 * udp.h -- the relay's batched UDP I/O: what udp.c and udp_send.c share.
 * Above relay.h (the budget, a packet's end) and slots.h (a slot filled in
 * place); see udp.c for the design.
 */
#ifndef SHMRT_UDP_H
#define SHMRT_UDP_H

#include "arena.h"
#include "relay.h"
#include "scheduler.h"
#include "slots.h"

/* ---- udp.c -------------------------------------------------------------- */
#define UDP_BATCH_MAX 256
/* ---- udp_send.c ----------------------------------------------------------- */
PyObject *udp_send_py(SegmentObject *s, PyObject *args);
void udp_timer_slack(void); /* short naps stay short (udp.c) */

#endif
