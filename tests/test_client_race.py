"""The submit/deliver race in Client (issue 13): a completion harvested
before ``submit`` has recorded its future must still resolve that future.

The window is widened deterministically: a hook delays ``submit`` between
the C submit and recording the future (so the harvester or a result()
spinner delivers first), and delays ``deliver`` between its miss and
storing the orphan; with a 1 us switch interval, several submitting threads,
callbacks and as_completed users.  Before the lock, 21 of 22 such futures
were lost with a 200 us window; now every one must resolve.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import as_completed

import helpers
import pytest

import shmrt
from shmrt import client as client_mod

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def widened() -> Iterator[dict[str, int]]:
    seen = {"submit": 0, "deliver": 0}

    def hook(where: str) -> None:
        seen[where] += 1
        if where == "submit":  # let the harvester run first: sleep, GIL released
            time.sleep(2e-3)
            return
        end = time.perf_counter() + 200e-6
        while time.perf_counter() < end:  # hold the window open, GIL released by switches
            pass

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    client_mod._race_hook = hook
    try:
        yield seen
    finally:
        client_mod._race_hook = None
        sys.setswitchinterval(old)


def test_results_harvested_before_their_future_is_recorded(widened: dict[str, int]) -> None:
    n_threads, per = 4, 300
    done = threading.Event()
    called = [0]
    lock = threading.Lock()

    def cb(_f: object) -> None:
        with lock:
            called[0] += 1

    with shmrt.Pool(2) as p:
        results: list[list] = [[] for _ in range(n_threads)]

        def submitter(t: int) -> None:
            fs = []
            for i in range(per):
                f = p.submit(helpers.square, t * per + i)
                f.add_done_callback(cb)
                fs.append(f)
            for f in as_completed(fs, timeout=30):
                f.result()
            results[t] = [f.result(timeout=60) for f in fs]

        threads = [threading.Thread(target=submitter, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
            assert not th.is_alive(), "a future never resolved: the race lost a result"
        done.set()
    for t in range(n_threads):
        assert results[t] == [(t * per + i) ** 2 for i in range(per)]
    assert called[0] == n_threads * per
    assert widened["deliver"] > 0, "the deliver-side window was never hit"
