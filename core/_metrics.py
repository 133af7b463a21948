"""Streaming metrics and losses as pure function pairs (init / update / merge / finish).

A metric's state is a small pytree of arrays, so ``update`` runs inside the jitted
train and eval steps (no host round trip per step) and ``finish`` runs once per epoch
on the host. AUC is streamed through per-class histograms of predicted
probabilities (``bins`` equal-width buckets on [0, 1]); pairs in the same bucket
count one half, so the error is bounded by the mass sharing a bucket (small with the
default 1,000 buckets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfx.errors import InvalidArgumentError

__all__ = ["Metric", "accuracy", "auc", "mse", "mae", "get_metric", "get_loss", "LOSSES", "auc_from_histograms"]


class Metric(NamedTuple):
    """A streaming metric: ``init() -> state``, ``update(state, logits, labels, weights) -> state``,
    ``merge(a, b) -> state``, ``finish(state) -> float``.

    ``higher_is_better`` tells early stopping which way is better.

    Example:
        >>> m = accuracy()
        >>> s = m.update(m.init(), jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([0, 0]), jnp.ones(2))
        >>> m.finish(s)
        0.5
    """

    name: str
    init: Callable[[], Any]
    update: Callable[[Any, jax.Array, jax.Array, jax.Array], Any]
    merge: Callable[[Any, Any], Any]
    finish: Callable[[Any], float]
    higher_is_better: bool


def _add(a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: x + y, a, b)


def _ratio(state: Any) -> float:
    total, weight = (float(x) for x in state)
    return total / weight if weight > 0 else float("nan")


def _mean_metric(name: str, per_row: Callable[[jax.Array, jax.Array], jax.Array], higher: bool) -> Metric:
    def init() -> Any:
        return (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

    def update(state: Any, logits: jax.Array, labels: jax.Array, weights: jax.Array) -> Any:
        values = per_row(logits.astype(jnp.float32), labels)
        values = values.reshape(values.shape[0], -1).mean(axis=-1)
        return (state[0] + jnp.sum(values * weights), state[1] + jnp.sum(weights))

    return Metric(name, init, update, _add, _ratio, higher)


def _is_binary_logits(logits: jax.Array) -> bool:
    return logits.ndim == 1 or logits.shape[-1] == 1


def _correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    if _is_binary_logits(logits):
        pred = (logits.reshape(-1) > 0).astype(jnp.int32)
    else:
        pred = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return (pred == labels.reshape(-1).astype(jnp.int32)).astype(jnp.float32)


def _regression_pred(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return logits.reshape(labels.shape).astype(jnp.float32)


def accuracy() -> Metric:
    """Fraction of rows whose argmax logit (or ``logit > 0`` for one logit) equals the label."""
    return _mean_metric("accuracy", _correct, True)


def mse() -> Metric:
    """Mean squared error of regression predictions."""
    return _mean_metric("mse", lambda p, y: (_regression_pred(p, y) - y) ** 2, False)


def mae() -> Metric:
    """Mean absolute error of regression predictions."""
    return _mean_metric("mae", lambda p, y: jnp.abs(_regression_pred(p, y) - y), False)


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from positive/negative weight histograms over score buckets (last axis),
    averaged over the leading (class) axis where both classes occur."""
    pos = np.asarray(pos, np.float64).reshape(-1, np.shape(pos)[-1])
    neg = np.asarray(neg, np.float64).reshape(-1, np.shape(neg)[-1])
    values = []
    for p, n in zip(pos, neg, strict=True):
        tp, tn = p.sum(), n.sum()
        if tp <= 0 or tn <= 0:
            continue
        above = np.cumsum(p[::-1])[::-1] - p  # positive weight in strictly higher buckets
        values.append(float(np.sum(n * (above + 0.5 * p)) / (tp * tn)))
    return float(np.mean(values)) if values else float("nan")


def auc(bins: int = 1000) -> Metric:
    """ROC AUC (binary; one-vs-rest macro average for more classes), streamed by histogram."""

    def scores(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits = logits.astype(jnp.float32)
        labels = labels.reshape(-1).astype(jnp.int32)
        if _is_binary_logits(logits):
            return jax.nn.sigmoid(logits.reshape(-1, 1)), (labels == 1)[:, None]
        probs = jax.nn.softmax(logits, axis=-1)
        if logits.shape[-1] == 2:
            return probs[:, 1:], (labels == 1)[:, None]
        return probs, jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.bool_)

    def init() -> Any:
        return None  # shaped lazily: the number of classes is known at the first update

    def update(state: Any, logits: jax.Array, labels: jax.Array, weights: jax.Array) -> Any:
        s, positive = scores(logits, labels)
        k = s.shape[-1]
        if state is None:
            state = (jnp.zeros((k, bins), jnp.float32), jnp.zeros((k, bins), jnp.float32))
        idx = jnp.clip((s * bins).astype(jnp.int32), 0, bins - 1)
        cls = jnp.broadcast_to(jnp.arange(k)[None, :], idx.shape)
        w = jnp.broadcast_to(weights[:, None], idx.shape)
        pos = state[0].at[cls, idx].add(jnp.where(positive, w, 0.0))
        neg = state[1].at[cls, idx].add(jnp.where(positive, 0.0, w))
        return (pos, neg)

    def merge(a: Any, b: Any) -> Any:
        return b if a is None else a if b is None else _add(a, b)

    def finish(state: Any) -> float:
        return float("nan") if state is None else auc_from_histograms(np.asarray(state[0]), np.asarray(state[1]))

    return Metric("auc", init, update, merge, finish, True)


_METRICS: dict[str, Callable[[], Metric]] = {"accuracy": accuracy, "auc": auc, "mse": mse, "mae": mae}


def get_metric(metric: str | Metric) -> Metric:
    """A metric by name (accuracy, auc, mse, mae) or a :class:`Metric` as is."""
    if isinstance(metric, Metric):
        return metric
    if metric not in _METRICS:
        raise InvalidArgumentError(f"unknown metric {metric!r}; expected one of {sorted(_METRICS)} or a Metric")
    return _METRICS[metric]()


# -- losses: per-row values; the engine takes the weighted mean -----------------------

def _sparse_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return _softmax_ce(logits, labels.astype(jnp.int32))


@jax.custom_vjp
def _softmax_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``optax.softmax_cross_entropy_with_integer_labels``, with a backward pass that
    reuses the forward's softmax: the train step needs the loss's value too (for the
    loss metric), and differentiating logsumexp recomputed it, ~5 more kernels for XLA
    to compile (~0.1 s of the first step's CPU for a small MLP)."""
    return _softmax_ce_fwd(logits, labels)[0]


def _softmax_ce_fwd(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    top = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    exp = jnp.exp(logits - top)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return (jnp.log(total) + top)[..., 0] - picked, (exp / total, labels)


def _softmax_ce_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, None]:
    probs, labels = res
    onehot = (jnp.arange(probs.shape[-1]) == labels[..., None]).astype(probs.dtype)
    return (probs - onehot) * g[..., None], None


_softmax_ce.defvjp(_softmax_ce_fwd, _softmax_ce_bwd)


def _binary_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.sigmoid_binary_cross_entropy(logits.reshape(labels.shape), labels.astype(logits.dtype))


def _mse(pred: jax.Array, labels: jax.Array) -> jax.Array:
    return (pred.reshape(labels.shape) - labels) ** 2


def _mae(pred: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.abs(pred.reshape(labels.shape) - labels)


def _huber(pred: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.huber_loss(pred.reshape(labels.shape), labels)


LOSSES: dict[str, tuple[Callable[[jax.Array, jax.Array], jax.Array], Sequence[str]]] = {
    "sparse_categorical_crossentropy": (_sparse_ce, ("accuracy", "auc")),
    "binary_crossentropy": (_binary_ce, ("accuracy", "auc")),
    "mse": (_mse, ("mse", "mae")),
    "mae": (_mae, ("mse", "mae")),
    "huber": (_huber, ("mse", "mae")),
}


def get_loss(loss: str | Callable) -> tuple[Callable[[jax.Array, jax.Array], jax.Array], Sequence[str]]:
    """(per-row loss function, default metric names) for a loss name or callable."""
    if callable(loss):
        return loss, ()
    if loss not in LOSSES:
        raise InvalidArgumentError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)} or a callable "
                                   "(logits, labels) -> per-row losses")
    return LOSSES[loss]
