"""Helpers for the tests that run the penguin example pipelines through the ``jfx`` CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def run_jfx(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    env["JFX_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "jfx", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=home.parent)


def run_id_of(proc: subprocess.CompletedProcess) -> str:
    found = re.search(r"^run (\S+) of pipeline penguin", proc.stdout, re.MULTILINE)
    assert found, proc.stdout + proc.stderr
    return found.group(1)


def output_dir(home: Path, proc: subprocess.CompletedProcess, node: str, key: str) -> Path:
    """The folder of ``node``'s output ``key`` in the run ``proc`` made (whatever other runs left in ``home``)."""
    from jfx.metadata import Client

    with Client(f"sqlite:///{home / 'metadata.sqlite'}") as client:
        return Path(client.run(run_id_of(proc)).nodes[node].outputs[key].uri)


def node_states(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines()
            if line.startswith("  ") and len(line.split()) > 1 and line.split()[0][0].isupper()
            and line.split()[1] in ("complete", "cached", "failed", "skipped")}
