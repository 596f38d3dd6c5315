"""The LitServer, adapted for this service, and how to run and stop it.

Process layout: the main process spawns the inference workers (serve.api), waits until every
one has a model, then forks the HTTP processes that share the listening socket; it then
watches them all (serve.supervise). No multiprocessing manager process: requests go through a
plain multiprocessing.Queue, answers through serve.transport's pipes, worker state through
serve.state's shared memory.

What this subclass changes in LitServe 0.2.19, and why:

* Routes: /predict (and the MLflow and Open Inference Protocol endpoints, serve.protocols) are
  registered only once a worker has loaded the model and published its input columns, so the
  request schema is derived from the dataset spec *and* the model actually served, and the
  main process never loads the model itself. The probes prove a worker round trip; /metrics
  is Prometheus; the API key is checked by serve.gate (LitServe's `LIT_SERVER_API_KEY` would
  lock the probes too and is ignored here). /docs is off (its assets come from a CDN).
* `run()` is this class's own: LitServe's waits on a manager Event that a Ctrl-C leaves
  wedged (the main process hung in "shutting down", still serving), lets SIGINT kill the
  workers under in-flight requests, never notices a dead HTTP process, and leaves children
  running when the main process is killed. serve.supervise has the policy.
* Connection bounds (header size/count, read deadlines, idle timeout, a connection cap that
  spares the probes): serve.edges, as uvicorn's protocol class.
* No `client.py` written to the working directory; binds 127.0.0.1 unless configured.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from typing import Any

import litserve as ls
import uvicorn
from starlette.middleware.gzip import GZipMiddleware

from pipeline.runtime.errors import ConfigError, PipelineError
from serve import edges, feedback, http, logsetup, metrics, protocols, supervise
from serve.api import GovernedAPI
from serve.audit import AuditLog
from serve.gate import Gate
from serve.routes import FIXED_PATHS
from serve.schema import RequestSchema
from serve.state import SharedState
from serve.transport import PipeTransport

log = logging.getLogger("serve")

API_PATH = "/predict"
TITLE = "govpipe inference service"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def effective_workers(requested: int) -> int:
    """Worker processes: as configured, but never more than the CPUs this process may use."""
    return max(1, min(requested, cpu_count()))


class WorkerStartError(PipelineError):
    """No inference worker could load the model; the message says why."""


def secret_from_env(var: str, missing: str, environ: dict[str, str] | None = None) -> str:
    """A secret the server reads only from the environment; ConfigError `missing` if unset."""
    value = (environ if environ is not None else os.environ).get(var, "")
    if not value:
        raise ConfigError(missing)
    return value


def api_key_from_env(auth: Any, environ: dict[str, str] | None = None) -> bytes | None:
    if not auth.enabled:
        return None
    key = secret_from_env(auth.api_key_env, (
        f"serve.auth: set the API key in ${auth.api_key_env} "
        "(or serve.auth.enabled=false for a server nobody else can reach)"), environ)
    if len(key) < auth.min_length:
        raise ConfigError(
            f"serve.auth: ${auth.api_key_env} is shorter than {auth.min_length} characters")
    return key.encode()


class GovernedServer(ls.LitServer):
    def __init__(self, cfg: Any, state: SharedState, api_key: bytes | None,
                 signals: supervise.Signals, audit: AuditLog | None = None) -> None:
        spec = cfg.serve
        self.cfg, self.spec, self.state, self.api_key = cfg, spec, state, api_key
        self.audit = audit
        self.signals = signals
        self.info: dict[str, Any] = {}
        self.n_workers = state.workers
        self.handler: http.PredictHandler | None = None
        api = GovernedAPI(
            source=spec.source, threshold=spec.threshold, reload_interval=spec.reload.interval,
            state=state, log_level=spec.log_level, max_batch_size=spec.max_batch_size,
            batch_timeout=spec.batch_timeout, api_path=API_PATH)
        super().__init__(api, accelerator="cpu", devices=1, workers_per_device=self.n_workers,
                         timeout=spec.limits.request_timeout)
        # In-flight requests get what is left of shutdown_timeout once the workers' second
        # is kept back (serve.supervise.stop).
        self.uvicorn_graceful_timeout = max(0.5, spec.shutdown_timeout - 1.5)
        self.app.title, self.app.version = TITLE, "1"
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: removed (the /docs
        # route in serve.http says why). /openapi.json stays.
        self.app.router.routes = [r for r in self.app.router.routes
                                  if getattr(r, "path", None) not in
                                  ("/docs", "/docs/oauth2-redirect", "/redoc")]

    @asynccontextmanager
    async def lifespan(self, app: Any):
        """Each HTTP process (after the fork) opens its own audit stream and closes it,
        flushed, when uvicorn shuts down gracefully."""
        if self.audit is not None:
            self.audit.start(app.response_queue_id)
        try:
            async with super().lifespan(app):
                yield
        finally:
            if self.audit is not None:
                self.audit.close()

    # -- app construction ----------------------------------------------------------------------
    def _register_internal_endpoints(self) -> None:
        pass  # in _predict_route: the probes need the handler, which needs the model

    def _register_api_endpoints(self, lit_api: Any, request_type: Any, response_type: Any) -> None:
        pass  # deferred to _predict_route: the schema needs the model's input columns

    def _register_middleware(self) -> None:
        for mw in self.middlewares:
            cls, kwargs = mw if isinstance(mw, tuple) else (mw, {})
            if cls is GZipMiddleware:  # small JSON bodies on a service network: not worth it
                continue
            self.app.add_middleware(cls, **kwargs)
        limits = self.spec.limits
        self.app.add_middleware(  # added last = outermost: runs before everything else
            Gate, api_key=self.api_key, header=self.spec.auth.header,
            max_payload_bytes=limits.max_payload_bytes, access=self.spec.access_log,
            read_timeout=limits.read_timeout,
            routes=FIXED_PATHS | {API_PATH})

    def _predict_route(self) -> None:
        info = self.state.model_info()
        if info is None:  # only called once every worker is ready
            raise RuntimeError("no worker published its model")
        data = self.cfg.data
        if info.get("dataset") not in (None, data.name):
            raise ConfigError(
                f"the model was trained on dataset '{info['dataset']}' but the config "
                f"describes '{data.name}'; serve it with data={info['dataset']}")
        audit = self.audit
        extras = sorted({s.column for s in data.sensitive.values()}) if (
            audit is not None and self.spec.audit.request_attributes) else []
        try:
            schema = RequestSchema.build(data, info["input_columns"],
                                         self.spec.limits.max_records, extras)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        labels = {"positive": info.get("positive_label"), "negative": info.get("negative_label")}
        if audit is not None:
            audit.describe(data, schema.columns, schema.extras, labels, self.spec.threshold)
        limits, cache = self.spec.limits, self.spec.cache
        self.info.update({
            "model": info["name"], "dataset": data.name, "input_columns": schema.columns,
            "labels": labels, "favourable_label": labels["positive"] or data.target.positive,
            "favourable_means": getattr(data.target, "favourable_means", None),
            "monitoring_fields": list(schema.extras),
            "audit_log": audit is not None,
            "threshold": self.spec.threshold, "workers": self.n_workers,
            "api_servers": self.spec.api_servers, "max_batch_size": self.spec.max_batch_size,
            "limits": limits.model_dump(), "cache": cache.model_dump(),
            "reload_interval": self.spec.reload.interval,
        })
        handler = self.handler = http.PredictHandler(
            self, schema, self.state, api_path=API_PATH, threshold=self.spec.threshold,
            cache_size=cache.size if cache.enabled else None, cache_ttl=cache.ttl,
            request_timeout=limits.request_timeout, max_inflight=limits.max_inflight,
            audit=audit, favourable={k: self.info[k] for k in ("favourable_label",
                                                               "favourable_means")})
        self._transport.on_failure = handler.transport_failed
        errors = http.ErrorFormat(frozenset(schema.columns), limits.max_errors)
        header = self.spec.auth.header
        http.install_internal(self.app, state=self.state, info=self.info, header=header,
                              errors=errors, ready_timeout=self.spec.probes.ready_timeout,
                              handler=handler)
        http.install_predict(self.app, handler, header)
        protocols.install(self.app, handler, header, info, self.spec.probes.ready_timeout)
        if audit is not None:
            feedback.install(self.app, audit, header, [v for v in labels.values() if v],
                             limits.max_records)

    # -- process management (serve.supervise has the policy) -----------------------------------
    def run(self, *, host: str, port: int, num_api_servers: int, log_level: str,
            **uvicorn_kwargs: Any) -> int:
        """Start everything, serve until a stop signal or a child's death; the exit code."""
        config = uvicorn.Config(app=self.app, host=host, port=port, log_level=log_level,
                                **uvicorn_kwargs)
        sockets = [config.bind_socket()]
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        self.litapi_request_queues = {API_PATH: queue}
        self._transport = PipeTransport(num_api_servers)
        children: dict[str, Any] = {}
        self.inference_workers = []
        for i in range(self.n_workers):
            p = ctx.Process(target=supervise.worker_main, name=f"inference-worker-{i}",
                            args=(self.lit_api, i, queue, self._transport,
                                  self._callback_runner, os.getpid()))
            p.start()
            self.inference_workers.append(p)
            children[f"inference worker {i}"] = p
        front: list[Any] = []
        code = 0
        try:
            if not self._wait_for_workers(children):
                return 0  # stopped while starting
            self._predict_route()
            http_procs = self._start_server(port, num_api_servers, log_level, sockets,
                                            "process", **uvicorn_kwargs)
            front = list(http_procs.values())
            for i, w in http_procs.items():
                children[f"HTTP process {i}"] = w
            log.info("serving on %s:%d: %d HTTP process(es), %d worker(s)", host, port,
                     num_api_servers, self.n_workers)
            why, code = supervise.watch(children, self.signals)
            log.info("shutting down (%s); in-flight requests get %g s", why,
                     self.uvicorn_graceful_timeout)
        finally:
            self.state.set_draining()
            supervise.stop(front, self.inference_workers,
                           time.monotonic() + self.spec.shutdown_timeout)
            for s in sockets:
                s.close()
        return code

    def _wait_for_workers(self, children: dict[str, Any]) -> bool:
        """True once every worker has a model; False if stopped; WorkerStartError if one
        cannot start (with the worker's reason, e.g. the source's refusal)."""
        while not all(v.ready for v in self.state.view()):
            if self.signals.stop_requested:
                return False
            failures = self.state.failures()
            dead = [n for n, p in children.items() if not p.is_alive()]
            if failures or dead:
                time.sleep(0.2)  # let a dying worker finish writing its reason
                failures = self.state.failures()
                why = failures[0] if failures else f"{dead[0]} exited during startup"
                raise WorkerStartError(f"the model could not be loaded: {why}")
            time.sleep(0.05)
        return True


def _single_threaded_numerics() -> None:
    """One thread per worker: parallelism comes from workers, and OpenMP/BLAS thread pools in
    every worker would fight over the same cores (seen: 11 ms -> 300 ms per call)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def serve(cfg: Any) -> int:
    """Run the service described by a validated Config until SIGTERM/SIGINT; the exit code."""
    spec = cfg.serve
    logsetup.configure(spec.log_level)
    api_key = api_key_from_env(spec.auth)
    audit = None
    if spec.audit.enabled:  # refuse to start unless the log can be written
        salt = secret_from_env(spec.audit.salt_env, (
            f"serve.audit: set the salt of the logged input hash in ${spec.audit.salt_env} (a "
            "secret; without it the hashes of low-entropy inputs could be reversed), or "
            "serve.audit.enabled=false"))
        audit = AuditLog.open(spec.audit, api_key, salt)
    if os.environ.get("LIT_SERVER_API_KEY"):
        log.warning("LIT_SERVER_API_KEY is ignored; the key comes from $%s",
                    spec.auth.api_key_env)
    workers = effective_workers(spec.workers_per_device)
    if workers < spec.workers_per_device:
        log.info("workers_per_device %d capped at %d CPU(s)", spec.workers_per_device, workers)
    _single_threaded_numerics()
    metrics_dir = tempfile.mkdtemp(prefix="govpipe-metrics-")
    signals = supervise.Signals()
    limits = spec.limits
    code = 0
    try:
        metrics.enable_multiprocess(metrics_dir)
        signals.install()
        server = GovernedServer(cfg, SharedState(workers), api_key, signals, audit)
        code = server.run(
            host=spec.host, port=spec.port, num_api_servers=spec.api_servers,
            log_level=spec.log_level,
            # uvicorn: no logging config of its own (records go through ours), no access
            # log (serve.gate writes one without client addresses); bounds in serve.edges.
            log_config=None, access_log=False, timeout_keep_alive=limits.keepalive_timeout,
            http=edges.bounded(max_header_bytes=limits.max_header_bytes,
                               max_headers=limits.max_headers,
                               read_timeout=limits.read_timeout,
                               max_connections=limits.max_connections),
        )
    except supervise.ForcedStop:
        code = supervise.EXIT_FORCED
    finally:
        supervise.kill_all(mp.active_children())
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("stopped")
    return code
