"""Answers from the inference workers back to the HTTP processes: one OS pipe per HTTP process.

LitServe 0.2.19 offers two transports and neither holds up: the default sends every answer
through a multiprocessing manager process (two IPC round trips, plus a thread hop per answer
in the HTTP process), and its ZeroMQ one (`fast_queue=True`) is never selected (a misspelt
config field), connects workers to the wrong side of its broker, and on a worker's first
answer sends a `__ping__` message that HTTP process 0 fails to unpickle, which ends that
process's receive loop for good (every later request there times out).

Here each HTTP process owns the read end of a pipe; workers write framed, pickled answers
(8-byte length, then the bytes) to the pipe of the process that asked, under a lock per pipe
so concurrent writers' frames never interleave. The read end is non-blocking and registered
with the HTTP process's event loop: each wake-up reads whatever the pipe holds into a buffer
and hands on every *complete* frame. An answer larger than the pipe's buffer (64 KiB) arrives
in several reads; that is the normal case here, not an error. (The previous version read with
`Connection.recv_bytes`, which on a non-blocking fd raises BlockingIOError mid-message; that
was taken for a dead pipe and the process stopped reading for good - finding 1 of issue 10.)

A real transport error (pipe closed, a frame that cannot be decoded) is logged, counted, and
marks the transport failed: the HTTP process then fails its pending requests, reports itself
not ready and exits, and the supervisor stops the service (serve/supervise.py). Never a
silent stall.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any

from litserve.transport.base import MessageTransport

log = logging.getLogger("serve.transport")

_LEN = struct.Struct("!Q")
_READ = 1 << 20
# No answer comes near this (1,000 records ~ 80 KiB); a larger length means a corrupt stream.
MAX_FRAME = 256 << 20


class TransportError(Exception):
    """The answer pipe of this HTTP process is unusable."""


def frame(item: Any) -> bytes:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


class FrameReader:
    """Reassembles frames from the chunks a non-blocking read returns."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[Any]:
        buf = self._buf
        buf += chunk
        out, pos = [], 0
        while len(buf) - pos >= _LEN.size:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME:
                raise TransportError(f"frame length {n} exceeds {MAX_FRAME}: corrupt stream")
            end = pos + _LEN.size + n
            if len(buf) < end:
                break  # the rest of this frame is still in the pipe
            out.append(pickle.loads(buf[pos + _LEN.size:end]))  # noqa: S301 - our workers
            pos = end
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


class PipeTransport(MessageTransport):
    def __init__(self, consumers: int) -> None:
        ctx = mp.get_context("spawn")  # pickled into spawned workers, inherited by forks
        pipes = [ctx.Pipe(duplex=False) for _ in range(consumers)]
        self._readers = [r for r, _ in pipes]
        self._writers = [w for _, w in pipes]
        self._locks = [ctx.Lock() for _ in range(consumers)]
        self._reset()

    def _reset(self) -> None:  # per-process state: never pickled, never inherited in use
        self._inbox: asyncio.Queue | None = None
        self._frames = FrameReader()
        self.failed: str | None = None
        self.on_failure: Callable[[str], None] | None = None

    # -- workers -------------------------------------------------------------------------------
    def send(self, item: Any, consumer_id: int) -> None:
        data = memoryview(frame(item))
        fd = self._writers[consumer_id].fileno()  # blocking: a full pipe makes the writer wait
        with self._locks[consumer_id]:
            while data:
                data = data[os.write(fd, data):]

    # -- HTTP processes ------------------------------------------------------------------------
    async def areceive(self, consumer_id: int | None = None, timeout: float | None = None,
                       block: bool = True) -> Any:
        if self._inbox is None:
            self._inbox = asyncio.Queue()
            fd = self._readers[consumer_id or 0].fileno()
            os.set_blocking(fd, False)
            asyncio.get_running_loop().add_reader(fd, self._drain, fd)
        if self.failed:
            raise TransportError(self.failed)
        try:
            item = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, TransportError):
            raise item
        return item

    def _drain(self, fd: int) -> None:
        """Readable: read what is there, pass on every complete frame."""
        try:
            while True:
                chunk = os.read(fd, _READ)
                if not chunk:
                    raise TransportError("answer pipe closed")
                for item in self._frames.feed(chunk):
                    self._inbox.put_nowait(item)
                if len(chunk) < _READ:
                    return
        except BlockingIOError:
            return  # drained; a partial frame waits in the buffer for the next wake-up
        except Exception as e:  # a closed pipe, an undecodable frame: the stream is lost
            self._fail(fd, f"{type(e).__name__}: {e}")

    def _fail(self, fd: int, reason: str) -> None:
        from serve import metrics

        self.failed = reason
        try:
            asyncio.get_running_loop().remove_reader(fd)
        except Exception:  # noqa: S110 - already gone
            pass
        metrics.get().transport_errors.inc()
        log.error("answer transport failed (%s); this HTTP process stops", reason)
        self._inbox.put_nowait(TransportError(reason))
        if self.on_failure is not None:
            self.on_failure(reason)

    def close(self, **kwargs: Any) -> None:
        pass  # the pipes go with the processes

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k in ("_readers", "_writers", "_locks")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()
