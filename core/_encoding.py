"""Host-side encoding of string features to integer ids.

One function, :func:`encode_strings`, turns strings into ``int32`` ids. The same
function runs when a model is trained (inside Transform, or a :class:`~jfx.core.Dataset`
with ``encoders=``) and when an exported model is served (:func:`~jfx.core.load`
applies the encoders recorded in ``signature.json``), so training and serving can
never disagree about an id.

Two kinds of spec, both plain JSON-able dicts:

* ``{"vocabulary": ["a", "b", ...], "oov_buckets": k}``: a known value gets its
  index in the vocabulary; an unknown value (or ``None``) gets
  ``len(vocabulary) + stable_hash(value) % k``, or the single id ``len(vocabulary)``
  when ``k == 0`` (the default). Ids lie in ``[0, vocab_size(spec))``.
* ``{"hash_buckets": n}``: every value gets ``stable_hash(value) % n``.

The hash is the first 8 bytes (little endian) of BLAKE2b-64 over the UTF-8 bytes: the
same in every process, on every machine and Python version (unlike ``hash()``).
``None`` hashes as the empty string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jfx.errors import InvalidArgumentError

__all__ = ["encode_strings", "stable_hash", "vocab_size", "validate_encoder"]

_SPEC_HELP = (
    "expected {'vocabulary': [str, ...], 'oov_buckets': int >= 0} or "
    "{'hash_buckets': int >= 1}, e.g. {'vocabulary': ['red', 'green'], 'oov_buckets': 1}"
)


def stable_hash(value: str | bytes | None) -> int:
    """A 64-bit hash of ``value`` that is the same in every process.

    Example:
        >>> stable_hash("red") == stable_hash(b"red")
        True
    """
    if value is None:
        data = b""
    elif isinstance(value, bytes):
        data = value
    else:
        data = str(value).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def validate_encoder(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Checks an encoder spec and returns it as a plain dict (JSON-able).

    Raises:
        InvalidArgumentError: the spec is not one of the two accepted shapes.
    """
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(f"string encoder spec {spec!r} is not a dict; {_SPEC_HELP}")
    if "vocabulary" in spec:
        extra = set(spec) - {"vocabulary", "oov_buckets"}
        vocab = spec["vocabulary"]
        oov = spec.get("oov_buckets", 0)
        if extra or isinstance(vocab, (str, bytes)) or not isinstance(oov, int) or oov < 0:
            raise InvalidArgumentError(f"string encoder spec {dict(spec)!r} is not valid; {_SPEC_HELP}")
        vocab = [str(v) for v in vocab]
        if len(set(vocab)) != len(vocab):
            raise InvalidArgumentError("string encoder vocabulary has duplicate entries")
        return {"vocabulary": vocab, "oov_buckets": int(oov)}
    if "hash_buckets" in spec:
        n = spec["hash_buckets"]
        if set(spec) != {"hash_buckets"} or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"string encoder spec {dict(spec)!r} is not valid; {_SPEC_HELP}")
        return {"hash_buckets": int(n)}
    raise InvalidArgumentError(f"string encoder spec {dict(spec)!r} is not valid; {_SPEC_HELP}")


def vocab_size(spec: Mapping[str, Any]) -> int:
    """The number of distinct ids ``spec`` can produce (an embedding's row count).

    Example:
        >>> vocab_size({"vocabulary": ["a", "b"], "oov_buckets": 3})
        5
    """
    spec = validate_encoder(spec)
    if "hash_buckets" in spec:
        return spec["hash_buckets"]
    return len(spec["vocabulary"]) + max(spec["oov_buckets"], 1)


def encode_strings(values: Any, spec: Mapping[str, Any]) -> np.ndarray:
    """Encodes strings to ``int32`` ids with a vocabulary or stable hash buckets.

    Vectorised: each distinct value is looked up or hashed once (``np.unique``), and
    the ids are mapped back with the inverse index. The output has the shape of
    ``values``.

    Args:
        values: an array-like (list, NumPy array, pyarrow array) of ``str`` or
            ``bytes``; ``None`` is treated as out of vocabulary.
        spec: ``{"vocabulary": [...], "oov_buckets": k}`` or ``{"hash_buckets": n}``.

    Returns:
        ``np.ndarray`` of ``int32`` ids, same shape as ``values``.

    Raises:
        InvalidArgumentError: the spec is not valid.

    Example:
        >>> encode_strings(["b", "a", "zzz", None], {"vocabulary": ["a", "b"]})
        array([1, 0, 2, 2], dtype=int32)
    """
    spec = validate_encoder(spec)
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy(zero_copy_only=False)
    arr = np.asarray(values, dtype=object)
    shape = arr.shape
    flat = arr.reshape(-1)
    if flat.size == 0:
        return np.zeros(shape, dtype=np.int32)
    # None and bytes are normalised to str so np.unique can sort them.
    none_mask = np.equal(flat, None)  # type: ignore[call-overload]  # element-wise on an object array
    if none_mask.any() or any(isinstance(v, bytes) for v in flat[:1]):
        flat = np.array(
            ["" if v is None else (v.decode("utf-8") if isinstance(v, bytes) else str(v)) for v in flat],
            dtype=object,
        )
    uniques, inverse = np.unique(flat.astype(str), return_inverse=True)
    if "hash_buckets" in spec:
        n = spec["hash_buckets"]
        ids = np.fromiter((stable_hash(u) % n for u in uniques), dtype=np.int64, count=len(uniques))
        out = ids[inverse]
    else:
        vocab = spec["vocabulary"]
        k = spec["oov_buckets"]
        index = {v: i for i, v in enumerate(vocab)}
        n_vocab = len(vocab)
        ids = np.fromiter(
            (index[u] if u in index else (n_vocab + (stable_hash(u) % k if k else 0)) for u in uniques.tolist()),
            dtype=np.int64,
            count=len(uniques),
        )
        out = ids[inverse]
        if none_mask.any():
            # None is always out of vocabulary, even when "" is in the vocabulary.
            out[none_mask] = n_vocab + (stable_hash(None) % k if k else 0)
    return out.astype(np.int32).reshape(shape)
