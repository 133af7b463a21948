"""The REST surface of the model server: parsing predict requests, formatting answers,
the routes, and their OpenAPI description (see :mod:`jfx.core._serving`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jfx.core._export import LoadedModel
from jfx.core._inference import prepare_examples
from jfx.errors import InvalidArgumentError, JfxError

_SIGNATURE_NAME = "serving_default"

_PREDICT_HELP = ('send {"instances": [{"feature": value, ...}, ...]} (one object per row) '
                 'or {"inputs": {"feature": [value, ...], ...}} (one list per feature)')

_EXAMPLES_HELP = ('send {"examples": [{"feature": value or [values], ...}, ...]} (one object per example), '
                  'optionally with a "context" object of features shared by every example')

# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------

class HttpError(JfxError):
    """An error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def _bad(message: str) -> HttpError:
    return HttpError(400, message)


def parse_predict_body(body: bytes, model: LoadedModel) -> tuple[str, dict[str, np.ndarray], int]:
    """Parses and checks a predict request body against the model's signature.

    Returns:
        ``("rows" | "columns", prepared arrays, number of rows)``.

    Raises:
        HttpError: 400, naming the field at fault.
    """
    req = _load_object(body, _PREDICT_HELP, {"instances", "inputs", "signature_name"})
    if ("instances" in req) == ("inputs" in req):
        raise _bad(("give only one of \"instances\" and \"inputs\"" if "instances" in req
                    else "the request has neither \"instances\" nor \"inputs\"") + f"; {_PREDICT_HELP}")
    names = list(model.inputs)
    if "instances" in req:
        kind, rows = "rows", req["instances"]
        if not isinstance(rows, list):
            raise _bad(f"\"instances\" must be a list, got {type(rows).__name__}")
        if len(names) == 1:  # TF Serving lets a one-input model take bare values
            rows = [r if isinstance(r, dict) else {names[0]: r} for r in rows]
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise _bad(f"instance {i} is a {type(row).__name__}; expected an object of features {names}")
            extra = [k for k in row if k not in model.inputs]
            if extra:
                raise _bad(f"instance {i} has unknown feature {extra[0]!r}; the model expects {names}")
        if not rows:
            return kind, {}, 0
        data: Any = rows
    else:
        kind, data = "columns", req["inputs"]
        if len(names) == 1 and not isinstance(data, dict):
            data = {names[0]: data}
        if not isinstance(data, dict):
            raise _bad(f"\"inputs\" must be an object of feature columns {names}, got {type(data).__name__}")
        extra = [k for k in data if k not in model.inputs]
        if extra:
            raise _bad(f"\"inputs\" has unknown feature {extra[0]!r}; the model expects {names}")
        for name, col in data.items():
            if not isinstance(col, list):
                raise _bad(f"\"inputs\" feature {name!r} must be a list of values, one per row, "
                           f"got {type(col).__name__}")
    try:
        with np.errstate(all="ignore"):  # a value that overflows its dtype is refused, by name
            arrays = model.prepare(data, strict=True)
    except InvalidArgumentError as err:
        raise _bad(str(err)) from err
    except (ValueError, TypeError, OverflowError, KeyError, IndexError, RecursionError) as err:
        raise _bad(f"{_culprit(model, data)}cannot be read: {type(err).__name__}: {err}") from err
    n = int(next(iter(arrays.values())).shape[0])
    return kind, arrays, n


def _load_object(body: bytes, help_text: str, fields: set[str]) -> dict[str, Any]:
    """The request body as a JSON object with only ``fields``, and the default signature."""
    if not body.strip():
        raise _bad(f"the request body is empty; {help_text}")
    try:
        # what json.loads does with bytes, with one decoder made once (loads with a
        # keyword argument would build a decoder for every request)
        req = _STRICT.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except _NotJsonNumberError as err:
        raise _bad(f"{_where_constant(body, err.token)} {err.token}, which is not a JSON number (RFC 8259 has no "
                   "NaN or Infinity); send a finite number (null marks a missing value of a float or string "
                   "feature)") from None
    except RecursionError as err:
        raise _bad("the request body's JSON is nested too deeply") from err
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise _bad(f"the request body is not valid JSON: {err}") from err
    if not isinstance(req, dict):
        raise _bad(f"the request body must be a JSON object, got {type(req).__name__}; {help_text}")
    unknown = sorted(set(req) - fields)
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r} in the request; {help_text}")
    sig = req.get("signature_name", _SIGNATURE_NAME)
    if sig != _SIGNATURE_NAME:
        raise _bad(f"signature_name {sig!r} is unknown; the only signature is {_SIGNATURE_NAME!r}")
    return req


def parse_examples_body(body: bytes, model: LoadedModel) -> tuple[dict[str, np.ndarray], int]:
    """Parses and checks a classify or regress request body (TF Serving's Example list).

    Returns:
        ``(prepared arrays, number of examples)``.

    Raises:
        HttpError: 400, naming the example and the feature at fault.
    """
    req = _load_object(body, _EXAMPLES_HELP, {"examples", "context", "signature_name"})
    examples, context = req.get("examples"), req.get("context")
    if not isinstance(examples, list):
        raise _bad(("\"examples\" must be a list, got " + type(examples).__name__ if "examples" in req
                    else "the request has no \"examples\"") + f"; {_EXAMPLES_HELP}")
    if context is not None and not isinstance(context, dict):
        raise _bad(f"\"context\" must be an object of features, got {type(context).__name__}")
    try:
        return prepare_examples(examples, context, model)
    except InvalidArgumentError as err:
        raise _bad(str(err)) from err
    except (ValueError, TypeError, OverflowError, KeyError, IndexError, RecursionError) as err:
        raise _bad(f"the examples cannot be read: {type(err).__name__}: {err}") from err


def format_classify(results: list[list[tuple[str, float]]]) -> dict[str, Any]:
    """TF Serving's classify answer: ``{"result": [[[label, score], ...], ...]}`` (a non-finite score is null)."""
    return {"result": [[[label, _finite(score)] for label, score in row] for row in results]}


def format_regress(results: list[float]) -> dict[str, Any]:
    """TF Serving's regress answer: ``{"result": [value, ...]}`` (a non-finite value is null)."""
    return {"result": [_finite(v) for v in results]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class _NotJsonNumberError(ValueError):
    def __init__(self, token: str):
        super().__init__(token)
        self.token = token


def _refuse_constant(token: str) -> Any:
    """``json.loads`` calls this for NaN, Infinity and -Infinity, which RFC 8259 does not have."""
    raise _NotJsonNumberError(token)


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant)


class _Constant:
    """Where a NaN/Infinity token stood, in a second, diagnostic parse."""

    def __init__(self, token: str):
        self.token = token


def _holds_constant(value: Any) -> bool:
    if isinstance(value, _Constant):
        return True
    if isinstance(value, list):
        return any(_holds_constant(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_constant(v) for v in value.values())
    return False


def _where_constant(body: bytes, token: str) -> str:
    """Names the instance and feature holding the first ``token`` (only on this error path)."""
    try:
        doc = json.loads(body, parse_constant=_Constant)
    except (ValueError, RecursionError):
        return "the request body holds"
    if isinstance(doc, dict) and isinstance(doc.get("instances"), list):
        for i, row in enumerate(doc["instances"]):
            if isinstance(row, dict):
                for name, value in row.items():
                    if _holds_constant(value):
                        return f"feature {name!r} of instance {i} is"
            elif _holds_constant(row):
                return f"instance {i} is"
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), dict):
        for name, col in doc["inputs"].items():
            for i, value in enumerate(col if isinstance(col, list) else [col]):
                if _holds_constant(value):
                    return f"feature {name!r} of instance {i} is"
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
        for i, value in enumerate(doc["inputs"]):
            if _holds_constant(value):
                return f"instance {i} is"
    return "the request body holds"


def _culprit(model: LoadedModel, data: Any) -> str:
    """Names the feature that ``prepare`` choked on with an error it did not translate."""
    try:
        columns = data if isinstance(data, dict) else model._columns_from_rows(data)  # noqa: SLF001 - diagnosing with the model's own readers
    except Exception:  # noqa: BLE001 - only diagnosing
        return "the inputs "
    for name, spec in model.inputs.items():
        try:
            model._column(name, spec, columns[name], strict=True)  # noqa: SLF001 - diagnosing with the model's own readers
        except Exception:  # noqa: BLE001 - only diagnosing
            return f"feature {name!r} "
    return "the inputs "


def format_predictions(kind: str, outputs: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """TF Serving's response: row form → ``predictions`` (a list, one entry per row: the
    bare value for a one-output model, else an object); columnar → ``outputs``. A
    non-finite output value is ``null``: every answer is RFC 8259 JSON."""
    cols = {k: _json_values(v) for k, v in outputs.items()}
    if kind == "columns":
        return {"outputs": next(iter(cols.values())) if len(cols) == 1 else cols}
    if len(cols) == 1:
        return {"predictions": next(iter(cols.values()))}
    keys = list(cols)
    return {"predictions": [dict(zip(keys, vals, strict=True)) for vals in zip(*(cols[k] for k in keys), strict=True)] if n else []}


def _json_values(values: Any) -> list[Any]:
    """An output column as JSON values: a NaN or infinite number is null (JSON has neither;
    JavaScript's JSON.stringify does the same), so the other values of the answer stand."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():  # one pass; rare to go on
        out = arr.astype(object)
        out[~np.isfinite(arr)] = None
        return out.tolist()
    return arr.tolist()


def _empty_outputs(model: LoadedModel) -> dict[str, np.ndarray]:
    return {k: np.zeros((0, *v["shape"]), v["dtype"]) for k, v in model.outputs.items()}


# --------------------------------------------------------------------------------------
# Routes and the OpenAPI description
# --------------------------------------------------------------------------------------

_SEG = r"(?P<name>[^/:]+)"
_VER = r"(?P<version>[^/:]+)"
_LABEL = r"(?P<label>[^/:]+)"
# (OpenAPI path template, regex, {method: handler name}); every model route also takes
# /versions/<v> or /labels/<label> (a version label of --version_labels), as TF Serving's do
ROUTES: list[tuple[str, re.Pattern[str], dict[str, str]]] = []
for _t, _r in (("", ""), ("/versions/{version}", f"/versions/{_VER}"), ("/labels/{label}", f"/labels/{_LABEL}")):
    _base_t, _base_r = "/v1/models/{model_name}" + _t, rf"/v1/models/{_SEG}{_r}"
    ROUTES.append((_base_t, re.compile(_base_r), {"GET": "status"}))
    ROUTES.append((_base_t + "/metadata", re.compile(_base_r + "/metadata"), {"GET": "metadata"}))
    for _verb in ("predict", "classify", "regress"):
        ROUTES.append((f"{_base_t}:{_verb}", re.compile(f"{_base_r}:{_verb}"), {"POST": _verb}))
ROUTES.append(("/v1/openapi.json", re.compile(r"/v1/openapi\.json"), {"GET": "openapi"}))
ROUTES.append(("/openapi.json", re.compile(r"/openapi\.json"), {"GET": "openapi"}))
ROUTES.append(("/monitoring/prometheus/metrics", re.compile(r"/monitoring/prometheus/metrics"), {"GET": "metrics"}))


def _resp(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def openapi_spec(model_name: str = "{model_name}") -> dict[str, Any]:
    """The OpenAPI 3 description of the server's routes (served at ``/v1/openapi.json``)."""
    name_param: dict[str, Any] = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": f"the served model's name ({model_name!r} on this server)"}
    version_param: dict[str, Any] = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"},
                     "description": "a loaded version (a folder name under the model base path)"}
    label_param: dict[str, Any] = {"name": "label", "in": "path", "required": True, "schema": {"type": "string"},
                                   "description": "a version label (jfx serve --version_labels LABEL=VERSION)"}
    errors = {"400": _resp("a malformed request; the message names the field", "Error"),
              "404": _resp("no such model or version", "Error"),
              "405": _resp("the route does not take this method", "Error"),
              "503": _resp("no version of the model has loaded yet", "Error")}
    status_op = {"summary": "Version status (TF Serving's GetModelStatus)", "tags": ["models"],
                 "responses": {"200": _resp("the versions known, newest first", "ModelStatus"), **errors}}
    metadata_op = {"summary": "The model's signature (TF Serving's GetModelMetadata)", "tags": ["models"],
                   "responses": {"200": _resp("the signature", "ModelMetadata"), **errors}}
    predict_op = {
        "summary": "Predict (TF Serving's REST predict)", "tags": ["predict"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"},
                        "examples": {"rows": {"value": {"instances": [{"x": 1.0}, {"x": 2.0}]}},
                                     "columns": {"value": {"inputs": {"x": [1.0, 2.0]}}}}}}},
        "responses": {"200": _resp("row requests get predictions, columnar requests get outputs", "PredictResponse"),
                      **errors},
    }
    examples_body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ExamplesRequest"},
        "examples": {"examples": {"value": {"context": {"island": "Biscoe"},
                                            "examples": [{"bill_length_mm": 39.1}, {"bill_length_mm": 47.5}]}}}}}}
    classify_op = {
        "summary": "Classify (TF Serving's REST classify): every class's label and score per example",
        "tags": ["predict"], "requestBody": examples_body,
        "responses": {"200": _resp("per example, [label, score] for every class", "ClassifyResponse"),
                      "400": _resp("a malformed request, or the model is not a classifier", "Error"),
                      **{k: v for k, v in errors.items() if k != "400"}},
    }
    regress_op = {
        "summary": "Regress (TF Serving's REST regress): one value per example", "tags": ["predict"],
        "requestBody": examples_body,
        "responses": {"200": _resp("one value per example", "RegressResponse"),
                      "400": _resp("a malformed request, or the model is not a regressor", "Error"),
                      **{k: v for k, v in errors.items() if k != "400"}},
    }
    openapi_op = {"summary": "This description", "tags": ["meta"],
                  "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    metrics_op = {"summary": "Prometheus metrics (TF Serving's monitoring path)", "tags": ["meta"],
                  "responses": {"200": {"description": "requests, latencies, batches, loads and the request log's "
                                                       "counts in Prometheus' text format",
                                        "content": {"text/plain": {"schema": {"type": "string"}}}}}}
    ops = {"status": status_op, "metadata": metadata_op, "predict": predict_op, "classify": classify_op,
           "regress": regress_op, "openapi": openapi_op, "metrics": metrics_op}
    paths: dict[str, Any] = {}
    for template, _, methods in ROUTES:
        params = [p for p in (name_param, version_param, label_param) if "{" + p["name"] + "}" in template]
        item: dict[str, Any] = {m.lower(): {**ops[h], "operationId": f"{h}_{m.lower()}_{_op_suffix(template)}"}
                                for m, h in methods.items()}
        if params:
            item["parameters"] = params
        paths[template] = item
    any_json: dict[str, Any] = {}
    return {
        "openapi": "3.0.3",
        "info": {"title": "jfx model server", "version": "1",
                 "description": "TensorFlow Serving's REST API for jfx model artifacts. See docs/serving.md."},
        "paths": paths,
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "ModelStatus": {"type": "object", "properties": {"model_version_status": {"type": "array", "items": {
                "type": "object", "properties": {
                    "version": {"type": "string"},
                    "state": {"type": "string", "enum": ["LOADING", "AVAILABLE", "END"]},
                    "status": {"type": "object", "properties": {"error_code": {"type": "string"},
                                                                "error_message": {"type": "string"}}}}}}}},
            "ModelMetadata": {"type": "object", "properties": {
                "model_spec": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                                                "signature_name": {"type": "string"}}},
                "metadata": {"type": "object", "properties": {"signature_def": {"type": "object"}}}}},
            "PredictRequest": {"type": "object", "properties": {
                "signature_name": {"type": "string", "enum": [_SIGNATURE_NAME]},
                "instances": {"type": "array", "items": any_json,
                              "description": "rows: one object of features per row (or bare values for a one-input model)"},
                "inputs": {"description": "columns: feature → list of values, one per row", **any_json}}},
            "ExamplesRequest": {"type": "object", "required": ["examples"], "properties": {
                "signature_name": {"type": "string", "enum": [_SIGNATURE_NAME]},
                "context": {"type": "object", "description": "features shared by every example"},
                "examples": {"type": "array", "items": {"type": "object"},
                             "description": "one object per example: feature → a value or a list of values"}}},
            "ClassifyResponse": {"type": "object", "properties": {"result": {
                "type": "array", "description": "per example, [label, score] for every class, in class id order",
                "items": {"type": "array", "items": {"type": "array", "items": any_json}}}}},
            "RegressResponse": {"type": "object", "properties": {"result": {
                "type": "array", "items": {"type": "number", "nullable": True}}}},
            "PredictResponse": {"type": "object", "properties": {
                "predictions": {"type": "array", "items": any_json,
                                "description": "one entry per row: an object of outputs, or the bare value for one output; "
                                               "a classifier with label names also answers classes, the predicted label"},
                "outputs": {"description": "output → list of values (the bare list for one output)", **any_json}}},
        }},
    }


def _op_suffix(template: str) -> str:
    return re.sub(r"[^a-z]+", "_", template.replace("{", "").replace("}", "").lower()).strip("_")


