"""Pusher: copies a blessed model to where it is served (a model folder, the MLflow registry).

A model is pushed only when every blessing given with it says so: a ``model_blessing``
(from an Evaluator) or an ``infra_blessing`` (from :func:`~jfx.components.InfraValidator`)
whose ``properties["blessed"]`` is not ``True`` stops the push. The node still completes,
and its ``PushedModel`` records ``pushed: false`` and why.

Destinations (``push_destination``; both may be given)::

    {"filesystem": {"base_directory": "/srv/models", "model_name": "taxi"},
     "mlflow": {"model_name": "taxi", "tracking_uri": "sqlite:///...", "alias": "champion"}}

* ``filesystem``: the model becomes ``<base_directory>/<model_name>/<version>/``, the
  layout ``jfx serve --model_base_path <base_directory>/<model_name>`` (and TensorFlow
  Serving) polls. ``version`` is one more than the largest integer folder there (1 for
  the first). The model is copied into a hidden temporary folder in the same parent, then
  renamed to its version in one ``os.rename``: a server polling the folder never sees a
  half-copied version, and two pushers racing for one number cannot both win (the loser's
  rename fails because the winner's folder is not empty; it takes the next number). A
  pusher killed mid-copy leaves the hidden folder only until the next start of a run on
  the same metadata store, which removes it.

  ``base_directory`` may be an object-store URI (``s3://bucket/models``,
  ``gs://bucket/models``). A store has no rename, so a version is claimed and completed
  instead: the pusher lists the model's prefix once, claims ``<model_name>/<version>/``
  by creating its ``.jfx-push.json`` object only if absent (a conditional write: of two
  pushers racing for one number exactly one gets it, the other takes the next), uploads
  every file of the model, and uploads ``signature.json`` last. ``jfx serve`` (like a
  local server) loads a version only once its ``signature.json`` exists, so a version
  being uploaded, or one whose pusher was killed, is never loaded. Such a leftover is
  unambiguous (a claim naming its host, process and time, and no ``signature.json``):
  the next push to the same model removes it once its process is gone (same host) or
  its claim is a day old.
* ``mlflow``: the model is logged as an MLflow Model (``python_function`` flavor, signature,
  input example: ``mlflow.pyfunc.load_model("models:/<name>@champion").predict(df)``
  runs it) of an MLflow run (the Trainer's run, which logged it already, when the Model
  has a ``mlflow_run_id`` in the same tracking store, else a new run),
  registered as a new version of the registered model ``model_name`` (created when
  missing), and the alias (default ``champion``) is moved to that version.

With ``onnx={...}`` the Pusher also converts the model to ONNX (:func:`jfx.core.export_onnx`:
the serving function, transform included) into its ``PushedModel`` artifact's ``onnx/``
folder, and the pushed version folder gets the same ``onnx/`` beside the StableHLO model.
``onnx={"quantize": "int8", "max_degradation": 0.01}`` with ``examples`` (raw, labelled)
quantizes it and measures the int8 model against the float one on the ``eval`` split:
when the accuracy drops (a regressor's mean absolute error rises) by more than
``max_degradation`` the model is not pushed, like an unblessed one, and the reason names
both figures.

Example:
    >>> pusher = Pusher(model=trainer.outputs["model"],                              # doctest: +SKIP
    ...                 model_blessing=evaluator.outputs["blessing"],
    ...                 push_destination={"filesystem": {"base_directory": "/srv/models", "model_name": "taxi"}})
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from jfx import _storage as storage
from jfx.errors import ComponentError, InvalidArgumentError, JfxError
from jfx.pipelines._artifacts import Artifact, Examples, InfraBlessing, Model, ModelBlessing, PushedModel
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._context import current_context

__all__ = ["CLAIM_FILE", "PUSHED_FILE", "FilesystemDestination", "MlflowDestination", "OnnxOption", "Pusher",
           "blessing_verdict", "parse_onnx_option", "parse_push_destination", "push_to_filesystem", "push_to_mlflow", "push_to_store",
           "reap_abandoned_pushes"]

PUSHED_FILE = "pushed.json"
SIGNATURE_FILE = "signature.json"  # a version folder is complete once this exists (jfx serve's rule)
MLMODEL_FILE = "MLmodel"  # an MLflow Model folder's description
DEFAULT_ALIAS = "champion"
_TMP_PREFIX = ".tmp-push-"
CLAIM_FILE = ".jfx-push.json"  # on an object store: who claimed a version folder, and when
STALE_CLAIM_S = 24 * 3600  # an unfinished claim this old is abandoned, whoever made it
_MAX_RENAME_TRIES = 100
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")

_DESTINATION_HELP = """\
Right:
  push_destination={"filesystem": {"base_directory": "/srv/models", "model_name": "taxi"}}
  push_destination={"mlflow": {"model_name": "taxi"}}          # optional: "tracking_uri", "registry_uri", "alias"
  (both keys may be given: the model is pushed to both)"""


@dataclass(frozen=True)
class FilesystemDestination:
    """``<base_directory>/<model_name>/<version>/``."""

    base_directory: str
    model_name: str

    @property
    def remote(self) -> bool:
        """Whether ``base_directory`` is on an object store."""
        return storage.is_remote(self.base_directory)

    @property
    def model_dir(self) -> Path:
        """The local model folder (only for a local ``base_directory``)."""
        return Path(self.base_directory).expanduser().resolve() / self.model_name

    @property
    def model_uri(self) -> str:
        """``<base_directory>/<model_name>``: a local path or an object-store URI."""
        if self.remote:
            return storage.join(self.base_directory, self.model_name)
        return str(self.model_dir)


@dataclass(frozen=True)
class MlflowDestination:
    """A registered model in the MLflow Model Registry.

    Attributes:
        model_name: the registered model's name.
        tracking_uri: the tracking store (default: the Model's ``mlflow_tracking_uri``
            when it has one without a redacted password, else ``$MLFLOW_TRACKING_URI``,
            else ``sqlite:///<pipeline_root>/mlflow.sqlite`` as the Trainer uses; for a
            pipeline root on an object store a local SQLite file under ``$JFX_HOME``, see
            :func:`jfx.components._mlflow.default_tracking_uri`). A run the Pusher starts
            itself keeps the model under ``<pipeline_root>/mlartifacts/<pipeline>``, on the
            store when the root is one.
        registry_uri: the registry (default: the tracking store).
        alias: the alias moved to the new version.
    """

    model_name: str
    tracking_uri: str | None = None
    registry_uri: str | None = None
    alias: str = DEFAULT_ALIAS


def _fields(section: str, raw: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError(f"push_destination[{section!r}] must be a dict, got {raw!r}.\n{_DESTINATION_HELP}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidArgumentError(f"push_destination[{section!r}] has unknown key(s) {unknown}; "
                                   f"it takes {sorted(allowed)}.\n{_DESTINATION_HELP}")
    for key in sorted(required):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise InvalidArgumentError(f"push_destination[{section!r}][{key!r}] is required (a non-empty string), "
                                       f"got {raw.get(key)!r}.\n{_DESTINATION_HELP}")
    for key in sorted(allowed - required):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise InvalidArgumentError(f"push_destination[{section!r}][{key!r}] must be a string, got {raw[key]!r}")
    return dict(raw)


def parse_push_destination(raw: Mapping[str, Any] | None) -> tuple[FilesystemDestination | None,
                                                                     MlflowDestination | None]:
    """Checks ``push_destination`` and returns its (filesystem, mlflow) parts.

    Raises:
        InvalidArgumentError: no destination, an unknown key, or a missing or bad field.

    Example:
        >>> parse_push_destination({"filesystem": {"base_directory": "/srv", "model_name": "m"}})[0].model_name
        'm'
    """
    if not raw:
        raise InvalidArgumentError(f"Pusher needs a push_destination.\n{_DESTINATION_HELP}")
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError(f"push_destination must be a dict, got {raw!r}.\n{_DESTINATION_HELP}")
    unknown = sorted(set(raw) - {"filesystem", "mlflow"})
    if unknown:
        raise InvalidArgumentError(f"push_destination has unknown destination(s) {unknown}; "
                                   f"the destinations are 'filesystem' and 'mlflow'.\n{_DESTINATION_HELP}")
    fs = ml = None
    if raw.get("filesystem") is not None:
        f = _fields("filesystem", raw["filesystem"], {"base_directory", "model_name"},
                    {"base_directory", "model_name"})
        if not _NAME_RE.match(f["model_name"]):
            raise InvalidArgumentError(f"push_destination['filesystem']['model_name'] {f['model_name']!r} must be "
                                       "a folder name: letters, digits, '_', '-', '.' (at most 128)")
        try:
            base = storage.check_uri(f["base_directory"])
        except InvalidArgumentError as err:
            raise InvalidArgumentError(f"push_destination['filesystem']['base_directory']: {err}") from None
        fs = FilesystemDestination(base, f["model_name"])
    if raw.get("mlflow") is not None:
        m = _fields("mlflow", raw["mlflow"], {"model_name", "tracking_uri", "registry_uri", "alias"}, {"model_name"})
        ml = MlflowDestination(m["model_name"], m.get("tracking_uri") or None, m.get("registry_uri") or None,
                               m.get("alias") or DEFAULT_ALIAS)
    if fs is None and ml is None:
        raise InvalidArgumentError(f"push_destination names no destination.\n{_DESTINATION_HELP}")
    return fs, ml


@dataclass(frozen=True)
class OnnxOption:
    """The Pusher's ``onnx`` parameter.

    Attributes:
        quantize: ``"int8"`` or None (float).
        max_degradation: with ``quantize``: the most accuracy the int8 model may lose
            against the float one (for a regressor: the most its mean absolute error may
            rise); beyond it the model is not pushed. None: measured (with ``examples``)
            but never refused.
        split: the ``examples`` split measured (default ``eval``).
        label_key: the label column (default: the model's ``label_key`` metadata).
    """

    quantize: str | None = None
    max_degradation: float | None = None
    split: str = "eval"
    label_key: str | None = None


_ONNX_HELP = 'e.g. onnx={} (float), or onnx={"quantize": "int8", "max_degradation": 0.01} with examples=...'


def parse_onnx_option(raw: Mapping[str, Any] | None, has_examples: bool) -> OnnxOption | None:
    """Checks the Pusher's ``onnx`` parameter (None: no ONNX export).

    Raises:
        InvalidArgumentError: an unknown key or a bad value, or a ``max_degradation``
            without ``examples`` to measure it on.

    Example:
        >>> parse_onnx_option({"quantize": "int8"}, has_examples=False).quantize
        'int8'
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError(f"onnx must be a dict, got {raw!r}; {_ONNX_HELP}")
    unknown = sorted(set(raw) - {"quantize", "max_degradation", "split", "label_key"})
    if unknown:
        raise InvalidArgumentError(f"onnx has unknown key(s) {unknown}; it takes quantize, max_degradation, split, "
                                   f"label_key; {_ONNX_HELP}")
    quantize = raw.get("quantize")
    if quantize not in (None, "int8"):
        raise InvalidArgumentError(f"onnx['quantize'] must be 'int8' or None, got {quantize!r}")
    limit = raw.get("max_degradation")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0):
        raise InvalidArgumentError(f"onnx['max_degradation'] must be a number >= 0, got {limit!r}")
    if limit is not None and (quantize is None or not has_examples):
        raise InvalidArgumentError("onnx['max_degradation'] limits what int8 quantization costs: give "
                                   "onnx['quantize']='int8' and the Pusher's examples (raw, labelled) to measure it on")
    for key in ("split", "label_key"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key]):
            raise InvalidArgumentError(f"onnx[{key!r}] must be a non-empty string, got {raw[key]!r}")
    return OnnxOption(quantize, None if limit is None else float(limit), raw.get("split") or "eval",
                      raw.get("label_key"))


def export_onnx_for_push(model: Model, option: OnnxOption, out: Path, examples: Examples | None) -> tuple[
        dict[str, Any], str | None]:
    """Writes the model's ONNX export to ``out``; returns (its record, why not to push or None)."""
    from jfx.components._examples import split_dir, split_names
    from jfx.core._onnx import check_threshold, export_onnx

    eval_dir = None
    if examples is not None and option.quantize:
        if option.split not in split_names(examples):
            raise InvalidArgumentError(f"onnx['split'] {option.split!r} is not a split of the examples "
                                       f"({split_names(examples)})")
        eval_dir = split_dir(examples, option.split)
    result = export_onnx(model.uri, out, quantize=option.quantize, eval_examples=eval_dir,
                         label_key=option.label_key)
    record: dict[str, Any] = {"uri": str(out), "quantize": option.quantize, "bytes": result.size_bytes,
                              "float_bytes": result.float_size_bytes,
                              "check": None if result.check is None else result.check.to_json()}
    reason = None
    if result.check is not None and option.max_degradation is not None:
        reason = check_threshold(result.check, option.max_degradation)
    return record, reason


def blessing_verdict(model: Model, **blessings: Artifact | None) -> list[str]:
    """Why the model must not be pushed (empty: push it).

    A blessing whose ``properties["blessed"]`` is not ``True`` stops the push, and so
    does one that records a ``model_id`` other than this model's id (it judged another model).
    """
    reasons = []
    for key, blessing in blessings.items():
        if blessing is None:
            continue
        what = f"{key} (artifact {blessing.id})" if blessing.id is not None else key
        verdict = blessing.properties.get("blessed")
        if verdict is not True:
            detail = blessing.properties.get("reasons")
            extra = f": {'; '.join(map(str, detail))}" if isinstance(detail, list) and detail else ""
            reasons.append(f"{what} is not blessed (blessed={verdict!r}){extra}")
            continue
        judged = blessing.properties.get("model_id")
        if judged is not None and model.id is not None and judged != model.id:
            reasons.append(f"{what} judged model artifact {judged}, not this model (artifact {model.id})")
    return reasons


# ----------------------------------------------------------------------------- filesystem


def _versions(model_dir: Path) -> list[int]:
    try:
        # files with a number for a name count too: the next version must not collide with them
        return [int(e.name) for e in os.scandir(model_dir) if e.name.isdigit()]
    except FileNotFoundError:
        return []


def _fsync_tree(root: Path) -> None:
    """Flushes the copied files to disk, so a crash after the rename leaves no empty files."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def push_to_filesystem(model_uri: str | Path, dest: FilesystemDestination,
                       extra: Mapping[str, Path] | None = None) -> tuple[int, str]:
    """Copies the model folder to the next version under ``dest.model_uri``, atomically.

    ``extra`` maps sub-folder names to folders copied into the version with the model
    (the ONNX export as ``onnx/``).

    Returns:
        ``(version, version folder)``: a local path, or a URI when ``base_directory`` is
        on an object store (see :func:`push_to_store`).

    Raises:
        ComponentError: the model has no ``signature.json``, or the copy or rename failed.
    """
    src = Path(model_uri)
    if not (src / SIGNATURE_FILE).is_file():
        raise ComponentError(f"model {src} has no {SIGNATURE_FILE}; only an exported jfx model can be pushed")
    if extra:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="jfx-push-") as staging:
            staged = Path(staging) / "model"
            shutil.copytree(src, staged)
            for name, folder in extra.items():
                shutil.copytree(folder, staged / name)
            return push_to_filesystem(staged, dest)
    if dest.remote:
        return push_to_store(src, dest)
    model_dir = dest.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    ctx = current_context()
    if ctx is not None:  # removed by the next start if this process is killed before it is renamed
        ctx.register_temporary(tmp)
    try:
        # signature.json last: even the temporary folder holds a complete model once it has one
        shutil.copytree(src, tmp, ignore=storage._ignore_top(src, (SIGNATURE_FILE,)))  # noqa: SLF001 - the same rule as uploads
        shutil.copy2(src / SIGNATURE_FILE, tmp / SIGNATURE_FILE)
        _fsync_tree(tmp)
        for _ in range(_MAX_RENAME_TRIES):
            version = max(_versions(model_dir), default=0) + 1
            target = model_dir / str(version)
            if target.exists():  # e.g. an empty folder someone made by hand: rename would replace it
                continue
            try:
                os.rename(tmp, target)
            except OSError as err:
                if err.errno in (errno.EEXIST, errno.ENOTEMPTY) or isinstance(err, FileExistsError):
                    continue  # another pusher took this number first
                raise
            return version, str(target)
        raise ComponentError(f"could not claim a version folder under {model_dir} after {_MAX_RENAME_TRIES} tries")
    except OSError as err:
        raise ComponentError(f"pushing {src} to {model_dir} failed: {err}") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _store_versions(model_uri: str) -> dict[int, set[str]]:
    """Each version folder under ``model_uri`` on a store, with the names of its files (one listing)."""
    versions: dict[int, set[str]] = {}
    try:
        files = storage.list_files(model_uri)
    except FileNotFoundError:
        return versions
    for f in files:
        head, _, rest = f.rel.partition("/")
        if head.isdigit():
            versions.setdefault(int(head), set()).add(rest or head)
    return versions


def _claim_is_abandoned(claim: Mapping[str, Any], now: float) -> bool:
    started = claim.get("started_at")
    if not isinstance(started, (int, float)):
        return False
    if now - started > STALE_CLAIM_S:
        return True
    if claim.get("host") != socket.gethostname() or not isinstance(claim.get("pid"), int):
        return False  # another machine's push: only its age tells
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive (another user's process)
    return False


def reap_abandoned_pushes(model_uri: str, versions: Mapping[int, set[str]] | None = None) -> list[str]:
    """Removes the version folders under ``model_uri`` (on a store) whose push was abandoned.

    Such a folder has a claim (``.jfx-push.json``) and no ``signature.json``, and the
    process named in the claim is gone (same host) or the claim is older than
    :data:`STALE_CLAIM_S`. A folder without a claim (not made by a jfx pusher) is left alone.

    Returns:
        The URIs removed.
    """
    found = _store_versions(model_uri) if versions is None else versions
    removed = []
    now = time.time()
    for version, names in sorted(found.items()):
        if SIGNATURE_FILE in names or CLAIM_FILE not in names:
            continue
        folder = storage.join(model_uri, str(version))
        try:
            claim = json.loads(storage.read_bytes(storage.join(folder, CLAIM_FILE)))
        except (OSError, ValueError, JfxError):
            continue
        if isinstance(claim, dict) and _claim_is_abandoned(claim, now):
            with contextlib.suppress(OSError, JfxError):
                storage.remove(folder)
                removed.append(folder)
    return removed


def push_to_store(src: Path, dest: FilesystemDestination) -> tuple[int, str]:
    """Uploads the model folder ``src`` as the next version under ``dest.model_uri`` (a store).

    Claims ``<version>/`` with a conditional write of its :data:`CLAIM_FILE`, uploads the
    model's files, then ``signature.json``: the version is complete, and loaded by a
    server, only once that last object exists. On failure the version folder is removed.
    Abandoned pushes to the same model are removed first (:func:`reap_abandoned_pushes`).

    Returns:
        ``(version, version URI)``.
    """
    model_uri = dest.model_uri
    try:
        storage.check_root(dest.base_directory)  # a missing bucket or bad credentials: one line naming it
        versions = _store_versions(model_uri)
        reap_abandoned_pushes(model_uri, versions)
        ctx = current_context()
        claim = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": time.time(),
                 "model": str(src), "pipeline": getattr(ctx, "pipeline_name", None),
                 "node_id": getattr(ctx, "node_id", None), "execution_id": getattr(ctx, "execution_id", None)}
        version = max(versions, default=0)
        for _ in range(_MAX_RENAME_TRIES):
            version += 1
            target = storage.join(model_uri, str(version))
            if storage.create_exclusive(storage.join(target, CLAIM_FILE), json.dumps(claim).encode()):
                break  # else another pusher claimed this number first
        else:
            raise ComponentError(f"could not claim a version folder under {model_uri} after {_MAX_RENAME_TRIES} tries")
        try:
            storage.upload_dir(src, target, last=(SIGNATURE_FILE,))
        except BaseException:
            with contextlib.suppress(OSError, JfxError):
                storage.remove(target)
            raise
    except (OSError, storage.StorageError) as err:
        raise ComponentError(f"pushing {src} to {model_uri} failed: {err}") from err
    return version, target


# ----------------------------------------------------------------------------- MLflow


def _pipeline_root() -> str:
    ctx = current_context()
    if ctx is not None:
        return ctx.pipeline_root
    from jfx._config import default_pipeline_root

    return str(default_pipeline_root())


def _tracking_uri(dest: MlflowDestination, model: Model) -> str:
    from jfx.components._mlflow import default_tracking_uri

    if dest.tracking_uri:
        return dest.tracking_uri
    recorded = model.properties.get("mlflow_tracking_uri")
    if isinstance(recorded, str) and recorded and "***" not in recorded:
        return recorded
    return default_tracking_uri(_pipeline_root())


def push_to_mlflow(model: Model, dest: MlflowDestination) -> dict[str, Any]:
    """Logs the model folder to an MLflow run, registers a new version, moves the alias.

    Returns:
        ``{"model_name", "version", "alias", "run_id", "source", "model_uri", "tracking_uri"}``.

    Raises:
        ComponentError: MLflow is not installed, or the store refused an operation.
    """
    from jfx.components._mlflow import (
        default_artifact_location,
        import_mlflow,
        redact_uri,
        start_run,
        store_setup_lock,
    )

    import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking_uri = _tracking_uri(dest, model)
    registry_uri = dest.registry_uri or tracking_uri
    ctx = current_context()
    artifact_path = "model"
    try:
        with store_setup_lock(tracking_uri, registry_uri):  # the first client on a new database creates its schema
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)  # the registry's store, if it is another
        run_id = None
        reused = False
        recorded = model.properties.get("mlflow_run_id")
        same_store = dest.tracking_uri is None or dest.tracking_uri == model.properties.get("mlflow_tracking_uri")
        if isinstance(recorded, str) and recorded and same_store:
            try:
                client.get_run(recorded)
                run_id, reused = recorded, True
            except MlflowException:
                run_id = None  # not in this store: log to a run of our own
        if run_id is None:
            experiment = ctx.pipeline_name if ctx is not None else "jfx"
            # never MLflow's default (./mlruns under whatever the working directory is)
            location = default_artifact_location(_pipeline_root(), experiment, tracking_uri)
            tags: dict[str, Any] = {"jfx.component": "Pusher", "jfx.model_uri": model.stored_uri}
            if ctx is not None:
                tags.update({"jfx.pipeline": ctx.pipeline_name, "jfx.run_id": ctx.run_id,
                             "jfx.node_id": ctx.node_id, "jfx.execution_id": ctx.execution_id})
            run = start_run(tracking_uri, experiment, run_name=f"push-{dest.model_name}", tags=tags,
                            artifact_location=location)
            run.log_jfx_model(model.uri, artifact_path)
            run.finish()
            run_id = run.run_id
        else:
            logged = {Path(a.path).name for a in client.list_artifacts(run_id, artifact_path)}
            if MLMODEL_FILE not in logged:  # the Trainer logs the MLflow Model as "model"; else log it now
                from jfx.components._mlflow_model import log_jfx_model

                log_jfx_model(client, run_id, model.uri, artifact_path)
        try:
            client.create_registered_model(dest.model_name, description="pushed by jfx")
        except MlflowException as err:
            if getattr(err, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        # the run's artifact location itself (as mlflow.register_model resolves runs:/ URIs)
        source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
        tags = {"jfx.model_uri": model.stored_uri}
        if model.id is not None:
            tags["jfx.model_artifact_id"] = str(model.id)
        mv = client.create_model_version(dest.model_name, source, run_id=run_id, tags=tags)
        version = int(mv.version)
        client.set_registered_model_alias(dest.model_name, dest.alias, str(version))
    except MlflowException as err:
        raise ComponentError(f"pushing to the MLflow registry at {redact_uri(registry_uri)} failed: "
                             f"{err.message}") from err
    return {"model_name": dest.model_name, "version": version, "alias": dest.alias, "run_id": run_id,
            "reused_trainer_run": reused, "source": source, "model_uri": f"models:/{dest.model_name}/{version}",
            "tracking_uri": redact_uri(tracking_uri), "registry_uri": redact_uri(registry_uri)}


# ----------------------------------------------------------------------------- the component


@component(checks={"push_destination": parse_push_destination})
def Pusher(  # noqa: N802 - components are named like the TFX components they mirror
    model: Input[Model],
    pushed_model: Output[PushedModel],
    model_blessing: Optional[Input[ModelBlessing]] = None,  # noqa: UP045 - the DSL reads Optional[...]
    infra_blessing: Optional[Input[InfraBlessing]] = None,  # noqa: UP045
    examples: Optional[Input[Examples]] = None,  # noqa: UP045
    push_destination: Parameter[dict] | None = None,
    onnx: Parameter[dict] | None = None,
):
    """Push ``model`` to ``push_destination`` if every blessing given says it is blessed.

    Args:
        model: an exported jfx model (``signature.json``, ``model.stablehlo``, ``weights.npz``).
        pushed_model: receives ``pushed.json``; properties ``pushed``, ``reasons`` (why not),
            ``destinations`` (``["filesystem", "mlflow"]``, those pushed to), ``version``
            (the filesystem version, else the registry version), ``pushed_uri`` (the version
            folder, else ``models:/<name>/<version>``), ``mlflow_model_version``,
            ``mlflow_model_name``, ``mlflow_run_id``.
        model_blessing: optional; the Evaluator's verdict.
        infra_blessing: optional; InfraValidator's verdict.
        examples: optional; raw labelled examples (ExampleGen's) on which ``onnx``'s
            int8 quantization is measured.
        push_destination: ``{"filesystem": {"base_directory", "model_name"}}`` and/or
            ``{"mlflow": {"model_name", "tracking_uri"?, "registry_uri"?, "alias"?}}``.
        onnx: optional; also export the model as ONNX, into ``pushed_model``'s ``onnx/``
            folder and the pushed version's: ``{}`` (float), or ``{"quantize": "int8",
            "max_degradation": 0.01, "split": "eval", "label_key": ...}`` (see
            :class:`OnnxOption`). Properties ``onnx_uri``, ``onnx_bytes``,
            ``onnx_float_bytes``, ``onnx_quantize``, ``onnx_check``.

    Raises:
        InvalidArgumentError: a bad ``push_destination`` or ``onnx`` (checked before
            anything is pushed), or a model the ONNX conversion cannot convert (named).
        ComponentError: a copy, rename or registry operation failed.
    """
    fs, ml = parse_push_destination(push_destination)
    onnx_option = parse_onnx_option(onnx, examples is not None)
    started = time.time()
    reasons = blessing_verdict(model, model_blessing=model_blessing, infra_blessing=infra_blessing)
    onnx_record = None
    onnx_dir = Path(pushed_model.uri) / "onnx"
    if onnx_option is not None and not reasons:
        onnx_record, refused = export_onnx_for_push(model, onnx_option, onnx_dir, examples)
        if refused:
            reasons.append(refused)
    doc: dict[str, Any] = {
        "pushed": False, "reasons": reasons, "model_uri": model.stored_uri, "model_id": model.id,
        "blessings": {k: (None if b is None else {"id": b.id, "uri": b.uri, "blessed": b.properties.get("blessed")})
                      for k, b in (("model_blessing", model_blessing), ("infra_blessing", infra_blessing))},
        "destinations": {},
    }
    props: dict[str, Any] = {"pushed": False, "reasons": reasons, "destinations": [], "version": None,
                             "pushed_uri": None, "mlflow_model_version": None}
    if onnx_record is not None:
        doc["onnx"] = onnx_record
        props.update(onnx_uri=onnx_record["uri"], onnx_bytes=onnx_record["bytes"],
                     onnx_float_bytes=onnx_record["float_bytes"], onnx_quantize=onnx_record["quantize"],
                     onnx_check=onnx_record["check"])
    if not reasons:
        if fs is not None:
            version, folder = push_to_filesystem(model.uri, fs, {"onnx": onnx_dir} if onnx_record else None)
            doc["destinations"]["filesystem"] = {"base_directory": fs.base_directory, "model_name": fs.model_name,
                                                 "version": version, "uri": folder}
            props.update(version=version, pushed_uri=folder)
            props["destinations"].append("filesystem")
        if ml is not None:
            try:
                pushed = push_to_mlflow(model, ml)
            except ComponentError as err:
                if fs is None:
                    raise
                raise ComponentError(f"{err} (the model was already pushed to {props['pushed_uri']})") from err
            doc["destinations"]["mlflow"] = pushed
            props.update(mlflow_model_version=pushed["version"], mlflow_model_name=pushed["model_name"],
                         mlflow_run_id=pushed["run_id"])
            if props["version"] is None:
                props.update(version=pushed["version"], pushed_uri=pushed["model_uri"])
            props["destinations"].append("mlflow")
        props["pushed"] = doc["pushed"] = True
    doc["pushed_at"] = started
    doc["properties"] = props
    pushed_model.path(PUSHED_FILE).parent.mkdir(parents=True, exist_ok=True)
    pushed_model.path(PUSHED_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
    pushed_model.properties.update(props)
