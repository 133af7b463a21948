"""Runs a compiled Kubeflow Pipelines (v2) spec the way the KFP v2 backend runs it.

``kfp.local`` and a stand-in HTTP server do not behave like a KFP backend: this harness
is written from the backend's own source (kubeflow/pipelines, tag 2.17.0; the parts it
models are unchanged in what they do for jfx's specs since 2.14.0) and runs each task
of a compiled spec the way a cluster would:

* the spec is compiled to an Argo Workflow as ``backend/src/v2/compiler/argocompiler``
  builds it (``argo.go``: root defaults filled into the runtime config, component specs and
  containers stored once as workflow arguments; ``dag.go``: one driver and one executor task
  per KFP task, ``depends`` on ``<dep>.Succeeded``, and a task whose trigger policy is
  ``ALL_UPSTREAM_TASKS_COMPLETED`` compiled into an exit *hook on each of its dependencies*,
  not into a DAG task). The Workflow's size is checked against etcd's default request limit
  (1.5 MiB) and its DAGs are checked as Argo checks them (a dependency must be a task of the
  same DAG);
* tasks start in dependency order as separate processes, ready tasks side by side, with
  Argo's fail-fast: once a task of a DAG failed, no new task of that DAG starts (KFP never
  sets ``failFast: false``); tasks downstream of a failure are omitted;
* each task's ExecutorInput is built as the driver builds it (``driver/resolve.go``,
  ``driver/container.go``: parameters resolved from the parent DAG's inputs and constants,
  ``{{$.pipeline_job_uuid}}`` and friends substituted, non-strings given to STRING inputs
  serialized, a ``triggerPolicy.condition`` evaluated on the resolved inputs as
  ``expression.Condition`` does (false: the execution is CANCELED and no pod starts; Argo's
  ``when`` skips the executor and omits the tasks that depend on it),
  ``PipelineTaskFinalStatus`` from the MLMD state of the producer task: the
  *execution* states ``COMPLETE``/``FAILED``/..., a DAG's state as
  ``metadata/client.go:UpdateDAGExecutionsState`` computes it), serialized as Go's
  protojson writes it (a whole float is written as an integer: 1.0 → ``1``);
* the launcher (``component/launcher_v2.go``) adds the component's input defaults,
  substitutes ``{{$}}`` and the other placeholders into the command and arguments and runs
  them; each argument must fit Linux's MAX_ARG_STRLEN (128 KiB), the launcher's own
  ``--executor_input`` argument included;
* every task runs in a private mount namespace (``unshare --mount``) where the repository
  checkout (and any checkout the environment's own ``jfx`` comes from) is hidden under an
  empty tmpfs, the environment's Python is kept, and ``jfx`` is importable only from a wheel
  built from the checkout. Volumes (``pvcMount``) are bind mounts of host folders at their
  mount paths, secrets (``secretAsEnv``) come from a dict, and each pod has its own
  ``HOME`` and ``TMPDIR``.

* output parameters (``driver.go provisionOutputs``: one file per output parameter, here
  under the pod's own ``tmp`` as the executor output file is) are collected as
  ``launcher_v2.go collectOutputParameters`` does (the executor output's ``parameterValues``
  first, else the parameter's file) and resolved for later tasks (``taskOutputParameter``);
* a ``parameterIterator`` task (a ``ParallelFor``) is compiled as ``dag.go iteratorTask``
  builds it and run as its drivers do: the items resolved from the task's inputs
  (``getItems``: a list, or a string holding JSON), one iteration DAG per item with the item
  as its ``itemInput``, the iterations side by side, and the loop DAG's outputs
  (``valueFromParameter``) gathered from every iteration in order (``resolve.go
  CollectInputs``); no items, no iteration, and the loop succeeds.

What is not modelled: Kubernetes itself (images, resources, retries' back-off, timeouts),
KFP's own caching (jfx turns it off), artifacts passed through KFP (jfx passes none),
artifact iterators and raw iterator items, and of CEL only the subset jfx generates for
trigger conditions (:func:`parse_condition`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

KFP_BACKEND_TAG = "2.17.0"
# etcd's default --max-request-bytes: a Workflow larger than this is refused by the API server
# (kubeflow/pipelines#9837).
ETCD_REQUEST_LIMIT = 1536 * 1024
# Linux's MAX_ARG_STRLEN (32 pages): the longest single argument execve accepts.
MAX_ARG_STRLEN = 128 * 1024
# Argo's templates that every compiled Workflow has (system-container-driver, -executor, -impl,
# system-dag-driver), as JSON, measured on test_data/compiled-workflows/add_numbers.yaml at 2.17.0.
SYSTEM_TEMPLATES_BYTES = 2264 + 390 + 1917 + 2076
# launcher_v2.go: the executor output file when the pipeline root's scheme is not a bucket's
OUTPUT_METADATA = "kfp_outputs/output_metadata.json"
EXIT_STRATEGY = "ALL_UPSTREAM_TASKS_COMPLETED"


class HarnessError(Exception):
    """The spec uses something this harness does not model."""


class BackendRefusedError(Exception):
    """The backend (API server, Argo) refuses the run before any task starts."""


# --------------------------------------------------------------------------- protojson

def go_float(x: float) -> str:
    """A float as Go's protojson writes it (``encoding/protojson``: like ``encoding/json``).

    >>> [go_float(v) for v in (1.0, 200.0, 0.5, 1e21, 1e-7, -2.5e-8, 123456789.0)]
    ['1', '200', '0.5', '1e+21', '1e-7', '-2.5e-8', '123456789']
    """
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        text = repr(x)  # shortest round-trip digits, exponent form
        mant, _, exp = text.partition("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        if len(digits) == 1 and sign == "+":
            digits = "0" + digits  # Go: e+21, e+06 ... but e-7 (one digit after '-' is shortened)
        return f"{mant}e{sign}{digits}"
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text != "-0" else "-0"


def protojson(value: Any) -> str:
    """A ``google.protobuf.Value`` tree as Go's protojson marshals it (maps sorted, numbers as Go writes them).

    >>> protojson({"b": [1.0, 2.5, True, None], "a": "x\\u00e9"})
    '{"a":"xé","b":[1,2.5,true,null]}'
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return go_float(float(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{protojson(v)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(protojson(v) for v in value) + "]"
    raise TypeError(f"not a protobuf Value: {value!r}")


def go_json(value: Any) -> str:
    """``encoding/json``'s Marshal of a decoded JSON document (keys sorted, HTML characters escaped)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def stably_marshal(msg: Any) -> str:
    """argocompiler/proto.go ``stablyMarshalJSON``: protojson, then re-marshalled by encoding/json."""
    return go_json(json.loads(protojson(msg)))


# --------------------------------------------------------------------------- trigger conditions (CEL)

class ConditionError(Exception):
    """The driver cannot evaluate a trigger condition: the task fails in its driver, no pod starts."""


_CEL_TOKEN = re.compile(r"""\s*(?:
    (?P<double>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].-])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
)""", re.X)
_CEL_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?", "n": "\n", "r": "\r", "t": "\t",
                "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _cel_unquote(literal: str) -> str:
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _CEL_ESCAPES:
            out.append(_CEL_ESCAPES[nxt])
            i += 2
        elif nxt in "xX":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif nxt == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        else:
            raise HarnessError(f"CEL escape \\{nxt} is not modelled")
    return "".join(out)


def parse_condition(text: str) -> Any:
    """A trigger condition as a small tree, for the CEL subset the harness models: the task's
    ``inputs.parameter_values['k']``, int/double/string/bool/null literals, ``int()``, ``!``,
    unary ``-``, ``== != < <= > >=``, ``&&``, ``||`` and parentheses.

    Raises:
        HarnessError: anything else (CEL the harness does not evaluate, or not CEL).
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _CEL_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise HarnessError(f"trigger condition {text!r}: cannot read it from {text[pos:]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    at = 0

    def peek() -> tuple[str, str]:
        return tokens[at] if at < len(tokens) else ("end", "")

    def take(value: str | None = None) -> tuple[str, str]:
        nonlocal at
        tok = peek()
        if value is not None and tok[1] != value:
            raise HarnessError(f"trigger condition {text!r}: expected {value!r}, found {tok[1]!r}")
        at += 1
        return tok

    def disjunction() -> Any:
        node = conjunction()
        while peek()[1] == "||":
            take()
            node = ("||", node, conjunction())
        return node

    def conjunction() -> Any:
        node = relation()
        while peek()[1] == "&&":
            take()
            node = ("&&", node, relation())
        return node

    def relation() -> Any:
        node = unary()
        if peek()[1] in ("==", "!=", "<", "<=", ">", ">="):
            op = take()[1]
            node = (op, node, unary())
        return node

    def unary() -> Any:
        if peek()[1] == "!":
            take()
            return ("!", unary())
        if peek()[1] == "-":
            take()
            return ("neg", unary())
        return primary()

    def primary() -> Any:
        kind, value = take()
        if value == "(" and kind == "op":
            node = disjunction()
            take(")")
            return node
        if kind == "int":
            return ("lit", int(value))
        if kind == "double":
            return ("lit", float(value))
        if kind == "string":
            return ("lit", _cel_unquote(value))
        if kind == "ident" and value in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[value])
        if kind == "ident" and value == "int":
            take("(")
            node = disjunction()
            take(")")
            return ("int", node)
        if kind == "ident" and value == "inputs":
            take(".")
            if take()[1] != "parameter_values":
                raise HarnessError(f"trigger condition {text!r}: only inputs.parameter_values is modelled")
            take("[")
            key_kind, key = take()
            if key_kind != "string":
                raise HarnessError(f"trigger condition {text!r}: a parameter is named by a string literal")
            take("]")
            return ("param", _cel_unquote(key))
        raise HarnessError(f"trigger condition {text!r}: {value!r} is not modelled")

    tree = disjunction()
    if at != len(tokens):
        raise HarnessError(f"trigger condition {text!r}: unexpected {peek()[1]!r}")
    return tree


def _cel_value(value: Any) -> Any:
    """A google.protobuf.Value as CEL sees it: every number a double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: _cel_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cel_value(v) for v in value]
    raise TypeError(value)


def _cel_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "double", str: "string", dict: "map", list: "list"}[type(value)]


def evaluate_condition(text: str, parameter_values: dict[str, Any]) -> bool:
    """expression.go ``Condition``: the condition over the task's ExecutorInput (cel-go 0.27's
    defaults: equality across types is false, ordering across types has no overload).

    >>> evaluate_condition("int(inputs.parameter_values['n']) > 2 && !(inputs.parameter_values['s'] == 'a')",
    ...                    {"n": 3, "s": "b"})
    True

    Raises:
        ConditionError: an evaluation error (a missing parameter, no such overload, not a bool).
    """
    def ev(node: Any) -> Any:
        op = node[0]
        if op == "lit":
            return node[1]
        if op == "param":
            if node[1] not in parameter_values:
                raise ConditionError(f"no such key: {node[1]}")
            return _cel_value(parameter_values[node[1]])
        if op == "int":
            v = ev(node[1])
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ConditionError(f"found no matching overload for 'int' applied to '({_cel_type(v)})'")
            if isinstance(v, str):
                try:
                    return int(v)
                except ValueError:
                    raise ConditionError(f"cannot convert {v!r} to int") from None
            if isinstance(v, float) and (not math.isfinite(v) or not -(2 ** 63) <= v < 2 ** 63):
                raise ConditionError("double out of int range")
            return int(v)  # toward zero
        if op == "neg":
            v = ev(node[1])
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConditionError(f"found no matching overload for '-_' applied to '({_cel_type(v)})'")
            return -v
        if op == "!":
            v = ev(node[1])
            if not isinstance(v, bool):
                raise ConditionError(f"found no matching overload for '!_' applied to '({_cel_type(v)})'")
            return not v
        if op in ("&&", "||"):
            left = ev(node[1])
            if not isinstance(left, bool):
                raise ConditionError(f"found no matching overload for '_{op}_'")
            if (op == "&&" and not left) or (op == "||" and left):
                return left
            right = ev(node[2])
            if not isinstance(right, bool):
                raise ConditionError(f"found no matching overload for '_{op}_'")
            return right
        left, right = ev(node[1]), ev(node[2])
        lt, rt = _cel_type(left), _cel_type(right)
        numeric = {"int", "double"}
        if op in ("==", "!="):
            same = (lt == rt or {lt, rt} <= numeric) and left == right
            return same if op == "==" else not same
        if lt != rt or lt not in ("int", "double", "string", "bool"):
            raise ConditionError(f"found no matching overload for '_{op}_' applied to '({lt}, {rt})'")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]

    result = ev(parse_condition(text))
    if not isinstance(result, bool):
        raise ConditionError(f"evaluation error: return type is not bool, got {result!r}")
    return result


# --------------------------------------------------------------------------- the spec

def load_package(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, kubernetes platform spec) of a compiled package, as dicts."""
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    spec = next(d for d in docs if "pipelineInfo" in d)
    platform = next((d for d in docs if "platforms" in d), {})
    return spec, platform.get("platforms", {}).get("kubernetes", {})


def _dependencies(task: dict[str, Any]) -> list[str]:
    """dag.go ``addImplicitDependencies``: dependentTasks plus the producers of task outputs used."""
    deps = list(task.get("dependentTasks") or [])
    inputs = task.get("inputs", {})
    for spec in list((inputs.get("parameters") or {}).values()) + list((inputs.get("artifacts") or {}).values()):
        producer = (spec.get("taskOutputParameter") or spec.get("taskOutputArtifact") or {}).get("producerTask")
        if producer and producer not in deps:
            deps.append(producer)
    return deps


def _display_name(key: str, task: dict[str, Any]) -> str:
    """A task's taskInfo.name (its display name), else its key."""
    return (task.get("taskInfo") or {}).get("name") or key


def _is_exit(task: dict[str, Any]) -> bool:
    return (task.get("triggerPolicy") or {}).get("strategy") == EXIT_STRATEGY


def _component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["root"] if name == "root" else spec["components"][name]


def runtime_parameters(spec: dict[str, Any], values: dict[str, Any] | None) -> dict[str, Any]:
    """argo.go ``Compile``: the run's parameter values, the root's defaults filled in."""
    params = dict(values or {})
    defs = (spec["root"].get("inputDefinitions") or {}).get("parameters") or {}
    unknown = set(params) - set(defs)
    if unknown:
        raise BackendRefusedError(f"unknown pipeline parameter(s): {', '.join(sorted(unknown))}")
    for name, d in defs.items():
        if name not in params:
            if "defaultValue" in d:
                params[name] = d["defaultValue"]
            elif d.get("isOptional"):
                params[name] = None
    return params


# --------------------------------------------------------------------------- the Argo Workflow

def argo_workflow(spec: dict[str, Any], k8s: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The Argo Workflow the argocompiler (2.17.0) builds for ``spec``, as JSON-ready dicts.

    Raises:
        BackendRefusedError: a DAG task depends on a name that is not a task of its DAG (Argo's
            validation), or an exit task has no dependency.
    """
    executors = spec["deploymentSpec"]["executors"]
    k8s_executors = (k8s.get("deploymentSpec") or {}).get("executors") or {}
    arguments: dict[str, str] = {}
    templates: list[dict[str, Any]] = []

    def comp_hash(name: str) -> str:
        label = _component(spec, name).get("executorLabel")
        if name == "root" or not label:
            return name
        return hashlib.sha256(go_json(executors[label]["container"]).encode()).hexdigest()

    def save(key: str, value: Any) -> str:
        arguments.setdefault(key, stably_marshal(value))
        return f"{{{{workflow.parameters.{key}}}}}"

    def param(name: str, value: str) -> dict[str, str]:
        return {"name": name, "value": value}

    def task(name: str, t: dict[str, Any], exit_template: str = "") -> list[dict[str, Any]]:
        ref = t["componentRef"]["name"]
        comp = _component(spec, ref)
        comp_ph = save(f"components-{comp_hash(ref)}", comp)
        if t.get("artifactIterator"):
            raise BackendRefusedError(f"task {name!r}: ArtifactIterator is not implemented")
        if t.get("parameterIterator"):
            return iterator_task(name, t, ref, comp, comp_ph)
        condition = (t.get("triggerPolicy") or {}).get("condition")
        if condition:
            parse_condition(condition)  # the driver compiles it (CEL) before anything runs
        when = {"when": f"{{{{tasks.{name}-driver.outputs.parameters.condition}}}} != false"} if condition else {}
        hooks = {}
        if exit_template:
            hooks = {"hooks": {"exit": {"template": exit_template, "arguments": {"parameters": [
                param("parent-dag-id", "{{inputs.parameters.parent-dag-id}}")]}}}}
        depends = {} if _is_exit(t) else (
            {"depends": " && ".join(f"{d}.Succeeded" for d in _dependencies(t))} if _dependencies(t) else {})
        task_json = stably_marshal(t)
        if "dag" in comp:
            dag_template(ref, comp)
            driver = {"name": f"{name}-driver", "template": "system-dag-driver", **depends, "arguments": {
                "parameters": [param("component", comp_ph), param("parent-dag-id", "{{inputs.parameters.parent-dag-id}}"),
                               param("task", task_json), param("task-name", name)]}}
            body = {"name": name, "template": ref, "depends": f"{name}-driver.Succeeded", **when, **hooks,
                    "arguments": {
                "parameters": [param("parent-dag-id", f"{{{{tasks.{name}-driver.outputs.parameters.execution-id}}}}"),
                               param("condition", f"{{{{tasks.{name}-driver.outputs.parameters.condition}}}}")]}}
            return [driver, body]
        label = comp["executorLabel"]
        container_ph = save(f"implementations-{comp_hash(ref)}", executors[label]["container"])
        params = [param("component", comp_ph), param("task", task_json), param("container", container_ph),
                  param("task-name", name), param("parent-dag-id", "{{inputs.parameters.parent-dag-id}}")]
        if label in k8s_executors:
            params.append(param("kubernetes-config", save(f"kubernetes-{ref}", k8s_executors[label])))
        driver = {"name": f"{name}-driver", "template": "system-container-driver", **depends,
                  "arguments": {"parameters": params}}
        executor = {"name": name, "template": "system-container-executor", "depends": f"{name}-driver.Succeeded",
                    **when, **hooks, "arguments": {"parameters": [
                        param("pod-spec-patch", f"{{{{tasks.{name}-driver.outputs.parameters.pod-spec-patch}}}}"),
                        {"name": "cached-decision", "default": "false",
                         "value": f"{{{{tasks.{name}-driver.outputs.parameters.cached-decision}}}}"}]}}
        return [driver, executor]

    def iterator_task(name: str, t: dict[str, Any], ref: str, comp: dict[str, Any], comp_ph: str) -> list[dict[str, Any]]:
        """dag.go ``iteratorTask``/``iterationItemTask``: a loop template (a DAG driver that counts the
        items, then ``withSequence`` over the count), each iteration a DAG driver and the loop's DAG."""
        dag_template(ref, comp)
        task_json = stably_marshal(t)
        condition = (t.get("triggerPolicy") or {}).get("condition")
        when = {"when": "{{tasks.iteration-driver.outputs.parameters.condition}} != false"} if condition else {}
        item_template = f"{ref}-iteration"
        if item_template not in done:
            done.add(item_template)
            templates.append({"name": item_template, "inputs": {"parameters": [{"name": "parent-dag-id"},
                                                                             {"name": "iteration-index"}]},
                              "dag": {"tasks": [
                {"name": "iteration-item-driver", "template": "system-dag-driver", "arguments": {"parameters": [
                    param("component", comp_ph), param("parent-dag-id", "{{inputs.parameters.parent-dag-id}}"),
                    param("task", task_json), param("task-name", name),
                    param("iteration-index", "{{inputs.parameters.iteration-index}}")]}},
                {"name": "iteration-item", "template": ref, "depends": "iteration-item-driver.Succeeded",
                 "arguments": {"parameters": [
                     param("parent-dag-id", "{{tasks.iteration-item-driver.outputs.parameters.execution-id}}"),
                     param("condition", "{{tasks.iteration-item-driver.outputs.parameters.condition}}")]}}]}})
        loop_template = f"{ref}-{name}-iterator"
        templates.append({"name": loop_template, "inputs": {"parameters": [{"name": "parent-dag-id"}]}, "dag": {"tasks": [
            {"name": "iteration-driver", "template": "system-dag-driver", "arguments": {"parameters": [
                param("component", comp_ph), param("parent-dag-id", "{{inputs.parameters.parent-dag-id}}"),
                param("task", task_json), param("task-name", name)]}},
            {"name": "iteration-iterations", "template": item_template, "depends": "iteration-driver.Succeeded", **when,
             "arguments": {"parameters": [
                 param("parent-dag-id", "{{tasks.iteration-driver.outputs.parameters.execution-id}}"),
                 param("iteration-index", "{{item}}")]},
             "withSequence": {"count": "{{tasks.iteration-driver.outputs.parameters.iteration-count}}"}}]}})
        depends = {"depends": " && ".join(f"{d}.Succeeded" for d in _dependencies(t))} if _dependencies(t) else {}
        return [{"name": name, "template": loop_template, **depends, "arguments": {"parameters": [
            param("parent-dag-id", "{{inputs.parameters.parent-dag-id}}")]}}]

    done: set[str] = set()

    def dag_template(name: str, comp: dict[str, Any]) -> None:
        if name in done:
            return
        done.add(name)
        save(f"components-{comp_hash(name)}", comp)
        tasks = comp["dag"]["tasks"]
        exit_of: dict[str, str] = {}
        for key in sorted(tasks):
            if not _is_exit(tasks[key]):
                continue
            deps = _dependencies(tasks[key])
            if not deps:
                raise BackendRefusedError(f"DAG {name}: exit task {key!r} has no dependent tasks")
            hook = f"exit-hook-{name}-{key}"
            for dep in deps:
                exit_of[dep] = hook
            templates.append({"name": hook, "inputs": {"parameters": [{"name": "parent-dag-id"}]},
                              "dag": {"tasks": task(key, tasks[key])}})
        dag_tasks: list[dict[str, Any]] = []
        for key in sorted(tasks):
            if not _is_exit(tasks[key]):
                dag_tasks.extend(task(key, tasks[key], exit_of.get(key, "")))
        if not dag_tasks:
            raise BackendRefusedError(f"DAG {name} must contain one or more non-exit tasks")
        names = {t["name"] for t in dag_tasks}
        for t in dag_tasks:  # Argo validates every dependency against the DAG's own tasks
            for dep in (d.split(".")[0].strip("( ") for d in t.get("depends", "").split("&&") if d.strip()):
                if dep not in names:
                    raise BackendRefusedError(f"templates.{name}.tasks.{t['name']} depends on a task that is not in "
                                         f"the DAG: {dep!r} (an exit-hook task, ALL_UPSTREAM_TASKS_COMPLETED, "
                                         "is not a DAG task)")
        templates.append({"name": name, "inputs": {"parameters": [{"name": "parent-dag-id"}]},
                          "dag": {"tasks": dag_tasks}})

    dag_template("root", spec["root"])
    runtime = {"parameterValues": parameters}
    templates.append({"name": "entrypoint", "dag": {"tasks": [
        {"name": "root-driver", "template": "system-dag-driver", "arguments": {"parameters": [
            param("component", "{{workflow.parameters.components-root}}"),
            param("runtime-config", stably_marshal(runtime)), param("driver-type", "ROOT_DAG")]}},
        {"name": "root", "template": "root", "depends": "root-driver.Succeeded", "arguments": {"parameters": [
            param("parent-dag-id", "{{tasks.root-driver.outputs.parameters.execution-id}}"),
            param("condition", "")]}}]}})
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": spec["pipelineInfo"]["name"] + "-"},
        "spec": {"arguments": {"parameters": [{"name": k, "value": v} for k, v in arguments.items()]},
                 "entrypoint": "entrypoint", "serviceAccountName": "pipeline-runner",
                 "podMetadata": {"annotations": {"pipelines.kubeflow.org/v2_component": "true"},
                                 "labels": {"pipelines.kubeflow.org/v2_component": "true"}},
                 "templates": templates},
    }


def workflow_bytes(workflow: dict[str, Any]) -> int:
    """The size of the Workflow object the API server sends to Kubernetes (JSON, system templates included)."""
    return len(go_json(workflow).encode()) + SYSTEM_TEMPLATES_BYTES


# --------------------------------------------------------------------------- jfx from a wheel

def checkout() -> Path:
    """The repository checkout under test (the folder the ``jfx`` package is)."""
    import jfx

    return Path(jfx.__file__).resolve().parent


@functools.cache
def wheel_site() -> Path:
    """A folder with jfx installed from a wheel of the checkout (built once per test session)."""
    base = Path(os.environ.get("JFX_TEST_SESSION_ROOT") or os.environ.get("TMPDIR", "/tmp")) / "kfp-backend-wheel"
    site = base / "site"
    if (site / "jfx" / "__init__.py").is_file():
        return site
    shutil.rmtree(base, ignore_errors=True)
    wheels = base / "wheels"
    wheels.mkdir(parents=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(wheels), str(checkout())], capture_output=True, text=True, env=env,
                           cwd=base, timeout=600)
    if build.returncode != 0:
        raise RuntimeError(f"building the jfx wheel failed:\n{build.stdout}\n{build.stderr}")
    [wheel] = wheels.glob("jfx-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
                              "--target", str(site), str(wheel)], capture_output=True, text=True, env=env,
                             cwd=base, timeout=600)
    if install.returncode != 0:
        raise RuntimeError(f"installing the jfx wheel failed:\n{install.stdout}\n{install.stderr}")
    return site


@functools.cache
def hidden_folders() -> tuple[Path, ...]:
    """The checkout, and the checkout this Python's own ``jfx`` (an editable install) points to."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; s = u.find_spec('jfx'); "
                            "print(s.origin if s and s.origin else '')"],
                           capture_output=True, text=True, env=env, cwd="/", timeout=60)
    found = {checkout()}
    origin = probe.stdout.strip()
    if origin:
        found.add(Path(origin).resolve().parent)
    return tuple(sorted(found))


def unshare_available() -> str | None:
    """None when ``unshare --mount`` works here, else why not."""
    if not shutil.which("unshare"):
        return "the unshare command is missing (util-linux)"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"unshare --mount fails here (needs root or user namespaces): {proc.stderr.strip()}"
    return None


# --------------------------------------------------------------------------- a run

@dataclass
class TaskRun:
    """One task's pod (a driver resolved it, the launcher ran it)."""

    name: str                 # the KFP task name (the Argo DAG task's), e.g. "jfx-node-task-2"
    dag: str                  # the component of the DAG it ran in, e.g. "comp-exit-handler-1"
    hook_of: str | None       # the task whose exit hook started it, if any
    phase: str                # Argo's: Succeeded, Failed, Error
    executor_input: str       # the ExecutorInput JSON the launcher put in place of {{$}}
    argv: list[str]
    output: str
    returncode: int
    started: float
    ended: float
    state: str = ""           # the MLMD execution state: COMPLETE, FAILED
    # taskInfo.name: the execution's display_name in MLMD and the name the KFP UI shows
    # (driver/container.go at 2.17.0: ``ecfg.DisplayName = opts.Task.GetTaskInfo().GetName()``)
    display_name: str = ""
    # the pod's settings: the container's resources (PipelineContainerSpec.resources: CPU, memory,
    # accelerator) and the task's Kubernetes executor config (node selector, tolerations, ...)
    resources: dict[str, Any] = field(default_factory=dict)
    kubernetes: dict[str, Any] = field(default_factory=dict)
    # the output parameters the launcher collected (launcher_v2.go collectOutputParameters)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def parameters(self) -> dict[str, Any]:
        return json.loads(self.executor_input)["inputs"].get("parameterValues", {})


@dataclass
class Run:
    run_id: str
    run_name: str
    workflow: dict[str, Any]
    workflow_bytes: int
    tasks: list[TaskRun] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)  # "<dag>/<task display name>" never started
    # "<dag>/<task display name>" whose trigger condition the driver found false: no pod started
    not_triggered: list[str] = field(default_factory=list)
    iterations: dict[str, int] = field(default_factory=dict)  # "<dag>/<loop task>" -> its iteration count
    loop_errors: list[str] = field(default_factory=list)  # a loop's driver failed: "<task>: <error>"
    phase: str = "Running"

    def of(self, display_name: str) -> list[TaskRun]:
        """The pods of the task the KFP UI shows as ``display_name`` (its taskInfo.name), in start order."""
        return [t for t in self.tasks if t.display_name == display_name]

    def log(self, tail: int = 60) -> str:
        """Each pod's header; a failed pod's last ``tail`` lines of output come first (what an assertion shows)."""
        def header(t: TaskRun) -> str:
            return f"--- {t.dag}/{t.name} [{t.display_name}] ({t.phase}, hook of {t.hook_of})"
        parts = [f"{header(t)} exit {t.returncode}, last lines:\n" + "\n".join(t.output.splitlines()[-tail:])
                 for t in self.tasks if t.phase != "Succeeded"]
        parts += [header(t) for t in self.tasks if t.phase == "Succeeded"]
        return "\n".join(parts + [f"loop error: {e}" for e in self.loop_errors])


class Backend:
    """A KFP v2 backend on this machine (see the module docstring).

    Args:
        workdir: where pods' private folders go.
        volumes: PersistentVolumeClaim name → host folder, bind-mounted at each task's mount path.
        secrets: Kubernetes secret name → {key: value}, for ``secretAsEnv``.
        parallelism: how many pods run at once.
    """

    def __init__(self, workdir: str | Path, *, volumes: dict[str, str | Path] | None = None,
                 secrets: dict[str, dict[str, str]] | None = None, parallelism: int = 2) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.volumes = {k: Path(v) for k, v in (volumes or {}).items()}
        self.secrets = dict(secrets or {})
        self.parallelism = parallelism
        self.site = wheel_site()
        self._lock = threading.Lock()
        self._pods = 0

    # ---------------------------------------------------------------- submit
    def run(self, package: str | Path, parameters: dict[str, Any] | None = None, *, execute: bool = True,
            enforce_size: bool = True) -> Run:
        """Create and run a run of ``package``; returns when the Workflow ended.

        With ``execute=False`` every task is resolved and its command line built and
        checked, but nothing runs (each task then counts as succeeded); with
        ``enforce_size=False`` a Workflow over etcd's limit is run anyway.

        Raises:
            BackendRefusedError: the API server or Argo refuses it (too large, invalid DAG).
        """
        spec, k8s = load_package(package)
        params = runtime_parameters(spec, parameters)
        workflow = argo_workflow(spec, k8s, params)
        size = workflow_bytes(workflow)
        if enforce_size and size > ETCD_REQUEST_LIMIT:
            raise BackendRefusedError(f"the Argo Workflow is {size} bytes: over etcd's request limit "
                                 f"({ETCD_REQUEST_LIMIT} bytes); Kubernetes refuses to store it")
        self._execute = execute
        run_id = str(uuid.uuid4())
        run = Run(run_id, f"{workflow['metadata']['generateName']}{run_id[:5]}", workflow, size)
        self._spec, self._k8s, self._run = spec, k8s, run
        with ThreadPoolExecutor(max_workers=64) as pool:  # nested DAGs and hooks wait inside it
            self._pool = pool
            dag = _Dag(self, "root", params, parent=None)
            ok = dag.run()
        run.phase = "Succeeded" if ok else "Failed"
        return run

    # ---------------------------------------------------------------- one pod
    def _resolve(self, name: str, t: dict[str, Any], dag: _Dag) -> dict[str, Any]:
        """driver/resolve.go ``resolveInputs`` for parameters: the task's input values."""
        comp = _component(self._spec, t["componentRef"]["name"])
        defs = (comp.get("inputDefinitions") or {}).get("parameters") or {}
        values: dict[str, Any] = {}
        for key, ps in ((t.get("inputs") or {}).get("parameters") or {}).items():
            if "componentInputParameter" in ps:
                src = ps["componentInputParameter"]
                if src not in dag.inputs:
                    raise HarnessError(f"task {name}: parent DAG does not have input parameter {src}")
                value = dag.inputs[src]
                if value is None:
                    if defs.get(key, {}).get("isOptional"):
                        continue
                    raise HarnessError(f"task {name}: parameter {key} resolved to null")
            elif "runtimeValue" in ps:
                value = ps["runtimeValue"].get("constant")
                value = {"{{$.pipeline_job_name}}": self._run.run_name,
                         "{{$.pipeline_job_resource_name}}": self._run.run_name,
                         "{{$.pipeline_job_uuid}}": self._run.run_id,
                         "{{$.pipeline_task_name}}": name,
                         "{{$.pipeline_task_uuid}}": str(dag.execution_id)}.get(value, value) \
                    if isinstance(value, str) else value
            elif "taskOutputParameter" in ps:  # resolve.go resolveUpstreamParameters
                producer = ps["taskOutputParameter"]["producerTask"]
                key_ = ps["taskOutputParameter"]["outputParameterKey"]
                if key_ not in dag.task_outputs.get(producer, {}):
                    raise HarnessError(f"task {name}: producer task {producer} has no output parameter {key_}")
                value = dag.task_outputs[producer][key_]
            elif "taskFinalStatus" in ps:
                deps = t.get("dependentTasks") or []
                if not deps:
                    raise HarnessError(f"task {name} has no dependent tasks")
                producer = deps[0]
                if producer not in dag.states:
                    raise HarnessError(f"producer task, {producer}, not in tasks")
                value = {"state": dag.states[producer], "pipelineTaskName": producer,
                         "pipelineJobResourceName": self._run.run_name, "error": {}}
            else:
                raise HarnessError(f"task {name}: input parameter {key}: {sorted(ps)} is not modelled")
            kind = defs.get(key, {}).get("parameterType", "STRING")
            if kind == "STRING" and not isinstance(value, str):
                value = _pb_text(value)  # metadata.PbValueToText
            values[key] = value
        return values

    def pod_settings(self, t: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The settings of the pod a container task runs in: (container resources, Kubernetes config)."""
        label = _component(self._spec, t["componentRef"]["name"])["executorLabel"]
        container = self._spec["deploymentSpec"]["executors"][label]["container"]
        k8s = ((self._k8s.get("deploymentSpec") or {}).get("executors") or {}).get(label, {})
        return copy.deepcopy(container.get("resources") or {}), copy.deepcopy(k8s)

    @staticmethod
    def _triggered(t: dict[str, Any], values: dict[str, Any]) -> bool:
        """driver.go: the task's trigger condition over its resolved inputs (true without one)."""
        condition = (t.get("triggerPolicy") or {}).get("condition")
        return True if not condition else evaluate_condition(condition, values)

    def _pod(self, name: str, t: dict[str, Any], dag: _Dag, hook_of: str | None) -> TaskRun:
        ref = t["componentRef"]["name"]
        comp = _component(self._spec, ref)
        label = comp["executorLabel"]
        container = self._spec["deploymentSpec"]["executors"][label]["container"]
        k8s = ((self._k8s.get("deploymentSpec") or {}).get("executors") or {}).get(label, {})
        with self._lock:
            self._pods += 1
            pod = self.workdir / f"pod-{self._pods:03d}-{name}"
        started = time.monotonic()
        try:
            values = self._resolve(name, t, dag)
            triggered = self._triggered(t, values)
        except (HarnessError, ConditionError) as err:  # the driver fails: the task fails without a pod
            return TaskRun(name, dag.component, hook_of, "Failed", "{}", [], f"driver: {err}", 1, started,
                           time.monotonic(), "FAILED")
        if not triggered:  # driver/container.go: execution CANCELED, the executor's `when` false: no pod
            return TaskRun(name, dag.component, hook_of, "Skipped", "{}", [], "not triggered", 0, started,
                           time.monotonic(), "CANCELED")
        output_file = str(pod / "tmp" / OUTPUT_METADATA)
        # driver.go provisionOutputs: each output parameter's file is /tmp/kfp/outputs/<name> (here under the
        # pod's own tmp, as the executor output file is)
        out_params = {k: {"outputFile": str(pod / "tmp" / "kfp" / "outputs" / k)}
                      for k in ((comp.get("outputDefinitions") or {}).get("parameters") or {})}
        executor_input = {"inputs": {"parameterValues": values},
                          "outputs": {"parameters": out_params, "outputFile": output_file}}
        # launcher_v2.go addDefaultParams: the component's defaults for inputs without a value
        with_defaults = copy.deepcopy(executor_input)
        for key, d in ((comp.get("inputDefinitions") or {}).get("parameters") or {}).items():
            if "defaultValue" in d and key not in with_defaults["inputs"]["parameterValues"]:
                with_defaults["inputs"]["parameterValues"][key] = d["defaultValue"]
        ei_json = _executor_input_json(with_defaults)
        placeholders = {f"{{{{$.inputs.parameters['{k}']}}}}": _pb_text(v)
                        for k, v in with_defaults["inputs"]["parameterValues"].items()}
        placeholders["{{$.outputs.output_file}}"] = output_file  # not used by lightweight components
        for k, op in out_params.items():
            placeholders[f"{{{{$.outputs.parameters['{k}'].output_file}}}}"] = op["outputFile"]

        def fill(arg: str) -> str:
            arg = arg.replace("{{$}}", ei_json)
            for ph, rep in placeholders.items():
                arg = arg.replace(ph, rep)
            return arg

        argv = [fill(a) for a in container.get("command", [])] + [fill(a) for a in container.get("args", [])]
        launcher_argv = ["/kfp-launcher/launch", "--executor_input", _executor_input_json(executor_input),
                         "--component_spec", stably_marshal(comp)]
        too_long = [a for a in launcher_argv + argv if len(a.encode()) > MAX_ARG_STRLEN]
        if too_long:
            return TaskRun(name, dag.component, hook_of, "Error", ei_json, argv,
                           f"exec: argument list too long (an argument of {len(too_long[0].encode())} bytes; "
                           f"Linux takes at most {MAX_ARG_STRLEN})", 126, started, time.monotonic(), "FAILED")
        if not self._execute:
            return TaskRun(name, dag.component, hook_of, "Succeeded", ei_json, argv, "", 0, started,
                           time.monotonic(), "COMPLETE")
        env = self._pod_env(pod, container, k8s)
        for op in out_params.values():  # launcher_v2.go prepareOutputFolders
            Path(op["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(self._namespace(k8s, pod) + argv, env=env, cwd=pod, capture_output=True, text=True,
                              timeout=900)
        phase = "Succeeded" if proc.returncode == 0 else "Failed"
        outputs: dict[str, Any] = {}
        if phase == "Succeeded" and out_params:
            try:
                outputs = _collect_output_parameters(comp, out_params, output_file)
            except HarnessError as err:  # the launcher fails the task
                phase, proc = "Failed", subprocess.CompletedProcess(proc.args, 1, proc.stdout, f"{proc.stderr}\n{err}")
        return TaskRun(name, dag.component, hook_of, phase, ei_json, argv, proc.stdout + proc.stderr,
                       proc.returncode, started, time.monotonic(), "COMPLETE" if phase == "Succeeded" else "FAILED",
                       outputs=outputs)

    def _pod_env(self, pod: Path, container: dict[str, Any], k8s: dict[str, Any]) -> dict[str, str]:
        for sub in ("home", "tmp", "tmp/kfp_outputs"):
            (pod / sub).mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": str(pod / "home"), "TMPDIR": str(pod / "tmp"), "PYTHONPATH": str(self.site),
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "KFP_POD_NAME": pod.name,
               "KFP_POD_UID": str(uuid.uuid4())}
        for e in container.get("env") or []:
            env[e["name"]] = e.get("value", "")
        for s in k8s.get("secretAsEnv") or []:
            secret = self.secrets.get(s["secretName"])
            if secret is None:
                raise HarnessError(f"secret {s['secretName']!r} does not exist (pods would not start)")
            for pair in s["keyToEnv"]:
                env[pair["envVar"]] = secret[pair["secretKey"]]
        return env

    def _namespace(self, k8s: dict[str, Any], pod: Path) -> list[str]:
        """``unshare --mount`` and a shell that hides the checkouts, keeps this Python, mounts the volumes."""
        prefix = Path(sys.prefix).resolve()
        lines = ["set -e"]
        stash = pod / "python-stash"
        keep = [h for h in hidden_folders() if prefix == h or h in prefix.parents]
        if keep:
            stash.mkdir(parents=True, exist_ok=True)
            lines.append(f"mount --bind {shlex.quote(str(prefix))} {shlex.quote(str(stash))}")
        for folder in hidden_folders():
            lines.append(f"mount -t tmpfs -o size=1m,mode=0755 jfx-hidden {shlex.quote(str(folder))}")
        if keep:
            lines.append(f"mkdir -p {shlex.quote(str(prefix))}")
            lines.append(f"mount --bind {shlex.quote(str(stash))} {shlex.quote(str(prefix))}")
        covered: set[str] = set()
        for m in k8s.get("pvcMount") or []:
            claim = m.get("constant") or m.get("taskOutputParameter") or m.get("componentInputParameter")
            if claim not in self.volumes:
                raise HarnessError(f"PersistentVolumeClaim {claim!r} does not exist (pods would not start)")
            target = Path(m["mountPath"])
            if not target.exists():
                top = next(p for p in [*reversed(target.parents), target] if not p.exists()).parent
                if str(top) not in covered and top != Path("/"):
                    lines.append(f"mount -t tmpfs -o mode=0755 jfx-pod {shlex.quote(str(top))}")
                    covered.add(str(top))
                lines.append(f"mkdir -p {shlex.quote(str(target))}")
            lines.append(f"mount --bind {shlex.quote(str(self.volumes[claim]))} {shlex.quote(str(target))}")
        lines.append('exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "\n".join(lines), "pod"]

    def probe(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -c code`` in a pod of this backend (no volumes, no secrets)."""
        pod = self.workdir / f"probe-{uuid.uuid4().hex[:8]}"
        env = self._pod_env(pod, {}, {})
        return subprocess.run([*self._namespace({}, pod), sys.executable, "-c", code], env=env, cwd=pod,
                              capture_output=True, text=True, timeout=120)


def _collect_output_parameters(comp: dict[str, Any], out_params: dict[str, dict[str, str]],
                               output_file: str) -> dict[str, Any]:
    """launcher_v2.go ``collectOutputParameters``: the executor output file's ``parameterValues`` first,
    else each parameter's own file, read as its declared type (metadata.TextToPbValue)."""
    written: dict[str, Any] = {}
    if Path(output_file).exists():
        written = json.loads(Path(output_file).read_text()).get("parameterValues") or {}
    defs = (comp.get("outputDefinitions") or {}).get("parameters") or {}
    found: dict[str, Any] = {}
    for name, op in out_params.items():
        if name in written:
            found[name] = written[name]
            continue
        kind = defs.get(name, {}).get("parameterType", "STRING")
        try:
            text = Path(op["outputFile"]).read_text()
        except OSError as err:
            raise HarnessError(f"failed to read output parameter name={name!r} type={kind!r}: {err}") from None
        try:
            found[name] = text if kind == "STRING" else json.loads(text)
        except ValueError as err:
            raise HarnessError(f"failed to read output parameter name={name!r} type={kind!r}: {err}") from None
    return found


def _iteration_items(value: Any) -> list[Any]:
    """driver/util.go ``getItems``: a list value, or a string holding JSON (not a list: no items)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as err:
            raise HarnessError(f"iterating: {err}") from None
        return parsed if isinstance(parsed, list) else []
    raise HarnessError(f"value of type {type(value).__name__} cannot be iterated")


def _pb_text(value: Any) -> str:
    """metadata.PbValueToText: a string as is, anything else as its protojson."""
    return value if isinstance(value, str) else protojson(value)


def _executor_input_json(ei: dict[str, Any]) -> str:
    """protojson of an ExecutorInput: fields in proto order (inputs, outputs), maps sorted."""
    inputs = "{" + (f'"parameterValues":{protojson(ei["inputs"]["parameterValues"])}'
                    if ei["inputs"]["parameterValues"] else "") + "}"
    params = ei["outputs"].get("parameters") or {}
    files = ",".join(f'{json.dumps(k)}:{{"outputFile":{json.dumps(v["outputFile"])}}}' for k, v in sorted(params.items()))
    outputs = f'"parameters":{{{files}}},' if params else ""
    return f'{{"inputs":{inputs},"outputs":{{{outputs}"outputFile":{json.dumps(ei["outputs"]["outputFile"])}}}}}'


class _Dag:
    """One DAG execution: its tasks started as Argo starts them (dag.go, Argo's DAG fail-fast)."""

    def __init__(self, backend: Backend, component: str, inputs: dict[str, Any], parent: _Dag | None) -> None:
        self.b = backend
        self.component = component
        self.inputs = inputs
        self.parent = parent
        self.execution_id = id(self)
        self.tasks = dict(_component(backend._spec, component)["dag"]["tasks"])
        self.states: dict[str, str] = {}   # task name -> MLMD state (GetExecutionsInDAG: one per name)
        self.phases: dict[str, str] = {}   # task name -> Argo phase of the DAG task
        self.task_outputs: dict[str, dict[str, Any]] = {}  # task name -> its output parameters
        self.lock = threading.RLock()
        self.key = ""                      # this DAG's task name in its parent
        self.recorded = "RUNNING"          # the DAG execution's state in MLMD

    def update_state(self) -> None:
        """metadata/client.go UpdateDAGExecutionsState, which a launcher calls once it published: the
        DAG's state is COMPLETE or FAILED from its tasks' executions as they are then, else left as it
        was; a change propagates to the parent DAG. A task the driver did not trigger runs no
        launcher, so it updates nothing, and a task Argo omitted has no execution: such a DAG stays
        RUNNING."""
        with self.lock:
            state = self.state()
            if state == "RUNNING" or self.parent is None:
                return
            self.recorded = state
        with self.parent.lock:
            self.parent.states[self.key] = state
        self.parent.update_state()

    def state(self) -> str:
        """metadata/client.go UpdateDAGExecutionsState: COMPLETE when every task completed, FAILED when one failed."""
        values = list(self.states.values())
        done = sum(s in ("COMPLETE", "CACHED", "CANCELED") for s in values)
        if done == len(self.tasks):
            return "COMPLETE"
        if "FAILED" in values:
            return "FAILED"
        return "RUNNING"

    def run(self) -> bool:
        """Run the DAG to its end; True when Argo marks it Succeeded."""
        exits = {k: t for k, t in self.tasks.items() if _is_exit(t)}
        hooks: dict[str, str] = {}
        for key in sorted(exits):
            for dep in _dependencies(exits[key]):
                hooks[dep] = key  # one exit template per dependency (dag.go: taskToExitTemplate)
        normal = {k: t for k, t in self.tasks.items() if k not in exits}
        deps = {k: _dependencies(t) for k, t in normal.items()}
        pending = set(normal)
        running: dict[Future[Any], tuple[str, str | None]] = {}
        failed = False
        hook_failed = False
        while pending or running:
            if not failed:
                for key in sorted(pending):
                    if all(self.phases.get(d) == "Succeeded" for d in deps[key]) and \
                            sum(1 for _, h in running.values() if h is None) < self.b.parallelism:
                        pending.discard(key)
                        running[self.b._pool.submit(self._start, key, normal[key], None)] = (key, None)
            for key in sorted(pending):  # a dependency ended but did not succeed: omitted
                if any(self.phases.get(d) not in (None, "Succeeded") for d in deps[key]):
                    pending.discard(key)
                    self.phases[key] = "Omitted"
                    self.b._run.omitted.append(f"{self.component}/{_display_name(key, normal[key])}")
            if not running:
                for key in sorted(pending):  # fail-fast: nothing new starts after a failure
                    self.phases[key] = "Omitted"
                    self.b._run.omitted.append(f"{self.component}/{_display_name(key, normal[key])}")
                pending.clear()
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                key, hook_of = running.pop(fut)
                phase = fut.result()
                if hook_of is None:
                    self.phases[key] = phase
                    failed = failed or phase not in ("Succeeded", "Skipped")
                    if key in hooks:  # the exit hook runs once the task ended, whatever its phase
                        h = hooks[key]
                        running[self.b._pool.submit(self._start, h, exits[h], key)] = (h, key)
                else:
                    hook_failed = hook_failed or phase not in ("Succeeded", "Skipped")
        return not failed and not hook_failed

    def _start(self, key: str, t: dict[str, Any], hook_of: str | None) -> str:
        comp = _component(self.b._spec, t["componentRef"]["name"])
        if t.get("parameterIterator"):
            return self._loop(key, t, comp)
        if "dag" in comp:
            try:
                values = self.b._resolve(key, t, self)
                triggered = self.b._triggered(t, values)
            except (HarnessError, ConditionError):
                with self.lock:
                    self.states[key] = "FAILED"
                return "Failed"
            if not triggered:  # driver/dag.go: the sub-DAG's execution CANCELED, its template skipped
                with self.lock:
                    self.states[key] = "CANCELED"
                    self.b._run.not_triggered.append(f"{self.component}/{_display_name(key, t)}")
                return "Skipped"
            child = _Dag(self.b, t["componentRef"]["name"], values, self)
            child.key = key
            with self.lock:
                self.states[key] = "RUNNING"
            ok = child.run()
            with self.lock:
                self.states[key] = child.recorded
                self.task_outputs[key] = child.dag_outputs()
            return "Succeeded" if ok else "Failed"
        with self.lock:
            self.states[key] = "RUNNING"
        tr = self.b._pod(key, t, self, hook_of)
        tr.display_name = _display_name(key, t)
        tr.resources, tr.kubernetes = self.b.pod_settings(t)
        with self.lock:
            self.states[key] = tr.state
            self.task_outputs[key] = tr.outputs
            if tr.phase == "Skipped":
                self.b._run.not_triggered.append(f"{self.component}/{tr.display_name}")
                return tr.phase
            self.b._run.tasks.append(tr)
        if not tr.output.startswith("driver:"):
            # the launcher updates the DAG's state after publishing (launcher_v2.go -> UpdateDAGExecutionsState),
            # and the update propagates to the parent DAGs
            self.update_state()
        return tr.phase

    def dag_outputs(self) -> dict[str, Any]:
        """This DAG's output parameters (``valueFromParameter``: one of its tasks' outputs)."""
        specs = ((_component(self.b._spec, self.component)["dag"].get("outputs") or {}).get("parameters")) or {}
        found: dict[str, Any] = {}
        for name, spec in specs.items():
            sel = spec.get("valueFromParameter")
            if sel is None:
                raise HarnessError(f"DAG {self.component} output {name}: {sorted(spec)} is not modelled")
            outputs = self.task_outputs.get(sel["producerSubtask"], {})
            if sel["outputParameterKey"] in outputs:
                found[name] = outputs[sel["outputParameterKey"]]
        return found

    def _loop(self, key: str, t: dict[str, Any], comp: dict[str, Any]) -> str:
        """A ParallelFor (dag.go): the loop's DAG driver resolves the items and counts them (an error fails
        the loop); each iteration is a DAG execution with the item as its ``itemInput`` (resolve.go), the
        iterations side by side; the loop's outputs gather each iteration's, in iteration order
        (resolve.go ``CollectInputs``). No items: no iteration, and the loop succeeds (Argo's
        ``withSequence`` of count 0)."""
        iterator = t["parameterIterator"]
        try:
            values = self.b._resolve(key, t, self)
            triggered = self.b._triggered(t, values)
            if triggered:
                source = (iterator.get("items") or {}).get("inputParameter")
                if source is None:
                    raise HarnessError(f"task {key}: raw iterator items are not modelled")
                if source not in values:
                    raise HarnessError(f"task {key}: iterating on item input {iterator['itemInput']!r} failed: "
                                       "cannot find input parameter")
                items = _iteration_items(values[source])
        except (HarnessError, ConditionError) as err:
            with self.lock:
                self.states[key] = "FAILED"
                self.b._run.loop_errors.append(f"{key}: {err}")
            return "Failed"
        if not triggered:
            with self.lock:
                self.states[key] = "CANCELED"
                self.b._run.not_triggered.append(f"{self.component}/{_display_name(key, t)}")
            return "Skipped"
        with self.lock:
            self.states[key] = "RUNNING"
            self.b._run.iterations[f"{self.component}/{_display_name(key, t)}"] = len(items)
        inputs = {k: v for k, v in values.items() if k != source}
        children = [_Dag(self.b, t["componentRef"]["name"], {**inputs, iterator["itemInput"]: item}, None)
                    for item in items]
        results = [self.b._pool.submit(child.run) for child in children]
        ok = all(r.result() for r in results)
        outputs: dict[str, list[Any]] = {}
        for name in ((comp["dag"].get("outputs") or {}).get("parameters")) or {}:
            outputs[name] = [child.dag_outputs().get(name) for child in children]
        with self.lock:
            self.states[key] = "COMPLETE" if ok else "FAILED"
            self.task_outputs[key] = outputs
        self.update_state()
        return "Succeeded" if ok else "Failed"
