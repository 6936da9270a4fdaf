/*
 * explore.c -- a stateless model checker for shmrt's shared-memory protocols
 * (Loom / CHESS for processes).
 *
 * What runs: a scenario's 2-3 logical threads, each a ucontext coroutine on
 * this one OS thread, calling the real protocol code of shmrt/_core compiled
 * with -DSHMRT_CHECKED.  In that build every macro of atomics.h first calls
 * shc_point(): the thread stops just before its access and the scheduler
 * here decides who makes the next access.  Memory is one block laid out with
 * the real layout.h structs (chk_layout), capacities as small as Loom's.
 *
 * Schedules: a run is a sequence of choices, one per scheduling point that
 * has more than one option.  A choice frame records the options (runnable
 * threads, plus "kill the running thread" when crashes are explored), the
 * one taken, those already tried, and the preemptions and crashes used
 * before it.  The first run takes the default everywhere (keep running the
 * current thread; when it blocks or ends, the lowest runnable one).  After
 * each run, backtracking finds the deepest frame with an untried option
 * within the bounds, and the next run replays the prefix up to that frame
 * and takes the new option there (replay from the start: no state is saved,
 * so the protocols run unmodified).  This enumerates every schedule with at
 * most P preemptions (switching away from a thread that could go on) and at
 * most C crashes; switches forced by blocking or ending are free, as in
 * CHESS's iterative context bounding.
 *
 * Futex model (futex.h): futex_wait blocks only if the word still holds the
 * expected value; futex_wake wakes threads blocked at that moment, and a
 * wake with nobody blocked is lost.  When no thread can run and some are
 * blocked, the scenario's should_wake() is asked for each sleeper: a
 * sleeper whose wake condition holds is a lost wakeup (a counterexample).
 * Otherwise one sleeper's timeout fires (each thread has a small budget of
 * modelled timeouts), or the run ends with those threads still asleep.
 *
 * Crashes: a killed thread never runs again (its coroutine is dropped);
 * after the survivors finish or sleep, the scenario's reclaim runs
 * single-threaded -- the real crash reclaim (reclaim.h) on the block, as the
 * coordinator runs it once the world is stopped, and what pool.py does with
 * its result -- then every sleeper is woken, the survivors finish, and the
 * invariants are checked.
 *
 * Output: one `RESULT` line per protocol (schedules explored, bound,
 * verdict); on a violation the counterexample schedule, compressed to the
 * accesses each thread made between switches, and the choice string that
 * replays it (--replay).
 */
#define _GNU_SOURCE
#include "explore.h"
#include "holds.h"
#include "park.h"
#include "queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define STACK_SIZE (256 * 1024)
#define MAX_FRAMES 65536
#define KILL CHK_MAX_THREADS /* the option "kill the running thread" */

enum { T_RUNNABLE, T_BLOCKED, T_DONE, T_DEAD };

typedef struct {
    ucontext_t ctx;
    char *stack;
    int status;
    u64 *fword;      /* futex word while blocked */
    int woken;       /* 1 woken, 0 timed out */
    int timeouts_left;
} lthread_t;

typedef struct {
    unsigned enabled; /* option bits: threads, KILL */
    unsigned tried;
    unsigned char chosen, cur, pre, crashes;
} frame_t;

typedef struct {
    unsigned char tid, op;
    unsigned short line;
    const char *file;
    const void *addr;
} step_t;

typedef struct {
    const char *p;
    size_t n;
    const char *name;
} range_t;

layout_t chk_L;
static char *block;
static size_t block_size;
static const chk_proto_t *P;
static lthread_t th[CHK_MAX_THREADS];
static ucontext_t main_ctx;
static int cur = -1;
static frame_t frames[MAX_FRAMES];
static int nframes, replay_len;
static int pre_used, crashes_used;
static int opt_pre = 2, opt_crashes = 0, opt_verbose = 0;
static long opt_max_steps = 20000;
static unsigned long long opt_seed = 0;
static step_t *trace;
static long nsteps;
static int failed;
static char fail_msg[1024];
static range_t quiet[64], names[64];
static int nquiet, nnames;
static unsigned dead_mask;
static int atomic_depth; /* chk_atomic: no scheduling points */
static int post_reclaim; /* the survivors run again after the reclaim */
static u64 time_warp; /* logical ns added while a lone thread spins */
static int alone_spins;

/* ---- block layout (mirrors segment.c cfg_layout, small capacities) ------- */
static u64 align_up(u64 v, u64 a) { return (v + a - 1) & ~(a - 1); }

void chk_layout(const chk_cfg_t *c) {
    layout_t *L = &chk_L;
    memset(L, 0, sizeof *L);
    u64 cap = pow2_at_least(c->n_slots);
    L->n_workers = c->n_workers;
    L->n_slots = c->n_slots;
    L->slot_size = 256;
    L->local_cap = c->local_cap;
    L->inject_cap = cap < 2 ? 2 : cap;
    L->n_clients = c->n_clients;
    L->n_funcs = 1;
    /* whole pages, like cfg_check wants; class-0 blocks (holds.h) */
    L->arena_size = align_up(c->arena_blocks * arena_class_bytes(0), ARENA_MIN_BLOCK);
    L->client_stride = client_stride(L->inject_cap);
    u64 off = HEADER_SIZE;
    L->workers_off = off;
    off = align_up(off + c->n_workers * sizeof(worker_t), CACHE_LINE);
    L->queues_off = off;
    off = align_up(off + c->n_workers * sizeof(local_queue_t), CACHE_LINE);
    L->inject_off = off;
    off = align_up(off + ring_bytes(L->inject_cap), CACHE_LINE);
    L->clients_off = off;
    off = align_up(off + c->n_clients * L->client_stride, CACHE_LINE);
    L->funcs_off = off;
    off = align_up(off + sizeof(func_t), CACHE_LINE);
    L->holds_off = off;
    off = align_up(off + (c->n_workers + c->n_clients + c->n_send) * sizeof(holds_t), CACHE_LINE);
    L->n_send = c->n_send;
    L->send_cap = c->n_send ? c->send_cap : 0;
    L->n_waiters = c->n_send ? c->n_waiters : 0;
    L->inflight = c->n_send ? c->inflight : 0;
    L->relay_off = off;
    L->relay_hdr = c->n_send ? align_up(sizeof(relay_t) + ring_bytes(fifo_cap(c->n_waiters)), CACHE_LINE) : 0;
    L->send_stride = c->n_send ? align_up(sizeof(send_t) + align_up(ring_bytes(c->send_cap), CACHE_LINE) + ring_bytes(L->inject_cap), CACHE_LINE) : 0;
    if (c->n_send) off += L->relay_hdr + c->n_waiters * sizeof(waiter_t) + c->n_send * L->send_stride;
    off = align_up(off, 4096);
    L->slots_off = off;
    off = align_up(off + c->n_slots * L->slot_size, 4096);
    L->arena_off = off;
    off += L->arena_size;
    if (off > block_size) {
        fprintf(stderr, "block too small (%llu)\n", (unsigned long long)off);
        exit(2);
    }
    L->size = off;
    L->base = block;
    L->writable = 1;
    lay_hdr(L)->n_workers = c->n_workers;
    lay_hdr(L)->run_state = RUN_RUNNING;
    /* a valid empty segment (sched_init_structures, relay_init, registered
     * workers, claimed clients): what the crash reclaim validates */
    lay_hdr(L)->idle = c->n_workers * IDLE_UNPARK_ONE;
    lay_hdr(L)->free_count = c->n_slots;
    ring_init(lay_inject(L), L->inject_cap);
    for (u64 i = 0; i < c->n_workers; i++) {
        lay_worker(L, i)->pid = CHK_PID_WORKER(i);
        lay_worker(L, i)->state = W_RUNNING;
    }
    for (u64 i = 0; i < c->n_clients; i++) {
        client_t *cl = lay_client(L, i);
        cl->pid = CHK_PID_CLIENT(i);
        cl->ring_ready = 1;
        ring_init(client_ring(cl), L->inject_cap);
    }
    relay_t *r = lay_relay(L);
    if (r) {
        r->avail = r->capacity = L->inflight;
        ring_init(lay_fifo(r), fifo_cap(L->n_waiters));
        for (u64 i = 0; i < L->n_send; i++) {
            send_t *t = lay_send(L, i);
            t->pid = CHK_PID_SENDER(i);
            ring_init(lay_send_ring(t), L->send_cap);
            ring_init(lay_waitlist(L, t), L->inject_cap);
        }
    }
    /* counters and statistics are never scheduling points */
    header_t *h = lay_hdr(L);
    chk_quiet(&h->submitted, 4 * sizeof(u64));
    for (u64 i = 0; i < c->n_workers; i++) chk_quiet(&lay_worker(L, i)->tasks_run, 16 * sizeof(u64));
}

void chk_quiet(const void *p, size_t n) {
    if (nquiet < 64) quiet[nquiet++] = (range_t){(const char *)p, n, NULL};
}
void chk_name(const void *p, size_t n, const char *name) {
    if (nnames < 64) names[nnames++] = (range_t){(const char *)p, n, name};
}

static int is_quiet(const void *a) {
    for (int i = 0; i < nquiet; i++)
        if ((const char *)a >= quiet[i].p && (const char *)a < quiet[i].p + quiet[i].n) return 1;
    return 0;
}

static void addr_name(const void *a, char *buf, size_t n) {
    for (int i = nnames - 1; i >= 0; i--)
        if ((const char *)a >= names[i].p && (const char *)a < names[i].p + names[i].n) {
            long off = (const char *)a - names[i].p;
            if (off) snprintf(buf, n, "%s+%ld", names[i].name, off);
            else snprintf(buf, n, "%s", names[i].name);
            return;
        }
    if (a && (const char *)a >= block && (const char *)a < block + block_size)
        snprintf(buf, n, "@%ld", (long)((const char *)a - block));
    else
        snprintf(buf, n, "-");
}

/* ---- choices ------------------------------------------------------------- */
static unsigned runnable_mask(void) {
    unsigned m = 0;
    for (int t = 0; t < P->n_threads; t++)
        if (th[t].status == T_RUNNABLE) m |= 1u << t;
    return m;
}

/* The cost of taking option o at frame f: 1 if it is a preemption. */
static int is_preemption(const frame_t *f, int o) {
    return o != KILL && f->cur < CHK_MAX_THREADS && (f->enabled & (1u << f->cur)) && o != f->cur;
}

static int lowest(unsigned m) { return __builtin_ctz(m); }

/* Decide who goes next.  can_kill: the running thread may be killed here. */
static int choose(int can_kill) {
    unsigned en = runnable_mask();
    if (can_kill && opt_crashes && cur >= 0 && th[cur].status == T_RUNNABLE &&
        crashes_used < opt_crashes)
        en |= 1u << KILL;
    if (!en) return -1;
    int chosen;
    if (__builtin_popcount(en) == 1) {
        chosen = lowest(en); /* no choice: no frame */
    } else {
        if (nframes >= MAX_FRAMES) {
            chk_fail("more than %d choice points in one schedule", MAX_FRAMES);
            return -1;
        }
        frame_t *f = &frames[nframes];
        if (nframes < replay_len) {
            chosen = f->chosen;
            if (f->enabled == 0) /* a --replay string: the frame is filled as we go */
                *f = (frame_t){en, 1u << chosen, (unsigned char)chosen,
                               (unsigned char)(cur < 0 ? 255 : cur), (unsigned char)pre_used,
                               (unsigned char)crashes_used};
            if (!(en & (1u << chosen)) || f->enabled != en) {
                chk_fail("nondeterministic replay at choice %d", nframes);
                return -1;
            }
        } else {
            int dflt = (cur >= 0 && (en & (1u << cur))) ? cur : lowest(en & ~(1u << KILL));
            *f = (frame_t){en, 1u << dflt, (unsigned char)dflt,
                           (unsigned char)(cur < 0 ? 255 : cur), (unsigned char)pre_used,
                           (unsigned char)crashes_used};
            chosen = dflt;
        }
        if (is_preemption(f, chosen)) pre_used++;
        if (chosen == KILL) crashes_used++;
        nframes++;
    }
    return chosen;
}

/* After a run: the next prefix, or 0 when everything within the bounds is done. */
static int backtrack(void) {
    for (int d = nframes - 1; d >= 0; d--) {
        frame_t *f = &frames[d];
        unsigned left = f->enabled & ~f->tried;
        int n = __builtin_popcount(f->enabled);
        int rot = opt_seed ? (int)((opt_seed * 2654435761u + (unsigned)d * 40503u) % (unsigned)n) : 0;
        for (int k = 0; k <= KILL; k++) {
            int o = (k + rot) % (KILL + 1);
            if (!(left & (1u << o))) continue;
            if (is_preemption(f, o) && f->pre + 1 > opt_pre) continue;
            if (o == KILL && f->crashes + 1 > opt_crashes) continue;
            f->tried |= 1u << o;
            f->chosen = (unsigned char)o;
            replay_len = nframes = d + 1;
            return 1;
        }
    }
    return 0;
}

/* ---- switching ----------------------------------------------------------- */
static void switch_to(int next) {
    int prev = cur;
    cur = next;
    if (prev == next) return;
    if (next < 0) {
        swapcontext(&th[prev].ctx, &main_ctx);
    } else if (prev < 0) {
        swapcontext(&main_ctx, &th[next].ctx);
    } else {
        swapcontext(&th[prev].ctx, &th[next].ctx);
    }
}

/* Something else will run: spinners may find what they wait for. */
static void wake_spinners(void) {
    for (int t = 0; t < P->n_threads; t++)
        if (th[t].status == T_BLOCKED && !th[t].fword) th[t].status = T_RUNNABLE;
}

/* No thread can run: lost wakeups, then a modelled timeout, else the end. */
static int quiescent_next(void) {
    /* with a dead thread, only the reclaim (which wakes every sleeper) can
     * be expected to wake what it would have woken: check after it */
    if (dead_mask && !post_reclaim) return -1;
    for (int t = 0; t < P->n_threads; t++)
        if (th[t].status == T_BLOCKED && P->should_wake && P->should_wake(t)) {
            char nm[64];
            addr_name(th[t].fword, nm, sizeof nm);
            chk_fail("lost wakeup: thread %d sleeps on %s while its wake condition holds", t, nm);
            return -1;
        }
    for (int t = 0; t < P->n_threads; t++)
        if (th[t].status == T_BLOCKED && th[t].fword && th[t].timeouts_left > 0) {
            th[t].timeouts_left--;
            th[t].status = T_RUNNABLE;
            th[t].woken = 0;
            wake_spinners();
            return t;
        }
    return -1;
}

/* The running thread cannot go on (ended, blocked, killed): pick another. */
static void forced_switch(void) {
    int me = cur;
    cur = -2; /* not runnable: no preemption is counted */
    int next = failed ? -1 : choose(0);
    if (next < 0 && !failed) next = quiescent_next();
    cur = me;
    if (next < 0) {
        switch_to(-1); /* end of the run (never returns for a dead thread) */
        return;
    }
    switch_to(next);
}

static void record(int op, const void *addr, const char *file, int line) {
    if (nsteps >= opt_max_steps) return;
    const char *slash = strrchr(file, '/');
    if (opt_verbose) fprintf(stderr, "[%ld] T%d %s:%d op=%d\n", nsteps, cur, file, line, op);
    trace[nsteps++] = (step_t){(unsigned char)cur, (unsigned char)op, (unsigned short)line,
                               slash ? slash + 1 : file, addr};
}

void shc_point(int op, const void *addr, int mo, const char *file, int line) {
    (void)mo;
    if (atomic_depth && cur >= 0 && !failed) return; /* inside chk_atomic */
    if (cur < 0 || failed) {
        if (failed && cur >= 0) switch_to(-1); /* abandon: the run is over */
        return;
    }
    if (addr && is_quiet(addr)) return;
    if (nsteps >= opt_max_steps) {
        chk_fail("more than %ld scheduling points in one schedule (livelock?)", opt_max_steps);
        return;
    }
    int next;
    if (op == SHC_SPIN && !(runnable_mask() & ~(1u << cur)) && ++alone_spins <= 256) {
        /* spinning alone: time passes (a spin with a deadline ends) */
        time_warp += 1000000000ULL;
        record(op, addr, file, line);
        return;
    }
    if (op == SHC_SPIN && !(runnable_mask() & ~(1u << cur))) {
        /* still spinning alone: it would spin forever, so it sleeps like a
         * futex waiter until something else runs */
        th[cur].status = T_BLOCKED;
        th[cur].fword = NULL;
        record(SHC_SPIN + 1, NULL, "spin", 0);
        forced_switch();
        return;
    }
    if (op == SHC_SPIN) { /* a spin: let someone else run (free) */
        int me = cur;
        th[me].status = T_DONE; /* not an option while the others can run */
        cur = -2;
        next = runnable_mask() ? choose(0) : me;
        cur = me;
        th[me].status = T_RUNNABLE;
    } else {
        next = choose(1);
    }
    if (next == KILL) {
        th[cur].status = T_DEAD;
        dead_mask |= 1u << cur;
        record(-1, NULL, "crash", 0);
        forced_switch();
        return; /* unreachable */
    }
    if (next >= 0 && next != cur) switch_to(next);
    if (failed && cur >= 0) switch_to(-1);
    record(op, addr, file, line); /* we run now: the access follows at once */
}

void shc_nap(u64 ns) {
    (void)ns;
    shc_point(SHC_SPIN, NULL, 0, "nap", 0);
}

/* ---- futex model --------------------------------------------------------- */
int futex_wait_u32(u64 *word, u32 expected, double timeout_s) {
    (void)timeout_s;
    shc_point(SHC_LOAD, word, __ATOMIC_SEQ_CST, "futex_wait", 0);
    if (cur < 0) return 1;
    if ((u32)__atomic_load_n(word, __ATOMIC_SEQ_CST) != expected) return 1; /* EAGAIN */
    th[cur].status = T_BLOCKED;
    th[cur].fword = word;
    record(SHC_SPIN + 1, word, "futex_wait:sleep", 0);
    forced_switch();
    th[cur].fword = NULL;
    return th[cur].woken;
}

int futex_wake_u32(u64 *word, int n) {
    shc_point(SHC_RMW, word, __ATOMIC_SEQ_CST, "futex_wake", 0);
    int woke = 0;
    for (int t = 0; t < P->n_threads && woke < n; t++)
        if (th[t].status == T_BLOCKED && th[t].fword == word) {
            th[t].status = T_RUNNABLE;
            th[t].woken = 1;
            woke++;
        }
    return woke;
}

u64 now_ns(void) { return (u64)nsteps * 1000 + time_warp; } /* logical: 1 us a step */

/* ---- for scenarios ------------------------------------------------------- */
void chk_fail(const char *fmt, ...) {
    if (failed) return;
    failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_msg, sizeof fail_msg, fmt, ap);
    va_end(ap);
    if (cur >= 0) switch_to(-1);
}
void chk_atomic(int on) { atomic_depth += on ? 1 : -1; }
void chk_kill(int tid) {
    if (cur >= 0 || tid < 0 || tid >= P->n_threads || th[tid].status == T_DEAD) return;
    th[tid].status = T_DEAD;
    dead_mask |= 1u << tid;
}
int chk_tid(void) { return cur; }
int chk_blocked(int tid) { return th[tid].status == T_BLOCKED; }
int chk_finished(int tid) { return th[tid].status == T_DONE; }

/* ---- runs ---------------------------------------------------------------- */
static void tramp(int tid) {
    P->thread(tid);
    th[tid].status = T_DONE;
    forced_switch();
}

static void run_once(void) {
    memset(block, 0, block_size);
    nquiet = nnames = 0;
    nsteps = 0;
    nframes = 0;
    pre_used = crashes_used = 0;
    dead_mask = 0;
    time_warp = 0;
    alone_spins = 0;
    post_reclaim = 0;
    atomic_depth = 0;
    cur = -1;
    P->setup();
    for (int t = 0; t < P->n_threads; t++) {
        lthread_t *x = &th[t];
        getcontext(&x->ctx);
        x->ctx.uc_stack.ss_sp = x->stack;
        x->ctx.uc_stack.ss_size = STACK_SIZE;
        x->ctx.uc_link = &main_ctx;
        makecontext(&x->ctx, (void (*)(void))tramp, 1, t);
        x->status = T_RUNNABLE;
        x->fword = NULL;
        x->timeouts_left = P->timeouts;
    }
    cur = -1;
    int first = choose(0);
    if (first >= 0) switch_to(first);
    cur = -1;
    if (!failed && dead_mask && P->reclaim) {
        /* the reclaim runs alone, then wakes every sleeper (it bumps every
         * futex word) and the survivors finish */
        P->reclaim(dead_mask);
        post_reclaim = 1;
        for (int t = 0; t < P->n_threads; t++)
            if (th[t].status == T_BLOCKED) {
                th[t].status = T_RUNNABLE;
                th[t].woken = 1;
            }
        if (runnable_mask() && !failed) { /* (the reclaim's own wakes count too) */
            int next = choose(0);
            if (next >= 0) switch_to(next);
            cur = -1;
        }
    }
    if (!failed) P->check(dead_mask);
}

static const char *op_name(int op) {
    static const char *n[] = {"load", "store", "rmw", "fence", "plain-load", "plain-store", "spin",
                              "SLEEP"};
    return op < 0 ? "CRASH" : op <= SHC_SPIN + 1 ? n[op] : "?";
}

static void print_counterexample(void) {
    printf("counterexample (%ld accesses in the order they ran; T<n>: the accesses thread n made "
           "until the next switch):\n", nsteps);
    int last = -1;
    int col = 0;
    for (long i = 0; i < nsteps; i++) {
        step_t *s = &trace[i];
        if (s->tid != last) {
            printf("%s  T%d:", i ? "\n" : "", s->tid);
            last = s->tid;
            col = 6;
        }
        char nm[64], item[160];
        addr_name(s->addr, nm, sizeof nm);
        if (s->op == (unsigned char)-1)
            snprintf(item, sizeof item, " CRASH");
        else
            snprintf(item, sizeof item, " %s:%u %s %s;", s->file, s->line, op_name(s->op), nm);
        if (col + (int)strlen(item) > 110) {
            printf("\n      ");
            col = 6;
        }
        printf("%s", item);
        col += (int)strlen(item);
    }
    printf("\nreplay: ");
    for (int d = 0; d < nframes; d++) printf("%d", frames[d].chosen);
    printf("\n");
}

extern const chk_proto_t *chk_protocols[];

static int explore(const chk_proto_t *p, const char *replay) {
    P = p;
    failed = 0;
    long schedules = 0;
    replay_len = 0;
    if (replay) { /* one run along the given choices */
        replay_len = (int)strlen(replay);
        for (int d = 0; d < replay_len; d++)
            frames[d] = (frame_t){0, 0, (unsigned char)(replay[d] - '0'), 0, 0, 0};
    }
    for (;;) {
        run_once();
        schedules++;
        if (failed) break;
        if (replay || !backtrack()) break;
    }
    printf("RESULT protocol=%s schedules=%ld preemptions=%d crashes=%d verdict=%s\n", p->name,
           schedules, opt_pre, opt_crashes, failed ? "VIOLATION" : "ok");
    if (failed) {
        printf("violation: %s\n", fail_msg);
        print_counterexample();
    }
    fflush(stdout);
    return failed;
}

int main(int argc, char **argv) {
    const char *replay = NULL;
    const char *want[32];
    int nwant = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preemptions") && i + 1 < argc) opt_pre = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--crashes") && i + 1 < argc) opt_crashes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) opt_seed = strtoull(argv[++i], 0, 10);
        else if (!strcmp(argv[i], "--max-steps") && i + 1 < argc) opt_max_steps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--replay") && i + 1 < argc) replay = argv[++i];
        else if (!strcmp(argv[i], "--verbose")) opt_verbose = 1;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (nwant < 32) want[nwant++] = argv[i];
    }
    if (list) {
        for (int k = 0; chk_protocols[k]; k++)
            printf("%s\t%s\n", chk_protocols[k]->name, chk_protocols[k]->about);
        return 0;
    }
    block_size = 1 << 20;
    block = aligned_alloc(4096, block_size);
    trace = calloc((size_t)opt_max_steps + 1, sizeof *trace);
    for (int t = 0; t < CHK_MAX_THREADS; t++) th[t].stack = malloc(STACK_SIZE);
    int bad = 0, ran = 0;
    for (int k = 0; chk_protocols[k]; k++) {
        int sel = nwant == 0;
        for (int i = 0; i < nwant; i++) sel |= !strcmp(want[i], chk_protocols[k]->name);
        if (!sel) continue;
        ran++;
        bad |= explore(chk_protocols[k], replay);
    }
    if (!ran) {
        fprintf(stderr, "no such protocol\n");
        return 2;
    }
    return bad;
}
