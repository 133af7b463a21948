"""The tensor core on JAX: data feeding, models, compiled training, export, serving.

Data: :class:`Dataset` (Parquet / Arrow → shuffled, batched, sharded device arrays).
Models: :class:`DNNClassifier`, :class:`DNNRegressor`, :class:`WideAndDeep` on Flax NNX
(any ``nnx.Module`` mapping a feature dict to logits works). Training: :func:`fit`
(:class:`Trainer` underneath), :func:`evaluate`. Strings: :func:`encode_strings`.
Export and serving: :func:`export`, :func:`export_model`, :func:`load`; ONNX:
:func:`export_onnx`, :func:`load_onnx`; a static page predicting in the browser: :func:`export_web`.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jfx.core._checkpoint import latest_checkpoint, list_checkpoints
    from jfx.core._distributed import Distributed, initialize_distributed
    from jfx.core._data import Batch, Dataset, batch_sharding, data_mesh, replicated_sharding
    from jfx.core._encoding import encode_strings, stable_hash, validate_encoder, vocab_size
    from jfx.core._export import LoadedModel, TensorSpec, export, export_model, load, signature_from_dataset
    from jfx.core._metrics import Metric, accuracy, auc, mae, mse
    from jfx.core._onnx import OnnxExport, OnnxModel, export_onnx, load_onnx
    from jfx.core._web_export import WebExport, export_web
    from jfx.core._models import (
        Categorical,
        DNNClassifier,
        DNNRegressor,
        FeatureInput,
        Numeric,
        WideAndDeep,
        feature_spec_from_json,
        feature_spec_to_json,
    )
    from jfx.core._request_log import RequestLogConfig, request_log_schema
    from jfx.core._serving import ModelServer, ServingConfig, serve
    from jfx.core._train import PRECISIONS, Callback, EarlyStopping, History, Trainer, evaluate, fit

# Names load on first use, so that importing one submodule (e.g. the model server,
# which needs neither Flax nor Optax) does not import them all.
_EXPORTS = {
    'latest_checkpoint': 'jfx.core._checkpoint',
    'list_checkpoints': 'jfx.core._checkpoint',
    'Distributed': 'jfx.core._distributed',
    'initialize_distributed': 'jfx.core._distributed',
    'Batch': 'jfx.core._data',
    'Dataset': 'jfx.core._data',
    'batch_sharding': 'jfx.core._data',
    'data_mesh': 'jfx.core._data',
    'replicated_sharding': 'jfx.core._data',
    'encode_strings': 'jfx.core._encoding',
    'stable_hash': 'jfx.core._encoding',
    'validate_encoder': 'jfx.core._encoding',
    'vocab_size': 'jfx.core._encoding',
    'LoadedModel': 'jfx.core._export',
    'TensorSpec': 'jfx.core._export',
    'export': 'jfx.core._export',
    'export_model': 'jfx.core._export',
    'load': 'jfx.core._export',
    'signature_from_dataset': 'jfx.core._export',
    'OnnxExport': 'jfx.core._onnx',
    'OnnxModel': 'jfx.core._onnx',
    'export_onnx': 'jfx.core._onnx',
    'load_onnx': 'jfx.core._onnx',
    'WebExport': 'jfx.core._web_export',
    'export_web': 'jfx.core._web_export',
    'Metric': 'jfx.core._metrics',
    'accuracy': 'jfx.core._metrics',
    'auc': 'jfx.core._metrics',
    'mae': 'jfx.core._metrics',
    'mse': 'jfx.core._metrics',
    'Categorical': 'jfx.core._models',
    'DNNClassifier': 'jfx.core._models',
    'DNNRegressor': 'jfx.core._models',
    'FeatureInput': 'jfx.core._models',
    'Numeric': 'jfx.core._models',
    'WideAndDeep': 'jfx.core._models',
    'feature_spec_from_json': 'jfx.core._models',
    'feature_spec_to_json': 'jfx.core._models',
    'RequestLogConfig': 'jfx.core._request_log',
    'request_log_schema': 'jfx.core._request_log',
    'ModelServer': 'jfx.core._serving',
    'ServingConfig': 'jfx.core._serving',
    'serve': 'jfx.core._serving',
    'PRECISIONS': 'jfx.core._train',
    'Callback': 'jfx.core._train',
    'EarlyStopping': 'jfx.core._train',
    'History': 'jfx.core._train',
    'Trainer': 'jfx.core._train',
    'evaluate': 'jfx.core._train',
    'fit': 'jfx.core._train',
}

__all__ = [
    "Batch",
    "Callback",
    "Categorical",
    "DNNClassifier",
    "DNNRegressor",
    "Dataset",
    "Distributed",
    "EarlyStopping",
    "FeatureInput",
    "History",
    "LoadedModel",
    "ModelServer",
    "Metric",
    "Numeric",
    "OnnxExport",
    "OnnxModel",
    "PRECISIONS",
    "RequestLogConfig",
    "TensorSpec",
    "WebExport",
    "ServingConfig",
    "Trainer",
    "WideAndDeep",
    "accuracy",
    "auc",
    "batch_sharding",
    "data_mesh",
    "encode_strings",
    "evaluate",
    "export",
    "export_model",
    "export_onnx",
    "export_web",
    "feature_spec_from_json",
    "feature_spec_to_json",
    "fit",
    "initialize_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load",
    "load_onnx",
    "mae",
    "mse",
    "replicated_sharding",
    "request_log_schema",
    "serve",
    "signature_from_dataset",
    "stable_hash",
    "validate_encoder",
    "vocab_size",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jfx.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
