"""Load test of the inference service against `mlflow models serve` and a no-op LitServe floor.

    python bench/serve_load.py [--model PATH] [--workers 2] [--duration 6] [--out FILE]

One run starts each server in turn on 127.0.0.1 (never two at once: they would share the
CPUs), all with the same number of inference workers, and drives it from a separate client
process: httpx over keep-alive connections, one connection per concurrent caller, payloads
pre-encoded. Rows:

* this server, cache misses (every request a record it has not seen) and cache hits (64
  records repeated), at concurrency 1, 16, 64; then a 4x overload run: 4 x the admitted
  in-flight requests, every answer must be 200 or 503, none may time out;
* `mlflow models serve --env-manager local -w N` on the same model (logged to a throwaway
  MLflow file store, predict_proba), at concurrency 1, 16, 64;
* a LitServe server whose predict does nothing (LitServe's defaults): the HTTP floor;
* the same misses through this server's MLflow (`/invocations`) and Open Inference Protocol v2
  (`/v2/models/NAME/infer`) endpoints, at concurrency 16 (goal: >= 0.95x the native row);
* 1,000-record batches (`--modes batch`): this server with its cache off (the batches repeat)
  and `mlflow models serve` on the same bodies, at concurrency 1 and 16; compare records/s
  (= req/s x 1000) with the single-record misses at c=16.

Reported per row: requests/s, p50 and p99 latency, status counts; per server: RSS and PSS of
the whole process tree at rest and after its load. The table goes to stdout, the raw results
to --out (JSON). The client shares the machine with the server: on a 2-core box its own CPU
(~1 ms per request) caps every row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import litserve as ls

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.processes import free_port, stop_process_group  # noqa: E402

KEY = "bench-key-0123456789abcdef0123"
CONCURRENCY = (1, 16, 64)


# -- the no-op LitServe floor (module level: its workers are spawned and re-import this file) --
class NoopAPI(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return request

    def predict(self, x):
        return x

    def encode_response(self, output):
        return {"ok": True}


def run_noop(port: int, workers: int) -> None:
    server = ls.LitServer(NoopAPI(), accelerator="cpu", workers_per_device=workers)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


# -- load client (runs in its own process) -------------------------------------------------------
async def _load(url: str, bodies: list[bytes], conc: int, duration: float, headers: dict,
                cycle: bool, timeout: float) -> dict:
    import httpx

    lat: list[float] = []
    codes: dict[str, int] = {}
    it = iter(bodies)
    ready, go = [0], asyncio.Event()
    t_end = [0.0]

    def next_body() -> bytes:
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            if not cycle:
                raise SystemExit("ran out of unique payloads") from None
            it = iter(bodies)
            return next(it)

    async def caller() -> None:
        # httpx's transport, one connection per caller: the client layer (cookies, redirects,
        # hooks) adds ~20% client CPU, and the client shares the CPUs with the server.
        async with httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as t:
            ext = {"timeout": {"connect": timeout, "read": timeout, "write": timeout,
                               "pool": timeout}}
            # Warm-up outside the timed window: open the connection; with repeated payloads,
            # the callers together send each one once first (so timed requests are hits).
            for _ in range(max(2, -(-len(bodies) // conc) if cycle else 2)):
                r = await t.handle_async_request(httpx.Request(
                    "POST", url, content=next_body(), headers=headers, extensions=ext))
                await r.aread()
            ready[0] += 1
            if ready[0] == conc:
                t_end[0] = time.perf_counter() + duration
                go.set()
            await go.wait()
            while time.perf_counter() < t_end[0]:
                req = httpx.Request("POST", url, content=next_body(), headers=headers,
                                    extensions=ext)
                started = time.perf_counter()
                try:
                    r = await t.handle_async_request(req)
                    await r.aread()
                    code = str(r.status_code)
                except httpx.TimeoutException:
                    code = "timeout"
                except httpx.TransportError:
                    code = "error"
                elapsed = time.perf_counter() - started
                codes[code] = codes.get(code, 0) + 1
                if code == "200":
                    lat.append(elapsed)

    await asyncio.gather(*(caller() for _ in range(conc)))
    lat.sort()
    total = sum(codes.values())

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(len(lat) * q))] * 1000, 2) if lat else None

    return {"concurrency": conc, "requests": total, "rps": round(total / duration, 1),
            "ok_rps": round(len(lat) / duration, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "codes": codes}


def client_main(args: list[str]) -> None:
    url, payload_file, conc, duration, mode, offset, timeout = args
    lines = Path(payload_file).read_bytes().splitlines()
    offset_i = int(offset)
    cycle = mode in ("hit", "floor", "batch")
    bodies = lines[:64] if cycle else lines[offset_i:]
    headers = {"content-type": "application/json", "x-api-key": KEY}
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    res = runner(_load(url, bodies, int(conc), float(duration), headers, cycle,
                       float(timeout)))
    print(json.dumps(res))


# -- orchestration ---------------------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    from _common import env

    e = env()
    e["GOVPIPE_API_KEY"] = KEY
    e["GOVPIPE_PII_SALT"] = "bench-salt-0123456789"  # the audit log's input-hash salt
    e.setdefault("OMP_NUM_THREADS", "1")  # the same for every server
    e.update(extra)
    return e


def tree_memory(pid: int) -> dict:
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    rss = pss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return {"processes": len(procs), "rss_mib": round(rss / 2**20), "pss_mib": round(pss / 2**20)}


class Running:
    def __init__(self, name: str, cmd: list[str], port: int, health: str, workdir: Path,
                 env: dict[str, str]) -> None:
        self.name, self.port, self.health = name, port, health
        self.log = (workdir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early; see its log in the work dir")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{self.health}",
                             timeout=2).status_code == 200:
                    time.sleep(1.0)  # let every worker finish starting
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} not ready after {timeout} s")

    def stop(self) -> None:
        stop_process_group(self.proc)  # SIGTERM, then whatever is left, e.g. orphans
        self.log.close()


def run_client(url: str, payloads: Path, conc: int, duration: float, mode: str,
               offset: int = 0, timeout: float = 10.0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, str(payloads), str(conc), str(duration),
         mode, str(offset), str(timeout)],
        capture_output=True, text=True, env=_env(), timeout=duration + 120)
    if out.returncode != 0:
        raise SystemExit(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_model(model: Path | None, work: Path) -> Path:
    if model is not None:
        return model
    default = ROOT / "artifacts" / "model.pkl"
    if default.exists():
        return default
    print("training the default model (hgb + ThresholdOptimizer) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pipeline.train", f"hydra.run.dir={work / 'train'}"],
                   cwd=ROOT, env=_env(), check=True, capture_output=True)
    return work / "train" / "artifacts" / "model.pkl"


def payload_files(model_path: Path, work: Path) -> dict[str, Path]:
    """Unique records (real rows, deduplicated) as each protocol's bodies, and 1,000-record
    batches."""
    import pandas as pd

    from pipeline.model import load

    cols = load(model_path).input_columns
    split = model_path.parent / "split"  # a built repo's artifacts/, else this checkout's
    split = split if split.is_dir() else ROOT / "artifacts" / "split"
    frames = [pd.read_parquet(split / f"{s}.parquet")
              for s in ("train", "val", "test")]
    df = pd.concat(frames)[cols].drop_duplicates().sample(frac=1.0, random_state=0)
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
               for r in df.astype(object).to_dict("records")]
    v2_types = {int: "INT64", float: "FP64", str: "BYTES"}

    def v2(r: dict) -> dict:
        return {"inputs": [{"name": c, "shape": [1], "datatype": v2_types[type(v)],
                            "data": [v]} for c, v in r.items()]}

    batches = [records[i:i + 1000] for i in range(0, len(records) - 999, 1000)][:16]
    bodies = {
        "ours": [json.dumps(r) for r in records],
        "mlflow": [json.dumps({"dataframe_records": [r]}) for r in records],
        "v2": [json.dumps(v2(r)) for r in records],
        "ours_batch": [json.dumps({"records": b}) for b in batches],
        "mlflow_batch": [json.dumps({"dataframe_records": b}) for b in batches],
    }
    out = {}
    for name, lines in bodies.items():
        out[name] = work / f"{name}.jsonl"
        out[name].write_bytes("\n".join(lines).encode())
    return out


def our_server(model: Path, workers: int, work: Path, overrides: list[str],
               tag: str = "") -> tuple[Running, int]:
    """`tag` tells apart instances started side by side (their params file and log)."""
    import yaml

    from serve.__main__ import compose

    max_inflight = 64
    raw = compose(["serve/source=local", f"serve.source.path={model}",
                   f"serve.workers_per_device={workers}",
                   f"serve.limits.max_inflight={max_inflight}", *overrides])
    port = free_port()
    raw["serve"]["port"] = port
    raw["serve"]["audit"]["dir"] = str(work / f"audit-{port}")  # never the repo's audit/
    name = f"ours-w{workers}{tag}"
    params = work / f"params-{name}.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    return Running(name, [sys.executable, "-m", "serve", "--params", str(params)],
                   port, "/health", work, _env()), max_inflight


def mlflow_server(model: Path, workers: int, work: Path) -> Running:
    store = work / "mlruns"
    if not (work / "mlflow-uri").exists():
        import mlflow
        import mlflow.sklearn

        from pipeline.model import load

        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # a throwaway store is all we need
        mlflow.set_tracking_uri(f"file://{store}")
        os.chdir(ROOT)  # code_paths are relative to the repo
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(sk_model=load(model), name="model",
                                            code_paths=["pipeline"],
                                            serialization_format="cloudpickle",
                                            pyfunc_predict_fn="predict_proba")
        (work / "mlflow-uri").write_text(info.model_uri)
    uri = (work / "mlflow-uri").read_text()
    port = free_port()
    return Running(f"mlflow-w{workers}",
                   [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", uri,
                    "-h", "127.0.0.1", "-p", str(port), "-w", str(workers),
                    "--env-manager", "local"],
                   port, "/health", work, _env(MLFLOW_TRACKING_URI=f"file://{store}",
                                               MLFLOW_ALLOW_FILE_STORE="true"))


def noop_server(workers: int, work: Path) -> Running:
    port = free_port()
    return Running(f"litserve-noop-w{workers}",
                   [sys.executable, __file__, "--noop-server", str(port), str(workers)],
                   port, "/health", work, _env())


def measure(server: Running, path: str, rows: list[tuple[str, Path, int]], duration: float,
            results: list, offset: list[int], extra: dict | None = None) -> None:
    server.wait_ready()
    rest = tree_memory(server.proc.pid)
    url = f"http://127.0.0.1:{server.port}{path}"
    for mode, payloads, conc, *other in rows:
        start_at = offset[0]
        row_url = f"http://127.0.0.1:{server.port}{other[0]}" if other else url
        res = run_client(row_url, payloads, conc, duration, mode, start_at,
                         timeout=(extra or {}).get("timeout", 30.0))
        if mode in ("miss", "overload") or mode.startswith("miss-"):
            offset[0] += res["requests"] + 2 * conc
        mode = f"{mode} {other[0]}" if other else mode
        res.update(server=server.name, mode=mode)
        results.append(res)
        print(f"  {server.name:18s} {mode:24s} c={conc:<4d} {res['rps']:8.1f} req/s  "
              f"p50 {res['p50_ms']} ms  p99 {res['p99_ms']} ms  {res['codes']}", flush=True)
    after = tree_memory(server.proc.pid)
    results.append({"server": server.name, "mode": "memory", "at_rest": rest,
                    "after_load": after})
    print(f"  {server.name:18s} memory at rest {rest}, after load {after}", flush=True)


def table(results: list, load_avg: tuple) -> str:
    lines = ["| server | payloads | concurrency | req/s | p50 ms | p99 ms | statuses |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["mode"] == "memory":
            continue
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
        lines.append(f"| {r['server']} | {r['mode']} | {r['concurrency']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']} | {r['p99_ms']} | {codes} |")
    lines += ["", "| server | processes | RSS at rest MiB | PSS at rest | RSS after load | "
                  "PSS after load |", "|---|---|---|---|---|---|"]
    for r in results:
        if r["mode"] == "memory":
            a, b = r["at_rest"], r["after_load"]
            lines.append(f"| {r['server']} | {a['processes']} | {a['rss_mib']} | "
                         f"{a['pss_mib']} | {b['rss_mib']} | {b['pss_mib']} |")
    lines.append(f"\nload average before/after: {load_avg}; cpus: {os.cpu_count()}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="GovernedModel pickle (default: train one)")
    ap.add_argument("--workers", default="2", help="inference workers, e.g. 2 or 1,2")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per row")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "serve_load.json")
    ap.add_argument("--skip", default="", help="comma list of: ours,mlflow,noop")
    ap.add_argument("--modes", default="miss,hit,overload,protocols,batch",
                    help="rows for this server")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for this server")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    results: list = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        model = prepare_model(args.model, work)
        files = payload_files(model, work)
        ours_payloads, mlflow_payloads = files["ours"], files["mlflow"]
        modes = args.modes.split(",")
        for workers in (int(w) for w in args.workers.split(",")):
            if "ours" not in skip:
                server, inflight = our_server(model, workers, work, args.overrides)
                rows = [(m, ours_payloads, c) for m in ("miss", "hit") if m in modes
                        for c in CONCURRENCY]
                if "protocols" in modes:  # the same misses through the other protocols
                    rows += [("miss", mlflow_payloads, 16, "/invocations"),
                             ("miss", files["v2"], 16, "/v2/models/model/infer")]
                if "overload" in modes:
                    rows += [("overload", ours_payloads, 4 * inflight)]
                try:
                    measure(server, "/predict", rows, args.duration, results, [64],
                            {"timeout": 10.0})
                finally:
                    server.stop()
                if "batch" in modes:  # repeated batches: the cache would answer them
                    server, _ = our_server(model, workers, work,
                                           [*args.overrides, "serve.cache.enabled=false"])
                    server.name += "-nocache"
                    try:
                        measure(server, "/predict", [("batch", files["ours_batch"], c)
                                                     for c in (1, 16)],
                                args.duration, results, [0], {"timeout": 30.0})
                    finally:
                        server.stop()
            if "mlflow" not in skip:
                server = mlflow_server(model, workers, work)
                rows = [("miss", mlflow_payloads, c) for c in CONCURRENCY]
                if "batch" in modes:
                    rows += [("batch", files["mlflow_batch"], c) for c in (1, 16)]
                try:
                    measure(server, "/invocations", rows, args.duration, results, [64],
                            {"timeout": 30.0})
                finally:
                    server.stop()
            if "noop" not in skip:
                server = noop_server(workers, work)
                try:
                    measure(server, "/predict",
                            [("floor", ours_payloads, c) for c in CONCURRENCY],
                            args.duration, results, [0])
                finally:
                    server.stop()
    report = table(results, (load_before, os.getloadavg()))
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "load_avg": [load_before,
                                                                     os.getloadavg()]},
                                   indent=2))
    args.out.with_suffix(".md").write_text(report + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        client_main(sys.argv[2:])
    elif sys.argv[1:2] == ["--noop-server"]:
        run_noop(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
