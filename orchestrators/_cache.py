"""The launcher's cache: what a node's cache key is made of, the lookup, and why a node misses.

The key hashes the *material*: the component's name and code version, the parameter
values, the input artifacts' fingerprints, the output types and, for a component that
reads external data, that data's fingerprint (an ExitHandler's node adds its upstream
nodes' states). A hit is an earlier COMPLETE execution of the same pipeline node with
the same key whose outputs still exist (LIVE: never one ``jfx gc`` deleted); each lookup is one indexed query for the
candidates (filtered by the node's context in the query) plus one per candidate whose
outputs are checked, newest first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from jfx import _storage as storage
from jfx.metadata import (
    ArtifactRecord,
    ArtifactState,
    ExecutionRecord,
    ExecutionState,
    ListOptions,
    MetadataStore,
)
from jfx.metadata._executions_info import ExecutionInfo
from jfx.orchestrators._publish import canonical_json
from jfx.pipelines import NodeIR

__all__ = ["CANDIDATES", "CacheHit", "cache_key", "cache_material", "find_cached", "miss_reason"]

# How many earlier executions with the same key are looked at, newest first: past a few,
# their outputs are most likely deleted too, and the node simply runs.
CANDIDATES = 20

Inputs = dict[str, ArtifactRecord | list[ArtifactRecord] | None]


@dataclass(frozen=True)
class CacheHit:
    """An earlier execution whose outputs a node reuses."""

    source: ExecutionRecord
    outputs: dict[str, list[ArtifactRecord]]

    @property
    def halted(self) -> str | None:
        """The halt reason the source recorded: a cache hit halts the pipeline as it did."""
        return ExecutionInfo.from_record(self.source).halted


def cache_material(component: str, code_version: str, params: dict[str, Any], inputs: Inputs,
                   output_types: dict[str, str], *, external: str | None = None,
                   upstream_states: dict[str, str] | None = None) -> dict[str, Any]:
    """What a node's cache key is hashed from (also recorded, to explain a later miss)."""
    material: dict[str, Any] = {
        "component": component,
        "code_version": code_version,
        "parameters": params,
        "inputs": {k: ([x.fingerprint for x in r] if isinstance(r, list) else r.fingerprint if r is not None else None)
                   for k, r in inputs.items()},
        "outputs": output_types,
    }
    if upstream_states is not None:
        material["upstream_states"] = upstream_states
    if external is not None:
        material["external"] = external
    return material


def cache_key(material: dict[str, Any]) -> str:
    """The SHA-256 of the canonical JSON of ``material``."""
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def find_cached(store: MetadataStore, node: NodeIR, node_ctx_id: int, key: str) -> CacheHit | None:
    """The newest COMPLETE execution of this pipeline node with ``key`` whose outputs all still exist."""
    candidates = store.get_executions(
        node_id=node.id, state=ExecutionState.COMPLETE, cache_key=key, context_id=node_ctx_id,
        options=ListOptions(limit=CANDIDATES, order_by="id", descending=True),
    )
    for candidate in candidates:
        assert candidate.id is not None
        _, outputs = store.get_execution_artifacts(candidate.id)
        if set(outputs) != set(node.outputs):
            continue
        if all(a.state == ArtifactState.LIVE and storage.isdir(a.uri) for recs in outputs.values() for a in recs):
            return CacheHit(candidate, outputs)
    return None


def miss_reason(store: MetadataStore, node: NodeIR, node_ctx_id: int, material: dict[str, Any]) -> str:
    """Why a node runs: what differs from its latest successful execution in this pipeline."""
    earlier = store.get_executions(
        node_id=node.id, state=[ExecutionState.COMPLETE, ExecutionState.CACHED], context_id=node_ctx_id,
        options=ListOptions(limit=1, order_by="id", descending=True),
    )
    if not earlier:
        return "no earlier run"
    before = ExecutionInfo.from_record(earlier[0]).cache_material or {}
    reasons = []
    if before.get("code_version") != material["code_version"]:
        reasons.append("changed component source")
    old_p, new_p = before.get("parameters") or {}, material["parameters"]
    for k in sorted(set(old_p) | set(new_p)):
        if old_p.get(k) != new_p.get(k):
            reasons.append(f"new parameter value: {k} {old_p.get(k)!r} -> {new_p.get(k)!r}")
    old_i, new_i = before.get("inputs") or {}, material["inputs"]
    changed = [k for k in sorted(set(old_i) | set(new_i)) if old_i.get(k) != new_i.get(k)]
    if changed:
        reasons.append(f"changed upstream artifact: {', '.join(changed)}")
    if before.get("external") != material.get("external"):
        reasons.append("changed external input")
    if before.get("outputs") != material["outputs"]:
        reasons.append("changed output types")
    if reasons:
        return "; ".join(reasons)
    assert earlier[0].id is not None
    _, outputs = store.get_execution_artifacts(earlier[0].id)
    deleted = [a for recs in outputs.values() for a in recs if a.state.deleted and a.deleted_time is not None]
    if deleted:
        return f"earlier outputs were {deleted[0].deleted_note()}"
    return "earlier outputs no longer available"
