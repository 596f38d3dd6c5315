"""Answers from the inference workers back to the HTTP processes: one OS pipe per HTTP process.

LitServe 0.2.19 offers two transports and neither holds up: the default sends every answer
through a multiprocessing manager process (two IPC round trips, plus a thread hop per answer
in the HTTP process), and its ZeroMQ one (`fast_queue=True`) is never selected (a misspelt
config field), connects workers to the wrong side of its broker, and on a worker's first
answer sends a `__ping__` message that HTTP process 0 fails to unpickle, which ends that
process's receive loop for good (every later request there times out).

Here each HTTP process owns the read end of a pipe; workers write pickled answers to the
pipe of the process that asked (a lock per pipe keeps concurrent writers' messages whole).
The reader is registered with the HTTP process's event loop, so an answer is picked up
without a thread or a poll. A pipe never drops a message; a full one makes the writer wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import pickle
from typing import Any

from litserve.transport.base import MessageTransport


class PipeTransport(MessageTransport):
    def __init__(self, consumers: int) -> None:
        ctx = mp.get_context("spawn")  # pickled into spawned workers, inherited by forks
        pipes = [ctx.Pipe(duplex=False) for _ in range(consumers)]
        self._readers = [r for r, _ in pipes]
        self._writers = [w for _, w in pipes]
        self._locks = [ctx.Lock() for _ in range(consumers)]
        self._inbox: asyncio.Queue | None = None  # per process, created on first receive

    # -- workers -------------------------------------------------------------------------------
    def send(self, item: Any, consumer_id: int) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        with self._locks[consumer_id]:
            self._writers[consumer_id].send_bytes(data)

    # -- HTTP processes ------------------------------------------------------------------------
    async def areceive(self, consumer_id: int | None = None, timeout: float | None = None,
                       block: bool = True) -> Any:
        if self._inbox is None:
            self._inbox = asyncio.Queue()
            reader = self._readers[consumer_id or 0]
            asyncio.get_running_loop().add_reader(reader.fileno(), self._drain, reader)
        if timeout is None:
            return await self._inbox.get()
        try:
            return await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            return None

    def _drain(self, reader: Any) -> None:
        """Readable: move every complete answer into the inbox."""
        try:
            while reader.poll():
                self._inbox.put_nowait(pickle.loads(reader.recv_bytes()))  # noqa: S301
        except (EOFError, OSError):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(reader.fileno())

    def close(self, **kwargs: Any) -> None:
        pass  # the pipes go with the processes

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_inbox"] = None
        return state
