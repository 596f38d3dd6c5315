"""POST /feedback: delayed outcomes for earlier predictions, appended to the audit log.

    {"outcomes": [{"request_id": "3f2a...", "index": 0, "label": ">50K"}, ...]}

`index` is the record's position in its /predict request (0 for a single record). The batch
is validated as a whole, then appended as a whole (never part of it):

* 422 - malformed batch, unknown field, a label outside the target's two values; FastAPI's
  format, naming each bad field;
* 404 - a request id (and index) with no logged prediction, named. Ids another HTTP process
  logged are found once it has flushed (serve.audit.flush_interval); before answering 404
  the handler flushes its own buffer, waits one interval and looks again;
* 409 - an outcome already recorded for that id and index (or twice in the batch);
* 503 - the audit log cannot be written (nothing accepted; retry).

200 `{"accepted": n}` only once the outcomes are written to this process's stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from serve.http import COMMON, RETRY, _json, _key_scheme, responses

log = logging.getLogger("serve.feedback")

PATH = "/feedback"
REQUEST_ID = r"^[A-Za-z0-9._:-]{1,64}$"  # what serve.gate accepts as X-Request-ID


def body_model(labels: list[str], max_records: int) -> type[BaseModel]:
    item = create_model(
        "Outcome", __config__=ConfigDict(extra="forbid"),
        request_id=(str, Field(pattern=REQUEST_ID, description="X-Request-ID of the /predict "
                               "answer")),
        index=(int, Field(default=0, ge=0, lt=max_records, strict=True,
                          description="the record's position in that request")),
        label=(Literal[tuple(labels)], Field(description="the observed outcome")),
    )
    return create_model(
        "Feedback", __config__=ConfigDict(extra="forbid"),
        outcomes=(list[item], Field(min_length=1, max_length=max_records)))


def install(app: FastAPI, audit: Any, header: str, labels: list[str], max_records: int) -> None:
    body_type = body_model(labels, max_records)
    wait = audit.spec.flush_interval

    async def feedback(body: Any) -> Response:
        items = [(o.request_id, o.index, o.label) for o in body.outcomes]
        await asyncio.to_thread(audit.refresh)
        problems = audit.check_outcomes(items)
        if any(p["status"] == 404 for p in problems):
            # Maybe logged but not flushed yet (here, or by another HTTP process).
            await asyncio.to_thread(audit.wait_flush, wait * 2 + 1)
            await asyncio.sleep(wait + 0.1)
            await asyncio.to_thread(audit.refresh)
            problems = audit.check_outcomes(items)
        if problems:
            status = 404 if any(p["status"] == 404 for p in problems) else 409
            return _json({"detail": [{k: p[k] for k in ("field", "msg", "type")}
                                     for p in problems[:20]],
                          "error_count": len(problems)}, status)
        if (why := audit.refusing()) is not None:
            return _json({"detail": f"{why}; no outcome accepted"}, 503, RETRY)
        audit.outcomes(items)
        await asyncio.to_thread(audit.wait_flush, wait * 2 + 5)
        if audit.error is not None:
            return _json({"detail": f"{audit.error}; the outcomes stay buffered and are "
                                    "written once the log works again"}, 503, RETRY)
        return _json({"accepted": len(items)})

    feedback.__annotations__["body"] = body_type  # this module's annotations are strings
    app.add_api_route(
        PATH, feedback, methods=["POST"], dependencies=[_key_scheme(header)],
        summary="Outcomes for earlier predictions (appended to the audit log)",
        responses=responses({**COMMON, 404: "a request id with no logged prediction",
                             409: "an outcome for that request id was already recorded",
                             422: "malformed batch or a label outside the target's values"}))
