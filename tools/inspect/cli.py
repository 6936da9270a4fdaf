"""``shmrt inspect``: argument parsing, the run modes, and exit codes.

Why argparse and not click: the inspector is a tool of its own
(``python -m shmrt.tools.inspect``) and the ``shmrt`` CLI hands it its raw
arguments (``main(argv) -> int``), so it owns its options and its exit codes:

    0   inspected (lints, if any, were reported but --check was not given)
    1   --check and at least one enabled lint fired
    2   the segment, snapshot or arguments could not be used (one line on
        stderr, never a traceback; --debug shows the traceback of an
        unexpected failure)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import model
from .analyze import FLAGS, LINTS, Options, build_report
from .layout import InspectError
from .render import DEFAULT_VIEWS, VIEWS, lint_lines, render
from .source import (
    DEFAULT_MAX_BYTES,
    SegmentSource,
    find_by_pid,
    load_snapshot,
    runtime_path,
    save_snapshot,
)

if TYPE_CHECKING:
    from rich.console import Console

PROG = "shmrt inspect"
PIPE_WIDTH = 160


class _Toggle(argparse.Action):
    """-W NAME / -A NAME, kept in command-line order (later wins)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        ns: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(ns, self.dest) or [])
        items.append((self.const, values))
        setattr(ns, self.dest, items)


def _nonneg(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {v!r}") from None
    if not f >= 0 or f == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {v!r}")
    return f


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Read-only view of a shmrt runtime's segment: summary, workers, "
        "slots, relay rings, latency and lints.  Never writes, never unpickles.",
        epilog="exit status: 0 ok, 1 lints fired under --check, 2 unusable segment/arguments",
    )
    src = p.add_argument_group("what to inspect (one of)")
    src.add_argument(
        "name", nargs="?", metavar="NAME", help="runtime name (/dev/shm/shmrt.<euid>.NAME)"
    )
    src.add_argument(
        "--pid",
        type=int,
        metavar="PID",
        help="the runtime whose coordinator, a worker or a relay send worker has this pid",
    )
    src.add_argument(
        "--from", dest="from_file", metavar="FILE", help="a snapshot written by --save"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--view",
        action="append",
        metavar="VIEW",
        help=f"views to show, repeatable or comma-separated: {', '.join(VIEWS)}, "
        f"all (default: {','.join(DEFAULT_VIEWS)})",
    )
    out.add_argument(
        "--json", action="store_true", help="print the report as JSON (schema: --print-schema)"
    )
    out.add_argument("--check", action="store_true", help="exit 1 if any enabled lint fires")
    out.add_argument("--watch", action="store_true", help="refresh live until Ctrl-C")
    out.add_argument(
        "--interval",
        type=_nonneg,
        default=1.0,
        metavar="S",
        help="--watch refresh interval (default 1.0)",
    )
    out.add_argument("--save", metavar="FILE", help="also write a snapshot to FILE (mode 0600)")
    out.add_argument(
        "--sample",
        type=_nonneg,
        default=0.2,
        metavar="S",
        help="measure tasks/s over this long (0: off; default 0.2)",
    )
    out.add_argument(
        "--limit",
        type=int,
        default=50,
        metavar="N",
        help="rows of the slots table (default 50; --json lists all)",
    )
    out.add_argument(
        "--print-schema",
        action="store_true",
        help="print the JSON Schema of --json output and exit",
    )
    out.add_argument("--list-lints", action="store_true", help="list the lints and exit")
    flt = p.add_argument_group("slot filters")
    flt.add_argument(
        "--state",
        action="append",
        metavar="FLAG",
        help=f"only slots with this flag ({', '.join(FLAGS)}), repeatable",
    )
    flt.add_argument("--worker", type=int, metavar="WID", help="only slots owned by worker WID")
    flt.add_argument(
        "--older-than",
        type=_nonneg,
        metavar="S",
        help="only slots submitted more than S seconds ago",
    )
    flt.add_argument("--tree", action="store_true", help="show slots as spawn trees")
    lint = p.add_argument_group("lints")
    lint.add_argument(
        "-W",
        dest="toggles",
        action=_Toggle,
        const=True,
        metavar="LINT",
        help="enable a lint ('all': every lint)",
    )
    lint.add_argument(
        "-A",
        dest="toggles",
        action=_Toggle,
        const=False,
        metavar="LINT",
        help="disable (allow) a lint ('all': every lint)",
    )
    lint.add_argument(
        "--stuck-after",
        type=_nonneg,
        default=30.0,
        metavar="S",
        help="stuck-in-queue: waiting longer than S (default 30)",
    )
    lint.add_argument(
        "--leak-after",
        type=_nonneg,
        default=30.0,
        metavar="S",
        help="refcount-leak: COMPLETE longer than S (default 30)",
    )
    lint.add_argument(
        "--slow-factor",
        type=_nonneg,
        default=10.0,
        metavar="F",
        help="long-running: over F x the p99 run time (default 10)",
    )
    lint.add_argument(
        "--slow-min",
        type=_nonneg,
        default=5.0,
        metavar="S",
        help="long-running: and over S seconds (default 5)",
    )
    lint.add_argument(
        "--slow-samples",
        type=int,
        default=20,
        metavar="N",
        help="long-running: needs N finished tasks for a p99 (default 20)",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help="refuse segments whose region is larger (default 1 GiB)",
    )
    p.add_argument(
        "--debug", action="store_true", help="show a traceback on an unexpected internal error"
    )
    return p


def _views(raw: list[str] | None) -> list[str]:
    if not raw:
        return list(DEFAULT_VIEWS)
    out: list[str] = []
    for item in raw:
        for v in item.split(","):
            v = v.strip().lower()
            if v == "all":
                out.extend(x for x in VIEWS if x not in out)
            elif v in VIEWS:
                if v not in out:
                    out.append(v)
            elif v:
                raise InspectError(f"unknown view {v!r} (choose from {', '.join(VIEWS)}, all)")
    return out


def options(args: argparse.Namespace) -> Options:
    enabled = set(LINTS)
    for on, name in args.toggles or []:
        names = list(LINTS) if name == "all" else [name]
        if name != "all" and name not in LINTS:
            raise InspectError(f"unknown lint {name!r} (see --list-lints)")
        enabled = enabled | set(names) if on else enabled - set(names)
    states = set()
    for s in args.state or []:
        key = s.strip().upper().replace("-", "_")
        if key not in FLAGS:
            raise InspectError(f"unknown slot state {s!r} (choose from {', '.join(FLAGS)})")
        states.add(key)
    if args.limit < 0 or args.slow_samples < 1:
        raise InspectError("--limit must be >= 0 and --slow-samples >= 1")
    return Options(
        states=frozenset(states),
        worker=args.worker,
        older_than_s=args.older_than,
        enabled=frozenset(enabled),
        stuck_after_s=args.stuck_after,
        leak_after_s=args.leak_after,
        slow_factor=args.slow_factor,
        slow_min_s=args.slow_min,
        slow_samples=args.slow_samples,
    )


def _emit(report: model.Report, args: argparse.Namespace, views: list[str]) -> int:
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    elif args.check:
        for line in lint_lines(report.lints):
            print(line)
    else:
        _console().print(render(report, views, tree=args.tree, limit=args.limit))
    sys.stdout.flush()
    return 1 if args.check and report.lints else 0


def _console() -> Console:
    """A terminal gets its own width; a pipe or file gets wide lines (COLUMNS
    still wins) rather than tables squeezed into 80 columns."""
    from rich.console import Console

    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if wide else None)


def _rate(a: tuple[int, int] | None, b: tuple[int, int]) -> float | None:
    if a is None or b[0] <= a[0] or b[1] < a[1]:
        return None
    return (b[1] - a[1]) * 1e9 / (b[0] - a[0])


def _watch(src: SegmentSource, args: argparse.Namespace, opts: Options, views: list[str]) -> int:
    from rich.live import Live

    prev: tuple[int, int] | None = None
    live: Live | None = None
    try:
        if not args.json:
            live = Live(console=_console(), auto_refresh=False, redirect_stdout=False)
            live.start()
        while True:
            img = src.read()
            cur = (img.now_mono_ns, img.header.completed)
            report = build_report(img, opts, _rate(prev, cur))
            prev = cur
            if live is not None:
                live.update(render(report, views, tree=args.tree, limit=args.limit), refresh=True)
            else:
                sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
                sys.stdout.flush()
            time.sleep(max(args.interval, 0.05))
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()


def run(args: argparse.Namespace) -> int:
    if args.print_schema:
        print(msgspec.json.format(msgspec.json.encode(model.schema()), indent=2).decode())
        return 0
    if args.list_lints:
        for d in LINTS.values():
            print(f"{d.name:22} {d.severity:8} {d.explanation}")
        return 0
    given = [x for x in (args.name, args.pid, args.from_file) if x is not None]
    if len(given) != 1:
        raise InspectError("give exactly one of a runtime NAME, --pid PID or --from FILE")
    views = _views(args.view)
    opts = options(args)
    if args.check and args.watch:
        raise InspectError("--check and --watch cannot be combined")
    if args.from_file is not None:
        if args.watch or args.save:
            raise InspectError("--watch and --save need a live segment, not --from")
        img = load_snapshot(args.from_file, max_bytes=args.max_bytes)
        return _emit(build_report(img, opts), args, views)
    if args.pid is not None:
        path, name = find_by_pid(args.pid, max_bytes=args.max_bytes)
    else:
        path, name = runtime_path(args.name), args.name
    with SegmentSource(path, name, max_bytes=args.max_bytes) as src:
        if args.watch:
            return _watch(src, args, opts, views)
        t0 = time.monotonic()
        c0 = src.completed() if args.sample > 0 else None
        img = src.read()
        rate = None
        if c0 is not None:
            time.sleep(max(0.0, args.sample - (time.monotonic() - t0)))
            rate = _rate(c0, src.completed())
        if args.save:
            save_snapshot(img, args.save)
            print(f"{PROG}: snapshot saved to {args.save}", file=sys.stderr)
        return _emit(build_report(img, opts, rate), args, views)


def _one_line(msg: str) -> str:
    return " ".join(msg.split()) or "error"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the inspector on ``argv`` (without the program name); returns the
    exit status (0 ok, 1 lints under --check, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        return run(args)
    except InspectError as e:
        print(f"{PROG}: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        print(f"{PROG}: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # the one-line promise holds even for our own bugs
        if args.debug:
            raise
        print(
            f"{PROG}: internal error: {type(e).__name__}: {_one_line(str(e))} "
            "(--debug for a traceback)",
            file=sys.stderr,
        )
        return 2
