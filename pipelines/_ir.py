"""The pipeline IR: one versioned JSON document that every orchestrator consumes.

``Pipeline.to_ir()`` writes it; :meth:`PipelineIR.from_dict` reads it back into
frozen dataclasses. A node names its component by module, qualified name and source
file, so a runner in another process (a worker pool, a Beam worker, a Kubeflow pod)
imports the component itself; nothing else crosses from the defining process.

Shape (``ir_version`` 1)::

    {"ir_version": 1, "jfx_version": "0.1.0",
     "pipeline": {"name": ..., "pipeline_root": ..., "metadata_url": ..., "enable_cache": true,
                  "beam_pipeline_args": null},
     "parameters": {"rows": {"type": "int", "default": 100, "required": false}},
     "nodes": [{"id": "make_data",
                "component": {"name": ..., "module": ..., "qualname": ..., "file": ..., "code_version": ...,
                               "description": ..., "args": {name: text}},  # the last two only when documented
                "parameters": {"rows": {"runtime": "rows"}, "seed": {"value": 0}},
                "inputs": {"table": {"producer": "make_data", "key": "data", "type": "Dataset", "optional": false}},
                "outputs": {"data": {"type": "Dataset", "type_path": ["Dataset", "Artifact"]}},
                "upstream": ["..."],
                "options": {"cache": true, "retries": 0, "backoff_s": 1.0, "timeout_s": null, "resources": {}},
                "condition": null, "trigger": "all_success"}]}

Nodes are listed in a topological order. An input fed by several artifacts (``Input[list[T]]``
wired with ``jfx.Collected``) lists them: ``{"producer": <first>, "key": ..., "sources":
[[producer, key], ...], ...}``. ``condition`` (from ``jfx.If``) is a predicate the launcher
decides when the node is due, e.g. ``{"op": "==", "args": [{"output": {"producer": "Evaluator",
"key": "blessing", "property": "blessed"}}, {"value": true}]}`` (operands: ``value``, ``param``,
``output``; ops: ``== != < <= > >=``, ``and``, ``or``, ``not``). ``trigger`` is ``all_done`` for
an ``ExitHandler``'s node: it runs once its upstream nodes are done, whatever their outcome.

A dynamic ``ForEach`` (over an output value) stays in the IR as templates: each node made
inside has ``"loop": {"producer": ..., "key": ..., "property": ...}`` (the list's source, among
its upstream nodes), a parameter that takes the item is ``{"item": [path...], "type": "int"}``,
and a ``Collected`` input of a template is ``{"producer": <template>, "key": ..., "collected":
true}``. A runner replaces the templates with their copies once the source has run
(:func:`jfx.pipelines._expand.instantiate`); the copies are ordinary nodes.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.util
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfx._version import __version__
from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.pipelines._component import PARAMETER_TYPES, Component, NodeOptions, check_parameter_value
from jfx.pipelines._control import check_condition, condition_params, condition_refs
from jfx.pipelines._file_errors import file_error

__all__ = [
    "IR_VERSION",
    "PipelineIR",
    "NodeIR",
    "ComponentRef",
    "InputIR",
    "OutputIR",
    "ParamIR",
    "RuntimeParamIR",
    "load_component",
    "load_module_from_file",
]

IR_VERSION = 1
TRIGGERS = ("all_success", "all_done")


@dataclass(frozen=True)
class ComponentRef:
    """Where a component's code lives: importable module and qualname, and its file."""

    name: str
    module: str
    qualname: str
    file: str | None
    code_version: str
    description: str = ""  # the docstring's summary, for readers of a run (the UI, a Kubeflow spec)
    arg_docs: tuple[tuple[str, str], ...] = ()  # (input, output or parameter name, its Args: entry)

    @classmethod
    def of(cls, comp: Component) -> ComponentRef:
        try:
            import inspect

            file = str(Path(inspect.getfile(comp.fn)).resolve())
        except (TypeError, OSError):
            file = None
        spec = comp.spec
        docs = tuple((name, d.description) for group in (spec.inputs, spec.outputs, spec.parameters)
                     for name, d in group.items() if d.description)
        return cls(comp.name, comp.fn.__module__, comp.fn.__qualname__, file, comp.code_version,
                   spec.description, docs)


@dataclass(frozen=True)
class InputIR:
    producer: str
    key: str
    type: str
    optional: bool = False
    sources: tuple[tuple[str, str], ...] = ()  # set for a list input: every (producer, key)
    collected: bool = False  # jfx.Collected of a dynamic ForEach's template: its copies, listed at run time

    @property
    def many(self) -> bool:
        return bool(self.sources) or self.collected


@dataclass(frozen=True)
class OutputIR:
    type: str
    type_path: tuple[str, ...]


@dataclass(frozen=True)
class ParamIR:
    """A node parameter: a literal ``value``, a reference to a ``runtime`` parameter, or
    (in a dynamic ForEach's template) the loop's ``item`` (a path into it) of type ``type``."""

    value: Any = None
    runtime: str | None = None
    item: tuple[Any, ...] | None = None
    type: str | None = None


@dataclass(frozen=True)
class RuntimeParamIR:
    name: str
    type: str
    default: Any = None
    required: bool = False

    @property
    def py_type(self) -> builtins.type:
        return PARAMETER_TYPES[self.type]

    def parse(self, raw: Any) -> Any:
        """Turn a value given at run time (a CLI string or a JSON value) into this type."""
        where = f"pipeline parameter {self.name!r}"
        t = self.py_type
        if isinstance(raw, str) and t is not str:
            try:
                if t is bool:
                    low = raw.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(raw)
                    raw = low in ("true", "1", "yes")
                elif t in (dict, list):
                    raw = json.loads(raw)
                else:
                    raw = t(raw)
            except ValueError:
                raise InvalidArgumentError(f"{where} expects {t.__name__}, got {raw!r}") from None
        try:
            return check_parameter_value(raw, t, where)
        except InvalidPipelineError as err:
            raise InvalidArgumentError(str(err)) from None


@dataclass(frozen=True)
class NodeIR:
    id: str
    component: ComponentRef
    parameters: dict[str, ParamIR]
    inputs: dict[str, InputIR | None]
    outputs: dict[str, OutputIR]
    upstream: tuple[str, ...]
    options: NodeOptions = NodeOptions()  # noqa: RUF009 - NodeOptions is frozen: one shared default is safe
    condition: dict[str, Any] | None = None
    trigger: str = "all_success"
    loop: dict[str, str] | None = None  # a dynamic ForEach's template: its items' source (producer, key, property)

    def resolve_parameters(self, values: dict[str, Any]) -> dict[str, Any]:
        """This node's parameter values, with runtime parameters taken from ``values``."""
        return {
            k: (values[p.runtime] if p.runtime is not None else p.value)
            for k, p in self.parameters.items()
        }


@dataclass(frozen=True)
class PipelineIR:
    """The compiled pipeline, as every runner sees it."""

    name: str
    pipeline_root: str | None
    metadata_url: str | None
    enable_cache: bool
    parameters: dict[str, RuntimeParamIR]
    nodes: tuple[NodeIR, ...]
    beam_pipeline_args: tuple[str, ...] | None = None

    def node(self, node_id: str) -> NodeIR:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise InvalidArgumentError(
            f"pipeline {self.name!r} has no node {node_id!r}; nodes: {', '.join(n.id for n in self.nodes)}"
        )

    def downstream(self, node_id: str) -> set[str]:
        """Every node that depends on ``node_id``, directly or transitively."""
        children: dict[str, list[str]] = {}
        for n in self.nodes:
            for up in n.upstream:
                children.setdefault(up, []).append(n.id)
        found: set[str] = set()
        stack = list(children.get(node_id, ()))
        while stack:
            nid = stack.pop()
            if nid not in found:
                found.add(nid)
                stack.extend(children.get(nid, ()))
        return found

    def upstream_of(self, node_id: str) -> set[str]:
        """Every node ``node_id`` depends on, directly or transitively."""
        by_id = {n.id: n for n in self.nodes}
        found: set[str] = set()
        stack = list(self.node(node_id).upstream)
        while stack:
            nid = stack.pop()
            if nid not in found:
                found.add(nid)
                stack.extend(by_id[nid].upstream)
        return found

    def select(self, from_nodes: list[str] | None = None, to_nodes: list[str] | None = None) -> set[str]:
        """The nodes of a partial run: from ``from_nodes`` downstream, up to ``to_nodes``.

        Either list may be empty; both empty selects every node. Unknown ids raise.
        """
        chosen = {n.id for n in self.nodes}
        if from_nodes:
            chosen &= set().union(*({f} | self.downstream(f) for f in (self.node(x).id for x in from_nodes)))
        if to_nodes:
            chosen &= set().union(*({t} | self.upstream_of(t) for t in (self.node(x).id for x in to_nodes)))
        return chosen

    def resolve_parameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Pipeline parameter values: defaults, overridden by ``overrides`` (e.g. ``--param``)."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.parameters)
        if unknown:
            raise InvalidArgumentError(
                f"pipeline {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                f"its parameters: {', '.join(self.parameters) or '(none)'}"
            )
        values: dict[str, Any] = {}
        for name, p in self.parameters.items():
            if name in overrides:
                values[name] = p.parse(overrides[name])
            elif p.required:
                raise InvalidArgumentError(
                    f"pipeline parameter {name!r} ({p.type}) has no default; give it with --param {name}=VALUE"
                )
            else:
                values[name] = p.default
        return values

    def fingerprint(self) -> str:
        """A stable hash of the IR (for caching parsed IRs in worker processes)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ir_version": IR_VERSION,
            "jfx_version": __version__,
            "pipeline": {
                "name": self.name,
                "pipeline_root": self.pipeline_root,
                "metadata_url": self.metadata_url,
                "enable_cache": self.enable_cache,
                "beam_pipeline_args": list(self.beam_pipeline_args) if self.beam_pipeline_args is not None else None,
            },
            "parameters": {
                k: {"type": p.type, "default": p.default, "required": p.required}
                for k, p in self.parameters.items()
            },
            "nodes": [
                {
                    "id": n.id,
                    "component": {
                        "name": n.component.name,
                        "module": n.component.module,
                        "qualname": n.component.qualname,
                        "file": n.component.file,
                        "code_version": n.component.code_version,
                        **({"description": n.component.description} if n.component.description else {}),
                        **({"args": dict(n.component.arg_docs)} if n.component.arg_docs else {}),
                    },
                    "parameters": {k: _param_doc(p) for k, p in n.parameters.items()},
                    "inputs": {
                        k: (None if i is None else {
                            "producer": i.producer, "key": i.key, "type": i.type, "optional": i.optional,
                            **({"sources": [list(x) for x in i.sources]} if i.sources else {}),
                            **({"collected": True} if i.collected else {}),
                        })
                        for k, i in n.inputs.items()
                    },
                    "outputs": {k: {"type": o.type, "type_path": list(o.type_path)} for k, o in n.outputs.items()},
                    "upstream": list(n.upstream),
                    "options": n.options.to_dict(),
                    "condition": n.condition,
                    "trigger": n.trigger,
                    **({"loop": dict(n.loop)} if n.loop is not None else {}),
                }
                for n in self.nodes
            ],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PipelineIR:
        """Read an IR document; raise InvalidPipelineError naming what is malformed."""
        if not isinstance(doc, dict):
            raise InvalidPipelineError(f"an IR document is a JSON object, got {type(doc).__name__}")
        version = doc.get("ir_version")
        if version != IR_VERSION:
            raise InvalidPipelineError(
                f"IR version {version!r} is not supported by jfx {__version__} (expects {IR_VERSION})"
            )
        try:
            p = doc["pipeline"]
            params = {
                k: RuntimeParamIR(k, v["type"], v.get("default"), bool(v.get("required", False)))
                for k, v in doc.get("parameters", {}).items()
            }
            for rp in params.values():
                if rp.type not in PARAMETER_TYPES:
                    raise InvalidPipelineError(f"IR parameter {rp.name!r} has unknown type {rp.type!r}")
            nodes = []
            for n in doc["nodes"]:
                c = n["component"]
                nodes.append(
                    NodeIR(
                        id=n["id"],
                        component=ComponentRef(c["name"], c["module"], c["qualname"], c.get("file"), c["code_version"],
                                               str(c.get("description") or ""),
                                               tuple((str(k), str(v)) for k, v in (c.get("args") or {}).items())),
                        parameters={k: _param_ir(v) for k, v in n.get("parameters", {}).items()},
                        inputs={
                            k: None if v is None else InputIR(
                                v["producer"], v["key"], v["type"], bool(v.get("optional")),
                                tuple((str(p), str(q)) for p, q in v.get("sources") or ()), bool(v.get("collected")))
                            for k, v in n.get("inputs", {}).items()
                        },
                        outputs={k: OutputIR(v["type"], tuple(v["type_path"])) for k, v in n.get("outputs", {}).items()},
                        upstream=tuple(n.get("upstream", ())),
                        options=NodeOptions.from_dict(n.get("options")),
                        condition=n.get("condition"),
                        trigger=n.get("trigger") or "all_success",
                        loop=_loop_ir(n.get("loop"), n["id"]),
                    )
                )
        except (KeyError, TypeError, AttributeError) as err:
            raise InvalidPipelineError(f"malformed IR document: missing or wrong field {err}") from err
        beam = p.get("beam_pipeline_args")
        ir = cls(p["name"], p.get("pipeline_root"), p.get("metadata_url"), bool(p.get("enable_cache", True)),
                 params, tuple(nodes), tuple(beam) if beam is not None else None)
        ids = [n.id for n in ir.nodes]
        known: set[str] = set()
        for n in ir.nodes:
            for up in n.upstream:
                if up not in known:
                    raise InvalidPipelineError(
                        f"IR node {n.id!r} depends on {up!r}, which is not an earlier node "
                        f"(nodes: {', '.join(ids)})"
                    )
            for pname, prm in n.parameters.items():
                if prm.runtime is not None and prm.runtime not in params:
                    raise InvalidPipelineError(
                        f"IR node {n.id!r} parameter {pname!r} refers to unknown runtime parameter {prm.runtime!r}"
                    )
                if prm.item is not None and n.loop is None:
                    raise InvalidPipelineError(f"IR node {n.id!r} parameter {pname!r} is a ForEach item, but the "
                                               "node is in no dynamic ForEach")
            if n.loop is not None and n.loop["producer"] not in n.upstream:
                raise InvalidPipelineError(f"IR node {n.id!r} loops over an output of {n.loop['producer']!r}, which is "
                                           "not among its upstream nodes")
            if n.trigger not in TRIGGERS:
                raise InvalidPipelineError(f"IR node {n.id!r} has unknown trigger {n.trigger!r}")
            if n.condition is not None:
                check_condition(n.condition, f"IR node {n.id!r}")
                for producer, _key, _prop in condition_refs(n.condition):
                    if producer not in n.upstream:
                        raise InvalidPipelineError(
                            f"IR node {n.id!r} has a condition on {producer!r}, which is not among its upstream nodes"
                        )
                for pname in condition_params(n.condition):
                    if pname not in params:
                        raise InvalidPipelineError(
                            f"IR node {n.id!r} condition refers to unknown runtime parameter {pname!r}"
                        )
            known.add(n.id)
        return ir


def _param_doc(p: ParamIR) -> dict[str, Any]:
    if p.runtime is not None:
        return {"runtime": p.runtime}
    if p.item is not None:
        return {"item": list(p.item), "type": p.type}
    return {"value": p.value}


def _param_ir(doc: dict[str, Any]) -> ParamIR:
    if "runtime" in doc:
        return ParamIR(runtime=doc["runtime"])
    if "item" in doc:
        if doc.get("type") not in PARAMETER_TYPES:
            raise InvalidPipelineError(f"IR ForEach item parameter has unknown type {doc.get('type')!r}")
        return ParamIR(item=tuple(doc["item"]), type=doc["type"])
    return ParamIR(value=doc.get("value"))


def _loop_ir(doc: Any, node_id: str) -> dict[str, str] | None:
    if doc is None:
        return None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("producer", "key", "property")):
        raise InvalidPipelineError(f"IR node {node_id!r}: malformed loop {doc!r} (needs producer, key and property)")
    return {k: doc[k] for k in ("producer", "key", "property")}


# Modules executed from a file by name, and one lock per name. The import system's
# own per-module lock does not cover a module executed by hand: while one thread runs
# the file, the module is already in sys.modules (dataclasses and pickling look it up
# there), and another thread that asks for it must wait instead of using it half-made.
_FILE_MODULES: dict[str, Path] = {}
_FILE_LOCKS: dict[str, threading.RLock] = {}
_REGISTRY_LOCK = threading.Lock()


def _file_module_lock(module_name: str, path: Path) -> threading.RLock:
    with _REGISTRY_LOCK:
        _FILE_MODULES[module_name] = path
        return _FILE_LOCKS.setdefault(module_name, threading.RLock())


def load_module_from_file(path: str | Path, module_name: str | None = None, *, reload: bool = False) -> Any:
    """Import a Python file as a module (registered in ``sys.modules``).

    The default module name is derived from the file's resolved path, so every process
    that loads the same file gives it the same name, and components defined in it
    resolve by that name. ``reload=True`` executes the file again even if that module
    is already loaded (so an edited file takes effect). Safe from many threads at once:
    the file is executed once, and the other threads wait for it and get the whole module.

    Raises:
        InvalidArgumentError: There is no such file.
        PipelineFileError: The file has a syntax error or raised while it ran; the
            message names the user's file and line, the original error is chained.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise InvalidArgumentError(f"{path}: no such file")
    if module_name is None:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
        module_name = f"_jfx_file_{stem}_{digest}"
    with _file_module_lock(module_name, path):
        if module_name in sys.modules and not reload:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InvalidArgumentError(f"{path}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(module_name)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as err:
            if previous is None:
                sys.modules.pop(module_name, None)
            else:
                sys.modules[module_name] = previous
            if isinstance(err, Exception):  # not Ctrl-C nor an exit the file asked for
                raise file_error(path, err) from err
            raise
        return module


def load_component(ref: ComponentRef) -> Component:
    """Import the component a node refers to, in this process.

    Safe from any number of threads at once (a runner starts nodes in parallel, each
    loading its component): a module that another thread is still importing is waited
    for, never read half-initialised.

    Raises:
        InvalidPipelineError: the module or the name cannot be found, or the name is
            not a component.
    """
    if "<locals>" in ref.qualname:
        raise InvalidPipelineError(
            f"component {ref.name} ({ref.qualname}) is defined inside a function; runners import "
            "components by name, so define it at module level"
        )
    module = _module_of(ref)
    obj: Any = module
    try:
        for part in ref.qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise InvalidPipelineError(
            f"component {ref.name}: {ref.module}.{ref.qualname} not found (file {ref.file})"
        ) from None
    if not isinstance(obj, Component):
        raise InvalidPipelineError(f"{ref.module}.{ref.qualname} is not a @component")
    return obj


def _module_of(ref: ComponentRef) -> Any:
    """The whole module that defines the component ``ref`` names."""
    if ref.module == "__main__":
        main = sys.modules.get("__main__")
        if main is not None and _defines(main, ref):
            return main  # the script that built the pipeline runs it in this process
        if not ref.file:
            raise InvalidPipelineError(f"component {ref.name}: defined in __main__ and its file is unknown")
        return load_module_from_file(ref.file)
    try:
        # Not a look-up in sys.modules: a module another thread is importing is there
        # before its body has run; import_module waits for that thread to finish.
        module = importlib.import_module(ref.module)
    except ImportError as err:
        if not ref.file:
            raise InvalidPipelineError(
                f"component {ref.name}: cannot import module {ref.module!r} and its file is unknown"
            ) from err
        return load_module_from_file(ref.file, ref.module)
    with _REGISTRY_LOCK:
        path = _FILE_MODULES.get(ref.module)
    if path is not None:
        # executed from a file, by hand: the import system found it in sys.modules, maybe
        # while another thread still runs it; taking the file's lock waits for that
        return load_module_from_file(path, ref.module)
    return module


def _defines(module: Any, ref: ComponentRef) -> bool:
    return isinstance(getattr(module, ref.qualname.split(".")[0], None), Component)
