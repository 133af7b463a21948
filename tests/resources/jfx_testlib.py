"""Components and pipelines shared by the orchestrator and CLI tests.

Components are defined at module level: runners import them by name (in worker
processes too), exactly as they would a user's.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from jfx import Input, Output, Parameter, Pipeline, RuntimeParameter, component
from jfx.types import Artifact, Dataset, Metrics, Model, ModelBlessing

# Nodes that must run at the same time meet here (threads of one process).
BARRIER = threading.Barrier(3, timeout=20)


@component
def make_numbers(numbers: Output[Dataset], rows: Parameter[int] = 3, note: Parameter[str] = ""):
    numbers.write_json(list(range(rows)), "numbers.json")
    numbers.properties["rows"] = rows


@component
def total(numbers: Input[Dataset], result: Output[Metrics]):
    values = numbers.read_json("numbers.json")
    result.write_json({"total": sum(values)})
    result.properties["total"] = sum(values)


@component
def fail_unless(result: Input[Metrics], checked: Output[Metrics], marker: Parameter[str] = ""):
    if not marker or not Path(marker).exists():
        (Path(checked.uri) / "partial.txt").write_text("half-written")
        raise RuntimeError(f"marker file {marker} is missing")
    checked.write_json(result.read_json())


@component
def sleep_then_write(out: Output[Metrics], seconds: Parameter[float] = 0.0, tag: Parameter[str] = ""):
    started = time.time()
    time.sleep(seconds)
    out.write_json({"start": started, "end": time.time(), "pid": os.getpid(), "tag": tag})


@component
def meet_at_barrier(out: Output[Metrics], tag: Parameter[str] = ""):
    BARRIER.wait()
    out.write_json({"tag": tag})


@component
def returns_value(out: Output[Metrics]):
    return 42


@component
def bad_property(out: Output[Metrics]):
    out.properties["when"] = object()


@component
def maybe_extra(out: Output[Metrics], extra: Input[Dataset] | None = None):
    out.write_json({"had_extra": extra is not None})


def chain(root: str, url: str, marker: str = "", name: str = "chain") -> Pipeline:
    """make_numbers -> total -> fail_unless, plus an independent maybe_extra."""
    nums = make_numbers(rows=RuntimeParameter("rows", int, default=3), note=RuntimeParameter("note", str, default=""))
    tot = total(numbers=nums.outputs["numbers"])
    chk = fail_unless(result=tot.outputs["result"], marker=marker)
    side = maybe_extra()
    return Pipeline(name, components=[nums, tot, chk, side], pipeline_root=root, metadata_url=url)


def read(uri: str, name: str = "value.json"):
    return json.loads(Path(uri, name).read_text())


@component
def gate(result: Input[Metrics], verdict: Output[Metrics], limit: Parameter[int] = 100):
    """Halts the pipeline when the total exceeds ``limit``, after writing its verdict."""
    from jfx.errors import HaltPipeline

    total_value = result.read_json()["total"]
    verdict.write_json({"total": total_value, "ok": total_value <= limit})
    verdict.properties["passed"] = total_value <= limit
    if total_value > limit:
        raise HaltPipeline(f"total {total_value} is over the limit {limit}\n  (second line of the report)")


@component
def whoami(out: Output[Metrics]):
    """Writes what the execution context says about the running node."""
    from jfx.pipelines import current_context

    ctx = current_context()
    out.write_json({"pipeline": ctx.pipeline_name, "run_id": ctx.run_id, "node": ctx.node_id,
                    "execution_id": ctx.execution_id, "beam": list(ctx.beam_pipeline_args or [])})


def _file_fingerprint(params):
    return Path(params["path"]).read_text()


@component(external_fingerprint=_file_fingerprint)
def read_file(out: Output[Metrics], path: Parameter[str] = ""):
    """Copies an external file into its output; the file's content is part of the cache key."""
    out.write_json(Path(path).read_text())


@component
def train_model(model: Output[Model], quality: Parameter[float] = 0.5):
    model.write_json({"quality": quality})
    model.properties["quality"] = quality


@component
def bless(model: Input[Model], blessing: Output[ModelBlessing], threshold: Parameter[float] = 0.8):
    blessed = model.read_json()["quality"] >= threshold
    blessing.write_json({"blessed": blessed})
    blessing.properties["blessed"] = blessed


@component
def compare(model: Input[Model], report: Output[Metrics], baseline: Input[Model] | None = None):
    report.write_json({"baseline": None if baseline is None else baseline.read_json()["quality"],
                       "baseline_id": None if baseline is None else baseline.id})


# --- Evaluator / BulkInferrer fixtures (tests/components/test_evaluator.py, test_bulk_inferrer.py)

def eval_table(n: int = 400, seed: int = 0, shift: float = 0.0):
    """A binary problem: score column ``x`` (a probability), label ``label`` (no/yes), slices."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    x = np.clip(np.round(0.3 * y + 0.7 * rng.random(n) + shift, 2), 0.0, 1.0)
    return pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "x": pa.array(x),
        "label": pa.array(np.where(y, "yes", "no")),
        "island": pa.array(rng.choice(["Biscoe", "Dream", "Torgersen"], n)),
        "sex": pa.array(rng.choice(["female", "male"], n), mask=rng.random(n) < 0.1),
        "weight": pa.array(rng.uniform(0.5, 2.0, n)),
    })


def write_examples(uri: str, tables: dict, row_group_size: int | None = None, shards: int = 1) -> None:
    """Writes ``tables`` (split → pyarrow Table) as an Examples artifact."""
    import pyarrow.parquet as pq

    for split, table in tables.items():
        folder = Path(uri) / f"Split-{split}"
        folder.mkdir(parents=True, exist_ok=True)
        step = -(-table.num_rows // shards)
        for i in range(shards):
            pq.write_table(table.slice(i * step, step), folder / f"part-{i:05d}.parquet",
                           row_group_size=row_group_size)


def export_binary_model(path: str, bias: float = 0.0, vocabulary=("no", "yes")) -> str:
    """A classifier whose positive-class probability is ``clip(x + bias, 0, 1)``."""
    import jax.numpy as jnp
    from jfx.core import TensorSpec, export

    def serving_fn(params, features):
        p = jnp.clip(features["x"] + params["bias"], 0.0, 1.0)
        probs = jnp.stack([1 - p, p], axis=-1)
        return {"probabilities": probs, "class_ids": jnp.argmax(probs, axis=-1).astype(jnp.int32)}

    export(serving_fn, {"bias": jnp.float32(bias)}, {"x": TensorSpec("float32")}, path,
           metadata={"label_vocabulary": list(vocabulary)} if vocabulary else None)
    return path


from jfx.types import Examples  # the helpers above need no jfx import


@component
def make_eval_examples(examples: Output[Examples], rows: Parameter[int] = 300, seed: Parameter[int] = 0):
    """An Examples-layout artifact (Parquet per split) of :func:`eval_table`."""
    write_examples(examples.uri, {"train": eval_table(rows, seed), "eval": eval_table(rows, seed + 1)})
    examples.properties["splits"] = ["train", "eval"]


@component
def make_eval_model(model: Output[Model], bias: Parameter[float] = 0.0):
    """A model artifact made by ``jfx.core.export`` (see :func:`export_binary_model`)."""
    export_binary_model(model.uri, bias)  # the (empty) output directory becomes the model
    model.properties["bias"] = bias


@component
def flaky(out: Output[Metrics], counter: Parameter[str] = "", failures: Parameter[int] = 1):
    """Raises on its first ``failures`` calls (counted in the file ``counter``), then succeeds."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise ConnectionError(f"transient failure {calls}")
    out.write_json({"calls": calls})


@component
def ctrl_c_on_own_thread(out: Output[Metrics], seconds: Parameter[float] = 60.0):
    """Sends SIGINT to the thread running it (as Linux may do with Ctrl-C), then sleeps."""
    import signal

    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    time.sleep(seconds)


@component
def wait_while_exists(out: Output[Metrics], marker: Parameter[str] = "", limit_s: Parameter[float] = 60.0):
    """Waits (at most ``limit_s``) while ``marker`` exists: a node a test can kill while it runs."""
    deadline = time.time() + limit_s
    while marker and Path(marker).exists() and time.time() < deadline:
        time.sleep(0.05)
    out.write_json({"waited": True})


@component
def exported_model(model: Output[Model]):
    """A folder shaped like an exported model: what the Pusher copies."""
    Path(model.uri, "weights.npz").write_bytes(b"w" * 4096)
    Path(model.uri, "signature.json").write_text("{}")


@component
def any_artifact(out: Output[Artifact]):
    """Writes a constant into an output of the generic type; callers narrow it with ``_output_types``."""
    out.write_json({"constant": 1})


@component
def two_outputs(first: Output[Metrics], second: Output[Metrics], value: Parameter[int] = 1):
    """Writes ``value`` into two outputs: publishing renames two folders."""
    first.write_json({"first": value})
    second.write_json({"second": value})


@component
def nan_property(out: Output[Metrics]):
    """A property JSON cannot hold: a float NaN."""
    out.properties["score"] = float("nan")
