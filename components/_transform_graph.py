"""The fitted transform on disk (a ``TransformGraph`` artifact), its loader and export helper.

``save_transform`` writes a directory::

    <path>/transform_fn.stablehlo   jax.export of transform_fn(constants, inputs) -> outputs,
                                    symbolic batch dimension "b"
    <path>/constants.npz            the analyzers' constants ("<analyzer>.<name>" keys)
    <path>/transform.json           inputs (dtype, encoder), outputs (dtype, shape, the raw
                                    inputs each depends on), analyzers and their results

``load_transform`` reads it back without the user's code and returns a
:class:`LoadedTransform`: ``apply`` raw columns (strings included) to get the transformed
columns, or take ``serving_fn`` / ``constants`` / ``encoders`` to compose the transform
with a model. :func:`export_with_transform` exports that composition with
:func:`jfx.core.export`, so a served model applies exactly the transform the pipeline
applied (the same StableHLO, the same host encoders).

Example:
    >>> t = load_transform(transform_graph)                           # doctest: +SKIP
    >>> t.apply({"x": [1.0, None], "city": ["Paris", None]})["x"]      # doctest: +SKIP
    array([-0.3, nan], dtype=float32)
    >>> export_with_transform(t, model_fn, params, "/tmp/model")       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jfx.components._analyzers import (
    FittedTransform,
    _dependencies,
    _input_struct,
    pad_batch,
    raw_input_arrays,
)
from jfx.core import TensorSpec, export
from jfx.core._export import INT_INPUTS_KEY, stable_export
from jfx.errors import AlreadyExistsError, DataValidationError, InvalidArgumentError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadedTransform",
    "export_with_transform",
    "load_transform",
    "save_transform",
]

FORMAT = "jfx-transform"
FORMAT_VERSION = 1
FUNCTION_FILE = "transform_fn.stablehlo"
CONSTANTS_FILE = "constants.npz"
SIGNATURE_FILE = "transform.json"
OUTPUT_DTYPES = ("float32", "float16", "bfloat16", "int32", "int8", "uint8", "bool")


def _flat_constants(constants: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    return {f"{a}.{k}": np.asarray(v) for a, fields in constants.items() for k, v in fields.items()}


def _nest(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        a, _, k = key.rpartition(".")
        out.setdefault(a, {})[k] = value
    return out


def _summary(value: np.ndarray) -> Any:
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


def save_transform(fitted: FittedTransform, path: str | Path, *, platforms: Sequence[str] | None = None,
                   extra: Mapping[str, Any] | None = None) -> Path:
    """Exports ``fitted`` as a TransformGraph directory (see the module docstring).

    Raises:
        AlreadyExistsError: ``path`` exists and is not empty.
        ComponentError: ``preprocessing_fn`` fails when traced.
        InvalidArgumentError: an output is not batch first, has rank > 2 or an unsupported dtype.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AlreadyExistsError(f"{path} already exists and is not empty")
    transform_fn = fitted.transform_fn()
    flat: dict[str, Any] = _flat_constants(fitted.constants)
    inputs = list(fitted.types)
    if not inputs:
        raise InvalidArgumentError(f"preprocessing_fn {fitted.ref.describe()} reads no column; "
                                   "its outputs must be computed from inputs[...]")

    def flat_fn(consts, arrays):
        return transform_fn(_nest(consts), arrays)

    (b,) = jax.export.symbolic_shape("b")
    if platforms is None:
        platforms = list(dict.fromkeys(["cpu", jax.default_backend()]))
    const_specs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in flat.items()}
    exported = stable_export(flat_fn, platforms, const_specs, _input_struct(fitted.types, b))
    out_tree = jax.tree_util.tree_unflatten(exported.out_tree, list(exported.out_avals))
    # Which raw inputs each output depends on, so a model that ignores (say) the label
    # does not need the raw label at serving time.
    closed = jax.make_jaxpr(flat_fn)(flat, _input_struct(fitted.types, 8))
    labels: list[frozenset[str]] = [frozenset()] * len(flat) + [frozenset([c]) for c in sorted(fitted.types)]
    deps = dict(zip(sorted(out_tree), _dependencies(closed, labels), strict=True))
    outputs = {}
    for name, aval in out_tree.items():
        if not aval.shape or not jax.export.is_symbolic_dim(aval.shape[0]) or len(aval.shape) > 2:
            raise InvalidArgumentError(
                f"preprocessing_fn output {name!r} has shape {aval.shape}; outputs must be (batch,) or "
                "(batch, k): one value or a fixed-size vector per row"
            )
        if str(aval.dtype) not in OUTPUT_DTYPES:
            raise InvalidArgumentError(f"preprocessing_fn output {name!r} has dtype {aval.dtype}; "
                                       f"expected one of {OUTPUT_DTYPES}")
        outputs[name] = {"dtype": str(aval.dtype), "shape": [int(d) for d in aval.shape[1:]],
                         "inputs": [c for c in inputs if c in deps[name]]}
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "preprocessing_fn": fitted.ref.describe(),
        "inputs": {
            c: {"dtype": "string" if t == "string" else "float32", "shape": [], "source_type": t,
                "encoder": fitted.encoders.get(c)}
            for c, t in fitted.types.items()
        },
        "outputs": outputs,
        "constants": sorted(flat),
        "analyzers": [
            {"name": r.name, "kind": r.kind, "params": r.params, "column": r.column,
             **({"values": {k: _summary(v) for k, v in fitted.constants[r.name].items()}} if r.constants else {})}
            for r in fitted.records
        ],
        "passes": fitted.passes,
        "platforms": list(platforms),
        "jax_version": jax.__version__,
        **dict(extra or {}),
    }
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / FUNCTION_FILE).write_bytes(bytes(exported.serialize()))
    with open(tmp / CONSTANTS_FILE, "wb") as fh:
        np.savez(fh, **flat)
    (tmp / SIGNATURE_FILE).write_text(json.dumps(doc, indent=1))
    if path.exists():
        path.rmdir()
    os.replace(tmp, path)
    return path


class LoadedTransform:
    """A fitted transform loaded by :func:`load_transform` (no user code, no pickle).

    Attributes:
        path: the directory.
        input_specs: raw input column → :class:`jfx.core.TensorSpec` (``float32``, or
            ``string`` with its host ``encoder``): exactly what a model exported with
            :func:`export_with_transform` takes.
        output_specs: output name → :class:`jfx.core.TensorSpec` (dtype, shape without
            the batch axis).
        output_inputs: output name → the raw inputs it depends on.
        encoders: string input column → encoder spec (for :func:`jfx.core.encode_strings`).
        constants: the analyzers' constants, ``"<analyzer>.<name>"`` → array; the first
            argument of :meth:`serving_fn`.
        analyzers: the analyzer calls and their results, as recorded in ``transform.json``.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        try:
            doc = json.loads((path / SIGNATURE_FILE).read_text())
            blob = (path / FUNCTION_FILE).read_bytes()
        except FileNotFoundError as err:
            raise DataValidationError(f"{path} is not a TransformGraph: {err.filename} is missing") from err
        if doc.get("format") != FORMAT or doc.get("version", 0) > FORMAT_VERSION:
            raise DataValidationError(f"{path}: unsupported transform format {doc.get('format')!r} "
                                      f"v{doc.get('version')}")
        self.path = path
        self.document = doc
        self.input_specs = {n: TensorSpec(s["dtype"], tuple(s["shape"]), s.get("encoder"))
                            for n, s in doc["inputs"].items()}
        self.source_types = {n: s["source_type"] for n, s in doc["inputs"].items()}
        self.output_specs = {n: TensorSpec(s["dtype"], tuple(s["shape"])) for n, s in doc["outputs"].items()}
        self.output_inputs = {n: list(s["inputs"]) for n, s in doc["outputs"].items()}
        self.encoders = {n: s.encoder for n, s in self.input_specs.items() if s.encoder is not None}
        self.analyzers = doc["analyzers"]
        self._exported = jax.export.deserialize(bytearray(blob))
        with np.load(path / CONSTANTS_FILE, allow_pickle=False) as npz:
            self.constants = {k: jnp.asarray(npz[k]) for k in doc["constants"]}
        self._call = jax.jit(self._exported.call)

    def serving_fn(self, constants: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, jax.Array]:
        """The transform as a JAX function of (constants, encoded inputs); usable inside ``jit``.

        ``inputs`` are batch-first: ``float32`` numbers (NaN for missing) and ``int32``
        ids for string columns (see :meth:`encode`).
        """
        return self._exported.call(dict(constants), dict(inputs))

    def encode(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Raw columns (NumPy, pyarrow, lists; None = missing) → the arrays ``serving_fn`` takes.

        Raises:
            InvalidArgumentError: an input column is missing or the columns differ in length.
        """
        missing = [n for n in self.input_specs if n not in columns]
        if missing:
            raise InvalidArgumentError(f"the transform needs columns {missing}; it takes {list(self.input_specs)}")
        arrays = raw_input_arrays(columns, self.source_types, self.encoders)
        sizes = {len(a) for a in arrays.values()}
        if len(sizes) > 1:
            raise InvalidArgumentError(f"columns have different lengths: { {n: len(a) for n, a in arrays.items()} }")
        return arrays

    def apply(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Transforms raw columns; returns output name → NumPy array, batch first.

        Batches are padded to the next power of two rows (cut off the result), so only a
        few batch sizes are compiled.
        """
        arrays = self.encode(columns)
        n = len(next(iter(arrays.values())))
        if n == 0:
            return {k: np.zeros((0, *s.shape), s.dtype) for k, s in self.output_specs.items()}
        out = self._call(self.constants, pad_batch(arrays, n))
        return {k: np.asarray(v)[:n] for k, v in out.items()}

    def __repr__(self) -> str:
        return f"LoadedTransform({str(self.path)!r}, inputs={list(self.input_specs)}, outputs={list(self.output_specs)})"


def load_transform(artifact_or_path: Any) -> LoadedTransform:
    """Loads a TransformGraph (an artifact, or its directory).

    Raises:
        DataValidationError: the directory is not a TransformGraph.
    """
    return LoadedTransform(getattr(artifact_or_path, "uri", artifact_or_path))


def _features_used(model_serving_fn: Callable, model_params: Any, specs: Mapping[str, TensorSpec]) -> set[str]:
    """The features that the model's outputs depend on (traced; every feature if tracing fails)."""
    structs = {f: jax.ShapeDtypeStruct((8, *s.shape), jnp.dtype(s.dtype)) for f, s in specs.items()}
    try:
        closed = jax.make_jaxpr(model_serving_fn)(model_params, structs)
    except Exception:  # noqa: BLE001 - a model that cannot be traced here fails in export with its own error
        return set(specs)
    n_params = len(jax.tree_util.tree_leaves(model_params))
    labels: list[frozenset[str]] = [frozenset()] * n_params + [frozenset([f]) for f in sorted(specs)]
    return set().union(*_dependencies(closed, labels))


def export_with_transform(transform: LoadedTransform | Any, model_serving_fn: Callable[[Any, dict], Any],
                          model_params: Any, path: str | Path, *, features: Sequence[str] | None = None,
                          raw_inputs: Sequence[str] | None = None,
                          platforms: Sequence[str] | None = None,
                          metadata: Mapping[str, Any] | None = None) -> Path:
    """Exports ``model_serving_fn ∘ transform`` as ONE model artifact with :func:`jfx.core.export`.

    The exported function takes the raw columns (strings encoded on the host by the
    transform's encoders, recorded in the model's ``signature.json``), applies the
    transform's StableHLO with its constants, and hands the transformed features to
    ``model_serving_fn(model_params, features)``. Load it with :func:`jfx.core.load`.

    Args:
        transform: a :class:`LoadedTransform`, a TransformGraph artifact or its path.
        model_serving_fn: ``(params, transformed features dict) -> outputs``, JAX-traceable.
        model_params: the model's weights (any pytree of arrays).
        path: the model directory to create.
        features: the transformed features handed to the model (default: every output
            of the transform).
        raw_inputs: the raw columns the served model takes (default: those that the
            model's outputs depend on, through the features it reads; so a model that
            does not read the transformed label needs no raw label at serving time).
        platforms: lowering platforms, as in :func:`jfx.core.export`.
        metadata: JSON-able facts kept in the model's ``signature.json`` (as in
            :func:`jfx.core.export`), e.g. ``{"label_vocabulary": [...]}``.

    Returns:
        ``path``.

    Example:
        >>> t = load_transform(transform_graph)                               # doctest: +SKIP
        >>> export_with_transform(t, lambda p, f: {"y": f["x"] * p["w"]},     # doctest: +SKIP
        ...                       {"w": 2.0}, "/tmp/model", features=["x"])
        >>> jfx.core.load("/tmp/model")([{"x": 1.5}])                         # doctest: +SKIP
    """
    if not isinstance(transform, LoadedTransform):
        transform = load_transform(transform)
    names = list(features) if features is not None else list(transform.output_specs)
    unknown = [f for f in names if f not in transform.output_specs]
    if unknown:
        raise InvalidArgumentError(f"features {unknown} are not outputs of the transform; "
                                   f"it has {list(transform.output_specs)}")
    if raw_inputs is None:
        used = _features_used(model_serving_fn, model_params, {f: transform.output_specs[f] for f in names})
        needed = {c for f in names if f in used for c in transform.output_inputs[f]}
        raw_inputs = [c for c in transform.input_specs if c in needed] or list(transform.input_specs)[:1]
    raw_inputs = list(raw_inputs)
    bad = [c for c in raw_inputs if c not in transform.input_specs]
    if bad:
        raise InvalidArgumentError(f"raw_inputs {bad} are not inputs of the transform ({list(transform.input_specs)})")
    specs = transform.input_specs
    absent = [c for c in specs if c not in raw_inputs]

    def serving_fn(params: Any, raw: dict[str, jax.Array]) -> Any:
        batch = next(iter(raw.values())).shape[0]
        full = dict(raw)
        for c in absent:  # inputs that the chosen features do not depend on
            full[c] = jnp.zeros((batch,), jnp.dtype(specs[c].model_dtype))
        transformed = transform.serving_fn(params["transform"], full)
        return model_serving_fn(params["model"], {f: transformed[f] for f in names})

    params = {"transform": dict(transform.constants), "model": model_params}
    # a boolean column is a 0/1 float to the transform; the signature says so, so that the
    # model server takes the true/false that clients send for it
    served = {c: dataclasses.replace(specs[c], source_type="bool") if transform.source_types.get(c) == "bool"
              else specs[c] for c in raw_inputs}
    # an int column is a float to the transform and the model; the request log writes it back as
    # the training data has it, so that serving data and training data compare column for column
    ints = [c for c in raw_inputs if transform.source_types.get(c) == "int"]
    metadata = {**(metadata or {}), **({INT_INPUTS_KEY: ints} if ints else {})}
    return export(serving_fn, params, served, path, platforms=platforms, metadata=metadata or None)
