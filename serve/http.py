"""Routes of the HTTP processes: /predict, /health, /metrics, /info.

/predict, in order: FastAPI validates the body against the schema derived from the dataset
spec (422 naming the field, before any model work); the prediction cache answers if it holds
every record for the version all workers serve; otherwise the rows go to LitServe's worker
queue - unless this process already has `max_inflight` requests waiting there (503 at once,
so an overloaded server sheds load instead of queueing without bound) - and the handler waits
at most `request_timeout` seconds (504). Worker failures become 500 with a request id, never
a traceback; the worker logs the details (scrubbed).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import pickle
import time
import uuid
from typing import Any

from cachetools import TTLCache
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from litserve.utils import LitAPIStatus, ResponseBufferItem

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


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")).encode(), status_code=status,
                    media_type=JSON, headers=headers)


class PredictHandler:
    def __init__(self, server: Any, schema: RequestSchema, state: SharedState, *,
                 api_path: str, threshold: float, cache_size: int | None, cache_ttl: float,
                 request_timeout: float, max_inflight: int) -> None:
        self.server = server  # the LitServer: its worker queue and response buffer
        self.schema = schema
        self.state = state
        self.api_path = api_path
        self.threshold = threshold
        self.cache: TTLCache | None = TTLCache(cache_size, cache_ttl) if cache_size else None
        self.timeout = request_timeout
        self.max_inflight = max_inflight
        self.inflight = 0  # one event loop per process: a plain counter is exact
        self._queue: Any = None
        self.metrics = m = metrics.get()
        self._outcome = {r: m.cache.labels(result=r) for r in ("hit", "miss", "bypass")}

    def endpoint(self):
        """The route function, with the schema's body type in its signature for FastAPI."""

        async def predict(request: Request, body: Any) -> Response:
            return await self.handle(request, body)

        predict.__signature__ = inspect.Signature([
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=Request),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=self.schema.body),
        ])
        return predict

    async def handle(self, request: Request, body: Any) -> Response:
        st = request.scope["state"]
        rows = self.schema.rows(body)
        st["records"] = len(rows)
        m = self.metrics
        m.records.inc(len(rows))
        serving = self.state.serving_version()
        if self.cache is not None and serving is not None:
            cache = self.cache
            preds = [cache.get((serving, r)) for r in rows]
            if None not in preds:
                self._outcome["hit"].inc()
                st["cache"], st["model_version"] = "hit", serving
                name = self.state.view()[0].name
                return self._answer({"name": name, "version": serving}, preds, "hit")
            outcome = "miss"
        else:
            outcome = "bypass"
        self._outcome[outcome].inc()
        st["cache"] = outcome

        if self.inflight >= self.max_inflight:
            m.rejected.labels(reason="overload").inc()
            return _json({"detail": "server busy; retry later"}, 503, {"Retry-After": "1"})
        self.inflight += 1
        uid = uuid.uuid4().hex
        item = ResponseBufferItem(event=asyncio.Event())
        buffer = self.server.response_buffer
        buffer[uid] = item
        try:
            queue = self._queue or self._worker_queue()
            queue.put((self.server.app.response_queue_id, uid, time.monotonic(), {"rows": rows}))
            async with asyncio.timeout(self.timeout):
                await item.event.wait()
        except TimeoutError:
            m.rejected.labels(reason="timeout").inc()
            return _json({"detail": f"no answer within {self.timeout:g} s"}, 504)
        finally:
            buffer.pop(uid, None)
            self.inflight -= 1

        payload, status = item.response
        if status != LitAPIStatus.OK or "error" in payload:
            return self._failure(payload if status != LitAPIStatus.OK else None, st)
        ref, preds = payload["model"], payload["predictions"]
        st["model_version"] = ref["version"]
        if self.cache is not None:
            version = ref["version"]
            for r, p in zip(rows, preds, strict=True):
                self.cache[(version, r)] = p
        return self._answer(ref, preds, outcome)

    def _worker_queue(self) -> Any:
        self._queue = self.server._get_request_queue(self.api_path)
        # Requests still buffered when this process exits are lost anyway (their clients are
        # gone): never let them hold up the exit.
        if hasattr(self._queue, "cancel_join_thread"):
            self._queue.cancel_join_thread()
        return self._queue

    def _answer(self, ref: dict, preds: list, outcome: str) -> Response:
        return _json({"model": ref, "threshold": self.threshold, "predictions": preds}, 200,
                     {"X-Cache": outcome, "X-Model-Version": ref["version"]})

    def _failure(self, error: Any, st: dict) -> Response:
        if isinstance(error, bytes):
            try:
                error = pickle.loads(error)  # noqa: S301 - our own worker's exception
            except Exception:
                error = None
        if isinstance(error, HTTPException) and error.status_code == 504:
            self.metrics.rejected.labels(reason="timeout").inc()
            return _json({"detail": "request waited too long for a worker"}, 504)
        log.error("predict failed in a worker (%s); request %s",
                  type(error).__name__ if error is not None else "model error",
                  st.get("request_id"))
        return _json({"detail": "model error", "request_id": st.get("request_id")}, 500)


def health(state: SharedState) -> Response:
    views = state.view()
    now = time.time()
    workers = [{
        "worker": v.worker, "ready": v.ready, "version": v.version or None,
        "degraded": v.degraded, "reason": v.reason or None,
        "last_check_age_s": round(now - v.checked_at, 3) if v.ready else None,
    } for v in views]
    ready = all(v.ready for v in views)
    status = "starting" if not ready else ("degraded" if any(v.degraded for v in views) else "ok")
    version = state.serving_version()
    body = {
        "status": status,
        "model": {"name": views[0].name, "version": version} if version else None,
        "workers": workers,
    }
    return _json(body, 200 if ready else 503)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """422 naming each bad field; unlike FastAPI's default, never echoes the input back."""
    detail = [{"field": field_path(e.get("loc", ())), "msg": e.get("msg", ""),
               "type": e.get("type", "")} for e in exc.errors()]
    return _json({"detail": detail}, 422)


def _key_scheme(header: str) -> Any:
    return Security(APIKeyHeader(name=header, auto_error=False,
                                 description="the key from the server's environment"))


def install_internal(app: FastAPI, *, state: SharedState, info: dict, header: str) -> None:
    """/health and /metrics (open), /info (needs the key), the 422 format."""
    app.add_exception_handler(RequestValidationError, validation_error)

    @app.get("/health", summary="Readiness: 200 once every worker has a model")
    async def _health() -> Response:
        return health(state)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def _metrics() -> Response:
        body, ctype = metrics.render(state)
        return Response(body, media_type=ctype)

    @app.get("/info", dependencies=[_key_scheme(header)], summary="Model and server settings")
    async def _info() -> Response:
        return _json({**info, "serving_version": state.serving_version(),
                      "workers": [v.version or None for v in state.view()]})


def install_predict(app: FastAPI, handler: PredictHandler, header: str) -> None:
    app.add_api_route(
        handler.api_path, handler.endpoint(), methods=["POST"],
        dependencies=[_key_scheme(header)], response_model=PredictResponse,
        summary="Score one record or a batch",
        responses={
            401: {"model": ErrorResponse, "description": "missing or invalid API key"},
            413: {"model": ErrorResponse, "description": "payload too large"},
            422: {"model": ValidationErrorResponse, "description": "invalid record(s)"},
            500: {"model": ErrorResponse, "description": "the model failed"},
            503: {"model": ErrorResponse, "description": "overloaded; retry later"},
            504: {"model": ErrorResponse, "description": "no answer in time"},
        })
