"""What :func:`~jfx.core.fit` reports and the callbacks around its loop.

:func:`~jfx.core.fit` is a short loop over steps and epochs; everything else it does
is a :class:`Callback` placed around that loop: early stopping (:class:`_EarlyStopper`,
built from an :class:`EarlyStopping` policy), putting the weights back into the model
(:class:`_WriteBack`) and checkpointing with exact resume (:class:`_Checkpointer`).
They share one :class:`_Loop`: where training is (step, epoch, batch of the epoch),
the :class:`History` so far and whether to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jfx.core._checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from jfx.errors import DataValidationError, InvalidArgumentError

if TYPE_CHECKING:
    from jfx.core._train import Trainer

__all__ = ["Callback", "EarlyStopping", "History"]


class Callback:
    """Hooks called by :func:`~jfx.core.fit`; override the ones you need.

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
        """Whether a larger ``monitor`` value is an improvement (from ``mode``)."""
        if self.mode == "auto":
            return any(s in self.monitor for s in ("accuracy", "auc"))
        if self.mode not in ("min", "max"):
            raise InvalidArgumentError(f"EarlyStopping mode must be min, max or auto, got {self.mode!r}")
        return self.mode == "max"


@dataclass
class History:
    """What :func:`~jfx.core.fit` did.

    Attributes:
        history: metric name → one value per epoch (``loss``, ``accuracy``, ...,
            ``val_loss``, ``val_accuracy``, ...).
        epochs: the epoch numbers recorded (0-based).
        step: the global step at the end.
        stopped_early: whether early stopping ended training.
        best_epoch, best: the best epoch and value of the early-stopping monitor.
        resumed_from: the step of the checkpoint training resumed from, or None.
        weights_epoch: the epoch whose weights the model holds when :func:`~jfx.core.fit`
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
        """The JSON-able fields (checkpoints keep them)."""
        return {"history": self.history, "epochs": self.epochs, "step": self.step,
                "stopped_early": self.stopped_early, "best_epoch": self.best_epoch, "best": self.best,
                "resumed_from": self.resumed_from, "weights_epoch": self.weights_epoch}


@dataclass
class _Loop:
    """Where :func:`~jfx.core.fit` is; shared by the loop and its own callbacks.

    Attributes:
        trainer: the compiled steps and the training state.
        history: the history so far.
        step: optimiser steps taken.
        epoch: the current epoch.
        batch: the next batch of ``epoch`` (non-zero only when resumed mid-epoch).
        stop: set by a callback to end training after the current epoch.
    """

    trainer: Trainer
    history: History = field(default_factory=History)
    step: int = 0
    epoch: int = 0
    batch: int = 0
    stop: bool = False


class _EarlyStopper(Callback):
    """:class:`EarlyStopping` as a callback: tracks the best epoch, stops, restores its weights."""

    def __init__(self, loop: _Loop, policy: EarlyStopping) -> None:
        self.loop = loop
        self.policy = policy
        self.higher = policy.higher_is_better()
        self.wait = 0
        # Host copy of the best epoch's (params, opt_state, variables), when restoring.
        self.best_state: Any = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        policy, history = self.policy, self.loop.history
        if policy.monitor not in logs:
            raise InvalidArgumentError(f"early stopping monitor {policy.monitor!r} is not among the "
                                       f"metrics {sorted(logs)}")
        value = logs[policy.monitor]
        best = history.best
        improved = best is None or (value > best + policy.min_delta if self.higher
                                    else value < best - policy.min_delta)
        if improved:
            history.best, history.best_epoch, self.wait = value, epoch, 0
            if policy.restore_best:
                self.best_state = jax.device_get(self.loop.trainer.model_state())
        else:
            self.wait += 1
            if self.wait >= policy.patience:
                self.loop.stop = history.stopped_early = True

    def on_train_end(self, history: History) -> None:
        if self.policy.restore_best and self.best_state is not None:
            self.loop.trainer.set_model_state(self.best_state)
            history.weights_epoch = history.best_epoch

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Sequence[Any]]]:
        """What a checkpoint keeps of it: (JSON fields, named lists of arrays)."""
        arrays: dict[str, Sequence[Any]] = {}
        if self.best_state is not None:
            arrays["best"] = jax.tree.leaves(self.best_state)
        return {"wait": self.wait}, arrays

    def restore(self, meta: dict[str, Any], groups: dict[str, list[Any]]) -> None:
        """Takes back what :meth:`checkpoint_state` gave a checkpoint."""
        self.wait = meta["wait"]
        if "best" in groups:
            self.best_state = self.loop.trainer.model_state_from_leaves(groups["best"])


def _step_of(ckpt: Path) -> int:
    return int(ckpt.name.rsplit("-", 1)[1])


class _WriteBack(Callback):
    """Puts the trained weights into the model, before user callbacks see the end."""

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop

    def on_train_end(self, history: History) -> None:
        self.loop.trainer.write_back()


class _Checkpointer(Callback):
    """Checkpoints every ``every`` steps (with the epoch's running metrics) and at each
    epoch end; :meth:`resume` restores the newest checkpoint so that training goes on
    exactly as if it had not stopped.

    Args:
        loop: the loop it checkpoints.
        directory: the checkpoint directory.
        every: steps between mid-epoch checkpoints (None: only at epoch ends).
        keep: how many checkpoints to keep.
        stopper: the early stopper whose state checkpoints carry, if any.
    """

    def __init__(self, loop: _Loop, directory: str | Path, every: int | None, keep: int,
                 stopper: _EarlyStopper | None) -> None:
        self.loop = loop
        self.directory = directory
        self.every = every
        self.keep = keep
        self.stopper = stopper

    def resume(self) -> None:
        """Restores the newest checkpoint in the directory, if there is one."""
        loop, trainer = self.loop, self.loop.trainer
        ckpt = latest_checkpoint(self.directory)
        if trainer.processes > 1:
            # Every process resumes from the checkpoint process 0 sees as the newest.
            from jax.experimental import multihost_utils

            found = int(multihost_utils.broadcast_one_to_all(np.int64(-1 if ckpt is None else _step_of(ckpt))))
            ckpt = None if found < 0 else checkpoint_path(self.directory, found)
            if ckpt is not None and not (ckpt / "meta.json").is_file():
                raise DataValidationError(f"process {jax.process_index()} cannot read checkpoint {ckpt}, which "
                                          "process 0 resumes from; checkpoint_dir must be shared by every process")
        if ckpt is None:
            return
        groups, doc = load_checkpoint(ckpt, trainer.state_paths)
        trainer.set_model_state(trainer.model_state_from_leaves(groups["state"]), step=doc["step"])
        if "metrics" in groups:
            trainer.set_metrics(trainer.metrics_from_leaves(groups["metrics"]))
        loop.step, loop.epoch, loop.batch = doc["step"], doc["epoch"], doc["batch"]
        h = doc["history"]
        loop.history = History(h["history"], h["epochs"], loop.step, False, h["best_epoch"], h["best"],
                               resumed_from=loop.step)
        if self.stopper is not None:
            self.stopper.restore(doc, groups)

    def _save(self, epoch: int, batch: int, with_metrics: bool) -> None:
        loop, trainer = self.loop, self.loop.trainer
        if trainer.processes > 1 and jax.process_index() != 0:
            return  # process 0 writes; the state is the same in every process
        meta: dict[str, Any] = {"epoch": epoch, "batch": batch, "history": loop.history.to_json()}
        extra: dict[str, Sequence[Any]] = {}
        if self.stopper is not None:
            stopper_meta, extra = self.stopper.checkpoint_state()
            meta.update(stopper_meta)
        else:
            meta["wait"] = 0
        if with_metrics:
            extra["metrics"] = jax.tree.leaves(trainer.state.metrics)
        save_checkpoint(self.directory, loop.step, jax.tree.leaves(trainer.model_state()), trainer.state_paths,
                        meta, extra=extra, keep=self.keep)

    def on_step_end(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self._save(self.loop.epoch, self.loop.batch, with_metrics=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if not self.loop.stop:
            self._save(epoch + 1, 0, with_metrics=False)
