/*
 * p_client.c -- the client completion wake (wake.h: client_deliver,
 * client_spin_core, client_wait_core) with client.py's harvester loop.
 *
 *   T0 completer:  deliver task 0, then task 1, to client 0
 *   T1 harvester:  loop { seq = client_seq; if closed: return; drain the
 *                  ring; if it got nothing: client_wait(seq) }  (client.py)
 *   T2 result():   client_spin (a short poll), then close: closed = 1,
 *                  client_wake
 *
 * Invariants: no lost wakeup (the harvester never sleeps while the ring
 * holds a value or closed is set and nothing else can run); each task is
 * harvested exactly once or still on the ring; the harvester returns.
 * SHMRT_MUTANT_HARVEST_SEQ_LATE: the harvester lets client_wait read seq
 * itself, after its closed check (the shutdown wait fixed in 4354918).
 * The closed flag is Python memory under the GIL: modelled as a SeqCst
 * word so that its check and set are scheduling points too.
 * Tasks 0 and 1 are client 0's, RUNNING on worker 0 (T0); T0 completes each
 * (complete_slot: COMPLETE, deliver, drop its reference; the transition and
 * the drop atomic here, the delivery real), the harvester drops the handle
 * of each it takes (harvest).
 * Crashes: T1 and T2 are threads of one process (client 0): when one dies,
 * so does the other.  The real reclaim (reclaim.h) delivers what a dead
 * completer completed and never delivered, pool.py completes as crashed
 * what it was still running (crash_task, delivered); a dead client's
 * completions are dropped with its handles.
 */
#include "coord.h"
#include "ghost.h"
#include "wake.h"

static ghost_t G;
static u64 closed_flag;
static client_t *C;
static int returned;

static void setup(void) {
    chk_cfg_t c = {.n_workers = 1, .n_slots = 3, .local_cap = 4, .n_clients = 1};
    chk_layout(&c);
    C = lay_client(&chk_L, 0);
    tk_carve(2);
    for (u64 v = 0; v < 2; v++) {
        tk_fill(v, S_RUNNING | S_JOIN_INTEREST | 2 * REF_ONE, 0);
        tk_running_on(v, 0);
    }
    closed_flag = 0;
    returned = 0;
    gh_reset(&G);
    chk_name(&C->seq, 8, "c.seq");
    chk_name(&C->sleeping, 8, "c.sleeping");
    chk_name(&C->spinning, 8, "c.spinning");
    chk_name(client_ring(C)->cells, 8 * chk_L.inject_cap, "c.ring.cell");
    chk_name(&closed_flag, 8, "closed");
}

static int drain(int tid) {
    int n = 0;
    long v;
    while ((v = ring_pop_inl(client_ring(C), chk_L.inject_cap)) >= 0) {
        gh_took(&G, tid, v);
        if (v >= 0 && v < 2) tk_drop_handle((u64)v); /* harvest: the handle's reference */
        n++;
    }
    return n;
}

static void thread(int tid) {
    u64 cap = chk_L.inject_cap;
    if (tid == 0) {
        for (u64 v = 0; v < 2; v++) { /* complete_slot */
            u64 prev = tk_complete(v);
            if (prev & S_JOIN_INTEREST) client_deliver(C, cap, v);
            tk_drop(v);
        }
    } else if (tid == 1) {
        for (int round = 0; round < 12; round++) {
            long long seq = client_seq_read(C); /* before the closed check */
#ifdef SHMRT_MUTANT_HARVEST_SEQ_LATE
            seq = -1;
#endif
            if (LOAD_SEQ(&closed_flag)) {
                returned = 1;
                return;
            }
            if (!drain(tid)) client_wait_core(C, cap, seq, 0.5);
        }
    } else {
        client_spin_core(C, cap, 4000);
        STORE_SEQ(&closed_flag, 1);
        client_wake_all(C);
    }
}

/* T0 is worker 0; T1 and T2 are client 0's threads: one dead, both dead. */
static void reclaim(unsigned dead) {
    if (dead & 6) {
        chk_kill(1);
        chk_kill(2);
    }
    chk_dead_t d = {{0}};
    d.w[0] = dead & 1;
    d.c[0] = (dead & 6) != 0;
    chk_reclaimed_t r;
    chk_reclaim(&d, &r);
    for (u64 i = 0; i < r.n.running; i++) chk_coord_task(&r.running[i], &d); /* pool.py */
}

static int should_wake(int tid) {
    return tid == 1 && (closed_flag || ring_nonempty(client_ring(C), chk_L.inject_cap));
}

static void check(unsigned dead) {
    ghost_t g = G;
    gh_count_took(&g, 3);
    long v;
    while ((v = ring_pop_inl(client_ring(C), chk_L.inject_cap)) >= 0) gh_seen(&g, v, "the ring");
    if (dead & 2) { /* the client process died: its results are moot, never twice */
        for (int v = 0; v < 2; v++) CHK_ASSERT(g.seen[v] <= 1, "task %d harvested twice", v);
    } else {
        gh_exactly_once(&g, 0, 2);
    }
    CHK_ASSERT(returned || !chk_finished(1) || (dead & 2), "harvester ended without seeing closed");
    CHK_ASSERT(C->sleeping == (u64)chk_blocked(1) && C->spinning == 0, "sleeping %llu spinning %llu at the end",
               (unsigned long long)C->sleeping, (unsigned long long)C->spinning);
}

const chk_proto_t chk_proto_client = {
    .name = "client",
    .about = "client completion wake: deliver, spin, wait, harvester close (wake.h, client.py)",
    .n_threads = 3,
    .setup = setup,
    .thread = thread,
    .should_wake = should_wake,
    .reclaim = reclaim,
    .check = check,
};
