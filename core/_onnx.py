"""ONNX export of a jfx model artifact: the whole serving function, transform included.

:func:`export_onnx` writes a directory::

    <path>/model.onnx        the serving function (transform + model + head) as one ONNX
                             graph with a symbolic batch dimension "batch"; string features
                             enter as int32 vocabulary ids, as in the StableHLO function
    <path>/signature.json    inputs (name, dtype, shape without the batch axis, the string
                             encoder: vocabulary and out-of-vocabulary buckets, or hash
                             buckets), the dtype each ONNX input takes, outputs (name,
                             dtype, shape), label names (``metadata.label_vocabulary``) and,
                             for a quantized model, the sizes and the accuracy check

The conversion reads the model's StableHLO back as JAX operations
(:mod:`jfx.core._stablehlo`) and hands them to jax2onnx. String features stay out of the
graph: a runtime maps each string to its id with the signature's encoder first, as
``jfx.core.load`` does on the host. :func:`load_onnx` is that thin loader for
onnxruntime: the same input checks and encoders as ``jfx.core.load``, then one
``InferenceSession.run``.

``quantize="int8"`` quantizes the weights of the matrix products to int8 with
onnxruntime's dynamic quantization (activations are quantized per batch at run time);
with eval examples it measures what that costs (accuracy for a classifier, mean absolute
error for a regressor) on the float and the int8 model.

Example:
    >>> export_onnx("model_dir", "model_onnx")                              # doctest: +SKIP
    >>> load_onnx("model_onnx")([{"x": 1.0, "city": "Paris"}])["class_ids"]  # doctest: +SKIP
    array([1], dtype=int32)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jfx.core._export import LoadedModel
from jfx.errors import AlreadyExistsError, DataValidationError, InvalidArgumentError

__all__ = ["OnnxExport", "OnnxModel", "QuantizationCheck", "export_onnx", "load_onnx", "read_examples"]

FORMAT = "jfx-onnx"
FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
QUANTIZATIONS = ("int8",)
BATCH = "batch"


@dataclass(frozen=True)
class QuantizationCheck:
    """The float and the quantized model measured on the same labelled examples.

    Attributes:
        metric: ``"accuracy"`` (a classifier: higher is better) or ``"mae"`` (a
            regressor's mean absolute error: lower is better).
        float_value, quantized_value: the metric of each model.
        rows: how many examples were scored.
    """

    metric: str
    float_value: float
    quantized_value: float
    rows: int

    @property
    def degradation(self) -> float:
        """How much worse the quantized model is (positive: worse; negative: better)."""
        if self.metric == "accuracy":
            return self.float_value - self.quantized_value
        return self.quantized_value - self.float_value

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "float": self.float_value, "quantized": self.quantized_value,
                "degradation": self.degradation, "rows": self.rows}

    def describe(self) -> str:
        return (f"{self.metric} on {self.rows} examples: float {self.float_value:.4f}, "
                f"int8 {self.quantized_value:.4f} (change {self.quantized_value - self.float_value:+.4f})")


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the directory (``model.onnx``, ``signature.json``).
        size_bytes: ``model.onnx``'s size.
        float_size_bytes: the float model's size (the same as ``size_bytes`` unless quantized).
        quantize: ``"int8"`` or None.
        check: the quantization's accuracy check, when examples were given.
    """

    path: Path
    size_bytes: int
    float_size_bytes: int
    quantize: str | None = None
    check: QuantizationCheck | None = None

    def describe(self) -> str:
        lines = [f"wrote {self.path / ONNX_FILE} ({_size(self.size_bytes)})"]
        if self.quantize:
            lines.append(f"size: float {_size(self.float_size_bytes)} → {self.quantize} {_size(self.size_bytes)} "
                         f"({self.size_bytes / max(1, self.float_size_bytes):.0%})")
        if self.check is not None:
            lines.append(self.check.describe())
        return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


# --------------------------------------------------------------------------- conversion


def _quiet_converter_logs() -> None:
    # onnx_ir warns once per symbolic shape it cannot type while serialising: noise to a user
    for name in ("onnx_ir", "onnx_ir.serde", "jax2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def to_onnx_proto(model: LoadedModel) -> Any:
    """The model's serving function as an ``onnx.ModelProto`` (float, opset 23).

    Raises:
        InvalidArgumentError: jax2onnx is not installed, or the model uses an operation
            the conversion does not cover (named).
    """
    import jax

    from jfx.core._stablehlo import UnsupportedOperationError, as_jax_function

    try:
        from jax2onnx import to_onnx
    except ImportError as err:
        raise InvalidArgumentError(f"ONNX export needs jax2onnx and onnx ({err}); pip install 'jfx[onnx]'") from err
    exported = model._exported  # noqa: SLF001 - the artifact this module converts
    names = list(model.inputs)
    params = dict(model._params)  # noqa: SLF001
    flat, tree = jax.tree_util.tree_flatten(((params, {n: None for n in names}), {}),
                                            is_leaf=lambda x: x is None)
    if tree != exported.in_tree:  # type: ignore[operator]  # PyTreeDefs compare by structure
        raise InvalidArgumentError(f"{model.path}: the function's arguments {exported.in_tree} are not "
                                   "(weights, features) as jfx exports them")
    feature_order = [n for n in sorted(names)]  # a dict's leaves come in key order
    fn = as_jax_function(exported, [None if a is None else np.asarray(a) for a in flat])
    out_names = list(jax.tree_util.tree_unflatten(exported.out_tree, list(range(len(exported.out_avals)))))
    (b,) = jax.export.symbolic_shape(BATCH)
    specs = [jax.ShapeDtypeStruct((b, *model.inputs[n].shape), np.dtype(model.inputs[n].model_dtype))
             for n in feature_order]
    _quiet_converter_logs()
    try:
        return to_onnx(lambda *xs: tuple(fn(*xs)), specs, model_name="jfx_model", input_names=feature_order,
                       output_names=out_names)
    except UnsupportedOperationError as err:
        raise UnsupportedOperationError(f"{model.path}: cannot convert to ONNX: {err}") from None
    except Exception as err:
        raise InvalidArgumentError(f"{model.path}: jax2onnx cannot convert the model: "
                                   f"{type(err).__name__}: {err}") from err


def _gemm_as_matmul(model: Any) -> Any:
    """Rewrites each ``Gemm`` (alpha = 1, beta = 0 or 1, A not transposed, B a weight) as
    ``MatMul`` + ``Add``: the same arithmetic, in the form onnxruntime's dynamic
    quantization quantizes (it leaves ``Gemm`` in float)."""
    import onnx
    from onnx import helper, numpy_helper

    weights = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0
                or attrs.get("beta", 1.0) not in (0.0, 1.0) or node.input[1] not in weights):
            nodes.append(node)
            continue
        b = node.input[1]
        if attrs.get("transB", 0):
            t = numpy_helper.to_array(weights[b]).T.copy()
            b = f"{b}_t"
            model.graph.initializer.append(numpy_helper.from_array(t, b))
        has_c = len(node.input) > 2 and node.input[2] and attrs.get("beta", 1.0) == 1.0
        product = f"{node.output[0]}_matmul" if has_c else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], b], [product], name=f"{node.name}_matmul"))
        if has_c:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_add"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def _quantize_int8(src: Path, dest: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _gemm_as_matmul(onnx.load(str(src)))
    hint = _PreprocessHint()
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        quantize_dynamic(model, str(dest), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(hint)


class _PreprocessHint(logging.Filter):
    """Drops onnxruntime's "consider pre-processing" hint (it logs it to the root logger
    on every call; the graph has its shapes already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _signature_doc(model: LoadedModel, quantization: dict[str, Any] | None, source: str) -> dict[str, Any]:
    inputs = {}
    for n, spec in model.inputs.items():
        doc = spec.to_json()
        doc["onnx_dtype"] = spec.model_dtype
        inputs[n] = doc
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": ONNX_FILE,
        "batch_dimension": BATCH,
        "inputs": inputs,
        "outputs": model.outputs,
        "label_names": model.metadata.get("label_vocabulary"),
        "metadata": model.metadata,
        "quantization": quantization,
        "source": source,
    }


@contextlib.contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """A new folder beside ``path`` to write an export into; on success it becomes ``path``
    (an empty ``path`` is replaced), on any error it is removed: nothing half-written shows."""
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def export_onnx(model: str | Path | LoadedModel, path: str | Path, *, quantize: str | None = None,
                eval_examples: str | Path | Mapping[str, Any] | None = None,
                label_key: str | None = None, max_degradation: float | None = None) -> OnnxExport:
    """Writes ``model`` (a jfx model directory) as ONNX to the directory ``path``.

    Args:
        model: a model artifact directory (or one loaded with ``jfx.core.load``).
        path: the directory to create (must not exist, or be empty).
        quantize: ``"int8"``: quantize the weights with onnxruntime's dynamic quantization.
        eval_examples: labelled RAW examples to measure the quantization on: a CSV or
            Parquet file, a folder of Parquet files, or a dict of columns.
        label_key: the label column (default: the model's ``metadata["label_key"]``).
        max_degradation: refuse (write nothing) when the quantized model is worse than
            the float one by more than this (accuracy, or MAE for a regressor).

    Returns:
        :class:`OnnxExport` (sizes and the check).

    Raises:
        AlreadyExistsError: ``path`` exists and is not empty.
        InvalidArgumentError: an unknown ``quantize``, an operation the conversion does
            not cover (named), or jax2onnx/onnxruntime missing.
        DataValidationError: the examples cannot be read or lack the label column, or
            the quantization costs more than ``max_degradation``.
    """
    from jfx.core._export import load

    if max_degradation is not None and eval_examples is None:
        raise InvalidArgumentError("max_degradation needs eval_examples to measure the change on")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InvalidArgumentError(f"quantize must be one of {QUANTIZATIONS} or None, got {quantize!r}")
    if eval_examples is not None and quantize is None:
        raise InvalidArgumentError("eval examples measure a quantization; give quantize='int8' with them")
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AlreadyExistsError(f"{path} already exists and is not empty; export to a new directory")
    loaded = model if isinstance(model, LoadedModel) else load(model)
    columns = None
    if eval_examples is not None:
        columns = eval_examples if isinstance(eval_examples, Mapping) else read_examples(eval_examples)
    proto = to_onnx_proto(loaded)
    import onnx

    with staged_dir(path) as tmp:
        float_file = tmp / ONNX_FILE
        onnx.save_model(proto, str(float_file))
        float_size = float_file.stat().st_size
        quantization = None
        check = None
        if quantize == "int8":
            quant_file = tmp / "model.int8.onnx"
            try:
                _quantize_int8(float_file, quant_file)
            except Exception as err:
                raise InvalidArgumentError(f"onnxruntime could not quantize {loaded.path}: "
                                           f"{type(err).__name__}: {err}") from err
            if columns is not None:
                sig = _signature_doc(loaded, None, str(loaded.path))
                check = quantization_check(OnnxModel(float_file, sig), OnnxModel(quant_file, sig), columns,
                                           label_key)
                reason = None if max_degradation is None else check_threshold(check, max_degradation)
                if reason is not None:
                    raise DataValidationError(f"{reason}; nothing written to {path}")
            os.replace(quant_file, float_file)
            quantization = {"type": "int8", "method": "onnxruntime.quantization.quantize_dynamic (QInt8 weights)",
                            "float_bytes": float_size, "bytes": float_file.stat().st_size,
                            "check": None if check is None else check.to_json()}
        doc = _signature_doc(loaded, quantization, str(loaded.path))
        (tmp / SIGNATURE_FILE).write_text(json.dumps(doc, indent=1))
        size = float_file.stat().st_size
    return OnnxExport(path, size, float_size, quantize, check)


# --------------------------------------------------------------------------- the loader


class OnnxModel(LoadedModel):
    """An ONNX export loaded by :func:`load_onnx`: called like ``jfx.core.load``'s model.

    The inputs are checked and string features encoded exactly as by
    :class:`jfx.core.LoadedModel` (the signature's encoders), then onnxruntime runs the
    graph on the CPU.
    """

    def __init__(self, path: str | Path, doc: Mapping[str, Any] | None = None):
        path = Path(path)
        onnx_file = path if path.suffix == ".onnx" else path / ONNX_FILE
        if doc is None:
            try:
                doc = json.loads((onnx_file.parent / SIGNATURE_FILE).read_text())
            except FileNotFoundError as err:
                raise DataValidationError(f"{path} is not a jfx ONNX export: {err.filename} is missing") from err
            if doc.get("format") != FORMAT or doc.get("version", 0) > FORMAT_VERSION:
                raise DataValidationError(f"{path}: unsupported format {doc.get('format')!r} v{doc.get('version')}")
        if not onnx_file.is_file():
            raise DataValidationError(f"{path} is not a jfx ONNX export: {onnx_file} is missing")
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise InvalidArgumentError(f"running an ONNX model needs onnxruntime ({err}); "
                                       "pip install 'jfx[onnx]'") from err
        self.path = path
        self._read_signature(doc)
        self.quantization = doc.get("quantization")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._output_names = [o.name for o in self.session.get_outputs()]

    def run_prepared(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = int(next(iter(arrays.values())).shape[0])
        if n == 0:
            return {k: np.zeros((0, *v["shape"]), v["dtype"]) for k, v in self.outputs.items()}
        outs = self.session.run(self._output_names, {k: np.ascontiguousarray(v) for k, v in arrays.items()})
        return dict(zip(self._output_names, outs, strict=True))


def load_onnx(path: str | Path) -> OnnxModel:
    """Loads a directory written by :func:`export_onnx` (or its ``model.onnx``) for onnxruntime.

    Example:
        >>> load_onnx("/tmp/model_onnx")([{"x": 1.0}])["probabilities"].shape   # doctest: +SKIP
        (1, 2)
    """
    return OnnxModel(path)


# --------------------------------------------------------------------------- the check


def read_examples(path: str | Path) -> dict[str, list[Any]]:
    """Raw examples as columns: a CSV file, a Parquet file, or a folder of Parquet files
    (searched recursively; an Examples artifact's split folder works)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        if path.is_dir():
            files = sorted(path.rglob("*.parquet"))
            if not files:
                raise DataValidationError(f"{path}: no Parquet files in the folder")
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
        elif path.suffix.lower() == ".csv":
            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
        elif path.suffix.lower() == ".parquet":
            table = pq.read_table(path)
        else:
            raise DataValidationError(f"{path}: examples must be a .csv or .parquet file or a folder of Parquet files")
    except FileNotFoundError as err:
        raise DataValidationError(f"{path}: no such file or folder") from err
    except pa.ArrowException as err:
        raise DataValidationError(f"{path}: cannot read the examples: {err}") from err
    return table.to_pydict()


def _labels(model: LoadedModel, columns: Mapping[str, Any], key: str, classifier: bool) -> np.ndarray:
    values = list(columns[key])
    if any(v is None for v in values):
        raise DataValidationError(f"the label column {key!r} has missing values; drop those rows first")
    if not classifier:
        return np.asarray(values, dtype=np.float64)
    vocab = model.metadata.get("label_vocabulary")
    if vocab is not None:
        lookup = {str(v): i for i, v in enumerate(vocab)}
        unknown = sorted({str(v) for v in values} - set(lookup))
        if unknown:
            raise DataValidationError(f"label(s) {unknown[:5]} in column {key!r} are not in the model's "
                                      f"label vocabulary {list(vocab)}")
        return np.asarray([lookup[str(v)] for v in values], dtype=np.int64)
    try:
        return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise DataValidationError(f"the label column {key!r} is not class ids and the model has no "
                                  "label_vocabulary") from err


def quantization_check(float_model: LoadedModel, quantized: LoadedModel, columns: Mapping[str, Any],
                       label_key: str | None = None) -> QuantizationCheck:
    """Scores both models on labelled examples: accuracy (``class_ids``) or MAE (``predictions``).

    Raises:
        DataValidationError: no label column, or a label the model cannot map.
        InvalidArgumentError: the model has neither ``class_ids`` nor ``predictions``.
    """
    key = label_key or float_model.metadata.get("label_key")
    if not key:
        raise InvalidArgumentError("name the label column (label_key): the model's metadata has no label_key")
    if key not in columns:
        raise DataValidationError(f"the examples have no label column {key!r} (columns: {sorted(columns)})")
    features = {n: columns[n] for n in float_model.inputs if n in columns}
    missing = [n for n in float_model.inputs if n not in columns]
    if missing:
        raise DataValidationError(f"the examples lack the model's input column(s) {missing}")
    if "class_ids" in float_model.outputs:
        output, metric, classifier = "class_ids", "accuracy", True
    elif "predictions" in float_model.outputs:
        output, metric, classifier = "predictions", "mae", False
    else:
        raise InvalidArgumentError(f"cannot score the quantization: the model has neither class_ids nor "
                                   f"predictions among its outputs {sorted(float_model.outputs)}")
    labels = _labels(float_model, columns, key, classifier)
    arrays = float_model.prepare(features)
    scores = []
    for m in (float_model, quantized):
        pred = np.asarray(m.run_prepared(arrays)[output])
        if classifier:
            scores.append(float(np.mean(pred.reshape(-1) == labels)))
        else:
            scores.append(float(np.mean(np.abs(pred.reshape(len(labels), -1)[:, 0] - labels))))
    return QuantizationCheck(metric, scores[0], scores[1], len(labels))


def check_threshold(check: QuantizationCheck, max_degradation: float) -> str | None:
    """Why a quantized model must not be pushed (None: it may be)."""
    if check.degradation > max_degradation:
        worse = "drops" if check.metric == "accuracy" else "rises"
        return (f"int8 quantization {worse} {check.metric} by {abs(check.degradation):.4f} "
                f"(from {check.float_value:.4f} to {check.quantized_value:.4f} on {check.rows} examples), "
                f"beyond the allowed {max_degradation}")
    return None

