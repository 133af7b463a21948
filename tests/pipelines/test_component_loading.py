"""Loading a node's component by reference (what every runner does) is safe from many threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jfx

# Runs in a fresh interpreter, so the modules are really not imported yet when the
# threads start; the threads start a few milliseconds apart, so most of them look the
# module up while another thread is still executing it.
LOADER = textwrap.dedent('''
    import json, sys, threading, time
    from jfx.pipelines import ComponentRef, load_component

    refs = [ComponentRef(*ref) for ref in json.loads(sys.argv[1])]
    threads_per_ref = 6
    start = threading.Barrier(len(refs) * threads_per_ref)
    errors, loaded = [], []

    def load(i, ref):
        start.wait()
        time.sleep(0.01 * (i % threads_per_ref))
        try:
            loaded.append(load_component(ref).name)
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=load, args=(i, ref)) for ref in refs for i in range(threads_per_ref)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import jfx
    print(json.dumps({"errors": errors, "loaded": sorted(set(loaded)), "count": len(loaded), "jfx": jfx.__file__}))
''')

SLOW_FILE = textwrap.dedent('''
    import time
    from jfx import Output, component
    from jfx.types import Metrics

    time.sleep(0.3)  # a module that takes a while to import (as one importing pyarrow does)

    @component
    def slow_to_import(out: Output[Metrics]):
        out.write_json({})
''')


def _load_at_once(refs: list[tuple], cwd: Path) -> dict:
    # the jfx under test (not resolved: it may be reached through a link named jfx)
    env = {**os.environ, "PYTHONPATH": str(Path(jfx.__file__).parent.parent)}
    proc = subprocess.run([sys.executable, "-c", LOADER, json.dumps(refs)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_many_threads_load_standard_components_of_modules_not_yet_imported(tmp_path):
    refs = [(name, f"jfx.components.{module}", name, None, "v")
            for name, module in [("ExampleGen", "_example_gen"), ("StatisticsGen", "_statistics_gen"),
                                 ("SchemaGen", "_schema_gen"), ("Pusher", "_pusher")]]
    result = _load_at_once(refs, tmp_path)
    assert result["errors"] == []
    assert result["jfx"] == jfx.__file__, "the jfx under test"
    assert result["loaded"] == ["ExampleGen", "Pusher", "SchemaGen", "StatisticsGen"] and result["count"] == 24


def test_many_threads_load_a_component_from_a_file_not_yet_imported(tmp_path):
    path = tmp_path / "slow_module.py"
    path.write_text(SLOW_FILE)
    # the module name a pipeline file gets when `jfx run` loads it; not importable by name
    ref = ("slow_to_import", "_jfx_file_slow_module_0123456789", "slow_to_import", str(path), "v")
    result = _load_at_once([ref], tmp_path)
    assert result["errors"] == []
    assert result["jfx"] == jfx.__file__, "the jfx under test"
    assert result["loaded"] == ["slow_to_import"] and result["count"] == 6
