"""``KubeflowDagRunner``: compile a pipeline to a Kubeflow Pipelines (v2) spec, submit it, or run it locally.

The compiled pipeline has one task per jfx node, all of one lightweight Python component
(``base_image`` = the jfx image) whose body imports jfx and runs the shared launcher for
the node the task names (:func:`jfx.orchestrators.entrypoint.run_node`). The IR is passed
once, as the pipeline parameter ``jfx_ir`` (compressed), that every task references, so
the spec grows linearly with the nodes and each task's ExecutorInput stays small; the
node id is each task's one constant input, and every jfx runtime parameter is a
Kubeflow pipeline parameter passed to every task. Artifacts do not travel through
Kubeflow: the launcher resolves a node's inputs from the jfx metadata store, so the
tasks are ordered with ``.after()`` along the DAG, and Kubeflow's own caching is off
(jfx caches through its store, so a Kubeflow run and a local run against the same
database share one cache). A final exit-handler task records the run's end, once, after
everything (a ``dsl.ExitHandler`` group around every node's task).

Backend: a Kubeflow Pipelines backend 2.14.0 or later (:data:`MIN_BACKEND_VERSION`,
:func:`check_backend_version`): before 2.14 the Argo compiler refuses the finish task's
``PipelineTaskFinalStatus`` ("task final status not supported yet",
backend/src/v2/compiler/argocompiler/dag.go at 2.0.5 to 2.5.0) and drops retries of tasks
inside a sub-DAG.

The pipeline root is a volume or an object store. On a volume (``volumes``: a
PersistentVolumeClaim mounted into every task) the tasks share it as a local path, and
the pipeline's own code is built into the image. On an object store (``s3://``,
``gs://``) no volume is needed: each task reaches the store with credentials from a
Kubernetes secret (``s3_secret``: env vars ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``s3_endpoint``: ``AWS_ENDPOINT_URL``; ``gcs_secret``: a key file mounted and named by
``GOOGLE_APPLICATION_CREDENTIALS``), and the user's code (component files, module files)
is uploaded at compile time, content-addressed, under ``<root>/_jfx/code/`` and fetched
by the task, so the stock jfx image runs any pipeline (see ``_kfp_code``). For a cluster,
a node parameter that is a local path the pods cannot see is refused at compile time.

Node options map to task settings: ``with_resources`` to CPU and memory requests and
limits, an accelerator count and type, node selectors and tolerations (kfp-kubernetes),
``with_retry`` to the task's retry policy (the
launcher then makes one attempt per try), ``with_timeout`` to the pod's
``activeDeadlineSeconds`` (the launcher also enforces it in-process, exactly).

A node whose IR trigger is ``all_done`` (a ``jfx.ExitHandler``'s node) is not
``ignore_upstream_failure()`` after its block: the Argo compiler turns a task with
``ALL_UPSTREAM_TASKS_COMPLETED`` into an exit hook on each of its dependencies
(argocompiler/dag.go, ``taskToExitTemplate``, tags 2.4.0 to 2.17.0), so it would run once
per upstream task, the first as soon as that one ends. Its task is instead the exit hook of
one sub-DAG that holds every node's task (:func:`_add_exit_hooks`): it runs once, after
everything, failed or not, in its own pod with its own settings. An exit node that other
nodes depend on also keeps an ordinary task after its block (nothing can depend on a hook),
and its hook then runs it only if that task never started. After a failure Argo starts no
further task: those nodes are recorded SKIPPED with the reason.

A ``jfx.If`` condition on runtime parameters is compiled into the task's
``triggerPolicy.condition`` (:func:`cel_condition`): the backend's driver decides it before a
pod starts, and the finish task records the nodes it skipped (and those after them, which
Argo omits) SKIPPED. A condition on an output value stays in the pod (the launcher decides).

A dynamic ``jfx.ForEach`` (over a list a node makes at run time) is a ``ParallelFor`` over the
source task's list output parameter, one task per template inside it, and the nodes after
it take the loop's outputs as ``dsl.Collected`` list inputs (:func:`_loop_component`;
docs/kubeflow.md says how the backend runs it).

A metadata URL with a password is refused for a cluster: it would land in the spec, the
Kubeflow UI and every task's log. Give it through a Kubernetes secret
(``metadata_secret``): every task reads it as ``JFX_METADATA_URL``.

Compiling imports kfp (about a second), so ``import jfx`` never does.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import json
import keyword
import linecache
import math
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from collections.abc import Callable, Iterator, Mapping

from jfx import _storage as storage
from jfx._config import resolve_metadata_url
from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.orchestrators._run import RunResult, RunSession, RunState, as_ir
from jfx.pipelines import NodeIR, Pipeline, PipelineIR
from jfx.pipelines._expand import loop_groups, loop_sources

__all__ = ["KubeflowDagRunner", "SubmittedRun", "RESERVED_PARAMETERS", "MIN_BACKEND_VERSION", "check_backend_version"]

# The oldest Kubeflow Pipelines backend that runs a compiled spec (see the module's docstring).
MIN_BACKEND_VERSION = "2.14.0"

# Pipeline parameters every compiled pipeline has besides the jfx runtime parameters.
RESERVED_PARAMETERS = {
    "jfx_ir": str,             # the pipeline's IR, compressed (entrypoint.encode_ir); every task reads it
    "jfx_metadata_url": str,   # the metadata database (default: compiled in; empty: $JFX_METADATA_URL in the pod)
    "jfx_pipeline_root": str,  # where outputs go (default: compiled in)
    "jfx_enable_cache": bool,  # False: run every node (jfx run --no-cache)
    "jfx_from_nodes": list,    # a partial run: from these nodes ...
    "jfx_to_nodes": list,      # ... up to these
    "jfx_from_run": str,       # ... reusing this earlier run (default: the newest usable one)
    "jfx_run_id": str,         # the jfx run id (default: <pipeline>-kfp-<Kubeflow job id>)
}

_KFP_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict, "list": list}

# The pod's deadline is the node's timeout plus this much for the pod's start and the bookkeeping
# around the component; the launcher itself times the component exactly.
TIMEOUT_GRACE_S = 120

# where a gcs_secret is mounted in every task
GCS_KEY_MOUNT = "/var/secrets/jfx-gcs"

LOCAL_TARGET_HELP = """\
{what} {value!r} is on this machine; the pods of a Kubeflow cluster cannot reach it.
  {fix}
  To run the compiled pipeline on this machine with kfp.local instead, compile with
  KubeflowDagRunner(..., local=True) (jfx compile --local, or jfx run --runner kfp-local)."""

METADATA_PASSWORD_HELP = (
    "the metadata URL {url} has a password; it would be written into the spec, the Kubeflow UI and every task's "
    "log. Put the URL in a Kubernetes secret and compile with --metadata-secret SECRET:KEY "
    "(KubeflowDagRunner(image, metadata_secret=(SECRET, KEY))): every task reads it as JFX_METADATA_URL.")

METADATA_FIX = ("Use a database server the cluster reaches, e.g. "
                "KubeflowDagRunner(image, metadata_url='postgresql+psycopg://jfx@db.example.internal/jfx'), "
                "or metadata_secret=('jfx-db', 'url') to read it from a Kubernetes secret in each pod.")
ROOT_FIX = ("Put the pipeline root on an object store (--pipeline-root s3://bucket/jfx --s3-secret SECRET; "
            "KubeflowDagRunner(image, pipeline_root='s3://bucket/jfx', s3_secret='SECRET')) or on a volume every "
            "task mounts, e.g. "
            "KubeflowDagRunner(image, pipeline_root='/mnt/jfx/artifacts', volumes={{'/mnt/jfx': 'jfx-pvc'}}) "
            "(jfx compile --volume /mnt/jfx=jfx-pvc --pipeline-root /mnt/jfx/artifacts).")


@dataclass(frozen=True)
class SubmittedRun:
    """A run created on a Kubeflow Pipelines server.

    Attributes:
        run_id: the Kubeflow run id.
        url: the run's page in the Kubeflow Pipelines UI.
        jfx_run_id: the run's id in the jfx metadata store (``jfx runs show``).
        experiment_id: the Kubeflow experiment the run belongs to.
    """

    run_id: str
    url: str
    jfx_run_id: str
    experiment_id: str | None = None


class KubeflowDagRunner:
    """Compiles a pipeline to a Kubeflow Pipelines spec; submits it; or runs it with kfp.local.

    Args:
        image: the container image of every task: jfx and the pipeline's code
            installed (see the Dockerfile at the root of the jfx repository).
        pipeline_root: where outputs go (overrides the pipeline's). On a cluster it
            is an object store (``s3://bucket/prefix``, ``gs://bucket/prefix``) or lies
            on a volume every task mounts (``volumes``).
        metadata_url: the metadata database (overrides the pipeline's). On a cluster
            it must be a server the pods reach (PostgreSQL or MySQL), not SQLite.
        local: the pipeline runs on this machine (kfp.local): local paths and SQLite
            are fine.
        volumes: mount path → PersistentVolumeClaim name, mounted into every task.
        metadata_secret: a Kubernetes secret holding the metadata URL: ``(secret name,
            key)``, or the name alone (key ``url``). Every task reads the URL from it as
            ``JFX_METADATA_URL``, and none is compiled into the spec: the way to use a
            database with a password (a URL with one is refused for a cluster).
        env: environment variables for every task.
        s3_secret: a Kubernetes secret holding S3 credentials, set on every task as
            ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``: the secret's name (its
            keys named like those variables), or ``(name, access key's key, secret
            key's key)``, e.g. ``("mlpipeline-minio-artifact", "accesskey", "secretkey")``.
        s3_endpoint: an S3-compatible endpoint (MinIO, Ceph) the pods reach, set on
            every task as ``AWS_ENDPOINT_URL`` (and ``MLFLOW_S3_ENDPOINT_URL``).
        gcs_secret: a Kubernetes secret holding a GCS service-account key file,
            mounted into every task and named by ``GOOGLE_APPLICATION_CREDENTIALS``:
            the secret's name (key ``key.json``) or ``(name, key)``.
        accelerator_type: the Kubernetes resource name for ``with_resources(gpu=N)``.
        secret_env: environment variable → ``(secret name, key)``: set on every task from a
            Kubernetes secret, so that no value lands in the spec, e.g.
            ``{"JFX_SMTP_PASSWORD": ("jfx-notify", "smtp-password")}`` for the Notifier.

    Example:
        >>> runner = KubeflowDagRunner("registry.example/jfx:0.1", pipeline_root="/mnt/jfx/artifacts",
        ...                            metadata_url="postgresql+psycopg://jfx@db/jfx",
        ...                            volumes={"/mnt/jfx": "jfx-pvc"})  # doctest: +SKIP
        >>> runner.compile(pipeline, "pipeline.yaml")  # doctest: +SKIP
        'pipeline.yaml'
        >>> runner.submit(pipeline, "http://localhost:8080", experiment="penguin").url  # doctest: +SKIP
        'http://localhost:8080/#/runs/details/5c1d...'
    """

    def __init__(
        self,
        image: str,
        pipeline_root: str | None = None,
        metadata_url: str | None = None,
        *,
        local: bool = False,
        volumes: Mapping[str, str] | None = None,
        metadata_secret: str | tuple[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        accelerator_type: str = "nvidia.com/gpu",
        s3_secret: str | tuple[str, str, str] | None = None,
        s3_endpoint: str | None = None,
        gcs_secret: str | tuple[str, str] | None = None,
        secret_env: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        if not isinstance(image, str) or not image.strip():
            raise InvalidArgumentError(f"KubeflowDagRunner(image) takes a container image name, got {image!r}")
        self.image = image.strip()
        self.pipeline_root = str(pipeline_root) if pipeline_root is not None else None
        self.metadata_url = metadata_url
        self.local = bool(local)
        self.volumes = dict(volumes or {})
        for mount, claim in self.volumes.items():
            if not PurePosixPath(mount).is_absolute() or not isinstance(claim, str) or not claim:
                raise InvalidArgumentError(
                    f"volumes: {mount!r} -> {claim!r}: expected an absolute mount path and a PVC name, "
                    "e.g. {'/mnt/jfx': 'jfx-pvc'}"
                )
        if isinstance(metadata_secret, str) and metadata_secret:
            metadata_secret = (metadata_secret, "url")
        if metadata_secret is not None and (isinstance(metadata_secret, str) or len(metadata_secret) != 2
                                            or not all(isinstance(x, str) and x for x in metadata_secret)):
            raise InvalidArgumentError(f"metadata_secret takes (secret name, key) or a secret name, got {metadata_secret!r}")
        self.metadata_secret = tuple(metadata_secret) if metadata_secret else None
        self.env = {"MLFLOW_DISABLE_TELEMETRY": "true", **dict(env or {})}
        self.accelerator_type = accelerator_type
        if isinstance(s3_secret, str):
            s3_secret = (s3_secret, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if s3_secret is not None and (len(s3_secret) != 3 or not all(isinstance(x, str) and x for x in s3_secret)):
            raise InvalidArgumentError(f"s3_secret takes a secret name or (name, access key's key, secret key's key), "
                                       f"got {s3_secret!r}")
        self.s3_secret = tuple(s3_secret) if s3_secret else None
        if s3_endpoint is not None:
            if not re.match(r"^https?://[^/\s]+", s3_endpoint):
                raise InvalidArgumentError(f"s3_endpoint {s3_endpoint!r}: expected http(s)://host[:port]")
            self.env = {"AWS_ENDPOINT_URL": s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, **self.env}
        self.s3_endpoint = s3_endpoint
        if isinstance(gcs_secret, str):
            gcs_secret = (gcs_secret, "key.json")
        if gcs_secret is not None and (len(gcs_secret) != 2 or not all(isinstance(x, str) and x for x in gcs_secret)):
            raise InvalidArgumentError(f"gcs_secret takes a secret name or (name, key), got {gcs_secret!r}")
        self.gcs_secret = tuple(gcs_secret) if gcs_secret else None
        if self.gcs_secret:
            self.env = {"GOOGLE_APPLICATION_CREDENTIALS": f"{GCS_KEY_MOUNT}/{self.gcs_secret[1]}", **self.env}
        self.secret_env: dict[str, tuple[str, str]] = {}
        for variable, source in dict(secret_env or {}).items():
            if not isinstance(variable, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable) \
                    or not isinstance(source, (tuple, list)) or len(source) != 2 \
                    or not all(isinstance(x, str) and x for x in source):
                raise InvalidArgumentError(f"secret_env {variable!r}: {source!r}: expected an environment variable "
                                           "name and (secret name, key), e.g. {'JFX_SMTP_PASSWORD': "
                                           "('jfx-notify', 'smtp-password')}")
            if variable in self.env:
                raise InvalidArgumentError(f"secret_env {variable!r}: also given as a plain environment variable")
            self.secret_env[variable] = (source[0], source[1])

    # ------------------------------------------------------------------ compile

    def compile(self, pipeline: Pipeline | PipelineIR | dict[str, Any], output_path: str | Path = "pipeline.yaml") -> str:
        """Compile ``pipeline`` into a Kubeflow Pipelines (v2) spec at ``output_path``; return the path.

        Raises:
            InvalidPipelineError: the pipeline cannot be expressed (an empty pipeline, a
                parameter name Kubeflow cannot take).
            InvalidArgumentError: for a cluster (``local=False``): a pipeline root or
                metadata database on this machine.
        """
        from kfp import compiler

        ir = as_ir(pipeline)
        graph = self._pipeline_function(ir)
        output = Path(output_path)
        output.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # kfp's notices about future defaults
            compiler.Compiler().compile(graph, str(output))
        # kfp.local evaluates a trigger condition by pasting the values into Python source, a
        # string unescaped: for kfp.local, conditions on string parameters stay in the pod
        _rewrite_spec(output, ir, trigger_conditions(ir, strings=not self.local))
        return str(output)

    def targets(self, ir: PipelineIR) -> tuple[str, str]:
        """The metadata URL and pipeline root compiled into the spec, checked for a cluster.

        The URL is empty when each pod reads it from ``metadata_secret``.
        """
        url = self.metadata_url or ir.metadata_url
        root = self.pipeline_root or ir.pipeline_root
        if self.local:
            from jfx._config import default_pipeline_root

            if root and storage.is_remote(root):
                return resolve_metadata_url(url), storage.check_uri(root)
            return resolve_metadata_url(url), str(Path(root).resolve() if root else default_pipeline_root())
        if self.metadata_secret is not None:
            url = ""  # each pod reads JFX_METADATA_URL from the secret
        else:
            url = resolve_metadata_url(url)
            _check_cluster_url(url)
        if root is None:
            raise InvalidArgumentError(
                "the pipeline has no pipeline_root, and the default ($JFX_HOME/artifacts) is on this machine.\n  "
                + ROOT_FIX.format()
            )
        if storage.is_remote(root):
            return url, storage.check_uri(root)  # reached with credentials, not through a volume
        _check_cluster_root(root, self.volumes)
        self._warn_mlflow_on_volume(ir, root)
        return url, root

    def _warn_mlflow_on_volume(self, ir: PipelineIR, root: str) -> None:
        """A Trainer or Tuner would track its MLflow runs in SQLite on the shared volume, which
        network file systems corrupt (SQLite's locks and WAL need a local disk): say so once."""
        if "MLFLOW_TRACKING_URI" in (self.env or {}):
            return
        trackers = [n.id for n in ir.nodes if n.component.name in ("Trainer", "Tuner")]
        if trackers:
            print(f"jfx: warning: node {trackers[0]!r} tracks its MLflow runs in SQLite on the volume "
                  f"({root}/mlflow.sqlite), which breaks over NFS; give the tasks an MLflow server with "
                  "--env MLFLOW_TRACKING_URI=http://... (or use an s3:// or gs:// pipeline root for the artifacts "
                  "and a server for tracking)", file=sys.stderr)

    def for_tasks(self, ir: PipelineIR, root: str) -> PipelineIR:
        """The IR the tasks get: with an object-store root, the user's code uploaded under it and
        named by its objects; for a cluster, node parameters that are local paths refused.

        Raises:
            InvalidArgumentError: a node parameter is a local path the pods cannot see (one
                line naming the node and the parameter).
            StorageError: an upload failed.
        """
        from jfx.orchestrators._kfp_code import prepare_for_cluster

        def report(files: list[Any]) -> None:
            sent = sum(f.uploaded for f in files)
            print(f"jfx: user code under {storage.join(root, '_jfx', 'code')}: {sent} file(s) uploaded, "
                  f"{len(files) - sent} already there", file=sys.stderr)

        return prepare_for_cluster(ir, root, upload=storage.is_remote(root), check=not self.local,
                                   volumes=self.volumes, report=report)

    def _pipeline_function(self, ir: PipelineIR) -> Any:
        """The ``@dsl.pipeline`` function for ``ir``: one task per node, all under an exit handler."""
        from kfp import dsl

        if not ir.nodes:
            raise InvalidPipelineError(f"pipeline {ir.name!r} has no nodes; there is nothing to compile")
        for name in ir.parameters:
            if name in RESERVED_PARAMETERS or name in _TASK_ARGS or keyword.iskeyword(name):
                raise InvalidPipelineError(
                    f"pipeline {ir.name!r}: runtime parameter {name!r} cannot be a Kubeflow pipeline parameter "
                    f"(reserved names: {', '.join([*RESERVED_PARAMETERS, *_TASK_ARGS])}, and Python keywords); "
                    "rename it"
                )
        from jfx.orchestrators.entrypoint import encode_ir

        url, root = self.targets(ir)
        for node in ir.nodes:
            workers = self._workers_of(node)
            if workers > 1 and storage.is_remote(root):
                raise InvalidPipelineError(
                    f"node {node.id!r}: a Trainer with workers={workers} runs its workers as a JAXJob whose pods "
                    f"share the pipeline root as a volume; give a pipeline root on a volume (volumes=...), not {root}")
        ir = self.for_tasks(ir, root)
        _check_loops(ir)
        runner_name = "kfp-local" if self.local else "kubeflow"
        param_names = list(ir.parameters)
        # one component for every node's task (the node id is the task's input), one for the finish;
        # a dynamic ForEach's source, copies and collectors have their own (see _loop_component)
        node_component = _node_component(param_names, ir.parameters, self.image)
        finish_component = _finish_component(param_names, ir.parameters, self.image)
        sources = {s["producer"] for s in loop_sources(ir)}
        templates = {n.id for n in ir.nodes if n.loop is not None}
        variants: dict[tuple[bool, bool, int], Any] = {}

        def component_of(node: NodeIR, collected: int) -> Any:
            kind = (node.id in sources, node.loop is not None, collected)
            if kind == (False, False, 0):
                return node_component
            if kind not in variants:
                variants[kind] = _loop_component(param_names, ir.parameters, self.image, *kind)
            return variants[kind]

        signature_params = []
        required = [p for p in ir.parameters.values() if p.required]
        optional = [p for p in ir.parameters.values() if not p.required]
        for p in required + optional:
            default = inspect.Parameter.empty if p.required else p.default
            signature_params.append(inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                      default=default, annotation=_KFP_TYPES[p.type]))
        reserved_defaults = {"jfx_ir": encode_ir(ir), "jfx_metadata_url": url, "jfx_pipeline_root": root, "jfx_enable_cache": ir.enable_cache,
                             "jfx_from_nodes": [], "jfx_to_nodes": [], "jfx_from_run": "", "jfx_run_id": ""}
        for name, typ in RESERVED_PARAMETERS.items():
            signature_params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                      default=reserved_defaults[name], annotation=typ))
        signature = inspect.Signature(signature_params)
        order = list(signature.parameters)

        def body(*args: Any) -> None:
            values = dict(zip(order, args, strict=True))
            common = {
                "jfx_job_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                "jfx_runner": runner_name,
                **{k: values[k] for k in RESERVED_PARAMETERS},
                **{k: values[k] for k in param_names},
            }
            exit_task = finish_component(**common)
            exit_task.set_display_name("jfx-finish-run").set_caching_options(False)
            self._configure_pod(exit_task)
            tasks: dict[str, Any] = {}
            # The finish runs once, after every node's task, whatever happened: Argo runs it as the
            # exit hook of the group's one sub-DAG (argocompiler/dag.go, 2.14.0 to 2.17.0).
            def add(node: NodeIR, item: Any = None) -> None:
                # a node after a dynamic ForEach waits for the copies through a Collected input
                # (kfp refuses .after() on a task inside a ParallelFor): the loop DAG's outputs
                collected = [u for u in node.upstream if u in templates and node.loop is None]
                extra = {f"jfx_collected_{i}": dsl.Collected(tasks[u].output) for i, u in enumerate(collected)}
                if item is not None:
                    extra["jfx_loop_item"] = item
                task = component_of(node, len(collected))(jfx_node=node.id, **extra, **common)
                task.set_display_name(node.id)
                self._configure_task(task, node)
                upstream = [tasks[u] for u in node.upstream
                            if u not in collected and not (node.loop is not None and u == node.loop["producer"])]
                if upstream:
                    task.after(*upstream)
                # An exit handler's node (trigger all_done) becomes an exit hook when the spec is
                # rewritten (_add_exit_hooks); its task here gives the hook its settings.
                tasks[node.id] = task

            with dsl.ExitHandler(exit_task, name="jfx-run"):
                for group in loop_groups(ir):
                    if group[0].loop is None:
                        add(group[0])
                        continue
                    # a dynamic ForEach: a ParallelFor over its source task's list output parameter
                    with dsl.ParallelFor(tasks[group[0].loop["producer"]].output) as item:
                        for node in group:
                            add(node, item)

        body.__signature__ = signature  # type: ignore[attr-defined]
        body.__name__ = _kfp_name(ir.name).replace("-", "_")
        body.__doc__ = f"jfx pipeline {ir.name} ({len(ir.nodes)} nodes), compiled by jfx."
        return dsl.pipeline(name=_kfp_name(ir.name), display_name=ir.name,
                            description=f"jfx pipeline {ir.name}")(body)

    def _configure_pod(self, task: Any) -> None:
        for name, value in self.env.items():
            task.set_env_variable(name, value)
        if self.volumes or self.metadata_secret or self.s3_secret or self.gcs_secret or self.secret_env:
            from kfp import kubernetes

            for mount, claim in self.volumes.items():
                kubernetes.mount_pvc(task, pvc_name=claim, mount_path=mount)
            if self.metadata_secret:
                secret, key = self.metadata_secret
                kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env={key: "JFX_METADATA_URL"})
            if self.s3_secret:
                secret, access_key, secret_key = self.s3_secret
                kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env={
                    access_key: "AWS_ACCESS_KEY_ID", secret_key: "AWS_SECRET_ACCESS_KEY"})
            if self.gcs_secret:
                kubernetes.use_secret_as_volume(task, secret_name=self.gcs_secret[0], mount_path=GCS_KEY_MOUNT)
            by_secret: dict[str, dict[str, str]] = {}
            for variable, (secret, key) in self.secret_env.items():
                by_secret.setdefault(secret, {})[key] = variable
            for secret, keys in by_secret.items():
                kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys)

    def _workers_of(self, node: NodeIR) -> int:
        """The ``workers`` of a Trainer node (1 for other nodes)."""
        if node.component.module != "jfx.components._trainer" or "workers" not in node.parameters:
            return 1
        param = node.parameters["workers"]
        if param.runtime is not None:
            raise InvalidPipelineError(f"node {node.id!r}: workers cannot be a runtime parameter on Kubeflow (the "
                                       "JAXJob's size is compiled into the spec); give a number")
        return int(param.value or 1)

    def _configure_workers(self, task: Any, node: NodeIR, workers: int) -> None:
        """A Trainer with ``workers``: its pod creates a JAXJob of ``workers`` pods (see
        :mod:`jfx.orchestrators._jaxjob`), which get the node's resources, each."""
        from jfx.orchestrators._jaxjob import LAUNCHER_ENV, TEMPLATE_ENV, worker_template

        template = worker_template(self.image, env=self.env, secret_env=self._all_secret_env(),
                                   volumes=self.volumes, resources=node.options.resources,
                                   accelerator_type=self.accelerator_type)
        task.set_env_variable(LAUNCHER_ENV, "jaxjob")
        task.set_env_variable(TEMPLATE_ENV, json.dumps(template, sort_keys=True))

    def _all_secret_env(self) -> dict[str, tuple[str, str]]:
        """Every environment variable a task reads from a secret: variable → (secret, key)."""
        out = dict(self.secret_env)
        if self.metadata_secret:
            out["JFX_METADATA_URL"] = tuple(self.metadata_secret)  # type: ignore[assignment]
        if self.s3_secret:
            secret, access_key, secret_key = self.s3_secret
            out["AWS_ACCESS_KEY_ID"] = (secret, access_key)
            out["AWS_SECRET_ACCESS_KEY"] = (secret, secret_key)
        return out

    def _configure_task(self, task: Any, node: NodeIR) -> None:
        task.set_caching_options(False)  # jfx caches through its metadata store
        self._configure_pod(task)
        workers = self._workers_of(node)
        if workers > 1:
            # the node's resources are each worker's; the Trainer's own pod only waits for them
            self._configure_workers(task, node, workers)
            res: Mapping[str, Any] = {}
        else:
            res = node.options.resources
        try:
            if res.get("cpu") is not None:
                cpu = str(res["cpu"])
                task.set_cpu_request(cpu).set_cpu_limit(cpu)
            if res.get("memory") is not None:
                task.set_memory_request(str(res["memory"])).set_memory_limit(str(res["memory"]))
        except ValueError as err:
            raise InvalidPipelineError(f"node {node.id!r}: with_resources({res}): {err}") from None
        if res.get("gpu"):
            task.set_accelerator_type(str(res.get("accelerator") or self.accelerator_type))
            task.set_accelerator_limit(int(res["gpu"]))
        if res.get("node_selector") or res.get("tolerations"):
            from kfp import kubernetes

            for label, value in (res.get("node_selector") or {}).items():
                kubernetes.add_node_selector(task, label_key=label, label_value=value)
            for toleration in res.get("tolerations") or []:
                kubernetes.add_toleration(task, **toleration)
        if node.options.retries:
            task.set_retry(num_retries=node.options.retries,
                           backoff_duration=f"{math.ceil(node.options.backoff_s)}s", backoff_factor=2.0)
        if node.options.timeout_s is not None:
            from kfp import kubernetes

            kubernetes.set_timeout(task, math.ceil(node.options.timeout_s) + TIMEOUT_GRACE_S)

    # ------------------------------------------------------------------ submit

    def submit(
        self,
        pipeline: Pipeline | PipelineIR | dict[str, Any] | str | Path,
        host: str,
        experiment: str | None = None,
        params: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        *,
        token: str | None = None,
        namespace: str | None = None,
    ) -> SubmittedRun:
        """Create a run on the Kubeflow Pipelines server at ``host``.

        Args:
            pipeline: a Pipeline (compiled here) or the path of a compiled spec.
            host: the Kubeflow Pipelines API, e.g. ``http://localhost:8080``.
            experiment: the experiment's name (created if missing; default: ``Default``).
            params: pipeline parameter values.
            run_name: the run's name in the Kubeflow UI.
            token: a bearer token. Without one, ``KF_PIPELINES_SA_TOKEN_PATH`` (a
                service-account token file) is used when set, else kfp's own means
                (its context file, cookies).

        Returns:
            the run's Kubeflow id, its UI address and its jfx run id.
        """
        options: dict[str, Any] = {"experiment": experiment, "params": params, "run_name": run_name, "token": token,
                   "namespace": namespace}
        if isinstance(pipeline, (str, Path)):
            if not Path(pipeline).is_file():
                raise InvalidArgumentError(f"{pipeline}: no such compiled pipeline file")
            return submit_package(str(pipeline), host, **options)
        with tempfile.TemporaryDirectory(prefix="jfx-kfp-") as folder:
            return submit_package(self.compile(pipeline, Path(folder) / "pipeline.yaml"), host, **options)

    # ------------------------------------------------------------------ local runs

    def run(
        self,
        pipeline: Pipeline | PipelineIR | dict[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        enable_cache: bool = True,
        run_id: str | None = None,
        resume_run_id: str | None = None,
        from_nodes: list[str] | None = None,
        to_nodes: list[str] | None = None,
        from_run: str | None = None,
        log: str | Path | None = None,
    ) -> RunResult:
        """Compile the pipeline and run the compiled spec on this machine with kfp.local.

        The spec is written, loaded back with kfp's loader and run by kfp.local's
        SubprocessRunner (each task a subprocess of this Python), so this runs exactly
        what a cluster would, minus the containers. Needs ``local=True``.

        Args:
            parameters, enable_cache, from_nodes, to_nodes, from_run, run_id: as for
                :meth:`LocalDagRunner.run`; the run a partial run reuses is chosen
                here, before any task starts, and passed to every task.
            resume_run_id: not supported (a Kubeflow run is not resumed; resume it on
                the local or Beam runner).
            log: a file that receives kfp.local's output (each task's log), instead of
                this process's standard output.

        Returns:
            the run's result, read back from the metadata store.
        """
        import kfp.local
        from kfp import components

        from jfx.orchestrators._loops import expand_recorded
        from jfx.orchestrators.entrypoint import KFP_LOCAL_ENV, OWNER_PID_ENV, outcomes_from_store

        if not self.local:
            raise InvalidArgumentError("run_local needs a runner made with local=True (a local pipeline root and store)")
        ir = as_ir(pipeline)
        values = ir.resolve_parameters(dict(parameters or {}))
        owner = {"host": socket_hostname(), "pid": os.getpid()}  # the tasks record this process as the run's owner
        with RunSession.open(
            ir, runner="kfp-local", metadata_url=self.metadata_url, pipeline_root=self.pipeline_root,
            parameters=values, enable_cache=enable_cache, run_id=run_id, resume_run_id=resume_run_id,
            from_nodes=from_nodes, to_nodes=to_nodes, from_run=from_run, progress=False, join_owner=owner,
        ) as session, tempfile.TemporaryDirectory(prefix="jfx-kfp-local-") as tmp:
            spec = self.compile(ir, Path(tmp) / "pipeline.yaml")
            loaded = components.load_component_from_file(spec)
            kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False),
                           pipeline_root=str(Path(tmp) / "kfp-outputs"), raise_on_error=False)
            arguments = {**values, "jfx_enable_cache": bool(enable_cache), "jfx_run_id": session.run.run_id,
                         "jfx_from_nodes": list(from_nodes or []), "jfx_to_nodes": list(to_nodes or []),
                         "jfx_from_run": session.source.run_id if session.source is not None else ""}
            previous = os.environ.get(OWNER_PID_ENV)
            os.environ[OWNER_PID_ENV] = str(owner["pid"])
            os.environ[KFP_LOCAL_ENV] = "1"  # the tasks run under kfp.local (see entrypoint.loop_list)
            # kfp.local indents its tasks' logs by replacing builtins.print while a task runs,
            # restoring what it found: should two of its tasks ever overlap, the one that ends
            # last would leave an indenting print for the rest of this process.
            print_before = builtins.print
            try:
                with warnings.catch_warnings(), _output_to(log), _inputs_kept_verbatim():
                    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
                    # resources, retries' display names, pod settings: for a cluster, not for kfp.local
                    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
                    loaded(**arguments)
            finally:
                builtins.print = print_before
                os.environ.pop(KFP_LOCAL_ENV, None)
                if previous is None:
                    os.environ.pop(OWNER_PID_ENV, None)
                else:
                    os.environ[OWNER_PID_ENV] = previous
            # the dynamic loops' copies, as the tasks made them
            session.ir = ir = expand_recorded(session.store, ir, session.run)
            session.outcomes.update(outcomes_from_store(session.store, ir, session.run, session.selected))
            state = session.record().state
            if state in (RunState.COMPLETE, RunState.FAILED):  # recorded by the run's exit task
                return session.result(state)
            return session.finish(RunState.FAILED)  # the exit task did not get to record it

    # The name this runner's local runs had before every runner shared ``run``.
    run_local = run


@contextlib.contextmanager
def _inputs_kept_verbatim() -> Iterator[None]:
    """Stop kfp.local from rewriting the tasks' input values.

    To run a task in this Python, kfp.local's SubprocessRunner replaces ``python3`` with
    this interpreter's path in every element of the task's command line, the executor
    input (the task's parameter values) included: a path such as
    ``.../lib/python3.11/site-packages/...`` in a parameter or in the IR would arrive
    corrupted. The replacement is kept for the command and left off the executor input.
    """
    from kfp.local import subprocess_task_handler as handler

    original = handler.replace_python_executable

    def replace(full_command: list[str], new_executable: str) -> list[str]:
        if "--executor_input" not in full_command:
            return original(full_command, new_executable)
        at = full_command.index("--executor_input") + 2
        return original(full_command[:at - 1], new_executable) + full_command[at - 1:at] + \
            original(full_command[at:], new_executable)

    handler.replace_python_executable = replace
    try:
        yield
    finally:
        handler.replace_python_executable = original


@contextlib.contextmanager
def _output_to(log: str | Path | None) -> Iterator[None]:
    """Send this process's standard output (where kfp.local writes every task's log) to ``log``."""
    if log is None:
        yield
        return
    path = Path(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh, contextlib.redirect_stdout(fh):
        yield


def submit_package(package: str, host: str, **options: Any) -> SubmittedRun:
    """Create a run of a compiled spec on the Kubeflow Pipelines server at ``host``
    (:func:`jfx.orchestrators._kfp_cli.submit_package`, which takes the options)."""
    from jfx.orchestrators._kfp_cli import submit_package as submit

    return submit(package, host, **options)


def _read_spec(package: str) -> dict[str, Any]:
    import yaml

    try:
        with open(package) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
    except (OSError, yaml.YAMLError) as err:
        raise InvalidArgumentError(f"{package}: not a readable compiled pipeline ({err})") from None
    for doc in docs:
        if isinstance(doc, dict) and "pipelineInfo" in doc:
            return doc
    raise InvalidArgumentError(f"{package}: not a Kubeflow pipeline spec (no pipelineInfo); compile it with jfx compile")


def _spec_ir(spec: Mapping[str, Any], package: str) -> PipelineIR:
    """The jfx IR a compiled spec carries: the default of its ``jfx_ir`` parameter (specs compiled
    by earlier jfx versions: a constant input of every node's task)."""
    from jfx.orchestrators.entrypoint import decode_ir

    params = (spec.get("root", {}).get("inputDefinitions", {}) or {}).get("parameters", {}) or {}
    encoded = (params.get("jfx_ir") or {}).get("defaultValue")
    if isinstance(encoded, str) and encoded:
        return decode_ir(encoded)
    for comp in spec.get("components", {}).values():
        for task in (comp.get("dag", {}).get("tasks") or {}).values():
            constant = task.get("inputs", {}).get("parameters", {}).get("jfx_ir", {}).get("runtimeValue", {})
            if "constant" in constant:
                return PipelineIR.from_dict(json.loads(constant["constant"]))
    raise InvalidArgumentError(f"{package}: not a pipeline compiled by jfx (no task carries a jfx IR)")


def _parse_kfp_value(name: str, value: Any, kind: str) -> Any:
    """A ``--param`` string as the type the pipeline parameter declares."""
    if not isinstance(value, str) or kind == "STRING":
        return value
    try:
        if kind == "NUMBER_INTEGER":
            return int(value)
        if kind == "NUMBER_DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return low in ("true", "1", "yes")
        if kind in ("STRUCT", "LIST"):
            return json.loads(value)
    except ValueError:
        raise InvalidArgumentError(f"pipeline parameter {name!r} expects {kind.lower()}, got {value!r}") from None
    return value


# ---------------------------------------------------------------------- backend version

def check_backend_version(version: str) -> None:
    """Refuse a Kubeflow Pipelines backend older than :data:`MIN_BACKEND_VERSION`, in one line.

    ``version`` is what the server reports (its healthz ``commit``/``tag_name``, e.g.
    ``"2.14.3"``, ``"v2.15.0"``, ``"2.16.0-rc.1"``; a pre-release counts as its release).

    >>> check_backend_version("2.15.0")
    >>> check_backend_version("2.5.0")
    Traceback (most recent call last):
    ...
    jfx.errors.InvalidArgumentError: the Kubeflow Pipelines server runs 2.5.0; jfx needs 2.14.0 or later ...

    Raises:
        InvalidArgumentError: an older backend, or a version that names no release.
    """
    found = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.].*)?\s*$", str(version or ""))
    if found is None:
        raise InvalidArgumentError(
            f"the Kubeflow Pipelines server reports version {version!r}, which names no release; jfx needs "
            f"{MIN_BACKEND_VERSION} or later")
    have = (int(found[1]), int(found[2]), int(found[3] or 0))
    need = tuple(int(x) for x in MIN_BACKEND_VERSION.split("."))
    if have < need:
        raise InvalidArgumentError(
            f"the Kubeflow Pipelines server runs {version.strip()}; jfx needs {MIN_BACKEND_VERSION} or later "
            "(before it the backend refuses the run's finish task: task final status not supported); "
            "upgrade Kubeflow Pipelines, or run the pipeline with jfx run")


# ---------------------------------------------------------------------- target checks

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "[::1]"}


def _check_cluster_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidArgumentError("the metadata URL is not a database URL (expected e.g. "
                                   "postgresql+psycopg://user@host/db)") from None
    if parsed.password:
        raise InvalidArgumentError(METADATA_PASSWORD_HELP.format(url=parsed.render_as_string(hide_password=True)))
    url = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        raise InvalidArgumentError(LOCAL_TARGET_HELP.format(what="the metadata database (SQLite)", value=url,
                                                            fix=METADATA_FIX))
    host = (parsed.host or "").lower()
    if not host or host in _LOCAL_HOSTS or host.startswith("127.") or host == socket_hostname():
        raise InvalidArgumentError(LOCAL_TARGET_HELP.format(what="the metadata database", value=url,
                                                            fix=METADATA_FIX))


def socket_hostname() -> str:
    import socket

    return socket.gethostname().lower()


def _check_cluster_root(root: str, volumes: Mapping[str, str]) -> None:
    path = PurePosixPath(root)
    if not path.is_absolute():
        raise InvalidArgumentError(LOCAL_TARGET_HELP.format(what="the pipeline root (a relative path)", value=root,
                                                            fix=ROOT_FIX.format()))
    if not any(path == PurePosixPath(m) or PurePosixPath(m) in path.parents for m in volumes):
        raise InvalidArgumentError(LOCAL_TARGET_HELP.format(
            what="the pipeline root (on no volume mounted into the tasks)", value=root, fix=ROOT_FIX.format()))


# ---------------------------------------------------------------------- generated components

def _kfp_name(name: str) -> str:
    """A Kubeflow pipeline name: lower case letters, digits and dashes."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (cleaned or "jfx-pipeline")[:128]


_COMMON_ARGS = ("jfx_ir: str, jfx_job_id: str, jfx_runner: str, jfx_metadata_url: str, jfx_pipeline_root: str, "
                "jfx_enable_cache: bool, jfx_from_nodes: list, jfx_to_nodes: list, jfx_from_run: str, jfx_run_id: str")

NODE_FUNCTION = "jfx_node_task"
# the tasks' own arguments besides RESERVED_PARAMETERS (not pipeline parameters)
_TASK_ARGS = ("jfx_node", "jfx_job_id", "jfx_runner", "jfx_exit_hook", "status")

_NODE_SOURCE = '''\
def jfx_node_task(jfx_node: str, {common}{params}, jfx_exit_hook: bool = False):
    """Runs one jfx node (jfx_node) through the jfx launcher (as an exit hook: unless it already ran)."""
    from jfx.orchestrators.entrypoint import decode_ir, kfp_run_id, run_node

    ir = decode_ir(jfx_ir)
    run_node(ir=ir, node_id=jfx_node, run_id=jfx_run_id or kfp_run_id(ir.name, jfx_job_id),
             metadata_url=jfx_metadata_url, pipeline_root=jfx_pipeline_root, parameters={param_dict},
             enable_cache=jfx_enable_cache, from_nodes=jfx_from_nodes, to_nodes=jfx_to_nodes, runner=jfx_runner,
             from_run=jfx_from_run or None, exit_hook=jfx_exit_hook)
'''

_FINISH_SOURCE = '''\
def jfx_finish_run({common}{params}, status: PipelineTaskFinalStatus):
    """Records the end of the jfx run: each node's state and the run's state."""
    from jfx.orchestrators.entrypoint import decode_ir, finish, kfp_run_id

    ir = decode_ir(jfx_ir)
    finish(ir=ir, run_id=jfx_run_id or kfp_run_id(ir.name, jfx_job_id),
           metadata_url=jfx_metadata_url, pipeline_root=jfx_pipeline_root, parameters={param_dict},
           enable_cache=jfx_enable_cache, from_nodes=jfx_from_nodes, to_nodes=jfx_to_nodes,
           final_state=status.state, error=status.error_message, runner=jfx_runner)
'''


def _param_parts(param_names: list[str], params: Mapping[str, Any]) -> tuple[str, str]:
    sig = "".join(f", {n}: {_KFP_TYPES[params[n].type].__name__}" for n in param_names)
    mapping = "{" + ", ".join(f"{n!r}: {n}" for n in param_names) + "}"
    return sig, mapping


def _define(source: str, fn_name: str) -> Callable[..., Any]:
    """Define a function from generated source that ``inspect.getsource`` can read back (kfp needs it)."""
    from kfp.dsl import PipelineTaskFinalStatus

    filename = f"<jfx-kfp-{fn_name}-{abs(hash(source)):x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"PipelineTaskFinalStatus": PipelineTaskFinalStatus, "__name__": "jfx_kfp_tasks"}
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own generated source
    return namespace[fn_name]


def _node_component(param_names: list[str], params: Mapping[str, Any], image: str) -> Any:
    from kfp import dsl

    sig, mapping = _param_parts(param_names, params)
    source = _NODE_SOURCE.format(common=_COMMON_ARGS, params=sig, param_dict=mapping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dsl.component(base_image=image, install_kfp_package=False)(_define(source, NODE_FUNCTION))


_LOOP_SOURCE = '''\
def {name}(jfx_node: str, {common}{params}{extra}, jfx_exit_hook: bool = False){returns}:
    """{doc}"""
    from jfx.orchestrators.entrypoint import decode_ir, kfp_run_id, loop_list, run_node
{guard}
    ir = decode_ir(jfx_ir)
    run_id = jfx_run_id or kfp_run_id(ir.name, jfx_job_id)
    outcome = run_node(ir=ir, node_id=jfx_node, run_id=run_id,
                       metadata_url=jfx_metadata_url, pipeline_root=jfx_pipeline_root, parameters={param_dict},
                       enable_cache=jfx_enable_cache, from_nodes=jfx_from_nodes, to_nodes=jfx_to_nodes,
                       runner=jfx_runner, from_run=jfx_from_run or None, exit_hook=jfx_exit_hook{loop_index})
{tail}
'''


def _loop_component(param_names: list[str], params: Mapping[str, Any], image: str, source: bool, copy: bool,
                    collected: int) -> Any:
    """The component of a node's task in a dynamic ForEach's part: its ``source`` node's task
    (which also outputs the loop's list), a ``copy`` (a template's task inside the loop's
    ParallelFor: the item is an input, the copy's node id its output), or a node after the
    loop that ``collected`` templates' outputs (one list input each, unused: the launcher
    reads the copies' outputs from the store; the inputs order the task after the loop)."""
    from kfp import dsl

    sig, mapping = _param_parts(param_names, params)
    extra = "".join(f", jfx_collected_{i}: list" for i in range(collected))
    guard = ""
    if copy:
        name, doc = "jfx_loop_copy_task", "Runs one copy of a jfx ForEach template: copy jfx_loop_item['jfx_index']."
        extra += ", jfx_loop_item: dict"
        returns, loop_index = " -> str", ", loop_index=int(jfx_loop_item['jfx_index'])"
        tail = "    return outcome.node_id"
        guard = "    if int(jfx_loop_item['jfx_index']) < 0:  # kfp.local's stand-in for no items\n        return ''\n"
    elif source:
        name, doc = "jfx_loop_source_task", "Runs one jfx node, then outputs the list its dynamic ForEach iterates."
        returns, loop_index = " -> list", ""
        tail = ("    return loop_list(ir=ir, node_id=jfx_node, run_id=run_id, metadata_url=jfx_metadata_url,\n"
                f"                     pipeline_root=jfx_pipeline_root, parameters={mapping},\n"
                "                     enable_cache=jfx_enable_cache, runner=jfx_runner)")
    else:
        name, doc = "jfx_collect_task", "Runs one jfx node after a ForEach (its Collected inputs order it after the loop)."
        returns, loop_index, tail = "", "", "    del outcome"
    if source and not copy and collected:
        name = "jfx_loop_source_collect_task"
    source_text = _LOOP_SOURCE.format(name=name, doc=doc, common=_COMMON_ARGS, params=sig, extra=extra,
                                      returns=returns, param_dict=mapping, loop_index=loop_index, tail=tail,
                                      guard=guard)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dsl.component(base_image=image, install_kfp_package=False)(_define(source_text, name))


def _check_loops(ir: PipelineIR) -> None:
    """Refuse the dynamic ForEach shapes a Kubeflow spec cannot express (one line naming the node)."""
    by_producer: dict[str, set[tuple[str, str]]] = {}
    for source in loop_sources(ir):
        by_producer.setdefault(source["producer"], set()).add((source["key"], source["property"]))
    for producer, values in by_producer.items():
        if len(values) > 1:
            raise InvalidPipelineError(f"node {producer!r}: on Kubeflow, a node is the source of one dynamic ForEach "
                                       f"value at most (its task outputs one list), got {len(values)}")
    templates = {n.id: n for n in ir.nodes if n.loop is not None}
    for node in ir.nodes:
        after = [u for u in node.upstream if u in templates]
        if node.trigger == "all_done" and after:
            raise InvalidPipelineError(f"node {node.id!r}: on Kubeflow, a jfx.ExitHandler cannot guard a dynamic "
                                       f"ForEach ({after[0]!r}); put the loop outside the block")
        if node.loop is not None and any(templates[u].loop != node.loop for u in after):
            raise InvalidPipelineError(f"node {node.id!r}: on Kubeflow, a node inside a dynamic ForEach cannot collect "
                                       "another loop's outputs")


def _finish_component(param_names: list[str], params: Mapping[str, Any], image: str) -> Any:
    from kfp import dsl

    sig, mapping = _param_parts(param_names, params)
    source = _FINISH_SOURCE.format(common=_COMMON_ARGS, params=sig, param_dict=mapping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dsl.component(base_image=image, install_kfp_package=False)(_define(source, "jfx_finish_run"))


# ---------------------------------------------------------------------- trigger conditions

_CEL_OPS = ("==", "!=", "<", "<=", ">", ">=")


def _cel_string(text: str) -> str:
    """A CEL string literal (single-quoted, escaped), which Python also reads back as ``text``."""
    out = []
    for ch in text:
        if ch in ("\\", "'"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def _cel_comparison(op: str, args: list[dict[str, Any]], params: Mapping[str, Any]) -> str | None:
    """One comparison as CEL over the task's inputs, or None when the driver could not decide it
    as the launcher does (an output value, a dict/list/null operand, mismatched types)."""
    if op not in _CEL_OPS:
        return None
    kinds: list[str] = []
    for a in args:
        if "param" in a:
            p = params.get(a["param"])
            if p is None or p.type not in ("int", "float", "str", "bool") or (p.default is None and not p.required):
                return None  # a parameter that may be null: the in-pod check decides
            kinds.append(p.type)
        elif "value" in a:
            v = a["value"]
            if isinstance(v, bool):
                kinds.append("bool")
            elif isinstance(v, int):
                kinds.append("int")
            elif isinstance(v, float) and math.isfinite(v):
                kinds.append("float")
            elif isinstance(v, str):
                kinds.append("str")
            else:
                return None
        else:
            return None  # an output artifact's property: only the pod can read it
    numeric = {"int", "float"}
    if not (kinds[0] == kinds[1] or set(kinds) <= numeric):
        return None
    if "bool" in kinds and op not in ("==", "!="):
        return None
    as_int = kinds == ["int", "int"]  # whole numbers compared as CEL ints; else as doubles
    sides = []
    for a, kind in zip(args, kinds, strict=True):
        if "param" in a:
            # a parameter arrives as a protobuf Value: a number is a double (the SDK's own form for ints)
            ref = f"inputs.parameter_values[{_cel_string(a['param'])}]"
            sides.append(f"int({ref})" if as_int else ref)
        else:
            v = a["value"]
            if kind == "bool":
                sides.append("true" if v else "false")
            elif kind == "str":
                sides.append(_cel_string(v))
            elif as_int:
                sides.append(str(int(v)))
            else:
                sides.append(repr(float(v)))  # 10.0, 1e-07, 1e+21: CEL double literals
    if not any("inputs." in side for side in sides):
        return None  # two constants: nothing for the driver to decide
    return f"{sides[0]} {op} {sides[1]}"


def cel_condition(cond: dict[str, Any] | None, params: Mapping[str, Any], *, exact: bool = False) -> str | None:
    """A node's ``jfx.If`` condition as its task's ``triggerPolicy.condition``, or None.

    The backend's driver evaluates the condition (CEL, ``backend/src/v2/expression``) on the
    task's ExecutorInput before any pod starts; when it is false the task is not triggered
    (its execution is CANCELED, Argo skips the pod and omits the tasks after it). Only what
    the driver decides as the launcher does is compiled: comparisons of runtime parameters
    (int, float, str, bool, never null) with constants or with each other, joined by and, or
    and not. Where the compiled condition is false so is the node's, so no node is skipped
    that the launcher would run; the parts of an ``and`` that only the pod can decide (an
    output artifact's property) are left out, and the launcher checks the whole condition
    in the pod. ``exact``: the whole condition, or None.

    >>> from jfx.pipelines import PipelineIR
    >>> ir = PipelineIR.from_dict({"ir_version": 1, "pipeline": {"name": "p"}, "nodes": [], "parameters": {
    ...     "push": {"type": "bool", "default": True}, "rows": {"type": "int", "default": 3}}})
    >>> cel_condition({"op": "and", "args": [{"op": "==", "args": [{"param": "push"}, {"value": True}]},
    ...     {"op": ">", "args": [{"param": "rows"}, {"value": 10}]}]}, ir.parameters)
    "(inputs.parameter_values['push'] == true) && (int(inputs.parameter_values['rows']) > 10)"
    """
    if not cond:
        return None
    op, args = cond["op"], cond["args"]
    if op in ("and", "or"):
        parts = [cel_condition(a, params, exact=exact) for a in args]
        if (exact or op == "or") and any(p is None for p in parts):
            return None  # a part that may hold: the pod decides
        kept = [p for p in parts if p is not None]
        if not kept:
            return None
        joiner = " && " if op == "and" else " || "
        return kept[0] if len(kept) == 1 else joiner.join(f"({p})" for p in kept)
    if op == "not":
        inner = cel_condition(args[0], params, exact=True)  # "not" of a weaker condition would skip too much
        return None if inner is None else f"!({inner})"
    return _cel_comparison(op, args, params)


def trigger_conditions(ir: PipelineIR, *, strings: bool = True) -> dict[str, str]:
    """Node id → the ``triggerPolicy.condition`` of its task (nodes whose condition the driver can
    decide); ``strings=False`` leaves out comparisons of string parameters."""
    params = ir.parameters if strings else {k: p for k, p in ir.parameters.items() if p.type != "str"}
    found: dict[str, str] = {}
    for node in ir.nodes:
        cel = cel_condition(node.condition, params)
        if cel is not None:
            found[node.id] = cel
    return found


def _rewrite_spec(path: Path, ir: PipelineIR, triggers: Mapping[str, str]) -> None:
    """Rewrite the compiled spec at ``path``: tasks with the same settings share one component
    (:func:`_share_components`), each exit node runs as an exit hook around the node tasks
    (:func:`_add_exit_hooks`), and each node's task gets its trigger condition (``triggers``:
    node id → CEL, :func:`trigger_conditions`)."""
    import yaml

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    _share_components(docs)
    _add_exit_hooks(docs[0], ir)
    for dag in _dags(docs[0]):
        for task in (dag.get("tasks") or {}).values():
            node = _task_node(task)
            if node is not None and node in triggers:
                task.setdefault("triggerPolicy", {})["condition"] = triggers[node]
    path.write_text("---\n".join(yaml.safe_dump(d, sort_keys=True) for d in docs))


def _dags(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The DAGs of a spec: the root's and each DAG component's."""
    return [spec.get("root", {}).get("dag", {})] + [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]


def _task_node(task: Mapping[str, Any]) -> str | None:
    """The jfx node a task runs (its constant ``jfx_node`` input), if it is a node's task."""
    node = (task.get("inputs", {}).get("parameters", {}).get("jfx_node", {})
            .get("runtimeValue", {}).get("constant"))
    return node if isinstance(node, str) else None


def _add_exit_hooks(spec: dict[str, Any], ir: PipelineIR) -> None:
    """Run each ``jfx.ExitHandler`` node as an exit hook around every node's task, in its own pod.

    The node tasks' group is moved into a new sub-DAG component, and the exit node's task
    (its component: its resources, accelerator, node selector, timeout, retries) becomes a
    task after it with ``ALL_UPSTREAM_TASKS_COMPLETED``: the backend's Argo compiler makes
    that an exit hook on its one dependency, the sub-DAG (argocompiler/dag.go, 2.14.0 to
    2.17.0), so it runs once, after every node's task, whether they failed or not (after a
    failure Argo starts no other task). kfp's SDK refuses an ExitHandler inside another, so
    the groups are nested here, in the spec: one level per exit node, the exit node that
    comes last in the pipeline outermost.

    An exit node that other nodes depend on also keeps its ordinary task after its block, so
    that they can wait for it (nothing can depend on a hook); its hook then runs the node only
    when that task never did (``run_node(exit_hook=True)``).
    """
    import copy

    exit_nodes = [n for n in ir.nodes if n.trigger == "all_done"]
    if not exit_nodes:
        return
    depended_on = {u for n in ir.nodes for u in n.upstream}
    components = spec["components"]
    # the group that holds the node tasks (not a ParallelFor's DAG, which holds a dynamic loop's)
    holder = next(name for name, comp in components.items()
                  if any(_task_node(t) == exit_nodes[-1].id for t in (comp.get("dag") or {}).get("tasks", {}).values()))
    for level, node in enumerate(reversed(exit_nodes), start=1):
        outer = components[holder]
        tasks = outer["dag"]["tasks"]
        [(key, task)] = [(k, t) for k, t in tasks.items() if _task_node(t) == node.id]
        hook = copy.deepcopy(task)
        if node.id not in depended_on:
            del tasks[key]
        block_comp, block_task = f"comp-jfx-exit-block-{level}", f"jfx-exit-block-{level}"
        inputs = copy.deepcopy(outer.get("inputDefinitions") or {})
        components[block_comp] = {"dag": {"tasks": tasks}, **({"inputDefinitions": inputs} if inputs else {})}
        hook["dependentTasks"] = [block_task]
        hook["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
        hook["inputs"]["parameters"]["jfx_exit_hook"] = {"runtimeValue": {"constant": True}}
        hook["taskInfo"] = {"name": node.id}
        outer["dag"]["tasks"] = {
            block_task: {"componentRef": {"name": block_comp}, "taskInfo": {"name": block_task},
                         "inputs": {"parameters": {name: {"componentInputParameter": name}
                                                   for name in inputs.get("parameters", {})}}},
            f"jfx-exit-{level}": hook,
        }
        holder = block_comp


def _share_components(docs: list[dict[str, Any]]) -> None:
    """Make tasks with the same settings share one component, one executor and one Kubernetes
    executor config, in the compiled spec ``docs`` (the pipeline spec, the platform spec).

    kfp's compiler gives every task its own copy of the component (the task's body, a few KB,
    with its resources and Kubernetes settings), so a spec would grow by that much per node.
    Copies that are equal (the same container, the same platform settings) are merged: a
    spec then holds one node component per distinct ``with_resources``/``with_timeout``
    setting, and each node adds only its task (its inputs and dependencies).
    """
    spec = docs[0]
    platform = docs[1] if len(docs) > 1 else {}
    k8s = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})

    def key(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    first_executor: dict[str, str] = {}
    executor_as: dict[str, str] = {}
    for label in sorted(executors):
        executor_as[label] = first_executor.setdefault(key([executors[label], k8s.get(label)]), label)
    first_component: dict[str, str] = {}
    component_as: dict[str, str] = {}
    components = spec.get("components", {})
    for name in sorted(components):
        comp = components[name]
        if "executorLabel" in comp:
            comp["executorLabel"] = executor_as.get(comp["executorLabel"], comp["executorLabel"])
            component_as[name] = first_component.setdefault(key(comp), name)
    dags = [spec.get("root", {}).get("dag", {})] + [c.get("dag", {}) for c in components.values()]
    for dag in dags:
        for task in (dag.get("tasks") or {}).values():
            ref = task.get("componentRef", {})
            if ref.get("name") in component_as:
                ref["name"] = component_as[ref["name"]]
    for name, canonical in component_as.items():
        if name != canonical:
            del components[name]
    for label, canonical in executor_as.items():
        if label != canonical:
            del executors[label]
            k8s.pop(label, None)


def node_task_names(spec: Mapping[str, Any]) -> dict[str, str]:
    """Kubeflow task name → jfx node id, for the tasks of a compiled spec (read from their inputs)."""
    found: dict[str, str] = {}
    dags = [spec.get("root", {}).get("dag", {})] + [c.get("dag", {}) for c in spec.get("components", {}).values()]
    for dag in dags:
        for task_name, task in (dag.get("tasks") or {}).items():
            node = (task.get("inputs", {}).get("parameters", {}).get("jfx_node", {})
                    .get("runtimeValue", {}).get("constant"))
            if node is not None:
                found[task_name] = node
    return found

