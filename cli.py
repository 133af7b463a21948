"""The ``jfx`` command line.

    jfx run PIPELINE_FILE [--param k=v ...] [--no-cache]     run a pipeline locally
        [--beam-arg=--runner=DirectRunner ...]                data components on Beam
    jfx run --resume RUN_ID                                   rerun what did not complete
    jfx run PIPELINE_FILE --from NODE [--to NODE]             a partial run
        [--from-run RUN_ID]                                   reusing that run's upstream outputs
    jfx run PIPELINE_FILE --runner beam [--beam-arg=...]      the DAG as a Beam pipeline
    jfx run PIPELINE_FILE --runner kfp-local                  the compiled Kubeflow pipeline, on kfp.local
    jfx compile PIPELINE_FILE --target kubeflow --image IMAGE -o pipeline.yaml
                                                              a Kubeflow Pipelines spec
    jfx submit pipeline.yaml --host URL [--experiment NAME]   run it on a Kubeflow Pipelines server
    jfx submit pipeline.yaml --host URL --schedule CRON       ... or a Kubeflow recurring run of it
    jfx schedule list|pause|resume|delete [ID] --host URL     manage the recurring runs
    jfx runs list [--pipeline NAME] [--deleted]               runs, newest first
    jfx runs show RUN_ID                                      one run, node by node
    jfx gc --older-than 30d | --keep-last N | --run RUN_ID    delete old runs and the artifacts only they use
        [--pipeline NAME] [--dry-run] [--force]
    jfx lineage ARTIFACT_ID [--direction D] [--depth N]       what made an artifact
    jfx serve --model_base_path DIR --model_name NAME         serve models over HTTP (TF Serving REST)
    jfx ui [--port 8080] [--host 127.0.0.1] [--token T]     browse runs, lineage and artifacts in a browser
    jfx export MODEL_DIR --format onnx -o OUT                 the model as ONNX (transform included)
    jfx export MODEL_DIR --format web -o OUT                  a static page predicting in the browser
        [--quantize int8 --eval-examples FILE]                int8 weights, and what they cost in accuracy
    jfx --version

Every command takes ``--metadata-url`` (default: ``$JFX_METADATA_URL``, else
``sqlite:///$JFX_HOME/metadata.sqlite``). Errors print one line and exit non-zero;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any

from jfx._version import __version__
from jfx.core._serve_flags import add_serve_parser, serve_options

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130  # an error and a failed run alike exit 1


def _add_metadata_url(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metadata-url", metavar="URL", help="metadata database URL (default: $JFX_METADATA_URL or the SQLite store in $JFX_HOME)")


def add_compile_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``compile`` (a Kubeflow Pipelines spec from a pipeline file)."""
    p = subparsers.add_parser(
        "compile", help="compile a pipeline file for Kubeflow Pipelines",
        description="Compile a pipeline file into a Kubeflow Pipelines (v2) spec: one task per node, each "
                    "running the jfx launcher in IMAGE.")
    p.add_argument("file", help="a Python file defining `pipeline` or `create_pipeline()`")
    p.add_argument("--target", choices=["kubeflow"], default="kubeflow", help="what to compile for (kubeflow)")
    p.add_argument("--image", metavar="IMAGE", help="the container image of every task (jfx and the pipeline's code "
                                                    "installed; required unless --local)")
    p.add_argument("-o", "--output", default="pipeline.yaml", metavar="FILE", help="where to write the spec "
                                                                                  "(default: pipeline.yaml)")
    p.add_argument("--pipeline-root", metavar="DIR", help="where outputs go (default: the pipeline's)")
    p.add_argument("--metadata-url", metavar="URL", help="the metadata database (default: the pipeline's, "
                                                         "else $JFX_METADATA_URL)")
    p.add_argument("--volume", action="append", default=[], metavar="MOUNT=PVC",
                   help="mount a PersistentVolumeClaim into every task (repeatable), e.g. /mnt/jfx=jfx-pvc")
    p.add_argument("--metadata-secret", metavar="SECRET:KEY",
                   help="every task reads its metadata URL from this Kubernetes secret key")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for every task (repeatable)")
    p.add_argument("--s3-secret", metavar="SECRET[:ACCESS_KEY_KEY:SECRET_KEY_KEY]",
                   help="a Kubernetes secret whose keys (default AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) become "
                        "every task's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (an s3:// pipeline root)")
    p.add_argument("--s3-endpoint", metavar="URL",
                   help="an S3-compatible endpoint the pods reach (MinIO, Ceph): every task's AWS_ENDPOINT_URL")
    p.add_argument("--gcs-secret", metavar="SECRET[:KEY]",
                   help="a Kubernetes secret holding a service-account key file (default key: key.json), mounted "
                        "into every task as GOOGLE_APPLICATION_CREDENTIALS (a gs:// pipeline root)")
    p.add_argument("--secret-env", action="append", default=[], metavar="ENV=SECRET:KEY",
                   help="an environment variable of every task from a Kubernetes secret's key (repeatable), e.g. "
                        "JFX_SMTP_PASSWORD=jfx-notify:smtp-password: its value is not in the spec")
    p.add_argument("--local", action="store_true",
                   help="for kfp.local on this machine: local paths and SQLite are allowed")
    return p


def add_submit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``submit`` (a run of a compiled spec on a Kubeflow Pipelines server)."""
    p = subparsers.add_parser(
        "submit", help="run a compiled pipeline on a Kubeflow Pipelines server",
        description="Create a run of a compiled pipeline (jfx compile) on a Kubeflow Pipelines server. "
                    "Refuses a server older than Kubeflow Pipelines 2.14. Authentication: --token-file, "
                    "else $KF_PIPELINES_TOKEN, else the token file in $KF_PIPELINES_SA_TOKEN_PATH, else the kfp "
                    "client's own settings; cookies from --cookies-file or $KF_PIPELINES_COOKIES.")
    p.add_argument("package", help="the compiled pipeline (pipeline.yaml)")
    _add_kfp_connection(p)
    p.add_argument("--experiment", metavar="NAME", help="the experiment (created if missing; default: Default)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a pipeline parameter (repeatable)")
    p.add_argument("--run-name", metavar="NAME", help="the run's name in the Kubeflow UI (with --schedule: the "
                                                      "recurring run's)")
    p.add_argument("--pipeline-name", metavar="NAME",
                   help="upload the spec as a version of this Kubeflow pipeline (created if missing) and run that "
                        "version, so runs group under it and can be scheduled (default name: the pipeline's)")
    p.add_argument("--pipeline-version", metavar="NAME",
                   help="the uploaded version's name (default: the run's name; with --schedule: "
                        "<pipeline>-<hash of the spec>, reused while the spec is the same); implies the upload")
    p.add_argument("--no-cache", action="store_true", help="run every node, even if an identical execution exists")
    _add_partial_run(p)
    g = p.add_argument_group("recurring runs", "with --schedule, a Kubeflow recurring run of an uploaded pipeline "
                                               "version instead of one run (jfx schedule list|pause|resume|delete)")
    g.add_argument("--schedule", metavar="CRON",
                   help='a cron expression: standard 5 fields ("0 2 * * *": 02:00 every day; seconds are added '
                        "for Kubeflow), Kubeflow's 6 fields (seconds first), or @hourly, @daily, \"@every 6h\"")
    g.add_argument("--max-concurrency", type=int, metavar="N", help="runs of the schedule at once, 1-10 (default: 1)")
    g.add_argument("--no-catchup", action="store_true",
                   help="after a pause, start only the latest missed run (default: one per missed time)")
    g.add_argument("--start-time", metavar="ISO", help="start no run before this time (ISO 8601; no zone: UTC)")
    g.add_argument("--end-time", metavar="ISO", help="start no run after this time (ISO 8601; no zone: UTC)")
    return p


def _add_kfp_connection(p: argparse.ArgumentParser) -> None:
    """The flags that reach a Kubeflow Pipelines server (``submit`` and ``schedule``)."""
    p.add_argument("--host", required=True, metavar="URL", help="the Kubeflow Pipelines API, e.g. http://localhost:8080")
    p.add_argument("--token-file", metavar="FILE", help="a file holding a bearer token for the Kubeflow Pipelines API")
    p.add_argument("--token", metavar="TOKEN", help="a bearer token (shows in process lists: prefer --token-file or "
                                                    "$KF_PIPELINES_TOKEN)")
    p.add_argument("--cookies-file", metavar="FILE", help="a file holding session cookies (name=value; ...), e.g. "
                                                          "the authservice_session cookie of a Kubeflow login")
    p.add_argument("--cookies", metavar="COOKIES", help="session cookies (shows in process lists: prefer "
                                                        "--cookies-file or $KF_PIPELINES_COOKIES)")
    p.add_argument("--ssl-ca-cert", metavar="FILE", help="a CA bundle that signs the server's TLS certificate")
    p.add_argument("--namespace", metavar="NS", help="your profile's namespace (required by multi-user "
                                                     "installations; sent only when given)")


def add_schedule_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``schedule`` (list, pause, resume and delete Kubeflow recurring runs)."""
    p = subparsers.add_parser(
        "schedule", help="list, pause, resume or delete Kubeflow recurring runs (jfx submit --schedule makes them)",
        description="Manage the recurring runs on a Kubeflow Pipelines server; create one with "
                    "jfx submit pipeline.yaml --host URL --schedule CRON. Authentication as for jfx submit.")
    actions = p.add_subparsers(dest="schedule_command", metavar="ACTION")
    ls = actions.add_parser("list", help="every recurring run, newest first")
    _add_kfp_connection(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    for action, what in (("pause", "stop starting runs (the schedule stays)"),
                         ("resume", "start runs again"),
                         ("delete", "delete the recurring run (the runs it started stay)")):
        a = actions.add_parser(action, help=what)
        a.add_argument("recurring_run_id", metavar="RECURRING_RUN_ID", help="its id (jfx schedule list)")
        _add_kfp_connection(a)
    return p


def _add_partial_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_nodes", action="append", default=None, metavar="NODE",
                   help="partial run: start at NODE (repeatable); upstream outputs are reused from the store")
    p.add_argument("--to", dest="to_nodes", action="append", default=None, metavar="NODE",
                   help="partial run: stop after NODE (repeatable)")
    p.add_argument("--from-run", metavar="RUN_ID",
                   help="partial run: reuse the upstream outputs of RUN_ID (default: the newest run with the same "
                        "parameters in which they all completed and no validator halted)")


def add_ui_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``ui`` subcommand (the read-only metadata web UI); returns its parser."""
    p = subparsers.add_parser("ui", help="browse runs, DAGs, artifacts and lineage in a web browser (read-only)",
                              description="Serve the read-only metadata web UI: runs, their DAGs, executions, "
                                          "artifacts with typed viewers, lineage, and run comparison.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0: any free port)")
    p.add_argument("--token", default=None, metavar="T",
                   help="require this token on every route (default: $JFX_UI_TOKEN; none when unset); open the "
                        "UI once with ?token=T, or send Authorization: Bearer T")
    p.add_argument("--mlflow-url", default=None, metavar="URL",
                   help="base URL of an MLflow UI, for links from models to their MLflow run")
    _add_metadata_url(p)
    return p


def _cmd_ui(args: argparse.Namespace) -> int:
    from jfx.metadata.ui import UIServer

    token = args.token if args.token is not None else os.environ.get("JFX_UI_TOKEN") or None
    server = UIServer(args.metadata_url, host=args.host, port=args.port, token=token, mlflow_url=args.mlflow_url)
    shown = server.url + (f"?token={token}" if token else "")
    print(f"jfx ui: serving {server.store.url} at {shown} (Ctrl-C stops)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        print("jfx ui: warning: bound to a non-loopback address without --token; anyone who can reach it "
              "can read the metadata and artifacts", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("jfx ui: stopped", file=sys.stderr)
    finally:
        server.close()
    return 0


def add_gc_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``gc`` (retention: delete old runs and the artifacts only they use)."""
    p = subparsers.add_parser(
        "gc", help="delete old runs and the artifacts only they use",
        description="Delete runs (by age, by count per pipeline, or by id) and the artifacts they made. An artifact "
                    "stays while a kept run uses it (cache hits reuse artifacts across runs), a running execution "
                    "reads it, or a pushed or blessed model needs it (the model, its blessings and the push "
                    "record), unless --force. Running runs and files outside a run's pipeline root are never "
                    "deleted. Records are marked deleted, not removed, so lineage still shows what was there; "
                    "a gc that was interrupted is finished by the next one.")
    p.add_argument("--older-than", metavar="AGE", help="runs that started longer ago than AGE: a number and a "
                                                       "unit, m, h, d or w (e.g. 30d, 12h, 2w)")
    p.add_argument("--keep-last", type=int, metavar="N", help="runs beyond the newest N of each pipeline "
                                                               "(with --older-than: only runs both select)")
    p.add_argument("--run", dest="run_ids", action="append", default=[], metavar="RUN_ID",
                   help="this run (repeatable)")
    p.add_argument("--pipeline", metavar="NAME", help="only runs of this pipeline")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted and the bytes freed; "
                                                          "change nothing")
    p.add_argument("--force", action="store_true", help="also delete artifacts that kept runs, running executions "
                                                        "or pushed and blessed models depend on")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_metadata_url(p)
    return p


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``jfx export``: a model artifact in a portable format."""
    p = subparsers.add_parser(
        "export", help="write a model as ONNX, or as a static web page that predicts in the browser",
        description="Converts a jfx model folder (a Trainer's model or a pushed version) to ONNX: "
                    "model.onnx with a symbolic batch dimension and signature.json (inputs, string "
                    "vocabularies, outputs, label names). Run it with jfx.core.load_onnx or any ONNX runtime. "
                    "--format web adds index.html and onnxruntime-web: serve the folder with any static file "
                    "server and predict on a form's row or a CSV file in the browser, offline.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="the model folder (signature.json, model.stablehlo, ...)")
    p.add_argument("--format", choices=["onnx", "web"], default="onnx",
                   help="onnx (default), or web: the ONNX files plus a page running them with onnxruntime-web")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the folder to write (must not exist, or be empty)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="int8 weights (onnxruntime dynamic quantization): a smaller, usually faster model")
    p.add_argument("--eval-examples", metavar="PATH", default=None,
                   help="labelled raw examples (CSV, Parquet, or a folder of Parquet files) to measure the "
                        "quantized model's accuracy against the float one's")
    p.add_argument("--label-key", metavar="COLUMN", default=None,
                   help="the label column of --eval-examples (default: the model's label_key)")
    p.add_argument("--max-degradation", type=float, default=None, metavar="X",
                   help="fail, writing nothing, when quantization costs more than X accuracy (MAE for a regressor)")
    return p


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jfx.core._onnx import export_onnx
    from jfx.core import export_web
    from jfx.errors import InvalidArgumentError

    if args.eval_examples and not args.quantize:
        raise InvalidArgumentError("--eval-examples measures a quantization; add --quantize int8")
    if args.max_degradation is not None and not args.eval_examples:
        raise InvalidArgumentError("--max-degradation needs --eval-examples to measure the change on")
    options = {"quantize": args.quantize, "eval_examples": args.eval_examples, "label_key": args.label_key,
               "max_degradation": args.max_degradation}
    if args.format == "web":
        print(export_web(args.model_dir, args.output, **options).describe())
        return 0
    result = export_onnx(args.model_dir, args.output, **options)
    print(result.describe())
    print(f"signature: {Path(args.output) / 'signature.json'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jfx", description="Declarative ML pipelines: run, inspect runs, walk lineage.")
    parser.add_argument("--version", action="version", version=f"jfx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a pipeline file locally")
    run.add_argument("file", nargs="?", help="a Python file defining `pipeline` or `create_pipeline()`")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="set a runtime parameter (repeatable)")
    run.add_argument("--runner", choices=["local", "beam", "kfp-local"], default="local",
                     help="local (default): nodes on this machine; beam: the DAG as an Apache Beam pipeline; "
                          "kfp-local: the compiled Kubeflow pipeline, run by kfp.local on this machine")
    run.add_argument("--beam-arg", action="append", default=None, metavar="ARG",
                     help="an Apache Beam option (repeatable), e.g. --beam-arg=--runner=DirectRunner: with "
                          "--runner beam it configures the DAG and the data components, else only the data components")
    run.add_argument("--no-cache", action="store_true", help="run every node, even if an identical execution exists")
    run.add_argument("--resume", metavar="RUN_ID", help="rerun only the nodes of RUN_ID that did not complete")
    _add_partial_run(run)
    run.add_argument("--pipeline-root", metavar="DIR|URI",
                     help="where outputs go: a folder, s3://bucket/prefix or gs://bucket/prefix "
                          "(default: the pipeline's, else $JFX_HOME/artifacts)")
    run.add_argument("--max-workers", type=int, metavar="N", help="nodes run at once (default: CPU count)")
    run.add_argument("--executor", choices=["thread", "process"], default="thread", help="run nodes on threads (default) or worker processes")
    run.add_argument("--progress", choices=["auto", "rich", "log", "none"], default="auto", help="progress display")
    _add_metadata_url(run)

    runs = sub.add_parser("runs", help="list and show runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    ls = runs_sub.add_parser("list", help="runs, newest first")
    ls.add_argument("--pipeline", help="only runs of this pipeline")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--deleted", action="store_true", help="also list the runs jfx gc deleted")
    ls.add_argument("--json", action="store_true", help="print JSON")
    _add_metadata_url(ls)
    show = runs_sub.add_parser("show", help="one run, node by node")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    _add_metadata_url(show)

    add_gc_parser(sub)

    lin = sub.add_parser("lineage", help="the executions and artifacts upstream or downstream of an artifact")
    lin.add_argument("artifact_id", type=int)
    lin.add_argument("--direction", choices=["upstream", "downstream", "both"], default="upstream")
    lin.add_argument("--depth", type=int, default=None, help="execution steps to follow (default: all)")
    lin.add_argument("--json", action="store_true", help="print JSON")
    _add_metadata_url(lin)

    add_serve_parser(sub)
    add_ui_parser(sub)
    add_export_parser(sub)
    add_compile_parser(sub)
    add_submit_parser(sub)
    add_schedule_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.command is None or (args.command == "runs" and args.runs_command is None) or (
            args.command == "schedule" and args.schedule_command is None):
        parser.print_help()
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    jfx_log = logging.getLogger("jfx")
    jfx_log.addHandler(handler)
    jfx_log.setLevel(logging.INFO)
    from jfx.errors import JfxError, RunInterruptedError

    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "runs":
            return _cmd_runs_list(args) if args.runs_command == "list" else _cmd_runs_show(args)
        if args.command in ("compile", "submit"):
            from jfx.orchestrators import _kfp_cli

            if args.command == "compile":
                return _kfp_cli.cmd_compile(
                    args.file, output=args.output, image=args.image, pipeline_root=args.pipeline_root,
                    metadata_url=args.metadata_url, volumes=args.volume, metadata_secret=args.metadata_secret,
                    env=args.env, local=args.local, s3_secret=args.s3_secret, s3_endpoint=args.s3_endpoint,
                    gcs_secret=args.gcs_secret, secret_env=args.secret_env)
            return _kfp_cli.cmd_submit(
                args.package, host=args.host, params=args.param, experiment=args.experiment,
                run_name=args.run_name, token=args.token, namespace=args.namespace, enable_cache=not args.no_cache,
                from_nodes=args.from_nodes, to_nodes=args.to_nodes, from_run=args.from_run,
                token_file=args.token_file, cookies=args.cookies, cookies_file=args.cookies_file,
                ssl_ca_cert=args.ssl_ca_cert, pipeline_name=args.pipeline_name,
                pipeline_version=args.pipeline_version, schedule=args.schedule,
                max_concurrency=args.max_concurrency, no_catchup=args.no_catchup, start_time=args.start_time,
                end_time=args.end_time)
        if args.command == "schedule":
            from jfx.orchestrators._kfp_schedule import cmd_schedule

            return cmd_schedule(
                args.schedule_command, host=args.host, recurring_run_id=getattr(args, "recurring_run_id", None),
                as_json=getattr(args, "json", False), namespace=args.namespace, token=args.token,
                token_file=args.token_file, cookies=args.cookies, cookies_file=args.cookies_file,
                ssl_ca_cert=args.ssl_ca_cert)
        if args.command == "ui":
            return _cmd_ui(args)
        if args.command == "gc":
            return _cmd_gc(args)
        if args.command == "export":
            return _cmd_export(args)
        if args.command == "serve":
            from jfx.core._serving import serve

            return serve(**serve_options(args))
        return _cmd_lineage(args)
    except RunInterruptedError as err:
        print(f"jfx: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (JfxError, OSError) as err:
        if args.debug:
            raise
        print(f"jfx: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("jfx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        # The process ends next: spare the interpreter's last garbage collection over every
        # object JAX, pyarrow and friends made (about 0.4 s after a run that trained).
        import gc

        gc.freeze()


def _parse_params(items: list[str]) -> dict[str, str]:
    from jfx.errors import InvalidArgumentError

    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = value
    return params


def _cmd_run(args: argparse.Namespace) -> int:
    from jfx.errors import InvalidArgumentError
    from jfx.metadata import MetadataStore
    from jfx.metadata._runs import get_run
    from jfx.orchestrators._run import metadata_url_for
    from jfx.orchestrators._runners import RunnerOptions, make_runner
    from jfx.pipelines import PipelineIR, load_pipeline

    if args.file:
        ir = load_pipeline(args.file).compile()
    elif args.resume:
        with MetadataStore(args.metadata_url) as store:
            resumed = get_run(store, args.resume)
            if resumed is None or not resumed.ir:
                raise InvalidArgumentError(f"no run {args.resume!r} in the metadata store {store.url}")
            if resumed.deleted:
                raise InvalidArgumentError(f"run {args.resume!r} was deleted by jfx gc on {_iso(resumed.deleted_time)}; "
                                           "run the pipeline file again instead")
            ir = PipelineIR.from_dict(resumed.ir)
    else:
        raise InvalidArgumentError("jfx run needs a PIPELINE_FILE (or --resume RUN_ID)")
    beam_args = None if args.beam_arg is None else tuple(args.beam_arg)
    runner, takes_beam_args = make_runner(args.runner, RunnerOptions(
        metadata_url=args.metadata_url, pipeline_root=args.pipeline_root,
        progress=False if args.progress == "none" else args.progress, max_workers=args.max_workers,
        executor=args.executor, beam_args=beam_args))
    if beam_args is not None and not takes_beam_args:  # then they configure the data components only
        ir = dataclasses.replace(ir, beam_pipeline_args=beam_args)
    result = runner.run(ir, parameters=_parse_params(args.param), enable_cache=not args.no_cache,
                        resume_run_id=args.resume, from_nodes=args.from_nodes, to_nodes=args.to_nodes,
                        from_run=args.from_run)
    print(f"run {result.run_id} of pipeline {result.pipeline_name}: {result.state}")
    width = max((len(k) for k in result.nodes), default=4)
    for node_id, o in result.nodes.items():
        if o.halted:
            why = "halted the pipeline (below)"
        elif o.state == "reused":
            why = f"reused from run {o.reused_from_run} (outputs of execution {o.cached_from})"
        elif o.state == "cached":
            why = f"reused the outputs of execution {o.cached_from}"
        elif o.error:
            why = o.error
        else:
            why = f"ran: {o.cache_miss_reason}" if o.cache_miss_reason else ""
        print(f"  {node_id:<{width}}  {o.state:<9} {o.duration_s:7.2f}s  {why}")
    for node_id, o in result.nodes.items():
        if o.halted:
            print(f"\n{node_id} halted the pipeline:")
            print("  " + o.halted.rstrip().replace("\n", "\n  "))
            print()
    from jfx.metadata._backend import mask_secrets

    print(f"metadata: {mask_secrets(metadata_url_for(ir, args.metadata_url))}")
    print(f"inspect:  jfx runs show {result.run_id}")
    if not result.succeeded:
        print(f"resume:   jfx run --resume {result.run_id}")
    return 0 if result.succeeded else EXIT_FAILED


def _iso(value: Any) -> str:
    return value.isoformat(timespec="milliseconds") if value is not None else ""


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f}s"


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from jfx.metadata import ListOptions, MetadataStore
    from jfx.metadata._runs import list_run_summaries

    with MetadataStore(args.metadata_url) as store:
        runs = list_run_summaries(store, args.pipeline, ListOptions(limit=args.limit, order_by="id", descending=True),
                         include_deleted=args.deleted)
        pipelines = {c.id: c.name for c in store.get_pipelines()}
    rows: list[dict[str, Any]] = [
        {"run_id": r.run_id, "pipeline": pipelines.get(r.pipeline_context_id, ""), "state": r.state.value,
         "start_time": _iso(r.start_time), "duration": _duration(r.duration_s),
         "parameters": r.parameters, **({"deleted_time": _iso(r.deleted_time)} if args.deleted else {})}
        for r in runs
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no runs")
        return 0
    w = max(len(r["run_id"]) for r in rows)
    print(f"{'RUN':<{w}}  {'STATE':<10} {'STARTED':<24} {'DURATION':>9}" + ("  DELETED" if args.deleted else ""))
    for r in rows:
        deleted = f"  {r['deleted_time'][:16]}" if r.get("deleted_time") else ""
        print(f"{r['run_id']:<{w}}  {r['state']:<10} {r['start_time'][:23]:<24} {r['duration']:>9}{deleted}")
    return 0


def _run_report(store: Any, run_id: str) -> dict[str, Any]:
    from jfx.errors import NotFoundError
    from jfx.metadata._executions_info import ExecutionInfo
    from jfx.metadata._runs import get_run, node_attempts

    run = get_run(store, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id!r} in the metadata store {store.url}")
    assert run.context_id is not None
    latest = store.latest_executions(run.context_id)
    order = run.node_order or list(latest)
    nodes = []
    for node_id in order:
        e = latest.get(node_id)
        entry: dict[str, Any] = {"node": node_id, "state": run.node_states.get(node_id, "pending").upper()}
        if e is not None:
            _, outputs = store.get_execution_artifacts(e.id)
            info = ExecutionInfo.from_record(e)
            entry.update(
                state=e.state.value, execution_id=e.id,
                duration=(e.end_time - e.start_time).total_seconds() if e.end_time and e.start_time else None,
                cache_miss_reason=info.cache_miss_reason, cached_from=info.cached_from,
                reused_from_run=info.reused_from_run, error=info.error_message or info.skip_reason,
                halted=info.halted,
                outputs={k: [{"id": a.id, "type": a.type_name, "uri": a.uri, "state": a.state.value,
                              "deleted": a.deleted_note() or None} for a in v] for k, v in outputs.items()},
            )
            tries = node_attempts(store, run.context_id, node_id)
            if len(tries) > 1:
                entry["attempts"] = [
                    {"execution_id": x.id, "attempt": xi.attempt, "state": x.state.value,
                     "duration": (x.end_time - x.start_time).total_seconds() if x.end_time and x.start_time else None,
                     "error": xi.error_message}
                    for x in tries for xi in [ExecutionInfo.from_record(x)]
                ]
        nodes.append(entry)
    if run.pipeline_context_id is not None:
        run = dataclasses.replace(run, pipeline=store.get_context(run.pipeline_context_id).name)
    return {**run.summary(), "nodes": nodes}


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from jfx.metadata import MetadataStore

    with MetadataStore(args.metadata_url) as store:
        report = _run_report(store, args.run_id)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"run {report['run_id']}: {report.get('state')}  started {report.get('start_time')}  "
          f"took {_duration(report.get('duration_s')) or '-'}")
    if report.get("deleted_time"):
        print(f"deleted by jfx gc on {report['deleted_time']}: {report.get('delete_reason') or ''}".rstrip(": "))
    if report.get("parameters"):
        print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in report["parameters"].items()))
    for n in report["nodes"]:
        dur = f"{n['duration']:.2f}s" if n.get("duration") is not None else ""
        note = n.get("error") or ("halted the pipeline" if n.get("halted") else "") or (
            f"reused from run {n['reused_from_run']}" if n.get("reused_from_run") else
            f"cached from execution {n['cached_from']}" if n.get("cached_from") else n.get("cache_miss_reason") or "")
        print(f"  {n['node']:<24} {n['state']:<10} {dur:>8}  {note}")
        for t in n.get("attempts") or []:
            took = f"{t['duration']:.2f}s" if t.get("duration") is not None else ""
            print(f"      attempt {t['attempt'] or '?'}: execution {t['execution_id']} {t['state']:<9} {took:>8}  "
                  f"{t.get('error') or ''}".rstrip())
        for key, arts in (n.get("outputs") or {}).items():
            for a in arts:
                gone = f"  [{a['deleted']}]" if a.get("deleted") else ""
                print(f"      {key}: artifact {a['id']} {a['type']} {a['uri']}{gone}")
    return 0


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _cmd_gc(args: argparse.Namespace) -> int:
    from jfx.metadata import MetadataStore, RetentionPolicy, collect_garbage, parse_age

    policy = RetentionPolicy(older_than=parse_age(args.older_than) if args.older_than is not None else None,
                             keep_last=args.keep_last, run_ids=tuple(args.run_ids), pipeline=args.pipeline,
                             force=args.force)
    with MetadataStore(args.metadata_url) as store:
        report = collect_garbage(store, policy, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return EXIT_FAILED if report.errors else 0
    would = "would delete" if report.dry_run else "deleted"
    print(f"jfx gc{' (dry run: nothing changed)' if report.dry_run else ''}: runs {report.policy}")
    for run in report.runs:
        print(f"  {would} run {run.run_id} ({run.pipeline or '?'}, {run.state}, started {_iso(run.start_time)[:16]})")
    for skipped in report.skipped_runs:
        print(f"  kept run {skipped.run_id}: {skipped.why}")
    for a in report.artifacts:
        size = _bytes(a.size_bytes) if a.size_bytes is not None else f"size unknown: {a.error}"
        print(f"  {would} artifact {a.id} {a.type_name} {a.uri} ({size})")
    for k in report.kept:
        print(f"  kept artifact {k.id} {k.type_name} {k.uri}: {k.why}")
    if report.finished:
        verb = "would finish deleting" if report.dry_run else "finished deleting"
        for a in report.finished:
            print(f"  {verb} artifact {a.id} {a.type_name} {a.uri} (an earlier gc was interrupted)")
    for error in report.errors:
        print(f"jfx gc: {error}", file=sys.stderr)
    if report.logs:
        print(f"  {would} {len(report.logs)} execution log(s) of those runs ({_bytes(report.log_bytes)})")
    count = len(report.artifacts) + len(report.finished)
    print(f"{len(report.runs)} run(s), {count} artifact(s), {_bytes(report.bytes_freed)} "
          f"{'would be freed' if report.dry_run else 'freed'}; {len(report.kept)} artifact(s) kept")
    return EXIT_FAILED if report.errors else 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    from jfx.metadata import EventType, MetadataStore

    with MetadataStore(args.metadata_url) as store:
        graph = store.lineage(args.artifact_id, direction=args.direction, depth=args.depth)
    if args.json:
        print(json.dumps(graph.to_dict(), indent=2, default=str))
        return 0
    arts = {a.id: a for a in graph.artifacts}
    execs = {e.id: e for e in graph.executions}
    produced_by: dict[int, list[int]] = {}
    inputs_of: dict[int, list[int]] = {}
    consumed_by: dict[int, list[int]] = {}
    outputs_of: dict[int, list[int]] = {}
    for ev in graph.events:
        if ev.type == EventType.OUTPUT:
            produced_by.setdefault(ev.artifact_id, []).append(ev.execution_id)
            outputs_of.setdefault(ev.execution_id, []).append(ev.artifact_id)
        else:
            inputs_of.setdefault(ev.execution_id, []).append(ev.artifact_id)
            consumed_by.setdefault(ev.artifact_id, []).append(ev.execution_id)

    def art_line(a: Any) -> str:
        gone = f"  [{a.deleted_note()}]" if a.state.deleted else ""
        return f"artifact {a.id} {a.type_name} {a.name} {a.uri}{gone}"

    def walk(artifact_id: int, indent: int, up: bool, seen: set[int]) -> None:
        found = [execs[eid] for eid in sorted((produced_by if up else consumed_by).get(artifact_id, [])) if eid in execs]
        if up:
            # a cache hit re-records an artifact as its output: show the execution that made it
            made = [e for e in found if e.state.value != "CACHED"] or found[:1]
            if len(found) > len(made):
                print(f"{'  ' * indent}   (reused by {len(found) - len(made)} cached execution(s))")
            found = made
        for e in found:
            arrow = "<-" if up else "->"
            print(f"{'  ' * indent}{arrow} execution {e.id} {e.node_id} ({e.state.value})")
            for aid in sorted((inputs_of if up else outputs_of).get(e.stored_id, [])):
                if aid in arts and aid != artifact_id:
                    print(f"{'  ' * (indent + 1)}{arrow} {art_line(arts[aid])}")
                    if aid not in seen:
                        seen.add(aid)
                        walk(aid, indent + 2, up, seen)

    root = arts[args.artifact_id]
    print(art_line(root))
    if args.direction in ("upstream", "both"):
        walk(root.stored_id, 1, True, {root.stored_id})
    if args.direction in ("downstream", "both"):
        walk(root.stored_id, 1, False, {root.stored_id})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
