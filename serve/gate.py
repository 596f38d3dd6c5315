"""The outermost layer of every HTTP process: auth, payload limit, metrics, access log.

A plain ASGI middleware (no BaseHTTPMiddleware: that one costs a task per request), so the
checks run before FastAPI reads or parses anything:

1. every route except the open ones needs the API key (constant-time compare): 401;
2. a body larger than `max_payload_bytes` is refused without being read further: 413;
3. each request is counted, timed and logged as one JSON line - route, status, duration,
   request id, record count, cache outcome, model version; never bodies or headers.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from serve import metrics

access_log = logging.getLogger("serve.access")

# Reachable without the key: liveness/readiness probes, Prometheus, and the API description.
OPEN_PATHS = frozenset({"/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                        "/redoc"})

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class Gate:
    def __init__(self, app: ASGIApp, *, api_key: bytes | None, header: str,
                 max_payload_bytes: int, routes: frozenset[str], access: bool) -> None:
        self.app = app
        self.api_key = api_key
        self.header = header.lower().encode("latin-1")
        self.max_bytes = max_payload_bytes
        self.routes = routes
        self.access = access
        self.metrics = metrics.get()
        self._children: dict[tuple[str, str, int], tuple] = {}  # labelled metrics, per key

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = rid
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
                body = await self._read_body(scope, receive)
                if body is None:
                    self.metrics.rejected.labels(reason="payload_too_large").inc()
                    await _reply(send_with_id, 413,
                                 f"payload larger than {self.max_bytes} bytes")
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
        route = path if path in self.routes else "other"
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
                "request_id": state.get("request_id"), "method": scope["method"],
                "route": route, "status": status, "duration_ms": round(seconds * 1000, 3),
                "records": state.get("records"), "cache": state.get("cache"),
                "model_version": state.get("model_version"),
            })


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

