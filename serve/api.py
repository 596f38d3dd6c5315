"""The inference worker: a LitAPI that scores validated rows with the current model.

Each worker process runs `setup` once, then LitServe's loop (serve.loop) hands it batches:

    decode_request  {"rows": [row, ...]}      -> the request's rows (validated upstream)
    batch           [rows, rows, ...]         -> the same list: request boundaries kept
    predict         one DataFrame for the whole batch, one model.score() call
    unbatch         one output per request
    encode_response {"model": {...}, "predictions": [...]} per request

Requests reach a worker already validated by the HTTP process (types, ranges, categories,
finiteness), so predict does no per-record checks and builds exactly one frame per batch.

The model is cached with a TTL: a daemon thread asks the source every `reload_interval`
seconds which version is current and, when it changed, loads the new one *in that thread*
and swaps a single reference. predict reads the reference once per batch, so a batch is
scored by one model, requests never wait for a load and none fails during a swap. If the
source cannot be reached the worker keeps its model and reports itself degraded; after
`REBUILD_AFTER` failed checks in a row it builds the source afresh (a new registry client and
store engine), so a store that was damaged and restored is picked up again without a
restart. A version the source *refuses* (`ModelRefused`: not VALIDATED and promoted, or its
bytes changed) is never served: the worker keeps its model, reports `refused: ...` as its
degraded reason and counts it in `govpipe_model_refusals_total`. At startup a refusal is
fatal: the worker records the reason and exits; the main process logs it once and exits 2.

A request with no rows is a readiness ping: it crosses the queue and the answer pipe like any
other request but costs no predict call (serve.http's /readyz).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from typing import Any

import litserve as ls

from serve.loop import GreedyBatchLoop
from serve.state import SharedState

log = logging.getLogger("serve.worker")

REBUILD_AFTER = 3  # consecutive failed source checks before the source is built afresh
EXIT_SETUP_FAILED = 3


class IncompatibleModel(Exception):
    """A new model needs input columns the running server's request schema does not have."""


class GovernedAPI(ls.LitAPI):
    def __init__(self, *, source: dict[str, Any], threshold: float, reload_interval: float,
                 state: SharedState, log_level: str, max_batch_size: int,
                 batch_timeout: float, api_path: str = "/predict") -> None:
        with warnings.catch_warnings():
            # LitServe warns when batch/unbatch exist and max_batch_size is 1; ours always run.
            warnings.filterwarnings("ignore", message=".*batch and unbatch methods.*")
            super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                             api_path=api_path, loop=GreedyBatchLoop())
        # Everything here is pickled into the spawned worker processes.
        self.source_cfg = dict(source)
        self.threshold = threshold
        self.reload_interval = reload_interval
        self.state = state
        self.log_level = log_level

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, device: str) -> None:
        from pipeline.runtime.errors import PipelineError
        from serve import logsetup, metrics

        logsetup.configure(self.log_level)
        _fast_sklearn()
        self.worker = int(os.environ.get("LITSERVE_WORKER_ID", "0"))
        self.metrics = metrics.get()
        self._failures = 0
        try:
            self.source = self._build_source()
            loaded = self.source.load()
            published = self.state.publish_model_info(describe(loaded))
            self.columns = list(published["input_columns"])
            self._check(loaded)
        except (PipelineError, IncompatibleModel) as e:
            # A reason the operator can act on: the main process logs it once, no traceback.
            self.state.failed(self.worker, _reason(e))
            raise SystemExit(EXIT_SETUP_FAILED) from None
        except Exception as e:
            self.state.failed(self.worker, f"setup failed: {type(e).__name__}")
            raise  # a bug: LitServe logs the traceback (scrubbed)
        self.current = _Serving(loaded, self.columns, self.threshold)
        self.state.loaded(self.worker, loaded.name, loaded.version, swapped=False)
        log.info("worker %d serving %s version %s", self.worker, loaded.name, loaded.version)
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="model-watch", daemon=True).start()

    def _check(self, loaded: Any) -> None:
        missing = [c for c in loaded.model.input_columns if c not in self.columns]
        if missing:
            raise IncompatibleModel(
                f"model {loaded.name} version {loaded.version} needs column(s) {missing} "
                "that the request schema lacks; restart the server to serve it")

    # -- model cache (runs in the watch thread) ------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval):
            self.check_source()

    def _build_source(self) -> Any:
        from pipeline.loaders import build_source

        return build_source(self.source_cfg)

    def check_source(self) -> None:
        """One TTL expiry: resolve the current version; load and swap if it changed."""
        from pipeline.runtime.errors import ModelRefused

        m = self.metrics.reloads
        try:
            version = self.source.resolve()
        except Exception as e:  # registry unreachable, file gone, store damaged, ...
            m.labels(result="resolve_error").inc()
            self.state.degraded(self.worker, f"resolve failed: {type(e).__name__}")
            log.warning("worker %d: model source unreachable (%s); keeping version %s",
                        self.worker, type(e).__name__, self.current.version)
            self._failures += 1
            if self._failures >= REBUILD_AFTER:
                self._rebuild()
            return
        self._failures = 0
        if version == self.current.version:
            m.labels(result="unchanged").inc()
            self.state.checked(self.worker)
            return
        try:
            loaded = self.source.load()
            self._check(loaded)
        except ModelRefused as e:
            m.labels(result="refused").inc()
            self.metrics.refusals.inc()
            self.state.degraded(self.worker, _reason(e))
            log.error("worker %d: %s; keeping version %s", self.worker, _reason(e),
                      self.current.version)
            return
        except Exception as e:
            m.labels(result="load_error").inc()
            self.state.degraded(self.worker, f"load failed: {type(e).__name__}")
            log.error("worker %d: cannot load version %s (%s: %s); keeping version %s",
                      self.worker, version, type(e).__name__, e, self.current.version)
            return
        previous = self.current.version
        self.current = _Serving(loaded, self.columns, self.threshold)  # the atomic swap
        m.labels(result="swapped").inc()
        self.state.loaded(self.worker, loaded.name, loaded.version, swapped=True)
        log.info("worker %d: swapped model %s -> %s", self.worker, previous, loaded.version)

    def _rebuild(self) -> None:
        """A fresh source: whatever it cached (a client, a SQLite engine) may be what broke."""
        self._failures = 0
        close = getattr(self.source, "close", None)  # optional for plug-in sources
        if close is not None:
            try:
                close()
            except Exception as e:
                log.warning("worker %d: closing the model source failed (%s)", self.worker,
                            type(e).__name__)
        try:
            self.source = self._build_source()
        except Exception as e:
            log.warning("worker %d: rebuilding the model source failed (%s)", self.worker,
                        type(e).__name__)
            return
        self.metrics.source_rebuilds.inc()
        log.info("worker %d: model source rebuilt after %d failed checks", self.worker,
                 REBUILD_AFTER)

    # -- hot path ------------------------------------------------------------------------------
    def decode_request(self, request: dict) -> list:
        return request["rows"]

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, x: list) -> list:
        serving = self.current  # one model for the whole batch, even if a swap happens now
        started = time.perf_counter()
        rows = [r for req in x for r in req]
        if not rows:  # readiness pings only: the round trip is the answer
            return [(serving, ()) for _ in x]
        try:
            p = serving.score(rows)
        except Exception:
            # Keep one bad request from failing its batch-mates: score each on its own.
            log.exception("worker %d: batch predict failed; retrying per request", self.worker)
            return [serving.score_alone(req) for req in x]
        out, i = [], 0
        for req in x:
            out.append((serving, p[i:i + len(req)]))
            i += len(req)
        m = self.metrics
        m.predict_seconds.observe(time.perf_counter() - started)
        m.batch_requests.observe(len(x))
        m.batch_rows.observe(len(rows))
        return out

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: Any) -> dict:
        serving, p = output
        if p is None:
            return {"error": "model_error", "model": serving.ref}
        return {"model": serving.ref, "sha256": serving.sha256,
                "predictions": serving.labelled(p)}


class _Serving:
    """One loaded model and what scoring needs: immutable, swapped as a whole."""

    def __init__(self, loaded: Any, columns: list[str], threshold: float) -> None:
        self.model = loaded.model
        self.version = loaded.version
        self.ref = {"name": loaded.name, "version": loaded.version}
        self.sha256 = loaded.metadata.get("model_sha256")  # for the audit log
        self.columns = columns
        self.threshold = threshold
        self.positive = getattr(loaded.model, "positive_label", "1")
        self.negative = getattr(loaded.model, "negative_label", "0")

    def score(self, rows: list) -> Any:
        import pandas as pd

        # One frame per batch, built column-wise from the row tuples.
        values = map(list, zip(*rows, strict=True))
        frame = pd.DataFrame(dict(zip(self.columns, values, strict=True)), columns=self.columns)
        return self.model.score(frame)

    def score_alone(self, rows: list) -> tuple[_Serving, Any]:
        try:
            return self, self.score(rows)
        except Exception:
            log.exception("predict failed for one request")
            return self, None

    def labelled(self, p: Any) -> list[dict]:
        # `favourable` says outright what label_id 1 means: a favourable label "0" (or "no")
        # would otherwise read backwards.
        t, pos, neg = self.threshold, self.positive, self.negative
        out = []
        for v in (p.tolist() if hasattr(p, "tolist") else p):
            hit = v >= t
            out.append({"probability": v, "label": pos if hit else neg, "label_id": int(hit),
                        "favourable": hit})
        return out


def _reason(e: BaseException) -> str:
    """What /readyz and the logs say about a setup or reload failure."""
    from pipeline.runtime.errors import ModelRefused

    if isinstance(e, ModelRefused):
        return f"refused: {e}"
    return f"{type(e).__name__}: {e}"


def _fast_sklearn() -> None:
    """Skip sklearn's finiteness and parameter checks in this worker: every value reaching
    predict was validated (finite, typed, in range) by the HTTP process; ~2 of the ~11 ms a
    small predict call costs."""
    try:
        import sklearn
    except ImportError:  # a source serving something else
        return
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)


def describe(loaded: Any) -> dict:
    """What the HTTP side needs to know about a model: published once at startup."""
    m = loaded.model
    return {
        "input_columns": list(m.input_columns),
        "name": loaded.name,
        "version": loaded.version,
        "dataset": getattr(m, "dataset", None),
        "positive_label": getattr(m, "positive_label", None),
        "negative_label": getattr(m, "negative_label", None),
    }
