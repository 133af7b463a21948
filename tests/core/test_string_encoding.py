import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from jfx.core import encode_strings, stable_hash, vocab_size
from jfx.errors import InvalidArgumentError


def test_vocabulary_with_single_oov_id():
    ids = encode_strings(["b", "a", "zzz", None, "a"], {"vocabulary": ["a", "b"]})
    assert ids.dtype == np.int32
    assert ids.tolist() == [1, 0, 2, 2, 0]


def test_vocabulary_with_oov_buckets_is_hash_based():
    spec = {"vocabulary": ["a", "b"], "oov_buckets": 5}
    ids = encode_strings(["x", "y", "a", "x"], spec)
    assert ids[2] == 0 and ids[0] == ids[3]
    assert ids[0] == 2 + stable_hash("x") % 5 and ids[1] == 2 + stable_hash("y") % 5
    assert vocab_size(spec) == 7


def test_hash_buckets_and_shapes():
    values = np.array([["u", "v"], ["w", "u"]], dtype=object)
    ids = encode_strings(values, {"hash_buckets": 10})
    assert ids.shape == (2, 2) and ids[0, 0] == ids[1, 1]
    assert ((ids >= 0) & (ids < 10)).all()
    assert encode_strings([], {"hash_buckets": 3}).shape == (0,)


def test_accepts_arrow_arrays_and_bytes():
    spec = {"vocabulary": ["é", "b"]}
    assert encode_strings(pa.array(["é", None, "b"]), spec).tolist() == [0, 2, 1]
    assert encode_strings([b"b", "\u00e9".encode()], spec).tolist() == [1, 0]


def test_hash_is_stable_across_processes():
    code = "from jfx.core import stable_hash; print(stable_hash('hello'), stable_hash('Zürich'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.split() == [str(stable_hash("hello")), str(stable_hash("Zürich"))]


@pytest.mark.parametrize("spec", [{"vocabulary": "abc"}, {"hash_buckets": 0}, {"vocabulary": ["a", "a"]},
                                  {"oov": 1}, {"vocabulary": ["a"], "oov_buckets": -1}])
def test_bad_specs(spec):
    with pytest.raises(InvalidArgumentError):
        encode_strings(["a"], spec)
