"""Tests of the ``shmrt`` command line (shmrt/cli.py).

Error paths and the pass-through commands run in-process with click's
CliRunner.  The runtime's life (``start`` / ``submit`` / ``ls`` / ``stats`` /
``stop``, Ctrl-C, a stale segment and ``prune``) runs ``shmrt start`` in a real
subprocess, started in this directory (so the workers can import
``helpers_cli``), and waits for its "running" line with a deadline.

Every runtime gets a unique name, every test kills what it started in a
``finally`` and checks that the segment and the worker processes are gone.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import shmrt
from shmrt import cli
from shmrt.layout import Header
from shmrt.segment import SHM_DIR, proc_start_time, process_alive, shm_name

TESTS = Path(__file__).resolve().parent
_SCRIPT = Path(sys.executable).with_name("shmrt")
SCRIPT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shmrt.cli"]
PY_CLI = [sys.executable, "-m", "shmrt.cli"]
READY_S = 40.0
READY_RE = re.compile(
    r"^shmrt: runtime (\S+) running, (\d+) workers \(pids ([\d, ]+)\); "
    r"Ctrl-C or `shmrt stop \1` to stop$")


def _name(tag: str) -> str:
    return f"clitest-{tag}-{os.getpid()}-{secrets.token_hex(3)}"


def _path(name: str) -> str:
    return SHM_DIR + shm_name(name)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    env.pop("COLUMNS", None)
    return env


def _run(*args: str, timeout: float = 30.0, cmd: list[str] = PY_CLI) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, *args], cwd=TESTS, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def _wait_until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Runtime:
    """``shmrt start NAME --workers N --import helpers_cli`` in a subprocess."""

    def __init__(self, tag: str, workers: int = 2):
        self.name = _name(tag)
        self.path = _path(self.name)
        self.workers = workers
        self.pids: list[tuple[int, int]] = []  # (pid, start time) of each worker
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errfile = open(os.devnull, "w")  # noqa: SIM115 - replaced in start()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, tmp_path: Path) -> Runtime:
        self.errfile.close()
        self.errfile = open(tmp_path / f"{self.name}.stderr", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*PY_CLI, "start", self.name, "--workers", str(self.workers),
             "--import", "helpers_cli"],
            cwd=TESTS, env=_env(), stdout=subprocess.PIPE, stderr=self.errfile, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def stderr(self) -> str:
        self.errfile.flush()
        self.errfile.seek(0)
        return self.errfile.read()

    def wait_ready(self) -> str:
        try:
            line = self.lines.get(timeout=READY_S)
        except queue.Empty:
            raise AssertionError(f"no 'running' line within {READY_S}s; stderr:\n"
                                 f"{self.stderr()}") from None
        assert line is not None, f"shmrt start exited early; stderr:\n{self.stderr()}"
        m = READY_RE.match(line)
        assert m, line
        assert m.group(1) == self.name and int(m.group(2)) == self.workers
        pids = [int(p) for p in m.group(3).split(",")]
        assert len(pids) == self.workers
        self.pids = [(p, proc_start_time(p)) for p in pids]
        assert all(process_alive(*p) for p in self.pids)
        assert os.path.exists(self.path)
        return line

    def workers_alive(self) -> list[int]:
        return [p for p, st in self.pids if process_alive(p, st)]

    def cleanup(self) -> None:
        """Whatever state the test left: nothing of this runtime survives."""
        try:
            if self.proc is not None:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)
                    try:
                        self.proc.wait(15)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(15)
                if self.proc.stdout is not None:
                    self.proc.stdout.close()
            deadline = time.monotonic() + 10
            while self.workers_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            for pid, st in self.pids:
                if process_alive(pid, st):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)
            self.errfile.close()


@pytest.fixture
def runtime_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Runtime] = []

    def make(tag: str, workers: int = 2) -> Runtime:
        rt = Runtime(tag, workers)
        made.append(rt)
        return rt.start(tmp_path)

    try:
        yield make
    finally:
        for rt in made:
            rt.cleanup()
        for rt in made:
            assert not os.path.exists(rt.path)
            assert not rt.workers_alive()


@pytest.fixture
def bogus_segment() -> Iterator[Any]:
    """Files named like our segments that are not valid runtimes."""
    made: list[str] = []

    def make(tag: str, data: bytes, mode: int = 0o600) -> str:
        name = _name(tag)
        path = _path(name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        made.append(path)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return name

    try:
        yield make
    finally:
        for path in made:
            if os.path.exists(path):
                os.unlink(path)


# ---- in-process: parsing, errors, hooks -----------------------------------------------------
@pytest.mark.timeout(60)
def test_help_lists_every_command() -> None:
    r = _invoke("--help")
    assert r.exit_code == 0
    for cmd in ("start", "stop", "ls", "submit", "stats", "prune", "demo", "bench", "inspect"):
        assert cmd in r.output


@pytest.mark.timeout(60)
def test_console_script_entry_point() -> None:
    r = _run("--help", cmd=SCRIPT)
    assert r.returncode == 0, r.stderr
    assert "submit" in r.stdout


@pytest.mark.timeout(60)
def test_parse_arg_and_size() -> None:
    assert cli._parse_arg("3") == 3
    assert cli._parse_arg("2.5") == 2.5
    assert cli._parse_arg('"3"') == "3"
    assert cli._parse_arg("[1, {\"a\": null}]") == [1, {"a": None}]
    assert cli._parse_arg("abc") == "abc"
    assert cli._parse_arg("") == ""
    size = cli.Size()
    assert size.convert("65536", None, None) == 65536
    assert size.convert("64M", None, None) == 64 << 20
    assert size.convert("1GiB", None, None) == 1 << 30
    assert size.convert("512k", None, None) == 512 << 10


@pytest.mark.timeout(60)
def test_bad_size_and_bad_name_are_usage_errors() -> None:
    r = _invoke("start", _name("x"), "--arena-size", "lots")
    assert r.exit_code == 2 and "not a size" in r.output
    for cmd in (["start"], ["stop"], ["stats"], ["submit"]):
        extra = ["helpers_cli:add"] if cmd == ["submit"] else []
        r = _invoke(*cmd, "bad/name", *extra)
        assert r.exit_code == 2, (cmd, r.output)
        assert "invalid runtime name" in r.output


@pytest.mark.timeout(60)
def test_unknown_runtime_is_a_clear_error() -> None:
    name = _name("nope")
    for args in (["stop", name], ["stats", name], ["submit", name, "helpers_cli:add", "1", "2"]):
        r = _invoke(*args)
        assert r.exit_code == 1, (args, r.output)
        assert f"no runtime named {name!r}" in r.output
        assert "Traceback" not in r.output
    r = _invoke("prune", name)
    assert r.exit_code == 0 and "no runtime named" in r.output


@pytest.mark.timeout(60)
def test_submit_bad_target() -> None:
    name = _name("nope")
    r = _invoke("submit", name, "helpers_cli")
    assert r.exit_code == 2 and "MODULE:FUNCTION" in r.output
    r = _invoke("submit", name, "helpers_cli:no_such_function", "1")
    assert r.exit_code == 1 and "has no attribute" in r.output
    r = _invoke("submit", name, "no_such_module_xyz:f")
    assert r.exit_code == 1 and "cannot import 'no_such_module_xyz'" in r.output
    r = _invoke("submit", name, "helpers_cli:add", "-k", "not an identifier=1")
    assert r.exit_code == 2 and "KEY=JSON" in r.output


@pytest.mark.timeout(60)
def test_start_refuses_unimportable_module() -> None:
    name = _name("badimport")
    r = _invoke("start", name, "--workers", "1", "--import", "no_such_module_xyz")
    assert r.exit_code == 1
    assert "--import no_such_module_xyz: ModuleNotFoundError" in r.output
    assert not os.path.exists(_path(name))


@pytest.mark.timeout(60)
def test_invalid_segments_are_listed_with_their_error(bogus_segment: Any) -> None:
    zeros = bogus_segment("zeros", b"\0" * 8192)
    empty = bogus_segment("empty", b"")
    open_mode = bogus_segment("mode", b"\0" * 8192, mode=0o644)
    r = _invoke("ls", "--json")
    assert r.exit_code == 0
    import json

    rows = {row["name"]: row for row in json.loads(r.output)}
    for name in (zeros, empty, open_mode):
        assert "error" in rows[name], rows[name]
    assert "refusing" in rows[open_mode]["error"]
    assert rows[open_mode]["suspicious"] == "a file of mode 644"  # not a segment of ours at all
    assert "suspicious" not in rows[zeros] and "suspicious" not in rows[empty]  # ours, invalid
    r = _invoke("ls")
    assert r.exit_code == 0 and "Traceback" not in r.output
    for name in (zeros, empty, open_mode):
        assert name in r.output
    # prune never removes what it cannot prove stale
    r = _invoke("prune", "--yes", zeros, empty, open_mode)
    assert r.exit_code == 0, r.output
    assert "no stale runtimes" in r.output
    for name in (zeros, empty, open_mode):
        assert os.path.exists(_path(name))
    r = _invoke("stop", zeros)
    assert r.exit_code == 1 and "Traceback" not in r.output


@pytest.mark.timeout(60)
def test_prune_ignores_files_that_are_not_ours() -> None:
    # another user's prefix and a non-shmrt name: never listed, never removed
    other = f"shmrt.{os.geteuid() + 1}.{_name('other')}"
    plain = f"not-shmrt-{os.getpid()}-{secrets.token_hex(3)}"
    paths = [f"{SHM_DIR}/{other}", f"{SHM_DIR}/{plain}"]
    try:
        for p in paths:
            with open(p, "wb") as f:
                f.write(b"\0" * 4096)
        r = _invoke("ls", "--json")
        assert other not in r.output and plain not in r.output
        r = _invoke("prune")  # (no --yes: other tests' stale runtimes are theirs to remove)
        assert r.exit_code == 0
        assert other not in r.output and plain not in r.output
        r = _invoke("prune", "--yes", other.split(".", 2)[2])
        assert r.exit_code == 0 and "no runtime named" in r.output
        assert all(os.path.exists(p) for p in paths)
    finally:
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)


@pytest.mark.timeout(60)
def test_tool_hooks_pass_arguments_through(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def fake(module: str, code: int) -> None:
        def main(arg: Any = None) -> int:
            calls.append((module, arg))
            return code

        mod = types.ModuleType(module)
        mod.main = main  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module, mod)

    fake("shmrt.tools.inspect", 3)
    fake("shmrt.tools.bench", 0)
    fake("shmrt.tools.demo", 0)
    r = _invoke("inspect", "rt1", "--json", "--check")
    assert r.exit_code == 3
    assert calls[-1] == ("shmrt.tools.inspect", ["rt1", "--json", "--check"])
    r = _invoke("bench", "rtt", "map", "--workers", "2", "--repeat", "3", "--json", "out.json",
                "--quick", "--scale", "0.1")
    assert r.exit_code == 0, r.output
    assert calls[-1] == ("shmrt.tools.bench", ["rtt", "map", "--scale", "0.1", "--workers", "2",
                                               "--repeat", "3", "--json", "out.json", "--quick"])
    r = _invoke("bench")
    assert calls[-1] == ("shmrt.tools.bench", [])
    r = _invoke("demo", "--workers", "2")
    assert r.exit_code == 0 and calls[-1] == ("shmrt.tools.demo", 2)
    r = _invoke("demo")
    assert calls[-1] == ("shmrt.tools.demo", None)


@pytest.mark.timeout(60)
def test_missing_tool_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shmrt.tools.inspect", None)  # import raises
    r = _invoke("inspect", "x")
    assert r.exit_code == 1 and "not available" in r.output


# ---- real runtimes --------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_start_submit_ls_stats_connect_stop(runtime_factory: Any) -> None:
    import json

    import helpers_cli

    rt: Runtime = runtime_factory("life")
    rt.wait_ready()
    name = rt.name

    r = _run("submit", name, "helpers_cli:add", "3", "4")
    assert (r.returncode, r.stdout) == (0, "7\n"), r.stderr
    r = _run("submit", name, "helpers_cli:add", '"a"', "b", "-k", 'c="c"')
    assert (r.returncode, r.stdout) == (0, '"abc"\n'), r.stderr
    r = _run("submit", name, "helpers_cli:echo", "--", "-1", "[1, 2]", "{\"k\": null}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [[-1, [1, 2], {"k": None}], {}]
    r = _run("submit", name, "helpers_cli:as_set", "1")
    assert (r.returncode, r.stdout) == (0, "{1}\n"), r.stderr
    r = _run("submit", name, "helpers_cli:boom", "kaboom")
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" in r.stderr and "ValueError: kaboom" in r.stderr
    assert "helpers_cli.py" in r.stderr  # the worker's traceback, not ours

    # a client from this process: submit and map
    client = shmrt.connect(name)
    try:
        assert client.submit(helpers_cli.add, 1, 2).result(timeout=30) == 3
        assert list(client.map(helpers_cli.square, range(50), timeout=30)) == [
            x * x for x in range(50)]
    finally:
        client.shutdown(wait=True)

    r = _invoke("ls", "--json")
    assert r.exit_code == 0
    row = next(x for x in json.loads(r.output) if x["name"] == name)
    assert row["workers"] == 2 and row["coordinator"] == "alive"
    assert row["run_state"] == "running"
    assert row["coord_pid"] == rt.proc.pid  # type: ignore[union-attr]
    assert row["completed"] >= 7 and row["slots_total"] > 0
    r = _invoke("ls")
    assert r.exit_code == 0
    line = next(ln for ln in r.output.splitlines() if ln.startswith(name))
    assert "alive" in line and "running" in line

    r = _invoke("stats", name, "--json")
    assert r.exit_code == 0
    st = json.loads(r.output)
    assert sorted(w["pid"] for w in st["workers"]) == sorted(p for p, _ in rt.pids)
    assert st["completed"] >= 7 and st["coordinator"] == "alive"
    r = _invoke("stats", name)
    assert r.exit_code == 0 and f"runtime {name}" in r.output
    assert all(str(p) in r.output for p, _ in rt.pids)

    # a second runtime of the same name is refused, nothing is spawned
    r = _invoke("start", name, "--workers", "1")
    assert r.exit_code == 1 and "already exists" in r.output

    r = _run("stop", name, cmd=SCRIPT)
    assert r.returncode == 0, r.stderr
    assert "stopped" in r.stdout
    assert not os.path.exists(rt.path)
    assert rt.proc is not None and rt.proc.wait(30) == 0
    assert "SIGTERM" in rt.stderr()
    _wait_until(lambda: not rt.workers_alive(), 10, "the workers to exit")
    r = _invoke("stop", name)
    assert r.exit_code == 1 and "no runtime named" in r.output


@pytest.mark.timeout(60)
def test_ctrl_c_stops_cleanly(runtime_factory: Any) -> None:
    rt: Runtime = runtime_factory("sigint", workers=1)
    rt.wait_ready()
    assert rt.proc is not None
    rt.proc.send_signal(signal.SIGINT)
    assert rt.proc.wait(30) == 0, rt.stderr()
    assert "SIGINT" in rt.stderr() and "stopped" in rt.stderr()
    assert not os.path.exists(rt.path)
    _wait_until(lambda: not rt.workers_alive(), 10, "the workers to exit")


@pytest.mark.timeout(60)
def test_stale_runtime_and_prune(runtime_factory: Any) -> None:
    import json

    rt: Runtime = runtime_factory("stale")
    rt.wait_ready()
    assert rt.proc is not None
    rt.proc.kill()  # the coordinator dies without cleaning up
    rt.proc.wait(30)
    _wait_until(lambda: not rt.workers_alive(), 10, "the orphaned workers to exit")
    assert os.path.exists(rt.path)

    r = _invoke("ls", "--json")
    row = next(x for x in json.loads(r.output) if x["name"] == rt.name)
    assert row["coordinator"] == "dead"
    assert "stale" in _invoke("ls").output

    r = _invoke("stop", rt.name)
    assert r.exit_code == 1 and "stale" in r.output and "shmrt prune" in r.output
    r = _invoke("submit", rt.name, "helpers_cli:add", "1", "2")
    assert r.exit_code == 1 and "Traceback" not in r.output

    r = _invoke("prune")  # all of ours: lists, removes nothing
    assert r.exit_code == 0 and f"stale: {rt.name}" in r.output and "--yes" in r.output
    assert os.path.exists(rt.path)
    r = _invoke("prune", rt.name)
    assert r.exit_code == 0 and f"stale: {rt.name}" in r.output
    assert os.path.exists(rt.path)
    r = _invoke("prune", "--yes", rt.name)
    assert r.exit_code == 0 and f"removed {rt.name}" in r.output
    assert not os.path.exists(rt.path)
    r = _invoke("prune", rt.name)
    assert "no runtime named" in r.output


@pytest.mark.timeout(60)
def test_submit_gives_up_when_the_coordinator_dies(runtime_factory: Any) -> None:
    from shmrt.segment import attach

    rt: Runtime = runtime_factory("coorddeath", workers=1)
    rt.wait_ready()
    assert rt.proc is not None
    sub = subprocess.Popen([*PY_CLI, "submit", rt.name, "helpers_cli:nap", "30"], cwd=TESTS,
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seg = attach(rt.name, writable=False)
        try:
            _wait_until(lambda: seg.load64(Header.TABLE["submitted"]) >= 1, 30,
                        "the task to be submitted")
        finally:
            seg.close()
        rt.proc.kill()
        rt.proc.wait(30)
        out, err = sub.communicate(timeout=20)
        assert sub.returncode == 1, (out, err)
        assert "coordinator died" in err or "died before the task finished" in err, err
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.communicate()
    _wait_until(lambda: not rt.workers_alive(), 10, "the orphaned workers to exit")
    assert _invoke("prune", "--yes", rt.name).exit_code == 0
    assert not os.path.exists(rt.path)


@pytest.mark.timeout(30)
def test_prune_removes_a_stale_segment_of_an_older_layout_version() -> None:
    """An upgrade leaves segments shmrt can no longer validate; their magic and
    coordinator pid/start sit at frozen offsets, so prune can still prove
    them stale.  A live coordinator's old segment is left alone."""
    import struct

    from shmrt import _core

    h = Header.TABLE
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    made = []
    try:
        for tag, pid in (("dead", dead.pid), ("live", os.getpid())):
            name = f"oldver-{tag}-{secrets.token_hex(3)}"
            head = bytearray(8192)
            struct.pack_into("<Q", head, h["magic"], _core.MAGIC)
            struct.pack_into("<Q", head, h["version"], _core.SHMRT_LAYOUT_VERSION - 1)
            struct.pack_into("<Q", head, h["coord_pid"], pid)
            struct.pack_into("<Q", head, h["coord_start"], proc_start_time(pid) or 12345)
            path = SHM_DIR + shm_name(name)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.write(fd, head)
            os.close(fd)
            made.append((name, path))
        (dead_name, dead_path), (live_name, live_path) = made
        listed = _invoke("prune", dead_name, live_name)
        assert listed.exit_code == 0
        assert f"stale: {dead_name}" in listed.output
        assert live_name not in listed.output.replace(f"skipping {live_name}", "")
        assert os.path.exists(dead_path)
        assert _invoke("prune", "--yes", dead_name, live_name).exit_code == 0
        assert not os.path.exists(dead_path)
        assert os.path.exists(live_path)
    finally:
        for _, path in made:
            if os.path.exists(path):
                os.unlink(path)


@pytest.mark.timeout(60)
def test_relay_bad_arguments_are_one_line(tmp_path: Path) -> None:
    """`shmrt relay` errors are one line with an exit code, like the other
    commands; nothing is started for them."""
    cases = [
        (["--listen", "127.0.0.1:99999", "--to", "127.0.0.1:9"], 2, "port 0-65535"),
        (["--listen", "nonsense", "--to", "127.0.0.1:9"], 2, "HOST:PORT"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--transform", "nosuch_mod_xyz:fn"],
         1, "cannot import 'nosuch_mod_xyz'"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--transform", "shmrt.transforms"],
         1, "expected MODULE:FUNCTION"),
    ]
    for args, code, text in cases:
        p = _run("relay", *args, timeout=30)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert p.returncode == code and text in p.stderr, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and len(lines) <= 3, p.stderr


def test_resolve_finds_modules_in_the_current_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from shmrt.resolve import ResolveError, resolve

    (tmp_path / "mytransform_xyz.py").write_text("def up(p):\n    return bytes(p).upper()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert resolve("mytransform_xyz:up")(b"ab") == b"AB"
    with pytest.raises(ResolveError, match="has no attribute 'nope'"):
        resolve("mytransform_xyz:nope")
    with pytest.raises(ResolveError, match="is not callable"):
        resolve("os:sep")


def test_the_console_entry_point_is_light() -> None:
    """Spawn workers import the console script (a command's ``__main__``):
    its entry point must not import click or the commands (shmrt/console.py)."""
    code = ("import sys, shmrt.console; "
            "print(sorted(m for m in ('click', 'shmrt.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)
