"""Where the standard artifact types keep their files: one place that writers and readers share.

The components write these layouts; :class:`jfx.metadata.Client` and the metadata UI
read them. Both depend on this module, so the metadata layer never imports the
components.

``Examples``, ``ExampleStatistics`` and ``InferenceResult`` artifacts hold one folder
per split, ``<uri>/Split-<name>/``; statistics are ``Split-<name>/statistics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from jfx.errors import DataValidationError

__all__ = [
    "ANOMALIES_FILE",
    "BLESSING_FILE",
    "METRICS_FILE",
    "SCHEMA_FILE",
    "SPLIT_PREFIX",
    "STATISTICS_FILE",
    "VALUE_FILE",
    "load_statistics",
    "split_folder",
]

SPLIT_PREFIX = "Split-"               # <uri>/Split-<name>/: one split of Examples and statistics
STATISTICS_FILE = "statistics.json"   # ExampleStatistics: <uri>/Split-<name>/statistics.json
SCHEMA_FILE = "schema.json"           # Schema
ANOMALIES_FILE = "anomalies.json"     # ExampleAnomalies
METRICS_FILE = "metrics.json"         # ModelEvaluation
BLESSING_FILE = "blessing.json"       # ModelBlessing
VALUE_FILE = "value.json"             # any artifact written with Artifact.write_json (Metrics, ...)


def split_folder(root: str | Path, split: str) -> Path:
    """``<root>/Split-<split>``."""
    return Path(root) / f"{SPLIT_PREFIX}{split}"


def load_statistics(artifact_or_path: Any, splits: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read an ``ExampleStatistics`` artifact: split name → its statistics document.

    Args:
        artifact_or_path: the artifact (its ``uri`` is used) or its directory (a local
            path or an object-store URI).
        splits: the splits to read; default: the artifact's ``splits`` property when it
            has one, else every ``Split-*`` folder.

    Raises:
        DataValidationError: a split has no ``statistics.json`` or it is not valid JSON.

    Example:
        >>> stats = load_statistics(statistics_artifact)            # doctest: +SKIP
        >>> stats["train"]["columns"]["fare"]["numeric"]["mean"]    # doctest: +SKIP
        11.93
    """
    from jfx import _storage as storage

    root = str(getattr(artifact_or_path, "uri", artifact_or_path))
    if splits is None:
        props = getattr(artifact_or_path, "properties", None) or {}
        splits = list(props.get("splits") or [])
        if not splits and storage.is_remote(root):
            tops = {PurePosixPath(f.rel).parts[0] for f in storage.list_files(root) if "/" in f.rel}
            splits = sorted(t[len(SPLIT_PREFIX):] for t in tops if t.startswith(SPLIT_PREFIX))
        elif not splits:
            splits = sorted(p.name[len(SPLIT_PREFIX):] for p in Path(root).glob(f"{SPLIT_PREFIX}*") if p.is_dir())
    if not splits:
        raise DataValidationError(f"{root}: no {SPLIT_PREFIX}<name>/{STATISTICS_FILE}; is it an ExampleStatistics artifact?")
    out = {}
    for split in splits:
        path = storage.join(root, f"{SPLIT_PREFIX}{split}", STATISTICS_FILE)
        try:
            out[split] = json.loads(storage.read_text(path))
        except FileNotFoundError:
            raise DataValidationError(f"{path}: split {split!r} has no statistics") from None
        except json.JSONDecodeError as err:
            raise DataValidationError(f"{path}: not valid JSON ({err})") from err
    return out
