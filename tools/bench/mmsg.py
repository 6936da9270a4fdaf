"""recvmmsg / sendmmsg from Python through ctypes: many datagrams per system
call, for the relay benchmark's load generator (so the generator, which
shares the 2 cores with the relay under test, costs little per packet) and
for the plain ``mmsg`` forwarder it is compared against.

Buffers are allocated once; ``recv`` returns memoryviews into them, valid
until the next ``recv``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from ctypes import POINTER, Structure, c_int, c_size_t, c_uint, c_uint32, c_void_p

MSG_DONTWAIT = 0x40
MSG_WAITFORONE = 0x10000  # block for the first datagram only


class _Iovec(Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


class _Msghdr(Structure):
    _fields_ = [("msg_name", c_void_p), ("msg_namelen", c_uint32), ("msg_iov", POINTER(_Iovec)),
                ("msg_iovlen", c_size_t), ("msg_control", c_void_p),
                ("msg_controllen", c_size_t), ("msg_flags", c_int)]


class _Mmsghdr(Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.recvmmsg.argtypes = [c_int, POINTER(_Mmsghdr), c_uint, c_int, c_void_p]
_libc.recvmmsg.restype = c_int
_libc.sendmmsg.argtypes = [c_int, POINTER(_Mmsghdr), c_uint, c_int]
_libc.sendmmsg.restype = c_int


class Batch:
    """``n`` datagram buffers of ``size`` bytes with their headers."""

    def __init__(self, n: int, size: int = 65536):
        self.n, self.size = n, size
        self.mem = ctypes.create_string_buffer(n * size)
        self.view = memoryview(self.mem).cast("B")
        self.iov = (_Iovec * n)()
        self.msgs = (_Mmsghdr * n)()
        base = ctypes.addressof(self.mem)
        for i in range(n):
            self.iov[i].iov_base = base + i * size
            self.iov[i].iov_len = size
            self.msgs[i].msg_hdr.msg_iov = ctypes.pointer(self.iov[i])
            self.msgs[i].msg_hdr.msg_iovlen = 1

    def buf(self, i: int) -> memoryview:
        return self.view[i * self.size:(i + 1) * self.size]

    def recv_n(self, sock: socket.socket, block: bool = False) -> int:
        """Receive up to n datagrams into buffers 0.. (lengths in
        ``length(i)``); how many (0: none, when not blocking).  Leaves every
        iov at its full size: do not ``send`` from a receiving Batch."""
        r = _libc.recvmmsg(sock.fileno(), self.msgs, self.n, MSG_WAITFORONE if block else MSG_DONTWAIT,
                           None)
        if r < 0:
            e = ctypes.get_errno()
            if e in (errno.EAGAIN, errno.EINTR):
                return 0
            raise OSError(e, os.strerror(e))
        return r

    def length(self, i: int) -> int:
        return self.msgs[i].msg_len

    def recv(self, sock: socket.socket, block: bool = False) -> list[memoryview]:
        """Up to n datagrams, as views into the buffers (valid until the next call)."""
        for i in range(self.n):
            self.iov[i].iov_len = self.size
        r = self.recv_n(sock, block)
        v, size, msgs = self.view, self.size, self.msgs
        return [v[i * size:i * size + msgs[i].msg_len] for i in range(r)]

    def send(self, sock: socket.socket, lens: list[int]) -> None:
        """Send buffers 0..len(lens)-1 (lens[i] bytes each) on a connected
        socket; all of them (a short count is retried)."""
        k = len(lens)
        for i, n in enumerate(lens):
            if self.iov[i].iov_len != n:
                self.iov[i].iov_len = n
        self.send_n(sock, k)

    def send_n(self, sock: socket.socket, k: int) -> None:
        """Send buffers 0..k-1 at their iov lengths, all of them."""
        done = 0
        while done < k:
            r = _libc.sendmmsg(sock.fileno(), ctypes.byref(self.msgs[done]), k - done, 0)
            if r < 0:
                e = ctypes.get_errno()
                if e == errno.EINTR:
                    continue
                raise OSError(e, os.strerror(e))
            done += r


def forward(listen: socket.socket, out: socket.socket, count: int, batch: int = 64) -> None:
    """The plain recvmmsg/sendmmsg forwarder: ``count`` datagrams, unchanged."""
    b = Batch(batch)
    seen = 0
    while seen < count:
        got = b.recv(listen, block=True)
        if got:
            b.send(out, [len(m) for m in got])
            seen += len(got)
