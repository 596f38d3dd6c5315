"""Routes of the HTTP processes: /predict, the probes, /metrics, /info, /docs.

/predict, in order: FastAPI validates the body against the schema derived from the dataset
spec (422 naming the field, before any model work); the prediction cache answers if it holds
every record for the version all workers serve; otherwise the rows go to LitServe's worker
queue - unless this process already has `max_inflight` requests waiting there (503 at once,
so an overloaded server sheds load instead of queueing without bound) - and the handler waits
at most `request_timeout` seconds (504). Worker failures become 500 with a request id, never
a traceback; the worker logs the details (scrubbed). The other protocols (serve.protocols)
turn their bodies into the same rows and use the same `PredictHandler.score`.

Probes: /livez answers while the process's event loop runs; /readyz (also /health) sends a
ping through the worker queue and the answer pipe and is 200 only if it comes back within
`serve.probes.ready_timeout` - `ok`, or `degraded` (serving, but the model source is
unreachable or refused a version) - and 503 `starting`, `draining` or `unavailable` else.

422 bodies list at most `limits.max_errors` errors (plus `error_count`); field names that are
not model inputs are cut to 64 characters and PII-scrubbed like any other text.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import pickle
import signal
import time
import uuid
from typing import Any

from cachetools import TTLCache
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from litserve.utils import LitAPIStatus, ResponseBufferItem
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve import metrics
from serve.schema import (
    ErrorResponse,
    PredictResponse,
    RequestSchema,
    ValidationErrorResponse,
    field_path,
)
from serve.state import SharedState

log = logging.getLogger("serve.http")

JSON = "application/json"


RETRY = {"Retry-After": "1"}


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")).encode(), status_code=status,
                    media_type=JSON, headers=headers)


class PredictHandler:
    def __init__(self, server: Any, schema: RequestSchema, state: SharedState, *,
                 api_path: str, threshold: float, cache_size: int | None, cache_ttl: float,
                 request_timeout: float, max_inflight: int, audit: Any = None,
                 favourable: dict[str, Any] | None = None) -> None:
        self.server = server  # the LitServer: its worker queue and response buffer
        self.schema = schema
        self.state = state
        self.api_path = api_path
        self.threshold = threshold
        # Named in every /predict answer, so label_id 1 never needs a lookup to be read.
        self.favourable = {"favourable_label": None, "favourable_means": None,
                           **(favourable or {})}
        self.cache: TTLCache | None = TTLCache(cache_size, cache_ttl) if cache_size else None
        self.timeout = request_timeout
        self.max_inflight = max_inflight
        self.inflight = 0  # one event loop per process: a plain counter is exact
        self._queue: Any = None
        self.audit = audit  # serve.audit.AuditLog, or None when the log is off
        self._sha: dict[str, str | None] = {}  # version -> model sha256, for cache hits
        self.metrics = m = metrics.get()
        self._outcome = {r: m.cache.labels(result=r) for r in ("hit", "miss", "bypass")}

    def endpoint(self):
        """The route function, with the schema's body type in its signature for FastAPI."""

        async def predict(request: Request, body: Any) -> Response:
            st = request.scope["state"]
            result = await self.score(st, self.schema.rows(body),
                                      self.schema.extra_values(body))
            if isinstance(result, Response):
                return result
            ref, preds, outcome = result
            return _json({"model": ref, "threshold": self.threshold, **self.favourable,
                          "predictions": preds}, 200, self.headers(ref, outcome))

        predict.__signature__ = inspect.Signature([
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=Request),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=self.schema.body),
        ])
        return predict

    @staticmethod
    def headers(ref: dict, outcome: str) -> dict[str, str]:
        return {"X-Cache": outcome, "X-Model-Version": ref["version"]}

    async def score(self, st: dict, rows: list,
                    extras: list | None = None) -> Response | tuple[dict, list, str]:
        """Validated rows -> (model ref, one prediction per row, cache outcome), or the
        error Response. Every protocol's endpoint comes through here, so every answer is
        in the audit log (`extras`: monitoring-only fields per row)."""
        started = time.perf_counter()
        st["records"] = len(rows)
        m = self.metrics
        audit = self.audit
        if audit is not None and (why := audit.refusing()) is not None:
            m.rejected.labels(reason="audit_log").inc()
            return _json({"detail": f"{why}; not scoring unlogged", "request_id":
                          st.get("request_id")}, 503, RETRY)
        m.records.inc(len(rows))
        serving = self.state.serving_version()
        if self.cache is not None and serving is not None:
            cache = self.cache
            preds = [cache.get((serving, r)) for r in rows]
            if None not in preds:
                self._outcome["hit"].inc()
                st["cache"], st["model_version"] = "hit", serving
                ref = {"name": self.state.view()[0].name, "version": serving}
                if audit is not None:
                    audit.predictions(st.get("request_id"), ref, self._sha.get(serving), rows,
                                      extras, preds, _ms(started))
                return ref, preds, "hit"
            outcome = "miss"
        else:
            outcome = "bypass"
        self._outcome[outcome].inc()
        st["cache"] = outcome

        if self.inflight >= self.max_inflight:
            m.rejected.labels(reason="overload").inc()
            return _json({"detail": "server busy; retry later"}, 503, RETRY)
        try:
            payload, status = await self._round_trip(rows, self.timeout)
        except TimeoutError:
            m.rejected.labels(reason="timeout").inc()
            return _json({"detail": f"no answer within {self.timeout:g} s"}, 504)
        if status != LitAPIStatus.OK or "error" in payload:
            return self._failure(payload if status != LitAPIStatus.OK else None, st)
        ref, preds = payload["model"], payload["predictions"]
        st["model_version"] = ref["version"]
        if audit is not None:
            sha = self._sha[ref["version"]] = payload.get("sha256")
            audit.predictions(st.get("request_id"), ref, sha, rows, extras, preds, _ms(started))
        if self.cache is not None:
            version = ref["version"]
            for r, p in zip(rows, preds, strict=True):
                self.cache[(version, r)] = p
        return ref, preds, outcome

    async def _round_trip(self, rows: list, timeout: float) -> tuple[Any, Any]:
        """Queue `rows` for a worker and wait for its answer (TimeoutError after `timeout`)."""
        failed = self.server._transport.failed
        if failed:
            return None, LitAPIStatus.ERROR
        self.inflight += 1
        uid = uuid.uuid4().hex
        item = ResponseBufferItem(event=asyncio.Event())
        buffer = self.server.response_buffer
        buffer[uid] = item
        try:
            queue = self._queue or self._worker_queue()
            queue.put((self.server.app.response_queue_id, uid, time.monotonic(), {"rows": rows}))
            async with asyncio.timeout(timeout):
                await item.event.wait()
        finally:
            buffer.pop(uid, None)
            self.inflight -= 1
        return item.response

    async def ping(self, timeout: float) -> float:
        """One empty request through a worker; its round-trip time in seconds."""
        started = time.perf_counter()
        _, status = await self._round_trip([], timeout)
        if status != LitAPIStatus.OK:
            raise RuntimeError("the worker answered with an error")
        return time.perf_counter() - started

    def transport_failed(self, reason: str) -> None:
        """The answer pipe is lost (serve.transport): answer every waiting request with an
        error now, then stop this process; the supervisor stops the service."""
        for item in list(self.server.response_buffer.values()):
            if not item.event.is_set():
                item.response = (None, LitAPIStatus.ERROR)
                item.event.set()
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful exit

    def _worker_queue(self) -> Any:
        self._queue = self.server._get_request_queue(self.api_path)
        # Requests still buffered when this process exits are lost anyway (their clients are
        # gone): never let them hold up the exit.
        if hasattr(self._queue, "cancel_join_thread"):
            self._queue.cancel_join_thread()
        return self._queue

    def _failure(self, error: Any, st: dict) -> Response:
        if isinstance(error, bytes):
            try:
                error = pickle.loads(error)  # noqa: S301 - our own worker's exception
            except Exception:
                error = None
        if isinstance(error, HTTPException) and error.status_code == 504:
            self.metrics.rejected.labels(reason="timeout").inc()
            return _json({"detail": "request waited too long for a worker"}, 504)
        if self.server._transport.failed:
            return _json({"detail": "this HTTP process lost its workers; retry",
                          "request_id": st.get("request_id")}, 503, RETRY)
        log.error("predict failed in a worker (%s); request %s",
                  type(error).__name__ if error is not None else "model error",
                  st.get("request_id"))
        return _json({"detail": "model error", "request_id": st.get("request_id")}, 500)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


# -- probes ------------------------------------------------------------------------------------
def _workers(state: SharedState) -> list[dict]:
    now = time.time()
    return [{
        "worker": v.worker, "ready": v.ready, "version": v.version or None,
        "degraded": v.degraded, "reason": v.reason or None,
        "last_check_age_s": round(now - v.checked_at, 3) if v.ready else None,
    } for v in state.view()]


def health(state: SharedState, audit: Any = None) -> Response:
    """Readiness as far as the shared state tells (no round trip): 503 until every worker
    has a model and while draining; with the audit log failing, 503 `unavailable` (policy
    `refuse`) or `degraded` (`serve`), with the reason."""
    views = state.view()
    ready = all(v.ready for v in views)
    status = "starting" if not ready else ("degraded" if any(v.degraded for v in views) else "ok")
    audit_error = audit.error if audit is not None else None
    if ready and audit_error is not None:
        status = "degraded"
        if audit.refusing():
            status, ready = "unavailable", False
    if state.draining:
        status, ready = "draining", False
    version = state.serving_version()
    body = {
        "status": status,
        "model": {"name": views[0].name, "version": version} if version else None,
        "workers": _workers(state),
    }
    if audit_error is not None:
        body["audit_log"] = audit_error
    return _json(body, 200 if ready else 503, None if ready else RETRY)


async def readiness(state: SharedState, handler: PredictHandler | None,
                    timeout: float) -> Response:
    """`health` plus proof: a ping answered by a worker within `timeout` seconds."""
    first = health(state, handler.audit if handler is not None else None)
    if first.status_code != 200 or handler is None:
        return first
    body = json.loads(first.body)
    failed = handler.server._transport.failed
    try:
        if failed:
            raise RuntimeError(f"answer transport failed: {failed}")
        body["round_trip_ms"] = round(await handler.ping(timeout) * 1000, 3)
    except (TimeoutError, RuntimeError) as e:
        body["status"] = "unavailable"
        body["reason"] = (f"no worker answered within {timeout:g} s"
                          if isinstance(e, TimeoutError) else str(e))
        return _json(body, 503, RETRY)
    return _json(body)


# -- errors ------------------------------------------------------------------------------------
class ErrorFormat:
    """422 bodies: capped, and never an echo of what the caller sent."""

    def __init__(self, known_fields: frozenset[str], max_errors: int) -> None:
        self.known = known_fields
        self.max_errors = max_errors

    def field(self, loc: Any) -> str:
        parts = []
        for p in loc:
            if isinstance(p, str) and p not in self.known and p not in _STRUCTURE:
                p = _scrub(p[:64])  # an unknown key is caller text: an e-mail, a name
            parts.append(p)
        return field_path(parts)

    def body(self, errors: list[dict]) -> dict:
        shown = [{"field": self.field(e.get("loc", ())), "msg": e.get("msg", ""),
                  "type": e.get("type", "")} for e in errors[:self.max_errors]]
        out: dict[str, Any] = {"detail": shown}
        if len(errors) > len(shown):
            out["error_count"] = len(errors)
        return out

    async def validation_error(self, request: Request, exc: RequestValidationError) -> Response:
        return _json(self.body(list(exc.errors())), 422)

    async def http_error(self, request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI: a body it could not decode (e.g. not UTF-8)
            return _json({"detail": [{"field": "<body>", "msg": "body is not valid JSON",
                                      "type": "json_invalid"}]}, 422)
        return _json({"detail": str(exc.detail)}, exc.status_code, exc.headers)


_STRUCTURE = frozenset({"body", "record", "batch", "records", "dataframe_records",
                        "dataframe_split", "instances", "inputs", "data", "columns"})


def _scrub(text: str) -> str:
    from pipeline.privacy import scrub

    return scrub(text)


# -- routes ------------------------------------------------------------------------------------
def _key_scheme(header: str) -> Any:
    return Security(APIKeyHeader(name=header, auto_error=False,
                                 description="the key from the server's environment"))


# Every status an endpoint can answer with besides its success (README's table; OpenAPI).
COMMON = {
    400: "not HTTP, or a malformed request line (written by the connection layer)",
    401: "missing or invalid API key",
    404: "no such path (with a valid key)",
    405: "method not allowed",
    408: "request headers or body not received within serve.limits.read_timeout",
    413: "payload larger than serve.limits.max_payload_bytes",
    431: "request headers larger than max_header_bytes, or more than max_headers",
    503: "overloaded, too many open connections, or not ready (Retry-After: 1)",
}
SCORING = {
    **COMMON,
    422: "invalid record(s): the fields named, at most max_errors of them",
    500: "the model failed (JSON with the request id)",
    504: "no answer within serve.limits.request_timeout",
}


def responses(statuses: dict[int, str]) -> dict:
    out = {}
    for code, text in statuses.items():
        model = ValidationErrorResponse if code == 422 else ErrorResponse
        out[code] = {"model": model, "description": text}
    return out


def install_internal(app: FastAPI, *, state: SharedState, info: dict, header: str,
                     errors: ErrorFormat, ready_timeout: float,
                     handler: PredictHandler | None) -> None:
    """Probes and /metrics (open), /info (needs the key), /docs, the error formats."""
    app.state.errors = errors
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    probe = responses({503: "not ready: starting, draining, or no worker answered in time"})

    @app.get("/livez", summary="Liveness: 200 while this process answers", responses=probe)
    async def _livez() -> Response:
        return _json({"status": "alive"})

    @app.get("/readyz", summary="Readiness: a ping through a worker within the deadline",
             responses=probe)
    async def _readyz() -> Response:
        return await readiness(state, handler, ready_timeout)

    @app.get("/health", summary="Readiness (the same as /readyz)", responses=probe)
    async def _health() -> Response:
        return await readiness(state, handler, ready_timeout)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def _metrics() -> Response:
        body, ctype = metrics.render(state)
        return Response(body, media_type=ctype)

    @app.get("/info", dependencies=[_key_scheme(header)], summary="Model and server settings",
             responses=responses(COMMON))
    async def _info() -> Response:
        return _json({**info, "serving_version": state.serving_version(),
                      "workers": [v.version or None for v in state.view()]})

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> Response:
        return _json({"detail": "interactive docs are off: Swagger UI would load its scripts "
                                "from a public CDN, which an isolated network cannot reach and "
                                "a server should not make its users fetch; the API is "
                                "described in full at /openapi.json"}, 404)


def install_predict(app: FastAPI, handler: PredictHandler, header: str) -> None:
    app.add_api_route(
        handler.api_path, handler.endpoint(), methods=["POST"],
        dependencies=[_key_scheme(header)], response_model=PredictResponse,
        summary="Score one record or a batch", responses=responses(SCORING))
