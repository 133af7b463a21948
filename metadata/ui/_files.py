"""Artifact files for the UI, on local disk or an object store, through :mod:`jfx._storage`.

A *location* is what the metadata store records: a local path or an object-store URI
(``s3://bucket/key``). Everything the UI reads from an artifact's folder goes through
here, so every page works the same on a local and an object-store pipeline root.

The containment rule (a file is served only from inside a recorded URI) is decided on
normalised locations: locally on resolved paths (``..`` and symbolic links resolved),
on a store on the normalised key (``..`` removed, compared segment by segment, so
``s3://b/root/a/1`` never contains ``s3://b/root/a/10``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jfx import _storage as storage

__all__ = ["Entry", "CHUNK", "is_remote", "child", "normalize", "inside", "parents", "listing", "is_file",
           "is_dir", "exists", "size", "name_of", "read_head", "entries", "stream"]

CHUNK = 1 << 20  # bytes per read when a file is streamed to a client


@dataclass(frozen=True)
class Entry:
    """A file under a folder: its path relative to it (``/``-separated), location and size."""

    rel: str
    location: str
    size: int


def is_remote(location: str | Path) -> bool:
    return storage.is_remote(str(location))


def child(root: str | Path, rel: str) -> str:
    """``rel`` (``/``-separated) under ``root``, as a location."""
    if not rel:
        return str(root)
    return storage.join(str(root), *[p for p in rel.split("/") if p])


def normalize(uri: str) -> str:
    """An object-store URI with ``.``, ``..`` and repeated slashes resolved, never above its bucket.

    Example:
        >>> normalize("s3://b/root/a/../x//y/"), normalize("s3://b/../../etc")
        ('s3://b/root/x/y', 's3://b/etc')
    """
    text = storage.check_uri(uri)
    scheme, rest = text.split("://", 1)
    bucket, _, key = rest.partition("/")
    key = posixpath.normpath("/" + key).lstrip("/") if key else ""
    return f"{scheme}://{bucket}/{key}" if key and key != "." else f"{scheme}://{bucket}"


def inside(root: str, target: str) -> bool:
    """Whether the normalised location ``target`` is ``root`` or lies under it.

    Example:
        >>> inside("s3://b/root/a/1", "s3://b/root/a/1/x"), inside("s3://b/root/a/1", "s3://b/root/a/10")
        (True, False)
    """
    if is_remote(root) != is_remote(target):
        return False
    if is_remote(root):
        root, target = normalize(root), normalize(target)
        return target == root or target.startswith(root.rstrip("/") + "/")
    r, t = Path(root), Path(target)
    return t == r or r in t.parents


def parents(uri: str) -> list[str]:
    """A normalised object-store URI and each of its parents, up to the bucket."""
    text = normalize(uri)
    scheme, rest = text.split("://", 1)
    path = PurePosixPath(rest)
    return [f"{scheme}://{p}" for p in (path, *path.parents) if str(p) not in ("", ".")]


def is_file(location: str | Path) -> bool:
    if not is_remote(location):
        return Path(location).is_file()
    try:
        return storage.isfile(str(location))
    except FileNotFoundError:
        return False


def is_dir(location: str | Path) -> bool:
    if not is_remote(location):
        return Path(location).is_dir()
    try:
        return storage.isdir(str(location))
    except FileNotFoundError:
        return False


def exists(location: str | Path) -> bool:
    return Path(location).exists() if not is_remote(location) else storage.exists(str(location))


def size(location: str | Path) -> int:
    return Path(location).stat().st_size if not is_remote(location) else storage.file_size(str(location))


def name_of(location: str | Path) -> str:
    return Path(location).name if not is_remote(location) else storage.basename(str(location))


def listing(root: str | Path, limit: int | None = None) -> tuple[list[Entry], bool]:
    """The files under the folder ``root`` (or ``root`` itself if it is a file), sorted by path.

    At most ``limit`` of them; the flag says more were left out. On a store: one listing.
    """
    if is_remote(root):
        try:
            found = storage.list_files(str(root))
        except FileNotFoundError:
            found = []
        files = [Entry(f.rel, f.uri, f.size) for f in found if PurePosixPath(f.rel).name != ".jfx-empty"]
        if not files and is_file(root):
            return [Entry("", str(root), size(root))], False
        if limit is not None and len(files) > limit:
            return files[:limit], True
        return files, False
    path = Path(root)
    if path.is_file():
        return [Entry("", str(path), path.stat().st_size)], False
    listed: list[Entry] = []
    if not path.is_dir():
        return listed, False
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath, name)
            try:
                n = full.stat().st_size
            except OSError:
                continue
            listed.append(Entry(full.relative_to(path).as_posix(), str(full), n))
            if limit is not None and len(listed) >= limit:
                return listed, True
    return listed, False


def entries(folder: str | Path) -> list[str]:
    """The names in a folder, sub-folders with a trailing ``/`` (a directory's answer)."""
    if not is_remote(folder):
        return sorted(p.name + ("/" if p.is_dir() else "") for p in Path(folder).iterdir())
    fs, path = storage.filesystem(str(folder))
    names = []
    for info in fs.ls(path, detail=True):
        name = PurePosixPath(str(info["name"]).rstrip("/")).name
        if name == ".jfx-empty":
            continue
        names.append(name + ("/" if info.get("type") == "directory" else ""))
    return sorted(names)


def read_head(location: str | Path, n: int) -> bytes:
    """The first ``n`` bytes of a file (one ranged read on a store)."""
    with storage.open_uri(str(location), "rb") as fh:
        data: bytes = fh.read(n)
        return data


def stream(location: str | Path) -> tuple[int, bytes, Iterator[bytes]]:
    """Open a file for serving: its size, its first chunk, and an iterator of the rest.

    The rest is read :data:`CHUNK` bytes at a time (ranged reads on a store), so a large
    file never sits in memory whole; the file is closed when the iterator ends or is
    dropped.
    """
    fh = storage.open_uri(str(location), "rb")
    try:
        total = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        first = fh.read(CHUNK)
    except BaseException:
        fh.close()
        raise

    def rest() -> Iterator[bytes]:
        try:
            while chunk := fh.read(CHUNK):
                yield chunk
        finally:
            fh.close()

    if len(first) >= total:
        fh.close()
        return int(total), first, iter(())
    return int(total), first, rest()
