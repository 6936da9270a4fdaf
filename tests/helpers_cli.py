"""Task functions for tests/test_cli.py.

Module-level so that workers import them by name: the runtimes under test
are started with ``--import helpers_cli`` and with this directory as their
working directory and on PYTHONPATH."""

from __future__ import annotations

from typing import Any


def add(a: Any, b: Any, c: Any = 0) -> Any:
    return a + b + c


def square(x: int) -> int:
    return x * x


def boom(msg: str) -> None:
    raise ValueError(msg)


def as_set(*items: Any) -> set[Any]:
    """A result that JSON cannot encode (the CLI prints its repr)."""
    return set(items)


def echo(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs]


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds
