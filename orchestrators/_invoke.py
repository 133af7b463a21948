"""Calling a component inside the launcher: its arguments, its log capture and its timeout."""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfx import _storage as storage
from jfx.errors import ComponentError, ComponentTimeoutError, HaltPipeline
from jfx.metadata import ArtifactRecord
from jfx.orchestrators._cache import Inputs
from jfx.orchestrators._logs import capture
from jfx.pipelines import NodeIR
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._component import Component
from jfx.pipelines._context import ExecutionContext, reset_context, set_context

__all__ = ["Ran", "run_component"]


@dataclass(frozen=True)
class Ran:
    """What one attempt's component call produced: its output artifacts and a halt reason."""

    artifacts: dict[str, Artifact]
    halted: str | None


def run_component(comp: Component, node: NodeIR, inputs: Inputs,
                   params: dict[str, Any], stage: Path, ctx: ExecutionContext,
                   log_file: Path | None = None) -> Ran:
    """Call the component; return its output artifacts and a halt reason (or None)."""
    kwargs: dict[str, Any] = dict(params)

    def artifact(spec: Any, rec: ArtifactRecord) -> Artifact:
        # an input on an object store: a local copy, unless the component streams it
        uri = rec.uri if comp.streaming else str(storage.localize(rec.uri, rec.fingerprint))
        return spec.type(uri, id=rec.id, name=rec.name, properties=dict(rec.properties),
                         fingerprint=rec.fingerprint, stored_uri=rec.uri)

    for key, in_spec in comp.spec.inputs.items():
        rec = inputs.get(key)
        if isinstance(rec, list) or in_spec.many:
            kwargs[key] = [artifact(in_spec, r) for r in rec or []]  # type: ignore[union-attr]
        else:
            kwargs[key] = None if rec is None else artifact(in_spec, rec)
    outputs: dict[str, Artifact] = {}
    for key, out_spec in comp.spec.outputs.items():
        out_dir = stage / key
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs[key] = kwargs[key] = out_spec.type(out_dir, name=f"{node.id}.{key}")
    token = set_context(ctx)
    try:
        fn = comp.fn if log_file is None else _logged(comp.fn, log_file)
        result = _call_with_timeout(fn, kwargs, node.options.timeout_s, node.id)
    except HaltPipeline as halt:
        return Ran(outputs, str(halt) or f"node {node.id!r} halted the pipeline")
    finally:
        reset_context(token)
    if result is not None:
        raise ComponentError(
            f"component {comp.name} (node {node.id!r}) returned {type(result).__name__}; components "
            "return nothing: write results into Output[...] artifacts (files under .uri, small values in .properties)"
        )
    return Ran(outputs, None)


def _logged(fn: Any, log_file: Path) -> Any:
    """``fn`` with what it prints and logs (on its thread) copied into ``log_file``."""

    def run(**kwargs: Any) -> Any:
        with capture(log_file):
            return fn(**kwargs)

    return run


def _call_with_timeout(fn: Any, kwargs: dict[str, Any], timeout_s: float | None, node_id: str) -> Any:
    """``fn(**kwargs)``, or ComponentTimeoutError after ``timeout_s`` (the thread is abandoned)."""
    if timeout_s is None:
        return fn(**kwargs)
    box: dict[str, Any] = {}
    run_in = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = run_in.run(fn, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed back to the launcher
            box["error"] = err

    worker = threading.Thread(target=target, name=f"jfx-{node_id}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ComponentTimeoutError(f"node {node_id!r} timed out after {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")
