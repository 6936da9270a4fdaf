"""The ``__main__`` a node runtime's worker processes import.

Why: a shmrt worker is started with the spawn method and imports its
parent's ``__main__`` first, to find the functions a script defines.  The
parent of a node runtime is a Ray worker, whose ``__main__`` is Ray's own
``default_worker.py``: importing it pulls in all of Ray (~0.2 s and ~60 MiB
per worker) for nothing, since the user's functions reach the node by value
or by module name, never through this module.  The node actor points its
``__main__.__spec__`` here instead (shmrt.cluster.node), and this module is
empty on purpose.
"""
