"""A hostile /dev/shm (issue 14): names planted by someone else, and a /dev/shm
that fills up.

Why these: /dev/shm is world-writable, so anyone can put anything under a
runtime's name before it exists.  For each kind of planted file -- a
symbolic link to another runtime's live segment, a symbolic link to a user's
file, a FIFO, a socket, a directory, a device, a hard link, another user's
file, a 0644 file -- the library and every CLI command must refuse it with
one line that says what was found, and leave what it points to alone: the
live runtime still serves tasks, the user's file keeps its bytes.  The CLI
runs in subprocesses with a timeout, so an open that blocks (the FIFO) fails
the test instead of hanging it.

The fill test runs tests/hostile_shmfill.py in a private mount namespace
with a 16 MiB tmpfs over /dev/shm (root only): no repetition may die of a
signal (before the fix, a SIGBUS in the first submit).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers_cli
import pytest
from test_cli import PY_CLI, TESTS, Runtime, _env

import shmrt
from shmrt import segment
from shmrt.segment import SHM_DIR, Config, SuspiciousFile, shm_name

CLI_TIMEOUT_S = 30.0
ROOT = os.geteuid() == 0
NOBODY = 65534

# kind -> what the refusal must say it found
KINDS = {
    "symlink-to-live": "symbolic link to '",
    "symlink-to-file": "symbolic link to '",
    "fifo": "a FIFO",
    "socket": "a socket",
    "directory": "a directory",
    "chardev": "a character device",
    "hardlink-to-live": "2 hard links",
    "foreign-owner": f"uid {NOBODY}",
    "mode-644": "mode 644",
}
NEEDS_ROOT = {"chardev", "foreign-owner"}


@functools.lru_cache(maxsize=1)
def real_image() -> bytes:
    """The bytes of a valid small segment: a planted copy fails only the
    check under test (owner or mode), not the header validation."""
    name = f"hostile-image-{os.getpid()}-{secrets.token_hex(3)}"
    seg, sname = segment.create(name, Config(n_workers=1, n_slots=64, n_clients=2, n_funcs=16,
                                             arena_size=256 * 1024))
    try:
        fd = segment.open_segment_fd(SHM_DIR + sname, False)
        try:
            return os.pread(fd, seg.layout["total_size"], 0)
        finally:
            os.close(fd)
    finally:
        seg.close()
        segment.unlink(sname)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    elif os.path.lexists(path):
        os.unlink(path)


def plant(kind: str, path: str, live: Runtime, user_file: Path) -> None:
    """Put a ``kind`` thing at ``path`` (a runtime's name that does not exist)."""
    if kind == "symlink-to-live":
        os.symlink(live.path, path)
    elif kind == "symlink-to-file":
        os.symlink(str(user_file), path)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(path)
        finally:
            s.close()  # the socket file stays
    elif kind == "directory":
        os.mkdir(path, 0o700)
    elif kind == "chardev":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    elif kind == "hardlink-to-live":
        os.link(live.path, path)
    else:  # a valid segment image, wrong only in its owner or its mode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, real_image())
            if kind == "foreign-owner":
                os.fchown(fd, NOBODY, NOBODY)
            else:
                os.fchmod(fd, 0o644)
        finally:
            os.close(fd)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """Runtime A: a live runtime (``shmrt start``) the planted names point at."""
    rt = Runtime("hostile-live", workers=1)
    try:
        rt.start(tmp_path_factory.mktemp("live"))
        rt.wait_ready()
        yield rt
    finally:
        rt.cleanup()


def _assert_untouched(live: Runtime, user_file: Path, user_bytes: bytes, user_mtime: int) -> None:
    assert live.proc is not None and live.proc.poll() is None, "runtime A was stopped"
    assert stat.S_ISREG(os.lstat(live.path).st_mode)
    client = shmrt.connect(live.name)
    try:
        assert client.submit(helpers_cli.add, 20, 22).result(timeout=30) == 42
    finally:
        client.shutdown(wait=True)
    assert user_file.read_bytes() == user_bytes
    assert user_file.stat().st_mtime_ns == user_mtime


def _cli_all(*commands: list[str]) -> list[tuple[list[str], int, str, str]]:
    """Run CLI commands concurrently, each with a deadline (a blocking open
    must fail the test, not hang it); returns (args, code, stdout, stderr)."""
    procs = [(args, subprocess.Popen([*PY_CLI, *args], cwd=TESTS, env=_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
             for args in commands]
    out = []
    try:
        for args, p in procs:
            try:
                so, se = p.communicate(timeout=CLI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"shmrt {' '.join(args)} still running after "
                                     f"{CLI_TIMEOUT_S}s (blocked on the planted file?)") from None
            out.append((args, p.returncode, so, se))
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_planted_name_is_refused_everywhere(kind: str, live: Runtime, tmp_path: Path) -> None:
    if kind in NEEDS_ROOT and not ROOT:
        pytest.skip(f"planting a {kind} needs root")
    what = KINDS[kind]
    user_file = tmp_path / "precious.txt"
    user_file.write_bytes(b"the user's own bytes\n")
    os.chmod(user_file, 0o644)
    user_mtime = user_file.stat().st_mtime_ns
    name = f"hostile-{kind}-{os.getpid()}-{secrets.token_hex(3)}"
    path = SHM_DIR + shm_name(name)
    plant(kind, path, live, user_file)
    planted = os.lstat(path)
    try:
        # the library: connect and attach refuse, a pool of that name is refused
        with pytest.raises(SuspiciousFile) as ei:
            shmrt.connect(name)
        msg = str(ei.value)
        assert what in msg and path in msg and msg.endswith("refusing") and "\n" not in msg
        with pytest.raises(shmrt.SegmentError, match="refusing"):
            segment.attach(name, writable=False)
        with pytest.raises(shmrt.RuntimeExists, match="suspicious") as ex:
            shmrt.Pool(1, name=name)
        assert what in str(ex.value)

        # every command that takes the name: one line on stderr, a failure exit
        results = _cli_all(["stats", name], ["stop", name, "--timeout", "5"],
                           ["submit", name, "helpers_cli:add", "1", "2"], ["inspect", name],
                           ["start", name, "--workers", "1"], ["ls", "--json"], ["ls"],
                           ["prune", "--yes", name])
        for args, code, out, err in results[:5]:
            assert code != 0, (args, out, err)
            assert err.count("\n") == 1 and what in err and "refusing" in err, (args, err)
            assert "Traceback" not in err and out == "", (args, out)
        (_, code, out, err), (_, code2, table, err2), (_, code3, pout, perr) = results[5:]
        assert code == 0 and code2 == 0, (err, err2)
        row = next(r for r in json.loads(out) if r["name"] == name)
        assert what.split(" to ")[0] in row["suspicious"] and "refusing" in row["error"], row
        line = next(ln for ln in table.splitlines() if ln.startswith(name))
        assert "suspicious" in line, line
        assert f"suspicious: {path} " in table and what in table and "remove them yourself" in table
        assert code3 == 0 and "no stale runtimes" in pout, (pout, perr)
        assert f"suspicious: {path} " in perr and "left alone" in perr, perr

        # nothing was followed, stopped, removed or rewritten
        after = os.lstat(path)
        assert (after.st_ino, after.st_mode, after.st_size) == (
            planted.st_ino, planted.st_mode, planted.st_size)
        if kind != "hardlink-to-live":  # a second name makes A's own name ambiguous too
            _assert_untouched(live, user_file, b"the user's own bytes\n", user_mtime)
    finally:
        _remove(path)
    _assert_untouched(live, user_file, b"the user's own bytes\n", user_mtime)


@pytest.mark.timeout(60)
def test_ls_and_prune_do_not_open_a_name_shmrt_could_not_have_made(tmp_path: Path) -> None:
    """A file under our prefix whose name has control characters (a terminal
    escape) is listed as suspicious, escaped, and never opened or pruned."""
    path = f"{SHM_DIR}/shmrt.{os.geteuid()}.evil\x1b[2J-{secrets.token_hex(3)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        (_, code, out, err), (_, code2, table, _), (_, code3, _, perr) = _cli_all(
            ["ls", "--json"], ["ls"], ["prune", "--yes"])
        assert code == 0 and code2 == 0 and code3 == 0, err
        rows = [r for r in json.loads(out) if "evil" in r["name"]]
        assert rows and all("not a valid runtime name" in r["suspicious"] for r in rows), rows
        assert "\x1b" not in table and "evil\\x1b[2J" in table and "not a valid runtime" in table
        assert "\x1b" not in perr and "not a valid runtime name" in perr
        assert os.path.exists(path)
    finally:
        os.unlink(path)


# ---- /dev/shm fills up ------------------------------------------------------------------
FILL_MODES = ("full-before", "filled-in-window", "filled-during-start", "filled-after-start")
FILL_REPS = 20


def _can_unshare() -> str | None:
    """Why the fill test cannot run here, or None."""
    if not ROOT:
        return "needs root (mount a tmpfs in a private mount namespace)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare(1) and mount(8)"
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs",
                        "-o", "size=1m", "tmpfs", SHM_DIR], capture_output=True, text=True,
                       timeout=30)
    if r.returncode:
        return f"cannot mount a tmpfs in a private mount namespace: {r.stderr.strip()}"
    return None


@pytest.mark.timeout(180)
def test_full_dev_shm_never_kills_with_sigbus() -> None:
    why = _can_unshare()
    if why:
        pytest.skip(why)
    script = str(TESTS / "hostile_shmfill.py")
    seen: dict[str, list[dict[str, Any]]] = {m: [] for m in FILL_MODES}
    for rep in range(FILL_REPS):
        mode = FILL_MODES[rep % len(FILL_MODES)]
        r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, script,
                            mode], cwd=TESTS, env=_env(), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode >= 0, (f"repetition {rep} ({mode}) died of signal {-r.returncode}:\n"
                                   f"{r.stderr[-3000:]}")
        assert r.returncode == 0, f"repetition {rep} ({mode}) failed:\n{r.stderr[-3000:]}"
        seen[mode].append(json.loads(r.stdout.strip().splitlines()[-1]))
    for res in seen["full-before"]:
        assert res["outcome"] == "refused" and "/dev/shm is too full" in res["error"], res
    for res in seen["filled-in-window"]:
        assert res["outcome"] == "refused" and "/dev/shm is full" in res["error"], res
    for res in seen["filled-after-start"]:
        assert res["outcome"] == "ok" and res["free_while_running"] < (1 << 20), res
        assert res["payloads"] + res["refused"] == res["attempted"] > 0, res  # intact or refused
        assert res["lazy"] or res["refused"] == 0, res  # all reserved up front: none refused
    for res in seen["filled-during-start"]:  # a race: either outcome, but a clean one
        assert res["outcome"] == "ok" or "/dev/shm" in res["error"], res
