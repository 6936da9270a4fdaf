"""Relay sinks for tests: run in the send worker process."""

from __future__ import annotations

import os
from typing import Any

OUT = os.environ.get("SHMRT_TEST_SINK_FILE")


def collect(packet: Any, flow: int) -> None:
    """Append (flow, first 8 bytes) records to $SHMRT_TEST_SINK_FILE, if set."""
    if OUT:
        with open(OUT, "ab") as f:
            f.write(flow.to_bytes(8, "little") + bytes(packet[:8]))


def discard(packet: Any, flow: int) -> None:
    pass
