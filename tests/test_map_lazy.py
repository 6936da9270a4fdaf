"""map(..., buffersize=N) maps a 10**7-item generator in bounded memory: the
parent's peak RSS (getrusage, in a fresh subprocess) stays far below what
holding the items, futures or results would take."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(300)

N = 10_000_000
CODE = textwrap.dedent(f"""
    import resource, sys, shmrt

    def items():
        for i in range({N}):
            yield i

    if __name__ == "__main__":
        with shmrt.Pool(2) as pool:
            total = sum(pool.map(abs, items(), chunksize=10_000, buffersize=8))
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(total, peak_kib)
""")


# Linux keeps a process's peak RSS across exec, and subprocess forks (vforks)
# from this test process, whose own peak (pytest, numpy, scikit-learn, ...)
# would be reported: the measured interpreter is started from a small one.
VIA_SMALL_PARENT = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def test_ten_million_item_generator_in_bounded_memory() -> None:
    out = subprocess.run([sys.executable, "-c", VIA_SMALL_PARENT, sys.executable, "-c", CODE],
                         capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr
    total, peak_kib = (int(x) for x in out.stdout.split())
    assert total == N * (N - 1) // 2
    print(f"peak RSS of the parent mapping {N:,} items lazily: {peak_kib / 1024:.1f} MiB")
    # 10**7 ints held at once would be ~350 MiB (plus futures and results);
    # the interpreter, numpy-free shmrt and 8 chunks in flight need < 100 MiB
    assert peak_kib < 200 * 1024, peak_kib
