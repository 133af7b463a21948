"""Artifact storage: one filesystem layer for local paths and object stores (S3, GCS).

Every artifact URI jfx records is either a local path or an object-store URI
(``s3://bucket/prefix/...``, ``gs://bucket/prefix/...``); all artifact I/O goes through
this module, which hands out fsspec filesystems (s3fs, gcsfs, the local one) and the
few operations jfx needs on top of them. Nothing here assumes ``os.path`` on a URI.

Why fsspec: s3fs and gcsfs take the settings users already have (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, a GCS service account),
list objects with their ETags and checksums in one call (which is how input files are
fingerprinted without downloading them), pickle into Beam and Dask workers, and Arrow
reads Parquet through them directly (``pyarrow.dataset(..., filesystem=fs)``); pyarrow's
own S3 client does not read ``AWS_ENDPOINT_URL``.

Settings: ``JFX_CACHE_DIR`` (default ``$JFX_HOME/cache``) holds local copies of remote
input artifacts, keyed by fingerprint and reused across runs; ``JFX_CACHE_MAX_GB``
(default 20) bounds it: the least recently used copies are removed beyond it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from jfx.errors import InvalidArgumentError, JfxError

__all__ = [
    "StorageError",
    "iter_parquet_batches",
    "RemoteFile",
    "is_remote",
    "scheme_of",
    "check_uri",
    "check_root",
    "filesystem",
    "join",
    "parent",
    "basename",
    "exists",
    "isdir",
    "isfile",
    "file_size",
    "list_files",
    "open_uri",
    "read_bytes",
    "read_text",
    "write_bytes",
    "create_exclusive",
    "upload_dir",
    "download_dir",
    "remove",
    "open_parquet",
    "cached_footers",
    "input_stream",
    "localize",
    "cache_dir",
]

REMOTE_SCHEMES = ("s3", "gs")
_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs"}
_URI_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_INSTALL = {"s3": "pip install 'jfx[s3]' (s3fs)", "gs": "pip install 'jfx[gcs]' (gcsfs)"}


class StorageError(JfxError, OSError):
    """An object store or path could not be used (missing bucket, credentials, endpoint)."""


def scheme_of(uri: str | Path) -> str:
    """``"s3"``, ``"gs"`` or ``"file"`` (a local path); an unknown scheme is an error.

    Example:
        >>> scheme_of("s3://bucket/x"), scheme_of("/tmp/x"), scheme_of("file:///tmp/x")
        ('s3', 'file', 'file')
    """
    m = _URI_RE.match(str(uri))
    if m is None:
        return "file"
    raw = m.group(1).lower()
    if raw == "file":
        return "file"
    if raw in _SCHEMES:
        return _SCHEMES[raw]
    raise InvalidArgumentError(
        f"{uri}: unknown storage scheme {raw!r}; use s3://bucket/prefix, gs://bucket/prefix or a local path"
    )


def is_remote(uri: str | Path) -> bool:
    """Whether ``uri`` is on an object store (``s3://``, ``gs://``)."""
    return scheme_of(uri) != "file"


def check_uri(uri: str | Path) -> str:
    """``uri`` normalised (``s3a://`` → ``s3://``, ``file://`` → a path); raises on a bad one."""
    text = str(uri)
    scheme = scheme_of(text)
    if scheme == "file":
        return text[len("file://"):] if text.lower().startswith("file://") else text
    rest = text.split("://", 1)[1].strip("/")
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise InvalidArgumentError(f"{uri}: no bucket; expected {scheme}://bucket/prefix")
    return f"{scheme}://{rest}"


_FS_LOCK = threading.Lock()
_FILESYSTEMS: dict[tuple[str, ...], Any] = {}
# the settings a store's client reads when it is made: a change (a test, a CLI flag) makes a new one
_SETTINGS = {
    "s3": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE",
           "AWS_SHARED_CREDENTIALS_FILE"),
    "gs": ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"),
}


def filesystem(uri: str | Path) -> tuple[Any, str]:
    """The fsspec filesystem for ``uri`` and the path it takes (``bucket/key`` for a store).

    One client per store and settings, shared by threads; listings are never cached,
    since other processes write the same bucket.
    """
    text = check_uri(uri)
    scheme = scheme_of(text)
    import fsspec

    if scheme == "file":
        return fsspec.filesystem("file"), str(Path(text).expanduser().absolute())
    key = (scheme, str(os.getpid()), *(os.environ.get(k, "") for k in _SETTINGS[scheme]))
    with _FS_LOCK:
        fs = _FILESYSTEMS.get(key)
        if fs is None:
            try:
                cls = fsspec.get_filesystem_class(scheme)
            except ImportError as err:
                raise StorageError(f"{text}: {scheme}:// needs {_INSTALL[scheme]}") from err
            fs = _FILESYSTEMS[key] = cls(use_listings_cache=False, skip_instance_cache=True)
    return fs, text.split("://", 1)[1]


def _to_uri(scheme: str, path: str) -> str:
    return path if scheme == "file" else f"{scheme}://{path}"


def join(uri: str | Path, *parts: str) -> str:
    """``uri`` with ``parts`` appended (``/`` on a store, the OS's separator locally).

    Example:
        >>> join("s3://b/root", "p", "node"), join("/tmp/root", "p")
        ('s3://b/root/p/node', '/tmp/root/p')
    """
    text = check_uri(uri)
    if scheme_of(text) == "file":
        return str(Path(text, *parts))
    scheme, rest = text.split("://", 1)
    return f"{scheme}://{PurePosixPath(rest, *parts)}"


def parent(uri: str | Path) -> str:
    text = check_uri(uri)
    if scheme_of(text) == "file":
        return str(Path(text).parent)
    scheme, rest = text.split("://", 1)
    return f"{scheme}://{PurePosixPath(rest).parent}"


def basename(uri: str | Path) -> str:
    return PurePosixPath(check_uri(uri).split("://", 1)[-1]).name


def _explain(uri: str, err: BaseException) -> StorageError:
    """One line naming ``uri`` and what to fix, from a store's error."""
    text = f"{type(err).__name__}: {err}"
    low = text.lower()
    scheme = scheme_of(uri)
    bucket = uri.split("://", 1)[-1].split("/", 1)[0]
    if "nosuchbucket" in low or "bucket does not exist" in low or "specified bucket does not exist" in low:
        why = f"the bucket {bucket!r} does not exist; create it or fix the URI"
    elif any(s in low for s in ("nocredentials", "unable to locate credentials", "could not find credentials",
                                "default credentials")):
        why = ("no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)" if scheme == "s3"
               else "no credentials found; set GOOGLE_APPLICATION_CREDENTIALS or log in with gcloud")
    elif isinstance(err, PermissionError) or any(s in low for s in (
            "invalidaccesskeyid", "signaturedoesnotmatch", "accessdenied", "access denied", "forbidden", "403",
            "invalidtoken", "expiredtoken", "not exist in our records")):
        detail = str(err).splitlines()[0][:160] if str(err).strip() else type(err).__name__
        why = f"the credentials were refused ({detail}); check the key, secret and permissions"
    elif any(s in low for s in ("connect", "endpoint", "timed out", "name or service", "resolve")):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "the default endpoint"
        why = f"cannot reach {endpoint} ({str(err).splitlines()[0][:160]}); check AWS_ENDPOINT_URL and the network"
    else:
        why = str(err).splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return StorageError(f"{uri}: {why}")


def check_root(uri: str | Path) -> str:
    """Check that jfx can write under ``uri`` now; return it normalised.

    A local root is created. For a store, one listing of the bucket proves the endpoint,
    the credentials and the bucket; anything else is one line naming the URI and what
    to fix (:class:`StorageError`), before any node runs.
    """
    text = check_uri(uri)
    if scheme_of(text) == "file":
        local = Path(text).expanduser()
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"{text}: cannot create the pipeline root ({err.strerror or err})") from err
        return text
    fs, path = filesystem(text)
    bucket = path.split("/", 1)[0]
    try:
        fs.ls(bucket, detail=False)
    except FileNotFoundError as err:
        raise StorageError(f"{text}: the bucket {bucket!r} does not exist; create it or fix the URI") from err
    except Exception as err:  # the store's own error, explained in one line
        raise _explain(text, err) from err
    return text


@contextlib.contextmanager
def _storage_errors(uri: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, StorageError, JfxError):
        raise
    except Exception as err:  # the store's own error, explained in one line
        if scheme_of(uri) == "file" and isinstance(err, OSError):
            raise
        raise _explain(uri, err) from err


def exists(uri: str | Path) -> bool:
    if scheme_of(uri) == "file":  # the launcher's cache lookup asks this per output: no fsspec on a local path
        return os.path.exists(os.path.expanduser(check_uri(uri)))
    fs, path = filesystem(uri)
    with _storage_errors(str(uri)):
        return bool(fs.exists(path))


def isdir(uri: str | Path) -> bool:
    """Whether ``uri`` is a directory (on a store: a prefix with objects under it)."""
    if scheme_of(uri) == "file":
        return os.path.isdir(os.path.expanduser(check_uri(uri)))
    fs, path = filesystem(uri)
    with _storage_errors(str(uri)):
        return bool(fs.isdir(path))


def isfile(uri: str | Path) -> bool:
    """Whether ``uri`` is a file (on a store: an object)."""
    if scheme_of(uri) == "file":
        return os.path.isfile(os.path.expanduser(check_uri(uri)))
    fs, path = filesystem(uri)
    with _storage_errors(str(uri)):
        return bool(fs.isfile(path))


def file_size(uri: str | Path) -> int:
    """The size in bytes of the file ``uri``; :class:`FileNotFoundError` if there is none."""
    fs, path = filesystem(uri)
    with _storage_errors(str(uri)):
        return int(fs.size(path) or 0)


@dataclass(frozen=True)
class RemoteFile:
    """A file under a URI: its path relative to it, size and the store's checksum (or mtime)."""

    rel: str
    uri: str
    size: int
    checksum: str


def list_files(uri: str | Path) -> list[RemoteFile]:
    """Every file under the directory or prefix ``uri``, sorted, with sizes and checksums.

    On a store the checksum is the object's ETag (one listing, nothing downloaded);
    locally it is the modification time in nanoseconds.
    """
    text = check_uri(uri)
    scheme = scheme_of(text)
    fs, path = filesystem(text)
    with _storage_errors(text):
        found = fs.find(path, detail=True)
    base = path.rstrip("/")
    files = []
    for name, info in found.items():
        if info.get("type") == "directory":
            continue
        name = name.rstrip("/")
        rel = name[len(base) + 1:] if name.startswith(base + "/") else PurePosixPath(name).name
        if scheme == "file":
            checksum = str(int(float(info.get("mtime", 0)) * 1e9)) if "mtime" in info else ""
            with contextlib.suppress(OSError):
                checksum = str(os.stat(name).st_mtime_ns)
        else:
            checksum = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("crc32c")
                           or info.get("LastModified") or info.get("updated") or "").strip('"')
        files.append(RemoteFile(rel, _to_uri(scheme, name), int(info.get("size") or 0), checksum))
    return sorted(files, key=lambda f: f.rel)


def open_uri(uri: str | Path, mode: str = "rb") -> IO[Any]:
    """Open a file under ``uri`` (``"rb"``, ``"wb"``, ``"r"``, ``"w"``)."""
    fs, path = filesystem(uri)
    with _storage_errors(str(uri)):
        return fs.open(path, mode)


def read_bytes(uri: str | Path) -> bytes:
    with open_uri(uri, "rb") as fh:
        data: bytes = fh.read()
        return data


def read_text(uri: str | Path) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Write one file; on a store the object appears whole or not at all."""
    fs, path = filesystem(uri)
    with _storage_errors(str(uri)):
        if scheme_of(str(uri)) == "file":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        fs.pipe_file(path, data)


def create_exclusive(uri: str | Path, data: bytes) -> bool:
    """Write one file only if nothing is there yet; ``False`` (nothing written) if something is.

    The check and the write are one step (``O_EXCL`` locally, a conditional ``PUT``
    with ``If-None-Match: *`` on S3), so of two writers racing for one name exactly one
    gets ``True``: a claim without a rename.
    """
    text = check_uri(uri)
    fs, path = filesystem(text)
    if scheme_of(text) == "file":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True
    with _storage_errors(text):
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
    return True


def upload_dir(local: str | Path, uri: str | Path, last: tuple[str, ...] = ()) -> None:
    """Copy the local directory ``local`` to ``uri`` (every file under it, in parallel on a store).

    Files whose path relative to ``local`` is in ``last`` are copied only once every
    other file is there (a marker a reader waits for, such as a model's ``signature.json``).
    """
    text = check_uri(uri)
    src = Path(local)
    if scheme_of(text) == "file":
        shutil.copytree(src, text, dirs_exist_ok=True, ignore=_ignore_top(src, last))
        for rel in last:
            if (src / rel).is_file():
                Path(text, rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, Path(text, rel))
        return
    fs, path = filesystem(text)
    pairs = [(str(p), f"{path}/{p.relative_to(src).as_posix()}") for p in sorted(src.rglob("*")) if p.is_file()]
    with _storage_errors(text):
        if not pairs:
            # an empty output still exists: a marker object keeps its prefix listable
            fs.pipe_file(f"{path}/.jfx-empty", b"")
            return
        late = [(a, b) for a, b in pairs if Path(a).relative_to(src).as_posix() in last]
        early = [pair for pair in pairs if pair not in late]
        for group in (early, late):
            if group:
                fs.put([a for a, _ in group], [b for _, b in group])


def _ignore_top(src: Path, names: tuple[str, ...]) -> Any:
    wanted = {(src / n).resolve() for n in names}

    def ignore(folder: str, entries: list[str]) -> set[str]:
        return {e for e in entries if (Path(folder) / e).resolve() in wanted}

    return ignore


def download_dir(uri: str | Path, local: str | Path) -> None:
    """Copy every file under ``uri`` into the local directory ``local``."""
    text = check_uri(uri)
    dst = Path(local)
    dst.mkdir(parents=True, exist_ok=True)
    if scheme_of(text) == "file":
        shutil.copytree(text, dst, dirs_exist_ok=True)
        return
    fs, _ = filesystem(text)
    files = [f for f in list_files(text) if PurePosixPath(f.rel).name != ".jfx-empty"]
    for f in files:
        (dst / f.rel).parent.mkdir(parents=True, exist_ok=True)
    if files:
        with _storage_errors(text):
            fs.get([f.uri.split("://", 1)[1] for f in files], [str(dst / f.rel) for f in files])


def remove(uri: str | Path) -> None:
    """Remove the file or directory (prefix) ``uri`` and everything under it; absent is fine."""
    text = check_uri(uri)
    if scheme_of(text) == "file":
        p = Path(text)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        return
    fs, path = filesystem(text)
    with contextlib.suppress(FileNotFoundError), _storage_errors(text):
        fs.rm(path, recursive=True)


_FOOTER_LOCK = threading.Lock()
_FOOTER_SCOPES = 0
_FOOTERS: dict[str, tuple[int, Any, Any]] = {}  # uri -> (size, Parquet metadata, the store's details)


@contextlib.contextmanager
def cached_footers() -> Iterator[None]:
    """Within this block, :func:`open_parquet` sizes each Parquet object on a store and
    reads its footer once, however often it is opened (a reader that plans row groups,
    reads footer statistics, then each row group, would otherwise ask the store each
    time). For readers of published artifacts, whose objects never change; the memory
    goes when the last such block in the process ends.
    """
    global _FOOTER_SCOPES
    with _FOOTER_LOCK:
        _FOOTER_SCOPES += 1
    try:
        yield
    finally:
        with _FOOTER_LOCK:
            _FOOTER_SCOPES -= 1
            if not _FOOTER_SCOPES:
                _FOOTERS.clear()


def open_parquet(uri: str | Path, **kwargs: Any) -> Any:
    """``pyarrow.parquet.ParquetFile`` over the file ``uri`` (local or on a store).

    On a store the object is read by byte ranges as pyarrow asks for them (nothing is
    downloaded first; see :func:`cached_footers`). A file that is not there raises
    :class:`FileNotFoundError`; ``kwargs`` go to ``ParquetFile`` (``read_dictionary=``,
    ``metadata=``, ...).
    """
    import pyarrow.parquet as pq

    text = check_uri(uri)
    if scheme_of(text) == "file":
        return pq.ParquetFile(str(Path(text).expanduser()), **kwargs)
    fs, path = filesystem(text)
    with _FOOTER_LOCK:
        known = _FOOTERS.get(text) if _FOOTER_SCOPES else None
    with _storage_errors(text):
        # no read-ahead cache: pyarrow asks for exactly the column chunks it needs, and a
        # file's row groups are read by different pieces (a 50 MB read-ahead per handle
        # fetched a whole file once per row group)
        if known is not None:
            kwargs.setdefault("metadata", known[1])
            handle = fs.open(path, "rb", size=known[0], cache_type="none")
            if known[2] is not None:
                # what the first open learnt (size, ETag): a file object asks the store for
                # it again (a HEAD per open, that is per row group) before its first read
                handle.details = known[2]
            return pq.ParquetFile(handle, **kwargs)
        handle = fs.open(path, "rb", cache_type="none")
        pf = pq.ParquetFile(handle, **kwargs)
    with _FOOTER_LOCK:
        if _FOOTER_SCOPES:
            details = getattr(handle, "details", None)
            _FOOTERS[text] = (int(handle.size), pf.metadata, dict(details) if isinstance(details, dict) else None)
    return pf


def iter_parquet_batches(pf: Any, batch_size: int, columns: Any = None, row_groups: range | None = None) -> Any:
    """The batches ``pf.iter_batches(batch_size=..., columns=...)`` gives (the same rows in the
    same batches, which may span row groups), read one row group at a time; only
    ``row_groups``, if given.

    pyarrow's reader over a whole file keeps what it read of earlier row groups until it
    ends (with pyarrow 25, 200 MB more at 3.2M rows of 18 columns): memory that grows with
    the file. Row group by row group it stays at one row group and one batch.
    """
    import pyarrow as pa

    carry: list[Any] = []  # rows read and not yet given, fewer than batch_size
    held = 0
    for group in range(pf.metadata.num_row_groups) if row_groups is None else row_groups:
        for batch in pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns):
            if not held and batch.num_rows == batch_size:
                yield batch
                continue
            carry.append(batch)
            held += batch.num_rows
            if held >= batch_size:
                table = pa.Table.from_batches(carry)
                yield from table.slice(0, batch_size).combine_chunks().to_batches()
                carry = table.slice(batch_size).to_batches()
                held -= batch_size
    if held:
        yield from pa.Table.from_batches(carry).combine_chunks().to_batches()


def input_stream(uri: str | Path) -> Any:
    """A sequential ``pyarrow`` input stream of the file ``uri``, decompressed by its name
    (``.gz``, ``.bz2``, ``.zst``) as ``pyarrow.input_stream(..., compression="detect")`` does."""
    import pyarrow as pa

    text = check_uri(uri)
    if scheme_of(text) == "file":
        return pa.input_stream(str(Path(text).expanduser()), compression="detect")
    try:
        codec: str | None = pa.Codec.detect(text).name
    except (TypeError, ValueError, pa.ArrowException):
        codec = None
    return pa.input_stream(open_uri(text, "rb"), compression=codec)


# ------------------------------------------------------------------ the local cache


def cache_dir() -> Path:
    """``$JFX_CACHE_DIR``, default ``$JFX_HOME/cache``: local copies of remote artifacts."""
    raw = os.environ.get("JFX_CACHE_DIR", "").strip()
    if raw:
        return Path(raw).expanduser().absolute()
    from jfx._config import jfx_home

    return jfx_home() / "cache"


def _cache_limit() -> int:
    raw = os.environ.get("JFX_CACHE_MAX_GB", "").strip()
    try:
        gb = float(raw) if raw else 20.0
    except ValueError:
        raise InvalidArgumentError(f"JFX_CACHE_MAX_GB={raw!r} is not a number") from None
    return int(gb * (1 << 30))


def localize(uri: str | Path, fingerprint: str = "") -> Path:
    """A local directory holding the artifact at ``uri``: the path itself if local, else a cached copy.

    Copies live in :func:`cache_dir` under the artifact's content fingerprint (so a copy
    is reused by every run and every URI with the same content), appear by one rename
    (a reader never sees half a copy, two processes may race), and are evicted least
    recently used first once the cache is over ``JFX_CACHE_MAX_GB``.
    """
    text = check_uri(uri)
    if scheme_of(text) == "file":
        return Path(text)
    key = fingerprint or "uri-" + hashlib.sha256(text.encode()).hexdigest()[:40]
    root = cache_dir() / "artifacts"
    target = root / key
    if target.is_dir():
        with contextlib.suppress(OSError):
            os.utime(target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{key}-{secrets.token_hex(4)}"
    try:
        download_dir(text, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _evict(root, keep=target)
    return target


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _evict(root: Path, keep: Path) -> None:
    limit = _cache_limit()
    entries = []
    for p in root.iterdir():
        if p.name.startswith(".tmp-"):
            # a copy whose process died more than a day ago
            with contextlib.suppress(OSError):
                if time.time() - p.stat().st_mtime > 86400:
                    shutil.rmtree(p, ignore_errors=True)
            continue
        with contextlib.suppress(OSError):
            entries.append((p.stat().st_mtime, p, _tree_size(p)))
    total = sum(size for _, _, size in entries)
    for _, p, size in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if p == keep:
            continue
        shutil.rmtree(p, ignore_errors=True)
        total -= size

