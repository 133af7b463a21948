"""One process of a Trainer with ``workers``: ``python -m jfx.components._trainer_worker <folder>``.

The Trainer writes ``<folder>/worker-spec.json`` (:func:`jfx.components._trainer.worker_spec`)
and starts the processes with ``JFX_NUM_PROCESSES``/``JFX_PROCESS_ID``/
``JFX_COORDINATOR_ADDRESS`` set (:func:`jfx.core._launch.run_processes`). Each joins the
training before anything uses JAX, rebuilds the :class:`TrainerContext` and runs
``run_fn``; process 0 writes what it returned to ``worker-result.json``. An error ends
the process with a one-line message (after its traceback) that the Trainer reports.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def main(folder: str) -> int:
    from jfx.core._launch import die_with_supervisor

    die_with_supervisor()
    from jfx.core._distributed import initialize_distributed

    spec = initialize_distributed()  # first: jax.distributed must start before JAX's backends
    if spec is None:
        print("jfx.components._trainer_worker runs under a Trainer with workers (JFX_NUM_PROCESSES is not set)",
              file=sys.stderr)
        return 2
    from jfx.components._trainer import (
        _WORKER_LOGGED,
        _WORKER_RESULT,
        _WORKER_SPEC,
        EvalArgs,
        TrainArgs,
        TrainerContext,
        _ChiefLog,
        _history_of,
        _load_transform,
        call_user_fn,
    )
    from jfx.components._user_code import FunctionRef
    from jfx.core import History
    from jfx.pipelines._artifacts import Examples, TransformGraph

    work = Path(folder)
    doc = json.loads((work / _WORKER_SPEC).read_text(encoding="utf-8"))
    ref = FunctionRef.parse(doc["module_file"], doc["run_fn"], default="run_fn", param="run_fn")
    fn = ref.load()
    graph = None if doc["transform_graph"] is None else TransformGraph(uri=doc["transform_graph"])
    logger = logging.getLogger(f"jfx.trainer.worker{spec.process_id}")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler(sys.stdout))
    ctx = TrainerContext(
        examples=Examples(uri=doc["examples"]["uri"], properties=doc["examples"]["properties"]),
        train_files=tuple(doc["train_files"]), eval_files=tuple(doc["eval_files"]),
        transform=_load_transform(graph), transform_graph=graph, schema=doc["schema"],
        hyperparameters=doc["hyperparameters"], custom_config=doc["custom_config"],
        train_args=TrainArgs.from_dict(doc["train_args"]), eval_args=EvalArgs.from_dict(doc["eval_args"]),
        model_dir=Path(doc["model_dir"]), run_dir=Path(doc["run_dir"]), logger=logger, run_fn=doc["run_fn_name"],
        pipeline_name=doc["pipeline_name"], run_id=doc["run_id"], node_id=doc["node_id"],
        execution_id=doc["execution_id"], process_id=spec.process_id, num_processes=spec.num_processes,
        _tracker=_ChiefLog(work / _WORKER_LOGGED) if spec.is_chief else None,
    )
    result = call_user_fn(ref, fn, ctx)
    history, explicit = _history_of(result, ref)
    if spec.is_chief:
        out: dict[str, Any] = {"history": history.to_json() if isinstance(history, History) else None,
                               "metrics": explicit if history is None and result is not None else None,
                               "exported": dict(ctx._exported)}  # noqa: SLF001 - the context this module made
        tmp = work / f"{_WORKER_RESULT}.tmp"
        tmp.write_text(json.dumps(out), encoding="utf-8")
        tmp.replace(work / _WORKER_RESULT)
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1])
    except BaseException as err:  # noqa: BLE001 - reported to the Trainer as the last line of the output
        traceback.print_exc()
        print(f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # At once: a normal exit would wait in jax.distributed's shutdown barrier for the
        # other processes, which wait for this one in a collective.
        os._exit(1)
    raise SystemExit(code)
