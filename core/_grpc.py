"""TensorFlow Serving's gRPC API for ``jfx serve --grpc_port``.

``tensorflow.serving.PredictionService`` (``Predict``, ``Classify``, ``Regress``,
``GetModelMetadata``) and ``tensorflow.serving.ModelService`` (``GetModelStatus``), with
TF Serving's messages (:mod:`jfx.core._tfs_proto`), so existing TF Serving clients work
unchanged. The gRPC server (``grpc.aio``) runs on the REST front end's event loop and
sends its rows to the same queues (:meth:`jfx.core._http.HttpFrontEnd.submit`): REST and
gRPC requests of one version share batches, versions and hot swaps.

Tensors: ``DT_STRING``, ``DT_FLOAT``, ``DT_DOUBLE``, ``DT_INT32``, ``DT_INT64`` (and
``DT_BOOL``, ``DT_HALF``, the small integers), either in the typed ``*_val`` fields or
in ``tensor_content``; a single value fills a larger shape (TensorProto's version 0
rule). Numbers are checked as the REST API checks JSON numbers; a NaN of a float input
is a missing value (REST's ``null``). Answers use the typed fields, as TF Serving does.

Errors are gRPC status codes: ``NOT_FOUND`` for an unknown model, version or version
label, ``INVALID_ARGUMENT`` for a bad request (the message names the input, example or
feature), ``UNAVAILABLE`` while no version has loaded, ``INTERNAL`` for a failure of ours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from grpc import aio

from jfx.core._inference import add_labels, classify_results, prepare_examples, regress_results
from jfx.core._rest import _SIGNATURE_NAME, HttpError
from jfx.core._tfs_proto import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from jfx.errors import InvalidArgumentError

if TYPE_CHECKING:
    from jfx.core._http import HttpFrontEnd
    from jfx.core._serving import ModelServer, Servable

__all__ = ["GrpcFrontEnd", "array_to_tensor", "tensor_to_array"]

log = logging.getLogger("jfx.serve")

MAX_MESSAGE_BYTES = 64 << 20  # as the REST front end's MAX_BODY_BYTES
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 503: grpc.StatusCode.UNAVAILABLE}
_STATES = {"LOADING": get_model_status_pb2.ModelVersionStatus.LOADING,
           "AVAILABLE": get_model_status_pb2.ModelVersionStatus.AVAILABLE,
           "END": get_model_status_pb2.ModelVersionStatus.END}

DT = types_pb2.DataType
# tensor dtype → (NumPy dtype of its tensor_content, its typed field)
_NUMERIC: dict[int, tuple[str, str]] = {
    DT.DT_FLOAT: ("<f4", "float_val"), DT.DT_DOUBLE: ("<f8", "double_val"), DT.DT_INT32: ("<i4", "int_val"),
    DT.DT_INT64: ("<i8", "int64_val"), DT.DT_BOOL: ("?", "bool_val"), DT.DT_HALF: ("<f2", "half_val"),
    DT.DT_INT8: ("i1", "int_val"), DT.DT_UINT8: ("u1", "int_val"), DT.DT_INT16: ("<i2", "int_val"),
    DT.DT_UINT16: ("<u2", "int_val"), DT.DT_UINT32: ("<u4", "uint32_val"), DT.DT_UINT64: ("<u8", "uint64_val"),
}
# a model's dtype name → the tensor dtype it is described and answered as
_DTYPES = {"float32": DT.DT_FLOAT, "float64": DT.DT_DOUBLE, "float16": DT.DT_HALF, "bfloat16": DT.DT_BFLOAT16,
           "int32": DT.DT_INT32, "int64": DT.DT_INT64, "int8": DT.DT_INT8, "uint8": DT.DT_UINT8,
           "int16": DT.DT_INT16, "uint16": DT.DT_UINT16, "uint32": DT.DT_UINT32, "uint64": DT.DT_UINT64,
           "bool": DT.DT_BOOL, "string": DT.DT_STRING}


def _dt_name(dtype: int) -> str:
    try:
        return DT.Name(dtype)
    except ValueError:
        return f"data type {dtype}"


# --------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("a truncated length")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _strings_from_content(content: bytes, count: int) -> list[bytes]:
    """TensorFlow's string ``tensor_content``: ``count`` varint lengths, then the bytes."""
    lengths, pos = [], 0
    for _ in range(count):
        n, pos = _varint(content, pos)
        lengths.append(n)
    values = []
    for n in lengths:
        if pos + n > len(content):
            raise ValueError("the lengths exceed the content")
        values.append(content[pos:pos + n])
        pos += n
    if pos != len(content):
        raise ValueError(f"{len(content) - pos} bytes follow the last string")
    return values


def tensor_to_array(name: str, tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """A TensorProto as a NumPy array (``DT_STRING``: an object array of bytes).

    Raises:
        InvalidArgumentError: naming the input.
    """
    shape = tensor.tensor_shape
    dims = [int(d.size) for d in shape.dim]
    if shape.unknown_rank or any(d < 0 for d in dims):
        raise InvalidArgumentError(f"input {name!r} has an unknown shape {dims}; give every dimension's size")
    count = math.prod(dims)
    if tensor.dtype == DT.DT_STRING:
        if tensor.tensor_content:
            try:
                strings = _strings_from_content(tensor.tensor_content, count)
            except ValueError as err:
                raise InvalidArgumentError(f"input {name!r}: its DT_STRING tensor_content does not hold {count} "
                                           f"strings: {err}") from None
        else:
            strings = list(tensor.string_val)
        arr = np.empty(len(strings), dtype=object)
        arr[:] = strings
    elif tensor.dtype in _NUMERIC:
        np_dtype, field = _NUMERIC[tensor.dtype]
        if tensor.tensor_content:
            content = tensor.tensor_content
            size = np.dtype(np_dtype).itemsize
            if len(content) != count * size:
                raise InvalidArgumentError(f"input {name!r} has {len(content)} bytes of tensor_content; shape {dims} "
                                           f"of {_dt_name(tensor.dtype)} takes {count * size}")
            arr = np.frombuffer(content, dtype=np_dtype)
        elif tensor.dtype == DT.DT_HALF:  # each value's 16 bits in an int32
            arr = np.asarray(tensor.half_val, dtype=np.uint16).view(np.float16)
        else:
            arr = np.asarray(getattr(tensor, field), dtype=np_dtype)
    else:
        raise InvalidArgumentError(f"input {name!r} is a {_dt_name(tensor.dtype)} tensor; jfx serve takes DT_STRING, "
                                   "DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_BOOL (or DT_HALF and the small "
                                   "integer types)")
    if arr.size != count:
        if arr.size == 1:  # TensorProto's version 0: one value fills the shape
            arr = np.full(count, arr[0], dtype=arr.dtype)
        else:
            raise InvalidArgumentError(f"input {name!r} has {arr.size} values; its shape {dims} takes {count}")
    return arr.reshape(dims)


def array_to_tensor(values: np.ndarray) -> tensor_pb2.TensorProto:
    """A NumPy array as a TensorProto in its typed field (strings as UTF-8 ``DT_STRING``)."""
    arr = np.asarray(values)
    tensor = tensor_pb2.TensorProto()
    tensor.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in arr.shape)
    flat = arr.reshape(-1)
    if arr.dtype == object or arr.dtype.kind in "US":
        tensor.dtype = DT.DT_STRING
        tensor.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist())
        return tensor
    name = arr.dtype.name
    if name in ("float16", "bfloat16"):
        flat, name = flat.astype(np.float32), "float32"
    dtype = _DTYPES.get(name)
    if dtype is None or dtype not in _NUMERIC:
        raise InvalidArgumentError(f"an output of dtype {arr.dtype} cannot be answered over gRPC")
    tensor.dtype = dtype
    getattr(tensor, _NUMERIC[dtype][1]).extend(flat.tolist())
    return tensor


def _checked(name: str, tensor: tensor_pb2.TensorProto, spec: Any) -> np.ndarray:
    """One input tensor as an array, its shape and kind checked against the model's input."""
    arr = tensor_to_array(name, tensor)
    if arr.ndim != 1 + len(spec.shape):
        want = [-1, *spec.shape]
        raise InvalidArgumentError(f"input {name!r} has shape {list(arr.shape)}; the model takes {want} "
                                   "(the batch first)")
    if spec.dtype == "string":
        if tensor.dtype != DT.DT_STRING:
            raise InvalidArgumentError(f"input {name!r} is a {_dt_name(tensor.dtype)} tensor; the model takes "
                                       "strings (DT_STRING)")
        try:
            text = np.empty(arr.size, dtype=object)
            text[:] = [v.decode() for v in arr.reshape(-1).tolist()]
        except UnicodeDecodeError:
            raise InvalidArgumentError(f"input {name!r} holds a value that is not UTF-8 text") from None
        return text.reshape(arr.shape)
    if tensor.dtype == DT.DT_STRING:
        raise InvalidArgumentError(f"input {name!r} is a DT_STRING tensor; the model takes {spec.dtype} numbers "
                                   "(DT_FLOAT, DT_DOUBLE, DT_INT32 or DT_INT64)")
    return arr


_CASTS = ("float32", "float16", "int32", "int8", "uint8")


def _cast(arr: np.ndarray, spec: Any) -> np.ndarray | None:
    """``arr`` as the input's dtype when every value fits it exactly as the REST API would take
    it (a NaN is a missing value); None otherwise: the checked path then names the culprit."""
    if arr.dtype.kind == "O":
        return arr  # strings: encoded by the model's own reader
    if spec.dtype not in _CASTS or spec.source_type is not None or arr.dtype.kind not in "fiu":
        return None
    target = np.dtype(spec.dtype)
    if target.kind == "f":
        with np.errstate(all="ignore"):
            out = arr.astype(target)
        finite = np.isfinite(out)
        if not finite.all() and (~finite & ~np.isnan(arr)).any():
            return None  # an infinity, or a value beyond the dtype's range
        return out
    info = np.iinfo(target)
    if arr.size:
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.floor(arr)).all()):
            return None
        if arr.min() < info.min or arr.max() > info.max:
            return None
    return arr.astype(target)


def _json_like(arr: np.ndarray) -> Any:
    """An input array as the JSON-like values the REST API's checks take (a NaN is a missing value)."""
    if arr.dtype.kind == "f":
        missing = np.isnan(arr)
        if missing.any():
            obj = arr.astype(object)
            obj[missing] = None
            return obj.tolist()
    return arr.tolist()


def prepare_tensors(model: Any, inputs: Mapping[str, tensor_pb2.TensorProto]) -> dict[str, np.ndarray]:
    """A Predict request's tensors checked and encoded for ``model``, as the REST API checks its JSON.

    Raises:
        InvalidArgumentError: naming the input (and the instance, for a value that does not fit).
    """
    arrays = {name: _checked(name, inputs[name], spec) for name, spec in model.inputs.items()}
    cast = {name: _cast(arr, model.inputs[name]) for name, arr in arrays.items()}
    with np.errstate(all="ignore"):
        if all(c is not None for c in cast.values()):
            return model.prepare(cast)  # every value fits: the model's reader only encodes and checks shapes
        # some value does not fit its input: the REST API's checks name it and its instance
        return model.prepare({name: _json_like(arr) for name, arr in arrays.items()}, strict=True)


# --------------------------------------------------------------------------------------
# The services
# --------------------------------------------------------------------------------------

class _RpcError(Exception):
    """A request answered with a gRPC status code (never leaves this module)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(message: str) -> _RpcError:
    return _RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


class GrpcFrontEnd:
    """Serves a :class:`ModelServer` over gRPC on its REST front end's event loop.

    Args:
        app: the model server (its versions, config and answers).
        http: its REST front end (its loop, and the queues that batch rows).
        host, port: where to listen (port 0: any free port; see :attr:`port`).

    Raises:
        InvalidArgumentError: the address cannot be bound.
    """

    def __init__(self, app: ModelServer, http: HttpFrontEnd, host: str, port: int):
        self.app, self.http = app, http
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = 0
        self._server: aio.Server | None = None
        asyncio.run_coroutine_threadsafe(self._start(), http.loop).result(60)

    async def _start(self) -> None:
        server = aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                     ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                     ("grpc.so_reuseport", 0)])  # a port in use is an error, not shared
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self), server)
        try:
            port = server.add_insecure_port(self.address)
        except RuntimeError as err:
            port, why = 0, f": {err}"
        else:
            why = ""
        if not port:
            raise InvalidArgumentError(f"gRPC cannot listen on {self.address}{why} (is the port in use?)")
        await server.start()
        self._server, self.port = server, port

    def close(self) -> None:
        if self._server is not None and self.http.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._server.stop(1.0), self.http.loop).result(10)
            except (RuntimeError, concurrent.futures.TimeoutError):  # the loop is stopping: its server goes with it
                pass
        self._server = None

    # -- one call ----------------------------------------------------------------------------
    def _finished(self, api: str, version: int | None, code: str, seconds: float) -> None:
        """Every finished RPC passes here once: its API (``Predict``, ...), the version that
        answered (None when none was found), the gRPC status code's name and its duration."""
        log.debug("gRPC %s %s version %s: %s in %.1f ms", api, self.app.model_name, version, code, seconds * 1e3)
        self.app.metrics.record_request(self.app.model_name, version, _API_LABELS.get(api, api), code, seconds)

    async def call(self, api: str, context: aio.ServicerContext,
                   answer: Callable[[], Awaitable[tuple[Any, int | None]]]) -> Any:
        started = time.perf_counter()
        code, version = grpc.StatusCode.OK, None
        try:
            response, version = await answer()
            return response
        except _RpcError as err:
            code, message = err.code, err.message
        except HttpError as err:
            code, message = _CODES.get(err.status, grpc.StatusCode.UNKNOWN), err.message
        except InvalidArgumentError as err:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(err)
        except Exception as err:  # answered INTERNAL, logged
            log.exception("gRPC %s failed", api)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}"
        finally:
            self._finished(api, version, code.name, time.perf_counter() - started)
        await context.abort(code, message)

    def servable(self, spec: Any) -> Servable:
        """The version a ModelSpec names."""
        self._check_name(spec)
        if spec.signature_name not in ("", _SIGNATURE_NAME):
            raise _invalid(f"signature_name {spec.signature_name!r} is unknown; the only signature is "
                           f"{_SIGNATURE_NAME!r}")
        which = spec.WhichOneof("version_choice")
        if which == "version":
            return self.app.servable(str(spec.version.value))
        if which == "version_label":
            return self.app.servable(None, spec.version_label)
        return self.app.servable(None)

    def _check_name(self, spec: Any) -> None:
        if not spec.name:
            raise _invalid(f"model_spec.name is empty; this server serves {self.app.model_name!r}")
        if spec.name != self.app.model_name:
            raise _RpcError(grpc.StatusCode.NOT_FOUND,
                           f"no model named {spec.name!r}; this server serves {self.app.model_name!r}")

    def model_spec(self, servable: Servable, target: Any) -> None:
        target.name = self.app.model_name
        target.version.value = servable.version
        target.signature_name = _SIGNATURE_NAME

    async def run(self, servable: Servable, arrays: Mapping[str, np.ndarray], n: int) -> Mapping[str, np.ndarray]:
        if n == 0:
            return {k: np.zeros((0, *v["shape"]), v["dtype"]) for k, v in servable.model.outputs.items()}
        return await self.http.run(servable, arrays, n)

    # -- the APIs ----------------------------------------------------------------------------
    async def predict(self, request: predict_pb2.PredictRequest) -> tuple[Any, int | None]:
        servable = self.servable(request.model_spec)
        model = servable.model
        names = list(model.inputs)
        for name in request.inputs:
            if name not in model.inputs:
                raise _invalid(f"input {name!r} is unknown; the model takes {names}")
        for name in names:
            if name not in request.inputs:
                raise _invalid(f"input {name!r} is missing; the model takes {names}")
        wanted = list(request.output_filter)
        for name in wanted:
            if name not in servable.outputs:
                raise _invalid(f"output_filter names {name!r}, which is not an output; the outputs are "
                               f"{sorted(servable.outputs)}")
        try:
            arrays = prepare_tensors(model, request.inputs)
        except InvalidArgumentError:
            raise
        except (ValueError, TypeError, OverflowError, KeyError, IndexError) as err:
            raise _invalid(f"the inputs cannot be read: {type(err).__name__}: {err}") from err
        n = int(next(iter(arrays.values())).shape[0])
        raw_outputs = await self.run(servable, arrays, n)
        outputs = add_labels(servable.head, raw_outputs)
        if n:
            try:  # queued, never waited for; the string features as sent, read on the log's thread
                self.app.log_request(servable, arrays, raw_outputs, n, raw=lambda: _raw_strings(model, request, n))
            except Exception:  # the log is never the request's problem
                log.exception("logging a gRPC request failed")
        response = predict_pb2.PredictResponse()
        self.model_spec(servable, response.model_spec)
        for name in wanted or outputs:
            response.outputs[name].CopyFrom(array_to_tensor(outputs[name]))
        return response, servable.version

    async def _examples(self, api: str, request: Any) -> tuple[Servable, Mapping[str, np.ndarray]]:
        servable = self.servable(request.model_spec)
        self.app.require(servable, api)
        which = request.input.WhichOneof("kind")
        if which == "example_list":
            examples, context = request.input.example_list.examples, None
        elif which == "example_list_with_context":
            examples = request.input.example_list_with_context.examples
            context = _features(request.input.example_list_with_context.context)
        else:
            raise _invalid("the request's input holds no examples; give input.example_list or "
                           "input.example_list_with_context")
        try:
            arrays, n = prepare_examples([_features(e) for e in examples], context, servable.model)
        except InvalidArgumentError:
            raise
        except (ValueError, TypeError, OverflowError, KeyError, IndexError) as err:
            raise _invalid(f"the examples cannot be read: {type(err).__name__}: {err}") from err
        return servable, await self.run(servable, arrays, n)

    async def classify(self, request: classification_pb2.ClassificationRequest) -> tuple[Any, int | None]:
        servable, outputs = await self._examples("classify", request)
        response = classification_pb2.ClassificationResponse()
        self.model_spec(servable, response.model_spec)
        for row in classify_results(servable.head, outputs):
            response.result.classifications.add().classes.extend(
                classification_pb2.Class(label=label, score=score) for label, score in row)
        return response, servable.version

    async def regress(self, request: regression_pb2.RegressionRequest) -> tuple[Any, int | None]:
        servable, outputs = await self._examples("regress", request)
        response = regression_pb2.RegressionResponse()
        self.model_spec(servable, response.model_spec)
        response.result.regressions.extend(regression_pb2.Regression(value=v) for v in regress_results(outputs))
        return response, servable.version

    async def metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest) -> tuple[Any, int | None]:
        servable = self.servable(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise _invalid("metadata_field is empty; the one supported is 'signature_def'")
        for f in fields:
            if f != "signature_def":
                raise _invalid(f"metadata_field {f!r} is not supported; the one supported is 'signature_def'")
        signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
        for target, specs in ((signature.inputs, {n: {"dtype": s.dtype, "shape": s.shape}
                                                   for n, s in servable.model.inputs.items()}),
                              (signature.outputs, servable.outputs)):
            for name, spec in specs.items():
                info = target[name]
                info.name = name
                info.dtype = _DTYPES.get(str(spec["dtype"]), DT.DT_INVALID)
                info.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=int(d))
                                             for d in (-1, *spec["shape"]))
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        sig_map.signature_def[_SIGNATURE_NAME].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self.model_spec(servable, response.model_spec)
        response.model_spec.ClearField("signature_name")
        response.metadata["signature_def"].Pack(sig_map)
        return response, servable.version

    async def status(self, request: get_model_status_pb2.GetModelStatusRequest) -> tuple[Any, int | None]:
        spec = request.model_spec
        self._check_name(spec)
        which = spec.WhichOneof("version_choice")
        version = (str(spec.version.value) if which == "version" else None)
        label = spec.version_label if which == "version_label" else None
        doc = self.app.status_json(version, label)
        response = get_model_status_pb2.GetModelStatusResponse()
        for item in doc["model_version_status"]:
            st = response.model_version_status.add()
            st.version = int(item["version"])
            st.state = _STATES.get(item["state"], get_model_status_pb2.ModelVersionStatus.UNKNOWN)
            st.status.error_code = 0 if item["status"]["error_code"] == "OK" else 2  # OK, UNKNOWN
            st.status.error_message = item["status"]["error_message"]
        return response, int(version) if version is not None else None


def _features(example: Any) -> dict[str, list[Any]]:
    """A tf.Example's features as lists of values (bytes, floats or ints)."""
    out: dict[str, list[Any]] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = list(getattr(feature, kind).value) if kind else []
    return out


# the REST handlers' names, so that one API has one label whichever front end answered
_API_LABELS = {"Predict": "predict", "Classify": "classify", "Regress": "regress", "GetModelMetadata": "metadata",
               "GetModelStatus": "status"}


def _raw_strings(model: Any, request: Any, rows: int) -> dict[str, list[Any]]:
    """A Predict request's string inputs as sent (one value per row), for the request log."""
    found: dict[str, list[Any]] = {}
    for name, spec in model.inputs.items():
        if spec.dtype == "string":
            values = request.inputs[name].string_val if name in request.inputs else []
            # one string per row; another shape is logged as missing values, never as a shifted column
            found[name] = [v.decode("utf-8", "replace") for v in values] if len(values) == rows else [None] * rows
    return found


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, front: GrpcFrontEnd):
        self.front = front

    async def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802 - the service's method names
        return await self.front.call("Predict", context, lambda: self.front.predict(request))

    async def Classify(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.front.call("Classify", context, lambda: self.front.classify(request))

    async def Regress(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.front.call("Regress", context, lambda: self.front.regress(request))

    async def GetModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.front.call("GetModelMetadata", context, lambda: self.front.metadata(request))


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, front: GrpcFrontEnd):
        self.front = front

    async def GetModelStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.front.call("GetModelStatus", context, lambda: self.front.status(request))
