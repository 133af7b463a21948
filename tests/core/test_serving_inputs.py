"""The predict body's check reaches every instance, not only the first.

A fault in the last instance of a request must be refused with a 400 naming that
instance and the feature, exactly as the same fault in the first one is: the fast
paths (one matrix for scalar float features, types checked in one pass) must not
judge a request by its first row.
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import pytest
from jfx.core import TensorSpec, export, load
from jfx.core._rest import HttpError, parse_predict_body

CITY = {"vocabulary": ["paris", "oslo", "lima"], "oov_buckets": 1}
MIXED = {"x": TensorSpec("float32"), "v": TensorSpec("float32", (2,)), "city": TensorSpec("string", encoder=CITY),
         "k": TensorSpec("int32")}
MIXED_ROW = {"x": 1.5, "v": [0.5, 1.0], "city": "oslo", "k": 3}
FLOATS = {"a": TensorSpec("float32"), "b": TensorSpec("float32")}  # read as one matrix
FLOATS_ROW = {"a": 1.0, "b": 2.0}
ROWS = 5
LAST = ROWS - 1


def _mixed(p, f):
    return {"y": f["x"] * p["w"] + f["v"].sum(axis=-1) + f["k"], "city_id": f["city"]}


def _floats(p, f):
    return {"y": f["a"] * p["w"] + f["b"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("inputs")
    export(_mixed, {"w": jnp.float32(2.0)}, MIXED, base / "mixed")
    export(_floats, {"w": jnp.float32(2.0)}, FLOATS, base / "floats")
    return {"mixed": load(base / "mixed"), "floats": load(base / "floats")}


MISSING = object()

FAULTS = [  # (model, feature, the bad value (MISSING: left out), what the message says)
    ("mixed", "x", "one", "string"),
    ("mixed", "x", True, "boolean"),
    ("mixed", "k", None, "null"),  # null is a missing value only of float and string features
    ("mixed", "x", MISSING, "missing"),
    ("mixed", "v", [1.0], None),
    ("mixed", "v", [1.0, "2"], "string"),
    ("mixed", "city", 7, "string"),
    ("mixed", "city", ["oslo"], "string"),
    ("mixed", "city", MISSING, "missing"),
    ("mixed", "k", 1.5, "whole"),
    ("mixed", "k", 2 ** 40, "int32"),
    ("floats", "a", "1.0", "string"),
    ("floats", "a", False, "boolean"),
    ("floats", "b", [2.0], None),
    ("floats", "b", 1e300, "float32"),
    ("floats", "b", MISSING, "missing"),
]


def _body(model: str, feature: str, value, where: int) -> bytes:
    good = MIXED_ROW if model == "mixed" else FLOATS_ROW
    rows = [dict(good) for _ in range(ROWS)]
    if value is MISSING:
        del rows[where][feature]
    else:
        rows[where][feature] = value
    return json.dumps({"instances": rows}).encode()


@pytest.mark.parametrize("model,feature,value,needle", FAULTS,
                         ids=[f"{m}-{f}={'missing' if v is MISSING else v!r}" for m, f, v, _ in FAULTS])
@pytest.mark.parametrize("where", [0, LAST], ids=["first", "last"])
def test_a_bad_value_in_any_instance_is_refused_naming_it(models, model, feature, value, needle, where):
    with pytest.raises(HttpError) as info:
        parse_predict_body(_body(model, feature, value, where), models[model])
    assert info.value.status == 400
    message = str(info.value)
    assert f"'{feature}'" in message and f"instance {where}" in message, message
    if needle:
        assert needle in message, message


@pytest.mark.parametrize("model", ["mixed", "floats"])
@pytest.mark.parametrize("fault", ["not an object", "unknown feature"])
def test_a_malformed_last_instance_is_refused(models, model, fault):
    good = MIXED_ROW if model == "mixed" else FLOATS_ROW
    rows: list = [dict(good) for _ in range(ROWS)]
    rows[LAST] = [1, 2] if fault == "not an object" else {**good, "z": 1}
    with pytest.raises(HttpError) as info:
        parse_predict_body(json.dumps({"instances": rows}).encode(), models[model])
    assert info.value.status == 400 and f"instance {LAST}" in str(info.value), str(info.value)


@pytest.mark.parametrize("model", ["mixed", "floats"])
def test_good_instances_pass_and_keep_their_order(models, model):
    good = MIXED_ROW if model == "mixed" else FLOATS_ROW
    rows = [dict(good) for _ in range(ROWS)]
    first = "x" if model == "mixed" else "a"
    for i, row in enumerate(rows):
        row[first] = float(i)
    kind, arrays, n = parse_predict_body(json.dumps({"instances": rows}).encode(), models[model])
    assert (kind, n) == ("rows", ROWS)
    assert arrays[first].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


# -- the request's shape, before any instance is read ------------------------------------

def _one_input(p, f):
    return {"y": f["x"] * p["w"]}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A model with one input: TF Serving's shape lets it take bare values."""
    path = tmp_path_factory.mktemp("single") / "m"
    export(_one_input, {"w": jnp.float32(2.0)}, {"x": TensorSpec("float32")}, path)
    return load(path)


def _refused(body, model) -> str:
    with pytest.raises(HttpError) as info:
        parse_predict_body(body if isinstance(body, bytes) else json.dumps(body).encode(), model)
    assert info.value.status == 400
    return str(info.value)


def test_a_one_input_model_takes_bare_values_in_either_form(single):
    kind, arrays, n = parse_predict_body(b'{"instances": [1.5, 2.5, {"x": 3.5}]}', single)
    assert (kind, n, arrays["x"].tolist()) == ("rows", 3, [1.5, 2.5, 3.5])
    kind, arrays, n = parse_predict_body(b'{"inputs": [1.5, 2.5]}', single)
    assert (kind, n, arrays["x"].tolist()) == ("columns", 2, [1.5, 2.5])


def test_a_model_of_several_inputs_refuses_bare_values(models):
    assert "instance 0" in _refused({"instances": [1.5]}, models["floats"])
    assert '"inputs" must be an object' in _refused({"inputs": [1.5, 2.5]}, models["floats"])


@pytest.mark.parametrize("signature", ["aaa", "zzz", "serving"])
def test_only_the_default_signature_is_served(models, signature):
    assert f"signature_name {signature!r} is unknown" in _refused(
        {"instances": [FLOATS_ROW], "signature_name": signature}, models["floats"])
    # the decoded name is an equal string, not the constant itself: compared by value
    body = json.dumps({"instances": [FLOATS_ROW], "signature_name": "serving_default"}).encode()
    assert parse_predict_body(body, models["floats"])[2] == 1


def test_instances_xor_inputs(models):
    both = _refused({"instances": [], "inputs": {}}, models["floats"])
    assert both.startswith('give only one of "instances" and "inputs"; send {"instances"')
    neither = _refused({"signature_name": "serving_default"}, models["floats"])
    assert neither.startswith('the request has neither "instances" nor "inputs"; send {"instances"')


def test_the_first_unknown_name_is_the_one_named(models):
    assert "unknown field 'aa'" in _refused({"instances": [], "aa": 1, "bb": 2}, models["floats"])
    row = {**FLOATS_ROW, "p": 1, "q": 2}
    assert "unknown feature 'p'" in _refused({"instances": [row]}, models["floats"])
    columns = {"a": [1.0], "b": [2.0], "p": [1], "q": [2]}
    assert "unknown feature 'p'" in _refused({"inputs": columns}, models["floats"])


def test_every_column_of_inputs_must_be_a_list(models):
    message = _refused({"inputs": {"a": [1.0], "b": 2.0}}, models["floats"])
    assert "feature 'b' must be a list" in message


def test_a_body_nested_too_deeply_is_a_400_not_a_crash(models):
    deep = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nested too deeply" in _refused(deep, models["floats"])


def test_bare_values_for_a_model_of_several_inputs_are_refused_as_not_an_object(models):
    message = _refused({"instances": [FLOATS_ROW, 1.5]}, models["floats"])
    assert message.startswith("instance 1 is a float; expected an object of features"), message


def test_no_instances_is_no_rows(models):
    assert parse_predict_body(b'{"instances": []}', models["floats"]) == ("rows", {}, 0)


@pytest.mark.parametrize("body", [b"{not json", b'{"instances": [1,]}', b"\xff\xfe\x00{"])
def test_a_body_that_is_not_json_is_a_400_naming_it(models, body):
    assert "not valid JSON" in _refused(body, models["floats"])


def _vector_first(p, f):
    return {"y": f["v"].sum(axis=-1) * p["w"] + f["x"]}


def test_the_row_count_is_the_batch_not_a_features_width(tmp_path):
    # the first input is a vector of 2: 3 rows are 3, not 2
    path = tmp_path / "vector-first"
    export(_vector_first, {"w": jnp.float32(1.0)}, {"v": TensorSpec("float32", (2,)), "x": TensorSpec("float32")},
           path)
    rows = [{"v": [1.0, 2.0], "x": float(i)} for i in range(3)]
    kind, arrays, n = parse_predict_body(json.dumps({"instances": rows}).encode(), load(path))
    assert (kind, n) == ("rows", 3) and arrays["v"].shape == (3, 2)


@pytest.mark.parametrize("error", [ValueError, TypeError, OverflowError, KeyError, IndexError, RecursionError])
def test_a_reader_error_the_model_does_not_translate_is_still_a_400(models, monkeypatch, error):
    model = models["floats"]

    def prepare(data, strict=False):
        raise error("unreadable")

    monkeypatch.setattr(model, "prepare", prepare)
    with pytest.raises(HttpError) as err:
        parse_predict_body(json.dumps({"instances": [FLOATS_ROW]}).encode(), model)
    assert err.value.status == 400
    assert f"cannot be read: {error.__name__}: " in err.value.message
