"""examples/penguin end to end: ingest, statistics, schema, validation; locally and on Beam."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jfx

from jfx_penguin import node_states, output_dir, run_jfx

PENGUIN = Path(jfx.__file__).parent / "examples" / "penguin" / "pipeline.py"


def penguins_csv() -> Path:
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def statistics_of(home: Path, proc: subprocess.CompletedProcess, node: str) -> dict[str, dict]:
    uri = output_dir(home, proc, node, "statistics")
    return {p.parent.name: json.loads(p.read_text()) for p in uri.glob("Split-*/statistics.json")}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("penguin") / "home"
    proc = run_jfx("run", str(PENGUIN), "--progress", "log", home=home)
    return home, proc


def test_penguin_runs_end_to_end(clean_run):
    home, proc = clean_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "of pipeline penguin: COMPLETE" in proc.stdout
    stats = statistics_of(home, proc, "StatisticsGen")
    assert set(stats) == {"Split-train", "Split-eval"}
    rows = sum(s["num_rows"] for s in stats.values())
    with open(penguins_csv(), newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert rows == len(raw) == 344
    train = stats["Split-train"]["columns"]
    assert {v["value"] for v in train["species"]["string"]["top_values"]} == {"Adelie", "Chinstrap", "Gentoo"}
    # every "NA" in the CSV is counted missing, in whichever split its row fell
    assert sum(s["columns"]["bill_length_mm"]["missing"] for s in stats.values()) == \
        sum(r["bill_length_mm"] == "NA" for r in raw) > 0
    assert 30 < train["bill_length_mm"]["numeric"]["mean"] < 50
    schema_dir = output_dir(home, proc, "SchemaGen", "schema")
    schema = json.loads((schema_dir / "schema.json").read_text())
    assert sorted(schema["columns"]["species"]["domain"]) == ["Adelie", "Chinstrap", "Gentoo"]
    # this run's report, not whichever folder another test's run left first in the listing
    anomalies_dir = output_dir(home, proc, "ExampleValidator", "anomalies")
    assert json.loads((anomalies_dir / "anomalies.json").read_text())["passed"] is True


def test_the_model_is_accurate_blessed_and_pushed(clean_run):
    home, proc = clean_run
    assert set(node_states(proc.stdout).values()) == {"complete"}
    from jfx.metadata import MetadataStore

    with MetadataStore(f"sqlite:///{home / 'metadata.sqlite'}") as store:
        [model] = store.get_artifacts_by_type("Model")
        assert model.properties["val_accuracy"] >= 0.95
        [blessing] = store.get_artifacts_by_type("ModelBlessing")
        assert blessing.properties["blessed"] is True
        [pushed] = store.get_artifacts_by_type("PushedModel")
        assert pushed.properties["pushed"] is True and pushed.properties["version"] == 1
    version = home / "serving" / "penguin" / "1"
    assert (version / "signature.json").exists()
    # the pushed model takes raw rows, in a process that has none of the pipeline's code
    code = ("import json, sys; from jfx.core import load; m = load(sys.argv[1]); "
            "print(json.dumps(m([{'bill_length_mm': 39.1, 'bill_depth_mm': 18.7, 'flipper_length_mm': 181.0, "
            "'body_mass_g': 3750.0, 'island': 'Torgersen', 'sex': 'male'}])['class_ids'].tolist()), "
            "json.dumps(m.metadata['label_vocabulary']), sep=chr(10))")
    out = subprocess.run([sys.executable, "-c", code, str(version)], capture_output=True, text=True, check=True)
    ids, vocab = (json.loads(x) for x in out.stdout.splitlines())
    assert vocab[ids[0]] == "Adelie"



def test_the_served_model_answers_species_names(clean_run):
    """The exported label vocabulary reaches jfx serve's answers: predict's classes and :classify's labels."""
    import http.client

    from jfx.core._serving import ModelServer, ServingConfig

    home, _ = clean_run
    row = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0, "body_mass_g": 3750.0,
           "island": "Torgersen", "sex": "male"}
    answers = {}
    with ModelServer(home / "serving" / "penguin", "penguin", port=0,
                     config=ServingConfig(poll_interval_s=0, warmup_batch_sizes=(1,))) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for verb, body in (("predict", {"instances": [row]}), ("classify", {"examples": [row]})):
                conn.request("POST", f"/v1/models/penguin:{verb}", json.dumps(body))
                resp = conn.getresponse()
                answers[verb] = (resp.status, json.loads(resp.read()))
        finally:
            conn.close()
    assert answers["predict"][0] == 200 and answers["predict"][1]["predictions"][0]["classes"] == "Adelie"
    status, classified = answers["classify"]
    vocab = json.loads((home / "serving" / "penguin" / "1" / "signature.json").read_text())["metadata"]["label_vocabulary"]
    assert sorted(vocab) == ["Adelie", "Chinstrap", "Gentoo"]
    assert status == 200 and [label for label, _ in classified["result"][0]] == vocab  # in class id order
    assert max(classified["result"][0], key=lambda pair: pair[1])[0] == "Adelie"


def penguin_rows() -> list[dict]:
    """Every row of the penguins CSV as a client sends it: numbers, strings, None for "NA"."""
    numeric = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
    with open(penguins_csv(), newline="") as fh:
        return [{k: None if v == "NA" else float(v) if k in numeric else v for k, v in row.items()}
                for row in csv.DictReader(fh)]


def test_the_pushed_model_runs_in_onnxruntime_with_the_same_outputs(clean_run, tmp_path):
    import jfx_requires
    import numpy as np

    jfx_requires.importorskip("jax2onnx", hint="pip install 'jfx[onnx]'")
    from jfx.core import export_onnx, load, load_onnx

    home, _ = clean_run
    version = home / "serving" / "penguin" / "1"
    export_onnx(version, tmp_path / "onnx")
    rows = penguin_rows()  # missing measurements and a missing sex included
    assert any(r["sex"] is None for r in rows) and any(r["bill_length_mm"] is None for r in rows)
    want, got = load(version)(rows), load_onnx(tmp_path / "onnx")(rows)
    for k in ("logits", "probabilities", "class_ids"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
    sig = json.loads((tmp_path / "onnx" / "signature.json").read_text())
    assert sig["label_names"] == load(version).metadata["label_vocabulary"]
    assert "Torgersen" in sig["inputs"]["island"]["encoder"]["vocabulary"]
    # the command line, quantized, measured on the labelled rows
    proc = run_jfx("export", str(version), "--format", "onnx", "-o", str(tmp_path / "int8"), "--quantize", "int8",
                   "--eval-examples", str(penguins_csv()), home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"size: float [\d.]+ KiB → int8 [\d.]+ KiB", proc.stdout), proc.stdout
    assert re.search(r"accuracy on 344 examples: float 0\.9\d+, int8 0\.\d+ \(change [+-]\d\.\d+\)", proc.stdout)
    assert (tmp_path / "int8" / "model.onnx").is_file()


def test_an_unchanged_rerun_is_fully_cached(clean_run):
    home, _ = clean_run
    proc = run_jfx("run", str(PENGUIN), home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = node_states(proc.stdout)
    assert states.pop("LatestBlessedModel") == "complete"  # resolvers always run
    assert set(states.values()) == {"cached"}, states


def test_broken_new_data_halts_with_a_readable_report(clean_run, tmp_path):
    home, _ = clean_run
    broken = tmp_path / "broken"
    broken.mkdir()
    with open(penguins_csv(), newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        if i % 40 == 0:
            row["species"] = "Penguinzilla"
        if i % 50 == 1:
            row["body_mass_g"] = "99999"
    with open(broken / "penguins.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    proc = run_jfx("run", str(PENGUIN), "--param", f"new_data={broken}", home=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ExampleValidator halted the pipeline" in proc.stdout
    assert "Penguinzilla" in proc.stdout and "species" in proc.stdout
    assert "body_mass_g" in proc.stdout
    nodes = ("ExampleGen", "StatisticsGen", "SchemaGen", "NewExampleGen", "NewStatisticsGen", "ExampleValidator")
    states = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()
              if line.startswith("  ") and line.split() and line.split()[0] in nodes}
    # the training branch comes from the cache; the new data is ingested and judged
    assert states == {"ExampleGen": "cached", "StatisticsGen": "cached", "SchemaGen": "cached",
                      "NewExampleGen": "complete", "NewStatisticsGen": "complete", "ExampleValidator": "complete"}
    # nothing trains on, or pushes a model from, data that failed validation
    after = node_states(proc.stdout)
    assert {after[n] for n in ("Transform", "Trainer", "Evaluator", "InfraValidator", "Pusher")} == {"skipped"}


def test_beam_gives_the_same_statistics(clean_run, tmp_path):
    home, local_proc = clean_run
    beam_home = tmp_path / "beam-home"
    proc = run_jfx("run", str(PENGUIN), "--beam-arg=--runner=DirectRunner", home=beam_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    local = statistics_of(home, local_proc, "StatisticsGen")
    beam = statistics_of(beam_home, proc, "StatisticsGen")
    assert set(local) == set(beam)
    for split in local:
        assert local[split]["num_rows"] == beam[split]["num_rows"]
        for column, a in local[split]["columns"].items():
            b = beam[split]["columns"][column]
            assert (a["count"], a["missing"]) == (b["count"], b["missing"])
            if "numeric" in a:
                for key in ("min", "max"):
                    assert a["numeric"][key] == b["numeric"][key]
                for key in ("mean", "std"):
                    assert a["numeric"][key] == pytest.approx(b["numeric"][key], rel=1e-9)
