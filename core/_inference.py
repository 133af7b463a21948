"""What the model server's REST and gRPC front ends share past their wire formats.

* A version's **head**: a *classifier* has a ``probabilities`` output (one score per
  class; canned classifiers also give ``class_ids``), a *regressor* one ``predictions``
  value per row. A classifier exported with a ``label_vocabulary`` in its metadata (the
  Trainer records it when the label is a vocabulary-encoded column, e.g. the penguin's
  species) has **label names**, in class id order.
* **Label names in predict answers**: such a classifier's answers also carry
  ``classes``, each row's predicted label (the output name TensorFlow's canned
  classifiers use), beside the outputs the model computes.
* **Classify and regress** take tf.Example-like rows (feature name → a value or a list
  of values, with a ``context`` merged into every example) and answer TF Serving's
  shapes: per example, every class's ``(label, score)``; or one value.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jfx.core._export import LoadedModel
from jfx.errors import InvalidArgumentError

__all__ = ["CLASSES", "Head", "add_labels", "classify_results", "example_rows", "head_of", "output_specs",
           "prepare_examples", "regress_results"]

log = logging.getLogger("jfx.serve")

CLASSES = "classes"  # the predicted label of each row, added to a labelled classifier's outputs
CLASSIFIER, REGRESSOR, OTHER = "classifier", "regressor", "other"


@dataclass(frozen=True)
class Head:
    """What a model version answers: its kind and, for a classifier, its label names.

    Attributes:
        kind: ``"classifier"``, ``"regressor"`` or ``"other"``.
        labels: the class labels in class id order (from the model's ``label_vocabulary``),
            or None (a classifier's labels are then its class ids as strings, as with
            TensorFlow's canned classifiers).
        n_classes: the number of classes of a classifier (0 otherwise).
    """

    kind: str
    labels: tuple[str, ...] | None = None
    n_classes: int = 0

    def class_labels(self) -> list[str]:
        return list(self.labels) if self.labels is not None else [str(i) for i in range(self.n_classes)]

    def describe(self, outputs: Mapping[str, Any]) -> str:
        if self.kind == CLASSIFIER:
            return f"a classifier of {self.n_classes} classes ({', '.join(self.class_labels()[:10])})"
        if self.kind == REGRESSOR:
            return "a regressor (output 'predictions')"
        return (f"neither a classifier (an output 'probabilities') nor a regressor (one 'predictions' value per "
                f"row); its outputs are {sorted(outputs)}")


def head_of(model: LoadedModel) -> Head:
    """The head of a loaded model version, read from its outputs and metadata."""
    outputs = model.outputs
    probs = outputs.get("probabilities")
    if probs is not None and str(probs["dtype"]).startswith(("float", "bfloat")) and len(probs["shape"]) == 1 \
            and probs["shape"][0] >= 2:
        n = int(probs["shape"][0])
        vocab = model.metadata.get("label_vocabulary")
        labels: tuple[str, ...] | None = None
        if isinstance(vocab, list) and len(vocab) == n:
            labels = tuple(str(v) for v in vocab)
        elif vocab is not None:
            log.warning("%s: the label_vocabulary in its metadata does not name its %d classes; class ids are "
                        "answered instead of label names", model.path, n)
        return Head(CLASSIFIER, labels, n)
    pred = outputs.get("predictions")
    if pred is not None and str(pred["dtype"]).startswith(("float", "bfloat")) and list(pred["shape"]) in ([], [1]):
        return Head(REGRESSOR)
    return Head(OTHER)


def output_specs(model: LoadedModel, head: Head) -> dict[str, dict[str, Any]]:
    """The outputs a version answers (``{"dtype", "shape"}`` each): the model's, plus ``classes``."""
    outputs = dict(model.outputs)
    if head.labels is not None and CLASSES not in outputs:
        outputs[CLASSES] = {"dtype": "string", "shape": []}
    return outputs


def add_labels(head: Head, outputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """``outputs`` with ``classes`` (each row's predicted label) when the version has label names."""
    if head.labels is None or CLASSES in outputs:
        return outputs
    ids = outputs.get("class_ids")
    if ids is None:
        ids = np.argmax(outputs["probabilities"], axis=-1)
    names = np.asarray(head.labels, dtype=object)
    return {**outputs, CLASSES: names[np.asarray(ids).reshape(-1)]}


def classify_results(head: Head, outputs: Mapping[str, np.ndarray]) -> list[list[tuple[str, float]]]:
    """Per row, every class's ``(label, score)`` in class id order (TF Serving's classify result)."""
    labels = head.class_labels()
    scores = np.asarray(outputs["probabilities"], dtype=np.float64)
    return [list(zip(labels, row, strict=True)) for row in scores.tolist()]


def regress_results(outputs: Mapping[str, np.ndarray]) -> list[float]:
    """One value per row (TF Serving's regress result)."""
    return np.asarray(outputs["predictions"], dtype=np.float64).reshape(-1).tolist()


def _decode(value: Any, name: str, i: int) -> Any:
    if isinstance(value, dict):  # REST's binary value: {"b64": "..."}
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise InvalidArgumentError(f"feature {name!r} of example {i} is an object; only {{\"b64\": \"...\"}} "
                                       "(base64 bytes) is one")
        try:
            value = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidArgumentError(f"feature {name!r} of example {i} is not valid base64: {err}") from None
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidArgumentError(f"feature {name!r} of example {i} is not UTF-8 text") from None
    return value


def example_rows(examples: Sequence[Any], context: Mapping[str, Any] | None,
                 model: LoadedModel) -> list[dict[str, Any]]:
    """tf.Example-like rows as the instances :meth:`LoadedModel.prepare` takes.

    Each example maps a feature to a value or a list of values (an Example's feature is
    always a list: one value for a scalar input, none for a missing one); ``context``'s
    features go into every example. Features the model does not take are ignored (an
    Example often carries its label too), as TF Serving's Example parsing does.

    Raises:
        InvalidArgumentError: naming the example and the feature.
    """
    context = context or {}
    names = list(model.inputs)
    rows = []
    for i, example in enumerate(examples):
        if not isinstance(example, Mapping):
            raise InvalidArgumentError(f"example {i} is a {type(example).__name__}; expected an object of features")
        both = [k for k in example if k in context]
        if both:
            raise InvalidArgumentError(f"feature {both[0]!r} is in both the context and example {i}; give it in one")
        row: dict[str, Any] = {}
        for name in names:
            value = example[name] if name in example else context.get(name, _MISSING)
            if value is _MISSING:
                raise InvalidArgumentError(f"example {i} has no feature {name!r}; the model takes {names}")
            values = [_decode(v, name, i) for v in value] if isinstance(value, (list, tuple)) \
                else [_decode(value, name, i)]
            shape = model.inputs[name].shape
            if not shape:
                if len(values) > 1:
                    raise InvalidArgumentError(f"feature {name!r} of example {i} has {len(values)} values; the model "
                                               "takes one")
                row[name] = values[0] if values else None  # no value: a missing one
            elif len(shape) == 1:
                row[name] = values
            else:
                size = int(np.prod(shape))
                if len(values) != size:
                    raise InvalidArgumentError(f"feature {name!r} of example {i} has {len(values)} values; the model "
                                               f"takes {size} (shape {list(shape)})")
                row[name] = np.asarray(values, dtype=object).reshape(shape).tolist()
        rows.append(row)
    return rows


def prepare_examples(examples: Sequence[Any], context: Mapping[str, Any] | None,
                     model: LoadedModel) -> tuple[dict[str, np.ndarray], int]:
    """Examples checked and encoded for the model: ``(arrays, rows)``.

    Raises:
        InvalidArgumentError: naming the example (as ``instance``/``example``) and the feature.
    """
    rows = example_rows(examples, context, model)
    if not rows:
        return {}, 0
    with np.errstate(all="ignore"):
        arrays = model.prepare(rows, strict=True)
    return arrays, len(rows)


_MISSING = object()
