"""The layout of an ``Examples`` artifact, shared by every data component.

``<uri>/Split-<name>/part-<nnnnn>.parquet``: one folder per split, Parquet shards in
it. The artifact's properties record ``splits`` (names, in order), ``row_counts``
(split → rows), ``columns`` (column → jfx type: int, float, string, bool, timestamp),
and where they apply ``span``, ``version``, ``input_fingerprint`` and
``bad_rows_skipped``.

The artifact may be a local directory or a prefix on an object store (a component
declared ``@component(streaming=True)`` gets its inputs' recorded URIs): these functions
list it through :mod:`jfx._storage`, and readers open the shards they name with
:func:`jfx._storage.open_parquet`, which streams byte ranges from a store. Other inputs
of a streaming component that are read as local files take :func:`local_dir`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TypeVar

from jfx import _storage as storage
from jfx.errors import DataValidationError
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._layouts import SPLIT_PREFIX

__all__ = ["SPLIT_PREFIX", "ShardRef", "split_dir", "split_names", "split_files", "local_dir", "localized"]

A = TypeVar("A", bound=Artifact)

#: A shard: a local :class:`~pathlib.Path`, or the URI (``s3://...``) of one on a store.
ShardRef = Path | str


def split_dir(artifact: Artifact, split: str) -> ShardRef:
    """The split's folder: a Path for a local artifact, a URI for one on a store."""
    if storage.is_remote(artifact.uri):
        return storage.join(artifact.uri, f"{SPLIT_PREFIX}{split}")
    return Path(artifact.uri) / f"{SPLIT_PREFIX}{split}"


def split_names(artifact: Artifact) -> list[str]:
    """The artifact's splits: from its ``splits`` property, else from its folders."""
    names = artifact.properties.get("splits")
    if names:
        return list(names)
    if storage.is_remote(artifact.uri):
        tops = {PurePosixPath(f.rel).parts[0] for f in storage.list_files(artifact.uri) if "/" in f.rel}
        found = sorted(t[len(SPLIT_PREFIX):] for t in tops if t.startswith(SPLIT_PREFIX))
    else:
        found = sorted(p.name[len(SPLIT_PREFIX):] for p in Path(artifact.uri).glob(f"{SPLIT_PREFIX}*") if p.is_dir())
    if not found:
        raise DataValidationError(f"{artifact.uri}: no {SPLIT_PREFIX}<name> folders; is it an Examples artifact?")
    return found


def split_files(artifact: Artifact, split: str) -> list[ShardRef]:
    """The Parquet shards of one split, in order: Paths locally, URIs on a store (one listing)."""
    folder = split_dir(artifact, split)
    files: list[ShardRef]
    if isinstance(folder, str):
        files = [f.uri for f in storage.list_files(folder) if "/" not in f.rel and f.rel.endswith(".parquet")]
    else:
        files = list(sorted(folder.glob("*.parquet")))
    if not files:
        raise DataValidationError(f"{folder}: split {split!r} has no Parquet files")
    return files


def local_dir(artifact: Artifact) -> Path:
    """A local directory with the artifact's files: its own folder, or a copy of one on a
    store (cached by fingerprint, see :func:`jfx._storage.localize`). For the small
    inputs (a schema, a model, a transform graph) a streaming component reads as files."""
    return storage.localize(artifact.uri, artifact.fingerprint)


def localized(artifact: A) -> A:
    """The artifact itself if local, else a copy of it whose ``uri`` is :func:`local_dir`'s
    (``stored_uri``, ``id``, properties and fingerprint unchanged): what a component that
    does not stream would have been given."""
    if not storage.is_remote(artifact.uri):
        return artifact
    return type(artifact)(local_dir(artifact), id=artifact.id, name=artifact.name,
                          properties=dict(artifact.properties), fingerprint=artifact.fingerprint,
                          stored_uri=artifact.stored_uri)
