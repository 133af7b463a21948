"""Canned tabular models on Flax NNX: DNNClassifier, DNNRegressor, WideAndDeep.

A model takes a *feature spec*, a mapping from feature name to :class:`Numeric` or
:class:`Categorical`, and is called with a dict of arrays (one per feature, batch
first) to return logits (classifiers) or predictions (regressors). The training
engine accepts any ``flax.nnx.Module`` whose ``__call__(features: dict)`` returns
logits, so these are conveniences, not requirements.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jfx.errors import InvalidArgumentError

__all__ = [
    "Numeric",
    "Categorical",
    "FeatureSpec",
    "feature_spec_to_json",
    "feature_spec_from_json",
    "FeatureInput",
    "DNNClassifier",
    "DNNRegressor",
    "WideAndDeep",
]


@dataclass(frozen=True)
class Numeric:
    """A numeric feature: a scalar per row (``dim=1``, array shape ``(batch,)``) or a
    vector of ``dim`` values per row (array shape ``(batch, dim)``)."""

    dim: int = 1


@dataclass(frozen=True)
class Categorical:
    """A categorical feature given as integer ids in ``[0, vocab_size)``.

    ``embedding_dim=None`` one-hot encodes it; an int learns an embedding of that
    width. String features are turned into ids on the host by
    :func:`jfx.core.encode_strings`; :func:`jfx.core.vocab_size` gives ``vocab_size``.
    """

    vocab_size: int
    embedding_dim: int | None = None


FeatureSpec = Mapping[str, "Numeric | Categorical"]

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
}


def feature_spec_to_json(spec: FeatureSpec) -> dict[str, dict[str, Any]]:
    """A JSON-able form of a feature spec (for signatures and run metadata)."""
    out: dict[str, dict[str, Any]] = {}
    for name, f in spec.items():
        if isinstance(f, Numeric):
            out[name] = {"kind": "numeric", "dim": f.dim}
        else:
            out[name] = {"kind": "categorical", "vocab_size": f.vocab_size, "embedding_dim": f.embedding_dim}
    return out


def feature_spec_from_json(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Numeric | Categorical]:
    """The inverse of :func:`feature_spec_to_json`."""
    out: dict[str, Numeric | Categorical] = {}
    for name, f in data.items():
        if f.get("kind") == "numeric":
            out[name] = Numeric(int(f.get("dim", 1)))
        elif f.get("kind") == "categorical":
            out[name] = Categorical(int(f["vocab_size"]), f.get("embedding_dim"))
        else:
            raise InvalidArgumentError(f"feature {name!r}: unknown kind {f.get('kind')!r}")
    return out


def _check_spec(spec: FeatureSpec) -> dict[str, Numeric | Categorical]:
    if not spec:
        raise InvalidArgumentError("the feature spec is empty; give e.g. {'age': Numeric(), 'city': Categorical(10)}")
    checked: dict[str, Numeric | Categorical] = {}
    for name, f in spec.items():
        if isinstance(f, Numeric):
            if f.dim < 1:
                raise InvalidArgumentError(f"feature {name!r}: Numeric dim must be >= 1, got {f.dim}")
        elif isinstance(f, Categorical):
            if f.vocab_size < 1 or (f.embedding_dim is not None and f.embedding_dim < 1):
                raise InvalidArgumentError(f"feature {name!r}: bad Categorical {f!r}")
        else:
            raise InvalidArgumentError(
                f"feature {name!r}: expected Numeric(...) or Categorical(...), got {type(f).__name__}"
            )
        checked[str(name)] = f
    return checked


class FeatureInput(nnx.Module):
    """Turns a dict of feature arrays into one dense ``(batch, width)`` matrix.

    Numeric features are concatenated as they are; categorical ids are one-hot
    encoded or embedded. Feature order is the sorted feature names, so the layout
    does not depend on dict order.

    Example:
        >>> layer = FeatureInput({"x": Numeric(2), "c": Categorical(5, 3)}, rngs=nnx.Rngs(0))
        >>> layer({"x": jnp.ones((4, 2)), "c": jnp.array([0, 1, 2, 4])}).shape
        (4, 5)
    """

    def __init__(self, feature_spec: FeatureSpec, *, dtype: Any = None, param_dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        self.spec = _check_spec(feature_spec)
        self.names = tuple(sorted(self.spec))
        self.dtype = dtype
        self.embeddings = nnx.Dict({
            name: nnx.Embed(f.vocab_size, f.embedding_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            for name, f in self.spec.items()
            if isinstance(f, Categorical) and f.embedding_dim is not None
        })
        width = 0
        for f in self.spec.values():
            if isinstance(f, Numeric):
                width += f.dim
            else:
                width += f.embedding_dim if f.embedding_dim is not None else f.vocab_size
        self.width = width

    def __call__(self, features: Mapping[str, jax.Array]) -> jax.Array:
        dtype = self.dtype or jnp.float32
        parts = []
        for name in self.names:
            if name not in features:
                raise InvalidArgumentError(f"feature {name!r} is missing from the model input; got {sorted(features)}")
            f = self.spec[name]
            x = jnp.asarray(features[name])
            if isinstance(f, Numeric):
                x = x.astype(dtype)
                parts.append(x.reshape(x.shape[0], f.dim))
            elif f.embedding_dim is not None:
                parts.append(self.embeddings[name](x.astype(jnp.int32).reshape(-1)))
            else:
                parts.append(jax.nn.one_hot(x.reshape(-1), f.vocab_size, dtype=dtype))
        return jnp.concatenate(parts, axis=-1)


class _MLP(nnx.Module):
    def __init__(self, in_features: int, hidden_units: Sequence[int], dropout: float, activation: str,
                 dtype: Any, param_dtype: Any, *, rngs: nnx.Rngs):
        if activation not in _ACTIVATIONS:
            raise InvalidArgumentError(f"activation {activation!r} is not one of {sorted(_ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise InvalidArgumentError(f"dropout must be in [0, 1), got {dropout}")
        self.activation = activation
        sizes = [in_features, *hidden_units]
        self.layers = nnx.List([
            nnx.Linear(a, b, dtype=dtype, param_dtype=param_dtype, rngs=rngs) for a, b in itertools.pairwise(sizes)
        ])
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.out_features = sizes[-1]

    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for layer in self.layers:
            x = act(layer(x))
            if self.dropout is not None:
                x = self.dropout(x)
        return x


class DNNClassifier(nnx.Module):
    """A feed-forward classifier over tabular features; returns ``(batch, n_classes)`` logits.

    Train it with ``loss="sparse_categorical_crossentropy"`` (integer labels).

    Args:
        feature_spec: feature name → :class:`Numeric` or :class:`Categorical`.
        hidden_units: widths of the hidden layers.
        n_classes: number of classes (2 for binary; logits are still ``(batch, 2)``).
        dropout: dropout rate after each hidden layer (0 disables it).
        activation: one of relu, gelu, tanh, silu, elu.
        dtype: compute dtype (None: inferred, float32); param_dtype: parameter dtype.
        rngs: ``nnx.Rngs`` for initialisation (and a ``dropout`` stream when dropout > 0).

    Example:
        >>> model = DNNClassifier({"x": Numeric(3)}, hidden_units=(8,), n_classes=3, rngs=nnx.Rngs(0))
        >>> model({"x": jnp.zeros((5, 3))}).shape
        (5, 3)
    """

    def __init__(self, feature_spec: FeatureSpec, hidden_units: Sequence[int] = (64, 32), n_classes: int = 2,
                 dropout: float = 0.0, activation: str = "relu", dtype: Any = None,
                 param_dtype: Any = jnp.float32, *, rngs: nnx.Rngs):
        if n_classes < 2:
            raise InvalidArgumentError(f"n_classes must be >= 2, got {n_classes}")
        self.n_classes = n_classes
        self.inputs = FeatureInput(feature_spec, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.body = _MLP(self.inputs.width, hidden_units, dropout, activation, dtype, param_dtype, rngs=rngs)
        self.head = nnx.Linear(self.body.out_features, n_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, features: Mapping[str, jax.Array]) -> jax.Array:
        return self.head(self.body(self.inputs(features)))


class DNNRegressor(nnx.Module):
    """A feed-forward regressor; returns ``(batch,)`` predictions (``label_dim=1``) or
    ``(batch, label_dim)``. Train it with ``loss="mse"`` (or ``"mae"``).

    Args are those of :class:`DNNClassifier`, with ``label_dim`` instead of ``n_classes``.

    Example:
        >>> model = DNNRegressor({"x": Numeric()}, hidden_units=(4,), rngs=nnx.Rngs(0))
        >>> model({"x": jnp.zeros((5,))}).shape
        (5,)
    """

    def __init__(self, feature_spec: FeatureSpec, hidden_units: Sequence[int] = (64, 32), label_dim: int = 1,
                 dropout: float = 0.0, activation: str = "relu", dtype: Any = None,
                 param_dtype: Any = jnp.float32, *, rngs: nnx.Rngs):
        self.label_dim = label_dim
        self.inputs = FeatureInput(feature_spec, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.body = _MLP(self.inputs.width, hidden_units, dropout, activation, dtype, param_dtype, rngs=rngs)
        self.head = nnx.Linear(self.body.out_features, label_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, features: Mapping[str, jax.Array]) -> jax.Array:
        out = self.head(self.body(self.inputs(features)))
        return out[:, 0] if self.label_dim == 1 else out


class WideAndDeep(nnx.Module):
    """Wide (linear over the features, categorical ones one-hot) plus deep (an MLP)
    model; the two logits are summed.

    ``n_classes=None`` makes it a regressor returning ``(batch,)``; an int makes it a
    classifier returning ``(batch, n_classes)`` logits.

    Args:
        wide_features: spec of the features seen by the linear part.
        deep_features: spec of the features seen by the MLP (may overlap).
        hidden_units, dropout, activation, dtype, param_dtype: as in :class:`DNNClassifier`.
        n_classes: number of classes, or None for regression.
        rngs: ``nnx.Rngs``.

    Example:
        >>> m = WideAndDeep({"c": Categorical(4)}, {"x": Numeric()}, hidden_units=(4,), n_classes=2,
        ...                 rngs=nnx.Rngs(0))
        >>> m({"c": jnp.array([0, 3]), "x": jnp.ones((2,))}).shape
        (2, 2)
    """

    def __init__(self, wide_features: FeatureSpec, deep_features: FeatureSpec,
                 hidden_units: Sequence[int] = (64, 32), n_classes: int | None = 2, dropout: float = 0.0,
                 activation: str = "relu", dtype: Any = None, param_dtype: Any = jnp.float32, *,
                 rngs: nnx.Rngs):
        wide = {n: (Categorical(f.vocab_size) if isinstance(f, Categorical) else f)
                for n, f in _check_spec(wide_features).items()}
        self.n_classes = n_classes
        out = 1 if n_classes is None else n_classes
        self.wide_inputs = FeatureInput(wide, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.wide = nnx.Linear(self.wide_inputs.width, out, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.deep_inputs = FeatureInput(deep_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.body = _MLP(self.deep_inputs.width, hidden_units, dropout, activation, dtype, param_dtype, rngs=rngs)
        self.head = nnx.Linear(self.body.out_features, out, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, features: Mapping[str, jax.Array]) -> jax.Array:
        out = self.wide(self.wide_inputs(features)) + self.head(self.body(self.deep_inputs(features)))
        return out[:, 0] if self.n_classes is None else out
