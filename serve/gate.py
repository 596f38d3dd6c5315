"""The outermost layer of every HTTP process: auth, payload limit, metrics, access log.

A plain ASGI middleware (no BaseHTTPMiddleware: that one costs a task per request), so the
checks run before FastAPI reads or parses anything:

1. every route except the open ones needs the API key (constant-time compare), in the
   configured header or as `Authorization: Bearer KEY` (what KServe/MLflow clients send): 401;
2. a body larger than `max_payload_bytes` is refused without being read further: 413; a body
   not received within `read_timeout` seconds (a slow or stalled client) gets 408 and the
   connection is closed;
3. each request is counted, timed and logged as one JSON line - route, status, duration,
   request id, W3C trace context, record count, cache outcome, model version; never bodies or
   headers. A caller's `X-Request-ID` is kept when it is well formed (1-64 characters of
   `A-Za-z0-9._:-`), otherwise a new id is made; `traceparent` is logged when it is valid.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from serve import metrics
from serve.routes import OPEN_PATHS

access_log = logging.getLogger("serve.access")


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# W3C Trace Context, version 00: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
_TRACEPARENT = re.compile(rb"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class Gate:
    def __init__(self, app: ASGIApp, *, api_key: bytes | None, header: str,
                 max_payload_bytes: int, routes: frozenset[str], access: bool,
                 read_timeout: float = 30.0) -> None:
        self.app = app
        self.api_key = api_key
        self.bearer = b"bearer " + api_key if api_key is not None else None
        self.header = header.lower().encode("latin-1")
        self.max_bytes = max_payload_bytes
        self.read_timeout = read_timeout
        self.routes = routes
        self.access = access
        self.metrics = metrics.get()
        self._children: dict[tuple[str, str, int], tuple] = {}  # labelled metrics, per key

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid, trace = _ids(scope["headers"])
        state = scope.setdefault("state", {})
        state["request_id"], state["traceparent"] = rid, trace
        status = 500
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        path = scope["path"]
        try:
            if self.api_key is not None and path not in OPEN_PATHS and not self._authorized(scope):
                await _reply(send_with_id, 401, "missing or invalid API key",
                             [(b"www-authenticate", b"ApiKey")])
            elif scope["method"] in ("POST", "PUT", "PATCH"):
                try:
                    async with asyncio.timeout(self.read_timeout):
                        body = await self._read_body(scope, receive)
                except TimeoutError:
                    self.metrics.rejected.labels(reason="slow_request").inc()
                    await _reply(send_with_id, 408, f"request body not received within "
                                 f"{self.read_timeout:g} s", [(b"connection", b"close")])
                    return
                if body is None:
                    self.metrics.rejected.labels(reason="payload_too_large").inc()
                    await _reply(send_with_id, 413,
                                 f"payload larger than {self.max_bytes} bytes",
                                 [(b"connection", b"close")])
                else:
                    await self.app(scope, _replay(body, receive), send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, state, path, status, time.perf_counter() - started)

    def _authorized(self, scope: dict) -> bool:
        for name, value in scope["headers"]:
            if name == self.header:
                return hmac.compare_digest(value, self.api_key)
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return hmac.compare_digest(b"bearer " + value[7:], self.bearer)
        return False

    async def _read_body(self, scope: dict, receive: Callable) -> bytes | None:
        """The whole body, or None once it is known to exceed the limit."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self.max_bytes:
                        return None
                except ValueError:
                    return None
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:  # chunked uploads announce no length
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _record(self, scope: dict, state: dict, path: str, status: int, seconds: float) -> None:
        route = path if path in self.routes else (
            "/v2/models/*" if path.startswith("/v2/models/") else "other")
        key = (route, scope["method"], status)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the updates: do them once
            m = self.metrics
            children = self._children[key] = (
                m.requests.labels(route=route, method=key[1], status=str(status)),
                m.latency.labels(route=route),
                m.errors.labels(route=route, status=str(status)) if status >= 400 else None)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()
        if self.access:
            access_log.info("request", extra={
                "request_id": state.get("request_id"), "traceparent": state.get("traceparent"),
                "method": scope["method"],
                "route": route, "status": status, "duration_ms": round(seconds * 1000, 3),
                "records": state.get("records"), "cache": state.get("cache"),
                "model_version": state.get("model_version"),
            })


def _ids(headers: list) -> tuple[str, str | None]:
    """The caller's request id if well formed (else a new one), and a valid traceparent."""
    rid = trace = None
    for name, value in headers:
        if name == b"x-request-id" and rid is None and _REQUEST_ID.fullmatch(value):
            rid = value.decode("ascii")
        elif name == b"traceparent" and trace is None and _TRACEPARENT.fullmatch(value):
            trace = value.decode("ascii")
    return rid or uuid.uuid4().hex[:16], trace


def _replay(body: bytes, receive: Callable) -> Callable:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as ASGI expects

    return replay


async def _reply(send: Callable, status: int, detail: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or ()),
    ]})
    await send({"type": "http.response.body", "body": body})

