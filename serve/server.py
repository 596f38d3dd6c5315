"""The LitServer, adapted for this service, and how to run and stop it.

Process layout (LitServe's): the main process starts a multiprocessing manager, spawns the
inference workers (serve.api), waits until one has a model, then forks the HTTP processes
that share the listening socket; it then only waits for the stop signal.

What this subclass changes in LitServe 0.2.19, and why:

* Routes: /predict is registered only once a worker has loaded the model and published its
  input columns, so the request schema is derived from the dataset spec *and* the model
  actually served, and the main process never loads the model itself. /health reports model
  versions and degraded sources; /metrics is Prometheus; the API key is checked by serve.gate
  (LitServe's `LIT_SERVER_API_KEY` would lock /health too and is ignored here).
* Queues: LitServe puts every request and every answer through a multiprocessing *manager*
  process (extra IPC round trips, one more busy process, a thread hop per answer); requests
  go through a plain multiprocessing.Queue and answers through serve.transport's pipes (its
  ZeroMQ alternative is broken in 0.2.19, see there).
* Stopping: LitServe leaves its workers and HTTP processes running, still holding the port,
  when the main process gets SIGTERM. Here SIGTERM stops the HTTP processes first (they
  finish in-flight requests, for at most `shutdown_timeout` s), then the workers, then the
  manager; anything left is killed before the main process exits.
* No `client.py` written to the working directory; binds 127.0.0.1 unless configured.
"""

from __future__ import annotations

import _thread
import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import threading
import time
from contextlib import suppress
from typing import Any

import litserve as ls
from starlette.middleware.gzip import GZipMiddleware

from pipeline.errors import ConfigError, PipelineError
from serve import http, logsetup, metrics
from serve.api import GovernedAPI
from serve.gate import Gate
from serve.schema import RequestSchema
from serve.state import SharedState
from serve.transport import PipeTransport

log = logging.getLogger("serve")

API_PATH = "/predict"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def effective_workers(requested: int) -> int:
    """Worker processes: as configured, but never more than the CPUs this process may use."""
    return max(1, min(requested, cpu_count()))


class WorkerStartError(PipelineError):
    """No inference worker could load the model (its error is logged just before)."""


def api_key_from_env(auth: Any, environ: dict[str, str] | None = None) -> bytes | None:
    if not auth.enabled:
        return None
    key = (environ if environ is not None else os.environ).get(auth.api_key_env, "")
    if not key:
        raise ConfigError(
            f"serve.auth: set the API key in ${auth.api_key_env} "
            "(or serve.auth.enabled=false for a server nobody else can reach)")
    if len(key) < auth.min_length:
        raise ConfigError(
            f"serve.auth: ${auth.api_key_env} is shorter than {auth.min_length} characters")
    return key.encode()


class GovernedServer(ls.LitServer):
    def __init__(self, cfg: Any, state: SharedState, api_key: bytes | None) -> None:
        spec = cfg.serve
        self.cfg, self.spec, self.state, self.api_key = cfg, spec, state, api_key
        self.info: dict[str, Any] = {}
        self.serving_started = False
        self._stopped = False
        self.n_workers = state.workers
        api = GovernedAPI(
            source=spec.source, threshold=spec.threshold, reload_interval=spec.reload.interval,
            state=state, log_level=spec.log_level, max_batch_size=spec.max_batch_size,
            batch_timeout=spec.batch_timeout, api_path=API_PATH)
        super().__init__(api, accelerator="cpu", devices=1, workers_per_device=self.n_workers,
                         timeout=spec.limits.request_timeout)
        self.uvicorn_graceful_timeout = spec.shutdown_timeout

    # -- app construction ----------------------------------------------------------------------
    def _register_internal_endpoints(self) -> None:
        http.install_internal(self.app, state=self.state, info=self.info,
                              header=self.spec.auth.header)

    def _register_api_endpoints(self, lit_api: Any, request_type: Any, response_type: Any) -> None:
        pass  # deferred to _start_server: the schema needs the model's input columns

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
            routes=frozenset({API_PATH, "/health", "/metrics", "/info", "/openapi.json",
                              "/docs"}))

    def _predict_route(self) -> None:
        info = self.state.model_info()
        if info is None:  # LitServe only gets here once a worker is ready
            raise RuntimeError("no worker published its model")
        data = self.cfg.data
        if info.get("dataset") not in (None, data.name):
            raise ConfigError(
                f"the model was trained on dataset '{info['dataset']}' but the config "
                f"describes '{data.name}'; serve it with data={info['dataset']}")
        try:
            schema = RequestSchema.build(data, info["input_columns"],
                                         self.spec.limits.max_records)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        limits, cache = self.spec.limits, self.spec.cache
        self.info.update({
            "model": info["name"], "dataset": data.name, "input_columns": schema.columns,
            "labels": {"positive": info.get("positive_label"),
                       "negative": info.get("negative_label")},
            "threshold": self.spec.threshold, "workers": self.n_workers,
            "api_servers": self.spec.api_servers, "max_batch_size": self.spec.max_batch_size,
            "limits": limits.model_dump(), "cache": cache.model_dump(),
            "reload_interval": self.spec.reload.interval,
        })
        handler = http.PredictHandler(
            self, schema, self.state, api_path=API_PATH, threshold=self.spec.threshold,
            cache_size=cache.size if cache.enabled else None, cache_ttl=cache.ttl,
            request_timeout=limits.request_timeout, max_inflight=limits.max_inflight)
        http.install_predict(self.app, handler, self.spec.auth.header)

    # -- process management --------------------------------------------------------------------
    def _init_manager(self, num_api_servers: int) -> Any:
        logsetup.route_third_party()  # LitServe.run() just gave its logger its own handler
        manager = super()._init_manager(num_api_servers)
        # Requests: a plain queue (a pipe) instead of one served by the manager process.
        ctx = mp.get_context("spawn")  # spawned workers get it pickled, forked HTTP inherit it
        for path in list(self.litapi_request_queues):
            self.litapi_request_queues[path] = ctx.Queue()
        # Answers: one pipe per HTTP process (see serve.transport for why not LitServe's).
        self._transport = PipeTransport(num_api_servers)
        return manager

    def _start_server(self, port, num_uvicorn_servers, log_level, sockets, uvicorn_worker_type,
                      **kwargs):
        self._predict_route()
        workers = super()._start_server(port, num_uvicorn_servers, log_level, sockets,
                                        uvicorn_worker_type, **kwargs)
        self.serving_started = True
        log.info("serving on %s:%d: %d HTTP process(es), %d worker(s)", self.spec.host, port,
                 num_uvicorn_servers, self.n_workers)
        return workers

    def request_stop(self) -> None:
        """Ask the main thread to shut down (safe from any thread, not from a signal handler)."""
        try:
            self._shutdown_event.set()
        except Exception as e:  # the manager is gone: interrupt the wait instead
            log.warning("stop event unavailable (%s: %s); interrupting", type(e).__name__, e)
            _thread.interrupt_main()

    def _perform_graceful_shutdown(self, manager: Any, uvicorn_workers: dict,
                                   shutdown_reason: str = "normal") -> None:
        if threading.current_thread() is not threading.main_thread():
            # LitServe's worker monitor saw a worker die: let the main thread stop everything.
            log.error("stopping: %s", shutdown_reason)
            self.request_stop()
            return
        if self._stopped:
            return
        self._stopped = True
        log.info("shutting down (%s)", shutdown_reason)
        with suppress(Exception):
            self._shutdown_event.set()  # also ends LitServe's worker monitor
        # HTTP processes first: on SIGTERM uvicorn stops accepting and lets in-flight requests
        # finish, which needs the workers still running.
        front = [w for w in uvicorn_workers.values() if isinstance(w, mp.process.BaseProcess)]
        for w in front:
            if w.is_alive():
                w.terminate()
        _join(front, self.spec.shutdown_timeout + 2)
        _join(list(getattr(self, "inference_workers", [])), 5, terminate=True)
        with suppress(Exception):
            manager.shutdown()
        for q in self.litapi_request_queues.values():
            with suppress(Exception):
                q.cancel_join_thread()
                q.close()


def _join(procs: list, timeout: float, terminate: bool = False) -> None:
    if terminate:
        for p in procs:
            with suppress(Exception):
                if p.is_alive():
                    p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            log.warning("process %s (pid %s) did not stop in time; killing it", p.name, p.pid)
            p.kill()
            p.join(2)


def reap_children() -> None:
    """Stop every child process still running (the last line of defence on exit)."""
    _join(mp.active_children(), 5, terminate=True)


def _install_sigterm(server: GovernedServer) -> None:
    main_pid = os.getpid()
    # Forked children (HTTP processes, the manager) must not inherit this handler.
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    stopping = False

    def on_sigterm(signum: int, frame: Any) -> None:
        nonlocal stopping
        if os.getpid() != main_pid or stopping or not server.serving_started:
            # Starting up, or asked twice: leave now; the finally blocks stop the children.
            raise SystemExit(128 + signum)
        stopping = True
        log.info("SIGTERM: stopping; in-flight requests get %g s", server.spec.shutdown_timeout)
        # The main thread is blocked on a manager call; set the stop event from a thread.
        threading.Thread(target=server.request_stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)


def _single_threaded_numerics() -> None:
    """One thread per worker: parallelism comes from workers, and OpenMP/BLAS thread pools in
    every worker would fight over the same cores (seen: 11 ms -> 300 ms per call)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def serve(cfg: Any) -> None:
    """Run the service described by a validated Config until SIGTERM/SIGINT."""
    spec = cfg.serve
    logsetup.configure(spec.log_level)
    api_key = api_key_from_env(spec.auth)
    if os.environ.get("LIT_SERVER_API_KEY"):
        log.warning("LIT_SERVER_API_KEY is ignored; the key comes from $%s",
                    spec.auth.api_key_env)
    workers = effective_workers(spec.workers_per_device)
    if workers < spec.workers_per_device:
        log.info("workers_per_device %d capped at %d CPU(s)", spec.workers_per_device, workers)
    _single_threaded_numerics()
    metrics_dir = tempfile.mkdtemp(prefix="govpipe-metrics-")
    try:
        metrics.enable_multiprocess(metrics_dir)
        server = GovernedServer(cfg, SharedState(workers), api_key)
        _install_sigterm(server)
        try:
            server.run(
                host=spec.host, port=spec.port, num_api_servers=spec.api_servers,
                log_level=spec.log_level, generate_client_file=False,
                api_server_worker_type="process",
                # uvicorn: no logging config of its own (records go through ours), no access
                # log (serve.gate writes one without client addresses), a connection cap.
                log_config=None, access_log=False,
                limit_concurrency=spec.limits.max_connections,
            )
        except RuntimeError as e:
            if "workers failed to start" not in str(e):
                raise
            raise WorkerStartError(
                f"no worker could load the model from {spec.source.get('_target_')} "
                "(the worker's error is logged above)") from None
    finally:
        reap_children()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("stopped")
