/*
 * futex.h -- the operating-system services the pure protocol headers use:
 * futex wait / wake on the low 32 bits of a shared word, a monotonic clock,
 * and a short nap.
 *
 * Why a header of its own: the protocols (park.h, budget.h, wake.h) are
 * compiled into the extension and into the model checker (tools/check).  The
 * extension links the real implementations (segment.c: the futex syscall,
 * CLOCK_MONOTONIC); the checker links its own, which model the kernel's
 * futex exactly where it matters:
 *
 *   futex_wait_u32(w, v, t)  blocks only if the low 32 bits of *w == v at the
 *                            call (else returns 1 at once, like EAGAIN); then
 *                            returns 1 when woken, 0 when the timeout ran out
 *   futex_wake_u32(w, n)     wakes up to n threads blocked on w NOW; a wake
 *                            with nobody blocked is lost (returns 0)
 *
 * A protocol is free of lost wakeups only if it never depends on a wake that
 * arrives before the wait: every waiter reads the word's value first, then
 * re-checks its condition, then waits for that value (the kernel compares).
 */
#ifndef SHMRT_FUTEX_H
#define SHMRT_FUTEX_H

#include "atomics.h"

/* 1 woken (or the value differed), 0 timed out, -1 error.  timeout_s < 0:
 * no timeout. */
int futex_wait_u32(u64 *word, u32 expected, double timeout_s);
/* Number of threads woken. */
int futex_wake_u32(u64 *word, int n);
/* CLOCK_MONOTONIC in ns (the checker: a logical clock). */
u64 now_ns(void);

#if defined(SHMRT_CHECKED)
void shc_nap(u64 ns); /* the checker: a scheduling point that prefers another thread */
static inline void os_nap_ns(u64 ns) { shc_nap(ns); }
static inline void os_yield(void) { shc_nap(0); }
#else
#include <sched.h>
#include <time.h>
/* Give the CPU to another runnable process (2 cores, spinning pollers). */
static inline void os_yield(void) { sched_yield(); }
/* Sleep briefly (a back-off when a structure is full of stale entries). */
static inline void os_nap_ns(u64 ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
    nanosleep(&ts, NULL);
}
#endif

#endif
