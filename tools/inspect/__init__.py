"""``shmrt inspect``: a read-only inspector for a shmrt runtime's segment.

Why: a work-stealing runtime in shared memory fails in ways a traceback
does not show -- a slot owned by a dead process, a reference that is never
dropped, a task waiting in a queue nobody drains, a coordinator that died
and left its segment behind.  The inspector reads the segment (live, stale,
or a saved snapshot) without ever writing to it or unpickling anything, and
shows the runtime summary, workers, slots, relay rings, latency
percentiles and lints.

Layers: :mod:`.layout` decodes and validates raw bytes (pure Python, one
error type, :class:`InspectError`); :mod:`.source` opens segments and
snapshots and retries torn reads; :mod:`.analyze` builds the
:class:`~.model.Report` and its lints; :mod:`.render` draws rich tables;
:mod:`.cli` holds ``main(argv) -> int``.  See docs/inspect.md.
"""

from __future__ import annotations

from .analyze import LINTS, Options, build_report
from .cli import main
from .layout import InspectError
from .model import SCHEMA_VERSION, Report, schema

__all__ = [
    "LINTS",
    "SCHEMA_VERSION",
    "InspectError",
    "Options",
    "Report",
    "build_report",
    "main",
    "schema",
]
