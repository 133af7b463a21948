"""What ``jfx compile``, ``jfx submit`` and ``jfx run --runner kfp-local`` do (their flags are in cli.py).

    jfx compile PIPELINE_FILE --target kubeflow --image IMAGE -o pipeline.yaml
        [--pipeline-root DIR] [--metadata-url URL] [--volume MOUNT=PVC ...]
        [--metadata-secret SECRET:KEY] [--env K=V ...] [--local]
        [--s3-secret SECRET[:ACCESS_KEY_KEY:SECRET_KEY_KEY]] [--s3-endpoint URL] [--gcs-secret SECRET[:KEY]]
    jfx submit pipeline.yaml --host URL [--experiment NAME] [--param k=v ...] [--run-name NAME]
        [--token TOKEN] [--namespace NS] [--no-cache] [--from NODE] [--to NODE] [--from-run RUN_ID]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["LOCAL_IMAGE", "KfpLocalRunner", "cmd_compile", "cmd_submit"]

# The image named in a spec compiled for kfp.local: tasks run in this Python, not in it.
LOCAL_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}"


def _pairs(items: Sequence[str], flag: str, sep: str = "=") -> dict[str, str]:
    from jfx.errors import InvalidArgumentError

    found: dict[str, str] = {}
    for item in items:
        key, ok, value = item.partition(sep)
        if not ok or not key.strip() or not value:
            raise InvalidArgumentError(f"{flag} {item!r}: expected KEY{sep}VALUE")
        found[key.strip()] = value
    return found


def cmd_compile(file: str, *, output: str, image: str | None = None, pipeline_root: str | None = None,
                metadata_url: str | None = None, volumes: Sequence[str] = (), metadata_secret: str | None = None,
                env: Sequence[str] = (), local: bool = False, s3_secret: str | None = None,
                s3_endpoint: str | None = None, gcs_secret: str | None = None) -> int:
    """``jfx compile``: the flags' values, as given (``volumes`` and ``env`` as ``KEY=VALUE`` strings)."""
    from jfx.errors import InvalidArgumentError
    from jfx.orchestrators._kubeflow import KubeflowDagRunner
    from jfx.pipelines import load_pipeline

    if not image and not local:
        raise InvalidArgumentError("jfx compile --target kubeflow needs --image IMAGE (the jfx image the tasks run in)")
    secret = None
    if metadata_secret:
        name, ok, key = metadata_secret.partition(":")
        if not ok or not name or not key:
            raise InvalidArgumentError(f"--metadata-secret {metadata_secret!r}: expected SECRET:KEY")
        secret = (name, key)
    s3: str | tuple[str, str, str] | None = None
    if s3_secret:
        parts = s3_secret.split(":")
        if len(parts) == 1 and parts[0]:
            s3 = parts[0]
        elif len(parts) == 3 and all(parts):
            s3 = (parts[0], parts[1], parts[2])
        else:
            raise InvalidArgumentError(f"--s3-secret {s3_secret!r}: expected SECRET or SECRET:ACCESS_KEY_KEY:SECRET_KEY_KEY")
    gcs: str | tuple[str, str] | None = None
    if gcs_secret:
        name, ok, key = gcs_secret.partition(":")
        if not name or (ok and not key):
            raise InvalidArgumentError(f"--gcs-secret {gcs_secret!r}: expected SECRET or SECRET:KEY")
        gcs = (name, key) if ok else name
    runner = KubeflowDagRunner(image or LOCAL_IMAGE, pipeline_root=pipeline_root,
                               metadata_url=metadata_url, local=local,
                               volumes=_pairs(volumes, "--volume"), metadata_secret=secret,
                               env=_pairs(env, "--env"), s3_secret=s3, s3_endpoint=s3_endpoint, gcs_secret=gcs)
    pipeline = load_pipeline(file)
    path = runner.compile(pipeline, output)
    ir = pipeline.compile()
    print(f"compiled pipeline {ir.name} ({len(ir.nodes)} nodes) for Kubeflow Pipelines: {path}")
    print(f"submit it with: jfx submit {path} --host URL")
    return 0


def cmd_submit(package: str, *, host: str, params: Sequence[str] = (), experiment: str | None = None,
               run_name: str | None = None, token: str | None = None, namespace: str | None = None,
               enable_cache: bool = True, from_nodes: Sequence[str] | None = None,
               to_nodes: Sequence[str] | None = None, from_run: str | None = None) -> int:
    """``jfx submit``: the flags' values, as given (``params`` as ``KEY=VALUE`` strings)."""
    from jfx.orchestrators._kubeflow import submit_package

    values: dict[str, Any] = _pairs(params, "--param")
    if not enable_cache:
        values["jfx_enable_cache"] = "false"
    if from_nodes:
        values["jfx_from_nodes"] = list(from_nodes)
    if to_nodes:
        values["jfx_to_nodes"] = list(to_nodes)
    if from_run:
        values["jfx_from_run"] = from_run
    run = submit_package(package, host, experiment=experiment, params=values,
                         run_name=run_name, token=token, namespace=namespace)
    print(f"submitted run {run.run_id}")
    print(f"  url:     {run.url}")
    print(f"  jfx run: {run.jfx_run_id}  (jfx runs show {run.jfx_run_id}, against the pipeline's metadata database)")
    return 0


class KfpLocalRunner:
    """``jfx run --runner kfp-local``: compile the pipeline and run the spec with kfp.local.

    A :class:`~jfx.orchestrators._run.Runner`: each task's log goes to
    ``$JFX_HOME/kfp-local/<run id>.log``, named on standard error.
    """

    def __init__(self, *, metadata_url: str | None = None, pipeline_root: str | None = None) -> None:
        from jfx.orchestrators._kubeflow import KubeflowDagRunner

        self.runner = KubeflowDagRunner(LOCAL_IMAGE, pipeline_root=pipeline_root, metadata_url=metadata_url,
                                        local=True)

    def run(
        self,
        pipeline: Any,
        *,
        parameters: dict[str, Any] | None = None,
        enable_cache: bool = True,
        run_id: str | None = None,
        resume_run_id: str | None = None,
        from_nodes: list[str] | None = None,
        to_nodes: list[str] | None = None,
        from_run: str | None = None,
    ) -> Any:
        """Run ``pipeline`` with kfp.local (see :meth:`KubeflowDagRunner.run`)."""
        from jfx._config import jfx_home
        from jfx.errors import InvalidArgumentError
        from jfx.orchestrators._run import as_ir, new_run_id

        if resume_run_id:
            raise InvalidArgumentError("--resume runs on the local and beam runners; drop --runner kfp-local")
        ir = as_ir(pipeline)
        run_id = run_id or new_run_id(ir.name)
        log = jfx_home() / "kfp-local" / f"{run_id}.log"
        print(f"compiling {ir.name} for Kubeflow and running it with kfp.local; task logs: {log}", file=sys.stderr)
        return self.runner.run(ir, parameters=parameters, enable_cache=enable_cache, from_nodes=from_nodes,
                               to_nodes=to_nodes, from_run=from_run, run_id=run_id, log=log)
