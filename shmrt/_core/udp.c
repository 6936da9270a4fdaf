/*
 * udp.c -- the relay's UDP I/O in batches, with the GIL released: the
 * ingress reads many datagrams per recvmmsg straight into task slots, and a
 * send worker with a UDP sink writes many per sendmmsg.  No Python runs per
 * packet on either side; with a built-in transform (identity) none runs at
 * all: the ingress completes the packet itself and delivers it to its send
 * ring, as a CPU worker's finish would.
 *
 * Ingress (relay_udp_recv), per batch:
 *   poll (no section: it sleeps) -> k units of budget, counted in the
 *   client's record (relay.c; the slow path sleeps outside sections) ->
 *   ONE section: k slots off the free stack, recvmmsg(MSG_DONTWAIT) into
 *   their payloads, each received datagram filled in place (flow = hash of
 *   the source address, seq = the flow's next number in this process) and
 *   queued on inject, or, built in, INITIAL -> COMPLETE and delivered; the
 *   slots and units not used go back.
 * Crash windows (reclaim.h's rules, nothing new to repair): a slot taken and
 * not filled has no reference (the reclaim rebuilds the free stack from the
 * reference counts); a filled slot not queued is NOTIFIED and found in no
 * queue (re-queued: a CPU worker runs the transform, which for identity is
 * the Python identity); COMPLETE and not on a ring is re-delivered; units
 * not yet in a packet are in client.units.  A datagram larger than a slot is
 * received into a private scratch buffer past the slot and copied into an
 * arena block (a block allocated and not yet in its slot leaks on a death
 * there: reclaim.h's known gap, as for Relay.send).
 *
 * Send worker (relay_udp_send), per batch:
 *   one section: pop up to `batch` packets off the ring (sendq.h), check
 *   each slot, mark it held (owner = this send worker, as relay_take) ->
 *   reorder per flow in process memory (as workers/relay.py's Sender; a
 *   flow met first starts at relay_flow_min) -> one section: mark the
 *   packets to send SENDING -> sendmmsg (no section) -> one section: count,
 *   free the slots, release their units (as relay_done).
 * So a send worker's death leaves what relay_take / relay_sending /
 * relay_done would: held packets re-delivered, SENDING ones in doubt.
 *
 * Kernel drops: SO_RXQ_OVFL is set on the ingress socket; each datagram's
 * control message carries the socket's drop count, kept (max) in send
 * worker 0's rx_kernel_drops word for statistics() and the inspector.
 */
#include "udp.h"

#include "access.h"
#include "fmap.h"
#include "budget.h"
#include "crash.h"
#include "freestack.h"
#include "section.h"
#include "sendq.h"
#include "state.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define DGRAM_MAX 65536
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

/* The lingers below are naps of tens of microseconds: with the default 50 us
 * timer slack they would last twice as long.  Per thread; best effort. */
void udp_timer_slack(void) {
    static __thread int done;
    if (!done) prctl(PR_SET_TIMERSLACK, 5000UL, 0, 0, 0);
    done = 1;
}

/* ---- ingress ------------------------------------------------------------- */
typedef struct {
    char *base; /* the relay the flow numbers belong to */
    u64 salt;   /* XORed into flow ids: this sender's flows (relay.py) */
    map_t flows; /* flow id -> next sequence number */
    struct mmsghdr msgs[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX][2];
    struct sockaddr_storage addr[UDP_BATCH_MAX];
    char ctl[UDP_BATCH_MAX][CMSG_SPACE(sizeof(u32)) + 64];
    long idx[UDP_BATCH_MAX];
    char *scratch;
    u64 scratch_each;
} rx_t;
static rx_t *rx_state;
static pthread_mutex_t rx_lock = PTHREAD_MUTEX_INITIALIZER; /* one ingress per process */

/* The flow id of a source address: a hash, tagged so it meets no flow id
 * of Relay.send (relay.py flow_id) in practice. */
static u64 flow_of_addr(const struct sockaddr_storage *a) {
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v = (const void *)a;
        return mix64(((u64)v->sin_addr.s_addr << 16 | v->sin_port) ^ 0x5544503456ULL);
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v = (const void *)a;
        u64 h[2];
        memcpy(h, &v->sin6_addr, sizeof h);
        return mix64(mix64(h[0] ^ 0x5544503656ULL) ^ h[1] ^ ((u64)v->sin6_port << 48));
    }
    return 0x5544503fULL;
}

static u64 rx_ovfl(struct msghdr *h) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
            c->cmsg_len >= CMSG_LEN(sizeof(u32))) {
            u32 v;
            memcpy(&v, CMSG_DATA(c), sizeof v);
            return v;
        }
    }
    return 0;
}

static void ctr_max(u64 *w, u64 v) {
    if (v > LOAD_RLX(w)) STORE_RLX(w, v); /* one writer (the ingress); a counter */
}

/* One datagram received into slot idx: fill it, then queue or complete it.
 * Inside the batch's section.  Returns 1 if it was queued on inject. */
static int rx_one(SegmentObject *s, rx_t *st, int j, u64 fn_id, int builtin, send_t *t0) {
    u64 idx = (u64)st->idx[j], len = st->msgs[j].msg_len, cap = payload_cap(s);
    slot_t *sl = slot_at(s, idx);
    long long blob = -1;
    if (len > cap) { /* past the slot: into an arena block, both parts */
        blob = arena_alloc_block(s, len);
        u64 blen = 0;
        char *data = blob >= 0 ? arena_block_data(s, (u64)blob, &blen) : NULL;
        if (!data || blen < len) {
            if (blob >= 0) arena_release_block(s, (u64)blob);
            FETCH_ADD_RLX(&t0->rx_no_space, 1);
            return -1; /* dropped, counted: the caller frees the slot and the unit */
        }
        memcpy(data, slot_payload(s, sl), cap);
        memcpy(data + cap, st->iov[j][1].iov_base, len - cap);
    }
    u64 fid = flow_of_addr(&st->addr[j]) ^ st->salt;
    ment_t *e = map_find(&st->flows, fid, 0);
    u64 seq = e ? e->v : 0;
    if (map_put(&st->flows, fid, 0, seq + 1)) { /* out of memory: not numbered, dropped */
        if (blob >= 0) arena_release_block(s, (u64)blob);
        FETCH_ADD_RLX(&t0->rx_no_space, 1);
        return -1;
    }
    u64 packet[2] = {fid, seq};
    Py_buffer b = {.buf = NULL, .len = blob >= 0 ? 0 : (Py_ssize_t)len};
    task_slot_fill(s, idx, HOLDER_RELAY, fn_id, &b, blob, packet);
    relay_unit_in_packet(s); /* the packet holds the unit now (same step) */
    CRASH_POINT(CP_FILLED);
    if (!builtin) {
        if (ring_push_inl(inject_ring(s), s->L.inject_cap, idx)) {
            seg_mark_broken(s, "inject ring: no room for slot %llu (capacity %llu)",
                            (unsigned long long)idx, (unsigned long long)s->L.inject_cap);
            return 2;
        }
        return 1;
    }
    /* identity: the result is the argument, where it lies */
    if (blob >= 0) {
        STORE_PLAIN(&sl->result_blob, (u64)blob);
        STORE_PLAIN(&sl->flags, SLOT_F_RESULT_BLOB); /* args block becomes the result block */
    }
    STORE_PLAIN(&sl->result, ((u64)ST_OK << 32) | (u64)b.len);
    STORE_PLAIN(&sl->finished_ns, now_ns()); /* published by the CAS below */
    if (transition_initial_to_complete(&sl->state) != TR_OK) {
        seg_mark_broken(s, "slot %llu: a fresh packet's state %#llx is not the initial one",
                        (unsigned long long)idx, (unsigned long long)LOAD_RLX(&sl->state));
        return 2;
    }
    CRASH_POINT(CP_COMPLETE);
    FETCH_ADD_RLX(&HDR(s)->completed, 1);
    return slot_deliver_packet(s, idx, sl) ? 2 : 0;
}

static rx_t *rx_get(SegmentObject *s) {
    u64 cap = payload_cap(s), each = cap >= DGRAM_MAX ? 0 : DGRAM_MAX - cap;
    if (!rx_state && !(rx_state = calloc(1, sizeof *rx_state))) return NULL;
    rx_t *st = rx_state;
    if (st->base != s->L.base) { /* another relay: its flows start afresh */
        map_clear(&st->flows);
        st->base = s->L.base;
    }
    if (st->scratch_each != each) {
        free(st->scratch);
        st->scratch = each ? malloc(each * UDP_BATCH_MAX) : NULL;
        if (each && !st->scratch) return NULL;
        st->scratch_each = each;
    }
    return st;
}

/* Receive until `timeout` s passed with nothing to read, or `limit` (>0)
 * datagrams.  GIL released.  Returns 0, or an errno (a socket error), or -1
 * for a broken runtime. */
static int rx_loop(SegmentObject *s, rx_t *st, int fd, u64 fn_id, int builtin, u64 batch,
                   double timeout, u64 limit, double linger, u64 *got) {
    send_t *t0 = lay_send(&s->L, 0);
    u64 end = now_ns() + (u64)(timeout * 1e9), cap = payload_cap(s);
    for (;;) {
        if (limit && *got >= limit) return 0;
        u64 now = now_ns();
        if (now >= end) return 0;
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, (int)((end - now) / 1000000) + 1);
        if (pr < 0) return errno == EINTR ? 0 : errno;
        if (pr == 0) return 0;
        if (seg_broken(s)) return -1;
        if (LOAD_ACQ(&HDR(s)->run_state) != RUN_RUNNING) return 0;
        u64 want = batch;
        if (limit && limit - *got < want) want = limit - *got;
        section_enter(s);
        u64 k = relay_units_try(s, want);
        section_leave(s);
        if (!k) { /* full: wait for one unit (outside sections), then take more */
            if (relay_units_wait(s, timeout) != BUDGET_OK) return seg_broken(s) ? -1 : 0;
            section_enter(s);
            k = 1 + relay_units_try(s, want - 1);
            section_leave(s);
        }
        section_enter(s);
        u64 m = 0;
        for (; m < k; m++) {
            long i = task_slot_alloc(s);
            if (i < 0) break; /* none free (cannot be: slots > budget), or broken */
            slot_t *sl = slot_at(s, (u64)i);
            st->idx[m] = i;
            st->iov[m][0] = (struct iovec){slot_payload(s, sl), cap < DGRAM_MAX ? cap : DGRAM_MAX};
            st->iov[m][1] = (struct iovec){st->scratch + m * st->scratch_each, st->scratch_each};
            st->msgs[m].msg_hdr = (struct msghdr){&st->addr[m], sizeof st->addr[m], st->iov[m],
                                                  st->scratch_each ? 2 : 1, st->ctl[m],
                                                  sizeof st->ctl[m], 0};
            st->msgs[m].msg_len = 0;
        }
        CRASH_POINT(CP_ALLOC);
        int n = m ? recvmmsg(fd, st->msgs, (unsigned)m, MSG_DONTWAIT, NULL) : 0;
        int err = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR ? errno : 0;
        if (n < 0) n = 0;
        int queued = 0, bad = 0;
        u64 used = 0, ovfl = 0;
        for (int j = 0; j < n && !bad; j++) {
            u64 o = rx_ovfl(&st->msgs[j].msg_hdr);
            if (o > ovfl) ovfl = o;
            int r = rx_one(s, st, j, fn_id, builtin, t0);
            if (r < 0) { /* dropped (counted): its slot is unused */
                st->idx[j] = -1 - st->idx[j];
                continue;
            }
            used++;
            queued += r == 1;
            bad = r == 2;
        }
        for (u64 j = 0; j < m; j++) { /* slots not filled go back */
            long i = st->idx[j] < 0 ? -1 - st->idx[j] : ((int)j >= n ? st->idx[j] : -1);
            if (i >= 0) slots_push_free(&s->L, (u64)i);
        }
        for (u64 j = used; j < k; j++) relay_unit_back(s);
        if (queued) sched_notify(s);
        COUNTER_BUMP(&t0->rx_received, (u64)n);
        ctr_max(&t0->rx_kernel_drops, ovfl);
        section_leave(s);
        *got += (u64)n;
        if (bad || seg_broken(s)) return -1;
        if (err) return err;
        /* drained the socket: let a few more arrive before the next poll (a
         * batch per wake-up of ours and of a CPU worker, not one each) */
        if (n > 0 && (u64)n < m && linger > 0) os_nap_ns((u64)(linger * 1e9));
    }
}

/* relay_udp_recv(fd, fn_id, builtin, batch=64, timeout=0.2, limit=0,
 * linger=3e-5, salt=0) -> received.  salt: XORed into the flow ids (each
 * sender's flows are its own: relay.py). */
static PyObject *U_recv(SegmentObject *s, PyObject *args) {
    int fd, builtin;
    unsigned long long fn_id, limit = 0, salt = 0;
    long batch = 64;
    double timeout = 0.2, linger = 30e-6;
    if (!PyArg_ParseTuple(args, "iKp|ldKdK", &fd, &fn_id, &builtin, &batch, &timeout, &limit,
                          &linger, &salt) ||
        seg_check_open(s, 1))
        return NULL;
    if (!s->L.n_send) return PyErr_Format(SegmentError, "this runtime has no relay region");
    if (!s->units || !s->busy)
        return PyErr_Format(SegmentError, "relay_udp_recv: this process has no client entry");
    if (batch < 1) batch = 1;
    if (batch > UDP_BATCH_MAX) batch = UDP_BATCH_MAX;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one); /* best effort: counters */
    udp_timer_slack();
    u64 got = 0;
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&rx_lock);
    rx_t *st = rx_get(s);
    if (st) st->salt = salt;
    rc = st ? rx_loop(s, st, fd, fn_id, builtin, (u64)batch, timeout, limit, linger, &got)
            : ENOMEM;
    pthread_mutex_unlock(&rx_lock);
    Py_END_ALLOW_THREADS
    if (rc == -1) return seg_raise_broken(s);
    if (rc) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromUnsignedLongLong(got);
}

PyMethodDef udp_methods[] = {
    {"relay_udp_recv", (PyCFunction)U_recv, METH_VARARGS,
     "relay_udp_recv(fd, fn_id, builtin, batch=64, timeout=0.2, limit=0, linger=3e-5, salt=0) -> "
     "received "
     "(recvmmsg into slots, GIL released)"},
    {"relay_udp_send", (PyCFunction)udp_send_py, METH_VARARGS,
     "relay_udp_send(sw, fd, ordered, batch=256, wait=0.5, linger=5e-5) -> packets taken "
     "(sendmmsg from slots, GIL released; fd is connected to the sink)"},
    {NULL}};
