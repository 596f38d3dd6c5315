"""The worker's batching loop: LitServe's BatchedLoop with a different way to collect a batch.

LitServe 0.2.19 collects a batch by polling its queue for `batch_timeout` seconds every time,
even when nothing else is coming: with batch_timeout > 0 every request, even the only one,
waits the full timeout; with batch_timeout = 0 the worker spins on an empty queue at 100% CPU.

Here a worker blocks (no CPU) until a request arrives and takes whatever else is already queued
(up to max_batch_size). Only if that found company - the server is busy - does it wait up to
`batch_timeout` for stragglers: a predict call has a large fixed cost (~10 ms for the default
model, whatever the batch size), so under load a slightly later, larger batch is cheaper per
request, while a lone request on an idle server is scored at once. Requests that waited longer
than the request timeout are answered 504 without being run, as LitServe does.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop

_IDLE_WAKEUP = 1.0  # seconds; a blocked worker still wakes up now and then


class GreedyBatchLoop(BatchedLoop):
    def get_batch_requests(self, lit_api: Any, request_queue: Any,
                           transport: Any) -> tuple[list, list]:
        try:
            first = request_queue.get(timeout=_IDLE_WAKEUP)
        except (Empty, ValueError):
            return [], []
        items = [first]
        deadline = time.monotonic() + lit_api.batch_timeout
        while len(items) < lit_api.max_batch_size:
            try:
                items.append(request_queue.get_nowait())
                continue
            except (Empty, ValueError):
                pass
            if len(items) == 1:  # alone: do not make it wait
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                items.append(request_queue.get(timeout=remaining))
            except (Empty, ValueError):
                break
        return self._split(lit_api, items)

    @staticmethod
    def _split(lit_api: Any, items: list) -> tuple[list, list]:
        timeout = lit_api.request_timeout
        apply_timeout = timeout not in (None, False, -1)
        now = time.monotonic()
        payloads, timed_out = [], []
        for item in items:
            if item == _SENTINEL_VALUE:
                raise _StopLoopError()
            response_queue_id, uid, timestamp, x_enc = item
            if apply_timeout and now - timestamp > timeout:
                timed_out.append((response_queue_id, uid))
            else:
                payloads.append((response_queue_id, uid, x_enc))
        return payloads, timed_out
