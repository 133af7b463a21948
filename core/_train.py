"""The training engine: one jit-compiled, buffer-donating train step, data parallel.

:class:`Trainer` splits an NNX module into its graph definition and state and keeps
everything a step reads and writes as one pytree, :class:`TrainState` (parameters,
optimiser state, the other variables such as RNG streams, the running metric
accumulators and the step), replicated over the local devices. It compiles one step
``TrainState, batch -> TrainState`` with ``jax.jit``, the state donated whole and the
batch sharded along the batch axis of the ``"data"`` mesh; XLA inserts the gradient
all-reduce, so the same code runs on 1 or N devices. :func:`fit` is the loop that
drives it over a :class:`~jfx.core.Dataset`; evaluation, early stopping, checkpoints
and resume are callbacks around that loop (:mod:`jfx.core._callbacks`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from jfx.core._checkpoint import latest_checkpoint
from jfx.core._callbacks import Callback, EarlyStopping, History, _Checkpointer, _EarlyStopper, _Loop, _WriteBack
from jfx.core._data import Dataset, _Layout, batch_sharding, data_mesh, replicated_sharding
from jfx.core._distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, Distributed, initialize
from jfx.core._metrics import Metric, get_loss, get_metric
from jfx.errors import InvalidArgumentError

__all__ = ["Trainer", "TrainState", "fit", "evaluate", "History", "Callback", "EarlyStopping", "PRECISIONS"]

PRECISIONS = ("fp32", "bf16")
# Rows of the abstract batch the metric state's shapes are derived from: a metric's state
# depends on the logits' and label's trailing shapes, never on the number of rows.
_SHAPE_ROWS = 8

# What fit calls between two steps, when set: the Trainer sets the run's cancel check here, so
# that Ctrl-C (or a cancelled run) stops training at the next step, in whatever run_fn the
# user wrote. A context variable: it holds for the thread (and context) that set it only.
_BETWEEN_STEPS: ContextVar[Callable[[], None] | None] = ContextVar("jfx_between_steps", default=None)


@contextlib.contextmanager
def between_steps(check: Callable[[], None]) -> Iterator[None]:
    """Within the block, every :func:`fit` of this thread calls ``check()`` after each step.

    ``check`` stops training by raising (e.g. ``KeyboardInterrupt`` for a cancelled run);
    :func:`fit` then leaves the model holding the last completed step's weights.
    """
    token = _BETWEEN_STEPS.set(check)
    try:
        yield
    finally:
        _BETWEEN_STEPS.reset(token)



class TrainState(NamedTuple):
    """Everything one train step reads and writes: one pytree, donated whole.

    Its containers are plain dicts, tuples and optax's named tuples (not NNX ``State``
    objects), which ``jax.jit`` flattens in C++: flattening NNX containers in Python
    on every call cost as much as a small model's step.

    Attributes:
        params: the trainable parameters (``nnx.Param``), as nested dicts.
        opt_state: the optimiser state, over ``params``.
        variables: every other variable of the model: its RNG streams (key and count
            per stream, so dropout masks resume exactly) and state such as batch
            statistics.
        metrics: the running train-metric accumulators of the current epoch:
            ``((weighted loss sum, weight sum), *one state per train metric)``.
        step: optimiser steps taken (an int32 array).
    """

    params: Any
    opt_state: Any
    variables: Any
    metrics: Any
    step: Any


def _cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


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

    Attributes:
        state: the :class:`TrainState` (on the devices); :meth:`step` replaces it. The
            optimiser sees ``state.params``: nested dicts of arrays.
        trace_count: how often the train step was traced (compiled).
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
        # Over several processes (jax.distributed) the mesh spans every process's devices
        # and each process feeds its part of every global batch.
        self.processes = jax.process_count()
        self.mesh = data_mesh() if self.processes == 1 else Mesh(np.array(jax.devices()), ("data",))
        self.replicated = replicated_sharding(self.mesh)
        self.trace_count = 0  # traces of the train step: a test checks it compiles once

        model.train()
        self.graphdef: nnx.GraphDef
        self.graphdef, nnx_params, nnx_variables = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]  # flax types the result as variadic
        model.eval()
        self.eval_graphdef = nnx.split(model, nnx.Param, ...)[0]
        model.train()
        # Checkpoints name each leaf by its path in the NNX containers, as they always
        # have, so checkpoints written before the state became one plain pytree resume.
        self.state_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(
            (nnx_params, jax.eval_shape(optimizer.init, nnx_params), nnx_variables))[0]]
        # The NNX containers' structures rebuild them from the plain trees inside the
        # traced steps, which relies on both flattening to the same leaves in one order.
        self._params_def = jax.tree.structure(nnx_params)
        self._variables_def = jax.tree.structure(nnx_variables)
        params, variables = nnx.to_pure_dict(nnx_params), nnx.to_pure_dict(nnx_variables)
        self._plain_variables_def = jax.tree.structure(variables)
        for nnx_tree, plain in ((nnx_params, params), (nnx_variables, variables)):
            paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(nnx_tree)[0]]
            plain_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(plain)[0]]
            if [p.removesuffix(".value") for p in paths] != plain_paths:
                raise InvalidArgumentError(f"the model's variables {paths} cannot be carried as plain arrays "
                                           f"(they flatten as {plain_paths})")
        # Own copies: the step donates its inputs and must not invalidate the model's arrays.
        # Host copies, and the optimiser's state built on the host: eager device ops here
        # compiled one small XLA program per op and shape, a third of the first step's time
        # on CPU, and one jitted init still one XLA compile (~0.1 s of CPU; measured with
        # the MLP of bench_training.py).
        params, variables = jax.tree.map(_host_copy, (params, variables))
        model_state = (params, _host_init(optimizer.init, params), variables)
        self._model_state_def = jax.tree.structure(model_state)
        # One abstract trace of the model gives both groups' accumulator shapes.
        self._train_metric_zero, self._metric_zero = self._zero_metrics((self.train_metrics, self.metrics), params,
                                                                        variables)
        state = self._put(TrainState(*model_state, metrics=self._train_metric_zero, step=np.zeros((), np.int32)))
        # The compiled step takes and returns the state's leaves, one flat tuple of the
        # TrainState's structure: jit flattens its arguments and unflattens its results on
        # every call, which for the nested state costs ~18 us a step against ~2 us for
        # the tuple (measured), 10-15% of a small model's step on CPU.
        self._state_def = jax.tree.structure(state)
        self._leaves: tuple[Any, ...] = tuple(jax.tree.leaves(state))
        # Batch arguments may be device arrays or host NumPy arrays (Dataset.feed_batches):
        # in_shardings has the jitted call shard host arrays over the mesh itself.
        rep = self.replicated
        train_batch = batch_sharding(self.mesh, leading=1 if grad_accum_steps > 1 else 0)
        eval_batch = batch_sharding(self.mesh)
        self._step = jax.jit(self._train_step_leaves, donate_argnums=(0,), out_shardings=rep,
                             in_shardings=(rep, *[train_batch] * 4))
        self._eval = jax.jit(self._eval_step, donate_argnums=(0,), out_shardings=rep,
                             in_shardings=(rep, rep, rep, *[eval_batch] * 4))

    @property
    def state(self) -> TrainState:
        """The :class:`TrainState` (on the devices); :meth:`step` replaces it."""
        return jax.tree.unflatten(self._state_def, self._leaves)

    @state.setter
    def state(self, state: TrainState) -> None:
        leaves, structure = jax.tree.flatten(state)
        if structure != self._state_def:  # type: ignore[operator]  # jax types PyTreeDef without __ne__
            raise InvalidArgumentError(f"a train state must have the structure {self._state_def}, got {structure}")
        self._leaves = tuple(leaves)

    # -- pure functions (traced) ----------------------------------------------------
    def _forward(self, graphdef: Any, params: Any, variables: Any, floats: Any, ints: Any) -> tuple[Any, Any]:
        """(float32 logits, the variables after the call) of the plain ``params`` and ``variables``."""
        features = self.layout.unpack(floats, ints)
        if self.compute_dtype is not None:
            params = _cast_floats(params, self.compute_dtype)
            features = _cast_floats(features, self.compute_dtype)
        module = nnx.merge(graphdef, jax.tree.unflatten(self._params_def, jax.tree.leaves(params)),
                           jax.tree.unflatten(self._variables_def, jax.tree.leaves(variables)), copy=True)
        logits = module(features)
        new_variables = jax.tree.unflatten(self._plain_variables_def,
                                           jax.tree.leaves(nnx.split(module, nnx.Param, ...)[2]))  # type: ignore[misc]
        return jnp.asarray(logits).astype(jnp.float32), new_variables

    def _weighted_loss(self, logits: Any, label: Any, weight: Any) -> Any:
        per_row = self.loss_fn(logits, label)
        per_row = per_row.reshape(per_row.shape[0], -1).mean(axis=-1).astype(jnp.float32)
        return jnp.sum(per_row * weight)

    def _update_metrics(self, mstate: Any, logits: Any, label: Any, weight: Any, loss_sum: Any,
                        metrics: Sequence[Metric]) -> Any:
        loss_acc = (mstate[0][0] + loss_sum, mstate[0][1] + jnp.sum(weight))
        return (loss_acc, *[m.update(s, logits, label, weight) for m, s in zip(metrics, mstate[1:], strict=True)])

    def _train_step_leaves(self, leaves: tuple[Any, ...], floats: Any, ints: Any, label: Any,
                           weight: Any) -> tuple[Any, ...]:
        state = self._train_step(jax.tree.unflatten(self._state_def, leaves), floats, ints, label, weight)
        return tuple(jax.tree.leaves(state))

    def _train_step(self, state: TrainState, floats: Any, ints: Any, label: Any, weight: Any) -> TrainState:
        self.trace_count += 1
        params = state.params

        def loss_of(p: Any, variables: Any, floats: Any, ints: Any, label: Any, weight: Any) -> Any:
            logits, new_variables = self._forward(self.graphdef, p, variables, floats, ints)
            total = self._weighted_loss(logits, label, weight)
            return total, (logits, new_variables, total)

        grad_fn = jax.grad(loss_of, has_aux=True)
        if self.accum == 1:
            grads, (logits, variables, total) = grad_fn(params, state.variables, floats, ints, label, weight)
            metrics = self._update_metrics(state.metrics, logits, label, weight, total, self.train_metrics)
        else:
            def micro(c: tuple, xs: tuple) -> tuple:
                g_sum, variables, metrics = c
                f, i, y, w = xs
                g, (logits, variables, total) = grad_fn(params, variables, f, i, y, w)
                g_sum = jax.tree.map(jnp.add, g_sum, g)
                return (g_sum, variables, self._update_metrics(metrics, logits, y, w, total, self.train_metrics)), None

            zeros = jax.tree.map(jnp.zeros_like, params)
            (grads, variables, metrics), _ = jax.lax.scan(micro, (zeros, state.variables, state.metrics),
                                                          (floats, ints, label, weight))
        scale = 1.0 / jnp.maximum(jnp.sum(weight), 1e-12)
        grads = jax.tree.map(lambda g: g * scale, grads)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, params)
        params = optax.apply_updates(params, updates)
        return TrainState(params, opt_state, variables, metrics, state.step + 1)

    def _eval_step(self, metrics: Any, params: Any, variables: Any, floats: Any, ints: Any, label: Any,
                   weight: Any) -> Any:
        logits, _ = self._forward(self.eval_graphdef, params, variables, floats, ints)
        return self._update_metrics(metrics, logits, label, weight, self._weighted_loss(logits, label, weight),
                                    self.metrics)

    def _zero_metrics(self, groups: Sequence[Sequence[Metric]], params: Any, variables: Any) -> Any:
        """Zeroed accumulators of each group of metrics (host arrays), shaped by one
        ``jax.eval_shape`` from the data layout: no batch needs to be read first."""
        layout, n = self.layout, _SHAPE_ROWS
        batch = (jax.ShapeDtypeStruct((n, layout.n_float), jnp.float32),
                 jax.ShapeDtypeStruct((n, layout.n_int), jnp.int32),
                 jax.ShapeDtypeStruct((n, *layout.label_shape), jnp.dtype(layout.label_dtype)),
                 jax.ShapeDtypeStruct((n,), jnp.float32))

        def first_update(params: Any, variables: Any, floats: Any, ints: Any, label: Any, weight: Any) -> Any:
            logits, _ = self._forward(self.eval_graphdef, params, variables, floats, ints)
            zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
            return tuple(self._update_metrics((zero, *[m.init() for m in metrics]), logits, label, weight,
                                              jnp.zeros((), jnp.float32), metrics) for metrics in groups)

        shapes = jax.eval_shape(first_update, params, variables, *batch)
        # On the host: each device_put makes fresh device buffers, which the steps may donate.
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    # -- host side --------------------------------------------------------------------
    def _put(self, tree: Any) -> Any:
        """``tree`` replicated on every device of the mesh. Over several processes each
        process gives its own copy, from host memory (every process holds the same values)."""
        if self.processes > 1:
            tree = jax.tree.map(_host_copy, tree)
        return jax.device_put(tree, self.replicated)

    def feed(self, data: Dataset, epoch: int = 0, *, start_batch: int = 0, group: int = 1,
             count: int | None = None) -> Iterator[tuple]:
        """The batches of ``data`` for the compiled steps: at most ``count``.

        In one process these are :meth:`Dataset.feed_batches`. Over several, ``data`` is
        this process's shard (:meth:`Dataset.shard`) and each batch is this process's
        part of a global array (``jax.make_array_from_process_local_data``); when
        ``count`` is more than the shard has, the rest are batches of weight 0, so that
        every process runs the same number of steps (each step is a collective).
        """
        if self.processes == 1:
            batches = data.feed_batches(epoch, start_batch=start_batch, group=group, mesh=self.mesh)
            if count is None:
                return batches
            return _limited(batches, count)
        return self._process_feed(data, epoch, start_batch, group, count)

    def _process_feed(self, data: Dataset, epoch: int, start_batch: int, group: int,
                      count: int | None) -> Iterator[tuple]:
        sharding = batch_sharding(self.mesh, leading=1 if group > 1 else 0)
        lead = (group,) if group > 1 else ()
        n, layout = data.batch_size, data.layout
        empty = (np.zeros((*lead, n, layout.n_float), np.float32), np.zeros((*lead, n, layout.n_int), np.int32),
                 np.zeros((*lead, n, *layout.label_shape), np.dtype(layout.label_dtype or "float32")),
                 np.zeros((*lead, n), np.float32))
        host = data._host_feed(epoch, start_batch, group)  # noqa: SLF001 - the engine's own feed
        given = 0
        try:
            for rows in host:
                if count is not None and given >= count:
                    return
                yield tuple(jax.make_array_from_process_local_data(sharding, a) for a in rows)
                given += 1
            while count is not None and given < count:
                yield tuple(jax.make_array_from_process_local_data(sharding, a) for a in empty)
                given += 1
        finally:
            host.close()

    def fresh_metrics(self, train: bool = True) -> Any:
        """Zeroed metric accumulators (of the train or eval metrics) on the devices."""
        return self._put(self._train_metric_zero if train else self._metric_zero)

    def finish_metrics(self, metrics: Any, prefix: str = "", train: bool = True) -> dict[str, float]:
        """Host-side metric values from accumulated (train or eval) metric state."""
        group = self.train_metrics if train else self.metrics
        mstate = jax.device_get(metrics)
        total, weight = (float(x) for x in mstate[0])
        out = {f"{prefix}loss": total / weight if weight > 0 else float("nan")}
        for m, s in zip(group, mstate[1:], strict=True):
            out[f"{prefix}{m.name}"] = float(m.finish(s))
        return out

    def step(self, rows: tuple) -> None:
        """Runs one optimiser step on batch ``rows`` (device arrays, or host arrays the
        jitted step shards itself), updating :attr:`state` (the old one is donated)."""
        self._leaves = self._step(self._leaves, *rows)

    def precompile(self, batch_size: int) -> None:
        """Compiles the train step for batches of ``batch_size`` rows (per optimiser
        micro-batch) now, before any batch is there: :func:`fit` does it while its feed
        reads the first chunk, so the read and the compile overlap. The first
        :meth:`step` then finds the compiled program in JAX's cache."""
        lead = (self.accum,) if self.accum > 1 else ()
        layout = self.layout
        rows = (jax.ShapeDtypeStruct((*lead, batch_size, layout.n_float), jnp.float32),
                jax.ShapeDtypeStruct((*lead, batch_size, layout.n_int), jnp.int32),
                jax.ShapeDtypeStruct((*lead, batch_size, *layout.label_shape), jnp.dtype(layout.label_dtype)),
                jax.ShapeDtypeStruct((*lead, batch_size), jnp.float32))
        self._step.lower(self._leaves, *rows).compile()

    def train_step(self, rows: tuple, metrics: Any = None) -> Any:
        """Runs one optimiser step and returns the running train metrics.

        ``metrics`` (from :meth:`fresh_metrics` or an earlier call), when given,
        replaces the accumulators in :attr:`state` first.
        """
        if metrics is not None:
            self.set_metrics(metrics)
        self.step(rows)
        return self.state.metrics

    def evaluate(self, data: Dataset, prefix: str = "") -> dict[str, float]:
        """Metrics of the current weights over one pass of ``data`` (in order, epoch 0)."""
        if data.layout.columns != self.layout.columns:
            raise InvalidArgumentError("the eval data's features differ from the training data's")
        metrics, seen = self.fresh_metrics(train=False), False
        count = data.shard_batches(most=True) if self.processes > 1 else None
        batches = self.feed(data, 0, count=count)
        try:
            for rows in batches:
                metrics, seen = self._eval(metrics, self.state.params, self.state.variables, *rows), True
        finally:
            getattr(batches, "close", lambda: None)()
        if not seen:
            raise InvalidArgumentError("the eval data produced no batches (fewer rows than batch_size?)")
        return self.finish_metrics(metrics, prefix, train=False)

    def model_state(self) -> tuple[Any, Any, Any]:
        """``(params, opt_state, variables)`` of :attr:`state`: what checkpoints and the
        best weights keep."""
        return self.state.params, self.state.opt_state, self.state.variables

    def model_state_from_leaves(self, leaves: Sequence[Any]) -> tuple[Any, Any, Any]:
        """A :meth:`model_state` from its leaves (as checkpoints store them)."""
        return jax.tree.unflatten(self._model_state_def, list(leaves))

    def metrics_from_leaves(self, leaves: Sequence[Any]) -> Any:
        """Train metric accumulators from their leaves (as checkpoints store them)."""
        return jax.tree.unflatten(jax.tree.structure(self._train_metric_zero), list(leaves))

    def set_model_state(self, model_state: tuple[Any, Any, Any], step: int | None = None) -> None:
        """Replaces the params, optimiser state and variables (and the step) of :attr:`state`."""
        params, opt_state, variables = self._put(model_state)
        self.state = self.state._replace(params=params, opt_state=opt_state, variables=variables)
        if step is not None:
            self.state = self.state._replace(step=self._put(np.int32(step)))

    def set_metrics(self, metrics: Any) -> None:
        """Replaces the running train metrics of :attr:`state`."""
        self.state = self.state._replace(metrics=self._put(metrics))

    def write_back(self, state: TrainState | None = None) -> None:
        """Puts the trained variables (of :attr:`state` or ``state``) back into the model."""
        state = self.state if state is None else state
        if self.processes > 1:
            # The model gets arrays of this process alone (the global ones would tie it to
            # the other processes): every process holds the trained weights.
            state = jax.tree.map(lambda x: jnp.asarray(_host_copy(x)), state)
        nnx.update(self.model, jax.tree.unflatten(self._params_def, jax.tree.leaves(state.params)),
                   jax.tree.unflatten(self._variables_def, jax.tree.leaves(state.variables)))

    def param_leaves(self) -> list[Any]:
        """The parameter arrays of :attr:`state`."""
        return jax.tree.leaves(self.state.params)


def _host_copy(x: Any) -> Any:
    """A host copy of a (replicated) array, its own memory; PRNG keys stay keys."""
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(np.array(jax.random.key_data(x)), impl=jax.random.key_impl(x))  # type: ignore[arg-type]  # NumPy data is accepted
    return np.array(x)


class _NotConstantError(Exception):
    """A program :func:`_host_init` does not evaluate on the host."""


def _host_init(init: Callable[[Any], Any], params: Any) -> Any:
    """``init(params)``: on the host (NumPy) when its program only fills arrays with
    constants or passes its inputs through, as optax's optimisers' ``init`` do (zeroed
    moments, step counts); otherwise ``jax.jit(init)(params)``. Either way no eager
    device op runs, and the common case compiles no XLA program before the train step."""
    closed, shapes = jax.make_jaxpr(init, return_shape=True)(params)
    try:
        leaves = _eval_constant(closed.jaxpr, closed.consts, jax.tree.leaves(params))
    except _NotConstantError:
        return jax.jit(init)(params)
    return jax.tree.unflatten(jax.tree.structure(shapes), leaves)


def _eval_constant(jaxpr: Any, consts: Sequence[Any], args: Sequence[Any]) -> list[np.ndarray]:
    """The outputs of ``jaxpr`` as NumPy arrays, if it only broadcasts scalars, converts,
    copies and calls such sub-programs; raises :class:`_NotConstantError` otherwise."""
    from jax.extend.core import Literal

    env: dict[Any, np.ndarray] = {}

    def read(v: Any) -> np.ndarray:
        if isinstance(v, Literal):
            return np.asarray(v.val, _plain_dtype(v.aval))
        return env[v]

    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = np.asarray(x)
    for v, x in zip(jaxpr.invars, args, strict=True):
        if not isinstance(x, np.ndarray):
            raise _NotConstantError
        env[v] = x
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        dtypes = [_plain_dtype(v.aval) for v in eqn.outvars]
        name = eqn.primitive.name
        if name == "broadcast_in_dim" and ins[0].ndim == 0:
            outs = [np.full(eqn.outvars[0].aval.shape, ins[0], dtypes[0])]
        elif name == "convert_element_type":
            outs = [ins[0].astype(dtypes[0])]
        elif name in ("copy", "copy_p"):
            outs = [np.array(ins[0])]
        elif name in ("pjit", "jit", "closed_call") and "jaxpr" in eqn.params:
            sub = eqn.params["jaxpr"]
            outs = _eval_constant(sub.jaxpr, sub.consts, ins)
        else:
            raise _NotConstantError
        for v, x in zip(eqn.outvars, outs, strict=True):
            env[v] = x
    # Copies: the step donates these buffers, which must not be the params' own.
    return [np.array(read(v), _plain_dtype(v.aval)) for v in jaxpr.outvars]


def _plain_dtype(aval: Any) -> np.dtype:
    """The NumPy dtype of an abstract value; :class:`_NotConstantError` for PRNG keys and
    other types NumPy has no dtype for."""
    dtype = getattr(aval, "dtype", None)
    if dtype is None or jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        raise _NotConstantError
    return np.dtype(dtype)


def _limited(batches: Iterator[Any], count: int) -> Iterator[Any]:
    try:
        for i, rows in enumerate(batches):
            if i >= count:
                return
            yield rows
    finally:
        getattr(batches, "close", lambda: None)()


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
        early_stopping: EarlyStopping | None = None, progress: bool | None = None,
        distributed: Distributed | bool | None = None) -> History:
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
        distributed: train over several processes (data parallel): a
            :class:`~jfx.core.Distributed` spec, or None (the default) to take the one a
            launcher put in the environment (``JFX_NUM_PROCESSES``, ``JFX_PROCESS_ID``,
            ``JFX_COORDINATOR_ADDRESS``; the Trainer's ``workers=``, a JAXJob), if any;
            False joins none (a training JAX already runs over several processes,
            e.g. joined with ``jax.distributed`` by hand, is still sharded). Every process calls ``fit`` with the
            same arguments; each reads its shard of ``train_data`` and ``eval_data``
            (:meth:`~jfx.core.Dataset.shard`; ``batch_size`` is the global batch), and
            the gradients are all-reduced, so the result equals one process's training
            on the same global batches. Every process ends with the trained model;
            process 0 alone writes checkpoints, which every process resumes from (so
            ``checkpoint_dir`` must be a folder they all see).

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
    spec = Distributed.from_env() if distributed is None or distributed is True else distributed or None
    if distributed is True and spec is None:
        raise InvalidArgumentError(f"distributed=True, but the environment names no training over several processes "
                                   f"({ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}, {ENV_COORDINATOR})")
    if spec is not None and spec.num_processes > 1:
        initialize(spec)
    # JAX's own view decides (it may have been joined by hand with jax.distributed): every
    # step is a collective over all its processes, so each must feed its own shard.
    if jax.process_count() > 1:
        train_data = train_data.shard(jax.process_count(), jax.process_index())
        if eval_data is not None:
            eval_data = eval_data.shard(jax.process_count(), jax.process_index())
    # In one process, with nothing to resume from, the first epoch's feed opens first: its
    # read-ahead thread reads and shuffles the first chunk while the step is built and
    # compiled (the first step then waits for the longer of the two, not for both).
    early = None
    if (jax.process_count() == 1 and train_data.num_batches(grad_accum_steps) > 0
            and (checkpoint_dir is None or latest_checkpoint(checkpoint_dir) is None)):
        early = train_data.feed_batches(0, group=grad_accum_steps, mesh=data_mesh())
    try:
        trainer = Trainer(model, optimizer, loss, train_data.layout, metrics=metrics, train_metrics=train_metrics,
                          precision=precision, grad_accum_steps=grad_accum_steps)
        if early is not None:
            trainer.precompile(train_data.batch_size)
    except BaseException:
        getattr(early, "close", lambda: None)()
        raise
    return _fit(trainer, early, train_data, eval_data, epochs=epochs, steps=steps, callbacks=callbacks,
                grad_accum_steps=grad_accum_steps, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                keep_checkpoints=keep_checkpoints, early_stopping=early_stopping, progress=progress)


def _fit(trainer: Trainer, early: Iterator[Any] | None, train_data: Dataset, eval_data: Dataset | None, *,
         epochs: int | None, steps: int | None, callbacks: Iterable[Callback], grad_accum_steps: int,
         checkpoint_dir: str | Path | None, checkpoint_every: int | None, keep_checkpoints: int,
         early_stopping: EarlyStopping | None, progress: bool | None) -> History:
    try:
        return _loop(trainer, early, train_data, eval_data, epochs=epochs, steps=steps, callbacks=callbacks,
                     grad_accum_steps=grad_accum_steps, checkpoint_dir=checkpoint_dir,
                     checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                     early_stopping=early_stopping, progress=progress)
    finally:
        getattr(early, "close", lambda: None)()  # unused (an error came first) or already closed


def _loop(trainer: Trainer, early: Iterator[Any] | None, train_data: Dataset, eval_data: Dataset | None, *,
          epochs: int | None, steps: int | None, callbacks: Iterable[Callback], grad_accum_steps: int,
          checkpoint_dir: str | Path | None, checkpoint_every: int | None, keep_checkpoints: int,
          early_stopping: EarlyStopping | None, progress: bool | None) -> History:
    if eval_data is not None and eval_data.layout.columns != train_data.layout.columns:
        raise InvalidArgumentError("eval_data's features differ from train_data's; build both the same way")
    group = grad_accum_steps
    # Over several processes, every process takes as many steps as the smallest shard has.
    per_epoch = train_data.shard_batches(group)
    if per_epoch == 0:
        shards = trainer.processes
        raise InvalidArgumentError(
            f"train_data has {train_data.num_rows * (shards if shards > 1 else 1)} rows, fewer than one step of "
            f"{train_data.batch_size * group * shards}; lower batch_size or use remainder='pad'"
        )
    if early_stopping is not None and early_stopping.monitor.startswith("val_") and eval_data is None:
        raise InvalidArgumentError(f"early stopping monitors {early_stopping.monitor!r} but no eval_data was given")

    loop = _Loop(trainer)
    # The order is the contract: the stopper decides (and restores the best weights) before
    # the weights are written back and before user callbacks see an epoch or the end; a
    # checkpoint is taken after everything of its step or epoch has run.
    stopper = _EarlyStopper(loop, early_stopping) if early_stopping is not None else None
    checkpointer = (_Checkpointer(loop, checkpoint_dir, checkpoint_every, keep_checkpoints, stopper)
                    if checkpoint_dir is not None else None)
    hooks: list[Callback] = [*([stopper] if stopper else []), _WriteBack(loop), *callbacks,
                             *([checkpointer] if checkpointer else [])]
    if checkpointer is not None:
        checkpointer.resume()
    history = loop.history
    bar = _progress(progress)
    ahead = None if early is None else (0, early)  # (epoch, its feed), opened ahead of use
    between = _BETWEEN_STEPS.get()
    try:
        if bar is not None:
            bar.start()
        for cb in hooks:
            cb.on_train_begin(loop.step)
        while not loop.stop and (epochs is None or loop.epoch < epochs) and (steps is None or loop.step < steps):
            task = None
            if bar is not None:
                task = bar.add_task(f"epoch {loop.epoch + 1}", total=per_epoch, completed=loop.batch, logs="")
            if ahead is not None and ahead[0] == loop.epoch and loop.batch == 0:
                batches, ahead = ahead[1], None
            else:
                batches = trainer.feed(train_data, loop.epoch, start_batch=loop.batch, group=group,
                                       count=(per_epoch - loop.batch) if trainer.processes > 1 else None)
            # Once this epoch's reader has read everything, the next epoch's feed opens, so
            # that its first chunk is read while this epoch's last steps run (a stall of
            # 10-25 ms an epoch otherwise, measured: a few % of a small model's epoch).
            want_ahead = (ahead is None and trainer.processes == 1 and (epochs is None or loop.epoch + 1 < epochs)
                          and (steps is None or loop.step + per_epoch - loop.batch < steps))
            read_all = getattr(batches, "read_all", None) if want_ahead else None
            try:
                for rows in batches:
                    trainer.step(rows)
                    loop.step += 1
                    loop.batch += 1
                    if between is not None:
                        between()
                    if read_all is not None and read_all():
                        read_all = None
                        ahead = (loop.epoch + 1, train_data.feed_batches(loop.epoch + 1, group=group,
                                                                         mesh=trainer.mesh))
                    if task is not None:
                        bar.advance(task)
                    for cb in hooks:
                        cb.on_step_end(loop.step)
                    if steps is not None and loop.step >= steps:
                        break
            finally:
                getattr(batches, "close", lambda: None)()
            logs = trainer.finish_metrics(trainer.state.metrics)
            if eval_data is not None:
                logs.update(trainer.evaluate(eval_data, prefix="val_"))
            trainer.set_metrics(trainer.fresh_metrics())
            for k, v in logs.items():
                history.history.setdefault(k, []).append(v)
            history.epochs.append(loop.epoch)
            history.step = loop.step
            if task is not None:
                bar.update(task, logs="  ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            for cb in hooks:
                cb.on_epoch_end(loop.epoch, logs)
            loop.epoch += 1
            loop.batch = 0
        if ahead is not None:  # stopped early: the next epoch's feed is not needed
            getattr(ahead[1], "close", lambda: None)()
            ahead = None
        history.weights_epoch = history.epochs[-1] if history.epochs else None
        for cb in hooks:
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
        if ahead is not None:
            getattr(ahead[1], "close", lambda: None)()
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

