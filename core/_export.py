"""Model artifacts: a ``jax.export`` StableHLO function, its weights and a signature.

``export`` writes a directory::

    <path>/model.stablehlo    the serialized jax.export function f(params, features) -> outputs,
                              with a symbolic batch dimension "b" (any batch size works)
    <path>/weights.npz        the parameters, passed to f as an explicit argument
    <path>/signature.json     inputs (name, dtype, shape without the batch axis, string
                              encoder), outputs (name, dtype, shape), parameter names

``load`` reads it back with no user code and no pickle and returns a
:class:`LoadedModel` that takes columnar input (a dict of arrays) or row input (a list
of JSON-like dicts), encodes string inputs on the host with
:func:`jfx.core.encode_strings`, checks every input and returns NumPy outputs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jfx.core._data import Dataset
from jfx.core._encoding import encode_strings, validate_encoder
from jfx.errors import AlreadyExistsError, DataValidationError, InvalidArgumentError

if TYPE_CHECKING:
    from flax import nnx

# signature.json metadata: the raw inputs that are int columns in the training data (a float to the model)
INT_INPUTS_KEY = "int_inputs"

__all__ = ["TensorSpec", "export", "export_model", "load", "LoadedModel", "signature_from_dataset"]

FORMAT = "jfx-model"
FORMAT_VERSION = 1
_FUNCTION = "model.stablehlo"
_WEIGHTS = "weights.npz"
_SIGNATURE = "signature.json"
_NUMERIC = ("float32", "float16", "bfloat16", "int32", "int8", "uint8", "bool")
_FLOATS = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class TensorSpec:
    """One model input: dtype, shape without the batch axis, and for ``dtype="string"``
    the host-side encoder (``{"vocabulary": ..., "oov_buckets": k}`` or
    ``{"hash_buckets": n}``) that turns it into ``int32`` ids before the model sees it.

    Example:
        >>> TensorSpec("string", encoder={"vocabulary": ["a", "b"]})
        TensorSpec(dtype='string', shape=(), encoder={'vocabulary': ['a', 'b']})
    """

    dtype: str = "float32"
    shape: tuple[int, ...] = ()
    encoder: dict | None = None
    # The type of the raw column when clients send another JSON type than ``dtype`` says:
    # "bool" for a boolean column a transform reads as a 0/1 float (clients send
    # true/false, the model server takes them). None: clients send ``dtype``'s values.
    source_type: str | None = field(default=None, repr=False)

    def check(self, name: str) -> TensorSpec:
        if self.dtype == "string":
            if self.encoder is None:
                raise InvalidArgumentError(f"input {name!r} is a string; give TensorSpec('string', encoder={{...}})")
            return TensorSpec("string", tuple(self.shape), validate_encoder(self.encoder))
        if self.dtype not in _NUMERIC:
            raise InvalidArgumentError(f"input {name!r}: dtype {self.dtype!r} is not one of {_NUMERIC} or 'string'")
        if self.encoder is not None:
            raise InvalidArgumentError(f"input {name!r}: only string inputs take an encoder")
        if self.source_type not in (None, "bool") or (self.source_type == "bool" and self.dtype not in _FLOATS):
            raise InvalidArgumentError(f"input {name!r}: source_type {self.source_type!r} is not 'bool' on a float input")
        return TensorSpec(self.dtype, tuple(int(d) for d in self.shape), None, self.source_type)

    @property
    def model_dtype(self) -> str:
        """The dtype the serialized function receives (string inputs arrive as int32 ids)."""
        return "int32" if self.dtype == "string" else self.dtype

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape), "encoder": self.encoder}
        if self.source_type is not None:
            doc["source_type"] = self.source_type
        return doc


def signature_from_dataset(data: Dataset) -> dict[str, TensorSpec]:
    """The input signature matching what ``data`` feeds a model (string columns keep
    their encoders, so the exported model takes the raw strings)."""
    out = {}
    for c in data.layout.columns:
        shape = (c.width,) if c.vector else ()
        if c.encoder is not None:
            out[c.name] = TensorSpec("string", shape, dict(c.encoder))
        else:
            out[c.name] = TensorSpec("float32" if c.group == "float" else "int32", shape)
    return out


def _param_names(params: Any) -> tuple[list[str], list[Any], Any]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [jax.tree_util.keystr(p) for p, _ in flat]
    leaves = [x for _, x in flat]
    for n, x in zip(names, leaves, strict=True):
        if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            raise InvalidArgumentError(f"parameter {n} is a PRNG key; export only weights, not RNG state")
    return names, leaves, treedef


def stable_export(fn: Callable[..., Any], platforms: Any, *specs: Any) -> jax.export.Exported:
    """``jax.export`` of ``jax.jit(fn)``, with no Python call stack in the StableHLO locations.

    JAX records the caller's frames in every operation's location, so the same function
    exported from two call paths (a thread of the local runner, a Kubeflow task) would
    serialise to different bytes and its artifact to a different fingerprint.
    """
    limit = jax.config.jax_traceback_in_locations_limit  # type: ignore[attr-defined]  # a flag jax.config defines at run time
    jax.config.update("jax_traceback_in_locations_limit", 0)
    try:
        return jax.export.export(jax.jit(fn), platforms=tuple(platforms))(*specs)
    finally:
        jax.config.update("jax_traceback_in_locations_limit", limit)


def export(serving_fn: Callable[[Any, dict[str, jax.Array]], Any], params: Any,
           signature: Mapping[str, TensorSpec], path: str | Path, *,
           platforms: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None) -> Path:
    """Serializes ``serving_fn(params, features) -> outputs`` as a model artifact.

    Args:
        serving_fn: a JAX-traceable function of (params pytree, dict of batched
            feature arrays) returning a dict of arrays (or one array, named
            ``"output"``), batch first. String inputs arrive as ``int32`` ids.
        params: the weights, any pytree of arrays; saved to ``weights.npz`` and
            passed to the function as an argument, so the function itself stays small.
        signature: input name → :class:`TensorSpec`.
        path: the artifact directory to create (must not exist, or be empty).
        platforms: lowering platforms (default: ``cpu`` plus the current backend).
        metadata: JSON-able facts about the model kept in ``signature.json`` and
            available as ``LoadedModel.metadata``, e.g. ``{"label_vocabulary": [...]}``
            mapping class ids back to label values (the Evaluator reads it).

    Returns:
        ``path``.

    Raises:
        AlreadyExistsError: ``path`` exists and is not empty.

    Example:
        >>> export(lambda p, f: {"y": f["x"] * p["w"]}, {"w": jnp.float32(2)},
        ...        {"x": TensorSpec("float32")}, tmp_path / "m")  # doctest: +SKIP
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AlreadyExistsError(f"{path} already exists and is not empty; export to a new directory")
    if not signature:
        raise InvalidArgumentError("the signature has no inputs")
    try:
        metadata = json.loads(json.dumps(dict(metadata or {}), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"model metadata must be JSON-serialisable: {err}") from err
    sig = {str(k): v.check(str(k)) for k, v in signature.items()}
    names, leaves, treedef = _param_names(params)
    host_leaves = [np.asarray(x) for x in jax.device_get(leaves)]
    keys = [f"p{i:05d}" for i in range(len(names))]

    def flat_fn(flat_params: dict[str, jax.Array], features: dict[str, jax.Array]) -> dict[str, jax.Array]:
        tree = jax.tree.unflatten(treedef, [flat_params[k] for k in keys])
        out = serving_fn(tree, features)
        if not isinstance(out, Mapping):
            out = {"output": out}
        return {str(k): jnp.asarray(v) for k, v in out.items()}

    (b,) = jax.export.symbolic_shape("b")
    feature_specs = {n: jax.ShapeDtypeStruct((b, *s.shape), jnp.dtype(s.model_dtype)) for n, s in sig.items()}
    param_specs = {k: jax.ShapeDtypeStruct(x.shape, x.dtype) for k, x in zip(keys, host_leaves, strict=True)}
    if platforms is None:
        platforms = list(dict.fromkeys(["cpu", jax.default_backend()]))
    exported = stable_export(flat_fn, platforms, param_specs, feature_specs)
    out_tree = jax.tree_util.tree_unflatten(exported.out_tree, list(exported.out_avals))
    outputs = {}
    for name, aval in out_tree.items():
        if not aval.shape or not jax.export.is_symbolic_dim(aval.shape[0]):
            raise InvalidArgumentError(f"output {name!r} has shape {aval.shape}; outputs must be batch first")
        outputs[name] = {"dtype": str(aval.dtype), "shape": [int(d) for d in aval.shape[1:]]}

    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / _FUNCTION).write_bytes(bytes(exported.serialize()))
    with open(tmp / _WEIGHTS, "wb") as f:
        arrays: dict[str, Any] = dict(zip(keys, host_leaves, strict=True))
        np.savez(f, **arrays)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "inputs": {n: s.to_json() for n, s in sig.items()},
        "outputs": outputs,
        "params": dict(zip(keys, names, strict=True)),
        "platforms": list(platforms),
        "jax_version": jax.__version__,
        "metadata": metadata,
    }
    (tmp / _SIGNATURE).write_text(json.dumps(doc, indent=1))
    if path.exists():
        path.rmdir()
    os.replace(tmp, path)
    return path


def _head(model: nnx.Module) -> str:
    if getattr(model, "n_classes", None):
        return "classifier"
    if hasattr(model, "label_dim") or (hasattr(model, "n_classes") and model.n_classes is None):
        return "regressor"
    return "logits"


def model_serving_fn(model: nnx.Module, head: str | None = None) -> tuple[Callable[[Any, dict], dict], Any]:
    """An NNX module (put in eval mode) as ``(serving_fn(params, features) -> outputs, params)``.

    The pair :func:`export` takes; ``head`` chooses the outputs as in :func:`export_model`.
    """
    from flax import nnx

    head = head or _head(model)
    if head not in ("classifier", "regressor", "logits"):
        raise InvalidArgumentError(f"head must be classifier, regressor or logits, got {head!r}")
    model.eval()
    graphdef, rng_state, weights = nnx.split(model, nnx.RngState, ...)  # type: ignore[misc]  # flax types the result as variadic

    def serving_fn(params: Any, features: dict[str, jax.Array]) -> dict[str, jax.Array]:
        module = nnx.merge(graphdef, rng_state, params, copy=True)
        logits = jnp.asarray(module(features)).astype(jnp.float32)
        if head == "regressor":
            return {"predictions": logits}
        if head == "logits":
            return {"logits": logits}
        if logits.ndim == 1 or logits.shape[-1] == 1:
            p = jax.nn.sigmoid(logits.reshape(-1))
            probs = jnp.stack([1 - p, p], axis=-1)
        else:
            probs = jax.nn.softmax(logits, axis=-1)
        return {"logits": logits, "probabilities": probs, "class_ids": jnp.argmax(probs, axis=-1).astype(jnp.int32)}

    return serving_fn, weights


def export_model(model: nnx.Module, signature: Mapping[str, TensorSpec], path: str | Path, *,
                 head: str | None = None, platforms: Sequence[str] | None = None,
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Exports an NNX module (in eval mode) with :func:`export`.

    Args:
        model: the module; its ``nnx.Param`` and other non-RNG variables become the weights.
        signature: input name → :class:`TensorSpec` (see :func:`signature_from_dataset`).
        path: the artifact directory.
        head: the outputs: ``"classifier"`` (``logits``, ``probabilities``,
            ``class_ids``), ``"regressor"`` (``predictions``) or ``"logits"``; default
            from the model (canned classifiers and regressors), else ``"logits"``.
        platforms, metadata: as in :func:`export`.

    Example:
        >>> export_model(model, signature_from_dataset(ds), "/tmp/model")  # doctest: +SKIP
    """
    serving_fn, weights = model_serving_fn(model, head)
    return export(serving_fn, weights, signature, path, platforms=platforms, metadata=metadata)


def _bucket(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class LoadedModel:
    """A model artifact loaded by :func:`load`; call it with columns or rows.

    Attributes:
        inputs: name → :class:`TensorSpec`.
        outputs: name → ``{"dtype", "shape"}``.
        metadata: what the exporter recorded (e.g. ``label_vocabulary``), or ``{}``.

    Batches are padded to the next power of two before the call, so only a few
    batch sizes are ever compiled; the padding is cut off the outputs.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        try:
            doc = json.loads((path / _SIGNATURE).read_text())
            blob = (path / _FUNCTION).read_bytes()
        except FileNotFoundError as err:
            raise DataValidationError(f"{path} is not a jfx model artifact: {err.filename} is missing") from err
        if doc.get("format") != FORMAT or doc.get("version", 0) > FORMAT_VERSION:
            raise DataValidationError(f"{path}: unsupported model format {doc.get('format')!r} v{doc.get('version')}")
        self.path = path
        self._read_signature(doc)
        self._exported = jax.export.deserialize(bytearray(blob))
        with np.load(path / _WEIGHTS, allow_pickle=False) as npz:
            self._params = {k: jnp.asarray(npz[k]) for k in doc["params"]}
        self._call = jax.jit(self._exported.call)

    def _read_signature(self, doc: Mapping[str, Any]) -> None:
        """Sets ``inputs``, ``outputs`` and ``metadata`` from a signature document (the
        input checks and string encoders of :meth:`prepare` follow from them)."""
        self.inputs = {n: TensorSpec(s["dtype"], tuple(s["shape"]), s.get("encoder"), s.get("source_type"))
                       for n, s in doc["inputs"].items()}
        self.outputs = doc["outputs"]
        self.metadata = doc.get("metadata") or {}
        # scalar float features: rows of them are read as one matrix (one NumPy call
        # instead of one per feature), the model server's per-request path
        self._float_scalars = [n for n, s in self.inputs.items()
                               if s.dtype in ("float16", "float32") and not s.shape]

    def _float_rows(self, rows: Sequence[Any], strict: bool = False) -> dict[str, np.ndarray] | None:
        """The scalar float features of ``rows`` as columns, or None when anything is
        unusual (a missing feature, a non-number, a nested value; with ``strict``, also a
        boolean or a value that is not finite in the feature's dtype): :meth:`_column`
        then reads them one by one and names the culprit."""
        names = self._float_scalars
        try:
            nested = [[row[n] for n in names] for row in rows]
            # one pass in C over the values' types: a boolean would pass as 0/1 below
            if strict and not _JSON_NUMBERS.issuperset(map(type, chain.from_iterable(nested))):
                return None
            mat = np.array(nested)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):
            return None
        if mat.shape != (len(rows), len(names)) or mat.dtype.kind not in "biuf":
            return None  # strings, None, nested values: read per feature, as before
        if mat.dtype.kind == "f" and mat.size and np.abs(mat).max() >= 2.0 ** 53:
            return None  # an integer this large may have been rounded on its way to float64
        dtypes = {self.inputs[n].dtype for n in names}
        if len(dtypes) == 1:  # the usual case: one cast, then a view per column
            mat = mat.astype(dtypes.pop())
            if strict and not np.isfinite(mat).all():
                return None  # 1e999, or 1e300 for float32: the slow path names it
            return {n: mat[:, i] for i, n in enumerate(names)}
        cols = {n: mat[:, i].astype(self.inputs[n].dtype) for i, n in enumerate(names)}
        if strict and not all(np.isfinite(c).all() for c in cols.values()):
            return None
        return cols

    def _column(self, name: str, spec: TensorSpec, values: Any, strict: bool = False) -> np.ndarray:
        if strict and spec.dtype != "string":
            return _json_numbers(name, spec, values)
        if spec.dtype == "string":
            arr = np.asarray(values, dtype=object)
            flat = arr.reshape(-1)
            if arr.dtype == object and arr.size and not all(v is None or isinstance(v, (str, bytes)) for v in flat):
                # name the first culprit and its instance: any row may hold it, not only the first three
                width = max(1, flat.size // max(1, arr.shape[0])) if arr.ndim else 1
                i, bad = next((i, v) for i, v in enumerate(flat) if not (v is None or isinstance(v, (str, bytes))))
                raise InvalidArgumentError(f"feature {name!r} must hold strings (or null); instance {i // width} "
                                           f"has {_describe(bad)}")
            assert spec.encoder is not None  # a string feature's spec carries its encoder
            out = encode_strings(arr, spec.encoder)
        else:
            try:
                arr = np.asarray(values)
                if arr.dtype == object or arr.dtype.kind in "USO":
                    arr = arr.astype(np.float64)
                if np.dtype(spec.dtype).kind in "iu" and arr.dtype.kind == "f" and (
                        not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr))):
                    raise ValueError("non-integral values for an integer feature")
                out = arr.astype(spec.dtype)
            except (ValueError, TypeError) as err:
                raise InvalidArgumentError(
                    f"feature {name!r} cannot be read as {spec.dtype}: {err}"
                ) from err
        if out.ndim == 0 or out.shape[1:] != spec.shape:
            raise InvalidArgumentError(
                f"feature {name!r} has shape {out.shape}; expected (batch, {', '.join(map(str, spec.shape))})"
                if spec.shape else f"feature {name!r} has shape {out.shape}; expected (batch,)"
            )
        return out

    def _columns_from_rows(self, rows: Sequence[Mapping[str, Any]],
                           names: Sequence[str] | None = None) -> dict[str, list[Any]]:
        names = list(self.inputs) if names is None else names
        cols: dict[str, list[Any]] = {n: [] for n in names}
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidArgumentError(f"instance {i} is a {type(row).__name__}; expected a dict of features")
            for n in names:
                if n not in row:
                    raise InvalidArgumentError(f"feature {n!r} is missing from instance {i}; "
                                               f"the model expects {sorted(self.inputs)}")
                cols[n].append(row[n])
        return cols

    def prepare(self, inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                strict: bool = False) -> dict[str, np.ndarray]:
        """Validates and encodes inputs into the arrays the serialized function takes.

        Args:
            inputs: a dict of columns or a list of row dicts.
            strict: take numbers as JSON gives them and refuse anything else (what the
                model server asks): a numeric feature takes only finite ``int``/``float``
                values that fit its dtype (never a boolean or a string), whole ones for an
                integer feature, ``True``/``False`` for a ``bool`` one; ``None`` is a missing
                value only for float features (NaN to the model) and strings.

        Raises:
            InvalidArgumentError: naming the feature (and with ``strict``, the instance).
        """
        fast: dict[str, np.ndarray] | None = None
        if isinstance(inputs, Mapping):
            columns: Mapping[str, Any] = inputs
        elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
            if self._float_scalars and inputs and all(type(r) is dict for r in inputs):
                fast = self._float_rows(inputs, strict)
            columns = self._columns_from_rows(inputs, [n for n in self.inputs if fast is None or n not in fast])
        else:
            raise InvalidArgumentError(f"expected a dict of columns or a list of instances, got {type(inputs).__name__}")
        arrays = {}
        for n, spec in self.inputs.items():
            if fast is not None and n in fast:
                arrays[n] = fast[n]
                continue
            if n not in columns:
                raise InvalidArgumentError(f"feature {n!r} is missing; the model expects {sorted(self.inputs)}")
            arrays[n] = self._column(n, spec, columns[n], strict)
        sizes = {a.shape[0] for a in arrays.values()}
        if len(sizes) > 1:
            raise InvalidArgumentError(
                f"features have different batch sizes: {({n: a.shape[0] for n, a in arrays.items()})}")
        return arrays

    def __call__(self, inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Runs the model on a dict of columns or a list of row dicts.

        Returns:
            output name → NumPy array, batch first.

        Raises:
            InvalidArgumentError: a feature is missing, cannot be cast, or has the wrong shape.
        """
        return self.run_prepared(self.prepare(inputs))

    def run_prepared(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the model on arrays already checked and encoded by :meth:`prepare`.

        The batch is padded to the next power of two (so few sizes ever compile) and the
        padding cut off the outputs. The model server batches prepared requests this way.
        """
        n = int(next(iter(arrays.values())).shape[0])
        if n == 0:
            return {k: np.zeros((0, *v["shape"]), v["dtype"]) for k, v in self.outputs.items()}
        size = _bucket(n)
        if size != n:
            arrays = {k: np.concatenate([a, np.zeros((size - n, *a.shape[1:]), a.dtype)]) for k, a in arrays.items()}
        out = self._call(self._params, arrays)
        return {k: np.asarray(v)[:n] for k, v in out.items()}


_JSON_NUMBERS = frozenset({int, float})


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()} (a boolean is not a number)"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, (list, tuple, dict)):
        return f"a {'object' if isinstance(value, dict) else 'list'} ({str(value)[:40]})"
    return repr(value)


def _largest(dtype: np.dtype) -> float:
    try:
        return float(np.finfo(dtype).max)
    except (ValueError, TypeError):  # bfloat16: NumPy's finfo does not know it
        import ml_dtypes

        return float(ml_dtypes.finfo(dtype).max)


def _json_numbers(name: str, spec: TensorSpec, values: Any) -> np.ndarray:
    """One numeric feature's values as JSON gives them, checked strictly, as ``spec.dtype``.

    Every check is one NumPy pass over the column; only once a check fails is the
    column searched for the first culprit, which the error names with its instance.
    """
    dtype = np.dtype(spec.dtype)
    width = int(np.prod(spec.shape)) if spec.shape else 1
    try:
        obj = np.asarray(values, dtype=object)
    except ValueError:
        obj = np.empty(0, object)  # irregularly nested: the shape check names the instance
    if obj.ndim == 0 or obj.shape[1:] != spec.shape:
        expected = f"a list of {', '.join(map(str, spec.shape))} numbers" if spec.shape else "a number"
        for i, v in enumerate(values if isinstance(values, (list, tuple)) else []):
            try:
                shape = np.shape(v)
            except ValueError:
                shape = None
            if shape != spec.shape:
                raise InvalidArgumentError(f"feature {name!r} of instance {i} is {_describe(v)}, of shape "
                                           f"{shape}; expected {expected}")
        raise InvalidArgumentError(f"feature {name!r} has shape {obj.shape}; expected (batch, "
                                   f"{', '.join(map(str, spec.shape))})" if spec.shape else
                                   f"feature {name!r} has shape {obj.shape}; expected (batch,)")
    flat = obj.reshape(-1)
    nullable = dtype.kind not in "biu"  # float16/32, and bfloat16 (kind "V")
    allowed: frozenset[type]
    if dtype.kind == "b":
        allowed, takes = frozenset({bool}), "true or false"
    elif spec.source_type == "bool":  # a boolean column the model reads as 0/1
        allowed, takes = frozenset({bool, type(None)}), "true or false, or null for a missing value"
    else:
        allowed = _JSON_NUMBERS | {type(None)} if nullable else _JSON_NUMBERS
        takes = (f"numbers{', or null for a missing value' if nullable else ''}" if nullable
                 else "whole numbers (it has no missing value: null is refused)")
    if not allowed.issuperset(map(type, flat)):
        k = next(k for k, v in enumerate(flat) if type(v) not in allowed)
        raise InvalidArgumentError(f"feature {name!r} of instance {k // width} is {_describe(flat[k])}; "
                                   f"a {spec.dtype} feature takes {takes}")
    if dtype.kind == "b":
        return obj.astype(bool)
    if spec.source_type == "bool":
        return np.array([np.nan if v is None else float(v) for v in flat], dtype=dtype).reshape(obj.shape)
    try:
        wide = obj.astype(np.float64)  # None is NaN here; ints beyond float64 raise
    except OverflowError:
        wide = np.array([np.nan if v is None else float(v) if abs(v) < 2 ** 1023 else np.inf
                         for v in flat]).reshape(obj.shape)
    if nullable:
        with np.errstate(over="ignore"):
            out = wide.astype(dtype)
        bad = ~np.isfinite(out if dtype.kind == "f" else out.astype(np.float32))
        if bad.any() and nullable:
            bad &= flat.reshape(obj.shape) != None  # noqa: E711 - elementwise on objects: null is a missing value
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InvalidArgumentError(
                f"feature {name!r} of instance {k // width} is {_describe(flat[k])}, which is not a finite "
                f"{spec.dtype} (at most ±{_largest(dtype):.4g}); send a finite number, or null for a "
                "missing value")
        return out
    info = np.iinfo(dtype)
    bad = (wide != np.floor(wide)) | (wide < info.min) | (wide > info.max)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidArgumentError(f"feature {name!r} of instance {k // width} is {_describe(flat[k])}; "
                                   f"a {spec.dtype} feature takes whole numbers from {info.min} to {info.max}")
    return wide.astype(dtype)


def load(path: str | Path) -> LoadedModel:
    """Loads a model artifact written by :func:`export` (no user code, no pickle).

    Example:
        >>> model = load("/tmp/model")  # doctest: +SKIP
        >>> model([{"x": 1.0, "city": "Paris"}])["probabilities"].shape  # doctest: +SKIP
        (1, 2)
    """
    return LoadedModel(path)
