"""Where an inspection's bytes come from: a live segment, or a saved snapshot.

Why ``pread`` on a read-only descriptor instead of a mapping: the segment is
opened ``O_RDONLY`` (so nothing here *can* write), and every byte is copied
out with ``pread``.  That is a read-only view like ``mmap(PROT_READ)``, with
one difference that matters for a debugging tool: if a hostile or crashing
process truncates the file while we read, a mapping turns the next access
into SIGBUS (a dead inspector, no message), while ``pread`` returns a short
count, reported as a one-line error.  Opening also refuses symlinks
(``O_NOFOLLOW``), FIFOs and devices (``O_NONBLOCK`` + a regular-file
check), files of another user and files open to group/other, and does not
touch the access time (``O_NOATIME``): the open is
``shmrt.segment.open_segment_fd``, the one checked open every shmrt
command uses.

Torn reads: workers, queues, slots and the relay's headers are read in bulk,
then read again; every entry that differs between the two reads is re-read
until two consecutive reads agree (at most ``MAX_TRIES`` times).  Retries
are counted, and a slot that never settles is listed as unstable.

Relay re-check: a waiter WAITING while budget is free, or a waitlist
non-empty while its ring has room, is also what a healthy relay looks like
for a few hundred nanoseconds during every hand-off.  When one read shows
either, the wake-up state is read once more ``RECHECK_S`` later
(:class:`RelayRecheck`, kept in snapshots too), and the lints fire only on
what persisted.

Snapshot file format (``--save FILE`` / ``--from FILE``), little endian::

    8 bytes   b"SHMRTSNP"
    u32       format version (1)
    u32       E, length of the envelope
    E bytes   JSON envelope (:class:`Envelope`): name, times, file size/uid/mode,
              region length and SHA-256, function names, process liveness,
              the relay re-check (if one was taken)
    N bytes   the region: the segment's first ``arena_off`` bytes (header,
              workers, local queues, inject ring, clients, function table,
              relay region, slots); the arena is not kept, so function names
              and process liveness are resolved at save time and stored in
              the envelope
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from shmrt import _core
from shmrt.errors import RuntimeNotFound, SegmentError
from shmrt.protocol import NO_FN  # the callable travels inline with the arguments

from .layout import (
    BLOCK_HEADER_SIZE,
    HEADER_SIZE,
    HF,
    LQ_SIZE,
    RELAY_SIZE,
    RF,
    RING_SIZE,
    SEND_SIZE,
    SLOT_HEADER_SIZE,
    TF,
    WAITER_SIZE,
    WORKER_SIZE,
    WTF,
    Header,
    InspectError,
    Layout,
    block_span,
    decode_block,
    decode_client,
    decode_func,
    decode_header,
    decode_ring,
    decode_slot,
    decode_worker,
    pickle_global_name,
    relay_suspect,
    ring_bytes,
    send_off,
    u64,
)

SHM_DIR = "/dev/shm"
MAX_TRIES = 8
RECHECK_S = 0.02  # delay of the relay re-check (see the module docstring)
BULK_STRIDE = 4096  # entries further apart than this are re-read one by one

FN_SCAN_MAX = 64 * 1024  # bytes of a pickled callable scanned for its name
SNAP_MAGIC = b"SHMRTSNP"
SNAP_VERSION = 1
ENVELOPE_MAX = 16 << 20
DEFAULT_MAX_BYTES = 1 << 30
_SNAP_HEAD = struct.Struct("<8sII")


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters replaced: names
    come from file names and snapshot files, and end up on a terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


_FN_NAME_OK = re.compile(
    r"^(<inline>|[A-Za-z_][A-Za-z0-9_.]{0,199}\.[A-Za-z_<][A-Za-z0-9_.<>]{0,199})$"
)


# ---- processes ---------------------------------------------------------------------------
def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None."""
    if pid <= 0 or pid > 0x7FFFFFFF:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode("ascii", "replace"), int(rest[19])
    except (IndexError, ValueError):
        return None


class Procs(Protocol):
    def alive(self, pid: int, start: int) -> bool: ...


class LiveProcs:
    """Liveness from /proc: pid + start time (``shmrt.segment.process_alive``:
    a recycled pid has another start time, and a zombie counts as dead -- a
    worker killed while its coordinator is frozen stays a zombie until
    reaped, but it will never touch the segment again)."""

    def alive(self, pid: int, start: int) -> bool:
        from shmrt.segment import process_alive

        return 0 < pid <= 0x7FFFFFFF and process_alive(pid, start)


class RecordedProcs:
    """Liveness as recorded when a snapshot was saved."""

    def __init__(self, table: dict[str, bool]):
        self.table = table

    def alive(self, pid: int, start: int) -> bool:
        return self.table.get(f"{pid}:{start}", False)


# ---- the image an analysis works on ---------------------------------------------------------
class RelayRecheck(msgspec.Struct, kw_only=True):
    """The relay's wake-up state read a second time, ``delay_ns`` after the
    main read (only when that read showed a possible lost wake-up).  Values
    are raw and untrusted, like the region's."""

    delay_ns: int
    avail: int  # relay_t.avail
    waiters: list[tuple[int, int]] = []  # (state, pid) of every waiter entry
    rings: list[tuple[int, int, int]] = []  # per send ring: (ring len, waitlist len, waitlist deq)


@dataclass
class Image:
    """One read of a segment: the validated header and the region bytes."""

    header: Header
    region: bytes
    kind: str  # "segment" | "snapshot"
    name: str
    path: str
    unlinked: bool
    now_mono_ns: int  # CLOCK_MONOTONIC at the read (slot/worker timestamps use it)
    now_real_ns: int  # CLOCK_REALTIME at the read (created_ns uses it)
    file_uid: int
    file_mode: int
    procs: Procs
    fn_name: Callable[[int], str | None]
    torn_retries: int = 0
    unstable: list[int] = field(default_factory=list)
    relay_recheck: RelayRecheck | None = None

    @property
    def layout(self) -> Layout:
        return self.header.layout


# ---- opening -------------------------------------------------------------------------------
def check_stat(st: os.stat_result, path: str) -> None:
    """shmrt.segment's check of a segment file (regular, ours, mode 0600, one
    link), as an InspectError."""
    from shmrt.segment import check_segment_stat

    try:
        check_segment_stat(st, path)
    except SegmentError as e:
        raise InspectError(str(e)) from None


def open_segment(path: str) -> int:
    """A read-only, validated descriptor of the file at ``path``: the one
    checked open of ``shmrt.segment.open_segment_fd`` (no symbolic link
    followed, never blocks, fstat-checked before anything is read), read-only
    and without touching the access time."""
    from shmrt.segment import open_segment_fd

    try:
        return open_segment_fd(path, False, noatime=True)
    except RuntimeNotFound:
        raise InspectError(f"no runtime segment at {path}") from None
    except SegmentError as e:
        raise InspectError(str(e)) from None


def runtime_path(name: str) -> str:
    from shmrt.segment import shm_name

    try:
        return SHM_DIR + shm_name(name)
    except ValueError as e:
        raise InspectError(str(e)) from None


class SegmentSource:
    """A live (or stale) segment file, read through a read-only descriptor."""

    kind = "segment"

    def __init__(self, path: str, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = path
        self.name = name
        self.max_bytes = max_bytes
        self.procs = LiveProcs()
        self._fn_cache: dict[tuple[int, int, int, int], str | None] = {}
        self.fd = open_segment(path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SegmentSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pread(self, n: int, off: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < n:
            try:
                b = os.pread(self.fd, min(n - got, 1 << 30), off + got)
            except OSError as e:
                raise InspectError(f"{self.path}: read failed: {e.strerror}") from None
            if not b:
                raise InspectError(
                    f"{self.path}: file ended at {off + got} while reading "
                    "(truncated while inspecting?)"
                )
            parts.append(b)
            got += len(b)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fstat(self) -> os.stat_result:
        st = os.fstat(self.fd)
        check_stat(st, self.path)
        return st

    def header(self) -> Header:
        st = self._fstat()
        if st.st_size < HEADER_SIZE:
            raise InspectError("invalid segment: smaller than its header (truncated?)")
        return decode_header(self.pread(HEADER_SIZE, 0), st.st_size)

    def completed(self) -> tuple[int, int]:
        """(CLOCK_MONOTONIC ns, the header's completed counter): a cheap sample
        for the task rate."""
        v = u64(self.pread(8, HF["completed"]), 0)
        return time.monotonic_ns(), v

    def _stabilize(
        self,
        a: bytearray,
        off: int,
        stride: int,
        count: int,
        cmp_len: int,
        unstable: list[int] | None,
    ) -> int:
        """Re-read entries of ``a`` (at ``off``, ``count`` x ``stride``, the first
        ``cmp_len`` bytes of each) that changed between two reads until two
        consecutive reads agree.  Returns retries."""
        if count == 0:
            return 0
        if stride <= BULK_STRIDE:
            b, b_stride = self.pread(stride * (count - 1) + cmp_len, off), stride
            if cmp_len == stride and a[off : off + stride * count] == b:
                return 0
        else:  # sparse entries (send rings): do not re-read what lies between
            b = b"".join(self.pread(cmp_len, off + i * stride) for i in range(count))
            b_stride = cmp_len
        retries = 0
        for i in range(count):
            s = off + i * stride
            prev = b[i * b_stride : i * b_stride + cmp_len]
            if a[s : s + cmp_len] == prev:
                continue
            for _ in range(MAX_TRIES):
                retries += 1
                cur = self.pread(cmp_len, s)
                if cur == prev:
                    break
                prev = cur
            else:
                if unstable is not None:
                    unstable.append(i)
            a[s : s + cmp_len] = prev
        return retries

    def read(self) -> Image:
        st = self._fstat()
        hdr = self.header()
        lay = hdr.layout
        if lay.region_len > self.max_bytes:
            raise InspectError(
                f"segment region is {lay.region_len} bytes, over the "
                f"--max-bytes limit of {self.max_bytes}"
            )
        a = bytearray(self.pread(lay.region_len, 0))
        hdr = decode_header(a, st.st_size)  # the mutable words as of this read
        if hdr.layout != lay:
            raise InspectError("segment header changed while reading; refusing")
        unstable: list[int] = []
        retries = self._stabilize(a, lay.workers_off, WORKER_SIZE, lay.n_workers, WORKER_SIZE, None)
        retries += self._stabilize(a, lay.queues_off, LQ_SIZE, lay.n_workers, LQ_SIZE, None)
        retries += self._stabilize(
            a, lay.slots_off, lay.slot_size, lay.n_slots, SLOT_HEADER_SIZE, unstable
        )
        recheck = None
        if lay.n_send:
            hdr_len = RELAY_SIZE + RING_SIZE  # relay_t and the FIFO's ring header
            retries += self._stabilize(a, lay.relay_off, hdr_len, 1, hdr_len, None)
            retries += self._stabilize(
                a, lay.waiters_off, WAITER_SIZE, lay.n_waiters, WAITER_SIZE, None
            )
            retries += self._stabilize(
                a, lay.sends_off, lay.send_stride, lay.n_send, SEND_SIZE + RING_SIZE, None
            )
            retries += self._stabilize(
                a, lay.sends_off + lay.waitlist_rel, lay.send_stride, lay.n_send, RING_SIZE, None
            )
            if relay_suspect(a, lay):
                recheck = self.relay_recheck(lay)
        region = bytes(a)
        try:
            unlinked = os.stat(self.path, follow_symlinks=False).st_ino != st.st_ino
        except OSError:
            unlinked = True
        return Image(
            hdr,
            region,
            "segment",
            printable(self.name),
            printable(self.path),
            unlinked,
            time.monotonic_ns(),
            time.time_ns(),
            st.st_uid,
            stat.S_IMODE(st.st_mode),
            self.procs,
            lambda fid: self.fn_name(region, lay, fid),
            retries,
            unstable,
            recheck,
        )

    def relay_recheck(self, lay: Layout, delay_s: float = RECHECK_S) -> RelayRecheck:
        """Read the relay's wake-up state again after ``delay_s``."""
        t0 = time.monotonic_ns()
        time.sleep(delay_s)
        w = self.pread(lay.n_waiters * WAITER_SIZE, lay.waiters_off)
        waiters = [
            (u64(w, i * WAITER_SIZE + WTF["state"]), u64(w, i * WAITER_SIZE + WTF["pid"]))
            for i in range(lay.n_waiters)
        ]
        rings = []
        for i in range(lay.n_send):
            off = send_off(lay, i)
            r = decode_ring(self.pread(ring_bytes(lay.send_cap), off + TF["rings"]), 0,
                            lay.send_cap, lay.n_slots, f"send ring {i}")
            wl = decode_ring(self.pread(ring_bytes(lay.inject_cap), off + lay.waitlist_rel), 0,
                             lay.inject_cap, lay.n_slots, f"waitlist of send ring {i}")
            rings.append((r.length, wl.length, wl.deq))
        avail = u64(self.pread(8, lay.relay_off + RF["avail"]), 0)
        return RelayRecheck(
            delay_ns=time.monotonic_ns() - t0, avail=avail, waiters=waiters, rings=rings
        )

    def fn_name(self, region: bytes, lay: Layout, fid: int) -> str | None:
        """``module.qualname`` of function ``fid``, from its pickle in the arena
        (opcodes scanned, never unpickled); None if unknown or invalid."""
        if fid == NO_FN:
            return "<inline>"
        if not 0 <= fid < lay.n_funcs:
            return None
        f = decode_func(region, lay, fid)
        if f.state != _core.FN_READY:
            return None
        key = (fid, f.blob, f.length, f.hash)
        if key in self._fn_cache:
            return self._fn_cache[key]
        name = None
        try:
            block_span(lay, f.blob)
            _cls, _refs, ln = decode_block(
                self.pread(BLOCK_HEADER_SIZE, lay.arena_off + f.blob), lay, f.blob
            )
            if f.length <= ln:
                data = self.pread(
                    min(f.length, FN_SCAN_MAX), lay.arena_off + f.blob + BLOCK_HEADER_SIZE
                )
                name = pickle_global_name(data)
        except InspectError:
            name = None
        self._fn_cache[key] = name
        return name


def find_by_pid(pid: int, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, str]:
    """(path, runtime name) of our segment whose coordinator, a worker or a relay
    send worker is ``pid``.

    Segments that cannot be opened or validated are skipped; a live
    coordinator wins over a stale segment that recorded the same pid."""
    prefix = f"shmrt.{os.geteuid()}."
    try:
        entries = sorted(os.listdir(SHM_DIR))
    except OSError as e:
        raise InspectError(f"{SHM_DIR}: {e.strerror}") from None
    found: list[tuple[bool, str, str]] = []
    procs = LiveProcs()
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        path = f"{SHM_DIR}/{entry}"
        try:
            with SegmentSource(path, entry[len(prefix) :], max_bytes=max_bytes) as src:
                hdr = src.header()
                lay = hdr.layout
                buf = src.pread(lay.queues_off, 0)
                pids = {hdr.coord_pid}
                pids.update(decode_worker(buf, lay, w).fields["pid"] for w in range(lay.n_workers))
                for i in range(lay.n_send):  # relay send workers
                    pids.add(u64(src.pread(8, send_off(lay, i) + TF["pid"]), 0))
                pids.discard(0)
        except InspectError:
            continue
        if pid in pids:
            found.append((procs.alive(hdr.coord_pid, hdr.coord_start), path, entry[len(prefix) :]))
    if not found:
        raise InspectError(
            f"no shmrt segment of uid {os.geteuid()} has a coordinator or worker with pid {pid}"
        )
    found.sort(key=lambda t: not t[0])
    return found[0][1], found[0][2]


# ---- snapshots -----------------------------------------------------------------------------
class Envelope(msgspec.Struct, kw_only=True):
    """The JSON envelope of a snapshot file (format version 1)."""

    format_version: int
    name: str
    path: str
    saved_realtime_ns: int
    saved_monotonic_ns: int
    file_size: int
    file_uid: int
    file_mode: int
    region_len: int
    region_sha256: str
    torn_read_retries: int = 0
    unstable_slots: list[int] = []
    function_names: dict[int, str] = {}
    processes: dict[str, bool] = {}  # "pid:start" -> alive when saved
    relay_recheck: RelayRecheck | None = None


def save_snapshot(img: Image, path: str) -> None:
    """Write ``img`` to ``path`` (mode 0600: slots may hold task arguments)."""
    lay = img.layout
    hdr = img.header
    pairs = {(hdr.coord_pid, hdr.coord_start)}
    for w in range(lay.n_workers):
        f = decode_worker(img.region, lay, w).fields
        pairs.add((f["pid"], f["start"]))
    for c in range(lay.n_clients):
        cl = decode_client(img.region, lay, c)
        if cl.pid:
            pairs.add((cl.pid, cl.start))
    names: dict[int, str] = {}
    for i in range(lay.n_slots):
        s = decode_slot(img.region, lay, i)
        if s.refs and s.fn_id not in names:
            n = img.fn_name(s.fn_id)
            if n is not None:
                names[s.fn_id] = n
    env = Envelope(
        format_version=SNAP_VERSION,
        name=img.name,
        path=img.path,
        saved_realtime_ns=img.now_real_ns,
        saved_monotonic_ns=img.now_mono_ns,
        file_size=lay.total_size,
        file_uid=img.file_uid,
        file_mode=img.file_mode,
        region_len=len(img.region),
        region_sha256=hashlib.sha256(img.region).hexdigest(),
        torn_read_retries=img.torn_retries,
        unstable_slots=img.unstable,
        function_names=names,
        processes={f"{p}:{s}": img.procs.alive(p, s) for p, s in sorted(pairs)},
        relay_recheck=img.relay_recheck,
    )
    body = msgspec.json.encode(env)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(_SNAP_HEAD.pack(SNAP_MAGIC, SNAP_VERSION, len(body)))
            out.write(body)
            out.write(img.region)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InspectError(f"cannot write snapshot {path}: {e.strerror}") from None


def load_snapshot(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Image:
    """Read and validate a snapshot file written by :func:`save_snapshot`."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InspectError(f"{path} is not a regular file")
            return parse_snapshot(
                f.read(_SNAP_HEAD.size + ENVELOPE_MAX + max_bytes + 1), path, max_bytes=max_bytes
            )
    except OSError as e:
        raise InspectError(f"cannot read snapshot {path}: {e.strerror}") from None


def parse_snapshot(
    data: bytes, path: str = "<snapshot>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Image:
    if len(data) < _SNAP_HEAD.size:
        raise InspectError(f"{path}: not a shmrt snapshot (too short)")
    magic, version, elen = _SNAP_HEAD.unpack_from(data, 0)
    if magic != SNAP_MAGIC:
        raise InspectError(f"{path}: not a shmrt snapshot (bad magic)")
    if version != SNAP_VERSION:
        raise InspectError(f"{path}: unsupported snapshot format version {version}")
    if elen > ENVELOPE_MAX or _SNAP_HEAD.size + elen > len(data):
        raise InspectError(f"{path}: snapshot envelope length {elen} is out of range")
    try:
        env = msgspec.json.decode(data[_SNAP_HEAD.size : _SNAP_HEAD.size + elen], type=Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InspectError(f"{path}: bad snapshot envelope: {e}") from None
    region = data[_SNAP_HEAD.size + elen :]
    if env.region_len > max_bytes or len(region) != env.region_len:
        raise InspectError(
            f"{path}: snapshot holds {len(region)} region bytes, its envelope says {env.region_len}"
        )
    if hashlib.sha256(region).hexdigest() != env.region_sha256:
        raise InspectError(f"{path}: snapshot checksum mismatch (corrupt file)")
    hdr = decode_header(region, env.file_size)
    if hdr.layout.region_len != len(region):
        raise InspectError(f"{path}: snapshot region length does not match its header")
    names = {k: v for k, v in env.function_names.items() if _FN_NAME_OK.match(v)}
    names.setdefault(NO_FN, "<inline>")
    return Image(
        hdr,
        region,
        "snapshot",
        printable(env.name),
        printable(env.path),
        False,
        env.saved_monotonic_ns,
        env.saved_realtime_ns,
        env.file_uid,
        env.file_mode,
        RecordedProcs(env.processes),
        names.get,
        env.torn_read_retries,
        list(env.unstable_slots),
        env.relay_recheck,
    )
