/*
 * udp_send.c -- a send worker with a UDP sink, in C: take a batch off its
 * ring, restore per-flow order, sendmmsg, free the slots.  The design and
 * its crash windows are in udp.c's comment; the reorder rules are those of
 * workers/relay.py's Sender (a held packet keeps its slot and unit; a flow
 * met first starts at the lowest number still in flight).
 */
#include "udp.h"

#include "access.h"
#include "crash.h"
#include "fmap.h"
#include "section.h"
#include "sendq.h"
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#define SENDMMSG_MAX 1024 /* UIO_MAXIOV: the most one sendmmsg takes */

typedef struct {
    char *base; /* the relay and send worker this state is for */
    u64 sw;
    map_t expected; /* flow -> next sequence number to send */
    map_t held;     /* (flow, seq) -> slot index, waiting for its turn */
    u64 backlog;
    u64 cap;        /* entries of the arrays below: the relay's slots */
    u64 *emit;      /* slot indices, in the order they leave */
    struct mmsghdr *msgs;
    struct iovec *iov;
    u64 *cnt;  /* datagrams in each message (a GSO message has several) */
    char *ctl; /* a UDP_SEGMENT control message per message */
} tx_t;
#define GSO_CTL 32
static tx_t tx;

static int tx_get(SegmentObject *s, u64 sw) {
    if (tx.base == s->L.base && tx.sw == sw && tx.cap) return 0;
    map_clear(&tx.expected);
    map_clear(&tx.held);
    free(tx.emit);
    free(tx.msgs);
    free(tx.iov);
    free(tx.cnt);
    free(tx.ctl);
    tx.cap = s->L.n_slots + UDP_BATCH_MAX;
    tx.emit = malloc(tx.cap * sizeof *tx.emit);
    tx.msgs = calloc(tx.cap, sizeof *tx.msgs);
    tx.iov = calloc(tx.cap, sizeof *tx.iov);
    tx.cnt = calloc(tx.cap, sizeof *tx.cnt);
    tx.ctl = calloc(tx.cap, GSO_CTL);
    tx.backlog = 0;
    tx.base = s->L.base;
    tx.sw = sw;
    if (!tx.emit || !tx.msgs || !tx.iov || !tx.cnt || !tx.ctl) {
        tx.cap = 0;
        return -1;
    }
    return 0;
}

/* Restore order: packets of `take` go to tx.emit in the order they may
 * leave; early ones wait in tx.held.  Returns how many to emit. */
static u64 tx_order(SegmentObject *s, const u64 *take, u64 n, int ordered) {
    u64 k = 0;
    for (u64 i = 0; i < n; i++) {
        slot_t *sl = slot_at(s, take[i]);
        u64 flow = LOAD_RLX(&sl->flow), seq = LOAD_RLX(&sl->seq);
        if (!ordered) {
            tx.emit[k++] = take[i];
            continue;
        }
        ment_t *e = map_find(&tx.expected, flow, 0);
        u64 nxt;
        if (e) {
            nxt = e->v;
        } else { /* a flow met first: start at the lowest number in flight */
            u64 low = 0;
            nxt = (seq != 0 && relay_flow_min(s, flow, &low) && low < seq) ? low : seq;
        }
        if (seq < nxt) { /* below the flow's position: never hold it */
            tx.emit[k++] = take[i];
            continue;
        }
        if (seq != nxt) {
            if (map_put(&tx.expected, flow, 0, nxt) || map_put(&tx.held, flow, seq, take[i]))
                tx.emit[k++] = take[i]; /* out of memory: sent out of order, not lost */
            else
                tx.backlog++;
            continue;
        }
        tx.emit[k++] = take[i];
        nxt++;
        ment_t *h;
        while (tx.held.n && (h = map_find(&tx.held, flow, nxt))) {
            tx.emit[k++] = h->v;
            map_del(&tx.held, h);
            tx.backlog--;
            nxt++;
        }
        (void)map_put(&tx.expected, flow, 0, nxt); /* out of memory: met afresh next time */
    }
    return k;
}

/* Pop up to `max` packets off the ring, each checked and marked held by
 * this send worker (as relay_take), in one section.  *bad: corrupt. */
static u64 tx_take(SegmentObject *s, send_t *t, u64 sw, u64 *take, u64 max, int *bad) {
    u64 n = 0;
    section_enter(s);
    for (; n < max; n++) {
        long v = sendq_take(&s->L, t);
        if (v < 0) break;
        CRASH_POINT(CP_TAKEN);
        slot_t *sl = slot_at(s, (u64)v);
        u64 st = sl ? LOAD_ACQ(&sl->state) : 0; /* pairs with complete's release */
        if (!sl || !(st & S_COMPLETE) || LOAD_RLX(&sl->holder) != HOLDER_RELAY) {
            seg_mark_broken(s, "send ring %llu: held slot %ld, not a finished packet (state %#llx)",
                            (unsigned long long)sw, v, (unsigned long long)st);
            *bad = 1;
            break;
        }
        /* held by this send worker until done: a crash reclaim re-delivers it */
        STORE_RLX(&sl->owner, (s->pid << 32) | OWNER_SENDER | sw);
        FETCH_ADD_RLX(&t->popped, 1);
        take[n] = (u64)v;
    }
    section_leave(s);
    return n;
}

/* Send tx.iov[0..np) in order, counting sent and failed packets.  Runs of
 * equal-sized datagrams go as one UDP GSO message (UDP_SEGMENT: the kernel
 * splits it; one pass through the stack for up to GSO_SEGS datagrams); if
 * the socket refuses GSO, every datagram goes alone from then on. */
#define GSO_SEGS 64
#define GSO_BYTES 65000
static int gso_off;
static void tx_send(int fd, u64 np, u64 *sent, u64 *errors) {
    u64 q = 0;
    for (u64 i = 0; i < np;) { /* group */
        u64 len = tx.iov[i].iov_len, c = 1;
        while (!gso_off && i + c < np && c < GSO_SEGS && tx.iov[i + c].iov_len == len &&
               (c + 1) * len <= GSO_BYTES)
            c++;
        struct msghdr *h = &tx.msgs[q].msg_hdr;
        *h = (struct msghdr){NULL, 0, &tx.iov[i], c, NULL, 0, 0};
        if (c > 1) {
            char *ctl = tx.ctl + q * GSO_CTL;
            memset(ctl, 0, GSO_CTL);
            h->msg_control = ctl;
            h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            struct cmsghdr *cm = CMSG_FIRSTHDR(h);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)len;
            memcpy(CMSG_DATA(cm), &seg, sizeof seg);
        }
        tx.cnt[q++] = c;
        i += c;
    }
    for (u64 i = 0; i < q;) {
        u64 chunk = q - i < SENDMMSG_MAX ? q - i : SENDMMSG_MAX;
        int r = sendmmsg(fd, tx.msgs + i, (unsigned)chunk, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) {
            for (int j = 0; j < r; j++) *sent += tx.cnt[i + (u64)j];
            i += (u64)r;
            continue;
        }
        u64 c = tx.cnt[i];
        if (c > 1 && (errno == EINVAL || errno == EIO || errno == ENOPROTOOPT ||
                      errno == EOPNOTSUPP)) {
            gso_off = 1; /* no GSO here: this group one by one, and all later ones */
            for (u64 j = 0; j < c; j++) {
                struct msghdr h = {NULL, 0, &tx.msgs[i].msg_hdr.msg_iov[j], 1, NULL, 0, 0};
                if (sendmsg(fd, &h, 0) >= 0)
                    (*sent)++;
                else
                    (*errors)++;
            }
        } else { /* that message failed (e.g. ECONNREFUSED): its packets dropped, counted */
            *errors += c;
        }
        i++;
    }
}

/* relay_udp_send(sw, fd, ordered, batch=256, wait=0.5, linger=5e-5) -> packets
 * taken (0: none came within `wait`).  An empty ring is given `linger` s
 * (a nap: no spinning, and the CPU workers need not wake us) before the send
 * worker sleeps on its futex word: a batch instead of a wake per packet. */
PyObject *udp_send_py(SegmentObject *s, PyObject *args) {
    unsigned long long sw;
    int fd, ordered;
    long batch = UDP_BATCH_MAX;
    double wait_s = 0.5, linger_s = 50e-6;
    if (!PyArg_ParseTuple(args, "Kip|ldd", &sw, &fd, &ordered, &batch, &wait_s, &linger_s) ||
        seg_check_open(s, 1))
        return NULL;
    send_t *t = lay_send(&s->L, sw);
    if (!t) return PyErr_Format(SegmentError, "bad send worker id %llu", sw);
    if (batch < 1) batch = 1;
    if (batch > UDP_BATCH_MAX) batch = UDP_BATCH_MAX;
    if (tx_get(s, sw)) return PyErr_NoMemory();
    udp_timer_slack();
    u64 take[UDP_BATCH_MAX], n = 0, cap = payload_cap(s);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    n = tx_take(s, t, sw, take, (u64)batch, &bad);
    if (!n && !bad && linger_s > 0) { /* nothing: let a few arrive (no spin, no wake) */
        os_nap_ns((u64)(linger_s * 1e9));
        n = tx_take(s, t, sw, take, (u64)batch, &bad);
    }
    if (!n && !bad) { /* still nothing: sleep until a packet comes (its deliver wakes us) */
        sendq_wait(&s->L, t, wait_s);
        n = tx_take(s, t, sw, take, (u64)batch, &bad);
    }
    u64 k = bad ? 0 : tx_order(s, take, n, ordered);
    if (k) CRASH_POINT(CP_PY_HELD);
    /* mark what goes to the socket (a death from here on: in doubt) */
    u64 m = 0, filtered = 0, errors = 0, crashed = 0, sent = 0;
    section_enter(s);
    for (u64 i = 0; i < k && !bad; i++) {
        slot_t *sl = slot_at(s, tx.emit[i]);
        u64 res = LOAD_RLX(&sl->result), status = res >> 32, len = res & 0xffffffffULL;
        if (status != ST_OK) {
            filtered += status == ST_FILTERED;
            crashed += status == ST_CRASHED;
            errors += status != ST_FILTERED && status != ST_CRASHED;
            continue;
        }
        char *data = slot_payload(s, sl);
        if (LOAD_RLX(&sl->flags) & SLOT_F_RESULT_BLOB) {
            data = arena_block_data(s, LOAD_RLX(&sl->result_blob), &len);
            if (!data) {
                seg_mark_broken(s, "slot %llu: result block at arena offset %llu is not a block",
                                (unsigned long long)tx.emit[i],
                                (unsigned long long)LOAD_RLX(&sl->result_blob));
                bad = 1;
                break;
            }
        } else if (len > cap) {
            seg_mark_broken(s, "slot %llu: result length %llu exceeds the slot's %llu bytes",
                            (unsigned long long)tx.emit[i], (unsigned long long)len,
                            (unsigned long long)cap);
            bad = 1;
            break;
        }
        FETCH_OR_ACQREL(&sl->flags, SLOT_F_SENDING); /* read by the reclaim after busy == 0 */
        tx.iov[m++] = (struct iovec){data, len};
    }
    section_leave(s);
    if (!bad) tx_send(fd, m, &sent, &errors); /* no section: the packets are marked and held */
    if (m) CRASH_POINT(CP_PY_SUNK);
    if (!bad) {
        section_enter(s);
        /* count first: flush() returns once the last unit is back */
        COUNTER_BUMP(&t->sent, sent);
        COUNTER_BUMP(&t->filtered, filtered);
        COUNTER_BUMP(&t->errors, errors);
        COUNTER_BUMP(&t->crashed, crashed);
        for (u64 i = 0; i < k; i++) relay_packet_done(s, tx.emit[i]);
        if (k) relay_done_bump(s);
        STORE_RLX(&t->backlog, tx.backlog);
        section_leave(s);
    }
    Py_END_ALLOW_THREADS
    if (bad) return seg_raise_broken(s);
    return PyLong_FromUnsignedLongLong(n);
}
