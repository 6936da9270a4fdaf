"""The segment layout as Python reads it: typed records over the C core's exports.

Why one module: everything that reads a segment from Python (statistics,
the CLI, the pool's supervisor, the inspector, the tests) needs the same
facts -- where each field of each struct sits, how big each struct is, the
names of the states, how packed words (the idle word, a slot's state and
result, an owner or holder) decode -- and the C structs in
``shmrt/_core/layout.h`` are their only source.  The C core exports them
(``HEADER_FIELDS``, ``WORKER_FIELDS``, ..., ``compute_layout``,
``ARENA_CLASS_SIZES``, the constants); this module turns them into typed
readers, and nothing else in Python restates an offset, a size, a mask or a
state name.  tests/test_layout.py checks that every ``#define`` and enum of
layout.h and state.h is exported and that every exported field is a field of
a record here, so a field added in C cannot be forgotten.

A record is read through a *load* function (``offset -> u64``): a live
segment's ``Segment.load64`` (acquire loads), or :func:`bytes_loader` over an
image of a segment (the inspector, which never maps a segment writable), which
checks every read against the image and raises :class:`LayoutError`.  All
values read are untrusted: readers decode, callers validate before indexing.
"""

from .geometry import (
    CONFIG_DEFAULTS,
    Config,
    Layout,
    View,
    fifo_cap,
    header_word,
    ring_bytes,
    stale_header,
)
from .records import (
    CONFIG_KEYS,
    FN_STATES,
    LIVE_WORKER_STATES,
    M64,
    RECORDS,
    RUN_STATES,
    SLOT_FLAG_NAMES,
    SLOT_KINDS,
    STATUS_NAMES,
    U32,
    WAITER_STATE_MASK,
    WAITER_STATES,
    WID_MASK,
    WORKER_COUNTERS,
    WORKER_STATES,
    Block,
    Buffer,
    Client,
    Func,
    Header,
    Holds,
    LayoutError,
    Load,
    LocalQueue,
    Record,
    Relay,
    Ring,
    Send,
    Slot,
    Waiter,
    Worker,
    bytes_loader,
    holder_worker,
    idle_counts,
    owner_of,
    read_u64,
    result_status,
    run_state_name,
    slot_flag_names,
    slot_flags,
    slot_refs,
    task_key,
    worker_state_name,
)

__all__ = [
    "CONFIG_DEFAULTS", "CONFIG_KEYS", "FN_STATES", "LIVE_WORKER_STATES", "M64", "RECORDS",
    "RUN_STATES", "SLOT_FLAG_NAMES", "SLOT_KINDS", "STATUS_NAMES", "U32", "WAITER_STATE_MASK",
    "WAITER_STATES", "WID_MASK", "WORKER_COUNTERS", "WORKER_STATES", "Block", "Buffer", "Client", "Holds",
    "Config", "Func", "Header", "Layout", "LayoutError", "Load", "LocalQueue", "Record", "Relay",
    "Ring", "Send", "Slot", "View", "Waiter", "Worker", "bytes_loader", "fifo_cap",
    "header_word", "holder_worker", "idle_counts", "owner_of", "read_u64", "result_status",
    "ring_bytes", "run_state_name", "slot_flag_names", "slot_flags", "slot_refs",
    "stale_header", "task_key", "worker_state_name",
]
