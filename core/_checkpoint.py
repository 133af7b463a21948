"""Checkpoints: arrays as ``.npz`` plus a JSON document, written atomically; no pickle.

A checkpoint is a directory ``<checkpoint_dir>/ckpt-<step:09d>/`` holding
``arrays.npz`` (every array leaf, keyed ``a<index>``) and ``meta.json`` (the step,
the data position, the history so far and the tree paths, dtypes and shapes of the
leaves, checked on restore). It is written to a temporary directory first, flushed,
and renamed into place, so a crash never leaves a half-written checkpoint behind.
PRNG key arrays are stored as their raw key data and re-wrapped on restore.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jfx.errors import DataValidationError

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "list_checkpoints"]

_PREFIX = "ckpt-"


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_path(checkpoint_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is (or would be) in ``checkpoint_dir``."""
    return Path(checkpoint_dir) / f"{_PREFIX}{step:09d}"


def list_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``checkpoint_dir``, oldest first."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "meta.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def save_checkpoint(checkpoint_dir: str | Path, step: int, leaves: Sequence[Any], paths: Sequence[str],
                    meta: dict[str, Any], *, extra: dict[str, Sequence[Any]] | None = None,
                    keep: int = 2) -> Path:
    """Writes one checkpoint atomically and prunes all but the newest ``keep``.

    Args:
        checkpoint_dir: the directory of checkpoints (created if needed).
        step: the global step; names the checkpoint.
        leaves: the array leaves of the training state (device or host arrays).
        paths: one tree path per leaf, checked on restore.
        meta: JSON-able data (position, history, ...).
        extra: more named lists of leaves with the same paths (e.g. best weights).
        keep: how many checkpoints to keep.

    Returns:
        The checkpoint directory.
    """
    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(root, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    arrays: dict[str, Any] = {}
    described = {}
    for group, group_leaves in {"state": leaves, **(extra or {})}.items():
        host = jax.device_get(list(group_leaves))
        descs = []
        for i, x in enumerate(host):
            key = bool(_is_key(x))
            data = np.asarray(jax.random.key_data(x)) if key else np.asarray(x)
            arrays[f"{group}/a{i:05d}"] = data
            descs.append({"dtype": str(data.dtype), "shape": list(data.shape),
                          "key_impl": str(jax.random.key_impl(x)) if key else None})
        described[group] = descs
    doc = {"version": 1, "step": step, "paths": list(paths), "leaves": described, **meta}
    with open(tmp / "arrays.npz", "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    with open(tmp / "meta.json", "w") as f:
        json.dump(doc, f, indent=1, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for stale in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path, paths: Sequence[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the checkpoint directory.
        paths: the tree paths the caller expects, in order.

    Returns:
        (group → list of host arrays, the JSON document).

    Raises:
        DataValidationError: the checkpoint does not match the expected structure.
    """
    path = Path(path)
    doc = json.loads((path / "meta.json").read_text())
    if list(doc["paths"]) != list(paths):
        raise DataValidationError(
            f"checkpoint {path} does not match this model and optimizer: it holds {len(doc['paths'])} arrays, "
            f"expected {len(paths)}; use an empty checkpoint_dir for a different model"
        )
    out: dict[str, list[Any]] = {}
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        for group, descs in doc["leaves"].items():
            leaves = []
            for i, d in enumerate(descs):
                data = npz[f"{group}/a{i:05d}"]
                if d["key_impl"]:
                    data = jax.random.wrap_key_data(data, impl=d["key_impl"])
                leaves.append(data)
            out[group] = leaves
    return out, doc
