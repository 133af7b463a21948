"""Artifact types: the typed values that flow between components.

An artifact is a directory (``uri``) plus a small JSON-able ``properties`` dict, both
recorded in the metadata store. Types form a hierarchy by subclassing; an input typed
``Input[Examples]`` accepts an ``Examples`` channel or one of any subclass of it.

Example:
    >>> from jfx.types import Dataset
    >>> class Table(Dataset):
    ...     '''A user-declared type: a Dataset holding one Parquet table.'''
    >>> Table.TYPE_NAME, Table.type_path()
    ('Table', ('Table', 'Dataset', 'Artifact'))
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "Artifact",
    "Dataset",
    "Examples",
    "ExampleStatistics",
    "Schema",
    "ExampleAnomalies",
    "TransformGraph",
    "Model",
    "ModelEvaluation",
    "ModelBlessing",
    "InfraBlessing",
    "PushedModel",
    "HyperParameters",
    "InferenceResult",
    "Metrics",
    "ModelRun",
]

_TYPE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class Artifact:
    """Base class of every artifact type.

    Attributes:
        uri: the artifact's directory, local while a component runs: outputs point at a
            staging directory that is published only if the component succeeds, and
            inputs recorded on an object store at a local copy (unless the component
            streams, see ``@component(streaming=True)``).
        stored_uri: the URI the metadata store records: the same as ``uri``, or on an
            object store (``s3://...``) when the pipeline root is one.
        id: the metadata-store id, ``None`` until published.
        name: a readable name, ``"<node>.<output>"`` for pipeline outputs.
        properties: a JSON-able dict persisted with the artifact (small values only:
            counts, flags, metric summaries). Large data belongs in files under ``uri``.
        fingerprint: a content hash of the published directory and properties.
    """

    TYPE_NAME: ClassVar[str] = "Artifact"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE_NAME" not in cls.__dict__:
            cls.TYPE_NAME = cls.__name__
        if not _TYPE_NAME_RE.match(cls.TYPE_NAME):
            raise TypeError(
                f"artifact type name {cls.TYPE_NAME!r} of {cls.__qualname__} must be an "
                "identifier (letters, digits, '_' and '.')"
            )

    def __init__(
        self,
        uri: str | Path = "",
        *,
        id: int | None = None,  # noqa: A002 - mirrors the metadata field name
        name: str = "",
        properties: dict[str, Any] | None = None,
        fingerprint: str = "",
        stored_uri: str = "",
    ) -> None:
        self.uri = str(uri)
        self.stored_uri = stored_uri or self.uri
        self.id = id
        self.name = name
        self.properties: dict[str, Any] = dict(properties or {})
        self.fingerprint = fingerprint

    @property
    def type_name(self) -> str:
        return type(self).TYPE_NAME

    @classmethod
    def type_path(cls) -> tuple[str, ...]:
        """This type's name followed by its ancestors' names, up to ``Artifact``."""
        return tuple(
            k.TYPE_NAME for k in cls.__mro__ if isinstance(k, type) and issubclass(k, Artifact)
        )

    def path(self, *parts: str) -> Path:
        """A path inside the artifact directory: ``artifact.path("data.parquet")``."""
        return Path(self.uri, *parts)

    def write_json(self, value: Any, name: str = "value.json") -> Path:
        """Write a small JSON document into the artifact directory and return its path."""
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value, indent=2, sort_keys=True), encoding="utf-8")
        return target

    def read_json(self, name: str = "value.json") -> Any:
        """Read a JSON document written with :meth:`write_json`."""
        return json.loads(self.path(name).read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        ident = f" id={self.id}" if self.id is not None else ""
        return f"{type(self).__name__}({self.uri!r}{ident})"


class Dataset(Artifact):
    """A generic table or file set."""


class Examples(Artifact):
    """Training examples: Parquet shards per split under ``Split-<name>/``."""


class ExampleStatistics(Artifact):
    """Per-split, per-column statistics of Examples."""


class Schema(Artifact):
    """The expected columns, types and domains of Examples."""


class ExampleAnomalies(Artifact):
    """What in a split does not match the Schema or drifted from a baseline."""


class TransformGraph(Artifact):
    """A fitted preprocessing function with its constants."""


class Model(Artifact):
    """A trained model, exported for serving."""


class ModelEvaluation(Artifact):
    """Metrics of a model, overall and per slice."""


class ModelBlessing(Artifact):
    """Whether a model passed its evaluation thresholds."""


class InfraBlessing(Artifact):
    """Whether a model loaded and answered in the serving infrastructure."""


class PushedModel(Artifact):
    """Where and as which version a model was pushed."""


class HyperParameters(Artifact):
    """Hyperparameter values chosen by a tuner."""


class InferenceResult(Artifact):
    """Batch predictions of a model."""


class Metrics(Artifact):
    """Free-form metrics written by a component."""


class ModelRun(Artifact):
    """A training run's logs and curves (per-epoch metrics), linked to its tracking run."""
