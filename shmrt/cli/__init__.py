"""The ``shmrt`` command line, one module per concern.

Commands (``shmrt COMMAND --help`` for details):

* ``shmrt start NAME`` -- run a named runtime in the foreground until Ctrl-C,
  SIGTERM or ``shmrt stop NAME``; ``shmrt stop NAME``; ``shmrt submit NAME
  MOD:FUNC [ARG ...]`` -- run one task, print its result (``run``);
* ``shmrt ls``, ``shmrt stats NAME``, ``shmrt prune`` -- read-only views of
  the current user's runtimes, and the removal of provably stale ones
  (``listing``);
* ``shmrt inspect``, ``shmrt demo``, ``shmrt bench`` -- tools imported only
  when their command runs (``hooks``);
* ``shmrt relay`` -- a UDP relay (``relay``).

Dependencies point down: the command modules use ``common`` (argument types,
read-only segment access, signals, the one-line error convention) and
register on the group in ``app``; this module only imports them.  Everything
that reads a segment maps it read-only (``ls``, ``stats``, ``stop``,
``prune``); only ``submit`` attaches as a client.  Errors a user can cause
are one line (``click.ClickException``), never a traceback.
"""

from __future__ import annotations

from . import hooks, listing, relay, run  # noqa: F401 - the commands register on main
from .app import main
from .common import Size, coordinator_status, runtime_info
from .run import _parse_arg

__all__ = ["main", "Size", "coordinator_status", "runtime_info", "_parse_arg"]
