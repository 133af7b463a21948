"""Output directories: staging, content fingerprints and atomic publishing.

The publish protocol, on a local root and on an object store alike: an output is
visible to readers only once the metadata commit that records the execution COMPLETE
names it, and readers follow recorded URIs only. Whatever a crash leaves behind is
unrecorded, and the reaping that marks the execution ABANDONED removes it.

On a local root, a running component writes into ``<node dir>/.staging-<execution id>/<output>/``.
Only when it returns are the directories renamed to their final place,
``<pipeline_root>/<pipeline>/<node>/<output>/<execution id>/``: a rename within one
file system is atomic, so a reader never sees a half-written artifact, and a failed
or interrupted execution leaves only a staging directory, which is removed.

A process killed outright (SIGKILL, a lost machine) cleans nothing up, so the staging
directory also holds a small journal (``.jfx/``) of what lies outside it: the folders
about to be renamed into place (with their identity, taken before the rename) and the
temporary paths the component registered (:meth:`ExecutionContext.register_temporary`).
Whoever finds the execution's process dead (the next start's reaping) reads it in
:func:`discard_staging` and removes exactly those, and nothing that an artifact record
names or that is no longer the folder that was renamed.

On an object store (``s3://``, ``gs://``) there is no rename. The component still writes
into a local staging directory (under :func:`work_root`, a local mirror of the node
layout), and publishing uploads each output to its final prefix
``<root>/<pipeline>/<node>/<output>/<execution id>/``, which no record names yet, so no
reader looks there. Before the first upload, the execution's journal object
``<root>/<pipeline>/<node>/.staging-<execution id>/publishing.json`` lists those prefixes;
if recording COMPLETE fails the uploads are removed, and if the process dies the reaper
(:func:`discard_execution`, on any machine with the credentials) removes every journalled
prefix that no artifact record names. Fingerprints are computed from the local files
before they are uploaded, so they are the same as on a local root, and nothing is read
back from the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jfx import _storage as storage

__all__ = ["node_dir", "work_root", "staging_dir", "final_uri", "fingerprint", "publish_dirs", "remove_tree",
           "discard_staging", "discard_execution", "record_temporary", "remote_journal"]

# Inside the staging directory; output keys are identifiers, so never one of them.
_JOURNAL = ".jfx"
_PUBLISHING = "publishing.json"
_TEMPORARY = "temporary-"

_CHUNK = 1 << 20


def work_root(pipeline_root: str | Path) -> Path:
    """The local directory where components write for ``pipeline_root``: the root itself,
    or for an object store a local mirror of its layout under the cache directory."""
    if not storage.is_remote(pipeline_root):
        return Path(storage.check_uri(pipeline_root))
    digest = hashlib.sha256(storage.check_uri(pipeline_root).encode()).hexdigest()[:16]
    return storage.cache_dir() / "work" / digest


def node_dir(pipeline_root: str | Path, pipeline: str, node_id: str) -> Path:
    """The node's local folder (see :func:`work_root`)."""
    return work_root(pipeline_root) / pipeline / node_id


def staging_dir(pipeline_root: str | Path, pipeline: str, node_id: str, execution_id: int) -> Path:
    return node_dir(pipeline_root, pipeline, node_id) / f".staging-{execution_id}"


def remote_journal(pipeline_root: str | Path, pipeline: str, node_id: str, execution_id: int) -> str:
    """The journal object of an execution publishing to an object store."""
    return storage.join(pipeline_root, pipeline, node_id, f".staging-{execution_id}", _PUBLISHING)


def final_uri(pipeline_root: str | Path, pipeline: str, node_id: str, key: str, execution_id: int) -> str:
    """``<root>/<pipeline>/<node>/<key>/<execution id>``, made unique if it is taken.

    Execution ids are unique per metadata store; two stores sharing one pipeline root
    can collide, and then a random suffix keeps the other store's artifact intact.
    """
    uri = storage.join(pipeline_root, pipeline, node_id, key, str(execution_id))
    while storage.exists(uri):
        uri = storage.join(storage.parent(uri), f"{execution_id}-{secrets.token_hex(3)}")
    return uri


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(path: str | Path, type_name: str, properties: dict[str, Any]) -> str:
    """A content hash of an artifact: its type, properties, and every file's path and bytes.

    The URI is not part of it, so the same content gives the same fingerprint in any
    run, on any runner, which is what the cache and cross-runner parity rely on.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(type_name.encode())
    h.update(b"\0")
    h.update(canonical_json(properties).encode())
    root = Path(path)
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath, name)
            files.append((full.relative_to(root).as_posix(), full))
    for rel, full in sorted(files):
        h.update(b"\0f")
        h.update(rel.encode())
        h.update(b"\0")
        h.update(str(full.stat().st_size).encode())
        with open(full, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # whole or absent: a kill never leaves half a journal entry


def record_temporary(stage: str | Path, path: str | Path) -> None:
    """Note in the staging directory ``stage`` that its execution is making ``path``.

    ``path`` is outside the outputs and only this execution creates it (e.g. it has a
    random part); if the process dies before removing it, :func:`discard_staging` does.
    It may be an object-store URI (``s3://...``): then that prefix is removed.
    """
    target = storage.check_uri(path) if storage.is_remote(path) else str(Path(path).absolute())
    name = _TEMPORARY + hashlib.sha256(target.encode()).hexdigest()[:20]
    _write_atomic(Path(stage) / _JOURNAL / name, target)


def publish(moves: list[tuple[Path, str]], stage: Path, journal: str | None) -> None:
    """Put each staged output at its final URI: a rename locally, an upload to a store.

    ``journal`` (the :func:`remote_journal` object) is given for an object-store root.
    On failure nothing of it stays published.
    """
    if journal is None:
        publish_dirs([(src, Path(dst)) for src, dst in moves], stage)
        return
    storage.write_bytes(journal, json.dumps([{"uri": dst} for _, dst in moves]).encode())
    try:
        for src, dst in moves:
            storage.upload_dir(src, dst)
    except BaseException:
        unpublish([(src, dst) for src, dst in moves], journal)
        raise


def unpublish(moves: list[tuple[Path, str]], journal: str | None) -> None:
    """Undo :func:`publish` (recording the execution failed)."""
    if journal is None:
        unpublish_dirs([(src, Path(dst)) for src, dst in moves])
        return
    for _, dst in moves:
        with contextlib.suppress(OSError):
            storage.remove(dst)


def publish_dirs(moves: list[tuple[Path, Path]], stage: str | Path | None = None) -> None:
    """Rename each staging directory to its final place; undo all of them on failure.

    With ``stage``, the destinations and the identities of the folders (device, inode,
    mtime) are first written to its journal, so a process killed after a rename and
    before the metadata commit leaves a record of the folders it published (see
    :func:`discard_staging`).
    """
    if stage is not None:
        entries = []
        for src, dst in moves:
            st = os.stat(src)
            entries.append({"uri": str(dst), "dev": st.st_dev, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns})
        _write_atomic(Path(stage) / _JOURNAL / _PUBLISHING, json.dumps(entries))
    done: list[tuple[Path, Path]] = []
    try:
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, dst)  # fails if dst exists and is not empty: never overwrite
            done.append((src, dst))
    except BaseException:
        unpublish_dirs(done)
        raise


def unpublish_dirs(moves: list[tuple[Path, Path]]) -> None:
    """Move published directories back to staging (used when recording them fails)."""
    for src, dst in reversed(moves):
        try:
            os.rename(dst, src)
        except OSError:
            remove_tree(dst)


def remove_tree(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def discard_staging(stage: str | Path, recorded: Callable[[str], bool] | None = None) -> list[Path | str]:
    """Remove a staging directory and the temporary paths its execution registered.

    With ``recorded`` (for an execution whose process died while it was RUNNING), the
    folders it renamed into place but never recorded are removed too: each one named in
    the journal that still is the folder renamed (same device, inode and mtime) and whose URI
    ``recorded(uri)`` says no artifact record names. A folder another execution (another
    store sharing the root) published at that path since, or one the metadata store
    names, is left alone. The journal goes last, so an interrupted discard can be redone.

    Returns:
        The published folders and temporary paths that were removed.
    """
    journal = Path(stage) / _JOURNAL
    removed: list[Path | str] = []
    if recorded is not None:
        try:
            entries = json.loads((journal / _PUBLISHING).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = []  # the process died before publishing: nothing left the staging directory
        for entry in entries:
            dst = Path(entry["uri"])
            try:
                st = os.lstat(dst)
            except OSError:
                continue  # never renamed, or already gone
            # a rename keeps the folder's inode and mtime; a folder made there since has
            # another mtime even where the file system hands out the freed inode again
            same = (st.st_dev, st.st_ino, st.st_mtime_ns) == (entry["dev"], entry["ino"], entry["mtime_ns"])
            if same and not recorded(str(dst)):
                remove_tree(dst)
                removed.append(dst)
    try:
        notes = [p for p in journal.iterdir() if p.name.startswith(_TEMPORARY)]
    except OSError:
        notes = []
    for note in notes:
        try:
            text = note.read_text(encoding="utf-8")
        except OSError:
            continue
        if storage.is_remote(text):
            try:
                if storage.exists(text):
                    storage.remove(text)
                    removed.append(text)
            except OSError as err:
                print(f"jfx: could not remove {text}: {err}", file=sys.stderr)
            continue
        target = Path(text)
        if target.is_dir() and not target.is_symlink():
            remove_tree(target)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)
        else:
            continue
        removed.append(target)
    remove_tree(stage)
    return removed


def discard_execution(pipeline_root: str | Path, pipeline: str, node_id: str, execution_id: int,
                      recorded: Callable[[str], bool] | None = None, *, strict: bool = False) -> list[str]:
    """Remove what an execution that will not publish left behind, on a local root or a store.

    The local staging directory as :func:`discard_staging` does; for an object-store
    root also, with ``recorded`` (its process died), every prefix its journal names that
    no artifact record names, then the journal.

    Returns:
        What was removed (paths and URIs).

    Raises:
        OSError: with ``strict``, the store could not be reached to clean up (else that is
            reported on stderr): what the execution uploaded is then still there.
    """
    removed = [str(p) for p in discard_staging(staging_dir(pipeline_root, pipeline, node_id, execution_id),
                                              recorded)]
    if storage.is_remote(pipeline_root):
        journal = remote_journal(pipeline_root, pipeline, node_id, execution_id)
        try:
            if recorded is not None:
                try:
                    entries = json.loads(storage.read_bytes(journal))
                except FileNotFoundError:
                    entries = []  # died before publishing: nothing was uploaded
                except ValueError:
                    entries = []
                for entry in entries:
                    uri = str(entry["uri"])
                    if not recorded(uri) and storage.exists(uri):
                        storage.remove(uri)
                        removed.append(uri)
            with contextlib.suppress(FileNotFoundError):
                storage.remove(storage.parent(journal))
        except OSError as err:
            # the store is unreachable now: what was uploaded stays unrecorded (no reader
            # follows it), and so does the journal, for a later reaping
            if strict:
                raise
            print(f"jfx: could not clean up {storage.parent(journal)}: {err}", file=sys.stderr)
    return removed
