"""What multiprocessing's spawn hands a new process, applied in a child of
the process zygote (workers/zygote.py) without importing multiprocessing.

Why: ``multiprocessing.spawn.prepare`` imports multiprocessing (~8 ms here),
on the start-up path of the first pool's workers, for state only code that
uses multiprocessing can see (the process name and authkey, its logging,
``ORIGINAL_DIR``, the start method).  A worker whose user code never imports
multiprocessing never needs it.  So the process-wide part (sys.path,
sys.argv, cwd) is applied now, and the multiprocessing part the moment
multiprocessing is imported -- by the parent's ``__main__``, a task, or the
zygote itself (then at once): an import hook that runs once, before the
importer sees the module.  The same goes for spawn's "bootstrapping" flag
while ``__main__`` is imported (``Bootstrapping``; workers/boot.py imports
the main module the way spawn does, without multiprocessing).

``data`` is ``multiprocessing.spawn.get_preparation_data``'s dict as the
coordinator built it (shmrt.launch.preparation_data: no ``init_main_*``
keys, the authkey as bytes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing's, without importing typing: ~2 ms of a worker's start
if TYPE_CHECKING:
    from typing import Any

#: the keys ``spawn.prepare`` applies to multiprocessing's own state
MP_KEYS = ("name", "authkey", "log_to_stderr", "log_level", "orig_dir", "start_method")


def apply(data: dict[str, Any]) -> None:
    if "sys_path" in data:
        sys.path = list(data["sys_path"])
    if "sys_argv" in data:
        sys.argv = list(data["sys_argv"])
    if "dir" in data:
        os.chdir(data["dir"])
    mp = {k: data[k] for k in MP_KEYS if k in data}
    on_multiprocessing(lambda _m: _apply_mp(mp))


def _apply_mp(mp: dict[str, Any]) -> None:
    from multiprocessing import spawn

    spawn.prepare(mp)


def on_multiprocessing(then: Callable[[Any], None]) -> AfterImport | None:
    """``then(multiprocessing)`` now if it is loaded, else the moment it is
    first imported (an ``AfterImport`` hook, returned for whoever may want it
    removed before that)."""
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        then(mp)
        return None
    hook = AfterImport("multiprocessing", then)
    sys.meta_path.insert(0, hook)
    return hook


class Bootstrapping:
    """While the parent's ``__main__`` is imported: multiprocessing's
    "bootstrapping phase" flag (``current_process()._inheriting``), which
    makes a process started from that import (a script without
    ``if __name__ == "__main__":``) raise instead of recursing.  Set at once
    if multiprocessing is loaded, else the moment the main module imports
    it; cleared (and the hook removed) when the import is over."""

    def __init__(self) -> None:
        self.active = False
        self.flagged: Any = None  # the process object we flagged
        self.hook: AfterImport | None = None

    def _flag(self, _module: Any) -> None:
        if self.active:
            from multiprocessing import process

            self.flagged = process.current_process()
            self.flagged._inheriting = True

    def __enter__(self) -> None:
        self.active = True
        self.hook = on_multiprocessing(self._flag)

    def __exit__(self, *exc: object) -> None:
        self.active = False
        if self.hook is not None and self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        if self.flagged is not None:
            try:
                del self.flagged._inheriting
            except AttributeError:
                pass


class AfterImport:
    """A meta path finder that runs ``then(module)`` once, right after
    ``name`` is executed and before its importer gets it; it steps aside
    (leaves ``sys.meta_path``) the first time it is asked, and the real
    finders find the module."""

    def __init__(self, name: str, then: Callable[[Any], None]):
        self.name = name
        self.then = then

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Then(spec.loader, self.then)
                return spec
        return None


class _Then:
    """A loader that is ``loader`` and then calls ``then(module)``."""

    def __init__(self, loader: Any, then: Callable[[Any], None]):
        self._loader = loader
        self._then = then

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        self._then(module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ...: the real loader's
        return getattr(self._loader, name)
