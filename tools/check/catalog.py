"""What the checker knows: scenarios and mutants.

A *scenario* is one protocol driven by 2-3 logical threads (a ``p_*.c`` file
in harness/, or a relacy test in relacy/).  A *mutant* is a known bug put
back behind a ``-DSHMRT_MUTANT_*`` flag (in the C core's header, or in the
harness for the checker's transcriptions): the checker must find it.  Seven
of them are real bugs the checker found in the core, fixed since
(docs/checking.md has their counterexamples).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "sc": the explorer (harness/), "weak": relacy (relacy/)
    about: str
    ci_bound: int  # preemption bound CI uses
    ci_crash_bound: int  # preemption bound CI uses with one crash (-1: none)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("state", "sc", "task state word transitions and reference count (state.h)", 3, 2),
    Scenario("ring", "sc", "crash-safe MPMC ring: one-CAS push/pop, enq/deq hints (queue.h)", 3, 2),
    Scenario("localq", "sc", "local queue push/pop/steal-half/overflow, stealable LIFO (runq.h)", 3, 2),
    Scenario("freelist", "sc", "slot free list and arena free stacks, ABA tag (freestack.h)", 3, 2),
    Scenario("park", "sc", "idle word, park/notify, last-searcher re-check (park.h)", 2, 1),
    Scenario("join", "sc", "join waker: set_join_waker, completer wake, joiner park (park.h)", 3, 1),
    Scenario("client", "sc", "client completion wake, spin, wait, harvester close (wake.h)", 3, 2),
    Scenario("budget", "sc", "relay budget: waiter FIFO, re-check, pass-on (budget.h)", 3, 2),
    Scenario("sendq", "sc", "relay send ring + waitlist, send worker wait, per-flow order (sendq.h)", 3, 2),
    Scenario("holds", "sc", "arena block holds per process and the reclaim's recount (holds.h)", 2, 1),
    Scenario("weak-ring", "weak", "queue.h ring publication under C++11 weak memory (relacy)", 3, -1),
    Scenario("weak-localq", "weak", "queue.h local queue publication under weak memory (relacy)", 3, -1),
)

SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


def scenario(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(f"unknown protocol {name!r} (one of: {', '.join(SCENARIO_NAMES)})")


@dataclass(frozen=True)
class Mutant:
    name: str
    define: str
    scenario: str
    bound: int  # preemption bound at which CI asks for it to be caught
    crashes: int
    about: str


MUTANTS: tuple[Mutant, ...] = (
    Mutant("iroh-check-then-register", "SHMRT_MUTANT_IROH_CHECK_THEN_REGISTER", "budget", 2, 0,
           "relay budget checks capacity, then registers, with no re-check (iroh #3067)"),
    Mutant("shared-waiter-slot", "SHMRT_MUTANT_SHARED_WAITER_SLOT", "budget", 2, 0,
           "one shared waiter entry instead of one per waiter (iroh #3067)"),
    Mutant("join-no-recheck", "SHMRT_MUTANT_JOIN_NO_RECHECK", "join", 2, 0,
           "joiner reads park_seq after registering its waker, no COMPLETE re-check (4354918)"),
    Mutant("join-keeps-search", "SHMRT_MUTANT_JOIN_KEEPS_SEARCH", "join", 2, 0,
           "a returning join keeps the searching slot it got by a notify (4354918)"),
    Mutant("harvest-seq-late", "SHMRT_MUTANT_HARVEST_SEQ_LATE", "client", 2, 0,
           "harvester reads the futex seq after its closed check, missing close()'s wake (4354918)"),
    Mutant("no-aba-tag", "SHMRT_MUTANT_NO_ABA_TAG", "freelist", 2, 0,
           "free stacks without the ABA tag in the head"),
    Mutant("recount-keeps-dead", "SHMRT_MUTANT_RECOUNT_KEEPS_DEAD", "holds", 0, 1,
           "the arena recount counts a dead process's hold table as if it were alive"),
    Mutant("relaxed-tail", "SHMRT_MUTANT_RELAXED_TAIL", "weak-localq", 2, 0,
           "the release store of the local queue's tail (lq_push) made relaxed"),
    Mutant("reclaim-unclaim", "SHMRT_MUTANT_RECLAIM_UNCLAIM", "localq", 1, 1,
           "reclaim un-claims a dead thief's batch (head = (steal, steal)) as its first draft did"),
    Mutant("reclaim-worker-dead", "SHMRT_MUTANT_RECLAIM_WORKER_DEAD", "park", 1, 1,
           "reclaim fixes the idle word from the state a worker died in (admin.c worker_dead)"),
    Mutant("ring-stale-enq", "SHMRT_MUTANT_RING_STALE_ENQ", "ring", 1, 0,
           "ring push takes a consumed cell for a stale enq and reports the ring full: "
           "real bug 1 found by the checker, fixed in 96f42e4"),
    Mutant("park-seq-late", "SHMRT_MUTANT_PARK_SEQ_LATE", "park", 2, 0,
           "parker reads park_seq after storing PARKED, a notify in between is lost: "
           "real bug 2 found by the checker, fixed in 44178b1"),
    Mutant("last-searcher-silent", "SHMRT_MUTANT_LAST_SEARCHER_SILENT", "join", 1, 0,
           "last searcher leaves park for its joined child without notifying for inject work: "
           "real bug 3 found by the checker, fixed in 44178b1"),
    Mutant("budget-give-back", "SHMRT_MUTANT_BUDGET_GIVE_BACK", "budget", 3, 0,
           "relay release gives its unit back after an empty pop and returns, a waiter sleeps: "
           "real bug 4 found by the checker, fixed in 44178b1"),
    Mutant("handle-keeps-interest", "SHMRT_MUTANT_HANDLE_KEEPS_INTEREST", "state", 1, 1,
           "harvest / join_poll / relay_done drop the handle but leave JOIN_INTEREST set, and the "
           "reclaim counts the handle again: real bug 5 found by the checker, fixed in 98a68b7"),
    Mutant("reclaim-lost-token", "SHMRT_MUTANT_RECLAIM_LOST_TOKEN", "budget", 1, 1,
           "reclaim hands the free budget out through the waiter FIFO without the token a dead "
           "releaser popped, a waiter sleeps: real bug 6 found by the checker, fixed in ecf7ed4"),
    Mutant("reclaim-one-lap", "SHMRT_MUTANT_RECLAIM_ONE_LAP", "sendq", 1, 1,
           "reclaim walks a ring one lap from a deq left behind by a dead consumer and delivers "
           "the newest value again: real bug 7 found by the checker, fixed in ceac0a2"),
)

MUTANT_NAMES = tuple(m.name for m in MUTANTS)


def mutant(name: str) -> Mutant:
    for m in MUTANTS:
        if m.name == name:
            return m
    raise KeyError(f"unknown mutant {name!r} (one of: {', '.join(MUTANT_NAMES)})")

