"""`jfx export --format web` on the penguin pipeline's pushed model: the page, served by a plain
static file server on 127.0.0.1, predicts in Debian's Chromium (onnxruntime-web) what `jfx serve`
answers over REST, for a form's row and for the penguins CSV; bad rows are named; the export
refuses in one line when onnxruntime-web's files are missing.

``JFX_DOCS_SCREENSHOTS=1`` also saves the page as docs/img/web_export.png.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
from pathlib import Path

import jfx_requires
import numpy as np
import pytest
from jfx_browser import chromium, static_server  # noqa: F401 - the module-scoped browser fixture
from jfx_penguin import run_jfx

import jfx

jfx_requires.importorskip("jax2onnx", hint="pip install 'jfx[onnx]'", allow_module_level=True)

PENGUIN = Path(jfx.__file__).parent / "examples" / "penguin" / "pipeline.py"
REPO = Path(jfx.__file__).resolve().parent
NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
TOL = 1e-5
ROW = {"bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192.0, "body_mass_g": 3500.0,
       "island": "Dream", "sex": None}


def penguins_csv() -> Path:
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def penguin_rows() -> list[dict]:
    """Every row of the penguins CSV as a REST client sends it: numbers, strings, None for "NA"."""
    with open(penguins_csv(), newline="") as fh:
        return [{k: None if v == "NA" else float(v) if k in NUMERIC else v for k, v in row.items()
                 if k not in ("species", "year")} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(the pushed model's version folder, the web export written by the command line)."""
    from jfx.core._web_export import vendor_files
    from jfx.errors import InvalidArgumentError

    try:
        vendor_files()
    except InvalidArgumentError as err:
        jfx_requires.unavailable(str(err))
    home = tmp_path_factory.mktemp("penguin-web") / "home"
    proc = run_jfx("run", str(PENGUIN), "--progress", "none", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = home / "serving" / "penguin" / "1"
    out = home.parent / "web"
    proc = run_jfx("export", str(version), "--format", "web", "-o", str(out), home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {out / 'index.html'} with onnxruntime-web" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "jfx-web.css", "jfx-web.js", "model.onnx",
                                                     "ort-wasm-simd-threaded.wasm", "ort.wasm.bundle.min.js",
                                                     "signature.json"]
    return version, out


@pytest.fixture(scope="module")
def served(exported):
    """`jfx serve`'s predictions (REST) of ROW and of every penguin row."""
    from jfx.core._serving import ModelServer, ServingConfig

    version, _ = exported
    answers = []
    with ModelServer(version.parent, "penguin", port=0,
                     config=ServingConfig(poll_interval_s=0, warmup_batch_sizes=(1,))) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for rows in ([ROW], penguin_rows()):
                conn.request("POST", "/v1/models/penguin:predict", json.dumps({"instances": rows}))
                resp = conn.getresponse()
                body = json.loads(resp.read())
                assert resp.status == 200, body
                answers.append(body["predictions"])
        finally:
            conn.close()
    return answers


@pytest.fixture
def page(chromium, exported):  # noqa: F811 - the fixture imported above
    _, folder = exported
    with static_server(folder) as url:
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on("request", lambda r: failed.append(r.url) if not r.url.startswith((url, "data:")) else None)
        page.goto(url)
        page.evaluate("window.jfxReady")
        yield page
        context.close()
        assert failed == [], f"requests outside the folder, or failed: {failed}"


def result_of(page) -> dict:
    page.wait_for_function("window.jfxResult !== null || window.jfxError !== null")
    error = page.evaluate("window.jfxError")
    assert error is None, error
    return page.evaluate("window.jfxResult")


def error_of(page, csv_text: str) -> str:
    page.evaluate("window.jfxResult = null; window.jfxError = null")
    page.set_input_files("#csv", files=[{"name": "rows.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}])
    page.wait_for_function("window.jfxError !== null || window.jfxResult !== null")
    assert page.evaluate("window.jfxResult") is None
    assert page.locator("#error").is_visible()
    return page.inner_text("#error")


def assert_same(result: dict, predictions: list[dict]) -> None:
    assert result["rows"] == len(predictions)
    assert result["classes"] == [p["classes"] for p in predictions]
    assert result["outputs"]["class_ids"] == [p["class_ids"] for p in predictions]
    for key in ("probabilities", "logits"):
        np.testing.assert_allclose(np.array(result["outputs"][key]), np.array([p[key] for p in predictions]),
                                   rtol=TOL, atol=TOL, err_msg=key)


def test_a_form_row_and_the_penguins_csv_predict_in_chromium_what_jfx_serve_answers(page, served):
    assert "Ready." in page.inner_text("#status")
    # the form, built from the signature: numbers as number inputs, vocabularies as selects
    assert page.locator("#f-bill_length_mm").get_attribute("type") == "number"
    assert page.locator("#f-island option").all_inner_texts() == ["Biscoe", "Dream", "Torgersen", "(missing)"]
    for name in NUMERIC:
        page.fill(f"#f-{name}", str(ROW[name]))
    page.select_option("#f-island", "Dream")
    page.select_option("#f-sex", "")  # (missing): out of vocabulary, as null is over REST
    page.click("#predict")
    one = result_of(page)
    assert_same(one, served[0])
    assert page.locator("#table tbody tr").count() == 1
    assert page.inner_text("#table tbody tr td.class") == served[0][0]["classes"]

    page.evaluate("window.jfxResult = null")
    page.set_input_files("#csv", str(penguins_csv()))  # "NA" cells: missing numbers and a missing sex
    many = result_of(page)
    assert_same(many, served[1])
    assert sorted(set(many["classes"])) == ["Adelie", "Chinstrap", "Gentoo"]
    assert page.locator("#table tbody tr").count() == 344
    assert page.inner_text("#summary").startswith("344 rows in ")
    if os.environ.get("JFX_DOCS_SCREENSHOTS"):
        for name in NUMERIC:
            page.fill(f"#f-{name}", str(ROW[name]))
        page.select_option("#f-island", "Dream")
        page.evaluate("document.activeElement.blur()")
        page.screenshot(path=str(REPO / "docs" / "img" / "web_export.png"), clip={"x": 0, "y": 0, "width": 1100,
                                                                                     "height": 900})


@pytest.mark.parametrize("text,message", [
    ("bill_length_mm,bill_depth_mm,flipper_length_mm,island,sex\n39.1,18.7,181,Torgersen,male\n",
     "the CSV has no column 'body_mass_g'"),
    ("island,sex,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n"
     "Torgersen,male,39.1,18.7,181,3750\nDream,female,39.5,17.4,long,3800\n",
     "CSV row 2 (line 3), column 'flipper_length_mm': \"long\" is not a number"),
    ("island,sex,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\nDream,female,39.5,17.4,186\n",
     "CSV row 1 (line 2) has 5 cells; the header has 6"),
    ("island,sex,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\nDream,female,1e39,17.4,186,3800\n",
     "feature 'bill_length_mm' of row 0 is 1e+39, which is not a finite float32"),
    ("island,sex,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n", "the CSV file has a header but no rows"),
])
def test_bad_csv_rows_are_named_and_show_no_result(page, text, message):
    assert message in error_of(page, text)
    # a good file afterwards predicts again and clears the message
    page.evaluate("window.jfxResult = null")
    page.set_input_files("#csv", str(penguins_csv()))
    assert result_of(page)["rows"] == 344
    assert not page.locator("#error").is_visible()


def test_strings_are_encoded_in_the_page_as_jfx_encodes_them(page):
    from jfx.core import encode_strings, stable_hash

    values = ["paris", "oslo", "", "rome", "Kyiv", "São Paulo", "東京", "x" * 127, "y" * 128, "z" * 129, "w" * 300, None]
    for spec in ({"vocabulary": ["paris", "oslo", "lima", ""], "oov_buckets": 3}, {"vocabulary": ["a"]},
                 {"hash_buckets": 1000}):
        got = page.evaluate("([v, s]) => Array.from(window.jfxEncodeStrings(v, s))", [values, spec])
        assert got == encode_strings(values, spec).tolist(), spec
    hashes = page.evaluate("(v) => v.map((s) => window.jfxStableHash(s))", values)
    assert hashes == [str(stable_hash(v)) for v in values]


def test_without_onnxruntime_web_the_export_fails_in_one_line_and_writes_nothing(exported, tmp_path, monkeypatch,
                                                                                 capsys):
    from jfx import cli
    from jfx.core import _web_export

    version, folder = exported
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    shutil.copy(folder / "ort.wasm.bundle.min.js", vendor / "ort.wasm.bundle.min.mjs")  # the .wasm is missing
    monkeypatch.setattr(_web_export, "VENDOR_DIR", vendor)
    assert cli.main(["export", str(version), "--format", "web", "-o", str(tmp_path / "web")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jfx: error: "), err
    assert "ort-wasm-simd-threaded.wasm" in err[0] and "make install" in err[0]
    assert not (tmp_path / "web").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["vendor"]


def test_vector_integer_and_hashed_features_predict_in_the_page_as_in_onnxruntime(chromium, tmp_path):  # noqa: F811
    import optax
    from flax import nnx

    from jfx.core import (Categorical, Dataset, Numeric, WideAndDeep, export_model, fit, load_onnx,
                          signature_from_dataset, vocab_size)
    from jfx.core._web_export import export_web, vendor_files
    from jfx.errors import InvalidArgumentError

    try:
        vendor_files()
    except InvalidArgumentError as err:
        jfx_requires.unavailable(str(err))
    city, tag = {"vocabulary": ["paris", "oslo", "lima"], "oov_buckets": 2}, {"hash_buckets": 8}
    rng = np.random.default_rng(0)
    n = 96
    cols = {"x": rng.normal(size=(n, 3)).astype(np.float32), "n": rng.integers(0, 4, n).astype(np.int64),
            "city": rng.choice(["paris", "oslo", "lima", "rome"], n).astype(object),
            "tag": rng.choice(["a", "b", "c"], n).astype(object)}
    cols["y"] = (cols["x"][:, 0] + (cols["city"] == "oslo") > 0.3).astype(np.int64)
    ds = Dataset.from_arrays(cols, label="y", batch_size=32, encoders={"city": city, "tag": tag})
    model = WideAndDeep({"n": Categorical(4), "city": Categorical(vocab_size(city))},
                        {"x": Numeric(3), "city": Categorical(vocab_size(city), 3), "tag": Categorical(8, 2)},
                        hidden_units=(8,), n_classes=2, rngs=nnx.Rngs(0))
    fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", ds, epochs=1, progress=False)
    export_model(model, signature_from_dataset(ds), tmp_path / "model")
    web = export_web(tmp_path / "model", tmp_path / "web")
    rows = [{"x": [float(v) for v in rng.normal(size=3)], "n": int(i % 4),
             "city": ["paris", "kyiv", "São Paulo", None, "oslo", "rome"][i % 6], "tag": ["a", "zzz", "東京", None][i % 4]}
            for i in range(24)]
    want = load_onnx(web.path)(rows)
    text = "n,tag,x,city\n" + "".join(
        f'{r["n"]},{"NA" if r["tag"] is None else r["tag"]},"{", ".join(repr(v) for v in r["x"])}",'
        f'{"" if r["city"] is None else r["city"]}\n' for r in rows)
    with static_server(web.path) as url:
        page = chromium.new_page()
        page.goto(url)
        page.evaluate("window.jfxReady")
        assert page.locator("#f-x").get_attribute("type") == "text"  # a vector: numbers separated by commas
        assert page.locator("#f-n").get_attribute("step") == "1"
        assert page.locator("#f-tag").get_attribute("type") == "text"  # hash buckets: any string
        direct = page.evaluate("(rows) => window.jfxPredict(rows)", rows)
        page.set_input_files("#csv", files=[{"name": "rows.csv", "mimeType": "text/csv", "buffer": text.encode()}])
        from_csv = result_of(page)
        bad = error_of(page, "n,tag,x,city\n1.5,a,\"1, 2, 3\",oslo\n")
        page.close()
    for got in (direct, from_csv):
        assert got["outputs"]["class_ids"] == want["class_ids"].tolist()
        np.testing.assert_allclose(np.array(got["outputs"]["probabilities"]), want["probabilities"], rtol=TOL, atol=TOL)
    assert "feature 'n' of row 0 is 1.5; a int32 feature takes whole numbers" in bad
