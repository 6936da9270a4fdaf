"""Code written interactively just works: functions, lambdas and classes
defined in a ``__main__`` that workers cannot import (``python -c``, a
script read from stdin, an interactive session on a terminal) travel by
value; a script without ``if __name__ == "__main__":`` gets one clear error.
Each case is a real interpreter in a subprocess (or on a pty)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

PROGRAM = textwrap.dedent("""
    import shmrt

    def triple(x):
        return 3 * x

    class Box:
        def __init__(self, v):
            self.v = v

    def bump(b):
        return Box(b.v + 1)

    if __name__ == "__main__":
        k = 10
        with shmrt.Pool(max_workers=2) as pool:
            print("A", pool.submit(triple, 5).result(timeout=60))
            print("B", sum(pool.map(lambda x: x + k, range(10))))
            r = pool.submit(bump, Box(41)).result(timeout=60)
            print("C", type(r) is Box, r.v)
            print("D", pool.submit(Box, 7).result(timeout=60).v)
        print("done")
""")
EXPECTED = ["A 15", "B 145", "C True 42", "D 7", "done"]


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=90,
                          **kw)  # type: ignore[call-overload]


def test_python_dash_c() -> None:
    out = _run(["-c", PROGRAM])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == EXPECTED


def test_by_value_functions_are_registered_once() -> None:
    # the function table takes one entry per function, not per call; a new
    # lambda per call with the same code and values shares one entry too
    out = _run(["-c", textwrap.dedent("""
        import shmrt
        from shmrt.layout import Header

        def triple(x):
            return 3 * x

        if __name__ == "__main__":
            with shmrt.Pool(1) as pool:
                count = lambda: pool._seg.load64(Header.TABLE["fn_count"])
                pool.submit(triple, 1).result(timeout=60)
                before = count()
                for i in range(50):
                    assert pool.submit(triple, i).result(timeout=60) == 3 * i
                    assert pool.submit(lambda x: x + 1, i).result(timeout=60) == i + 1
                print(count() - before)
    """)])
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 1  # the lambda, once; triple was registered before


def test_script_from_stdin(tmp_path: Path) -> None:
    # __main__.__file__ is "<stdin>": spawn would make every worker open
    # "<cwd>/<stdin>" and die in its bootstrap
    out = _run(["-"], input=PROGRAM, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == EXPECTED
    assert "Traceback" not in out.stderr


class Repl:
    """``python -i`` on a pseudo-terminal, driven line by line."""

    def __init__(self) -> None:
        import pty

        self.master, slave = pty.openpty()
        env = dict(os.environ, PYTHON_BASIC_REPL="1", TERM="dumb", PYTHONSTARTUP="")
        self.proc = subprocess.Popen([sys.executable, "-i", "-q"], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.seen = ""

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def expect(self, text: str, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while text not in self.seen:
            left = end - time.monotonic()
            assert left > 0, f"{text!r} not seen; the terminal shows:\n{self.seen[-3000:]}"
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the interpreter exited
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {text!r}:\n{self.seen[-3000:]}")
                self.seen += chunk.decode(errors="replace")
        return self.seen

    def close(self) -> None:
        try:
            self.send("exit()")
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


def test_interactive_session_on_a_terminal() -> None:
    repl = Repl()
    try:
        repl.expect(">>> ")
        repl.send("import shmrt")
        repl.send("pool = shmrt.Pool(2)")
        repl.send("def triple(x):")
        repl.send("    return 3 * x")
        repl.send("")
        repl.send("class Box:")
        repl.send("    def __init__(self, v): self.v = v")
        repl.send("")
        repl.send("print('R1', pool.submit(triple, 5).result(timeout=60))")
        repl.expect("R1 15")
        repl.send("print('R2', list(pool.map(lambda b: b.v * 2, [Box(1), Box(2)])))")
        repl.expect("R2 [2, 4]")
        repl.send("def triple(x):")  # redefined in the session: the new one runs
        repl.send("    return 30 * x")
        repl.send("")
        repl.send("print('R3', pool.submit(triple, 5).result(timeout=60))")
        repl.expect("R3 150")
        repl.send("pool.shutdown(); print('R4 closed')")
        repl.expect("R4 closed")
        assert "Traceback" not in repl.seen, repl.seen
    finally:
        repl.close()


def test_missing_main_guard_is_one_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "noguard.py"
    script.write_text(textwrap.dedent("""
        import shmrt

        def square(x):
            return x * x

        pool = shmrt.Pool(2)
        print(list(pool.map(square, range(10))))
        pool.shutdown()
    """))
    t0 = time.monotonic()
    out = _run([str(script)], cwd=tmp_path)
    elapsed = time.monotonic() - t0
    assert out.returncode != 0
    err = out.stderr
    assert 'if __name__ == "__main__":' in err, err
    assert err.count("Traceback") == 1, err  # the parent's, nothing from workers
    assert len(err.splitlines()) < 40, err
    assert "BrokenPool" in err
    assert elapsed < 60  # no restart loop


def test_a_scripts_workers_import_its_main_without_multiprocessing(tmp_path: Path) -> None:
    """Workers import a script's ``__main__`` as spawn does (as
    ``__mp_main__``, aliased to ``__main__``) without importing
    multiprocessing (~7 ms of each worker's start); a main that does import
    it during that import finds the "bootstrapping" flag set, and the flag
    is gone once the import is over."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent("""
        import sys
        import shmrt, shmrt.zygote

        SEEN = None
        if "--mp" in sys.argv:
            from multiprocessing import process
            SEEN = getattr(process.current_process(), "_inheriting", False)

        def probe():
            main = sys.modules["__main__"]
            from multiprocessing import process  # (the task's own import)
            return (main.__name__, sys.modules["__mp_main__"] is main, main.SEEN,
                    getattr(process.current_process(), "_inheriting", False))

        def loaded():
            return "multiprocessing" in sys.modules

        if __name__ == "__main__":
            shmrt.zygote.stop()  # this pool's workers: forked before the zygote warms up
            with shmrt.Pool(1) as pool:
                print(pool.submit(loaded).result(60), pool.submit(probe).result(60))
    """))
    plain = _run([str(script)], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split() == ["False", "('__mp_main__',", "True,", "None,", "False)"]
    with_mp = _run([str(script), "--mp"], cwd=tmp_path)
    assert with_mp.returncode == 0, with_mp.stderr
    assert with_mp.stdout.split() == ["True", "('__mp_main__',", "True,", "True,", "False)"]


def test_a_module_run_with_dash_m_is_the_workers_main(tmp_path: Path) -> None:
    """``python -m modmain``: workers import ``modmain`` as ``__mp_main__``
    (spawn's _fixup_main_from_name), so its functions resolve by reference."""
    (tmp_path / "modmain.py").write_text(textwrap.dedent("""
        import sys
        import shmrt

        def where(x):
            main = sys.modules["__main__"]
            return x * 2, main.__name__, main.__spec__.name

        if __name__ == "__main__":
            with shmrt.Pool(1) as pool:
                print(pool.submit(where, 21).result(60))
    """))
    out = _run(["-m", "modmain"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(42, '__mp_main__', 'modmain')"
