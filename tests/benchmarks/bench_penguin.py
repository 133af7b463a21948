"""The whole penguin pipeline as a user runs it: `jfx run`, imports included.

Runs ``python -m jfx run examples/penguin/pipeline.py`` in a fresh process with an
empty ``JFX_HOME`` (the first run: every node executes, the MLflow store is created),
then again (the rerun: every node from the cache), and prints both wall times with the
time of ``python -c "import jfx"`` measured in the same run as the floor of any command,
each with the CPU time (user + system) its processes used: on a shared machine the wall
time varies with what else runs, the CPU time much less.
Each figure is the median of ``--repeat`` fresh homes (``--stat best`` for the best).
Targets on a 2-CPU machine: first run under 7 s, cached rerun under 2 s; a missed
target exits 1.

    python tests/benchmarks/bench_penguin.py [--repeat 3] [--stat median|best]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import Targets, add_stat_argument, label, summarise

import jfx

PENGUIN = Path(jfx.__file__).parent / "examples" / "penguin" / "pipeline.py"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it started and waited for)."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, _children_cpu() - cpu0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh homes to measure (default: 3)")
    add_stat_argument(parser)
    parser.add_argument("--verbose", action="store_true", help="also print every round's figures")
    args = parser.parse_args(argv)
    run = [sys.executable, "-m", "jfx", "run", str(PENGUIN), "--progress", "none"]
    firsts, reruns, imports = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "JFX_HOME": home}
            env.pop("JFX_METADATA_URL", None)
            env.pop("MLFLOW_TRACKING_URI", None)
            imports.append(timed([sys.executable, "-c", "import jfx"], env))
            firsts.append(timed(run, env))
            reruns.append(timed(run, env))
    def stat(rounds: list[tuple[float, float]]) -> tuple[float, float]:
        return summarise([w for w, _ in rounds], args.stat), summarise([c for _, c in rounds], args.stat)

    (first, first_cpu), (rerun, rerun_cpu), (floor, floor_cpu) = stat(firsts), stat(reruns), stat(imports)
    how = label(args.stat, args.repeat)
    targets = Targets()
    print(f"penguin pipeline, `jfx run` in a fresh process ({how} of wall and of CPU time each; {os.cpu_count()} "
          "CPUs; CPU = user + system time of all its processes)")
    print(f"  python -c 'import jfx'      {floor:6.2f} s   CPU {floor_cpu:5.2f} s   ({how})")
    print(f"  first run (empty JFX_HOME)  {first:6.2f} s   CPU {first_cpu:5.2f} s   ({how})   "
          f"target < 7 s: {targets.check('first run', first, 7, 's')}")
    print(f"  fully cached rerun          {rerun:6.2f} s   CPU {rerun_cpu:5.2f} s   ({how})   "
          f"target < 2 s: {targets.check('cached rerun', rerun, 2, 's')}")
    print(f"  rerun / first run           {rerun / first:6.2f}x   (of the {how} figures)")
    if args.verbose:
        print("  every round (wall s, CPU s): first " + ", ".join(f"({w:.2f}, {c:.2f})" for w, c in firsts)
              + "; rerun " + ", ".join(f"({w:.2f}, {c:.2f})" for w, c in reruns))
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
