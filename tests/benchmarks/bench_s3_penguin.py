"""The penguin pipeline with its root on object storage vs on local disk, in one run.

Starts moto's S3 server on 127.0.0.1 (as the tests do), then runs ``python -m jfx run
examples/penguin/pipeline.py`` in fresh processes with an empty ``JFX_HOME``: first run
and fully cached rerun with ``--pipeline-root s3://<bucket>/root``, and the same with a
local root, interleaved round by round so both see the same machine load. Prints the
wall time of each (median of ``--repeat`` rounds, ``--stat best`` for the best) and the
S3 / local ratio. Target: the first run on S3 takes at most 1.5x the local one; a
missed target exits 1. The S3 server is a Python process on the same machine, so it
also competes for the CPUs.

    python tests/benchmarks/bench_s3_penguin.py [--repeat 3] [--stat median|best]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _bench import Targets, add_stat_argument, label, summarise
from bench_penguin import PENGUIN, timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "resources"))
from jfx_s3 import S3Server  # after the resources folder is importable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds to measure (default: 3)")
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        server = S3Server(Path(work) / "moto")
        try:
            rounds: dict[str, list[tuple[float, float]]] = {"local first": [], "local rerun": [],
                                                            "s3 first": [], "s3 rerun": []}
            for i in range(args.repeat):
                for where in ("local", "s3"):
                    home = Path(work) / f"{where}-{i}"
                    root = f"s3://{server.bucket()}/root" if where == "s3" else str(home / "artifacts")
                    env = {**os.environ, **server.env(), "JFX_HOME": str(home)}
                    env.pop("JFX_METADATA_URL", None)
                    env.pop("MLFLOW_TRACKING_URI", None)
                    cmd = [sys.executable, "-m", "jfx", "run", str(PENGUIN), "--progress", "none",
                           "--pipeline-root", root]
                    rounds[f"{where} first"].append(timed(cmd, env))
                    rounds[f"{where} rerun"].append(timed(cmd, env))
        finally:
            server.stop()
    how = label(args.stat, args.repeat)
    wall = {k: summarise([w for w, _ in v], args.stat) for k, v in rounds.items()}
    cpu = {k: summarise([c for _, c in v], args.stat) for k, v in rounds.items()}
    targets = Targets()
    print(f"penguin pipeline, `jfx run` in a fresh process, root on the local S3 server vs local disk "
          f"({how}; {os.cpu_count()} CPUs)")
    for k in ("local first", "s3 first", "local rerun", "s3 rerun"):
        print(f"  {k:<12} {wall[k]:6.2f} s   CPU {cpu[k]:5.2f} s")
    first_ratio = wall["s3 first"] / wall["local first"]
    print(f"  first run  s3 / local  {first_ratio:5.2f}x   target <= 1.5x: "
          f"{targets.check('first run s3/local', first_ratio, 1.5, 'x')}")
    print(f"  cached rerun s3 / local  {wall['s3 rerun'] / wall['local rerun']:5.2f}x")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
