"""What ``jfx compile``, ``jfx submit`` and ``jfx run --runner kfp-local`` do (their flags are in cli.py).

    jfx compile PIPELINE_FILE --target kubeflow --image IMAGE -o pipeline.yaml
        [--pipeline-root DIR] [--metadata-url URL] [--volume MOUNT=PVC ...]
        [--metadata-secret SECRET:KEY] [--env K=V ...] [--local]
    jfx submit pipeline.yaml --host URL [--experiment NAME] [--param k=v ...] [--run-name NAME]
        [--token TOKEN] [--namespace NS] [--no-cache] [--from NODE] [--to NODE] [--from-run RUN_ID]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["cmd_compile", "cmd_submit", "run_kfp_local", "LOCAL_IMAGE"]

# The image named in a spec compiled for kfp.local: tasks run in this Python, not in it.
LOCAL_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}"


def _pairs(items: list[str], flag: str, sep: str = "=") -> dict[str, str]:
    from jfx.errors import InvalidArgumentError

    found: dict[str, str] = {}
    for item in items:
        key, ok, value = item.partition(sep)
        if not ok or not key.strip() or not value:
            raise InvalidArgumentError(f"{flag} {item!r}: expected KEY{sep}VALUE")
        found[key.strip()] = value
    return found


def cmd_compile(args: argparse.Namespace) -> int:
    from jfx.errors import InvalidArgumentError
    from jfx.orchestrators._kubeflow import KubeflowDagRunner
    from jfx.pipelines import load_pipeline

    if not args.image and not args.local:
        raise InvalidArgumentError("jfx compile --target kubeflow needs --image IMAGE (the jfx image the tasks run in)")
    secret = None
    if args.metadata_secret:
        name, ok, key = args.metadata_secret.partition(":")
        if not ok or not name or not key:
            raise InvalidArgumentError(f"--metadata-secret {args.metadata_secret!r}: expected SECRET:KEY")
        secret = (name, key)
    runner = KubeflowDagRunner(args.image or LOCAL_IMAGE, pipeline_root=args.pipeline_root,
                               metadata_url=args.metadata_url, local=args.local,
                               volumes=_pairs(args.volume, "--volume"), metadata_secret=secret,
                               env=_pairs(args.env, "--env"))
    pipeline = load_pipeline(args.file)
    path = runner.compile(pipeline, args.output)
    ir = pipeline.compile()
    print(f"compiled pipeline {ir.name} ({len(ir.nodes)} nodes) for Kubeflow Pipelines: {path}")
    print(f"submit it with: jfx submit {path} --host URL")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from jfx.orchestrators._kubeflow import submit_package

    params: dict[str, Any] = _pairs(args.param, "--param")
    if args.no_cache:
        params["jfx_enable_cache"] = "false"
    if args.from_nodes:
        params["jfx_from_nodes"] = list(args.from_nodes)
    if args.to_nodes:
        params["jfx_to_nodes"] = list(args.to_nodes)
    if args.from_run:
        params["jfx_from_run"] = args.from_run
    run = submit_package(args.package, args.host, experiment=args.experiment, params=params,
                         run_name=args.run_name, token=args.token, namespace=args.namespace)
    print(f"submitted run {run.run_id}")
    print(f"  url:     {run.url}")
    print(f"  jfx run: {run.jfx_run_id}  (jfx runs show {run.jfx_run_id}, against the pipeline's metadata database)")
    return 0


def run_kfp_local(ir: Any, args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """``jfx run --runner kfp-local``: compile the pipeline and run the spec with kfp.local.

    Each task's log goes to ``$JFX_HOME/kfp-local/<run id>.log``.
    """
    import dataclasses

    from jfx._config import jfx_home
    from jfx.errors import InvalidArgumentError
    from jfx.orchestrators._kubeflow import KubeflowDagRunner
    from jfx.orchestrators._run import new_run_id

    if options.get("resume_run_id"):
        raise InvalidArgumentError("--resume runs on the local and beam runners; drop --runner kfp-local")
    if args.beam_arg is not None:
        ir = dataclasses.replace(ir, beam_pipeline_args=tuple(args.beam_arg))
    runner = KubeflowDagRunner(LOCAL_IMAGE, pipeline_root=args.pipeline_root, metadata_url=args.metadata_url,
                               local=True)
    run_id = new_run_id(ir.name)
    log = jfx_home() / "kfp-local" / f"{run_id}.log"
    print(f"compiling {ir.name} for Kubeflow and running it with kfp.local; task logs: {log}", file=sys.stderr)
    return runner.run_local(ir, parameters=options["parameters"], enable_cache=options["enable_cache"],
                            from_nodes=args.from_nodes, to_nodes=args.to_nodes, from_run=args.from_run,
                            run_id=run_id, log=log)
