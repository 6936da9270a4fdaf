"""shmrt on a Ray cluster: one shmrt runtime per Ray node.

``shmrt.Pool(backend="ray", ...)`` returns a ``RayPool``
(shmrt.cluster.ray_pool), the same ``concurrent.futures.Executor`` over a
node actor per Ray node (shmrt.cluster.node), each owning a local shmrt
runtime; the driver deals batches to the nodes and steals between them
(shmrt.cluster.stealing); payloads cross Ray's object store between nodes
and the node's arena inside it (shmrt.cluster.payload).  Ray is an optional
extra (``pip install 'shmrt[ray]'``); this package imports it only when a
``RayPool`` is made, so that node workers (which import
``shmrt.cluster.workermain``) stay light.  Architecture, policy and failure
semantics: docs/cluster.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import NodeCrashed
    from .ray_pool import RayPool
    from .stealing import StealPolicy

__all__ = ["NodeCrashed", "RayPool", "StealPolicy"]

_LAZY = {"RayPool": ".ray_pool", "NodeCrashed": ".errors", "StealPolicy": ".stealing"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'shmrt.cluster' has no attribute {name!r}")
    import importlib

    if name == "RayPool":
        from .ray_pool import import_ray

        import_ray()  # the clear ImportError first
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
