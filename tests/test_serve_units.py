"""The serving pieces in-process: request schema, limits, batching loop, shared state, gate,
and the LitAPI itself (predict path and model swap). The real server is in test_serve_server.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import threading
import time

import httpx
import pandas as pd
import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from pipeline.config import validate
from pipeline.config.dataset import DatasetSpec
from pipeline.config.serve import ServeSpec
from pipeline.runtime.errors import ConfigError
from serve.schema import RequestSchema, field_path
from serve.state import SharedState
from tests.conftest import ROOT
from tests.serve_process import INPUTS as ADULT_INPUTS

RECORD = {"age": 39, "workclass": "State-gov", "education-num": 13,
          "marital-status": "Never-married", "occupation": "Adm-clerical",
          "relationship": "Not-in-family", "capital-gain": 2174, "capital-loss": 0,
          "hours-per-week": 40, "native-country": "United-States", "sex": "Male"}


@pytest.fixture(scope="module")
def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def spec(params) -> DatasetSpec:
    return validate(params).data


@pytest.fixture(scope="module")
def schema(spec) -> RequestSchema:
    return RequestSchema.build(spec, ADULT_INPUTS, max_records=5)


def _errors(schema: RequestSchema, body) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as e:
        TypeAdapter(schema.body).validate_python(body)
    return [(field_path(x["loc"]), x["type"]) for x in e.value.errors()]


# -- request schema --------------------------------------------------------------------------
def test_schema_is_derived_from_the_dataset_spec(schema, spec):
    js = TypeAdapter(schema.body).json_schema(by_alias=True)
    record = js["$defs"]["AdultRecord"]
    assert set(record["required"]) == set(ADULT_INPUTS)
    assert record["additionalProperties"] is False
    props = record["properties"]
    assert props["age"]["type"] == "integer"
    assert (props["age"]["minimum"], props["age"]["maximum"]) == (17, 90)
    assert props["sex"]["enum"] == spec.columns["sex"].categories
    assert props["workclass"]["enum"] == spec.columns["workclass"].categories
    batch = js["$defs"]["AdultBatch"]["properties"]["records"]
    assert (batch["minItems"], batch["maxItems"]) == (1, 5)


def test_single_record_and_batch_give_canonical_rows(schema):
    ta = TypeAdapter(schema.body)
    one = schema.rows(ta.validate_python(RECORD))
    shuffled = dict(reversed(list(RECORD.items())))  # key order must not matter
    many = schema.rows(ta.validate_python({"records": [shuffled, RECORD]}))
    assert one == [tuple(RECORD[c] for c in ADULT_INPUTS)]
    assert schema.rows(ta.validate_python({**RECORD, "age": 39.0})) == one  # JSON integer
    assert many == one * 2
    assert schema.columns == tuple(ADULT_INPUTS)


@pytest.mark.parametrize("change, field, kind", [
    ({"age": "39"}, "age", "int_type"),                      # wrong type: no coercion
    ({"age": True}, "age", "int_type"),
    ({"age": 39.5}, "age", "int_type"),
    ({"age": math.nan}, "age", "int_type"),                   # NaN is not an int either
    ({"age": 200}, "age", "less_than_equal"),                 # out of range
    ({"age": 3}, "age", "greater_than_equal"),
    ({"sex": "Unknown"}, "sex", "literal_error"),             # unknown category
    ({"fnlwgt": 77516}, "fnlwgt", "extra_forbidden"),         # a column the model does not use
    ({"race": "White"}, "race", "extra_forbidden"),           # sensitive, not a model input
    ({"income": ">50K"}, "income", "extra_forbidden"),        # the target
    ({"email": "x@example.com"}, "email", "extra_forbidden"),
])
def test_invalid_record_names_the_field(schema, change, field, kind):
    assert (field, kind) in _errors(schema, {**RECORD, **change})
    assert (f"records[1].{field}", kind) in _errors(schema, {"records": [RECORD, {**RECORD,
                                                                                 **change}]})


def test_missing_field_and_batch_limits(schema):
    rec = {k: v for k, v in RECORD.items() if k != "age"}
    assert ("age", "missing") in _errors(schema, rec)
    assert ("records", "too_long") in _errors(schema, {"records": [RECORD] * 6})
    assert ("records", "too_short") in _errors(schema, {"records": []})
    assert ("records", "extra_forbidden") not in _errors(schema, {"records": [RECORD],
                                                                  "x": 1})


def test_float_columns_refuse_nan_and_infinity():
    raw = {"name": "t", "source": {"dir": "d", "files": ["f"]},
           "columns": {"x": {"type": "float", "min": 0, "max": 10},
                       "g": {"type": "category", "categories": ["a", "b"]},
                       "y": {"type": "category", "categories": ["n", "p"]},
                       "who": {"type": "string", "pii": "drop"}},
           "target": {"column": "y", "positive": "p"}, "features": ["x", "g"],
           "sensitive": {"g": {"column": "g"}}}
    spec = DatasetSpec.model_validate(raw)
    s = RequestSchema.build(spec, ["x", "g"], 10)
    for bad in (math.nan, math.inf, -math.inf):
        assert ("x", "finite_number") in _errors(s, {"x": bad, "g": "a"})
    assert s.rows(TypeAdapter(s.body).validate_python({"x": 1, "g": "a"})) == [(1.0, "a")]
    assert ("who", "extra_forbidden") in _errors(s, {"x": 1.0, "g": "a", "who": "Jane"})
    with pytest.raises(ValueError, match="PII"):
        RequestSchema.build(spec, ["x", "who"], 10)
    with pytest.raises(ValueError, match="does not declare"):
        RequestSchema.build(spec, ["x", "nope"], 10)


def test_field_path():
    assert field_path(("body", "batch", "records", 3, "age")) == "records[3].age"
    assert field_path(("body", "record", "sex")) == "sex"
    assert field_path(("body",)) == "<body>"


# -- settings --------------------------------------------------------------------------------
def test_workers_are_capped_at_cpu_count(monkeypatch):
    from serve import server

    monkeypatch.setattr(server, "cpu_count", lambda: 2)
    assert server.effective_workers(8) == 2
    assert server.effective_workers(1) == 1


def test_api_key_comes_from_the_environment(params):
    from serve.server import api_key_from_env

    auth = validate(params).serve.auth
    with pytest.raises(ConfigError, match="GOVPIPE_API_KEY"):
        api_key_from_env(auth, {})
    with pytest.raises(ConfigError, match="shorter"):
        api_key_from_env(auth, {"GOVPIPE_API_KEY": "short"})
    assert api_key_from_env(auth, {"GOVPIPE_API_KEY": "k" * 32}) == b"k" * 32
    off = auth.model_copy(update={"enabled": False})
    assert api_key_from_env(off, {}) is None


@pytest.mark.parametrize("change, msg", [
    ({"batch_timeout": 20}, "batch_timeout"),
    ({"host": "10.1.2.3"}, "host"),
    ({"port": 80}, "port"),
    ({"source": {"path": "x"}}, "_target_"),
])
def test_serve_spec_rules(params, change, msg):
    with pytest.raises(ValidationError, match=msg):
        ServeSpec.model_validate({**params["serve"], **change})


# -- batching loop ---------------------------------------------------------------------------
class _Api:
    def __init__(self, max_batch_size=4, batch_timeout=0.0, request_timeout=30.0):
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout
        self.request_timeout = request_timeout


def _req(uid, age=0.0):
    return (0, uid, time.monotonic() - age, {"rows": [uid]})


def test_loop_takes_what_is_queued_up_to_max_batch_size():
    from serve.loop import GreedyBatchLoop

    q = queue.Queue()
    for i in range(6):
        q.put(_req(f"r{i}"))
    loop = GreedyBatchLoop()
    batch, timed_out = loop.get_batch_requests(_Api(max_batch_size=4), q, None)
    assert [b[1] for b in batch] == ["r0", "r1", "r2", "r3"] and timed_out == []
    batch, _ = loop.get_batch_requests(_Api(max_batch_size=4), q, None)
    assert [b[1] for b in batch] == ["r4", "r5"]


def test_loop_never_delays_a_lone_request():
    from serve.loop import GreedyBatchLoop

    q = queue.Queue()
    q.put(_req("alone"))
    started = time.monotonic()
    batch, _ = GreedyBatchLoop().get_batch_requests(_Api(batch_timeout=5.0), q, None)
    assert [b[1] for b in batch] == ["alone"] and time.monotonic() - started < 1.0


def test_loop_drops_requests_that_waited_too_long_and_stops_on_sentinel():
    from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError

    from serve.loop import GreedyBatchLoop

    q = queue.Queue()
    q.put(_req("stale", age=10))
    q.put(_req("fresh"))
    batch, timed_out = GreedyBatchLoop().get_batch_requests(_Api(request_timeout=5), q, None)
    assert [b[1] for b in batch] == ["fresh"] and timed_out == [(0, "stale")]
    q.put(_SENTINEL_VALUE)
    with pytest.raises(_StopLoopError):
        GreedyBatchLoop().get_batch_requests(_Api(), q, None)


# -- shared state ----------------------------------------------------------------------------
def test_shared_state_reports_consensus_version_and_degradation():
    s = SharedState(2)
    assert s.serving_version() is None and not any(v.ready for v in s.view())
    s.loaded(0, "m", "v1", swapped=False)
    assert s.serving_version() is None  # worker 1 still starting
    s.loaded(1, "m", "v1", swapped=False)
    assert s.serving_version() == "v1"
    s.loaded(0, "m", "v2", swapped=True)
    assert s.serving_version() is None  # mid-swap: the cache is bypassed
    s.loaded(1, "m", "v2", swapped=True)
    assert s.serving_version() == "v2" and [v.swaps for v in s.view()] == [1, 1]
    s.degraded(1, "resolve failed: ConnectionError")
    assert s.view()[1].degraded and s.view()[1].reason.startswith("resolve failed")
    s.checked(1)
    assert not s.view()[1].degraded
    assert s.publish_model_info({"input_columns": ["a"]}) == {"input_columns": ["a"]}
    assert s.publish_model_info({"input_columns": ["b"]}) == {"input_columns": ["a"]}


def test_health_is_ready_only_with_a_model_and_reports_degraded():
    from serve.http import health

    s = SharedState(2)
    s.loaded(0, "m", "v1", swapped=False)
    r = health(s)
    assert r.status_code == 503 and json.loads(r.body)["status"] == "starting"
    s.loaded(1, "m", "v1", swapped=False)
    body = json.loads(health(s).body)
    assert health(s).status_code == 200 and body["status"] == "ok"
    assert body["model"] == {"name": "m", "version": "v1"}
    s.degraded(0, "resolve failed: ConnectionError")
    r = health(s)
    assert r.status_code == 200 and json.loads(r.body)["status"] == "degraded"


# -- gate: auth, payload limit ---------------------------------------------------------------
def _gate_app(**kw):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from serve.gate import Gate

    async def echo(request):
        return PlainTextResponse(str(len(await request.body())))

    app = Starlette(routes=[Route("/predict", echo, methods=["POST"]),
                            Route("/health", echo, methods=["GET"])])
    settings = dict(api_key=b"k" * 20, header="X-API-Key", max_payload_bytes=100,
                    routes=frozenset({"/predict", "/health"}), access=False)
    settings.update(kw)
    return Gate(app, **settings)


def _call(app, method, path, **kw):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.request(method, path, **kw)
    return asyncio.run(go())


def test_gate_checks_the_key_before_anything_else():
    app = _gate_app()
    assert _call(app, "POST", "/predict", content=b"{}").status_code == 401
    r = _call(app, "POST", "/predict", content=b"x" * 500, headers={"X-API-Key": "wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
    r = _call(app, "POST", "/predict", content=b"{}", headers={"X-API-Key": "k" * 20})
    assert r.status_code == 200 and r.text == "2" and r.headers["x-request-id"]
    assert _call(app, "GET", "/health").status_code == 200  # open
    assert _call(app, "GET", "/elsewhere").status_code == 401  # default: closed
    assert _call(_gate_app(api_key=None), "POST", "/predict", content=b"{}").status_code == 200


def test_gate_refuses_large_bodies_with_or_without_content_length():
    app = _gate_app()
    key = {"X-API-Key": "k" * 20}
    assert _call(app, "POST", "/predict", content=b"x" * 100, headers=key).text == "100"
    assert _call(app, "POST", "/predict", content=b"x" * 101, headers=key).status_code == 413

    async def chunks():
        for _ in range(5):
            yield b"x" * 30

    r = _call(app, "POST", "/predict", content=chunks(), headers=key)  # chunked: no length
    assert r.status_code == 413


# -- the LitAPI in-process -------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(serve_models):
    return serve_models


@pytest.fixture
def api(models, tmp_path, monkeypatch):
    import shutil

    from serve import logsetup
    from serve.api import GovernedAPI
    from tests.serve_sources import point

    monkeypatch.setattr(logsetup, "configure", lambda level: None)  # keep pytest's logging
    for name, path in models.items():
        shutil.copy(path, tmp_path / f"{name}.pkl")
    pointer = tmp_path / "pointer.json"
    point(pointer, "a.pkl")
    state = SharedState(1)
    lit = GovernedAPI(source={"_target_": "tests.serve_sources.PointerSource",
                              "pointer": str(pointer)},
                      threshold=0.5, reload_interval=3600, state=state, log_level="info",
                      max_batch_size=8, batch_timeout=0.0)
    lit.setup("cpu")
    lit.pointer = pointer
    return lit


@pytest.fixture(scope="module")
def test_split(built) -> pd.DataFrame:
    return pd.read_parquet(built / "artifacts" / "split" / "test.parquet")


def _rows(df, n):
    return df, [tuple(r) for r in df[ADULT_INPUTS].astype(object).iloc[:n]
                .itertuples(index=False)]


def _run(api, requests):
    x = api.batch([api.decode_request({"rows": rows}) for rows in requests])
    return [api.encode_response(y) for y in api.unbatch(api.predict(x))]


def test_batch_predict_matches_the_model_in_process(api, models, test_split):
    from pipeline.model import load

    df, rows = _rows(test_split, 7)
    out = _run(api, [rows[:1], rows[1:5], rows[5:]])  # 3 requests, one predict call
    assert [len(o["predictions"]) for o in out] == [1, 4, 2]
    got = [p["probability"] for o in out for p in o["predictions"]]
    ref = load(models["a"]).score(df[ADULT_INPUTS].head(7))
    assert got == pytest.approx(list(ref), abs=1e-12)
    for p in (p for o in out for p in o["predictions"]):
        assert p["label_id"] == int(p["probability"] >= 0.5)
        assert p["label"] == (">50K" if p["label_id"] else "<=50K")
        assert p["favourable"] is (p["label_id"] == 1)
    assert {o["model"]["version"] for o in out} == {api.current.version}


def test_model_swap_unreachable_source_and_incompatible_model(api, models, tmp_path,
                                                              test_split):
    from pipeline.runtime.hashing import file_sha256 as sha256
    from tests.serve_sources import point

    first = api.current.version
    api.check_source()  # nothing changed
    assert api.current.version == first and not api.state.view()[0].degraded
    point(api.pointer, unreachable=True)
    api.check_source()
    view = api.state.view()[0]
    assert view.degraded and "ConnectionError" in view.reason and api.current.version == first
    point(api.pointer, "b.pkl")
    api.check_source()
    assert api.current.version == sha256(models["b"])[:12] != first
    assert not api.state.view()[0].degraded and api.state.view()[0].swaps == 1
    _, rows = _rows(test_split, 2)
    assert _run(api, [rows])[0]["model"]["version"] == api.current.version
    # a model needing a column the running schema lacks is refused; the old one stays
    api.columns = [c for c in api.columns if c != "sex"]
    point(api.pointer, "a.pkl")
    api.check_source()
    assert api.current.version == sha256(models["b"])[:12]
    assert "IncompatibleModel" in api.state.view()[0].reason


def test_one_failing_request_does_not_fail_its_batch(api, test_split):
    _, rows = _rows(test_split, 3)
    bad = [(1, 2)]  # cannot come through HTTP (validated); stands for any model error
    out = _run(api, [rows[:2], bad, rows[2:]])
    assert "predictions" in out[0] and "predictions" in out[2]
    assert out[1]["error"] == "model_error"


def test_importing_the_entry_point_starts_nothing(tmp_path):
    """Workers are spawned and re-import `serve.__main__`: that must have no side effects."""
    import subprocess
    import sys

    from tests.conftest import env

    r = subprocess.run([sys.executable, "-c", "import serve.__main__, serve.server"],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_serve_cli_reports_config_errors(tmp_path):
    import subprocess
    import sys

    from tests.conftest import env

    bad = subprocess.run([sys.executable, "-m", "serve", "serve.port=80"], cwd=tmp_path,
                         env=env(GOVPIPE_API_KEY="k" * 20), capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "serve.port" in bad.stderr
    nokey = subprocess.run([sys.executable, "-m", "serve"], cwd=tmp_path,
                           env={**env(), "GOVPIPE_API_KEY": ""}, capture_output=True, text=True,
                           timeout=120)
    assert nokey.returncode == 2 and "GOVPIPE_API_KEY" in nokey.stderr
    lines = [json.loads(line) for line in nokey.stderr.splitlines() if line.startswith("{")]
    assert lines and all("msg" in line for line in lines)
    missing = subprocess.run([sys.executable, "-m", "serve", "--params", "nope.yaml"],
                             cwd=tmp_path, env=env(GOVPIPE_API_KEY="k" * 20),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


# -- answer transport (finding 1 of issue 10) ---------------------------------------------------
def _receive_all(transport, n: int, write) -> list:
    """Run an event loop like an HTTP process's (uvloop), receive `n` answers while `write`
    runs in a thread."""
    import uvloop

    async def go():
        first = asyncio.create_task(transport.areceive(0, timeout=None))
        await asyncio.sleep(0)  # the reader is registered
        writer = threading.Thread(target=write)
        writer.start()
        got = [await first]
        for _ in range(n - 1):
            got.append(await transport.areceive(0, timeout=10))
        writer.join()
        return got

    return uvloop.run(go())


def test_transport_reassembles_answers_split_across_reads():
    import os

    from serve.transport import PipeTransport, frame

    t = PipeTransport(1)
    big = {"predictions": [{"probability": i / 7, "label": "x" * 20} for i in range(20000)]}
    fd = t._writers[0].fileno()

    def write():
        data = frame(("uid-1", big))  # one answer, written in pieces with pauses between
        for i in range(0, len(data), 40000):
            os.write(fd, data[i:i + 40000])
            time.sleep(0.01)
        t.send(("uid-2", big), 0)  # ~1 MB through a 64 KiB pipe: many partial reads
        t.send(("uid-3", {"small": 1}), 0)

    got = _receive_all(t, 3, write)
    assert [g[0] for g in got] == ["uid-1", "uid-2", "uid-3"]
    assert got[0][1] == big and got[1][1] == big and t.failed is None


def test_transport_error_is_reported_not_a_silent_stall():
    import os

    from serve.transport import PipeTransport, TransportError

    t = PipeTransport(1)
    failures = []
    t.on_failure = failures.append
    fd = t._writers[0].fileno()

    def write():
        os.write(fd, (1 << 40).to_bytes(8, "big") + b"garbage")  # a corrupt length

    with pytest.raises(TransportError, match="corrupt"):
        _receive_all(t, 1, write)
    assert t.failed and failures == [t.failed]


# -- error bodies, request ids, protocol bodies ---------------------------------------------------
def test_error_bodies_are_capped_and_unknown_field_names_scrubbed(schema):
    from serve.http import ErrorFormat

    fmt = ErrorFormat(frozenset(ADULT_INPUTS), max_errors=3)
    errs = [{"loc": ("body", "record", f"jane.doe{i}@example.com"), "msg": "m",
             "type": "extra_forbidden"} for i in range(5000)]
    errs.append({"loc": ("body", "batch", "records", 2, "age"), "msg": "m", "type": "int_type"})
    body = fmt.body(errs)
    assert len(body["detail"]) == 3 and body["error_count"] == 5001
    assert "example.com" not in json.dumps(body)
    assert fmt.body(errs[-1:])["detail"][0]["field"] == "records[2].age"  # known: kept


def test_gate_keeps_a_well_formed_caller_request_id():
    app = _gate_app()
    r = _call(app, "GET", "/health", headers={"X-Request-ID": "gateway-7f3a:01"})
    assert r.headers["x-request-id"] == "gateway-7f3a:01"
    for bad in ("x" * 10240, "two words", ""):
        r = _call(app, "GET", "/health", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) == 16
    key = {"Authorization": "Bearer " + "k" * 20}
    assert _call(app, "POST", "/predict", content=b"{}", headers=key).status_code == 200


def test_mlflow_and_v2_bodies_become_the_same_records():
    from pydantic import TypeAdapter as TA

    from serve.protocols import InvocationsBody, V2InferRequest, mlflow_records, v2_records

    recs = [RECORD, {**RECORD, "age": 50}]
    forms = [{"dataframe_records": recs}, {"instances": recs},
             {"inputs": recs}, {"inputs": {c: [r[c] for r in recs] for c in RECORD}},
             {"dataframe_split": {"columns": list(RECORD),
                                  "data": [list(r.values()) for r in recs]}}]
    for body in forms:
        assert mlflow_records(TA(InvocationsBody).validate_python(body))[0] == recs, body
    v2 = V2InferRequest.model_validate({"inputs": [
        {"name": c, "shape": [2, 1], "datatype": "BYTES", "data": [[r[c]] for r in recs]}
        for c in RECORD]})
    assert v2_records(v2) == recs


def test_reload_of_a_refused_version_keeps_the_model_and_says_why(api, models):
    from pipeline.runtime.hashing import file_sha256 as sha256
    from tests.serve_sources import point

    first = api.current.version
    point(api.pointer, "b.pkl", refuse="b.pkl")
    api.check_source()
    view = api.state.view()[0]
    refused = sha256(models["b"])[:12]
    assert api.current.version == first and view.degraded
    assert view.reason.startswith(f"refused: version {refused}") and "REJECTED" in view.reason
