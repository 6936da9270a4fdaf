/*
 * reclaim.c -- crash reclaim: what the coordinator does when processes die.
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
 * Not covered here (yet): arena blocks whose only holder died (a BlobView or
 * an encoded payload not yet in a slot), and the relay budget held by a dead
 * client between acquire and submit.  The inspector shows both.
 */
#include "core.h"
#include "access.h"
#include "budget.h"
#include "queue.h"
#include "section.h"
#include "state.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define IDLE_UNPARK_ONE (1ULL << 16)

enum { M_QUEUED = 1, M_TAKEN = 2, M_CRING = 4, M_SRING = 8, M_DUP = 16 };

typedef struct {
    SegmentObject *s;
    unsigned char *mark; /* per slot: M_* */
    unsigned char *dead_w, *dead_c, *dead_s;
    u64 dups, requeued, delivered, refs_fixed, freed, cancelled, in_doubt;
} rc_t;

static void mark_slot(rc_t *rc, u64 v, unsigned char m) {
    if (v >= rc->s->L.n_slots) return; /* bad entry: left for the inspector */
    if ((rc->mark[v] & (M_QUEUED | M_CRING | M_SRING)) && (m & (M_QUEUED | M_CRING | M_SRING))) {
        rc->mark[v] |= M_DUP;
        rc->dups++;
    }
    rc->mark[v] |= m;
}

/* The values published in a quiescent ring, from deq on (queue.h layout). */
static void mark_ring(rc_t *rc, ring_t *r, u64 cap, unsigned char m) {
    u64 pos = LOAD_ACQ(&r->deq);
    for (u64 i = 0; i < cap; i++, pos++) {
        u64 w = LOAD_ACQ(&r->cells[pos & (cap - 1)]);
        int32_t d = seq_diff(cell_seq(w), pos + 1);
        if (d == 0)
            mark_slot(rc, w & RING_VAL_MASK, m);
        else if (d < 0)
            break; /* free: the end; d > 0: consumed, deq lags */
    }
}

/* A local queue left mid-steal by a dead thief (steal != real): release the
 * steal lock, and leave the claimed batch to the orphan scan.  Un-claiming
 * it instead would be wrong: the owner may have popped past the batch since
 * (real moved on), and the claimed length is nowhere.  A dead owner's queue
 * is emptied: its tasks are found as orphans too. */
static void fix_local(rc_t *rc, u64 wid) {
    SegmentObject *s = rc->s;
    local_queue_t *q = queue_at(s, wid);
    worker_t *w = worker_at(s, wid);
    u64 cap = s->L.local_cap;
    u64 h = LOAD_ACQ(&q->head);
    u32 steal = head_steal(h), tail = (u32)LOAD_ACQ(&q->tail);
    if (rc->dead_w[wid] || tail - steal > (u32)cap) { /* dead owner, or corrupt */
        STORE_REL(&q->head, head_pack(tail, tail));
        STORE_REL(&w->lifo, 0);
        return;
    }
    u32 real = head_real(h);
    if (steal != real) STORE_REL(&q->head, head_pack(real, real));
    for (u32 p = real; p != tail; p++) mark_slot(rc, LOAD_RLX(&q->buf[p & (cap - 1)]), M_QUEUED);
    u64 l = LOAD_ACQ(&w->lifo);
    if (l) mark_slot(rc, l - 1, M_QUEUED);
    u64 t = LOAD_ACQ(&w->taking);
    if (t) mark_slot(rc, t - 1, M_TAKEN);
}

static void push_client_ring(SegmentObject *s, client_t *c, u64 idx) {
    ring_push(client_ring(c), s->L.inject_cap, idx);
    FETCH_ADD_SEQ(&c->seq, 1);
}

/* Wait until no live process is inside a section.  0, or -1 after timeout
 * (then *who names one that stayed busy: kind << 32 | index). */
static int stop_world(rc_t *rc, double timeout, u64 *who) {
    SegmentObject *s = rc->s;
    header_t *h = HDR(s);
    STORE_SEQ(&h->reclaim, RECLAIM_TAG | (u32)getpid()); /* pairs with section_enter's SeqCst load */
    u64 end = now_ns() + (u64)(timeout * 1e9);
    for (;;) {
        int busy = 0;
        for (u64 i = 0; i < s->L.n_workers && !busy; i++)
            if (!rc->dead_w[i] && LOAD_SEQ(&worker_at(s, i)->busy)) { busy = 1; *who = i; }
        for (u64 i = 0; i < s->L.n_clients && !busy; i++) {
            client_t *c = client_at(s, i);
            /* our own threads are in sections too; they back off like the rest */
            if (!rc->dead_c[i] && LOAD_SEQ(&c->busy)) { busy = 1; *who = (1ULL << 32) | i; }
        }
        for (u64 i = 0; i < s->L.n_send && !busy; i++)
            if (!rc->dead_s[i] && LOAD_SEQ(&((send_t *)relay_send_at(s, i))->busy)) {
                busy = 1;
                *who = (2ULL << 32) | i;
            }
        if (!busy) return 0;
        if (now_ns() >= end) return -1;
        sched_yield();
    }
}

static void start_world(SegmentObject *s) {
    header_t *h = HDR(s);
    FETCH_ADD_RLX(&h->reclaims, 1);
    STORE_SEQ(&h->reclaim, 0);
    futex_wake_u32(&h->reclaim, 1 << 30);
}

/* Before anything is repaired: is the structure sound?  The repair writes
 * through the indices it reads (ring cells, queue entries, holders), so a
 * segment that fails a check is not repaired but marked broken (broken.c).
 * The world is stopped: every ring and queue is quiescent, so the checks
 * are exact (ring_validate).  0, or -1 with `why`. */
#define WHY(...) (snprintf(why, n, __VA_ARGS__), -1)
static int validate(rc_t *rc, char *why, size_t n) {
    SegmentObject *s = rc->s;
    header_t *h = HDR(s);
    u64 ns = s->L.n_slots, cap = s->L.inject_cap, lc = s->L.local_cap;
    u64 carved = LOAD_ACQ(&h->slots_carved), top = LOAD_ACQ(&h->free_head) & 0xffffffffULL;
    if (carved > ns) return WHY("header: slots_carved %llu exceeds %llu slots",
                                (unsigned long long)carved, (unsigned long long)ns);
    if (top > carved) return WHY("free-slot stack: head names slot %llu, beyond the %llu carved",
                                 (unsigned long long)top - 1, (unsigned long long)carved);
    if (ring_validate(inject_ring(s), cap, ns, "inject ring", why, n)) return -1;
    for (u64 i = 0; i < s->L.n_workers; i++) {
        local_queue_t *q = queue_at(s, i);
        worker_t *w = worker_at(s, i);
        u64 hd = LOAD_ACQ(&q->head);
        u32 steal = head_steal(hd), real = head_real(hd), tail = (u32)LOAD_ACQ(&q->tail);
        if (tail - steal > (u32)lc || real - steal > tail - steal)
            return WHY("local queue of worker %llu: head %u/%u and tail %u do not fit its "
                       "capacity %llu", (unsigned long long)i, steal, real, tail,
                       (unsigned long long)lc);
        for (u32 p = steal; p != tail; p++) {
            u32 v = LOAD_RLX(&q->buf[p & (lc - 1)]);
            if (v >= ns) return WHY("local queue of worker %llu: entry %u holds slot index %u "
                                    "(n_slots %llu)", (unsigned long long)i,
                                    (unsigned)(p & (lc - 1)), v, (unsigned long long)ns);
        }
        u64 l = LOAD_ACQ(&w->lifo), t = LOAD_ACQ(&w->taking);
        if (l > ns) return WHY("LIFO slot of worker %llu: holds slot index %llu (n_slots %llu)",
                               (unsigned long long)i, (unsigned long long)l - 1,
                               (unsigned long long)ns);
        if (t > ns) return WHY("worker %llu: taking names slot index %llu (n_slots %llu)",
                               (unsigned long long)i, (unsigned long long)t - 1,
                               (unsigned long long)ns);
    }
    for (u64 i = 0; i < s->L.n_clients; i++) {
        client_t *c = client_at(s, i);
        char what[48];
        snprintf(what, sizeof what, "client %llu completion ring", (unsigned long long)i);
        if (LOAD_ACQ(&c->ring_ready) && LOAD_ACQ(&c->pid) && !rc->dead_c[i] &&
            ring_validate(client_ring(c), cap, ns, what, why, n))
            return -1;
    }
    for (u64 i = 0; i < s->L.n_send; i++) {
        send_t *t = relay_send_at(s, i);
        char what[48];
        snprintf(what, sizeof what, "send ring %llu", (unsigned long long)i);
        if (ring_validate(relay_ring_of(t), s->L.send_cap, ns, what, why, n)) return -1;
        snprintf(what, sizeof what, "waitlist of send ring %llu", (unsigned long long)i);
        if (ring_validate(relay_waitlist_of(s, t), cap, ns, what, why, n)) return -1;
    }
    relay_t *relay = lay_relay(&s->L);
    if (relay) {
        u64 avail = LOAD_ACQ(&relay->avail), rcap = LOAD_ACQ(&relay->capacity);
        if (rcap != s->L.inflight || avail > rcap)
            return WHY("relay: budget holds %llu free units of %llu (configured %llu)",
                       (unsigned long long)avail, (unsigned long long)rcap,
                       (unsigned long long)s->L.inflight);
        if (ring_validate(lay_fifo(relay), fifo_cap(s->L.n_waiters),
                          s->L.n_waiters << TOKEN_GEN_BITS, "relay waiter FIFO", why, n))
            return -1;
    }
    for (u64 i = 0; i < carved; i++) {
        slot_t *sl = slot_at(s, i);
        u64 st = LOAD_ACQ(&sl->state), holder = LOAD_RLX(&sl->holder);
        if (st_refs(st) == 0) continue;
        u64 where = st & (S_NOTIFIED | S_RUNNING | S_COMPLETE);
        if (st_refs(st) > 2 || (where & (where - 1)))
            return WHY("slot %llu: state %#llx is no task state", (unsigned long long)i,
                       (unsigned long long)st);
        int ok = holder < s->L.n_clients || holder == HOLDER_RELAY ||
                 ((holder & ~0xffffULL) == HOLDER_WORKER && (holder & 0xffff) < s->L.n_workers);
        if (!ok)
            return WHY("slot %llu: holder %#llx names no client, worker or relay",
                       (unsigned long long)i, (unsigned long long)holder);
        if (LOAD_RLX(&sl->kind) > 1 || (LOAD_RLX(&sl->kind) == 1 && !relay))
            return WHY("slot %llu: kind %llu", (unsigned long long)i,
                       (unsigned long long)LOAD_RLX(&sl->kind));
    }
    return 0;
}
#undef WHY

/* Everything after the world is stopped.  Returns the dead workers' RUNNING
 * tasks as a list of (key, max_retries, attempts, holder), or NULL (no
 * memory: nothing was changed but marks). */
static PyObject *repair(rc_t *rc) {
    SegmentObject *s = rc->s;
    header_t *h = HDR(s);
    u64 n = s->L.n_slots, cap = s->L.inject_cap;
    PyObject *running = PyList_New(0);
    if (!running) return NULL;

    /* 1. where every slot is */
    mark_ring(rc, inject_ring(s), cap, M_QUEUED);
    for (u64 i = 0; i < s->L.n_workers; i++) fix_local(rc, i);
    for (u64 i = 0; i < s->L.n_clients; i++) {
        client_t *c = client_at(s, i);
        if (!LOAD_ACQ(&c->ring_ready)) continue;
        if (rc->dead_c[i]) { /* its completions are nobody's now */
            ring_init(client_ring(c), cap);
            continue;
        }
        if (LOAD_ACQ(&c->pid)) mark_ring(rc, client_ring(c), cap, M_CRING);
    }
    for (u64 i = 0; i < s->L.n_send; i++) {
        send_t *t = relay_send_at(s, i);
        mark_ring(rc, relay_ring_of(t), s->L.send_cap, M_SRING);
        mark_ring(rc, relay_waitlist_of(s, t), cap, M_SRING);
    }

    /* 2. every slot where its state says, with the references it says */
    u64 carved = LOAD_ACQ(&h->slots_carved);
    if (carved > n) carved = n;
    u64 *orphans = malloc(sizeof(u64) * (carved + 1));
    u64 *redeliver = malloc(sizeof(u64) * (carved + 1));
    if (!orphans || !redeliver) {
        free(orphans);
        free(redeliver);
        Py_DECREF(running);
        PyErr_NoMemory();
        return NULL;
    }
    u64 n_orph = 0, n_redel = 0, packets = 0;
    for (u64 i = 0; i < carved; i++) {
        slot_t *sl = slot_at(s, i);
        u64 st = LOAD_ACQ(&sl->state);
        if (st_refs(st) == 0) continue;
        u64 holder = LOAD_RLX(&sl->holder), owner = LOAD_RLX(&sl->owner);
        /* a handle whose holder died is dropped; its task, if not started, is cancelled */
        int dead_holder =
            (holder < HOLDER_WORKER && holder < s->L.n_clients && rc->dead_c[holder]) ||
            ((holder & HOLDER_WORKER) && holder != HOLDER_RELAY &&
             (holder & 0xffff) < s->L.n_workers && rc->dead_w[holder & 0xffff]);
        if (dead_holder && (st & S_JOIN_INTEREST)) {
            st &= ~S_JOIN_INTEREST;
            if ((st & S_NOTIFIED) && !(st & (S_RUNNING | S_COMPLETE))) {
                st |= S_CANCELLED;
                rc->cancelled++;
            }
        }
        if ((st & S_NOTIFIED) && !(st & (S_RUNNING | S_COMPLETE))) {
            if (!(rc->mark[i] & (M_QUEUED | M_TAKEN))) orphans[n_orph++] = i;
        } else if (st & S_RUNNING) {
            /* owned by a dead worker: the one named, or none (a begin that
             * died before its owner store), or a worker since replaced */
            u64 wid = (owner & 0xffff) - 1;
            int dead = wid >= s->L.n_workers || rc->dead_w[wid] ||
                       (owner >> 32) != LOAD_RLX(&worker_at(s, wid)->pid);
            if (dead) {
                u64 att = LOAD_RLX(&sl->attempts);
                PyObject *t = Py_BuildValue("(KKKK)", (LOAD_RLX(&sl->gen) << 32) | i, att >> 32,
                                            att & 0xffffffffULL, (unsigned long long)holder);
                if (!t || PyList_Append(running, t)) {
                    Py_XDECREF(t);
                    PyErr_Clear(); /* keep repairing; the task stays RUNNING (inspector) */
                } else {
                    Py_DECREF(t);
                }
            }
        } else if ((st & S_COMPLETE) && (st & S_JOIN_INTEREST)) {
            if (holder == HOLDER_RELAY) {
                u64 sw = owner & 0xffff;
                int held = (owner & OWNER_SENDER) && sw < s->L.n_send && !rc->dead_s[sw];
                if (!(rc->mark[i] & M_SRING) && !held) {
                    if (LOAD_RLX(&sl->flags) & SLOT_F_SENDING) {
                        /* its send worker died handing it to the sink: it may
                         * or may not have been sent.  Counted, not re-sent. */
                        send_t *t = relay_send_at(s, LOAD_RLX(&sl->flow) % s->L.n_send);
                        if (t) FETCH_ADD_RLX(&t->in_doubt, 1);
                        st &= ~S_JOIN_INTEREST; /* the pipeline's handle: dropped */
                        rc->in_doubt++;
                    } else {
                        redeliver[n_redel++] = i;
                    }
                }
            } else if (holder < s->L.n_clients && !(rc->mark[i] & M_CRING)) {
                push_client_ring(s, client_at(s, holder), i);
                rc->delivered++;
            }
        }
        u64 want = ((st & (S_NOTIFIED | S_RUNNING)) ? 1 : 0) + ((st & S_JOIN_INTEREST) ? 1 : 0);
        if (want && LOAD_RLX(&sl->kind) == 1) packets++; /* each holds a budget unit */
        u64 fixed = (st & S_FLAGS_MASK) | want * REF_ONE;
        if (fixed != LOAD_RLX(&sl->state)) {
            if (st_refs(LOAD_RLX(&sl->state)) != want) rc->refs_fixed++;
            STORE_REL(&sl->state, fixed);
        }
    }
    for (u64 k = 0; k < n_orph; k++) ring_push(inject_ring(s), cap, orphans[k]);
    rc->requeued = n_orph;
    for (u64 k = 0; k < n_redel; k++) {
        STORE_RLX(&slot_at(s, redeliver[k])->owner, 0);
        relay_deliver(s, redeliver[k], slot_at(s, redeliver[k]));
    }
    rc->delivered += n_redel;
    free(orphans);
    free(redeliver);

    /* 3. the free stack, from the reference counts */
    u64 top = 0, nfree = 0;
    for (u64 i = carved; i-- > 0;) {
        slot_t *sl = slot_at(s, i);
        if (st_refs(LOAD_ACQ(&sl->state)) != 0) continue;
        slot_release_blobs(s, sl);
        STORE_RLX(&sl->owner, 0);
        STORE_RLX(&sl->next, top);
        top = i + 1;
        nfree++;
    }
    u64 old = LOAD_ACQ(&h->free_head);
    u64 before = LOAD_ACQ(&h->free_count);
    STORE_REL(&h->free_head, ((((old >> 32) + 1) & 0xffffffffULL) << 32) | top);
    STORE_SEQ(&h->free_count, nfree + (n - carved));
    if (nfree + (n - carved) > before) rc->freed = nfree + (n - carved) - before;

    /* 4. the relay budget: every unit is free, or in a packet's slot, or in a
     * live client's hands (client.units), or handed to a live waiter (WOKEN);
     * a dead client's waiter entries are freed. */
    relay_t *relay = s->L.n_send ? lay_relay(&s->L) : NULL;
    if (relay) {
        u64 held = packets;
        for (u64 i = 0; i < s->L.n_clients; i++) {
            client_t *c = client_at(s, i);
            if (!rc->dead_c[i] && LOAD_ACQ(&c->pid)) held += LOAD_RLX(&c->units);
        }
        for (u64 i = 0; i < s->L.n_waiters; i++) {
            waiter_t *w = lay_waiter(&s->L, i);
            u64 pid = LOAD_ACQ(&w->pid), wst = LOAD_ACQ(&w->state);
            if (!pid) continue;
            int dead = 0;
            for (u64 k = 0; k < s->L.n_clients && !dead; k++)
                dead = rc->dead_c[k] && LOAD_ACQ(&client_at(s, k)->pid) == pid;
            if (dead) {
                STORE_SEQ(&w->state, (wst & ~WT_MASK) | WT_CANCELLED); /* its tokens are stale */
                STORE_REL(&w->pid, 0);
            } else if ((wst & WT_MASK) == WT_WOKEN) {
                held++;
            }
        }
        u64 cap = LOAD_RLX(&relay->capacity);
        relay_budget_reset(s, held < cap ? cap - held : 0);
    }

    /* 5. dead clients' entries, and the idle word from the workers' states */
    for (u64 i = 0; i < s->L.n_clients; i++) {
        if (!rc->dead_c[i]) continue;
        client_t *c = client_at(s, i);
        STORE_RLX(&c->busy, 0);
        STORE_RLX(&c->units, 0);
        STORE_RLX(&c->sleeping, 0);
        STORE_RLX(&c->spinning, 0);
        STORE_REL(&c->pid, 0); /* last: the entry can be claimed again */
    }
    u64 parked = 0, searching = 0;
    for (u64 i = 0; i < s->L.n_workers; i++) {
        worker_t *w = worker_at(s, i);
        if (rc->dead_w[i]) {
            STORE_RLX(&w->busy, 0);
            STORE_RLX(&w->taking, 0);
            STORE_SEQ(&w->state, (u64)W_DEAD);
            continue;
        }
        u64 ws = LOAD_SEQ(&w->state);
        if (ws == W_PARKED) parked++;
        if (ws == W_SEARCHING || ws == W_NOTIFIED) searching++;
    }
    STORE_SEQ(&h->idle, (s->L.n_workers - parked) * IDLE_UNPARK_ONE + searching);
    for (u64 i = 0; i < s->L.n_send; i++)
        if (rc->dead_s[i]) STORE_RLX(&((send_t *)relay_send_at(s, i))->busy, 0);
    return running;
}

static int ids_arg(PyObject *seq, unsigned char *out, u64 n, const char *what) {
    PyObject *f = PySequence_Fast(seq, "reclaim: ids must be a sequence of ints");
    if (!f) return -1;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(f); k++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(f, k));
        if (PyErr_Occurred() || v >= n) {
            Py_DECREF(f);
            if (!PyErr_Occurred()) PyErr_Format(SegmentError, "reclaim: bad %s id %llu", what, v);
            return -1;
        }
        out[v] = 1;
    }
    Py_DECREF(f);
    return 0;
}

/* reclaim(dead_workers, dead_clients, dead_senders, timeout=2.0) -> dict
 *   running: [(key, max_retries, attempts, holder)] tasks the dead were running
 *   requeued, delivered, refs_fixed, freed, cancelled, duplicates: counts */
static PyObject *RC_reclaim(SegmentObject *s, PyObject *args) {
    PyObject *dw, *dc, *ds;
    double timeout = 2.0;
    if (!PyArg_ParseTuple(args, "OOO|d", &dw, &dc, &ds, &timeout) || seg_check_open(s, 1))
        return NULL;
    rc_t rc = {.s = s};
    u64 total = s->L.n_slots + s->L.n_workers + s->L.n_clients + s->L.n_send + 4;
    unsigned char *mem = calloc(total, 1);
    if (!mem) return PyErr_NoMemory();
    rc.mark = mem;
    rc.dead_w = mem + s->L.n_slots;
    rc.dead_c = rc.dead_w + s->L.n_workers;
    rc.dead_s = rc.dead_c + s->L.n_clients;
    if (ids_arg(dw, rc.dead_w, s->L.n_workers, "worker") ||
        ids_arg(dc, rc.dead_c, s->L.n_clients, "client") ||
        ids_arg(ds, rc.dead_s, s->L.n_send, "send worker")) {
        free(mem);
        return NULL;
    }
    u64 who = 0;
    int stopped;
    Py_BEGIN_ALLOW_THREADS
    stopped = stop_world(&rc, timeout, &who);
    if (stopped != 0) start_world(s);
    Py_END_ALLOW_THREADS
    if (stopped != 0) {
        free(mem);
        static const char *kinds[] = {"worker", "client", "send worker"};
        return PyErr_Format(PyExc_TimeoutError,
                            "reclaim: %s %llu stayed inside a protocol step for %.1f s "
                            "(stopped by a debugger or SIGSTOP?)",
                            kinds[(who >> 32) % 3], (unsigned long long)(who & 0xffffffffULL),
                            timeout);
    }
    /* The world is stopped; repair() needs the GIL only for the result list,
     * and no process can enter a step until start_world().  A broken runtime
     * is not repaired (its structure cannot be trusted), nor one that fails
     * validation now. */
    char why[BROKEN_REASON_MAX] = "";
    PyObject *running;
    if (seg_broken(s)) {
        snprintf(why, sizeof why, "already broken");
        running = PyList_New(0);
    } else if (validate(&rc, why, sizeof why)) {
        seg_mark_broken(s, "%s", why);
        running = PyList_New(0);
    } else {
        why[0] = 0;
        running = repair(&rc);
    }
    Py_BEGIN_ALLOW_THREADS
    start_world(s);
    for (u64 i = 0; i < s->L.n_workers; i++) { /* everyone looks again */
        worker_t *w = worker_at(s, i);
        FETCH_ADD_SEQ(&w->park_seq, 1);
        futex_wake_u32(&w->park_seq, 1);
    }
    for (u64 i = 0; i < s->L.n_clients; i++) {
        client_t *c = client_at(s, i);
        if (!LOAD_ACQ(&c->pid)) continue;
        FETCH_ADD_SEQ(&c->seq, 1);
        futex_wake_u32(&c->seq, 64);
    }
    relay_wake_all(s);
    Py_END_ALLOW_THREADS
    free(mem);
    if (!running) return NULL;
    return Py_BuildValue("{sNsssKsKsKsKsKsKsK}", "running", running, "broken", why,
                         "requeued", rc.requeued,
                         "in_doubt", rc.in_doubt,
                         "delivered", rc.delivered, "refs_fixed", rc.refs_fixed, "freed",
                         rc.freed, "cancelled", rc.cancelled, "duplicates", rc.dups);
}

PyMethodDef reclaim_methods[] = {
    {"reclaim", (PyCFunction)RC_reclaim, METH_VARARGS,
     "reclaim(dead_workers, dead_clients, dead_senders, timeout=2.0) -> dict: stop the world, "
     "repair what the dead left half done, return the tasks they were running"},
    {NULL}};
