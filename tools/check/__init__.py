"""shmrt's model checker: Loom for processes (docs/checking.md).

``python -m shmrt.tools.check`` builds the C core's protocol headers with
``-DSHMRT_CHECKED`` into a small explorer (``harness/``) that runs 2-3 logical
threads over a segment-shaped block and enumerates their schedules up to a
preemption bound, optionally killing a thread at any access; and builds
``queue.h`` against relacy's C++11 memory model (``relacy/``) for what a
sequentially consistent exploration cannot see.
"""
