"""Output directories: staging, content fingerprints and atomic publishing.

A running component writes into ``<node dir>/.staging-<execution id>/<output>/``.
Only when it returns are the directories renamed to their final place,
``<pipeline_root>/<pipeline>/<node>/<output>/<execution id>/``: a rename within one
file system is atomic, so a reader never sees a half-written artifact, and a failed
or interrupted execution leaves only a staging directory, which is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

__all__ = ["node_dir", "staging_dir", "final_uri", "fingerprint", "publish_dirs", "remove_tree"]

_CHUNK = 1 << 20


def node_dir(pipeline_root: str | Path, pipeline: str, node_id: str) -> Path:
    return Path(pipeline_root) / pipeline / node_id


def staging_dir(pipeline_root: str | Path, pipeline: str, node_id: str, execution_id: int) -> Path:
    return node_dir(pipeline_root, pipeline, node_id) / f".staging-{execution_id}"


def final_uri(pipeline_root: str | Path, pipeline: str, node_id: str, key: str, execution_id: int) -> Path:
    """``<root>/<pipeline>/<node>/<key>/<execution id>``, made unique if it is taken.

    Execution ids are unique per metadata store; two stores sharing one pipeline root
    can collide, and then a random suffix keeps the other store's artifact intact.
    """
    path = node_dir(pipeline_root, pipeline, node_id) / key / str(execution_id)
    while path.exists():
        path = path.with_name(f"{execution_id}-{secrets.token_hex(3)}")
    return path


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


def publish_dirs(moves: list[tuple[Path, Path]]) -> None:
    """Rename each staging directory to its final place; undo all of them on failure."""
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
