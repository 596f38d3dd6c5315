"""Prometheus metrics shared by every server process.

LitServe runs HTTP handling and inference in separate processes (and its own loggers in yet
another), so counters live in prometheus_client's multiprocess mode: each process writes its
values to files in one directory (PROMETHEUS_MULTIPROC_DIR, a fresh temp dir per server run)
and /metrics, answered by whichever HTTP process gets the scrape, sums them. Model state comes
from the workers' shared slots at scrape time, so a gauge never outlives its process.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384)


def enable_multiprocess(directory: str) -> None:
    """Point this process (and every process it starts) at `directory`. Call before `get()`."""
    os.environ[ENV] = directory
    import prometheus_client.values as values

    # prometheus_client picks its value class when first imported; redo it in case something
    # imported it before the variable was set.
    values.ValueClass = values.get_value_class()


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "govpipe_http_requests", "HTTP requests by route, method and status code",
            ["route", "method", "status"])
        self.errors = Counter(
            "govpipe_http_errors", "HTTP responses with status >= 400, by status code",
            ["route", "status"])
        self.latency = Histogram(
            "govpipe_http_request_duration_seconds", "time from first byte to response, by route",
            ["route"], buckets=LATENCY_BUCKETS)
        self.cache = Counter(
            "govpipe_prediction_cache", "predict requests by cache outcome "
            "(hit: every record cached; miss: sent to a worker; bypass: cache not usable)",
            ["result"])
        self.records = Counter("govpipe_records", "records scored or served from the cache")
        self.rejected = Counter(
            "govpipe_rejected", "requests refused before the model, by reason", ["reason"])
        self.batch_requests = Histogram(
            "govpipe_batch_requests", "requests per predict call", buckets=BATCH_BUCKETS)
        self.batch_rows = Histogram(
            "govpipe_batch_rows", "records per predict call", buckets=BATCH_BUCKETS)
        self.predict_seconds = Histogram(
            "govpipe_predict_duration_seconds", "time in one vectorised predict call",
            buckets=LATENCY_BUCKETS)
        self.reloads = Counter(
            "govpipe_model_reloads", "model source checks by outcome", ["result"])
        self.refusals = Counter(
            "govpipe_model_refusals", "versions the model source refused to hand out "
            "(not VALIDATED and promoted, or stored bytes changed); the old model stays")
        self.transport_errors = Counter(
            "govpipe_transport_errors", "answer pipes found unusable (the HTTP process stops)")
        self.source_rebuilds = Counter(
            "govpipe_model_source_rebuilds",
            "model sources rebuilt after repeated resolve errors (fresh client and store engine)")
        self.audit_records = Counter(
            "govpipe_audit_records", "records written to the prediction audit log")
        self.audit_errors = Counter(
            "govpipe_audit_write_errors", "failed audit log writes (records kept, retried)")
        # One series per HTTP process (pid label): average them in the alert rule.
        self.selection_rate = Gauge(
            "govpipe_selection_rate", "share predicted positive over the last 1000 logged "
            "records of each group (sensitive attribute column and value), per HTTP process",
            ["attribute", "group"], multiprocess_mode="liveall")


_metrics: Metrics | None = None


def get() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


class ModelStateCollector:
    """Model gauges read from the workers' shared slots when /metrics is scraped."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        info = GaugeMetricFamily("govpipe_model_info", "model each worker serves (value 1)",
                                 labels=["worker", "name", "version"])
        ready = GaugeMetricFamily("govpipe_model_ready", "1 once the worker has a model",
                                  labels=["worker"])
        degraded = GaugeMetricFamily(
            "govpipe_model_degraded", "1 while the worker's last source check failed",
            labels=["worker"])
        swaps = CounterMetricFamily("govpipe_model_swaps", "models swapped in after startup",
                                    labels=["worker"])
        for v in self.state.view():
            w = str(v.worker)
            if v.ready:
                info.add_metric([w, v.name, v.version], 1)
            ready.add_metric([w], 1 if v.ready else 0)
            degraded.add_metric([w], 1 if v.degraded else 0)
            swaps.add_metric([w], v.swaps)
        yield from (info, ready, degraded, swaps)


def render(state: Any) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(ModelStateCollector(state))
    return generate_latest(registry), CONTENT_TYPE_LATEST
