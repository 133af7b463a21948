"""User code that travels with a Kubeflow pipeline, and the local paths a cluster cannot see.

With an object-store pipeline root (``s3://``, ``gs://``) the stock jfx image runs any
user's pipeline: at compile time the user's code is uploaded under the root,
content-addressed, and the IR compiled into the spec names the uploaded objects; each
task fetches the objects its node names (verifying their hash) before the launcher
loads the component.

    <pipeline root>/_jfx/code/<sha256 of the file's bytes>/<file name>

The same bytes always land on the same object, so compiling again uploads nothing new,
and a task that fetched bytes of another hash fails with one line instead of running
them. Fetched files are kept in ``$JFX_CACHE_DIR/code/<sha256>/<file name>``, so each pod
(and each kfp.local task) loads a file from one stable path.

What is uploaded:

- the source file of every component whose module is not part of jfx (``jfx`` or
  ``jfx.*``, which the image has): a pipeline file's own components, a user's module of
  components. The file travels alone: modules it imports from beside it must be
  installed in the image.
- the files named by the parameters in :data:`UPLOADED_PARAMETERS` (``module_file`` of
  Trainer, Transform and Tuner; ``schema_file`` of ImportSchemaGen; ``expectations`` of
  ExampleValidator) and the ``file.py`` of a ``"file.py:function"`` in
  :data:`FUNCTION_PARAMETERS` (``run_fn``, ``preprocessing_fn``, ``tuner_fn``), when they
  are literal values naming an existing local file.

How a parameter is recognised as a local path the pods cannot see (refused when compiling
for a cluster, one line naming the node and the parameter; allowed with ``local=True``):

- a parameter in :data:`PATH_PARAMETERS` (``input_base``, and the ``base_directory`` of a
  Pusher's ``push_destination["filesystem"]``) whose value is not an object-store URI;
- an uploadable parameter (above) that could not be uploaded: with a root on a volume
  (nothing is uploaded there: build the code into the image, see docs/kubeflow.md),
  a missing file, or a value taken from a runtime parameter's default;
- any other string value, also inside a dict or list parameter, that is an absolute
  path existing on this machine outside the system's own folders (``/usr``, ``/etc``,
  this Python's prefix, ...).

A path under a volume mounted into every task (``volumes``) is visible to the pods and
never refused. A runtime parameter is checked by its default value. For a cluster, jfx's own
components are named by module only (the image imports them): the file they were found in on
this machine is left out of the IR.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from jfx import _storage as storage
from jfx.errors import InvalidArgumentError
from jfx.pipelines import NodeIR, PipelineIR
from jfx.pipelines._ir import ParamIR

__all__ = [
    "CODE_PREFIX",
    "PATH_PARAMETERS",
    "UPLOADED_PARAMETERS",
    "FUNCTION_PARAMETERS",
    "Upload",
    "code_uri",
    "upload_code",
    "fetch_code",
    "prepare_for_cluster",
    "fetch_node_code",
]

CODE_PREFIX = "_jfx/code"

# parameters whose value is a file the component reads: uploaded with an object-store root
UPLOADED_PARAMETERS = ("module_file", "schema_file", "expectations")
# parameters that may be "path/to/file.py:function": the file is uploaded
FUNCTION_PARAMETERS = ("run_fn", "preprocessing_fn", "tuner_fn")
# parameters that are a place the component reads or writes: a local one is refused for a cluster
PATH_PARAMETERS: dict[str, tuple[str, ...]] = {
    "input_base": (),
    "push_destination": ("filesystem", "base_directory"),
}

# folders of the machine itself (the image has its own): an existing path under them is not user data
_SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/sys", "/dev", "/var/lib/dpkg")

_CODE_URI = re.compile(
    r"^(?P<uri>(?:s3|gs)://.+?/" + re.escape(CODE_PREFIX) + r"/(?P<sha>[0-9a-f]{64})/(?P<name>[^/:]+))"
    r"(?P<rest>:[A-Za-z_][\w.]*)?$"
)

PATH_HELP = ("the Kubeflow pods cannot see it; put it on the object store (s3://..., gs://...) or under a volume "
             "mounted into every task, or compile with --local (KubeflowDagRunner(..., local=True)) to run on "
             "this machine")


@dataclasses.dataclass(frozen=True)
class Upload:
    """One file uploaded (or found already there) under a pipeline root."""

    source: str
    uri: str
    sha256: str
    size: int
    uploaded: bool  # False: the same bytes were already there


def code_uri(root: str, sha256: str, name: str) -> str:
    """Where the file ``name`` with this content hash lives under ``root``.

    Example:
        >>> code_uri("s3://b/root", "ab" * 32, "model.py")  # doctest: +ELLIPSIS
        's3://b/root/_jfx/code/abab...abab/model.py'
    """
    return storage.join(root, *CODE_PREFIX.split("/"), sha256, name)


def upload_code(root: str, path: str | Path) -> Upload:
    """Upload the local file ``path`` under ``root``, content-addressed; nothing is sent if it is there.

    Raises:
        InvalidArgumentError: ``path`` is not a readable file.
        StorageError: the store refused (one line naming the URI).
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as err:
        raise InvalidArgumentError(f"{source}: cannot be read for upload ({err.strerror or err})") from None
    digest = hashlib.sha256(data).hexdigest()
    uri = code_uri(root, digest, source.name)
    if storage.exists(uri):
        return Upload(str(source), uri, digest, len(data), False)
    storage.write_bytes(uri, data)  # one object, whole or absent
    return Upload(str(source), uri, digest, len(data), True)


def fetch_code(uri: str) -> Path:
    """The local copy of an uploaded code object, fetched once and checked against its hash.

    Raises:
        InvalidArgumentError: ``uri`` is not an uploaded code object.
        StorageError: it cannot be fetched, or its bytes do not match the hash it is filed under.
    """
    m = _CODE_URI.match(uri)
    if m is None or m.group("rest"):
        raise InvalidArgumentError(f"{uri}: not an uploaded code object (<root>/{CODE_PREFIX}/<sha256>/<name>)")
    digest, name = m.group("sha"), m.group("name")
    target = storage.cache_dir() / "code" / digest / name
    try:
        if hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            return target
    except OSError:
        pass
    data = storage.read_bytes(uri)
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise storage.StorageError(
            f"{uri}: the fetched bytes have sha256 {got[:16]}..., not the {digest[:16]}... they are filed under; "
            "the object was changed after upload: compile the pipeline again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{name}-{secrets.token_hex(4)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)  # a reader never sees half a file; racing tasks write the same bytes
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------- compile time


def _under(path: str, folders: Iterable[str]) -> bool:
    p = PurePosixPath(os.path.normpath(path))
    return any(p == PurePosixPath(f) or PurePosixPath(f) in p.parents for f in folders)


def _is_uri(value: str) -> bool:
    try:
        return storage.is_remote(value)
    except InvalidArgumentError:
        return True  # another scheme (http://, mlflow's models:/...): not a local path


def _system_dirs() -> tuple[str, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return _SYSTEM_DIRS + tuple(str(Path(p).resolve()) for p in prefixes if p)


def _is_local_data_path(value: str, visible: tuple[str, ...]) -> bool:
    """An absolute path that exists here, outside the system's folders and the mounted volumes."""
    if not value.startswith("/") or "\n" in value or len(value) > 4096:
        return False
    if not os.path.exists(value):
        return False
    resolved = str(Path(value).resolve())
    return not _under(value, visible) and not _under(resolved, visible) and not _under(resolved, _system_dirs())


def _walk_strings(value: Any, where: str) -> Iterable[tuple[str, str]]:
    """(value, where) for every string inside ``value`` (dicts and lists followed)."""
    if isinstance(value, str):
        yield value, where
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk_strings(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{where}[{i}]")


class _Prepare:
    def __init__(self, ir: PipelineIR, root: str, *, upload: bool, check: bool, volumes: Iterable[str],
                 uploaded: list[Upload]) -> None:
        self.ir, self.root, self.upload, self.check = ir, root, upload, check
        self.visible = tuple(volumes)
        self.uploaded = uploaded
        self._done: dict[str, Upload] = {}

    def refuse(self, node: NodeIR, where: str, value: Any, runtime: str | None, why: str = "") -> None:
        source = f" (the default of runtime parameter {runtime!r})" if runtime else ""
        raise InvalidArgumentError(
            f"node {node.id!r}: parameter {where}={value!r}{source} is a local path{why}; {PATH_HELP}"
        )

    def send(self, path: str) -> str:
        key = str(Path(path).resolve())
        if key not in self._done:
            self._done[key] = upload_code(self.root, key)
            self.uploaded.append(self._done[key])
        return self._done[key].uri

    def node(self, node: NodeIR) -> NodeIR:
        component = node.component
        if component.file and _is_jfx_module(component.module) and self.check:
            # the image imports jfx's own modules by name; this checkout's path means nothing in a pod
            component = dataclasses.replace(component, file=None)
        elif self.upload and component.file and not _is_jfx_module(component.module) and os.path.isfile(component.file):
            component = dataclasses.replace(component, file=self.send(component.file))
        params = {name: self.param(node, name, p) for name, p in node.parameters.items()}
        return dataclasses.replace(node, component=component, parameters=params)

    def param(self, node: NodeIR, name: str, p: ParamIR) -> ParamIR:
        runtime = p.runtime
        value = p.value if runtime is None else self.ir.parameters[runtime].default
        if value is None or value == "":
            return p
        if name in UPLOADED_PARAMETERS and isinstance(value, str) and not _is_uri(value):
            path = os.path.expanduser(value)
            if self.upload:
                if runtime is None and os.path.isfile(path):
                    return ParamIR(value=self.send(path))
                if self.check and not _under(os.path.abspath(path), self.visible):
                    self.refuse(node, name, value, runtime, " not uploaded (only a literal value naming a file is)"
                                if runtime else " that is not a file here (nothing to upload)")
            # a root on a volume: nothing is uploaded; the file may be built into the image (docs/kubeflow.md)
            return p
        if name in FUNCTION_PARAMETERS and isinstance(value, str) and runtime is None:
            module, sep, fn = value.rpartition(":")
            if sep and module.endswith(".py") and not _is_uri(module) and self.upload:
                path = os.path.expanduser(module)
                if os.path.isfile(path):
                    return ParamIR(value=f"{self.send(path)}:{fn}")
                if self.check:
                    self.refuse(node, name, value, runtime, " that is not a file here (nothing to upload)")
            return p
        if not self.check:
            return p
        if name in PATH_PARAMETERS:
            keys = PATH_PARAMETERS[name]
            target: Any = value
            for k in keys:
                target = target.get(k) if isinstance(target, Mapping) else None
            where = name + "".join(f"[{k!r}]" for k in keys)
            if isinstance(target, str) and target and not _is_uri(target) \
                    and not _under(os.path.abspath(os.path.expanduser(target)), self.visible):
                self.refuse(node, where, target, runtime)
        for text, where in _walk_strings(value, name):
            if _is_local_data_path(text, self.visible):
                self.refuse(node, where, text, runtime)
        return p


def _is_jfx_module(module: str) -> bool:
    return module == "jfx" or module.startswith("jfx.")


def prepare_for_cluster(ir: PipelineIR, root: str, *, upload: bool, check: bool, volumes: Iterable[str] = (),
                        report: Callable[[list[Upload]], None] | None = None) -> PipelineIR:
    """The IR to compile into the spec: user code uploaded under ``root``, local paths refused.

    Args:
        upload: upload the user's code (an object-store root) and name the objects in the IR.
        check: refuse a parameter that is a local path the pods cannot see (a cluster).
        volumes: the mount paths of the volumes every task mounts (visible to the pods).
        report: called with the files uploaded or found already uploaded.

    Raises:
        InvalidArgumentError: one line naming the node and the parameter.
        StorageError: an upload failed (one line naming the URI).
    """
    uploaded: list[Upload] = []
    prep = _Prepare(ir, root, upload=upload, check=check, volumes=volumes, uploaded=uploaded)
    nodes = tuple(prep.node(n) for n in ir.nodes)
    if report is not None and uploaded:
        report(uploaded)
    return dataclasses.replace(ir, nodes=nodes)


# ---------------------------------------------------------------------- in the task


def _localize(value: Any) -> Any:
    if isinstance(value, str):
        m = _CODE_URI.match(value)
        if m is None:
            return value
        return str(fetch_code(m.group("uri"))) + (m.group("rest") or "")
    if isinstance(value, Mapping):
        return {k: _localize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_localize(v) for v in value]
    return value


def fetch_node_code(node: NodeIR) -> NodeIR:
    """``node`` with every uploaded code object it names fetched, and named by its local copy.

    Runs in the task before the launcher loads the component; a node that names no
    uploaded code is returned as it is.
    """
    component = node.component
    if component.file and _CODE_URI.match(component.file):
        component = dataclasses.replace(component, file=_localize(component.file))
    params = {k: (p if p.runtime is not None else ParamIR(value=_localize(p.value), runtime=None))
              for k, p in node.parameters.items()}
    if component is node.component and all(params[k].value == p.value for k, p in node.parameters.items()):
        return node
    return dataclasses.replace(node, component=component, parameters=params)
