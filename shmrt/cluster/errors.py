"""The one error the cluster adds: a whole node (its actor and runtime) died.

Why a subclass of ``WorkerCrashed``: to the task it is the same event --
the process running it died -- and code written for a local pool catches
``WorkerCrashed`` (and retries with ``@shmrt.retry``) unchanged.  It adds
which node, and the reason Ray gave.
"""

from __future__ import annotations

from shmrt.errors import WorkerCrashed


class NodeCrashed(WorkerCrashed):  # type: ignore[misc,valid-type]
    """The node running a task died (its node actor, with its shmrt runtime)
    before the task's result came back, and the task had no retries left.

    ``node`` is the Ray node id, ``runtime`` the node runtime's name, ``pid``
    the node actor's process id, ``attempts`` the runs so far."""

    def __init__(self, node: str, runtime: str, pid: int, attempts: int = 1, reason: str = ""):
        super().__init__(pid, None, None, attempts)
        self.node = node
        self.runtime = runtime
        self.reason = reason
        why = f": {reason}" if reason else ""
        self.args = (f"node {node[:12]} (runtime {runtime!r}, actor pid {pid}) died while "
                     f"running this task (attempt {attempts}){why}",)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):  # keep the fields across pickling
        return (type(self), (self.node, self.runtime, self.pid, self.attempts, self.reason))
