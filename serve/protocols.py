"""The protocols clients already speak, on the same schema and the same batching path.

* MLflow's scoring protocol (`mlflow models serve`): `POST /invocations` with one of
  `dataframe_records` (a list of records), `dataframe_split` (`columns` + `data` rows, as
  pandas' `to_dict(orient="split")` writes it), `instances` (a list of records) or `inputs`
  (a list of records, or columns: `{"age": [39, 52], ...}`); answer `{"predictions": [...]}`,
  one prediction object per record. `GET /ping` is readiness, as in MLflow.
* The Open Inference Protocol v2 (KServe, Triton): `GET /v2`, `/v2/health/live`,
  `/v2/health/ready`, `/v2/models/{name}[/versions/{v}]` (metadata), `.../ready`, and
  `POST /v2/models/{name}[/versions/{v}]/infer` with one input tensor per model column (name
  = column, shape `[N]` or `[N, 1]`); the answer has the outputs `probability` (FP64),
  `label` (BYTES), `label_id` (INT64) and `favourable` (BOOL: whether label is the
  favourable one). Errors carry `{"error": "..."}` as the protocol asks (and our `detail`
  list for validation errors). A version in the path must be the one
  served (404 otherwise).

Each form is turned into records and validated by `RequestSchema.validate_records` - the
same spec-derived rules as /predict, so a value refused there is refused here - and scored
by `PredictHandler.score` (cache, admission, worker queue, timeouts).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from serve import http

V2_TYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "category": "BYTES", "string": "BYTES",
            "date": "BYTES"}
_FORMS = ("dataframe_records", "dataframe_split", "instances", "inputs")
V2_OUTPUTS = {"probability": "FP64", "label": "BYTES", "label_id": "INT64", "favourable": "BOOL"}


# -- request bodies (documented in the OpenAPI; records inside are checked by the schema) ----
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Split(_Strict):
    columns: list[str] = Field(min_length=1, max_length=1000)
    data: list[list[Any]] = Field(min_length=1)
    index: list[Any] | None = None


class DataframeSplit(_Strict):
    dataframe_split: Split


class DataframeRecords(_Strict):
    dataframe_records: list[dict[str, Any]]


class Instances(_Strict):
    instances: list[dict[str, Any]]


class Inputs(_Strict):
    inputs: list[dict[str, Any]] | dict[str, list[Any]]


def _form(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((k for k in _FORMS if k in value), None)
    return next((k for k in _FORMS if hasattr(value, k)), None)


InvocationsBody = Annotated[
    Union[Annotated[DataframeSplit, Tag("dataframe_split")],  # noqa: UP007
          Annotated[DataframeRecords, Tag("dataframe_records")],
          Annotated[Instances, Tag("instances")], Annotated[Inputs, Tag("inputs")]],
    Discriminator(_form, custom_error_type="invalid_form",
                  custom_error_message="one of dataframe_split, dataframe_records, "
                                       "instances, inputs is required")]


class V2Tensor(_Strict):
    name: str = Field(max_length=200)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: Literal["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                      "UINT64", "FP16", "FP32", "FP64", "BYTES"]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class V2Output(_Strict):
    name: str
    parameters: dict[str, Any] | None = None


class V2InferRequest(_Strict):
    id: str | None = Field(default=None, max_length=200)
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1000)
    outputs: list[V2Output] | None = None


def _invalid(where: tuple, msg: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *where), "msg": msg, "type": kind}])


def _columns_to_records(columns: dict[str, list], where: tuple) -> list[dict]:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise _invalid(where, "every column needs the same number of values")
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def mlflow_records(body: BaseModel) -> tuple[list[dict], tuple]:
    """An /invocations body -> (records, where they sit in the body, for error locations)."""
    if isinstance(body, DataframeSplit):
        split = body.dataframe_split
        n = len(split.columns)
        bad = next((i for i, row in enumerate(split.data) if len(row) != n), None)
        if bad is not None:
            raise _invalid(("dataframe_split", "data", bad), f"row needs {n} values")
        return [dict(zip(split.columns, row, strict=True)) for row in split.data], (
            "dataframe_split", "data")
    if isinstance(body, DataframeRecords):
        return body.dataframe_records, ("dataframe_records",)
    if isinstance(body, Instances):
        return body.instances, ("instances",)
    if isinstance(body.inputs, dict):
        return _columns_to_records(body.inputs, ("inputs",)), ("inputs",)
    return body.inputs, ("inputs",)


def v2_records(body: V2InferRequest) -> list[dict]:
    columns: dict[str, list] = {}
    for i, t in enumerate(body.inputs):
        data = t.data
        if data and isinstance(data[0], list):  # row-major nested [[v], [v], ...]
            data = [v for row in data for v in (row if isinstance(row, list) else [row])]
        n = t.shape[0]
        if len(t.shape) == 2 and t.shape[1] != 1 or len(data) != n:
            raise _invalid(("inputs", i), f"input '{t.name[:64]}': shape {t.shape} does not "
                                          f"match {len(data)} value(s); one column per input")
        if t.name in columns:
            raise _invalid(("inputs", i), "the same input twice")
        columns[t.name] = data
    return _columns_to_records(columns, ("inputs",))


# -- routes ------------------------------------------------------------------------------------
def install(app: FastAPI, handler: http.PredictHandler, header: str, info: dict,
            ready_timeout: float) -> None:
    schema, state = handler.schema, handler.state
    key = [http._key_scheme(header)]
    name = info["name"]

    async def invocations(request: Request, body: InvocationsBody) -> Response:
        records, where = mlflow_records(body)
        rows = schema.validate_records(records, where)
        result = await handler.score(request.scope["state"], rows)
        if isinstance(result, Response):
            return result
        ref, preds, outcome = result
        return http._json({"predictions": preds}, 200, handler.headers(ref, outcome))

    app.add_api_route("/invocations", invocations, methods=["POST"], dependencies=key,
                      summary="MLflow scoring protocol (mlflow models serve)",
                      responses=http.responses(http.SCORING))

    async def ping() -> Response:
        return await http.readiness(state, handler, ready_timeout)

    app.add_api_route("/ping", ping, methods=["GET"], summary="Readiness (MLflow's /ping)",
                      responses=http.responses({503: "not ready"}))

    # -- Open Inference Protocol v2 ------------------------------------------------------------
    def _model(model_name: str, version: str | None) -> str | Response:
        serving = state.serving_version() or state.view()[0].version
        if model_name != name:
            return _v2_error(404, f"unknown model; this server serves '{name}'")
        if version is not None and version != serving:
            return _v2_error(404, f"version {version[:64]} is not served; serving {serving}")
        return serving

    async def server_meta() -> Response:
        return http._json({"name": "govpipe", "version": "1", "extensions": []})

    async def live() -> Response:
        return http._json({"live": True})

    async def ready() -> Response:
        r = await http.readiness(state, handler, ready_timeout)
        return http._json({"ready": r.status_code == 200}, r.status_code,
                          None if r.status_code == 200 else http.RETRY)

    async def model_meta(model_name: str, version: str | None = None) -> Response:
        serving = _model(model_name, version)
        if isinstance(serving, Response):
            return serving
        types = schema.types or {}
        return http._json({
            "name": name, "versions": [serving], "platform": "sklearn",
            "inputs": [{"name": c, "datatype": V2_TYPES[types.get(c, "string")],
                        "shape": [-1]} for c in schema.columns],
            "outputs": [{"name": k, "datatype": t, "shape": [-1]}
                        for k, t in V2_OUTPUTS.items()]})

    async def model_ready(model_name: str, version: str | None = None) -> Response:
        serving = _model(model_name, version)
        if isinstance(serving, Response):
            return serving
        r = await http.readiness(state, handler, ready_timeout)
        return http._json({"name": name, "ready": r.status_code == 200}, r.status_code)

    async def infer(request: Request, body: V2InferRequest, model_name: str,
                    version: str | None = None) -> Response:
        serving = _model(model_name, version)
        if isinstance(serving, Response):
            return serving
        wanted = [o.name for o in body.outputs or ()] or list(V2_OUTPUTS)
        unknown = [w for w in wanted if w not in V2_OUTPUTS]
        if unknown:
            return _v2_error(400, "unknown output requested; outputs are "
                                  + ", ".join(V2_OUTPUTS))
        try:
            rows = schema.validate_records(v2_records(body), ("inputs",))
        except RequestValidationError as e:
            out = handler_errors(request).body(list(e.errors()))
            return http._json({"error": f"invalid request: {len(e.errors())} error(s)",
                               **out}, 422)
        result = await handler.score(request.scope["state"], rows)
        if isinstance(result, Response):
            detail = json.loads(result.body).get("detail")
            return http._json({"error": str(detail)}, result.status_code,
                              dict(result.headers) if result.status_code == 503 else None)
        ref, preds, outcome = result
        outputs = [{"name": w, "datatype": V2_OUTPUTS[w], "shape": [len(preds)],
                    "data": [p[w] for p in preds]} for w in wanted]
        reply = {"model_name": ref["name"], "model_version": ref["version"],
                 "outputs": outputs}
        if body.id is not None:
            reply["id"] = body.id
        return http._json(reply, 200, handler.headers(ref, outcome))

    v2 = http.responses({**http.COMMON, 404: "unknown model, or a version not served",
                         422: "invalid inputs", 500: "the model failed",
                         504: "no answer in time"})
    app.add_api_route("/v2", server_meta, methods=["GET"], dependencies=key,
                      summary="v2 server metadata", responses=v2)
    app.add_api_route("/v2/health/live", live, methods=["GET"], summary="v2 liveness")
    app.add_api_route("/v2/health/ready", ready, methods=["GET"], summary="v2 readiness",
                      responses=http.responses({503: "not ready"}))
    for prefix in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{version}"):
        app.add_api_route(prefix, model_meta, methods=["GET"], dependencies=key,
                          summary="v2 model metadata", responses=v2)
        app.add_api_route(prefix + "/ready", model_ready, methods=["GET"], dependencies=key,
                          summary="v2 model readiness", responses=v2)
        app.add_api_route(prefix + "/infer", infer, methods=["POST"], dependencies=key,
                          summary="v2 inference (one input tensor per column)",
                          responses=v2)


def handler_errors(request: Request) -> http.ErrorFormat:
    """The app's 422 formatter (installed by serve.http)."""
    return request.app.state.errors


def _v2_error(status: int, text: str) -> Response:
    return http._json({"error": text}, status)
