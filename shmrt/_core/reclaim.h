/*
 * reclaim.h -- crash reclaim: what the coordinator does when processes die,
 * on a layout_t.  reclaim.c wraps it for Python; the model checker
 * (tools/check) runs it as it is after a logical thread died.
 *
 * Why stop the world: a SIGKILL can land between any two instructions of a
 * protocol step, so a dead process can leave a task popped but not begun, a
 * steal claimed but not published, a completion marked but not delivered, a
 * reference counted but not dropped, a slot taken off the free stack but not
 * filled.  Instead of one write-ahead record per window, the reclaim waits
 * until no live process is inside a step (section.h), and then the segment
 * is quiescent: every structure is consistent except for what the dead left
 * half done, and the slots' state words say what each task *should* be:
 *
 *   where a slot must be                      from its state word
 *   ---------------------------------------   ------------------------------
 *   a run queue, or a live worker's `taking`  NOTIFIED (not RUNNING/COMPLETE)
 *   owned by a live worker                    RUNNING (owner field)
 *   its client's completion ring              COMPLETE, JOIN_INTEREST, client
 *   a send ring / waitlist / live sender      COMPLETE, JOIN_INTEREST, relay
 *   the free stack                            refs == 0
 *
 *   references it must hold = (NOTIFIED or RUNNING: the scheduler's one)
 *                           + (JOIN_INTEREST: the handle's one)
 *
 * (so a handle is dropped with its JOIN_INTEREST: state.h drop_handle,
 * docs/checking.md bug 5)
 *
 * The reclaim walks every queue and ring (marking where each slot is), then
 * every slot, and puts each one where its state says, with the count its
 * state says: orphaned queued tasks go back to the inject queue (a task that
 * was popped but never begun runs once, not zero times), undelivered
 * completions are delivered, dead clients' and dead workers' handles are
 * dropped (their queued tasks cancelled), the free stack and the idle word
 * are rebuilt from scratch.  Tasks RUNNING on a dead worker are returned to
 * the caller (pool.py), which re-queues them (retries left) or completes
 * them with WorkerCrashed.  Recomputing instead of replaying makes the
 * reclaim idempotent: running it twice changes nothing the second time.
 *
 *   reclaim_stop_world   reclaim word set, wait until no live process is
 *                        inside a step (section.h's other half)
 *   reclaim_stopped      the world is stopped: already broken -> nothing;
 *                        reclaim_validate fails -> mark broken (broken.h),
 *                        nothing repaired; else reclaim_repair
 *   reclaim_start_world  the reclaim word cleared, its waiters woken
 *   reclaim_wake_all     every worker, client and send worker looks again
 *
 * The caller owns all memory: the dead sets, a zeroed mark byte per slot,
 * and the array the dead workers' RUNNING tasks are written to.  Arena
 * blocks of a slot put back on the free stack are released through a hook
 * (arena.c is not a pure header; the checker's blocks have no arena).
 *
 * Last, the arena: every block's reference count is recomputed from its
 * visible holders (slots, function entries, live processes' hold tables)
 * and the free stacks rebuilt (holds.h), so blocks whose only holder died
 * (a view, a payload encoded and not yet in a slot) are freed.  (A relay
 * budget unit taken in acquire's slow path is counted in client.units in
 * the step that takes it: budget.h's step hooks, relay.c.)
 *
 * Mutants for the checker (first drafts it catches, docs/checking.md):
 * SHMRT_MUTANT_RECLAIM_UNCLAIM un-claims a dead thief's batch;
 * SHMRT_MUTANT_RECLAIM_WORKER_DEAD fixes the idle word from the state a dead
 * worker died in (admin.c's worker_dead) instead of rebuilding it;
 * SHMRT_MUTANT_RECLAIM_LOST_TOKEN hands the free budget out through the
 * waiter FIFO without putting back a token a dead releaser took (bug 6);
 * SHMRT_MUTANT_RECLAIM_ONE_LAP walks a ring one lap from a lagging deq
 * (bug 7).
 */
#ifndef SHMRT_RECLAIM_H
#define SHMRT_RECLAIM_H

#include "access.h"
#include "broken.h"
#include "budget.h"
#include "futex.h"
#include "holds.h"
#include "park.h"
#include "queue.h"
#include "sendq.h"
#include "state.h"

#include <stdio.h>

/* A task a dead worker was running: the caller re-queues or fails it. */
typedef struct {
    u64 key;         /* (gen << 32) | slot index */
    u64 max_retries;
    u64 attempts;
    u64 holder;
} reclaim_task_t;

/* What one reclaim did (counts). */
typedef struct {
    u64 running;    /* dead workers' RUNNING tasks (written up to running_cap) */
    u64 requeued;   /* orphaned queued tasks pushed on inject */
    u64 delivered;  /* completions delivered (client rings, send rings) */
    u64 refs_fixed; /* reference counts set to what the state says */
    u64 freed;      /* slots the free stack gained */
    u64 cancelled;  /* queued tasks whose dead holder's handle was dropped */
    u64 in_doubt;   /* packets a dead send worker was handing to its sink */
    u64 duplicates; /* slots found in two queues or rings (left for the inspector) */
    recount_t arena;  /* the arena recount (holds.h), when asked for */
} reclaim_counts_t;

typedef struct {
    const unsigned char *dead_w; /* one byte per worker: 1 dead */
    const unsigned char *dead_c; /* per client */
    const unsigned char *dead_s; /* per send worker */
    unsigned char *mark;         /* scratch, one zeroed byte per slot (RC_M_*) */
    reclaim_task_t *running;     /* out: the dead workers' RUNNING tasks */
    u64 running_cap;
    /* release the arena blocks of slot idx before it goes on the free stack
     * (task.c slot_release_blobs); NULL: the segment has no arena */
    void (*release_blobs)(void *ctx, slot_t *sl);
    void *ctx;
    /* recount the arena's blocks (holds.h): one scratch byte per process
     * record; NULL: not asked for (the checker's scenarios have no arena) */
    unsigned char *dead_rec;
} reclaim_t;

enum { RECLAIM_REPAIRED = 0, RECLAIM_REFUSED = 1, RECLAIM_WAS_BROKEN = 2 };

/* per-slot marks: where the walk found it, and what the slot pass decided */
enum {
    RC_M_QUEUED = 1,    /* a run queue, inject, a LIFO slot */
    RC_M_TAKEN = 2,     /* a live worker's `taking` */
    RC_M_CRING = 4,     /* its client's completion ring */
    RC_M_SRING = 8,     /* a send ring or waitlist */
    RC_M_DUP = 16,      /* in two of the above */
    RC_M_ORPHAN = 32,   /* to push on inject */
    RC_M_REDELIVER = 64 /* to deliver to its send ring again */
};

/* ---- stopping the world (section.h's other half) ------------------------ */
/* Wait until no live process is inside a section.  0, or -1 after timeout_s
 * (then *who names one that stayed busy: kind << 32 | index, kind 0 worker,
 * 1 client, 2 send worker).  pid: the reclaimer's, for the tagged word. */
static inline int reclaim_stop_world(const layout_t *L, const reclaim_t *rc, u32 pid,
                                     double timeout_s, u64 *who) {
    header_t *h = lay_hdr(L);
    STORE_SEQ(&h->reclaim, RECLAIM_TAG | pid); /* pairs with section_enter's SeqCst load */
    u64 end = now_ns() + (u64)(timeout_s * 1e9);
    for (;;) {
        int busy = 0;
        for (u64 i = 0; i < L->n_workers && !busy; i++)
            if (!rc->dead_w[i] && LOAD_SEQ(&lay_worker(L, i)->busy)) { /* pairs with section_enter */
                busy = 1;
                *who = i;
            }
        for (u64 i = 0; i < L->n_clients && !busy; i++) {
            /* our own threads are in sections too; they back off like the rest */
            if (!rc->dead_c[i] && LOAD_SEQ(&lay_client(L, i)->busy)) {
                busy = 1;
                *who = (1ULL << 32) | i;
            }
        }
        for (u64 i = 0; i < L->n_send && !busy; i++)
            if (!rc->dead_s[i] && LOAD_SEQ(&lay_send(L, i)->busy)) {
                busy = 1;
                *who = (2ULL << 32) | i;
            }
        if (!busy) return 0;
        if (now_ns() >= end) return -1;
        os_yield();
    }
}

static inline void reclaim_start_world(const layout_t *L) {
    header_t *h = lay_hdr(L);
    FETCH_ADD_RLX(&h->reclaims, 1); /* a counter (inspector) */
    STORE_SEQ(&h->reclaim, 0);      /* pairs with section_enter's SeqCst load */
    futex_wake_u32(&h->reclaim, 1 << 30);
}

/* After start_world: everyone looks again (a re-queued task, a delivered
 * completion, a budget handed out, a send ring refilled). */
static inline void reclaim_wake_all(const layout_t *L) {
    for (u64 i = 0; i < L->n_workers; i++) {
        worker_t *w = lay_worker(L, i);
        FETCH_ADD_SEQ(&w->park_seq, 1); /* pairs with park_announce's read of park_seq */
        futex_wake_u32(&w->park_seq, 1);
    }
    for (u64 i = 0; i < L->n_clients; i++) {
        client_t *c = lay_client(L, i);
        if (!LOAD_ACQ(&c->pid)) continue; /* pairs with the claim's CAS */
        FETCH_ADD_SEQ(&c->seq, 1);        /* pairs with client_wait_core's read of seq */
        futex_wake_u32(&c->seq, 64);
    }
    sendq_wake_all(L);
}

/* ---- validation --------------------------------------------------------- */
/* Before anything is repaired: is the structure sound?  The repair writes
 * through the indices it reads (ring cells, queue entries, holders), so a
 * segment that fails a check is not repaired but marked broken.  The world
 * is stopped: every ring and queue is quiescent, so the checks are exact
 * (ring_validate).  0, or -1 with `why`. */
#define RC_WHY(...) (snprintf(why, n, __VA_ARGS__), -1)
static inline int reclaim_validate(const layout_t *L, const reclaim_t *rc, char *why, size_t n) {
    header_t *h = lay_hdr(L);
    u64 ns = L->n_slots, cap = L->inject_cap, lc = L->local_cap;
    u64 carved = LOAD_ACQ(&h->slots_carved), top = LOAD_ACQ(&h->free_head) & 0xffffffffULL;
    if (carved > ns)
        return RC_WHY("header: slots_carved %llu exceeds %llu slots", (unsigned long long)carved,
                      (unsigned long long)ns);
    if (top > carved)
        return RC_WHY("free-slot stack: head names slot %llu, beyond the %llu carved",
                      (unsigned long long)top - 1, (unsigned long long)carved);
    if (ring_validate(lay_inject(L), cap, ns, "inject ring", why, n)) return -1;
    for (u64 i = 0; i < L->n_workers; i++) {
        local_queue_t *q = lay_queue(L, i);
        worker_t *w = lay_worker(L, i);
        u64 hd = LOAD_ACQ(&q->head); /* pairs with the last CAS of head */
        u32 steal = head_steal(hd), real = head_real(hd), tail = (u32)LOAD_ACQ(&q->tail);
        if (tail - steal > (u32)lc || real - steal > tail - steal)
            return RC_WHY("local queue of worker %llu: head %u/%u and tail %u do not fit its "
                          "capacity %llu", (unsigned long long)i, steal, real, tail,
                          (unsigned long long)lc);
        for (u32 p = steal; p != tail; p++) {
            u32 v = LOAD_RLX(&q->buf[p & (lc - 1)]); /* published by the tail's release */
            if (v >= ns)
                return RC_WHY("local queue of worker %llu: entry %u holds slot index %u "
                              "(n_slots %llu)", (unsigned long long)i,
                              (unsigned)(p & (lc - 1)), v, (unsigned long long)ns);
        }
        u64 l = LOAD_ACQ(&w->lifo), t = LOAD_ACQ(&w->taking); /* pair with their writers */
        if (l > ns)
            return RC_WHY("LIFO slot of worker %llu: holds slot index %llu (n_slots %llu)",
                          (unsigned long long)i, (unsigned long long)l - 1,
                          (unsigned long long)ns);
        if (t > ns)
            return RC_WHY("worker %llu: taking names slot index %llu (n_slots %llu)",
                          (unsigned long long)i, (unsigned long long)t - 1,
                          (unsigned long long)ns);
    }
    for (u64 i = 0; i < L->n_clients; i++) {
        client_t *c = lay_client(L, i);
        char what[48];
        snprintf(what, sizeof what, "client %llu completion ring", (unsigned long long)i);
        if (LOAD_ACQ(&c->ring_ready) && LOAD_ACQ(&c->pid) && !rc->dead_c[i] && /* pair with the claim */
            ring_validate(client_ring(c), cap, ns, what, why, n))
            return -1;
    }
    for (u64 i = 0; i < L->n_send; i++) {
        send_t *t = lay_send(L, i);
        char what[48];
        snprintf(what, sizeof what, "send ring %llu", (unsigned long long)i);
        if (ring_validate(lay_send_ring(t), L->send_cap, ns, what, why, n)) return -1;
        snprintf(what, sizeof what, "waitlist of send ring %llu", (unsigned long long)i);
        if (ring_validate(lay_waitlist(L, t), cap, ns, what, why, n)) return -1;
    }
    relay_t *relay = lay_relay(L);
    if (relay) {
        /* pair with the budget's SeqCst RMWs, quiescent now */
        u64 avail = LOAD_ACQ(&relay->avail), rcap = LOAD_ACQ(&relay->capacity);
        if (rcap != L->inflight || avail > rcap)
            return RC_WHY("relay: budget holds %llu free units of %llu (configured %llu)",
                          (unsigned long long)avail, (unsigned long long)rcap,
                          (unsigned long long)L->inflight);
        if (ring_validate(lay_fifo(relay), fifo_cap(L->n_waiters),
                          L->n_waiters << TOKEN_GEN_BITS, "relay waiter FIFO", why, n))
            return -1;
    }
    for (u64 i = 0; i < carved; i++) {
        slot_t *sl = lay_slot(L, i);
        /* pairs with the release that published the slot (fill, transitions) */
        u64 st = LOAD_ACQ(&sl->state), holder = LOAD_RLX(&sl->holder);
        if (st_refs(st) == 0) continue;
        u64 where = st & (S_NOTIFIED | S_RUNNING | S_COMPLETE);
        if (st_refs(st) > 2 || (where & (where - 1)))
            return RC_WHY("slot %llu: state %#llx is no task state", (unsigned long long)i,
                          (unsigned long long)st);
        int ok = holder < L->n_clients || holder == HOLDER_RELAY ||
                 ((holder & ~0xffffULL) == HOLDER_WORKER && (holder & 0xffff) < L->n_workers);
        if (!ok)
            return RC_WHY("slot %llu: holder %#llx names no client, worker or relay",
                          (unsigned long long)i, (unsigned long long)holder);
        if (LOAD_RLX(&sl->kind) > 1 || (LOAD_RLX(&sl->kind) == 1 && !relay))
            return RC_WHY("slot %llu: kind %llu", (unsigned long long)i,
                          (unsigned long long)LOAD_RLX(&sl->kind));
    }
    return 0;
}
#undef RC_WHY

/* ---- the repair ----------------------------------------------------------- */
static inline void reclaim_mark_slot(const layout_t *L, reclaim_t *rc, reclaim_counts_t *out,
                                     u64 v, unsigned char m) {
    const unsigned char where = RC_M_QUEUED | RC_M_CRING | RC_M_SRING;
    if (v >= L->n_slots) return; /* bad entry: left for the inspector */
    if ((rc->mark[v] & where) && (m & where)) {
        rc->mark[v] |= RC_M_DUP;
        out->duplicates++;
    }
    rc->mark[v] |= m;
}

/* The values published in a quiescent ring, from deq on to the first free
 * cell (queue.h layout).  deq lags behind a consumer that died between its
 * cell CAS and the hint: the published cells then reach past deq + cap, so
 * the walk goes on for up to two laps, as ring_nonempty does (one lap missed
 * the newest value of a full ring, which was then delivered or re-queued a
 * second time: tools/check, docs/checking.md bug 7). */
static inline void reclaim_mark_ring(const layout_t *L, reclaim_t *rc, reclaim_counts_t *out,
                                     ring_t *r, u64 cap, unsigned char m) {
    u64 pos = LOAD_ACQ(&r->deq); /* pairs with ring_hint_advance */
#ifndef SHMRT_MUTANT_RECLAIM_ONE_LAP
    u64 laps = 2;
#else
    u64 laps = 1; /* the first draft: cap positions from deq */
#endif
    for (u64 i = 0; i < laps * cap; i++, pos++) {
        u64 w = LOAD_ACQ(&r->cells[pos & (cap - 1)]); /* pairs with the CAS that wrote it */
        int32_t d = seq_diff(cell_seq(w), pos + 1);
        if (d == 0)
            reclaim_mark_slot(L, rc, out, w & RING_VAL_MASK, m);
        else if (d < 0)
            break; /* free: the end; d > 0: consumed, deq lags */
    }
}

/* A local queue left mid-steal by a dead thief (steal != real): release the
 * steal lock, and leave the claimed batch to the orphan scan.  Un-claiming
 * it instead would be wrong: the owner may have popped past the batch since
 * (real moved on), and the claimed length is nowhere.  A dead owner's queue
 * is emptied: its tasks are found as orphans too. */
static inline void reclaim_fix_local(const layout_t *L, reclaim_t *rc, reclaim_counts_t *out,
                                     u64 wid) {
    local_queue_t *q = lay_queue(L, wid);
    worker_t *w = lay_worker(L, wid);
    u64 cap = L->local_cap;
    u64 h = LOAD_ACQ(&q->head); /* pairs with the last CAS of head */
    u32 steal = head_steal(h), tail = (u32)LOAD_ACQ(&q->tail); /* pairs with lq_push's release */
    if (rc->dead_w[wid] || tail - steal > (u32)cap) { /* dead owner, or corrupt */
        STORE_REL(&q->head, head_pack(tail, tail)); /* pairs with the next acquire of head */
        STORE_REL(&w->lifo, 0);                     /* pairs with the next acquire of lifo */
        return;
    }
    u32 real = head_real(h);
#ifdef SHMRT_MUTANT_RECLAIM_UNCLAIM
    /* The first draft: give the dead thief's claimed batch back to the
     * queue.  The owner kept popping from real after the claim, so what it
     * popped since comes back too and runs twice (tools/check). */
    if (steal != real) {
        STORE_REL(&q->head, head_pack(steal, steal));
        real = steal;
    }
#else
    if (steal != real) STORE_REL(&q->head, head_pack(real, real)); /* the steal's last step */
#endif
    for (u32 p = real; p != tail; p++)
        reclaim_mark_slot(L, rc, out, LOAD_RLX(&q->buf[p & (cap - 1)]), RC_M_QUEUED);
    u64 l = LOAD_ACQ(&w->lifo); /* pairs with the owner's XCHG */
    if (l) reclaim_mark_slot(L, rc, out, l - 1, RC_M_QUEUED);
    u64 t = LOAD_ACQ(&w->taking); /* published by the worker's section_leave */
    if (t) reclaim_mark_slot(L, rc, out, t - 1, RC_M_TAKEN);
}

/* Is `val` published in ring r (from deq on)?  Its waiters sleep outside
 * sections, but every FIFO push and pop is inside one, so the FIFO is
 * quiescent here; a value missed anyway would only make a token pushed
 * twice, which releasers skip as stale. */
static inline int reclaim_ring_holds(ring_t *r, u64 cap, u64 val) {
    u64 pos = LOAD_ACQ(&r->deq); /* pairs with ring_hint_advance */
    for (u64 i = 0; i < 2 * cap; i++, pos++) { /* two laps: reclaim_mark_ring */
        u64 w = LOAD_ACQ(&r->cells[pos & (cap - 1)]); /* pairs with the CAS that wrote it */
        int32_t d = seq_diff(cell_seq(w), pos + 1);
        if (d == 0 && (w & RING_VAL_MASK) == val) return 1;
        if (d < 0) break;
    }
    return 0;
}

/* Deliver a completed packet to its send ring (the CPU worker that should
 * have died before it did).  0, or -1 with the runtime broken. */
static inline int reclaim_deliver_packet(const layout_t *L, u64 idx, slot_t *sl) {
    char why[BROKEN_REASON_MAX];
    u64 flow = LOAD_RLX(&sl->flow);
    send_t *t = sendq_of_flow(L, flow);
    if (!t) {
        snprintf(why, sizeof why, "slot %llu: a relay packet, but the runtime has no relay",
                 (unsigned long long)idx);
        broken_mark(L, why);
        return -1;
    }
    if (sendq_deliver(L, t, idx)) { /* sendq.h: ring, else waitlist + re-check; wake */
        snprintf(why, sizeof why, "waitlist of send ring %llu: no room for slot %llu",
                 (unsigned long long)(flow % L->n_send), (unsigned long long)idx);
        broken_mark(L, why);
        return -1;
    }
    return 0;
}

/* Everything after the world is stopped and the segment validated.  Writes
 * the dead workers' RUNNING tasks to rc->running (the first running_cap of
 * them; out->running counts all) and the counts to *out. */
static inline void reclaim_repair(const layout_t *L, reclaim_t *rc, reclaim_counts_t *out) {
    header_t *h = lay_hdr(L);
    u64 n = L->n_slots, cap = L->inject_cap;

    /* 1. where every slot is */
    reclaim_mark_ring(L, rc, out, lay_inject(L), cap, RC_M_QUEUED);
    for (u64 i = 0; i < L->n_workers; i++) reclaim_fix_local(L, rc, out, i);
    for (u64 i = 0; i < L->n_clients; i++) {
        client_t *c = lay_client(L, i);
        if (!LOAD_ACQ(&c->ring_ready)) continue; /* pairs with the claim's store */
        if (rc->dead_c[i]) { /* its completions are nobody's now */
            ring_init(client_ring(c), cap);
            continue;
        }
        if (LOAD_ACQ(&c->pid)) reclaim_mark_ring(L, rc, out, client_ring(c), cap, RC_M_CRING);
    }
    for (u64 i = 0; i < L->n_send; i++) {
        send_t *t = lay_send(L, i);
        reclaim_mark_ring(L, rc, out, lay_send_ring(t), L->send_cap, RC_M_SRING);
        reclaim_mark_ring(L, rc, out, lay_waitlist(L, t), cap, RC_M_SRING);
    }

    /* 2. every slot where its state says, with the references it says */
    u64 carved = LOAD_ACQ(&h->slots_carved); /* pairs with slots_alloc's CAS */
    if (carved > n) carved = n;
    u64 packets = 0;
    for (u64 i = 0; i < carved; i++) {
        slot_t *sl = lay_slot(L, i);
        u64 st = LOAD_ACQ(&sl->state); /* pairs with the transitions' release */
        if (st_refs(st) == 0) continue;
        u64 holder = LOAD_RLX(&sl->holder), owner = LOAD_RLX(&sl->owner);
        /* a handle whose holder died is dropped; its task, if not started, is cancelled */
        int dead_holder =
            (holder < HOLDER_WORKER && holder < L->n_clients && rc->dead_c[holder]) ||
            ((holder & HOLDER_WORKER) && holder != HOLDER_RELAY &&
             (holder & 0xffff) < L->n_workers && rc->dead_w[holder & 0xffff]);
        if (dead_holder && (st & S_JOIN_INTEREST)) {
            st &= ~S_JOIN_INTEREST;
            if ((st & S_NOTIFIED) && !(st & (S_RUNNING | S_COMPLETE))) {
                st |= S_CANCELLED;
                out->cancelled++;
            }
        }
        if ((st & S_NOTIFIED) && !(st & (S_RUNNING | S_COMPLETE))) {
            if (!(rc->mark[i] & (RC_M_QUEUED | RC_M_TAKEN))) rc->mark[i] |= RC_M_ORPHAN;
        } else if (st & S_RUNNING) {
            /* owned by a dead worker: the one named, or none (a begin that
             * died before its owner store), or a worker since replaced */
            u64 wid = (owner & 0xffff) - 1;
            int dead = wid >= L->n_workers || rc->dead_w[wid] ||
                       (owner >> 32) != LOAD_RLX(&lay_worker(L, wid)->pid);
            if (dead) {
                if (out->running < rc->running_cap) {
                    u64 att = LOAD_RLX(&sl->attempts);
                    rc->running[out->running] = (reclaim_task_t){
                        (LOAD_RLX(&sl->gen) << 32) | i, att >> 32, att & 0xffffffffULL, holder};
                }
                out->running++; /* past the cap: stays RUNNING (inspector) */
            }
        } else if ((st & S_COMPLETE) && (st & S_JOIN_INTEREST)) {
            if (holder == HOLDER_RELAY) {
                u64 sw = owner & 0xffff;
                int held = (owner & OWNER_SENDER) && sw < L->n_send && !rc->dead_s[sw];
                if (!(rc->mark[i] & RC_M_SRING) && !held) {
                    if (LOAD_RLX(&sl->flags) & SLOT_F_SENDING) {
                        /* its send worker died handing it to the sink: it may
                         * or may not have been sent.  Counted, not re-sent. */
                        send_t *t = sendq_of_flow(L, LOAD_RLX(&sl->flow));
                        if (t) sendq_count_in_doubt(t);
                        st &= ~S_JOIN_INTEREST; /* the pipeline's handle: dropped */
                        out->in_doubt++;
                    } else {
                        rc->mark[i] |= RC_M_REDELIVER;
                    }
                }
            } else if (holder < L->n_clients && !(rc->mark[i] & RC_M_CRING)) {
                client_t *c = lay_client(L, holder);
                ring_push_inl(client_ring(c), cap, i);
                FETCH_ADD_SEQ(&c->seq, 1); /* pairs with client_wait_core's read of seq */
                out->delivered++;
            }
        }
        u64 want = ((st & (S_NOTIFIED | S_RUNNING)) ? 1 : 0) + ((st & S_JOIN_INTEREST) ? 1 : 0);
        if (want && LOAD_RLX(&sl->kind) == 1) packets++; /* each holds a budget unit */
        u64 fixed = (st & S_FLAGS_MASK) | want * REF_ONE;
        if (fixed != LOAD_RLX(&sl->state)) {
            if (st_refs(LOAD_RLX(&sl->state)) != want) out->refs_fixed++;
            STORE_REL(&sl->state, fixed); /* pairs with the next transition's acquire */
        }
    }
    for (u64 i = 0; i < carved; i++) {
        if (!(rc->mark[i] & RC_M_ORPHAN)) continue;
        ring_push_inl(lay_inject(L), cap, i);
        out->requeued++;
    }
    for (u64 i = 0; i < carved; i++) {
        if (!(rc->mark[i] & RC_M_REDELIVER)) continue;
        slot_t *sl = lay_slot(L, i);
        STORE_RLX(&sl->owner, 0); /* nobody holds it: the ring does */
        reclaim_deliver_packet(L, i, sl);
        out->delivered++;
    }

    /* 3. the free stack, from the reference counts */
    u64 top = 0, nfree = 0;
    for (u64 i = carved; i-- > 0;) {
        slot_t *sl = lay_slot(L, i);
        if (st_refs(LOAD_ACQ(&sl->state)) != 0) continue; /* pairs with the last drop */
        if (rc->release_blobs) rc->release_blobs(rc->ctx, sl);
        STORE_RLX(&sl->owner, 0);
        STORE_RLX(&sl->next, top); /* published by the free_head release below */
        top = i + 1;
        nfree++;
    }
    u64 old = LOAD_ACQ(&h->free_head);
    u64 before = LOAD_ACQ(&h->free_count);
    STORE_REL(&h->free_head, ((((old >> 32) + 1) & 0xffffffffULL) << 32) | top); /* pairs with fs_pop */
    STORE_SEQ(&h->free_count, nfree + (n - carved));
    if (nfree + (n - carved) > before) out->freed = nfree + (n - carved) - before;

    /* 4. the relay budget: every unit is free, or in a packet's slot, or in a
     * live client's hands (client.units), or handed to a live waiter (WOKEN);
     * a dead client's waiter entries are freed, and a live waiter still
     * WAITING has its token in the FIFO: a releaser that died between
     * popping it and waking the waiter took it with it (tools/check), and
     * the free units are handed out through the FIFO.  Acquirers sleep
     * outside sections, so the FIFO is not rebuilt: a missing token is
     * pushed again (a duplicate is stale once the first woke its waiter). */
    relay_t *relay = lay_relay(L);
    if (relay) {
        u64 held = packets;
        for (u64 i = 0; i < L->n_clients; i++) {
            client_t *c = lay_client(L, i);
            /* units: published by the client's section_leave */
            if (!rc->dead_c[i] && LOAD_ACQ(&c->pid)) held += LOAD_RLX(&c->units);
        }
        for (u64 i = 0; i < L->n_waiters; i++) {
            waiter_t *w = lay_waiter(L, i);
            u64 pid = LOAD_ACQ(&w->pid), wst = LOAD_ACQ(&w->state); /* pair with budget.h */
            if (!pid) continue;
            int dead = 0;
            for (u64 k = 0; k < L->n_clients && !dead; k++)
                dead = rc->dead_c[k] && LOAD_ACQ(&lay_client(L, k)->pid) == pid;
            if (dead) {
                STORE_SEQ(&w->state, (wst & ~WT_MASK) | WT_CANCELLED); /* its tokens are stale */
                STORE_REL(&w->pid, 0); /* pairs with budget_claim_waiter's CAS */
            } else if ((wst & WT_MASK) == WT_WOKEN) {
                held++;
            } else if ((wst & WT_MASK) == WT_WAITING) {
#ifndef SHMRT_MUTANT_RECLAIM_LOST_TOKEN
                ring_t *f = lay_fifo(relay);
                u64 fc = fifo_cap(L->n_waiters);
                u64 tok = (i << TOKEN_GEN_BITS) | ((wst >> 8) & TOKEN_GEN_MASK);
                /* SeqCst CAS: pairs with a releaser's ring_nonempty, as a registration's push */
                if (!reclaim_ring_holds(f, fc, tok)) ring_push_inl(f, fc, tok);
#endif
            }
        }
        u64 rcap = LOAD_RLX(&relay->capacity);
        budget_reset(L, relay, held < rcap ? rcap - held : 0);
    }

    /* 5. dead clients' entries, and the idle word from the workers' states */
    for (u64 i = 0; i < L->n_clients; i++) {
        if (!rc->dead_c[i]) continue;
        client_t *c = lay_client(L, i);
        STORE_RLX(&c->busy, 0);
        STORE_RLX(&c->units, 0);
        STORE_RLX(&c->sleeping, 0);
        STORE_RLX(&c->spinning, 0);
        STORE_REL(&c->pid, 0); /* last: the entry can be claimed again (pairs with the claim) */
    }
#ifdef SHMRT_MUTANT_RECLAIM_WORKER_DEAD
    /* The first draft (admin.c's worker_dead): fix the idle word up from
     * the state each dead worker died in.  One killed between PARKED and
     * its idle decrement is counted unparked twice (tools/check). */
    for (u64 i = 0; i < L->n_workers; i++) {
        if (!rc->dead_w[i]) continue;
        worker_t *w = lay_worker(L, i);
        STORE_RLX(&w->busy, 0);
        STORE_RLX(&w->taking, 0);
        park_worker_dead(L, i, 0);
    }
#else
    u64 parked = 0, searching = 0;
    for (u64 i = 0; i < L->n_workers; i++) {
        worker_t *w = lay_worker(L, i);
        if (rc->dead_w[i]) {
            STORE_RLX(&w->busy, 0);
            STORE_RLX(&w->taking, 0);
            STORE_SEQ(&w->state, (u64)W_DEAD); /* pairs with park_notify's SeqCst load */
            continue;
        }
        u64 ws = LOAD_SEQ(&w->state); /* pairs with the worker's SeqCst stores */
        if (ws == W_PARKED) parked++;
        if (ws == W_SEARCHING || ws == W_NOTIFIED) searching++;
    }
    /* pairs with park_notify / search_try's SeqCst loads */
    STORE_SEQ(&h->idle, (L->n_workers - parked) * IDLE_UNPARK_ONE + searching);
#endif
    for (u64 i = 0; i < L->n_send; i++)
        if (rc->dead_s[i]) STORE_RLX(&lay_send(L, i)->busy, 0);

    /* 6. the arena, after the slots (step 3 released the freed ones' blocks) */
    if (rc->dead_rec) {
        for (u64 i = 0; i < L->n_workers; i++) rc->dead_rec[hold_rec_worker(L, i)] = rc->dead_w[i];
        for (u64 i = 0; i < L->n_clients; i++) rc->dead_rec[hold_rec_client(L, i)] = rc->dead_c[i];
        for (u64 i = 0; i < L->n_send; i++) rc->dead_rec[hold_rec_send(L, i)] = rc->dead_s[i];
        char why[BROKEN_REASON_MAX];
        if (arena_recount(L, rc->dead_rec, &out->arena, why, sizeof why)) broken_mark(L, why);
    }
}

/* The world is stopped: repair, unless the runtime is broken already or the
 * segment fails validation (then it is marked broken and nothing is
 * repaired).  RECLAIM_REPAIRED (why = ""), RECLAIM_WAS_BROKEN or
 * RECLAIM_REFUSED (why says what failed). */
static inline int reclaim_stopped(const layout_t *L, reclaim_t *rc, reclaim_counts_t *out,
                                  char *why, size_t n) {
    *out = (reclaim_counts_t){0};
    if (broken_is(L)) {
        snprintf(why, n, "already broken");
        return RECLAIM_WAS_BROKEN;
    }
    if (reclaim_validate(L, rc, why, n)) {
        broken_mark(L, why);
        return RECLAIM_REFUSED;
    }
    why[0] = 0;
    reclaim_repair(L, rc, out);
    return RECLAIM_REPAIRED;
}

#endif
