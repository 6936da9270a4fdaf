/*
 * atomics.h -- the one macro layer through which every shared-memory access
 * of the C core goes.
 *
 * Why a macro layer: a checking build (SHMRT_CHECKED=1, see setup.py) can
 * intercept every access, and ASan/UBSan/TSan builds see the same code.  Every
 * call site names its memory order in the macro name (ACQ, REL, ACQREL, RLX,
 * SEQ) and carries a comment saying which access it pairs with.
 *
 * All shared words are naturally aligned 64-bit or 32-bit integers inside the
 * mapped segment; alignment is checked where an offset enters from Python.
 */
#ifndef SHMRT_ATOMICS_H
#define SHMRT_ATOMICS_H

#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;

#define SH_LOAD(p, mo) __atomic_load_n((p), (mo))
#define SH_STORE(p, v, mo) __atomic_store_n((p), (v), (mo))

/* 64-bit */
#define LOAD_RLX(p) SH_LOAD((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) SH_LOAD((p), __ATOMIC_ACQUIRE)
#define LOAD_SEQ(p) SH_LOAD((p), __ATOMIC_SEQ_CST)
#define STORE_RLX(p, v) SH_STORE((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) SH_STORE((p), (v), __ATOMIC_RELEASE)
#define STORE_SEQ(p, v) SH_STORE((p), (v), __ATOMIC_SEQ_CST)

/* Compare-and-swap: *expected is updated with the current value on failure. */
#define CAS_ACQREL(p, expected, desired)                                      \
    __atomic_compare_exchange_n((p), (expected), (desired), 0,               \
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define CAS_SEQ(p, expected, desired)                                         \
    __atomic_compare_exchange_n((p), (expected), (desired), 0,               \
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#define CAS_REL(p, expected, desired)                                         \
    __atomic_compare_exchange_n((p), (expected), (desired), 0,               \
                                __ATOMIC_RELEASE, __ATOMIC_RELAXED)

#define XCHG_ACQREL(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_ADD_ACQREL(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_ADD_SEQ(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define FETCH_ADD_RLX(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define FETCH_SUB_ACQREL(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_SUB_SEQ(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define FETCH_OR_ACQREL(p, v) __atomic_fetch_or((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_AND_ACQREL(p, v) __atomic_fetch_and((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_XOR_ACQREL(p, v) __atomic_fetch_xor((p), (v), __ATOMIC_ACQ_REL)

/* Owner-only counters: one writer, many readers; relaxed is enough because
 * readers (inspector) only want an eventually consistent figure. */
#define COUNTER_BUMP(p, v) STORE_RLX((p), LOAD_RLX(p) + (v))

#define FENCE_SEQ() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
