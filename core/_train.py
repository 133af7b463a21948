"""The training engine: one jit-compiled, buffer-donating train step, data parallel.

:class:`Trainer` splits an NNX module into its graph definition and state, keeps the
state (parameters, optimiser state, other variables such as RNG counters, and the
running metric accumulators) as one flat tuple of arrays replicated over the local
devices, and compiles one step function with ``jax.jit`` that takes that tuple
(donated) and a batch sharded along the batch axis of the ``"data"`` mesh. XLA
inserts the gradient all-reduce, so the same code runs on 1 or N devices.
:func:`fit` drives it over a :class:`~jfx.core.Dataset` with evaluation, early
stopping, checkpoints and resume.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jfx.core._checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from jfx.core._data import Dataset, _Layout, batch_sharding, data_mesh, replicated_sharding
from jfx.core._metrics import Metric, get_loss, get_metric
from jfx.errors import InvalidArgumentError

__all__ = ["Trainer", "fit", "evaluate", "History", "Callback", "EarlyStopping", "PRECISIONS"]

PRECISIONS = ("fp32", "bf16")


class Callback:
    """Hooks called by :func:`fit`; override the ones you need.

    ``on_step_end`` gets the global step only (reading a loss every step would force
    a device sync); epoch logs hold every metric of the epoch.
    """

    def on_train_begin(self, step: int) -> None:
        """Called once, with the step training starts from (non-zero when resumed)."""

    def on_step_end(self, step: int) -> None:
        """Called after each optimiser step."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch (and its evaluation)."""

    def on_train_end(self, history: History) -> None:
        """Called once when training ends normally."""


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: a history key, e.g. ``"val_loss"`` or ``"val_auc"``.
        patience: epochs without improvement before stopping.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy and auc, else min).
        min_delta: the smallest change that counts as an improvement.
        restore_best: put the weights of the best epoch back into the model at the end.
    """

    monitor: str = "val_loss"
    patience: int = 3
    mode: str = "auto"
    min_delta: float = 0.0
    restore_best: bool = True

    def higher_is_better(self) -> bool:
        if self.mode == "auto":
            return any(s in self.monitor for s in ("accuracy", "auc"))
        if self.mode not in ("min", "max"):
            raise InvalidArgumentError(f"EarlyStopping mode must be min, max or auto, got {self.mode!r}")
        return self.mode == "max"


@dataclass
class History:
    """What :func:`fit` did.

    Attributes:
        history: metric name → one value per epoch (``loss``, ``accuracy``, ...,
            ``val_loss``, ``val_accuracy``, ...).
        epochs: the epoch numbers recorded (0-based).
        step: the global step at the end.
        stopped_early: whether early stopping ended training.
        best_epoch, best: the best epoch and value of the early-stopping monitor.
        resumed_from: the step of the checkpoint training resumed from, or None.
        weights_epoch: the epoch whose weights the model holds when :func:`fit`
            returns: ``best_epoch`` when early stopping restored the best weights,
            else the last epoch (None before any epoch ended).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)
    step: int = 0
    stopped_early: bool = False
    best_epoch: int | None = None
    best: float | None = None
    resumed_from: int | None = None
    weights_epoch: int | None = None

    def final_metrics(self) -> dict[str, float]:
        """The metrics of the weights the model holds: those of :attr:`weights_epoch`.

        Each is named for the data it was measured on: eval metrics keep their
        ``val_`` prefix; train metrics (running means over that epoch's steps) get
        ``train_``.

        Example:
            >>> History({"loss": [0.5, 0.4], "val_loss": [0.3, 0.35]}, [0, 1], best_epoch=0,
            ...         weights_epoch=0).final_metrics()
            {'train_loss': 0.5, 'val_loss': 0.3}
        """
        if self.weights_epoch is None or self.weights_epoch not in self.epochs:
            return {}
        i = self.epochs.index(self.weights_epoch)
        return {(k if k.startswith("val_") else f"train_{k}"): v[i] for k, v in self.history.items() if i < len(v)}

    def to_json(self) -> dict[str, Any]:
        return {"history": self.history, "epochs": self.epochs, "step": self.step,
                "stopped_early": self.stopped_early, "best_epoch": self.best_epoch, "best": self.best,
                "resumed_from": self.resumed_from, "weights_epoch": self.weights_epoch}


def _cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _zeros_state(metric: Metric, logits: Any, labels: Any, weights: Any) -> Any:
    shapes = jax.eval_shape(lambda lg, lb, w: metric.update(metric.init(), lg, lb, w), logits, labels, weights)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


class Trainer:
    """The compiled train and eval steps for one model, optimiser, loss and data layout.

    Most users call :func:`fit`; a ``Trainer`` is for driving steps by hand.

    Args:
        model: any ``nnx.Module`` with ``__call__(features: dict) -> logits``.
        optimizer: an ``optax.GradientTransformation``.
        loss: a loss name (``sparse_categorical_crossentropy``, ``binary_crossentropy``,
            ``mse``, ``mae``, ``huber``) or ``(logits, labels) -> per-row loss``.
        layout: the data layout (``dataset.layout``).
        metrics: metric names or :class:`~jfx.core.Metric` values (None: the loss's
            defaults: accuracy and auc for classification, mse and mae for regression).
        precision: ``"fp32"`` or ``"bf16"`` (compute in bfloat16; parameters, optimiser
            state and the loss stay float32).
        grad_accum_steps: micro-batches per optimiser step; gradients are summed
            weighted over all of them, so the update equals one on the larger batch.
        train_metrics: metrics accumulated by the train step (default: ``metrics``
            without auc).
    """

    def __init__(self, model: nnx.Module, optimizer: optax.GradientTransformation, loss: str | Callable,
                 layout: _Layout, *, metrics: Sequence[str | Metric] | None = None,
                 train_metrics: Sequence[str | Metric] | None = None, precision: str = "fp32",
                 grad_accum_steps: int = 1):
        if precision not in PRECISIONS:
            raise InvalidArgumentError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if grad_accum_steps < 1:
            raise InvalidArgumentError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        if layout.label is None:
            raise InvalidArgumentError("the training data has no label; give label= when building the Dataset")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn, default_metrics = get_loss(loss)
        self.metrics = [get_metric(m) for m in (default_metrics if metrics is None else metrics)]
        if train_metrics is None:
            # The streaming AUC's histogram scatter costs ~15% of a small MLP's step on CPU,
            # so by default it is computed on eval data only.
            self.train_metrics = [m for m in self.metrics if m.name != "auc"]
        else:
            self.train_metrics = [get_metric(m) for m in train_metrics]
        for group in (self.metrics, self.train_metrics):
            names = [m.name for m in group]
            if len(set(names)) != len(names) or "loss" in names:
                raise InvalidArgumentError(f"metric names must be unique and not 'loss', got {names}")
        self.layout = layout
        self.compute_dtype = jnp.bfloat16 if precision == "bf16" else None
        self.accum = grad_accum_steps
        self.mesh = data_mesh()
        self.replicated = replicated_sharding(self.mesh)
        self.trace_count = 0

        model.train()
        self.graphdef: nnx.GraphDef
        self.graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]  # flax types the result as variadic
        model.eval()
        self.eval_graphdef = nnx.split(model, nnx.Param, ...)[0]
        model.train()
        opt_state = optimizer.init(params)
        self._state_tree = jax.tree.structure((params, opt_state, rest))
        self.state_paths = [jax.tree_util.keystr(p) for p, _ in
                            jax.tree_util.tree_flatten_with_path((params, opt_state, rest))[0]]
        self._n_params = len(jax.tree.leaves(params))
        self._n_state = len(jax.tree.leaves((params, opt_state, rest)))
        # Own copies: the step donates its inputs and must not invalidate the model's arrays.
        state_leaves = [jnp.array(x, copy=True) for x in jax.tree.leaves((params, opt_state, rest))]
        self.state = tuple(jax.device_put(state_leaves, self.replicated))
        self._metric_tree = None
        self._train_metric_tree = None
        # Batch arguments may be device arrays or host NumPy arrays (Dataset.feed_batches):
        # in_shardings has the jitted call shard host arrays over the mesh itself.
        rep = self.replicated
        train_batch = batch_sharding(self.mesh, leading=1 if grad_accum_steps > 1 else 0)
        eval_batch = batch_sharding(self.mesh)
        self._step = jax.jit(self._train_step, donate_argnums=(0,), out_shardings=rep,
                             in_shardings=(rep, *[train_batch] * 4))
        self._eval = jax.jit(self._eval_step, donate_argnums=(0,), out_shardings=rep,
                             in_shardings=(rep, rep, *[eval_batch] * 4))

    # -- pure functions (traced) ----------------------------------------------------
    def _forward(self, graphdef: Any, params: Any, rest: Any, floats: Any, ints: Any) -> tuple[Any, Any]:
        features = self.layout.unpack(floats, ints)
        if self.compute_dtype is not None:
            params = _cast_floats(params, self.compute_dtype)
            features = _cast_floats(features, self.compute_dtype)
        module = nnx.merge(graphdef, params, rest, copy=True)
        logits = module(features)
        new_rest = nnx.split(module, nnx.Param, ...)[2]  # type: ignore[misc]  # flax types the result as variadic
        return jnp.asarray(logits).astype(jnp.float32), new_rest

    def _weighted_loss(self, logits: Any, label: Any, weight: Any) -> Any:
        per_row = self.loss_fn(logits, label)
        per_row = per_row.reshape(per_row.shape[0], -1).mean(axis=-1).astype(jnp.float32)
        return jnp.sum(per_row * weight)

    def _update_metrics(self, mstate: Any, logits: Any, label: Any, weight: Any, loss_sum: Any,
                        metrics: Sequence[Metric]) -> Any:
        loss_acc = (mstate[0][0] + loss_sum, mstate[0][1] + jnp.sum(weight))
        return (loss_acc, *[m.update(s, logits, label, weight) for m, s in zip(metrics, mstate[1:], strict=True)])

    def _train_step(self, carry: tuple, floats: Any, ints: Any, label: Any, weight: Any) -> tuple:
        self.trace_count += 1
        state_leaves, metric_leaves = carry[: self._n_state], carry[self._n_state:]
        params, opt_state, rest = jax.tree.unflatten(self._state_tree, state_leaves)
        mstate = jax.tree.unflatten(self._train_metric_tree, metric_leaves)

        def loss_of(p: Any, rest: Any, floats: Any, ints: Any, label: Any, weight: Any) -> Any:
            logits, new_rest = self._forward(self.graphdef, p, rest, floats, ints)
            total = self._weighted_loss(logits, label, weight)
            return total, (logits, new_rest, total)

        grad_fn = jax.grad(loss_of, has_aux=True)
        if self.accum == 1:
            grads, (logits, rest, total) = grad_fn(params, rest, floats, ints, label, weight)
            mstate = self._update_metrics(mstate, logits, label, weight, total, self.train_metrics)
            weight_sum = jnp.sum(weight)
        else:
            def micro(c: tuple, xs: tuple) -> tuple:
                g_sum, rest, mstate = c
                f, i, y, w = xs
                g, (logits, rest, total) = grad_fn(params, rest, f, i, y, w)
                g_sum = jax.tree.map(jnp.add, g_sum, g)
                return (g_sum, rest, self._update_metrics(mstate, logits, y, w, total, self.train_metrics)), None

            zeros = jax.tree.map(jnp.zeros_like, params)
            (grads, rest, mstate), _ = jax.lax.scan(micro, (zeros, rest, mstate), (floats, ints, label, weight))
            weight_sum = jnp.sum(weight)
        scale = 1.0 / jnp.maximum(weight_sum, 1e-12)
        grads = jax.tree.map(lambda g: g * scale, grads)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (*jax.tree.leaves((params, opt_state, rest)), *jax.tree.leaves(mstate))

    def _eval_step(self, metric_leaves: tuple, state_leaves: tuple, floats: Any, ints: Any, label: Any,
                   weight: Any) -> tuple:
        params, _, rest = jax.tree.unflatten(self._state_tree, state_leaves)
        mstate = jax.tree.unflatten(self._metric_tree, metric_leaves)
        logits, _ = self._forward(self.eval_graphdef, params, rest, floats, ints)
        mstate = self._update_metrics(mstate, logits, label, weight, self._weighted_loss(logits, label, weight),
                                      self.metrics)
        return tuple(jax.tree.leaves(mstate))

    # -- host side --------------------------------------------------------------------
    def _init_metric_tree(self, rows: tuple) -> None:
        floats, ints, label, weight = rows
        if self.accum > 1 and floats.ndim == 3:
            floats, ints, label, weight = floats[0], ints[0], label[0], weight[0]
        params, _, rest = jax.tree.unflatten(self._state_tree, self.state)
        logits = jax.eval_shape(lambda: self._forward(self.eval_graphdef, params, rest, floats, ints)[0])
        lab = jax.ShapeDtypeStruct(label.shape, label.dtype)
        w = jax.ShapeDtypeStruct(weight.shape, weight.dtype)
        zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        tree = (zero, *[_zeros_state(m, logits, lab, w) for m in self.metrics])
        train_tree = (zero, *[_zeros_state(m, logits, lab, w) for m in self.train_metrics])
        self._metric_tree = jax.tree.structure(tree)
        self._train_metric_tree = jax.tree.structure(train_tree)
        self._metric_zero = tuple(jax.device_get(jax.tree.leaves(tree)))
        self._train_metric_zero = tuple(jax.device_get(jax.tree.leaves(train_tree)))

    def fresh_metrics(self, train: bool = True) -> tuple:
        """Zeroed metric accumulators (of the train or eval metrics) on the devices."""
        zero = self._train_metric_zero if train else self._metric_zero
        return tuple(jax.device_put(list(zero), self.replicated))

    def finish_metrics(self, metric_leaves: Sequence[Any], prefix: str = "", train: bool = True) -> dict[str, float]:
        """Host-side metric values from accumulated (train or eval) metric leaves."""
        tree, metrics = (self._train_metric_tree, self.train_metrics) if train else (self._metric_tree, self.metrics)
        mstate = jax.tree.unflatten(tree, jax.device_get(list(metric_leaves)))
        total, weight = (float(x) for x in mstate[0])
        out = {f"{prefix}loss": total / weight if weight > 0 else float("nan")}
        for m, s in zip(metrics, mstate[1:], strict=True):
            out[f"{prefix}{m.name}"] = float(m.finish(s))
        return out

    def train_step(self, rows: tuple, metrics: tuple) -> tuple:
        """Runs one optimiser step on batch ``rows`` (device arrays, or host arrays the
        jitted step shards itself); returns the new metric leaves."""
        if self._metric_tree is None:
            self._init_metric_tree(rows)
        out = self._step((*self.state, *metrics), *rows)
        self.state = out[: self._n_state]
        return out[self._n_state:]

    def evaluate(self, data: Dataset, prefix: str = "") -> dict[str, float]:
        """Metrics of the current weights over one pass of ``data`` (in order, epoch 0)."""
        if data.layout.columns != self.layout.columns:
            raise InvalidArgumentError("the eval data's features differ from the training data's")
        metrics = None
        batches = data.feed_batches(0, mesh=self.mesh)
        try:
            for rows in batches:
                if self._metric_tree is None:
                    self._init_metric_tree(rows)
                if metrics is None:
                    metrics = self.fresh_metrics(train=False)
                metrics = self._eval(metrics, self.state, *rows)
        finally:
            getattr(batches, "close", lambda: None)()
        if metrics is None:
            raise InvalidArgumentError("the eval data produced no batches (fewer rows than batch_size?)")
        return self.finish_metrics(metrics, prefix, train=False)

    def write_back(self, state: Sequence[Any] | None = None) -> None:
        """Puts the trained variables (or ``state``) back into the model."""
        params, _, rest = jax.tree.unflatten(self._state_tree, list(state if state is not None else self.state))
        nnx.update(self.model, params, rest)

    def param_leaves(self) -> list[Any]:
        return list(self.state[: self._n_params])


def _progress(enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[logs]}"), transient=False)


def fit(model: nnx.Module, optimizer: optax.GradientTransformation, loss: str | Callable, train_data: Dataset,
        eval_data: Dataset | None = None, *, epochs: int | None = None, steps: int | None = None,
        metrics: Sequence[str | Metric] | None = None, train_metrics: Sequence[str | Metric] | None = None,
        callbacks: Iterable[Callback] = (), precision: str = "fp32", grad_accum_steps: int = 1, checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None, keep_checkpoints: int = 2,
        early_stopping: EarlyStopping | None = None, progress: bool | None = None) -> History:
    """Trains ``model`` in place and returns its :class:`History`.

    Args:
        model: an ``nnx.Module`` with ``__call__(features: dict) -> logits``; updated in place.
        optimizer: an ``optax.GradientTransformation`` (e.g. ``optax.adam(1e-3)``).
        loss: a loss name or ``(logits, labels) -> per-row loss`` (see :class:`Trainer`).
        train_data: a :class:`~jfx.core.Dataset` with a label.
        eval_data: evaluated after every epoch; its metrics are prefixed ``val_``.
        epochs: passes over ``train_data`` (default 1 when ``steps`` is None too).
        steps: stop after this many optimiser steps (with ``epochs``: whichever first).
        metrics: metric names or :class:`~jfx.core.Metric` values (default per loss:
            accuracy and auc for classification, mse and mae for regression).
        train_metrics: the metrics accumulated during training (default: ``metrics``
            without auc, which is computed on ``eval_data`` only as it costs ~15% of a
            small model's step).
        callbacks: :class:`Callback` instances.
        precision: ``"fp32"`` or ``"bf16"`` (mixed precision; see :class:`Trainer`).
        grad_accum_steps: micro-batches of ``batch_size`` per optimiser step.
        checkpoint_dir: where checkpoints go; when it holds one, training resumes
            from the newest (weights, optimiser state, RNG, step, data position,
            history), giving the same result as an uninterrupted run.
        checkpoint_every: also checkpoint every this many steps (default: every epoch).
        keep_checkpoints: how many checkpoints to keep.
        early_stopping: an :class:`EarlyStopping` policy, or None.
        progress: show a rich progress bar (None: only when stderr is a terminal).

    Returns:
        The :class:`History`; the model holds the trained (or best) weights.

    Example:
        >>> import numpy as np, optax
        >>> from flax import nnx
        >>> from jfx.core import DNNClassifier, Dataset, Numeric, fit
        >>> ds = Dataset.from_arrays({"x": np.random.rand(64, 2), "y": np.arange(64) % 2}, label="y",
        ...                          batch_size=16)
        >>> model = DNNClassifier({"x": Numeric(2)}, hidden_units=(8,), rngs=nnx.Rngs(0))
        >>> fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", ds, epochs=2).epochs
        [0, 1]
    """
    if epochs is None and steps is None:
        epochs = 1
    if (epochs is not None and epochs < 1) or (steps is not None and steps < 1):
        raise InvalidArgumentError(f"epochs and steps must be >= 1, got epochs={epochs}, steps={steps}")
    if checkpoint_every is not None and (checkpoint_every < 1 or checkpoint_dir is None):
        raise InvalidArgumentError("checkpoint_every needs checkpoint_dir and must be >= 1")
    callbacks = list(callbacks)
    trainer = Trainer(model, optimizer, loss, train_data.layout, metrics=metrics, train_metrics=train_metrics,
                      precision=precision, grad_accum_steps=grad_accum_steps)
    if eval_data is not None and eval_data.layout.columns != train_data.layout.columns:
        raise InvalidArgumentError("eval_data's features differ from train_data's; build both the same way")
    group = grad_accum_steps
    per_epoch = train_data.num_batches(group)
    if per_epoch == 0:
        raise InvalidArgumentError(
            f"train_data has {train_data.num_rows} rows, fewer than one step of "
            f"{train_data.batch_size * group}; lower batch_size or use remainder='pad'"
        )
    stopper = early_stopping
    if stopper is not None and stopper.monitor.startswith("val_") and eval_data is None:
        raise InvalidArgumentError(f"early stopping monitors {stopper.monitor!r} but no eval_data was given")
    higher = stopper.higher_is_better() if stopper else False

    history = History()
    step, epoch, start_batch = 0, 0, 0
    wait = 0
    best_state: list[Any] | None = None
    metric_leaves: tuple | None = None
    if checkpoint_dir is not None and (ckpt := latest_checkpoint(checkpoint_dir)) is not None:
        groups, doc = load_checkpoint(ckpt, trainer.state_paths)
        trainer.state = tuple(jax.device_put(groups["state"], trainer.replicated))
        best_state = groups.get("best")
        step, epoch, start_batch = doc["step"], doc["epoch"], doc["batch"]
        wait = doc["wait"]
        h = doc["history"]
        history = History(h["history"], h["epochs"], step, False, h["best_epoch"], h["best"], resumed_from=step)
        if "metrics" in groups:
            metric_leaves = tuple(jax.device_put(groups["metrics"], trainer.replicated))

    def checkpoint(position_epoch: int, position_batch: int, metrics_now: tuple | None) -> None:
        assert checkpoint_dir is not None  # called only when checkpointing
        extra: dict[str, Sequence[Any]] = {}
        if best_state is not None:
            extra["best"] = best_state
        if metrics_now is not None:
            extra["metrics"] = metrics_now
        meta = {"epoch": position_epoch, "batch": position_batch, "wait": wait, "history": history.to_json()}
        save_checkpoint(checkpoint_dir, step, trainer.state, trainer.state_paths, meta, extra=extra,
                        keep=keep_checkpoints)

    bar = _progress(progress)
    stop = False
    try:
        if bar is not None:
            bar.start()
        for cb in callbacks:
            cb.on_train_begin(step)
        while not stop and (epochs is None or epoch < epochs) and (steps is None or step < steps):
            task = None
            if bar is not None:
                task = bar.add_task(f"epoch {epoch + 1}", total=per_epoch, completed=start_batch, logs="")
            batches = train_data.feed_batches(epoch, start_batch=start_batch, group=group, mesh=trainer.mesh)
            position = start_batch
            try:
                for rows in batches:
                    if trainer._metric_tree is None:  # noqa: SLF001 - fit drives its Trainer's lazy metric set-up
                        trainer._init_metric_tree(rows)  # noqa: SLF001
                    if metric_leaves is None:
                        metric_leaves = trainer.fresh_metrics()
                    metric_leaves = trainer.train_step(rows, metric_leaves)
                    step += 1
                    position += 1
                    if task is not None:
                        bar.advance(task)
                    for cb in callbacks:
                        cb.on_step_end(step)
                    if checkpoint_every and step % checkpoint_every == 0:
                        checkpoint(epoch, position, metric_leaves)
                    if steps is not None and step >= steps:
                        break
            finally:
                getattr(batches, "close", lambda: None)()
            logs = trainer.finish_metrics(metric_leaves) if metric_leaves is not None else {}
            if eval_data is not None:
                logs.update(trainer.evaluate(eval_data, prefix="val_"))
            metric_leaves = None
            for k, v in logs.items():
                history.history.setdefault(k, []).append(v)
            history.epochs.append(epoch)
            history.step = step
            if task is not None:
                bar.update(task, logs="  ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            if stopper is not None:
                if stopper.monitor not in logs:
                    raise InvalidArgumentError(f"early stopping monitor {stopper.monitor!r} is not among the "
                                               f"metrics {sorted(logs)}")
                value = logs[stopper.monitor]
                best = history.best
                improved = best is None or (value > best + stopper.min_delta if higher
                                            else value < best - stopper.min_delta)
                if improved:
                    history.best, history.best_epoch, wait = value, epoch, 0
                    if stopper.restore_best:
                        best_state = list(jax.device_get(list(trainer.state)))
                else:
                    wait += 1
                    if wait >= stopper.patience:
                        stop = history.stopped_early = True
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            epoch += 1
            start_batch = 0
            if checkpoint_dir is not None and not stop:
                checkpoint(epoch, 0, None)
        history.weights_epoch = history.epochs[-1] if history.epochs else None
        if stopper is not None and stopper.restore_best and best_state is not None:
            trainer.state = tuple(jax.device_put(list(best_state), trainer.replicated))
            history.weights_epoch = history.best_epoch
        trainer.write_back()
        for cb in callbacks:
            cb.on_train_end(history)
        return history
    except BaseException:
        # Leave the model holding the last completed step's weights, not donated buffers.
        try:
            trainer.write_back()
        except Exception:  # noqa: BLE001 - the state itself may be unusable after a failed step
            pass
        raise
    finally:
        if bar is not None:
            bar.stop()


def evaluate(model: nnx.Module, data: Dataset, loss: str | Callable, *, metrics: Sequence[str | Metric] | None = None,
             precision: str = "fp32") -> dict[str, float]:
    """Loss and metrics of ``model`` (in eval mode) over one pass of ``data``.

    Example:
        >>> evaluate(model, ds, "sparse_categorical_crossentropy")  # doctest: +SKIP
        {'loss': 0.31, 'accuracy': 0.9, 'auc': 0.95}
    """
    trainer = Trainer(model, optax.identity(), loss, data.layout, metrics=metrics, precision=precision)
    return trainer.evaluate(data)

