"""The real server: `python -m serve` on 127.0.0.1 and a free port, driven over HTTP.

Two servers, each started once for the tests that share it and stopped by its fixture, which
also kills its whole process group if anything is left (so a failing test leaves nothing
running). The tests of a server run in file order: the swap and degraded-source tests change
its model source, and the SIGTERM test stops its server itself.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest

from pipeline.model import load
from pipeline.runtime.hashing import file_sha256 as sha256
from tests.conftest import ROOT
from tests.serve_process import INPUTS, KEY, Server, raw, record
from tests.serve_sources import point


@pytest.fixture(scope="module")
def models(serve_models) -> dict[str, Path]:
    return serve_models


@pytest.fixture(scope="module")
def test_rows(built) -> pd.DataFrame:
    df = pd.read_parquet(built / "artifacts" / "split" / "test.parquet")
    return df[INPUTS].drop_duplicates().reset_index(drop=True)


# == the main server: correctness, validation, auth, limits, cache, fuzzing, swap, logs ========
@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve-main")
    for name, path in models.items():
        shutil.copy(path, work / f"{name}.pkl")
    point(work / "pointer.json", "a.pkl")
    srv = Server(work, [
        "serve.workers_per_device=1", "serve.api_servers=1", "serve.reload.interval=0.5",
        "serve/source=local", "serve.source._target_=tests.serve_sources.PointerSource",
        "~serve.source.path",
        f"+serve.source.pointer={work / 'pointer.json'}",
        "serve.limits.max_payload_bytes=65536", "serve.limits.max_records=50",
        "serve.limits.request_timeout=30",
    ])
    try:
        yield srv.start()
    finally:
        srv.stop()


def test_valid_requests_match_the_model_in_process(server, models, test_rows):
    ref = load(models["a"]).score(test_rows.head(20))
    one = server.post(record(test_rows, 0))
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model"] == {"name": "test-model", "version": sha256(models["a"])[:12]}
    assert body["threshold"] == 0.5
    # which label is favourable, in the answer itself: label_id needs no lookup
    assert body["favourable_label"] == ">50K" and "favourable_means" in body
    p = body["predictions"][0]
    assert p["probability"] == pytest.approx(ref[0], abs=1e-12)
    assert p["label_id"] == int(ref[0] >= 0.5) and p["label"] == ("<=50K", ">50K")[p["label_id"]]
    assert p["favourable"] is (p["label"] == body["favourable_label"])
    api = httpx.get(f"{server.url}/openapi.json", timeout=5).json()["components"]["schemas"]
    assert {"favourable_label", "favourable_means"} <= set(api["PredictResponse"]["properties"])
    assert "favourable" in api["Prediction"]["required"]
    batch = server.post({"records": [record(test_rows, i) for i in range(20)]})
    assert batch.status_code == 200
    got = [p["probability"] for p in batch.json()["predictions"]]
    assert got == pytest.approx(list(ref), abs=1e-12)


def test_concurrent_requests_share_one_predict(server, test_rows):
    before = server.metric("govpipe_batch_requests_count")
    bodies = [record(test_rows, 100 + i) for i in range(48)]
    with ThreadPoolExecutor(16) as pool:
        codes = [r.status_code for r in pool.map(server.post, bodies)]
    assert codes == [200] * 48
    calls = server.metric("govpipe_batch_requests_count") - before
    assert calls < 48  # dynamic batching: fewer predict calls than requests


def test_malformed_json_is_refused(server):
    for bad in (b'{"age": 39,', b"not json", b"", b"\xff\xfe{}", b'{"age": "\xc3"}'):
        r = server.post(bad)
        assert r.status_code == 422, (bad, r.text)  # never FastAPI's bare 400
        assert isinstance(r.json()["detail"], list), r.text


@pytest.mark.parametrize("change, field", [
    ({"age": "39"}, "age"),                       # wrong type
    ({"hours-per-week": 40.5}, "hours-per-week"),
    ({"sex": "Other"}, "sex"),                    # unknown category
    ({"age": 150}, "age"),                        # out of range
    ({"capital-loss": -1}, "capital-loss"),
    ({"fnlwgt": 77516}, "fnlwgt"),                # extra field: not a model input
    ({"race": "Martian"}, "race"),               # monitoring-only field, validated too
    ({"ssn": "123-45-6789"}, "ssn"),
])
def test_invalid_record_is_422_naming_the_field(server, test_rows, change, field):
    r = server.post({**record(test_rows, 1), **change})
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["detail"]]
    r = server.post({"records": [record(test_rows, 1), {**record(test_rows, 1), **change}]})
    assert r.status_code == 422 and f"records[1].{field}" in [d["field"] for d in
                                                              r.json()["detail"]]


def test_a_declared_sensitive_attribute_may_come_along_for_the_audit_log(server, test_rows):
    rec = record(test_rows, 1)
    plain, with_race = server.post(rec), server.post({**rec, "race": "White"})
    assert plain.status_code == with_race.status_code == 200
    assert plain.json()["predictions"] == with_race.json()["predictions"]  # not a model input


def test_missing_field_nan_and_infinity_are_422(server, test_rows):
    rec = record(test_rows, 2)
    del rec["age"]
    r = server.post(rec)
    assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == ["age"]
    for literal in ("NaN", "Infinity", "-Infinity"):  # Python's json parser accepts these
        raw = json.dumps({**record(test_rows, 2), "age": 0}).replace('"age": 0',
                                                                     f'"age": {literal}')
        r = server.post(raw.encode())
        assert r.status_code == 422, raw
        assert "age" in [d["field"] for d in r.json()["detail"]]
    assert "input" not in json.dumps(r.json())  # values are not echoed back


def test_api_key_is_required_where_documented(server, test_rows):
    rec = record(test_rows, 3)
    assert server.post(rec, key=None).status_code == 401
    assert server.post(rec, key="wrong-" + KEY).status_code == 401
    assert server.post(b"{not json", key=None).status_code == 401  # before parsing
    assert httpx.get(f"{server.url}/info", timeout=5).status_code == 401
    info = httpx.get(f"{server.url}/info", headers={"X-API-Key": KEY}, timeout=5)
    assert info.status_code == 200 and info.json()["input_columns"] == INPUTS
    for open_path in ("/livez", "/readyz", "/health", "/metrics", "/openapi.json",
                      "/v2/health/live", "/v2/health/ready"):
        assert httpx.get(f"{server.url}{open_path}", timeout=5).status_code == 200
    for closed in ("/v2", "/v2/models/test-model"):
        assert httpx.get(f"{server.url}{closed}", timeout=5).status_code == 401
    bearer = {"Authorization": f"Bearer {KEY}"}  # what KServe and MLflow clients send
    assert httpx.get(f"{server.url}/info", headers=bearer, timeout=5).status_code == 200


def test_payload_and_record_limits(server, test_rows):
    big = {"records": [record(test_rows, 4)] * 400}  # > 64 KiB
    assert len(json.dumps(big)) > 65536
    r = server.post(big)
    assert r.status_code == 413
    r = server.post({"records": [record(test_rows, 4)] * 51})  # max_records=50
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "records"


def test_repeated_request_is_a_cache_hit(server, test_rows):
    rec = record(test_rows, 500)  # not requested by an earlier test
    hits = server.metric("govpipe_prediction_cache_total", result="hit")
    first, second = server.post(rec), server.post(dict(reversed(list(rec.items()))))
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert first.json() == second.json()
    assert server.metric("govpipe_prediction_cache_total", result="hit") == hits + 1
    health = httpx.get(f"{server.url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["model"]["version"] == first.json()["model"][
        "version"]


def _fuzz(op, mode, base_url: str, failures: list) -> list[int]:
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(mode))
    def run(case):
        r = case.call(base_url=base_url, headers={"X-API-Key": KEY}, timeout=30)
        statuses.append(r.status_code)
        if r.status_code >= 500:
            failures.append((op.path, mode, r.status_code, r.text[:200]))

    statuses: list[int] = []
    run()
    return statuses


def test_schemathesis_finds_no_server_errors(server):
    import schemathesis
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in ops} >= {"/predict", "/readyz", "/livez", "/info", "/invocations",
                                       "/v2/models/{model_name}/infer"}
    failures: list = []
    for op in ops:
        valid = _fuzz(op, GenerationMode.POSITIVE, server.url, failures)
        if op.method.upper() == "POST":  # nothing to make invalid in a bare GET
            invalid = _fuzz(op, GenerationMode.NEGATIVE, server.url, failures)
            if op.path == "/predict":  # its documented schema is exactly what it accepts
                assert set(valid) == {200} and 200 not in invalid, (valid, invalid)
        # every status answered is one the OpenAPI documents
        documented = {int(c) for c in op.definition.raw.get("responses", {}) if c.isdigit()}
        assert set(valid) <= documented | {200}, (op.path, set(valid) - documented)
    assert not failures, failures


def test_model_swap_serves_the_new_version_without_failed_requests(server, models,
                                                                  test_rows):
    new = sha256(models["b"])[:12]
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def traffic():  # unique records: every one goes to the worker, none from the cache
        i = 1000
        while not stop.is_set():
            r = server.post(record(test_rows, i))
            seen.append((r.status_code, r.json().get("model", {}).get("version")
                         if r.status_code == 200 else r.text))
            i += 1

    cached = record(test_rows, 500)  # answered by model a and cached in the earlier test
    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.5)
        point(server.workdir / "pointer.json", "b.pkl")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v == new for _, v in seen):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert all(code == 200 for code, _ in seen), [s for s in seen if s[0] != 200][:5]
    versions = [v for _, v in seen]
    assert new in versions, "the new version was never served"
    assert versions.index(new) > 0 and versions[-1] == new
    assert new in versions[versions.index(new):] and set(versions[versions.index(new):]) == {new}
    r = server.post(cached)  # the old answer is not served for the new version
    assert r.headers["x-cache"] == "miss" and r.json()["model"]["version"] == new
    ref = load(models["b"]).score(pd.DataFrame([cached]))
    assert r.json()["predictions"][0]["probability"] == pytest.approx(ref[0], abs=1e-12)
    assert server.metric("govpipe_model_swaps_total") == 1


def test_unreachable_source_keeps_serving_and_reports_degraded(server, test_rows):
    pointer = server.workdir / "pointer.json"
    point(pointer, unreachable=True)
    try:
        deadline, health = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            health = httpx.get(f"{server.url}/health", timeout=5)
            if health.json()["status"] == "degraded":
                break
            time.sleep(0.2)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert "ConnectionError" in health.json()["workers"][0]["reason"]
        assert server.post(record(test_rows, 7)).status_code == 200
        assert server.metric("govpipe_model_degraded") == 1
    finally:
        point(pointer, unreachable=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/health", timeout=5).json()["status"] == "ok":
            break
        time.sleep(0.2)
    assert httpx.get(f"{server.url}/health", timeout=5).json()["status"] == "ok"


def test_refused_version_is_not_served_and_reported(server, models, test_rows):
    pointer = server.workdir / "pointer.json"
    serving = sha256(models["b"])[:12]  # after the swap test
    refused = sha256(models["a"])[:12]
    point(pointer, "a.pkl", refuse="a.pkl")  # a new "release" the registry will not hand out
    try:
        deadline, body = time.monotonic() + 20, {}
        while time.monotonic() < deadline:
            body = httpx.get(f"{server.url}/readyz", timeout=5).json()
            if body["status"] == "degraded":
                break
            time.sleep(0.2)
        assert body["status"] == "degraded", body
        reason = body["workers"][0]["reason"]
        assert reason.startswith(f"refused: version {refused}") and "verdict=REJECTED" in reason
        r = server.post(record(test_rows, 12))
        assert r.status_code == 200 and r.json()["model"]["version"] == serving
        assert server.metric("govpipe_model_refusals_total") >= 1
    finally:
        point(pointer, "b.pkl")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/readyz", timeout=5).json()["status"] == "ok":
            break
        time.sleep(0.2)
    assert httpx.get(f"{server.url}/readyz", timeout=5).json()["status"] == "ok"


def test_probes_live_and_ready_with_a_worker_round_trip(server):
    live = httpx.get(f"{server.url}/livez", timeout=5)
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = httpx.get(f"{server.url}/readyz", timeout=5).json()
    assert ready["status"] == "ok" and ready["round_trip_ms"] > 0  # a ping crossed a worker
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=5).json() == {"ready": True}


def test_mlflow_and_kserve_clients_score_unchanged(server, test_rows):
    """Bodies exactly as a client of `mlflow models serve` and of KServe v2 writes them."""
    frame = test_rows.head(3)
    native = [p["probability"] for p in server.post(
        {"records": [record(test_rows, i) for i in range(3)]}).json()["predictions"]]
    h = {"X-API-Key": KEY}
    bodies = [
        {"dataframe_split": json.loads(frame.to_json(orient="split"))},  # mlflow's client
        {"dataframe_records": [record(test_rows, i) for i in range(3)]},
        {"instances": [record(test_rows, i) for i in range(3)]},
        {"inputs": {c: frame[c].tolist() for c in INPUTS}},
    ]
    for body in bodies:
        r = httpx.post(f"{server.url}/invocations", json=body, headers=h, timeout=30)
        assert r.status_code == 200, (list(body), r.text)
        assert [p["probability"] for p in r.json()["predictions"]] == native
        assert all("favourable" in p for p in r.json()["predictions"])
    r = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [
        {**record(test_rows, 0), "age": "39"}]}, headers=h, timeout=30)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "dataframe_records[0].age"

    meta = httpx.get(f"{server.url}/v2/models/test-model", headers=h, timeout=5).json()
    assert [i["name"] for i in meta["inputs"]] == INPUTS
    v2 = {"id": "req-1", "inputs": [
        {"name": c, "shape": [3, 1], "datatype": i["datatype"],
         "data": [[v] for v in frame[c].tolist()]}
        for c, i in zip(INPUTS, meta["inputs"], strict=True)]}
    version = meta["versions"][0]
    for path in ("/v2/models/test-model/infer",
                 f"/v2/models/test-model/versions/{version}/infer"):
        r = httpx.post(f"{server.url}{path}", json=v2, headers=h, timeout=30)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert r.json()["id"] == "req-1" and r.json()["model_version"] == version
        assert out["probability"]["data"] == native and out["probability"]["shape"] == [3]
        assert out["favourable"]["datatype"] == "BOOL"
        assert out["favourable"]["data"] == [i == 1 for i in out["label_id"]["data"]]
    r = httpx.post(f"{server.url}/v2/models/test-model/versions/0/infer", json=v2, headers=h)
    assert r.status_code == 404 and "error" in r.json()
    bad = {"inputs": [{**v2["inputs"][0], "data": [["x"]] * 3}, *v2["inputs"][1:]]}
    r = httpx.post(f"{server.url}/v2/models/test-model/infer", json=bad, headers=h)
    assert r.status_code == 422 and "error" in r.json()


def test_error_lists_are_capped_and_field_names_scrubbed(server, test_rows):
    rec = record(test_rows, 13)
    extra = {f"p{i}.person@example.org": 1 for i in range(2000)}
    r = server.post({**rec, **extra})
    assert r.status_code == 422
    body = r.json()
    assert len(body["detail"]) == 20 and body["error_count"] == 2000
    assert len(r.content) < 4096 and "example.org" not in r.text


def test_request_id_is_kept_when_well_formed(server):
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = httpx.get(f"{server.url}/livez", headers={"X-Request-ID": "gw-42.a:b",
                                                  "traceparent": trace}, timeout=5)
    assert r.headers["x-request-id"] == "gw-42.a:b"
    for bad in ("x" * 10240, "white space"):
        r = httpx.get(f"{server.url}/livez", headers={"X-Request-ID": bad}, timeout=5)
        assert r.status_code == 200 and r.headers["x-request-id"] != bad
        assert len(r.headers["x-request-id"]) == 16
    # a control character: no HTTP client library sends one, so a raw request; the HTTP
    # parser refuses it (a JSON 400) and nothing of it comes back
    head = raw(server.port, b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Request-ID: id\x01x\r\n"
                            b"Connection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert b"id\x01x" not in head
    time.sleep(0.5)
    assert trace in server.text()


def test_logs_hold_no_key_and_no_payload_values(server, test_rows):
    canaries = ["CANARY-d41d8cd9", "canary.person@example.org", "987-65-4329"]
    rec = record(test_rows, 8)
    responses = [
        server.post({**rec, "sex": canaries[0]}),                       # invalid category
        server.post({**rec, "email": canaries[1], "ssn": canaries[2]}),  # extra PII fields
        server.post({**rec, "capital-gain": 87123}),                     # valid, distinctive
        server.post({"records": [rec, {**rec, "native-country": canaries[0]}]}),
        server.post(rec, key="wrong-key-" + canaries[0]),
    ]
    assert [r.status_code for r in responses] == [422, 422, 200, 422, 401]
    time.sleep(1)
    text = server.text()
    for secret in [KEY, *canaries]:
        assert secret not in text
    # the number alone, not inside a random hex id (a request id can contain "87123")
    assert not re.search(r"(?<![0-9a-f])87123(?![0-9a-f])", text)
    access = [json.loads(line) for line in text.splitlines()
              if line.startswith("{") and '"serve.access"' in line]
    ids = {a["request_id"] for a in access}
    assert all(r.headers["x-request-id"] in ids for r in responses)
    assert {"route", "status", "duration_ms"} <= set(access[-1])


def test_metrics_cover_requests_latency_errors_batches_and_model(server, models):
    m = server.metric
    assert m("govpipe_http_requests_total", route="/predict", status="200") > 0
    assert m("govpipe_http_errors_total", route="/predict", status="422") > 0
    assert m("govpipe_http_errors_total", route="/predict", status="401") > 0
    assert m("govpipe_http_request_duration_seconds_count", route="/predict") > 0
    assert m("govpipe_prediction_cache_total", result="miss") > 0
    assert m("govpipe_batch_requests_count") > 0 and m("govpipe_predict_duration_seconds_sum") > 0
    assert m("govpipe_model_info", version=sha256(models["b"])[:12]) == 1
    assert m("govpipe_model_reloads_total", result="swapped") == 1
    assert m("govpipe_model_reloads_total", result="refused") >= 1


def test_no_client_file_and_loopback_only(server):
    assert not (server.workdir / "client.py").exists()
    assert not (ROOT / "client.py").exists()
    listening = {c.laddr.ip for c in psutil.Process(server.proc.pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port}
    assert listening == {"127.0.0.1"}


# == a slow server: overload, slow requests, SIGTERM ============================================
@pytest.fixture(scope="module")
def slow_server(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve-slow")
    srv = Server(work, [
        "serve.workers_per_device=2", "serve.api_servers=2", "serve.max_batch_size=1",
        "serve/source=local", "serve.source._target_=tests.serve_sources.SlowSource",
        f"serve.source.path={models['a']}",
        "+serve.source.delay=0.25", "serve.limits.max_inflight=2",
        "serve.limits.request_timeout=1.5", "serve.cache.enabled=false",
        "serve.shutdown_timeout=5",
    ])
    try:
        yield srv.start()
    finally:
        srv.stop()


def test_overload_is_answered_fast_with_503(slow_server, test_rows):
    n = 16
    barrier = threading.Barrier(n)

    def timed(i):
        with httpx.Client(base_url=slow_server.url, timeout=30) as c:
            c.get("/health")  # connection open before the clock starts
            barrier.wait()
            started = time.monotonic()
            r = c.post("/predict", json=record(test_rows, i), headers={"X-API-Key": KEY})
            return r.status_code, time.monotonic() - started, r.headers.get("retry-after")

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(timed, range(n)))
    codes = [c for c, _, _ in results]
    # 2 HTTP processes x max_inflight 2: at most 4 requests wait for a worker (0.25 s each)
    assert set(codes) <= {200, 503} and codes.count(503) >= n - 4, results
    assert codes.count(200) >= 1
    assert all(t < 0.25 and ra == "1" for c, t, ra in results if c == 503), results


def test_slow_request_gets_504_and_the_server_carries_on(slow_server, test_rows):
    started = time.monotonic()
    r = slow_server.post({"records": [record(test_rows, i) for i in range(8)]})  # ~2 s
    assert r.status_code == 504 and 1.4 < time.monotonic() - started < 2.5
    time.sleep(1)  # the worker finishes the batch; its answer is dropped
    assert slow_server.post(record(test_rows, 9)).status_code == 200


def test_model_error_is_a_500_with_request_id(slow_server, test_rows):
    from tests.serve_sources import FAIL_GAIN

    bad = {**record(test_rows, 10), "capital-gain": FAIL_GAIN}
    r = slow_server.post(bad)
    assert r.status_code == 500
    assert r.json() == {"detail": "model error", "request_id": r.headers["x-request-id"]}
    assert slow_server.post(record(test_rows, 11)).status_code == 200
    time.sleep(0.5)
    assert str(FAIL_GAIN) not in slow_server.text()


def test_sigterm_stops_every_process_and_frees_the_port(slow_server):
    children = slow_server.tree()
    assert len(children) >= 4  # 2 workers, 2 HTTP processes (+ the resource tracker)
    slow_server.proc.send_signal(signal.SIGTERM)
    assert slow_server.proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.is_running() and p.status() != "zombie"
                                              for p in children):
        time.sleep(0.1)
    alive = [p.pid for p in children if p.is_running() and p.status() != "zombie"]
    assert alive == []
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        s.bind(("127.0.0.1", slow_server.port))
        s.listen()
    assert "stopped" in slow_server.text()
    assert not (slow_server.workdir / "client.py").exists()
