"""The penguin example compiled for a Kubeflow cluster, as docs/kubeflow.md tells a user to:
an S3 pipeline root, the data and the push destination on the store, and no path of this
machine anywhere in the spec."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
from jfx_requires import importorskip

from jfx import _storage as storage
from jfx.cli import main as jfx_main

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CHECKOUT = Path(__file__).resolve().parents[2]
PENGUIN = CHECKOUT / "examples" / "penguin" / "pipeline.py"
IMAGE = "registry.example/jfx:0.1"


def machine_paths(tmp_path: Path) -> set[str]:
    """Folders of this machine that must not reach a spec the pods run."""
    found = {str(CHECKOUT), os.path.realpath(CHECKOUT), sys.prefix, os.path.realpath(sys.prefix),
             tempfile.gettempdir(), str(tmp_path), str(Path.home()), os.environ["JFX_HOME"]}
    return {p for p in found if p not in ("", "/")}


def test_penguin_compiles_for_a_cluster_with_no_local_path_in_the_spec(s3_root, tmp_path, jfx_home, monkeypatch,
                                                                       capsys):
    # the data where the docs put it: uploaded to the bucket
    from jfx.examples.penguin.pipeline import penguins_dir

    storage.write_bytes(f"{s3_root}/penguin/data/penguins.csv", (Path(penguins_dir()) / "penguins.csv").read_bytes())
    out = tmp_path / "penguin.yaml"
    args = ["compile", str(PENGUIN), "--target", "kubeflow", "--image", IMAGE, "-o", str(out),
            "--pipeline-root", f"{s3_root}/jfx", "--s3-secret", "jfx-s3", "--metadata-secret", "jfx-db:url"]
    # with the defaults the data is in this Python's site-packages and the model goes to $JFX_HOME: refused
    assert jfx_main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "node 'ExampleGen': parameter input_base=" in err and "--local" in err

    monkeypatch.setenv("JFX_PENGUIN_DATA", f"{s3_root}/penguin/data")
    assert jfx_main(args) == 1  # the data on the store, the push destination still on this machine
    err = capsys.readouterr().err
    assert "node 'Pusher': parameter push_destination['filesystem']['base_directory']=" in err

    monkeypatch.setenv("JFX_PENGUIN_SERVING_DIR", f"{s3_root}/serving")
    assert jfx_main(args) == 0, capsys.readouterr().err
    assert "compiled pipeline penguin (12 nodes)" in capsys.readouterr().out
    # the spec and the IR it carries (compressed in its jfx_ir parameter), as text
    import json

    import yaml

    from jfx.orchestrators._kubeflow import _spec_ir

    spec_text = out.read_text()
    spec = next(d for d in yaml.safe_load_all(spec_text) if d and "root" in d)
    text = spec_text + json.dumps(_spec_ir(spec, str(out)).to_dict())
    for path in sorted(machine_paths(tmp_path)):
        assert path not in text, f"{path} is in the spec"
    # nothing else that looks like an absolute path of a user's files either
    assert not re.search(r"(?<![\w:/])/(home|root|tmp|work|Users)/", text)
    assert f"{s3_root}/penguin/data" in text and f"{s3_root}/serving" in text
