"""Bounds at the connection level: uvicorn's httptools protocol with the limits it lacks.

uvicorn 0.3x leaves these open (issue 10, finding 4): no limit on header size or count (an
8 MB header was accepted), no deadline for a client that sends its request slowly, no timer
on a connection that never sends anything (keep-alive timing only starts after a response),
and its concurrency cap answers *every* path with a plain-text 503 without `Retry-After` -
probes included. This subclass adds, per connection:

* an idle timer from the moment the connection opens (`keepalive_timeout`), reusing
  uvicorn's own keep-alive timer, so silent connections are closed;
* a header deadline (`read_timeout` from the first byte of a request to the end of its
  headers; the body has its own deadline in serve.gate) - 408 and close;
* header limits: total header bytes (`max_header_bytes`, counted as bytes arrive, so an 8 MB
  header is refused after the first few KiB) and count (`max_headers`) - 431 and close;
* the connection cap (`max_connections` per HTTP process): above it, a JSON 503 with
  `Retry-After`, except for the probe paths, which are always answered - a load balancer
  must be able to tell "busy" from "dead".

Replies written here (408, 431, 400 for bytes that are not HTTP) are JSON with
`Connection: close`, like the application's.
"""

from __future__ import annotations

import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from serve import metrics
from serve.routes import PROBE_PATHS


class _Refused(Exception):
    def __init__(self, status: int, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.reason = status, detail, reason


def raw_reply(status: int, detail: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = [STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
    head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in extra]
    return b"".join(head) + b"\r\n" + body


async def busy(scope: dict, receive: Any, send: Any) -> None:
    """The ASGI app for a request over the connection cap."""
    body = json.dumps({"detail": "too many open connections; retry later"}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def bounded(*, max_header_bytes: int, max_headers: int, read_timeout: float,
            max_connections: int) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` setting, with these limits."""

    class BoundedProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._in_head = True  # until a request's headers are complete
            self._head_bytes = self._header_count = self._header_size = 0
            self._head_timer = None
            # Idle from the start: uvicorn arms this timer only after a first response.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            try:
                self._unset_keepalive_if_required()
                self.parser.feed_data(data)
                # Headers still incomplete after this many bytes: refuse without buffering
                # the rest (complete headers are measured exactly in on_header).
                if self._in_head and self._head_bytes > max_header_bytes + 1024:
                    raise _Refused(431, f"request headers larger than {max_header_bytes} "
                                        "bytes", "headers_too_large")
            except _Refused as e:
                self._refuse(e)
            except httptools.HttpParserCallbackError as e:
                cause = e.__context__
                if isinstance(cause, _Refused):
                    self._refuse(cause)
                else:
                    self._refuse(_Refused(400, "invalid HTTP request", "bad_http"))
            except httptools.HttpParserError:
                self._refuse(_Refused(400, "invalid HTTP request", "bad_http"))
            except httptools.HttpParserUpgrade:
                self._refuse(_Refused(400, "protocol upgrades are not supported", "bad_http"))

        def _refuse(self, e: _Refused) -> None:
            self._stop_head_timer()
            metrics.get().rejected.labels(reason=e.reason).inc()
            if not self.transport.is_closing():
                self.transport.write(raw_reply(e.status, e.detail))
                self.transport.close()

        def _stop_head_timer(self) -> None:
            if getattr(self, "_head_timer", None) is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self._in_head:
                self._refuse(_Refused(408, f"request headers not received within "
                                           f"{read_timeout:g} s", "slow_request"))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._header_count, self._header_size = True, 0, 0
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(read_timeout, self._too_slow)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            self._header_size += len(name) + len(value) + 4
            if self._header_count > max_headers:
                raise _Refused(431, f"more than {max_headers} request headers",
                               "too_many_headers")
            if self._header_size > max_header_bytes:
                raise _Refused(431, f"request headers larger than {max_header_bytes} bytes",
                               "headers_too_large")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            self._stop_head_timer()
            if len(self.connections) > max_connections:
                path = httptools.parse_url(self.url).path.decode("latin-1")
                if path not in PROBE_PATHS:
                    metrics.get().rejected.labels(reason="connections").inc()
                    app, self.app = self.app, busy
                    try:
                        super().on_headers_complete()
                    finally:
                        self.app = app
                    return
            super().on_headers_complete()

    return BoundedProtocol
