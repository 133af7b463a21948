"""Importer: a node that registers data made outside the pipeline as an artifact.

``Importer(source_uri, artifact_type)`` records the file, folder or object-store prefix at
``source_uri`` as an artifact of that type, with the given properties, so it can feed any
component as TFX's ``Importer`` and kfp's ``dsl.importer`` do. Nothing is copied: the
artifact's URI is ``source_uri`` itself, and a garbage collection never deletes its
files (the artifact carries ``properties["imported"] = True``).

The artifact's fingerprint is its content's: the bytes of local files, and the size and
ETag of each object on a store (one listing, nothing downloaded). A rerun over unchanged
data finds the artifact it registered before (``reimport=False``, the default), so the
nodes downstream stay cached; changed data gives a new artifact and they run again.

Example:
    >>> from jfx.components import Importer
    >>> from jfx.types import Schema
    >>> node = Importer("s3://bucket/schemas/v3", Schema, properties={"owner": "data-team"})
    >>> node.id, node.outputs["result"].type.__name__
    ('import_schema', 'Schema')
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from jfx import _storage as storage
from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.metadata import ArtifactRecord, ArtifactState, ListOptions
from jfx.pipelines import Output, Parameter, resolver
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._pipeline import Node

__all__ = ["Importer", "fingerprint_uri"]

_CHUNK = 1 << 20


def fingerprint_uri(uri: str) -> str:
    """A blake2b hash of every file under ``uri`` (or of the file ``uri``): relative paths
    and bytes for local files; relative paths, sizes and ETags for objects on a store.

    Raises:
        InvalidArgumentError: nothing is at ``uri``.
    """
    files = storage.list_files(uri) if storage.exists(uri) else []
    if not files:
        raise InvalidArgumentError(f"Importer: nothing to import at {uri} (no such file, folder or prefix, "
                                   "or it is empty)")
    h = hashlib.blake2b(digest_size=20)
    remote = storage.is_remote(uri)
    for f in files:
        h.update(b"\0f" + f.rel.encode() + b"\0")
        if remote:
            h.update(f"{f.size}\0etag:{f.checksum}".encode())
            continue
        with storage.open_uri(f.uri, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


@resolver(name="Importer")
def _importer(ctx: Any, result: Output[Artifact], source_uri: Parameter[str] = "",
              properties: Parameter[dict] | None = None, reimport: Parameter[bool] = False,
              artifact_type: Parameter[str] = "") -> dict[str, ArtifactRecord | None]:
    """Registers ``source_uri`` as an artifact of type ``artifact_type``.

    Args:
        source_uri: the file, folder or object-store prefix to register (not copied).
        properties: the artifact's properties (JSON values).
        reimport: register a new artifact even when one with this URI, type, content and
            properties exists (default: reuse it, so downstream caches hold).
        artifact_type: the artifact type's name (set from the ``artifact_type`` class).
    """
    uri = storage.check_uri(source_uri)
    fingerprint = fingerprint_uri(uri)
    props = {**(properties or {}), "imported": True}
    store = ctx.store
    if not reimport:
        for record in store.get_artifacts(type_name=artifact_type, uri=uri,
                                          options=ListOptions(order_by="id", descending=True, limit=50)):
            if (record.state == ArtifactState.LIVE and record.fingerprint == fingerprint
                    and record.properties == props):
                return {"result": record}
    record = ArtifactRecord(artifact_type, uri, name="result", state=ArtifactState.LIVE,
                            fingerprint=fingerprint, properties=props)
    [record.id] = store.put_artifacts([record])
    return {"result": record}


def Importer(source_uri: str, artifact_type: type[Artifact], *, properties: dict | None = None,  # noqa: N802
             reimport: bool = False) -> Node:
    """A node whose output ``result`` is the data at ``source_uri``, as an ``artifact_type``.

    Args:
        source_uri: a local file or folder, or an object-store URI (``s3://``, ``gs://``).
        artifact_type: the type of the artifact (``jfx.types.Schema``, ``Model``, ...).
        properties: properties the artifact carries (JSON values), e.g. ``row_counts``.
        reimport: always register a new artifact (default: reuse the one registered for
            the same URI, type, content and properties).

    The node's id is ``import_<type>`` (give it another with ``.with_id``).
    """
    if not (isinstance(artifact_type, type) and issubclass(artifact_type, Artifact)):
        raise InvalidPipelineError(f"Importer: artifact_type must be an artifact class from jfx.types, "
                                   f"got {artifact_type!r}")
    if not isinstance(source_uri, str) or not source_uri.strip():
        raise InvalidPipelineError(f"Importer: source_uri must be a non-empty URI or path, got {source_uri!r}")
    if not storage.is_remote(source_uri):
        source_uri = str(Path(source_uri).expanduser().absolute())
    node = _importer(source_uri=str(source_uri), properties=dict(properties or {}), reimport=bool(reimport),
                     artifact_type=artifact_type.TYPE_NAME,
                     _output_types={"result": artifact_type})
    return node.with_id("import_" + re.sub(r"(?<!^)(?=[A-Z])", "_", artifact_type.__name__).lower())
