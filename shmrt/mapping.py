"""``map(..., buffersize=N)``: Executor.map over an input read lazily.

Why: ``Executor.map`` reads its whole input and submits everything at once,
so mapping a generator of 10**7 items holds 10**7 futures and results.
Python 3.14 added ``buffersize``: at most that many calls submitted and not
yet yielded.  Here the unit is a chunk (``chunksize`` items, one task): the
input is pulled one chunk at a time, a new chunk is submitted each time the
oldest one's result is handed out, and memory stays bounded by
``buffersize * chunksize`` items whatever the input's length (an endless
``itertools.count()`` included).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures as cf
from itertools import chain, islice, starmap
from typing import Any


def _map_chunk(fn: Callable[..., Any], chunk: list[Any]) -> list[Any]:
    """One batch of map() with a single iterable: no tuple per item."""
    return list(map(fn, chunk))


def _starmap_chunk(fn: Callable[..., Any], chunk: list[tuple]) -> list[Any]:
    """One batch of map() with several iterables."""
    return list(starmap(fn, chunk))


def lazy_map(client: Any, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...],
             end: float | None, chunksize: int, buffersize: int) -> Iterator[Any]:
    """Submit the first ``buffersize`` chunks now (as 3.14 does: the input
    is read this far before the first ``next``), the rest as results are
    consumed."""
    single = len(iterables) == 1
    it: Iterator[Any] = iter(iterables[0]) if single else zip(*iterables)  # noqa: B905
    submit = client.submit
    if chunksize == 1:
        def submit_next() -> cf.Future | None:
            for x in it:
                return submit(fn, x) if single else submit(fn, *x)
            return None
    else:
        batch = _map_chunk if single else _starmap_chunk

        def submit_next() -> cf.Future | None:
            chunk = list(islice(it, chunksize))
            return submit(batch, fn, chunk) if chunk else None

    fs: deque[cf.Future] = deque()
    try:
        while len(fs) < buffersize:
            f = submit_next()
            if f is None:
                break
            fs.append(f)
    except BaseException:
        for f in fs:
            f.cancel()
        raise
    gen = _results(fs, submit_next, end)
    return chain.from_iterable(gen) if chunksize > 1 else gen


def _results(fs: deque[cf.Future], submit_next: Callable[[], cf.Future | None],
             end: float | None) -> Iterator[Any]:
    """Results in order; after each result arrives, one more chunk goes in.
    No reference to a result is kept while it is yielded."""
    import time

    box: list[Any] = []
    try:
        while fs:
            box.append(fs.popleft().result(None if end is None else end - time.monotonic()))
            f = submit_next()
            if f is not None:
                fs.append(f)
            del f
            yield box.pop()
    finally:  # abandoned, timed out, failed: cancel what has not started
        for f in fs:
            f.cancel()
