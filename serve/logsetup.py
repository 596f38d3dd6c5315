"""Structured logs for every server process, PII-scrubbed.

Each process (the main one, every HTTP process, every inference worker) calls `configure()`:
one JSON line per record on stderr, through the privacy package's scrubbing filter. LitServe
and uvicorn attach handlers of their own that would bypass that filter; their loggers are
routed through the root handlers instead. Nothing in the server logs request payloads or
headers; the filter is the second line of defence for exception text.
"""

from __future__ import annotations

import json
import logging
import time

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

# Access-log fields (set with `extra=`); values are counts, codes and ids, never payloads.
ACCESS_FIELDS = ("request_id", "traceparent", "method", "route", "status", "duration_ms",
                 "records", "cache", "model_version")

_THIRD_PARTY = ("litserve", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for k in ACCESS_FIELDS:
            v = record.__dict__.get(k)
            if v is not None:
                out[k] = v
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text  # already scrubbed by the filter, which runs first
        return json.dumps(out, default=str)


def route_third_party() -> None:
    """Send LitServe's and uvicorn's records through the root (scrubbing) handlers."""
    for name in _THIRD_PARTY:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True


def configure(level: str = "info") -> None:
    from pipeline.runtime import logs

    logs.setup(level=LEVELS[level])  # installs the scrubbing filter on every root handler
    for h in logging.getLogger().handlers:
        h.setFormatter(JsonFormatter())
    route_third_party()
    logging.getLogger("litserve").setLevel(max(LEVELS[level], logging.INFO))
