"""A jfx model as an MLflow Model: the ``python_function`` flavor, a signature, an input example.

What the Trainer logs as its run's ``model`` and what the Pusher registers is an MLflow
Model folder::

    model/MLmodel                       flavors (python_function), signature, input example
    model/python_model.py               the code that builds a :class:`JfxPythonModel`
                                        (MLflow's models from code: no pickle)
    model/artifacts/jfx_model/          the jfx model artifact itself (signature.json,
                                        model.stablehlo, weights.npz)
    model/input_example.json, serving_input_example.json, requirements.txt, ...

so ``mlflow.pyfunc.load_model("models:/penguin@champion").predict(df)`` runs it with
``jfx.core.load`` (jfx must be installed where it is loaded, as ``requirements.txt``
says): a pandas DataFrame of raw columns (strings included, ``None``/NaN for missing
values) in, a DataFrame with one column per model output out (a vector output, such as
``probabilities``, as one list per row): the rows ``jfx serve`` answers with.

The signature is read from the model's ``signature.json`` (no JAX in the process that
logs it): strings as ``string``, floats as ``double`` and integers as ``long`` (what pandas
holds; the model casts), vector features as arrays. The input example is two rows made
from the signature (a vocabulary's first values for strings, zeros for numbers).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, save_model

__all__ = ["JfxPythonModel", "input_example", "log_jfx_model", "model_signature", "save_jfx_model"]

ARTIFACT = "jfx_model"
_SIGNATURE = "signature.json"


def _column_type(dtype: str) -> str:
    if dtype == "string":
        return "string"
    if dtype == "bool":
        return "boolean"
    if dtype.startswith(("int", "uint")):
        return "long"
    return "double"


def model_signature(doc: Mapping[str, Any]) -> Any:
    """The MLflow ``ModelSignature`` of a jfx ``signature.json`` document."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs: list[Any] = []
    for name, spec in doc["inputs"].items():
        kind = _column_type(spec.get("source_type") or spec["dtype"])
        nullable = spec["dtype"] == "string" or kind == "double" or spec.get("source_type") == "bool"
        if spec["shape"]:
            inputs.append(ColSpec(Array(kind), name, required=not nullable))
        else:
            inputs.append(ColSpec(kind, name, required=not nullable))
    outputs: list[Any] = []
    for name, spec in doc["outputs"].items():
        kind = _column_type(spec["dtype"])
        outputs.append(ColSpec(Array(kind) if spec["shape"] else kind, name))
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _example_value(spec: Mapping[str, Any], row: int) -> Any:
    if spec["dtype"] == "string":
        vocab = (spec.get("encoder") or {}).get("vocabulary") or ["a", "b"]
        value: Any = vocab[row % len(vocab)]
    elif spec.get("source_type") == "bool" or spec["dtype"] == "bool":
        value = bool(row % 2)
    elif spec["dtype"].startswith(("int", "uint")):
        value = row
    else:
        value = float(row)
    if spec["shape"]:
        return [value] * int(np.prod(spec["shape"]))
    return value


def input_example(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Two rows of valid raw input, as a pandas DataFrame."""
    return pd.DataFrame({name: [_example_value(spec, i) for i in range(2)] for name, spec in doc["inputs"].items()})


class JfxPythonModel(PythonModel):
    """``jfx.core.load`` behind MLflow's ``python_function`` interface."""

    # the signature checks the input; MLflow's checks from type hints would read the
    # hints as a second schema (and warn when there are none)
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from jfx.core import load

        self._model = load(context.artifacts[ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """Raw columns (a DataFrame, or a dict of columns / list of rows) → one column per output."""
        model = getattr(self, "_model", None)
        if model is None:  # predict without load_context (e.g. called on the object directly)
            self.load_context(context)
            model = self._model
        if isinstance(model_input, pd.DataFrame):
            columns: Any = {}
            for name, spec in model.inputs.items():
                if name not in model_input.columns:
                    continue  # the model's input check names it
                values = model_input[name].tolist()
                if spec.dtype == "string":  # pandas' missing value in a string column is NaN
                    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
                columns[name] = values
        else:
            columns = model_input
        outputs = model(columns)
        return pd.DataFrame({k: list(v) if v.ndim > 1 else v for k, v in outputs.items()})


def save_jfx_model(model_dir: str | Path, path: str | Path) -> Path:
    """Writes the jfx model in ``model_dir`` as an MLflow Model folder at ``path``."""
    from jfx._version import __version__

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    model_dir = Path(model_dir)
    doc = json.loads((model_dir / _SIGNATURE).read_text())
    code = Path(__file__).with_name("_mlflow_pyfunc_code.py")
    with tempfile.TemporaryDirectory(prefix="jfx-mlflow-stage-") as stage:
        # MLflow names an artifact's folder after its source: artifacts/jfx_model/ whatever the source
        source = Path(stage) / ARTIFACT
        shutil.copytree(model_dir, source)  # (MLflow refuses a link pointing outside)
        save_model(
            str(path), python_model=str(code), artifacts={ARTIFACT: str(source)},
            signature=model_signature(doc), input_example=input_example(doc),
            # named, not inferred: inferring loads the model in a subprocess
            pip_requirements=[f"jfx=={__version__}"],
        )
    return Path(path)


def log_jfx_model(client: Any, run_id: str, model_dir: str | Path, artifact_path: str = "model") -> None:
    """Logs the jfx model in ``model_dir`` to the run as an MLflow Model under ``artifact_path``."""
    with tempfile.TemporaryDirectory(prefix="jfx-mlflow-model-") as tmp:
        folder = save_jfx_model(model_dir, Path(tmp) / "model")
        client.log_artifacts(run_id, str(folder), artifact_path)
