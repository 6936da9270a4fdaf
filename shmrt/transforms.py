"""Built-in per-packet transforms for the relay.

A transform takes the packet as a ``memoryview`` and returns the packet to
send (any bytes-like object) or ``None`` to drop it (counted as filtered).
An exception drops the packet too (counted as an error).

``blake2b_tag`` appends a keyed 16-byte BLAKE2b MAC; ``blake2b_verify``
checks and strips it (a bad tag drops the packet).  The key comes from the
``SHMRT_RELAY_KEY`` environment variable (hex) or a fixed demo key: workers
inherit the environment of the process that starts the relay.
"""

from __future__ import annotations

import hashlib
import hmac
import os

TAG_SIZE = 16
_DEMO_KEY = b"shmrt-relay-demo-key-0123456789!"


def _key() -> bytes:
    hexkey = os.environ.get("SHMRT_RELAY_KEY")
    return bytes.fromhex(hexkey) if hexkey else _DEMO_KEY


KEY = _key()


def identity(packet: memoryview) -> memoryview:
    """Send the packet unchanged."""
    return packet


def tag_of(body: bytes | memoryview, key: bytes = KEY) -> bytes:
    return hashlib.blake2b(body, key=key, digest_size=TAG_SIZE).digest()


def blake2b_tag(packet: memoryview) -> bytes:
    """Append a keyed 16-byte BLAKE2b MAC."""
    return bytes(packet) + tag_of(packet)


def blake2b_verify(packet: memoryview) -> memoryview | None:
    """Check and strip the MAC appended by blake2b_tag; None (drop) if bad."""
    if len(packet) < TAG_SIZE:
        return None
    body, tag = packet[:-TAG_SIZE], packet[-TAG_SIZE:]
    if not hmac.compare_digest(tag_of(body), tag):
        return None
    return body


def blake2b_tag_heavy(packet: memoryview, rounds: int = 32) -> bytes:
    """A CPU-heavy transform for benchmarks: the tag is iterated ``rounds``
    times (~25 us for a 1 KiB packet here).  Deterministic, so a receiver
    can check it with the same function."""
    t = tag_of(packet)
    head = bytes(packet[:64])
    for _ in range(rounds - 1):
        t = tag_of(t + head)
    return bytes(packet) + t
