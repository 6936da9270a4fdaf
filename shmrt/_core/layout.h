/*
 * layout.h -- the segment layout: one POSIX shared-memory segment per runtime.
 *
 *   +---------------------+ 0
 *   | header (4 KiB)      |  config (written once at creation), then mutable
 *   |                     |  words, each on its own cache line
 *   +---------------------+ workers_off
 *   | workers[N]          |  256 B each: identity, park futex, counters
 *   +---------------------+ queues_off
 *   | local queues[N]     |  1152 B each: head, tail, ring of u32 slot indices
 *   +---------------------+ inject_off
 *   | inject ring         |  Vyukov MPMC ring of slot indices + length
 *   +---------------------+ clients_off
 *   | clients[C]          |  per client: identity, futex, completion ring
 *   +---------------------+ funcs_off
 *   | function table[F]   |  pickled callables, sent once, then by id
 *   +---------------------+ holds_off
 *   | hold tables[R]      |  per process record: the arena blocks it holds
 *   +---------------------+ slots_off
 *   | slots[K]            |  fixed-size task slots (192 B header + payload)
 *   +---------------------+ arena_off
 *   | blob arena          |  size-classed refcounted blocks (large payloads)
 *   +---------------------+ total_size
 *
 * Who writes what:
 *   - header config words: the creator, before any other process maps the
 *     segment.  Everyone else copies them into a private `layout_t` after
 *     validating them, and never reads them from shared memory again, so a
 *     later scribble on the header cannot send the C core out of bounds.
 *   - worker entry line 0: only that worker (pid, state, owner-only counters),
 *     except `state`, which a notifier may CAS from PARKED to NOTIFIED and the
 *     coordinator may set to DEAD, and `lifo`, which a thief may CAS to 0.
 *   - everything else: through the protocols in sched.c and arena.c.
 *
 * Python mirrors nothing by hand: the module exports the offsets of every
 * named field (HEADER_FIELDS, WORKER_FIELDS, SLOT_FIELDS, ...) from the
 * structs below, and the shmrt/layout package reads them.
 */
#ifndef SHMRT_LAYOUT_H
#define SHMRT_LAYOUT_H

#include <stddef.h>
#include "atomics.h"

#define SHMRT_MAGIC 0x3176544d524d4853ULL /* "SHMRMTv1" little endian */
#define SHMRT_LAYOUT_VERSION 8
#define CACHE_LINE 64

/* Local run queue capacity: a compile-time maximum.  The effective capacity
 * (a power of two <= this) is recorded in the header, so a test can shrink
 * it to 4 to drive the overflow and steal paths hard. */
#define LOCAL_CAP_MAX 256
#define HEADER_SIZE 4096
#define SLOT_HEADER_SIZE 192
#define ARENA_MIN_BLOCK 4096 /* class 0 payload capacity (its block: + the header) */
#define ARENA_CLASSES 48     /* half-steps: 4K, 6K, 8K, 12K, ... up to 48 GiB */
#define BLOCK_HEADER_SIZE 64
#define BLOCK_MAGIC 0x424c4f42u /* "BLOB" */
#define BROKEN_REASON_MAX 248 /* bytes of header.broken_reason, NUL included */

#define PAD(n) char _pad_##n[CACHE_LINE]

/* ---- header ------------------------------------------------------------ */
typedef struct {
    /* line 0-2: configuration, written once by the creator.  magic, version,
     * owner_uid, coord_pid and coord_start keep their offsets in every layout
     * version, so tools can tell a stale segment of another version. */
    u64 magic;
    u64 version;
    u64 total_size;
    u64 n_workers;
    u64 n_slots;
    u64 slot_size;
    u64 local_cap;
    u64 inject_cap;  /* power of two >= n_slots: pushes can never fail */
    u64 n_clients;
    u64 n_funcs;
    u64 arena_size;
    u64 workers_off;
    u64 queues_off;
    u64 inject_off;
    u64 clients_off;
    u64 funcs_off;
    u64 slots_off;
    u64 arena_off;
    u64 owner_uid;
    u64 created_ns;   /* CLOCK_REALTIME at creation */
    u64 coord_pid;
    u64 coord_start;  /* /proc/<pid>/stat starttime: pid-reuse proof */
    u64 max_payload;
    u64 n_send;      /* relay send workers (0: no relay region) */
    u64 send_cap;    /* capacity of each send ring (power of two) */
    u64 n_waiters;   /* waiter entries for clients blocked on the budget */
    u64 inflight;    /* relay in-flight budget (units = packets) */
    u64 relay_off;
    u64 holds_off;   /* hold tables, one per process record (holds.h) */
    u64 _cfg_reserved[3];
    /* line 4: run state (RUN_*), written by the coordinator */
    _Alignas(CACHE_LINE) u64 run_state;
    u64 epoch;         /* bumped by the coordinator on every worker respawn */
    u64 shutdown_seq;  /* futex word: bumped when run_state changes */
    u64 reclaim;       /* futex word: non-zero while a crash reclaim has the
                        * world stopped (reclaim.c); sections wait on it */
    u64 reclaims;      /* reclaims run (counter, for the inspector) */
    u64 watch;         /* time-limited tasks submitted + force-cancels asked: while
                        * non-zero the coordinator looks for tasks to kill (kill.c) */
    /* line 5: Tokio's idle word: (num_unparked << 16) | num_searching */
    _Alignas(CACHE_LINE) u64 idle;
    /* line 6: free-slot stack head: (tag << 32) | (index + 1), 0 = empty.
     * Slots never used yet are not on the stack: slot_alloc carves them from
     * slots_carved (so creating a runtime touches no slot memory). */
    _Alignas(CACHE_LINE) u64 free_head;
    u64 free_count;
    u64 slots_carved;
    /* line 7: function table fill level */
    _Alignas(CACHE_LINE) u64 fn_count;
    /* line 8: arena bump pointer (bytes used from the arena start) */
    _Alignas(CACHE_LINE) u64 arena_bump;
    u64 arena_live_bytes;
    u64 arena_untracked; /* block references held by processes without a record
                          * (holds.h): while non-zero the reclaim does not
                          * recount the arena */
    u64 arena_reserved;  /* arena bytes whose /dev/shm pages exist (arena.c,
                          * arena_reserve): only raised, by a carver after its
                          * populate succeeded; the arena's whole size when the
                          * creator reserved it all (no MADV_POPULATE_WRITE) */
    /* lines 9-14: arena per-class free stacks, same packing as free_head */
    _Alignas(CACHE_LINE) u64 arena_free[ARENA_CLASSES];
    /* global counters (relaxed; for the inspector) */
    _Alignas(CACHE_LINE) u64 submitted;
    u64 completed;
    u64 crashed;
    u64 retried;
    /* lines 16-19: why the runtime is broken (RUN_BROKEN, broken.c).  Written
     * once, by whoever moved the run state to RUN_BROKEN: the text first,
     * then its length with release order (0: not written yet). */
    _Alignas(CACHE_LINE) u64 broken_len;
    char broken_reason[BROKEN_REASON_MAX];
} header_t;

#ifndef __cplusplus
_Static_assert(sizeof(header_t) <= HEADER_SIZE, "header_t must fit in its 4 KiB");
#endif

/* RUN_BROKEN: a check on shared memory failed (corruption); nobody runs
 * tasks any more and every waiter is woken (broken.c). */
enum { RUN_INIT = 0, RUN_RUNNING = 1, RUN_STOPPING = 2, RUN_STOPPED = 3, RUN_BROKEN = 4 };

/* The reclaim word (header.reclaim) while a crash reclaim runs: a tag and
 * the reclaimer's pid (low 32 bits, the futex word).  Anything else non-zero
 * is corruption (section.h), never a reason to wait forever. */
#define RECLAIM_TAG 0x52434c4d00000000ULL /* "MLCR" */
#define RECLAIM_TAG_MASK 0xffffffff00000000ULL

/* ---- worker entry ------------------------------------------------------ */
enum {
    W_EMPTY = 0,
    W_STARTING = 1,
    W_RUNNING = 2,
    W_SEARCHING = 3,
    W_PARKED = 4,
    W_NOTIFIED = 5, /* a notifier claimed this parked worker */
    W_DEAD = 6,
    W_EXITED = 7,
};

typedef struct {
    /* line 0: identity and state; written by the worker itself */
    u64 pid;
    u64 start;         /* process start time (pid-reuse proof) */
    u64 epoch;
    u64 state;         /* W_*; see sched.c for the park protocol */
    u64 current;       /* slot index + 1 of the innermost running task */
    u64 current_since; /* CLOCK_MONOTONIC ns */
    u64 lifo;          /* slot index + 1 in the LIFO slot, 0 = empty; owner XCHG, thief CAS */
    u64 help_depth;    /* tasks on this worker's stack (nested by joins) */
    /* line 1: park futex word (low 32 bits used), bumped by notifiers */
    _Alignas(CACHE_LINE) u64 park_seq;
    /* line 2-3: counters, owner-only writes */
    _Alignas(CACHE_LINE) u64 tasks_run;
    u64 steals;
    u64 steal_attempts;
    u64 stolen_tasks;
    u64 parks;
    u64 wakeups;
    u64 inject_pulls;
    u64 overflows;
    u64 spins;
    u64 lifo_hits;
    u64 helped;
    /* owner-written, read by the reclaim (reclaim.c): */
    u64 busy;      /* protocol sections this process is inside (section.h) */
    u64 taking;    /* slot index + 1 popped by this worker and not yet begun */
    u64 _ctr_reserved[3];
} worker_t;

/* ---- local run queue (Tokio's queue.rs) ---------------------------------
 *   head: | steal (32) | real (32) |   both positions, wrapping u32
 *   tail: u32, written only by the owner
 * The owner pops at `real`; a stealer first moves `real` forward (claiming a
 * batch), copies, then moves `steal` up to `real`.  While steal != real a
 * steal is in progress and no other stealer may start. */
typedef struct {
    u64 head;
    _Alignas(CACHE_LINE) u64 tail; /* low 32 bits */
    _Alignas(CACHE_LINE) u32 buf[LOCAL_CAP_MAX];
} local_queue_t;

/* ---- crash-safe bounded MPMC ring (queue.h): inject queue, completion
 * rings, send rings and waitlists, the relay's waiter FIFO.  A cell is one
 * word (seq << 32 | value); enq and deq are hints anyone may advance. */
typedef struct {
    u64 enq;
    _Alignas(CACHE_LINE) u64 deq;
    _Alignas(CACHE_LINE) u64 cells[];
} ring_t;

/* ---- client entry -------------------------------------------------------
 * Clients submit from outside the pool (the coordinator is client 0;
 * shmrt.connect() claims a free entry by CAS on pid). Completed tasks of a
 * client are pushed on its completion ring. */
typedef struct {
    u64 pid;   /* 0 = free; claimed by CAS */
    u64 start;
    u64 submitted;
    u64 harvested;
    u64 ring_ready;  /* the ring was initialised (at first claim; never again) */
    u64 busy;        /* protocol sections the client's threads are inside (section.h) */
    u64 units;       /* relay budget units acquired and not yet given to a packet */
    _Alignas(CACHE_LINE) u64 seq;      /* futex word, bumped per completion */
    u64 sleeping;                      /* a thread waits on seq: wake it */
    u64 spinning;                      /* threads polling the ring: no wake needed */
    _Alignas(CACHE_LINE) u64 ring[];   /* a ring_t (Vyukov) starts here */
} client_t;

/* ---- function table entry --------------------------------------------- */
enum { FN_EMPTY = 0, FN_WRITING = 1, FN_READY = 2 };
typedef struct {
    u64 state;
    u64 blob; /* arena offset of the block holding the pickled callable */
    u64 len;
    u64 hash;
} func_t;

/* ---- task slot ----------------------------------------------------------
 * Hot line: state word and what a worker needs to run it.  Cold line:
 * timestamps and lineage.  Payload follows (args, then the result). */
typedef struct {
    /* line 0 (hot) */
    u64 state;    /* see state.h: flags low, refcount from bit 6 */
    u64 next;     /* free-list link (index + 1) */
    u64 fn_id;
    u64 holder;   /* who holds the join handle: client id, or HOLDER_WORKER|wid */
    u64 owner;    /* (pid << 32) | (worker id + 1) while running, else 0 */
    u64 flags;    /* SLOT_F_* */
    u64 args_len;
    u64 result;   /* (status << 32) | inline result length */
    /* line 1 (cold) */
    u64 submitted_ns;
    u64 started_ns;
    u64 finished_ns;
    u64 attempts; /* (max_retries << 32) | attempts so far */
    u64 parent;   /* parent slot index + 1 (spawn trees) */
    u64 gen;      /* allocation generation: (gen << 32) | index is a task key */
    u64 args_blob;   /* arena offset of the args block (SLOT_F_ARGS_BLOB) */
    u64 result_blob; /* arena offset of the result block (SLOT_F_RESULT_BLOB) */
    /* line 2 (relay) */
    u64 flow;
    u64 seq;
    u64 kind; /* 0 task, 1 relay packet */
    u64 limit_ns; /* time limit of one attempt (0: none); kill.c */
    u64 _reserved[4];
} slot_t;

#define HOLDER_WORKER 0x10000ULL
#define SLOT_F_ARGS_BLOB 1ULL   /* the slot owns a ref on args_blob */
#define SLOT_F_RESULT_BLOB 2ULL /* the slot owns a ref on result_blob */
#define SLOT_F_SENDING 4ULL     /* a send worker is handing this packet to the sink */
#define SLOT_F_KILL_TIMEOUT 8ULL /* over its time limit: its worker is being killed (kill.c) */
#define SLOT_F_KILL_CANCEL 16ULL /* force-cancelled while running: likewise */
/* finish wrote an inline result over the inline args (slots.c
 * complete_slot): a dead worker's task with this flag cannot be re-run
 * (supervisor.py fails it with WorkerCrashed).  Args in a block survive
 * until COMPLETE, so their task can be. */
#define SLOT_F_ARGS_GONE 32ULL

enum { ST_NONE = 0, ST_OK = 1, ST_ERROR = 2, ST_CRASHED = 3, ST_CANCELLED = 4, ST_FILTERED = 5,
       ST_TIMEOUT = 6 };

/* ---- relay region (relay.c) ---------------------------------------------
 *   relay_t        budget semaphore, waiter FIFO (ring of tokens), counters
 *   waiter_t[W]    one entry per blocked client send(): its own futex word
 *   send_t[M]      per send worker: bounded ring of finished packets, the
 *                  waitlist of slots that found it full, counters
 */
enum { WT_FREE = 0, WT_WAITING = 1, WT_WOKEN = 2, WT_CANCELLED = 3 };
#define WT_MASK 0xffULL /* waiter_t.state: (gen << 8) | WT_* */

typedef struct {
    u64 avail;       /* units of budget free right now */
    u64 capacity;
    u64 done_seq;    /* futex word: bumped when packets are done (flush) */
    u64 flushing;
    _Alignas(CACHE_LINE) u64 registrations; /* waiter counters */
    u64 wakes;
    u64 spurious;
    u64 pending_with_capacity; /* a waiter's safety timeout found units free: must stay 0 */
    u64 passed_on;   /* a woken waiter that no longer wanted the unit passed it on */
    u64 fast;        /* acquired without waiting */
    u64 full;        /* send_nowait refusals */
    u64 timeouts;
    u64 recheck;     /* the re-check after registering found a unit */
    u64 withdrawn;   /* registrations withdrawn at the end of a wait slice (the
                      * acquire goes on with a new one, or gives up: timeouts) */
    _Alignas(CACHE_LINE) u64 fifo[]; /* ring_t of tokens (entry << 19 | gen, relay.c) */
} relay_t;

typedef struct {
    u64 state;  /* (gen << 8) | WT_*: low 32 bits are the futex word */
    u64 pid;    /* 0 = free, claimed by CAS */
    u64 _pad[6];
} waiter_t;

typedef struct {
    u64 seq;        /* futex word of the send worker */
    u64 sleeping;
    u64 pid;
    u64 backlog;    /* reorder buffer size, published by the send worker */
    u64 busy;       /* protocol sections the send worker is inside (section.h) */
    u64 start;      /* its process start time (pid-reuse proof) */
    _Alignas(CACHE_LINE) u64 pushed;
    u64 popped;
    u64 registrations; /* slots parked on the waitlist (ring full) */
    u64 wakes;         /* slots moved from the waitlist into the ring */
    u64 pending_with_capacity; /* waitlist non-empty while ring had room, seen by the consumer */
    u64 sent;
    u64 filtered;
    u64 errors;
    u64 crashed;
    u64 in_doubt;   /* packets a send worker died while handing to the sink (reclaim.c) */
    /* on send worker 0's entry only: the UDP ingress (udp.c) and the relay */
    u64 rx_received;     /* datagrams the UDP ingress received */
    u64 rx_kernel_drops; /* kernel receive-queue drops at its socket (SO_RXQ_OVFL) */
    u64 rx_no_space;     /* datagrams dropped: arena exhausted for a large one */
    u64 relay_fn;        /* the relay's transform fn id + 1 (named relays connect by it) */
    u64 _ctr[2];
    _Alignas(CACHE_LINE) u64 rings[]; /* ring_t (send_cap), then ring_t (inject_cap) */
} send_t;

#define HOLDER_RELAY 0x20000ULL
/* slot.owner of a finished packet a send worker took off its ring and holds
 * (reorder buffer, sink): (pid << 32) | OWNER_SENDER | send worker id.  A
 * running task's owner is (pid << 32) | (worker id + 1), below this bit. */
#define OWNER_SENDER 0x10000ULL

/* ---- arena block header ----------------------------------------------- */
typedef struct {
    u64 magic_class; /* (BLOCK_MAGIC << 32) | class */
    u64 refs;        /* holders: slots, function entries, process records (holds.h) */
    u64 len;
    u64 next; /* free-stack link: (block offset / 64) + 1 */
    u64 recount; /* the crash reclaim's scratch count (holds.h), world stopped */
    u64 _reserved[3];
} block_t;

/* ---- hold table (holds.h) ----------------------------------------------
 * One per process record (workers, then clients, then send workers): the
 * arena blocks the process holds a reference on (views, payloads encoded but
 * not yet in a slot).  Written only by its owner, inside protocol sections;
 * read by the crash reclaim with the world stopped. */
#define HOLD_CAP 1016
typedef struct {
    u64 carving; /* write-ahead of a carve: (offset / 64 + 1) << 8 | class, 0 = none */
    u64 used;    /* entries [0, used) may be non-zero (high-water mark) */
    u64 count;   /* entries non-zero (blocks held) */
    u64 refused; /* holds refused because the table was full (counter) */
    u64 _pad[4];
    u64 e[HOLD_CAP]; /* (local count << HOLD_COUNT_SHIFT) | (offset / 64 + 1); 0 = empty */
} holds_t;
#define HOLD_COUNT_SHIFT 40
#define HOLD_OFF_MASK ((1ULL << HOLD_COUNT_SHIFT) - 1)

/* ---- private, validated copy of the configuration ---------------------- */
typedef struct {
    char *base;
    u64 size;
    int writable;
    u64 n_workers, n_slots, slot_size, local_cap, inject_cap, n_clients;
    u64 n_funcs, arena_size, max_payload;
    u64 workers_off, queues_off, inject_off, clients_off, funcs_off, slots_off,
        arena_off, holds_off;
    u64 client_stride;
    u64 n_send, send_cap, n_waiters, inflight, relay_off, send_stride, relay_hdr;
} layout_t;

static inline u64 pow2_at_least(u64 v) {
    u64 c = 1;
    while (c < v) c <<= 1;
    return c;
}
/* token FIFO capacity: room for stale (cancelled) tokens too */
static inline u64 fifo_cap(u64 n_waiters) { return pow2_at_least(n_waiters * 4 + 4); }
static inline ring_t *client_ring(client_t *c) { return (ring_t *)(void *)c->ring; }
static inline u64 ring_bytes(u64 cap) { return sizeof(ring_t) + cap * sizeof(u64); }
static inline u64 client_stride(u64 cap) {
    u64 s = offsetof(client_t, ring) + ring_bytes(cap);
    return (s + CACHE_LINE - 1) & ~(u64)(CACHE_LINE - 1);
}

#endif
