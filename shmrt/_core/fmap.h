/*
 * fmap.h -- a small open-addressing hash map (a, b) -> v in process memory
 * (linear probing, backward-shift deletion), for the relay's per-flow
 * numbers (udp.c) and reorder buffer (udp_send.c).  Not shared memory.
 */
#ifndef SHMRT_FMAP_H
#define SHMRT_FMAP_H

#include "layout.h"

#include <stdlib.h>

/* ---- a small open-addressing map (a, b) -> v, process memory ------------ */
typedef struct {
    u64 a, b, v, used;
} ment_t;
typedef struct {
    ment_t *e;
    u64 cap, n;
} map_t;

static inline u64 mix64(u64 x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static inline u64 mhash(u64 a, u64 b) { return mix64(a ^ mix64(b)); }

static inline ment_t *map_find(map_t *m, u64 a, u64 b) {
    if (!m->cap) return NULL;
    u64 mask = m->cap - 1;
    for (u64 i = mhash(a, b) & mask;; i = (i + 1) & mask) {
        if (!m->e[i].used) return NULL;
        if (m->e[i].a == a && m->e[i].b == b) return &m->e[i];
    }
}
static inline int map_put(map_t *m, u64 a, u64 b, u64 v);
static inline int map_grow(map_t *m) {
    map_t nm = {calloc(m->cap ? m->cap * 2 : 1024, sizeof(ment_t)), m->cap ? m->cap * 2 : 1024, 0};
    if (!nm.e) return -1;
    for (u64 i = 0; i < m->cap; i++)
        if (m->e[i].used) map_put(&nm, m->e[i].a, m->e[i].b, m->e[i].v);
    free(m->e);
    *m = nm;
    return 0;
}
static inline int map_put(map_t *m, u64 a, u64 b, u64 v) {
    ment_t *e = map_find(m, a, b);
    if (e) {
        e->v = v;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap && map_grow(m)) return -1;
    u64 mask = m->cap - 1, i = mhash(a, b) & mask;
    while (m->e[i].used) i = (i + 1) & mask;
    m->e[i] = (ment_t){a, b, v, 1};
    m->n++;
    return 0;
}
static inline void map_del(map_t *m, ment_t *e) { /* linear probing: backward-shift deletion */
    u64 mask = m->cap - 1, i = (u64)(e - m->e), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->e[j].used) break;
        u64 k = mhash(m->e[j].a, m->e[j].b) & mask;
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->e[i] = m->e[j];
            i = j;
        }
    }
    m->e[i].used = 0;
    m->n--;
}
static inline void map_clear(map_t *m) {
    free(m->e);
    *m = (map_t){NULL, 0, 0};
}

#endif
