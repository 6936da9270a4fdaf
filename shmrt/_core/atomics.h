/*
 * atomics.h -- the one macro layer through which every shared-memory access
 * of the C core goes.
 *
 * Why a macro layer: a checking build can intercept every access, and
 * ASan/UBSan/TSan builds see the same code.  Every call site names its memory
 * order in the macro name (ACQ, REL, ACQREL, RLX, SEQ) and carries a comment
 * saying which access it pairs with.
 *
 * All shared words are naturally aligned 64-bit or 32-bit integers inside the
 * mapped segment; alignment is checked where an offset enters from Python.
 *
 * Three builds of the same macros
 * -------------------------------
 *   | build            | flag            | each access becomes                    |
 *   |------------------|-----------------|----------------------------------------|
 *   | normal           | (none)          | the GCC __atomic builtin, nothing else |
 *   | model checker    | SHMRT_CHECKED   | shc_point() then the builtin: a point  |
 *   |                  |                 | where the checker's scheduler may run  |
 *   |                  |                 | another logical thread or kill this one|
 *   | weak memory      | SHMRT_RELACY    | a call into relacy's C++11 model (C++) |
 *
 * The checking builds live in tools/check (docs/checking.md).  The checker
 * runs its logical threads as coroutines on one OS thread, so the builtins
 * themselves see a sequentially consistent memory; which orders are enough is
 * the relacy build's question.  STORE_PLAIN / LOAD_PLAIN mark the plain
 * (non-atomic) fills of a slot before the release that publishes it: plain
 * accesses in the normal build, scheduling points (checker) and data-race
 * checked variables (relacy) in the others.
 */
#ifndef SHMRT_ATOMICS_H
#define SHMRT_ATOMICS_H

#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;

#if defined(SHMRT_CHECKED)
/* Model checker (tools/check/harness/explore.c defines shc_point): every
 * access is first a scheduling point, then runs as in the normal build. */
enum { SHC_LOAD, SHC_STORE, SHC_RMW, SHC_FENCE, SHC_PLAIN_LOAD, SHC_PLAIN_STORE, SHC_SPIN };
void shc_point(int op, const void *addr, int mo, const char *file, int line);
#define SHC(op, p, mo) shc_point((op), (const void *)(p), (mo), __FILE__, __LINE__)
#define SH_LOAD(p, mo) (SHC(SHC_LOAD, (p), (mo)), __atomic_load_n((p), (mo)))
#define SH_STORE(p, v, mo) (SHC(SHC_STORE, (p), (mo)), __atomic_store_n((p), (v), (mo)))
#define SH_CAS(p, e, d, ms, mf)                                               \
    (SHC(SHC_RMW, (p), (ms)), __atomic_compare_exchange_n((p), (e), (d), 0, (ms), (mf)))
#define SH_XCHG(p, v, mo) (SHC(SHC_RMW, (p), (mo)), __atomic_exchange_n((p), (v), (mo)))
#define SH_FADD(p, v, mo) (SHC(SHC_RMW, (p), (mo)), __atomic_fetch_add((p), (v), (mo)))
#define SH_FSUB(p, v, mo) (SHC(SHC_RMW, (p), (mo)), __atomic_fetch_sub((p), (v), (mo)))
#define SH_FOR(p, v, mo) (SHC(SHC_RMW, (p), (mo)), __atomic_fetch_or((p), (v), (mo)))
#define SH_FAND(p, v, mo) (SHC(SHC_RMW, (p), (mo)), __atomic_fetch_and((p), (v), (mo)))
#define SH_FXOR(p, v, mo) (SHC(SHC_RMW, (p), (mo)), __atomic_fetch_xor((p), (v), (mo)))
#define SH_FENCE(mo) (SHC(SHC_FENCE, (void *)0, (mo)), __atomic_thread_fence(mo))
#define STORE_PLAIN(p, v) (SHC(SHC_PLAIN_STORE, (p), 0), (void)(*(p) = (v)))
#define LOAD_PLAIN(p) (SHC(SHC_PLAIN_LOAD, (p), 0), *(p))
#elif defined(SHMRT_RELACY)
/* Weak-memory build (C++, tools/check/relacy): the harness defines these
 * templates over its shadow of the block before including this file. */
#define SH_LOAD(p, mo) shrl_load((p), (mo), RL_INFO)
#define SH_STORE(p, v, mo) shrl_store((p), (v), (mo), RL_INFO)
#define SH_CAS(p, e, d, ms, mf) shrl_cas((p), (e), (d), (ms), (mf), RL_INFO)
#define SH_XCHG(p, v, mo) shrl_rmw((p), (v), (mo), SHRL_XCHG, RL_INFO)
#define SH_FADD(p, v, mo) shrl_rmw((p), (v), (mo), SHRL_ADD, RL_INFO)
#define SH_FSUB(p, v, mo) shrl_rmw((p), (v), (mo), SHRL_SUB, RL_INFO)
#define SH_FOR(p, v, mo) shrl_rmw((p), (v), (mo), SHRL_OR, RL_INFO)
#define SH_FAND(p, v, mo) shrl_rmw((p), (v), (mo), SHRL_AND, RL_INFO)
#define SH_FXOR(p, v, mo) shrl_rmw((p), (v), (mo), SHRL_XOR, RL_INFO)
#define SH_FENCE(mo) shrl_fence((mo), RL_INFO)
#define STORE_PLAIN(p, v) shrl_store_plain((p), (v), RL_INFO)
#define LOAD_PLAIN(p) shrl_load_plain((p), RL_INFO)
#else
/* Normal build: exactly the builtins. */
#define SH_LOAD(p, mo) __atomic_load_n((p), (mo))
#define SH_STORE(p, v, mo) __atomic_store_n((p), (v), (mo))
#define SH_CAS(p, e, d, ms, mf) __atomic_compare_exchange_n((p), (e), (d), 0, (ms), (mf))
#define SH_XCHG(p, v, mo) __atomic_exchange_n((p), (v), (mo))
#define SH_FADD(p, v, mo) __atomic_fetch_add((p), (v), (mo))
#define SH_FSUB(p, v, mo) __atomic_fetch_sub((p), (v), (mo))
#define SH_FOR(p, v, mo) __atomic_fetch_or((p), (v), (mo))
#define SH_FAND(p, v, mo) __atomic_fetch_and((p), (v), (mo))
#define SH_FXOR(p, v, mo) __atomic_fetch_xor((p), (v), (mo))
#define SH_FENCE(mo) __atomic_thread_fence(mo)
/* A plain fill of a slot before the release store that publishes it. */
#define STORE_PLAIN(p, v) ((void)(*(p) = (v)))
#define LOAD_PLAIN(p) (*(p))
#endif

/* 64-bit */
#define LOAD_RLX(p) SH_LOAD((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) SH_LOAD((p), __ATOMIC_ACQUIRE)
#define LOAD_SEQ(p) SH_LOAD((p), __ATOMIC_SEQ_CST)
#define STORE_RLX(p, v) SH_STORE((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) SH_STORE((p), (v), __ATOMIC_RELEASE)
#define STORE_SEQ(p, v) SH_STORE((p), (v), __ATOMIC_SEQ_CST)

/* Compare-and-swap: *expected is updated with the current value on failure. */
#define CAS_ACQREL(p, expected, desired)                                      \
    SH_CAS((p), (expected), (desired), __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define CAS_SEQ(p, expected, desired)                                         \
    SH_CAS((p), (expected), (desired), __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#define CAS_REL(p, expected, desired)                                         \
    SH_CAS((p), (expected), (desired), __ATOMIC_RELEASE, __ATOMIC_RELAXED)

#define XCHG_ACQREL(p, v) SH_XCHG((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_ADD_ACQREL(p, v) SH_FADD((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_ADD_SEQ(p, v) SH_FADD((p), (v), __ATOMIC_SEQ_CST)
#define FETCH_ADD_RLX(p, v) SH_FADD((p), (v), __ATOMIC_RELAXED)
#define FETCH_SUB_ACQREL(p, v) SH_FSUB((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_SUB_SEQ(p, v) SH_FSUB((p), (v), __ATOMIC_SEQ_CST)
#define FETCH_SUB_RLX(p, v) SH_FSUB((p), (v), __ATOMIC_RELAXED)
#define FETCH_OR_ACQREL(p, v) SH_FOR((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_AND_ACQREL(p, v) SH_FAND((p), (v), __ATOMIC_ACQ_REL)
#define FETCH_XOR_ACQREL(p, v) SH_FXOR((p), (v), __ATOMIC_ACQ_REL)

/* Owner-only counters: one writer, many readers; relaxed is enough because
 * readers (inspector) only want an eventually consistent figure. */
#define COUNTER_BUMP(p, v) STORE_RLX((p), LOAD_RLX(p) + (v))

#define FENCE_SEQ() SH_FENCE(__ATOMIC_SEQ_CST)

static inline void cpu_relax(void) {
#if defined(SHMRT_CHECKED)
    SHC(SHC_SPIN, (void *)0, 0); /* a spin: the checker prefers another thread */
#elif defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
