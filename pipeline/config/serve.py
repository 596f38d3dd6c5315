"""Serve section (conf/serve/): the HTTP inference service's settings (see serve/README.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section


class CacheSpec(Section):
    """Prediction cache in each HTTP process, keyed by (model version, validated record)."""

    enabled: bool = True
    size: int = Field(default=100_000, ge=1, description="entries per HTTP process")
    ttl: float = Field(default=300.0, gt=0, description="seconds a cached answer stays valid")


class ReloadSpec(Section):
    """Model cache: how often each worker asks the source which version is current."""

    interval: float = Field(default=30.0, gt=0, description="seconds between source.resolve()")


class AuthSpec(Section):
    """API-key auth for /predict and /info; /health, /metrics and the docs stay open."""

    enabled: bool = True
    api_key_env: str = Field(default="GOVPIPE_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="environment variable holding the key")
    header: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]+$")
    min_length: int = Field(default=16, ge=1, description="refuse to start with a shorter key")


class LimitsSpec(Section):
    request_timeout: float = Field(
        default=10.0, gt=0,
        description="seconds a client waits for a model answer before 504 (queued requests "
                    "older than this are dropped unrun)")
    max_payload_bytes: int = Field(default=1_048_576, ge=1024, description="bodies above: 413")
    max_records: int = Field(default=1000, ge=1, description="records per request above: 422")
    max_inflight: int = Field(
        default=128, ge=1,
        description="per HTTP process: requests waiting for a worker before new ones get 503")
    max_connections: int = Field(
        default=1024, ge=1,
        description="per HTTP process: open connections before 503 (probes are still answered)")
    max_header_bytes: int = Field(
        default=16384, ge=1024, description="request headers larger than this: 431")
    max_headers: int = Field(default=100, ge=8, description="more request headers: 431")
    read_timeout: float = Field(
        default=5.0, gt=0,
        description="seconds for a request's headers, and again for its body, to arrive: 408")
    keepalive_timeout: float = Field(
        default=5.0, gt=0, description="seconds an idle connection stays open")
    max_errors: int = Field(
        default=20, ge=1, description="validation errors listed in a 422 (plus their count)")


class ProbesSpec(Section):
    """/livez and /readyz (and /health, the same as /readyz)."""

    ready_timeout: float = Field(
        default=2.0, gt=0,
        description="seconds a worker gets to answer /readyz's ping before it says 503")


class AuditSpec(Section):
    """The prediction audit log (serve.audit, pipeline.audit.chain): one hash-chained record
    per scored record and per outcome, written off the request path."""

    enabled: bool = True
    dir: str = Field(default="audit", min_length=1,
                     description="directory of the log (relative to the working directory)")
    features: Literal["all"] | list[str] = Field(
        default="all", description='model inputs logged for monitoring ("all", or a list); '
                                   "the declared sensitive attributes are always logged")
    rotate_mb: float = Field(default=64.0, ge=0.01, le=4096,
                             description="start a new segment once one is this large")
    rotate_hours: float = Field(default=24.0, ge=0.01, le=24 * 31,
                                description="... or this old")
    retention_days: float = Field(
        default=183.0, ge=1, le=3650,
        description="segments last written longer ago are deleted whole (EU AI Act Art. 19/26: "
                    "at least six months)")
    flush_interval: float = Field(
        default=0.5, gt=0, le=60,
        description="seconds between writes: a crash loses at most this much of the log")
    flush_records: int = Field(default=4096, ge=1, le=1_000_000,
                               description="... or write as soon as this many are buffered")
    max_buffered: int = Field(
        default=200_000, ge=1000,
        description="records buffered while the disk refuses writes; then scoring answers 503")
    fsync: bool = Field(default=False,
                        description="fsync every write (survives a power cut, costs latency)")
    salt_env: str = Field(default="GOVPIPE_PII_SALT", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                          description="environment variable with the salt of the input hash")
    on_write_error: Literal["refuse", "serve"] = Field(
        default="refuse",
        description="refuse: while the log cannot be written, scoring answers 503 and /readyz "
                    "503 (fail closed); serve: keep answering, /readyz says degraded")
    request_attributes: bool = Field(
        default=True,
        description="requests may carry declared sensitive attributes that are not model "
                    "inputs (e.g. race): validated, logged for monitoring, never given to the "
                    "model")


class ServeSpec(Section):
    name: str
    # LitServe itself only accepts these three; 127.0.0.1 unless deliberately exposed.
    host: Literal["127.0.0.1", "0.0.0.0", "::"] = "127.0.0.1"
    port: int = Field(default=8000, ge=1024, le=65535)
    threshold: float = Field(ge=0, le=1)
    source: dict[str, Any] = Field(description="model source: `_target_` + its arguments")
    workers_per_device: int = Field(
        default=1, ge=1, description="inference worker processes (capped at the CPU count)")
    api_servers: int = Field(default=1, ge=1, description="HTTP processes sharing the port")
    max_batch_size: int = Field(default=64, ge=1, description="requests per predict call")
    batch_timeout: float = Field(
        default=0.0, ge=0,
        description="seconds a worker waits for more requests after the first of a batch; "
                    "0 takes what is queued already (no added latency when idle)")
    cache: CacheSpec = CacheSpec()
    reload: ReloadSpec = ReloadSpec()
    auth: AuthSpec = AuthSpec()
    limits: LimitsSpec = LimitsSpec()
    probes: ProbesSpec = ProbesSpec()
    audit: AuditSpec = AuditSpec()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    shutdown_timeout: float = Field(
        default=10.0, ge=2,
        description="seconds from SIGTERM/SIGINT until every process has stopped; in-flight "
                    "requests get all but the last 1.5 s")

    @model_validator(mode="after")
    def _batch_fits_timeout(self) -> ServeSpec:
        if self.batch_timeout >= self.limits.request_timeout:
            raise ValueError(
                f"batch_timeout ({self.batch_timeout}) must be less than "
                f"limits.request_timeout ({self.limits.request_timeout})"
            )
        if "_target_" not in self.source:
            raise ValueError("source: `_target_` is required (a class path)")
        return self
