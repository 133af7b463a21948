"""The flags of ``jfx serve``, apart from the server so that ``jfx --help`` does not import JAX.

Both the ``jfx`` command line and ``python -m jfx.core._serving`` build their ``serve``
parser from :func:`add_serve_parser` and read it back with :func:`serve_options`, which
turns the parsed flags into the typed keyword arguments of :func:`jfx.core._serving.serve`:
nothing past this module sees an ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_serve_parser", "serve_options"]


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``serve`` subcommand to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser("serve", help="serve a model's versions over HTTP (TensorFlow Serving's REST API)",
                              description="Serve the versions under MODEL_BASE_PATH/<version>/ over HTTP "
                                          "in TensorFlow Serving's REST shape; new versions are picked up live.")
    p.add_argument("--model_base_path", "--model-base-path", dest="model_base_path", required=True, metavar="DIR",
                   help="folder of version folders DIR/<version>/ (jfx model artifacts); may be an "
                        "object-store prefix such as s3://bucket/models/NAME")
    p.add_argument("--model_name", "--model-name", dest="model_name", required=True, metavar="NAME",
                   help="the model's name in the URLs")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501; 0: any free port)")
    p.add_argument("--grpc_port", "--grpc-port", dest="grpc_port", type=int, default=None, metavar="N",
                   help="also serve TensorFlow Serving's gRPC API (PredictionService, ModelService) on --host at "
                        "port N (0: any free port; default: no gRPC); needs the grpc extra: pip install 'jfx[grpc]'")
    p.add_argument("--version_labels", "--version-labels", dest="version_labels", type=_labels, default=None,
                   metavar="LABEL=V,...", help="version labels, e.g. stable=1,canary=2: /v1/models/NAME/labels/LABEL "
                                               "and gRPC's model_spec.version_label answer with version V")
    p.add_argument("--no_batching", "--no-batching", dest="enable_batching", action="store_false",
                   help="run every request on its own (no dynamic batching)")
    p.add_argument("--max_batch_size", "--max-batch-size", dest="max_batch_size", type=int, default=64, metavar="N",
                   help="most rows in one batched model call (default: 64)")
    p.add_argument("--batch_timeout_ms", "--batch-timeout-ms", dest="batch_timeout_ms", type=float, default=2.0,
                   metavar="MS", help="longest wait for a batch to fill (default: 2)")
    p.add_argument("--poll_interval_s", "--poll-interval-s", "--file_system_poll_wait_seconds",
                   dest="poll_interval_s", type=float, default=1.0, metavar="S",
                   help="seconds between scans for new versions (default: 1; 0: never)")
    p.add_argument("--max_loaded_versions", "--max-loaded-versions", dest="max_loaded_versions", type=int, default=2,
                   metavar="N", help="newest versions kept loaded (default: 2)")
    p.add_argument("--warmup_batch_sizes", "--warmup-batch-sizes", dest="warmup_batch_sizes", type=_int_list,
                   default=None, metavar="N,N,...",
                   help="batch sizes compiled before a version serves (default: every padded size up to "
                        "--max_batch_size; other sizes compile on first use)")
    p.add_argument("--header_timeout_s", "--header-timeout-s", dest="header_timeout_s", type=float, default=20.0,
                   metavar="S", help="longest wait for a request's headers; a slower or silent connection is "
                                     "closed (default: 20)")
    p.add_argument("--request_log", "--request-log", dest="request_log", default=None, metavar="PATH",
                   help="log sampled predict requests and their predictions as Parquet shards "
                        "PATH/requests-<UTC time>-<pid>-<seq>.parquet in the model's raw feature schema "
                        "(a folder, or an object-store prefix such as s3://bucket/prefix)")
    p.add_argument("--request_log_sample_rate", "--request-log-sample-rate", dest="request_log_sample_rate",
                   type=_sample_rate, default=1.0, metavar="R",
                   help="share of requests logged, 0 < R <= 1 (default: 1)")
    p.add_argument("--request_log_max_rows", "--request-log-max-rows", dest="request_log_max_rows",
                   type=_positive_int, default=100_000, metavar="N",
                   help="a request log shard is closed at N rows (default: 100000)")
    p.add_argument("--request_log_rotate_s", "--request-log-rotate-s", dest="request_log_rotate_s",
                   type=_positive_float, default=300.0, metavar="S",
                   help="a request log shard is closed S seconds after its first row (default: 300)")
    return p


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``serve(...)`` that the flags of :func:`add_serve_parser` set."""
    return {
        "model_base_path": str(args.model_base_path), "model_name": str(args.model_name), "host": str(args.host),
        "port": int(args.port), "enable_batching": bool(args.enable_batching),
        "max_batch_size": int(args.max_batch_size), "batch_timeout_ms": float(args.batch_timeout_ms),
        "poll_interval_s": float(args.poll_interval_s), "max_loaded_versions": int(args.max_loaded_versions),
        "warmup_batch_sizes": args.warmup_batch_sizes, "header_timeout_s": float(args.header_timeout_s),
        "request_log": None if args.request_log is None else str(args.request_log),
        "request_log_sample_rate": float(args.request_log_sample_rate),
        "request_log_max_rows": int(args.request_log_max_rows),
        "request_log_rotate_s": float(args.request_log_rotate_s),
        "grpc_port": None if args.grpc_port is None else int(args.grpc_port),
        "version_labels": dict(args.version_labels or {}),
    }


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return values


def _sample_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected a share of requests, 0 < R <= 1, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _labels(text: str) -> dict[str, int]:
    labels: dict[str, int] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, version = item.partition("=")
        name = name.strip()
        if not sep or not name or "/" in name or ":" in name or not version.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected LABEL=VERSION,... (e.g. stable=1,canary=2), got {item!r}")
        labels[name] = int(version)
    if not labels:
        raise argparse.ArgumentTypeError(f"expected LABEL=VERSION,... (e.g. stable=1,canary=2), got {text!r}")
    return labels
