"""The on-disk layout of an ``Examples`` artifact, shared by every data component.

``<uri>/Split-<name>/part-<nnnnn>.parquet``: one folder per split, Parquet shards in
it. The artifact's properties record ``splits`` (names, in order), ``row_counts``
(split → rows), ``columns`` (column → jfx type: int, float, string, bool, timestamp),
and where they apply ``span``, ``version``, ``input_fingerprint`` and
``bad_rows_skipped``.
"""

from __future__ import annotations

from pathlib import Path

from jfx.errors import DataValidationError
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._layouts import SPLIT_PREFIX

__all__ = ["SPLIT_PREFIX", "split_dir", "split_names", "split_files"]



def split_dir(artifact: Artifact, split: str) -> Path:
    return Path(artifact.uri) / f"{SPLIT_PREFIX}{split}"


def split_names(artifact: Artifact) -> list[str]:
    """The artifact's splits: from its ``splits`` property, else from its folders."""
    names = artifact.properties.get("splits")
    if names:
        return list(names)
    found = sorted(p.name[len(SPLIT_PREFIX):] for p in Path(artifact.uri).glob(f"{SPLIT_PREFIX}*") if p.is_dir())
    if not found:
        raise DataValidationError(f"{artifact.uri}: no {SPLIT_PREFIX}<name> folders; is it an Examples artifact?")
    return found


def split_files(artifact: Artifact, split: str) -> list[Path]:
    """The Parquet shards of one split, in order."""
    folder = split_dir(artifact, split)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise DataValidationError(f"{folder}: split {split!r} has no Parquet files")
    return files
