"""Mutation testing (cosmic-ray) of the code whose regressions the suite must catch: ``make mutation``.

For each target, every mutant cosmic-ray makes inside the named functions (or the whole
module) is applied to the source file in place, one at a time, and the target's tests
are run against it; a mutant the tests do not fail "survives". Prints the kill rate per
target and every survivor's diff; exits 1 when a target's kill rate is under
``--min-kill-rate`` (default 90 %).

    python tests/mutation/run_mutation.py [--only NAME ...] [--list] [--min-kill-rate 90]

Needs the ``mutation`` extra (``pip install -e ".[mutation]"``). Run it from the
repository root, with nothing else editing the tree: the source files are mutated in
place (each is restored afterwards, also after an interruption).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    """A source file, the functions in it to mutate (empty: all of it), and the tests that must catch them."""

    name: str
    path: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]  # pytest arguments: test files, and -k expressions quoted for a shell
    timeout_s: float = 120.0


# the object-storage tests (uploads to moto's S3 server) without the two that take 6-7 s each
_NOT_SLOW_S3 = "not five_concurrent_runs and not cannot_use"

TARGETS = [
    Target("hashing", "core/_encoding.py", ("stable_hash",),
           ("tests/core/test_stable_hash.py",)),
    Target("selection", "pipelines/_ir.py", ("select", "downstream", "upstream_of"),
           ("tests/orchestrators/test_partial_selection.py",)),
    # which nodes a partial run reuses, and from which run; the local runner's partial-run
    # tests only (the Beam and Kubeflow ones take 20 s a mutant)
    Target("partial", "orchestrators/_partial.py", ("reused_nodes", "_dag_order", "_parameters_used", "choose_source"),
           ("tests/orchestrators/test_partial_selection.py", "tests/orchestrators/test_partial_runs.py",
            "tests/orchestrators/test_local_runner.py", "-k", "'partial and not beam and not kubeflow'"),
           timeout_s=40.0),  # a mutant that never leaves the run-listing loop: the tests take 5 s
    Target("publish", "orchestrators/_publish.py", (),
           ("tests/orchestrators/test_publish.py", "tests/orchestrators/test_publish_edges.py",
            "tests/orchestrators/test_publish_rollback.py", "tests/orchestrators/test_cache.py",
            "tests/orchestrators/test_object_storage.py", "-k", f"'{_NOT_SLOW_S3}'")),
    # the cache key's material, the cache lookup and the miss reason
    Target("cache-key", "orchestrators/_cache.py", ("cache_material", "cache_key", "find_cached", "miss_reason"),
           ("tests/orchestrators/test_cache.py", "tests/orchestrators/test_cache_history.py",
            "tests/orchestrators/test_local_runner.py", "-k", "'cache or miss'")),
    Target("launcher", "orchestrators/_launcher.py", ("launch", "check_control", "prepare", "from_cache", "execute",
                                                      "publish", "_attempt"),
           ("tests/orchestrators/test_cache.py", "tests/orchestrators/test_publish_rollback.py",
            "tests/orchestrators/test_local_runner.py", "tests/orchestrators/test_launcher.py",
            "tests/orchestrators/test_node_options.py", "tests/orchestrators/test_control_flow.py",  # retries, If
            "tests/components/test_resolvers.py",  # resolver nodes
            "tests/orchestrators/test_object_storage.py", "-k", f"'{_NOT_SLOW_S3} and not beam'")),
    Target("serving-inputs", "core/_rest.py", ("parse_predict_body", "_load_object"),
           ("tests/core/test_serving_inputs.py",)),
]


def line_ranges(path: Path, functions: Sequence[str]) -> list[tuple[int, int]]:
    """The (first, last) source lines of each named function (at any depth); all lines if none are named."""
    if not functions:
        return [(1, sys.maxsize)]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {n.name: (n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in functions}
    missing = sorted(set(functions) - set(found))
    if missing:
        raise SystemExit(f"{path}: no function {', '.join(missing)}; update TARGETS in {Path(__file__).name}")
    return sorted(found.values())


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations are: under ``from __future__ import annotations`` they are
    never evaluated, so a mutant there is equivalent to the original and is not counted."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        notes: list[ast.expr | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
        elif isinstance(node, (ast.arg, ast.AnnAssign)):
            notes.append(node.annotation)
        spans += [((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in notes if n]
    return spans


def run_target(target: Target, workdir: Path) -> dict[str, object]:
    """Mutates one target and returns its counts and survivors."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    source = ROOT / target.path
    ranges = line_ranges(source, target.functions)
    config = workdir / "config.toml"
    session = workdir / "session.sqlite"
    tests = " ".join(target.tests)
    # -x: the first failing test kills the mutant; no bytecode, so a mutant's .pyc never outlives it
    command = f"{sys.executable} -B -m pytest -x -q -p no:cacheprovider {tests}"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.path}"\n'
        f"timeout = {target.timeout_s}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n', encoding="utf-8")
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "init", str(config), str(session)], cwd=ROOT, check=True)
    notes = annotation_spans(source)
    with use_db(str(session), WorkDB.Mode.open) as db:
        items = list(db.work_items)
        outside = [i.job_id for i in items
                   if not any(lo <= m.start_pos[0] <= hi for m in i.mutations for lo, hi in ranges)]
        in_notes = [i.job_id for i in items if i.job_id not in set(outside)
                    and all(any(a <= tuple(m.start_pos) < b for a, b in notes) for m in i.mutations)]
        if outside or in_notes:
            db.set_multiple_results(outside + in_notes, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        pending = sum(1 for _ in db.pending_work_items)
    print(f"== {target.name}: {target.path} {'(' + ', '.join(target.functions) + ')' if target.functions else ''}"
          f": {pending} mutants ({len(in_notes)} more in type annotations, equivalent, not run), tests: {tests}",
          flush=True)
    backup = workdir / "original"
    shutil.copy2(source, backup)
    start = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "exec", str(config), str(session)], cwd=ROOT,
                       check=True)
    finally:
        if source.read_bytes() != backup.read_bytes():  # interrupted mid-mutant: put the original back
            shutil.copy2(backup, source)
    counts = {"killed": 0, "survived": 0, "incompetent": 0}
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.KILLED or result.worker_outcome == WorkerOutcome.ABNORMAL:
                counts["killed"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                survivors.append((item.mutations[0], result.diff or ""))
            else:
                counts["incompetent"] += 1  # the mutant does not even import: not a test's merit
    judged = counts["killed"] + counts["survived"]
    rate = 100.0 * counts["killed"] / judged if judged else 100.0
    return {"name": target.name, "path": target.path, **counts, "equivalent": len(in_notes), "rate": rate,
            "survivors": survivors,
            "seconds": time.monotonic() - start}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME", help="run only these targets")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--min-kill-rate", type=float, default=90.0)
    args = parser.parse_args(argv)
    if args.list:
        for t in TARGETS:
            print(f"{t.name:<24} {t.path} {', '.join(t.functions) or '(whole module)'}  <- {' '.join(t.tests)}")
        return 0
    chosen = [t for t in TARGETS if args.only is None or t.name in args.only]
    if not chosen:
        parser.error(f"--only: none of {args.only} is a target; see --list")
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    # a terminated run still unwinds through run_target's finally, which restores the source
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reports = []
    for target in chosen:
        with tempfile.TemporaryDirectory(prefix="jfx-mutation-") as tmp:
            reports.append(run_target(target, Path(tmp)))
    print("\nkill rate per target (killed / (killed + survived); incompetent mutants, which fail to import, "
          "are not counted):")
    low = []
    for r in reports:
        print(f"  {r['name']:<24} {r['path']:<28} {r['rate']:5.1f} %  killed {r['killed']}, survived "
              f"{r['survived']}, incompetent {r['incompetent']}  ({r['seconds']:.0f} s)")
        if r["rate"] < args.min_kill_rate:
            low.append(r["name"])
    for r in reports:
        for spec, diff in r["survivors"]:
            print(f"\n-- survived in {r['path']} line {spec.start_pos[0]} ({spec.operator_name}):\n{diff.strip()}")
    if low:
        print(f"\nunder {args.min_kill_rate:g} %: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
