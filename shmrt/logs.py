"""Worker logging: records logged in tasks reach the parent's handlers.

Why: a worker is a fresh interpreter (spawn) with logging unconfigured, so a
task's ``logger.info(...)`` is dropped and its warnings go to the worker's
stderr through logging's last-resort handler, unformatted.  Like loky and
Ray's ``log_to_driver``, a pool whose parent configured logging (some logger
has a handler when the pool starts) gives each worker

* the parent's logger levels (the root's and every explicitly set one), so
  a record the parent would drop is dropped in the worker, unsent;
* one handler on the root logger that sends each record, as a dict of plain
  values (message already formatted with its args, exception and stack as
  text; no pickling of arbitrary objects), as one datagram on a Unix
  socketpair owned by the pool.

A thread in the coordinator re-emits them with ``logging.makeLogRecord`` and
``logging.getLogger(record.name).handle(record)``: the parent's handlers,
filters and format apply, and ``record.process`` is the worker's pid.
Records arrive asynchronously (a task's future may resolve first).  Workers
of a parent that never configured logging import nothing of this.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from typing import Any

MAX_DATAGRAM = 60_000  # longer messages and tracebacks are cut to fit
_PLAIN = (str, int, float, bool, type(None))


def parent_levels() -> dict[str, int] | None:
    """{logger name: level} to reproduce in workers ("" is the root), or
    None when this process did not configure logging (nothing to ship)."""
    if "logging" not in sys.modules:
        return None
    root = logging.getLogger()
    loggers = [lg for lg in root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    if not root.handlers and not any(lg.handlers for lg in loggers):
        return None
    levels = {"": root.level}
    for lg in loggers:
        if lg.level != logging.NOTSET:
            levels[lg.name] = lg.level
    return levels


# ---- coordinator side ----------------------------------------------------------
class LogReceiver:
    """The pool's end of the socketpair and the thread that re-emits."""

    def __init__(self) -> None:
        self.recv_sock, self.send_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._thread = threading.Thread(target=self._loop, name="shmrt-logs", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import msgspec

        dec = msgspec.msgpack.Decoder(dict)
        while True:
            try:
                data = self.recv_sock.recv(MAX_DATAGRAM + 4096)
            except OSError:
                return
            if not data:  # close(): everything sent before is handled
                return
            try:
                rec = logging.makeLogRecord(dec.decode(data))
                logger = logging.getLogger(rec.name if rec.name != "root" else None)
                if logger.isEnabledFor(rec.levelno):
                    logger.handle(rec)
            except Exception:  # a broken handler must not stop the others' records
                pass

    def close(self) -> None:
        """After the workers exited: let the thread drain, then stop it."""
        try:
            self.send_sock.send(b"")
        except OSError:
            pass
        self._thread.join(5.0)
        self.recv_sock.close()
        self.send_sock.close()


# ---- worker side ---------------------------------------------------------------
def install(sock: socket.socket, levels: dict[str, int]) -> None:
    """In a worker: the parent's levels and the shipping handler on root."""
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
    logging.getLogger().addHandler(_ShipHandler(sock))


class _ShipHandler(logging.Handler):
    """Sends each record to the coordinator as a msgpack dict."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        import msgspec

        self.sock = sock
        self.enc = msgspec.msgpack.Encoder()

    def emit(self, record: Any) -> None:
        try:
            d = {k: v for k, v in record.__dict__.items() if isinstance(v, _PLAIN)}
            d["msg"] = record.getMessage()[:MAX_DATAGRAM // 3]
            d["args"] = None
            if record.exc_info and not record.exc_text:
                d["exc_text"] = logging.Formatter().formatException(record.exc_info)
            for k in ("exc_text", "stack_info"):  # keep the ends: where it was raised
                v = d.get(k)
                if isinstance(v, str) and v:
                    d[k] = v[-MAX_DATAGRAM // 4:]
            self.sock.send(self.enc.encode(d))
        except Exception:
            self.handleError(record)
