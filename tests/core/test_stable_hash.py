"""``stable_hash`` and the hash buckets built on it, against pinned values.

A model exported with ``{"hash_buckets": n}`` carries no table: the bucket of a string
is recomputed from its hash at serving time. A changed hash (another digest, byte
order, encoding or seed) would silently send every value to another bucket of a model
already trained, so the values are pinned here, not just checked for self-consistency.
"""

from __future__ import annotations

import numpy as np
import pytest
from jfx.core import encode_strings, stable_hash

PINNED = [
    ("", 13020603013274838756),
    ("red", 11765665226422741261),
    ("paris", 1657316678316814225),
    ("Zürich", 636548684707296368),  # UTF-8, not Latin-1 or the platform's encoding
    (b"\xff\x00", 16942774981564754315),  # bytes are hashed as they are
]


@pytest.mark.parametrize("value,expected", PINNED, ids=[repr(v) for v, _ in PINNED])
def test_stable_hash_gives_the_pinned_64_bit_value(value, expected):
    assert stable_hash(value) == expected


def test_none_hashes_like_the_empty_string_and_str_like_its_utf8_bytes():
    assert stable_hash(None) == stable_hash("") == 13020603013274838756
    assert stable_hash("Zürich") == stable_hash("Zürich".encode())


def test_hash_buckets_of_a_string_column_are_pinned():
    values = np.array(["red", "green", "blue", "Zürich", ""], dtype=object)
    ids = encode_strings(values, {"hash_buckets": 1000})
    assert ids.tolist() == [261, 268, 346, 368, 756]


def test_out_of_vocabulary_buckets_are_pinned():
    values = np.array(["red", "green", "unknown"], dtype=object)
    ids = encode_strings(values, {"vocabulary": ["red", "green"], "oov_buckets": 10})
    assert ids.tolist() == [0, 1, 2 + stable_hash("unknown") % 10] == [0, 1, 3]
