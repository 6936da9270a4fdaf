/*
 * shadow.hpp -- atomics.h's SHMRT_RELACY build: the protocol headers of
 * shmrt/_core compiled unchanged as C++ against relacy's C++11 memory model.
 *
 * The protocols address shared words as plain u64 / u32 fields of the real
 * layout.h structs.  Relacy needs its own rl::atomic<> objects, so every
 * word the test registers gets a shadow: the address of a field selects its
 * shadow atomic (8-byte and 4-byte words apart), and STORE_PLAIN /
 * LOAD_PLAIN select an rl::var<> (relacy reports a data race when a plain
 * access is not ordered by the protocol's release and acquire).  The block
 * itself only provides the addresses.
 *
 * Mutant: SHMRT_MUTANT_RELAXED_TAIL turns the release store of a local
 * queue's tail (queue.h lq_push, which publishes the buffer entry) into a
 * relaxed one; relacy must find the stale read or the race.
 */
#ifndef CHK_SHADOW_HPP
#define CHK_SHADOW_HPP

#include <relacy/relacy.hpp>
#include <stdint.h>

#define _Alignas(x) alignas(x)

enum { SHRL_XCHG, SHRL_ADD, SHRL_SUB, SHRL_OR, SHRL_AND, SHRL_XOR };

/* Only the words a test registers are shadowed (a relacy atomic is heavy
 * and the test object is built anew for every execution). */
#define SHRL_MAX 24
struct shrl_shadow {
    const void *a64[SHRL_MAX], *a32[SHRL_MAX], *av[SHRL_MAX];
    rl::atomic<uint64_t> w64[SHRL_MAX];
    rl::atomic<uint32_t> w32[SHRL_MAX];
    rl::var<uint64_t> v64[SHRL_MAX];
    int n64, n32, nv;
    const void *relaxed_tail[4]; /* mutant: these release stores become relaxed */
};
extern shrl_shadow *shrl;

static inline int shrl_find(const void *const *tab, int n, const void *p) {
    for (int i = 0; i < n; i++)
        if (tab[i] == p) return i;
    RL_ASSERT(!"an access to a word the test did not register");
    return 0;
}

/* Registration (in before(): relaxed initial stores). */
static inline void shrl_word64(const void *p, uint64_t init) {
    int i = shrl->n64++;
    shrl->a64[i] = p;
    shrl->w64[i].store(init, rl::mo_relaxed, RL_INFO);
}
static inline void shrl_word32(const void *p, uint32_t init) {
    int i = shrl->n32++;
    shrl->a32[i] = p;
    shrl->w32[i].store(init, rl::mo_relaxed, RL_INFO);
}
static inline void shrl_plain(const void *p) { shrl->av[shrl->nv++] = p; }

static inline rl::memory_order shrl_mo(int mo) {
    switch (mo) {
    case __ATOMIC_RELAXED: return rl::mo_relaxed;
    case __ATOMIC_ACQUIRE: return rl::mo_acquire;
    case __ATOMIC_RELEASE: return rl::mo_release;
    case __ATOMIC_ACQ_REL: return rl::mo_acq_rel;
    default: return rl::mo_seq_cst;
    }
}

template <class T> struct shrl_pick;
template <> struct shrl_pick<uint64_t> {
    static rl::atomic<uint64_t> &at(const void *p) { return shrl->w64[shrl_find(shrl->a64, shrl->n64, p)]; }
};
template <> struct shrl_pick<uint32_t> {
    static rl::atomic<uint32_t> &at(const void *p) { return shrl->w32[shrl_find(shrl->a32, shrl->n32, p)]; }
};

template <class T> static inline T shrl_load(T *p, int mo, rl::debug_info_param info) {
    return shrl_pick<T>::at(p).load(shrl_mo(mo), info);
}

template <class T, class V> static inline void shrl_store(T *p, V v, int mo, rl::debug_info_param info) {
#ifdef SHMRT_MUTANT_RELAXED_TAIL
    for (const void *t : shrl->relaxed_tail)
        if (t == (const void *)p && mo == __ATOMIC_RELEASE) mo = __ATOMIC_RELAXED;
#endif
    shrl_pick<T>::at(p).store((T)v, shrl_mo(mo), info);
}

template <class T, class D>
static inline bool shrl_cas(T *p, T *exp, D des, int ms, int mf, rl::debug_info_param info) {
    return shrl_pick<T>::at(p).compare_exchange_strong(*exp, (T)des, shrl_mo(ms), info, shrl_mo(mf), info);
}

template <class T, class V> static inline T shrl_rmw(T *p, V v, int mo, int op, rl::debug_info_param info) {
    rl::atomic<T> &a = shrl_pick<T>::at(p);
    rl::memory_order m = shrl_mo(mo);
    switch (op) {
    case SHRL_XCHG: return a.exchange((T)v, m, info);
    case SHRL_ADD: return a.fetch_add((T)v, m, info);
    case SHRL_SUB: return a.fetch_sub((T)v, m, info);
    case SHRL_OR: return a.fetch_or((T)v, m, info);
    case SHRL_AND: return a.fetch_and((T)v, m, info);
    default: return a.fetch_xor((T)v, m, info);
    }
}

static inline void shrl_fence(int mo, rl::debug_info_param info) { rl::atomic_thread_fence(shrl_mo(mo), info); }

template <class V> static inline void shrl_store_plain(uint64_t *p, V v, rl::debug_info_param info) {
    shrl->v64[shrl_find(shrl->av, shrl->nv, p)](info) = (uint64_t)v;
}
static inline uint64_t shrl_load_plain(uint64_t *p, rl::debug_info_param info) {
    return shrl->v64[shrl_find(shrl->av, shrl->nv, p)](info);
}

#endif
