"""The tensor core on JAX: data feeding, models, compiled training, export, serving.

Data: :class:`Dataset` (Parquet / Arrow → shuffled, batched, sharded device arrays).
Models: :class:`DNNClassifier`, :class:`DNNRegressor`, :class:`WideAndDeep` on Flax NNX
(any ``nnx.Module`` mapping a feature dict to logits works). Training: :func:`fit`
(:class:`Trainer` underneath), :func:`evaluate`. Strings: :func:`encode_strings`.
Export and serving: :func:`export`, :func:`export_model`, :func:`load`.
"""

from jfx.core._checkpoint import latest_checkpoint, list_checkpoints
from jfx.core._data import Batch, Dataset, batch_sharding, data_mesh, replicated_sharding
from jfx.core._encoding import encode_strings, stable_hash, validate_encoder, vocab_size
from jfx.core._export import LoadedModel, TensorSpec, export, export_model, load, signature_from_dataset
from jfx.core._metrics import Metric, accuracy, auc, mae, mse
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
from jfx.core._serving import ModelServer, ServingConfig, serve
from jfx.core._train import PRECISIONS, Callback, EarlyStopping, History, Trainer, evaluate, fit

__all__ = [
    "Batch",
    "Callback",
    "Categorical",
    "DNNClassifier",
    "DNNRegressor",
    "Dataset",
    "EarlyStopping",
    "FeatureInput",
    "History",
    "LoadedModel",
    "ModelServer",
    "Metric",
    "Numeric",
    "PRECISIONS",
    "TensorSpec",
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
    "feature_spec_from_json",
    "feature_spec_to_json",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "load",
    "mae",
    "mse",
    "replicated_sharding",
    "serve",
    "signature_from_dataset",
    "stable_hash",
    "validate_encoder",
    "vocab_size",
]
