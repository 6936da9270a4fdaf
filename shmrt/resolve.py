"""``module:function`` strings to callables, with one-line errors.

Why a module: the command line (``shmrt submit NAME MOD:FUNC``, ``shmrt relay
--transform MOD:FN``) and the library (``Relay(transform="mod:fn")``) name
functions the same way, and a user should get the same answer from both: a
module found in the current directory, and an error that says what is wrong
in one line instead of an import traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


class ResolveError(ValueError):
    """``spec`` does not name a callable; the message says why, in one line."""


def resolve(spec: str | Callable[..., Any], what: str = "function", *,
            cwd: bool = True) -> Callable[..., Any]:
    """The callable ``spec`` names (``"pkg.mod:obj.attr"``), or ``spec`` itself
    if it is callable.  ``cwd``: modules in the current directory are found,
    as ``python -m`` would (the command line's behaviour)."""
    if callable(spec):
        return spec
    mod_name, sep, attr = str(spec).partition(":")
    if not sep or not mod_name or not attr:
        raise ResolveError(f"{what} {spec!r}: expected MODULE:FUNCTION")
    if cwd and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:  # any import failure is the user's input: one line
        raise ResolveError(f"{what}: cannot import {mod_name!r}: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ResolveError(f"{what}: {mod_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ResolveError(f"{what} {spec!r} is not callable")
    return obj
