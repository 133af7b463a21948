"""The HTTP side of ``jfx ui``: routing, the token check, JSON answers, static files and artifact files.

Standard library only (``http.server.ThreadingHTTPServer``): the UI is read-only and
small, and the front end is plain ES modules under ``static/`` (no build step, nothing
fetched from the internet).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import math
import mimetypes
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from jfx.errors import InvalidArgumentError, JfxError, NotFoundError
from jfx.metadata._store import MetadataStore
from jfx.metadata.ui import _artifact, _compare, _files, _run, _runs, _viewers
from jfx.metadata.ui._common import ApiError, Query

__all__ = ["UIApp", "UIServer", "STATIC_DIR", "API_ROUTES", "open_store_read_only"]

log = logging.getLogger("jfx.ui")

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_COOKIE = "jfx_ui_token"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; "
             "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Artifact files are shown in a sandbox: an HTML file (e.g. Data Docs) renders without scripts
# and without access to the UI's origin.
_FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
_TEXT_SUFFIXES = {".log", ".txt", ".json", ".jsonl", ".csv", ".py", ".md", ".yaml", ".yml", ".log_tail", ".tsv",
                  ".ini", ".cfg", ".toml"}
# The page refers to its static files as /static/v-<hash of them all>/...: cached by the browser
# for good (no revalidation on each load), and a changed file gets a new address.
_VERSIONED = re.compile(r"^v-([0-9a-f]{16})/(.*)$")
_IMMUTABLE = "private, max-age=31536000, immutable"
_PRELOADS = b"<!-- preloads -->"
_IMPORT = re.compile(r'^import\s[^;]*?\sfrom\s*"(\.\.?/[^"]+)"', re.M)

@dataclass(frozen=True)
class Route:
    """One API route: its usage (which is also its documentation), what it answers, its handler.

    The URL pattern is derived from the usage, so the table below is both what the app
    dispatches on and what ``GET /api`` and docs/ui.md list: a route cannot go undocumented.
    ``{name}`` matches one path segment; a final ``/{path}`` matches the rest (or nothing).

    Attributes:
        usage: ``"GET /api/runs/{run_id}?limit=..."``: method, path template, example query.
        what: one line on what it answers.
        handler: ``(app, query, *path values) -> JSON-able value or a file to serve``.
    """

    usage: str
    what: str
    handler: Callable[..., Any]

    @property
    def pattern(self) -> re.Pattern[str]:
        path = self.usage.split(" ", 1)[-1].split("?", 1)[0]
        tail = ""
        if path.endswith("/{path}"):
            path, tail = path[: -len("/{path}")], "(?:/(.*))?"
        regex = "".join("([^/]+)" if re.fullmatch(r"\{[a-z_]+\}", part) else re.escape(part)
                        for part in re.split(r"(\{[a-z_]+\})", path)) + tail
        # The index alone also answers with a trailing slash, as it always has.
        return re.compile(f"^{regex}/?$" if path == "/api" else f"^{regex}$")


def _js_component(text: str) -> str:
    """JavaScript's encodeURIComponent."""
    return quote(text, safe="!*'()")


@dataclass(frozen=True)
class Page:
    """One page of the front end: its address, the module app.js renders it with, and the API
    addresses that module fetches first (from the page's path match and query), which the page
    preloads so that they load alongside the modules. The pattern and module mirror app.js's routes.
    """

    pattern: re.Pattern[str]
    module: str  # under static/
    first_requests: Callable[[tuple[str, ...], dict[str, list[str]]], list[str]] = lambda groups, params: []


PAGES: tuple[Page, ...] = (
    Page(re.compile(r"^/(?:runs/?)?$"), "pages/runs.js", lambda g, params: _runs.first_requests(params)),
    Page(re.compile(r"^/runs/([^/]+)/?$"), "pages/run.js",
         lambda g, params: [f"/api/runs/{_js_component(unquote(g[0]))}"]),
    Page(re.compile(r"^/executions/(\d+)/?$"), "pages/execution.js", lambda g, params: [f"/api/executions/{g[0]}"]),
    Page(re.compile(r"^/artifacts/(\d+)/?$"), "pages/artifact.js",
         lambda g, params: [f"/api/lineage?artifact={g[0]}&up=2&down=1", f"/api/artifacts/{g[0]}",
                            f"/api/artifacts/{g[0]}/view"]),
    Page(re.compile(r"^/compare/?$"), "pages/compare.js"),
)


def _index(app: UIApp, q: Query) -> dict[str, Any]:
    return {"routes": [{"route": r.usage, "what": r.what} for r in ROUTES], "store": app.store.url,
            "error_shape": {"error": {"code": 404, "message": "..."}}}


# Documented in docs/ui.md (a test checks that it describes each of them).
ROUTES: tuple[Route, ...] = (
    Route("GET /api", "this list: every route, the store, the error shape", _index),
    Route("GET /api/pipelines", "every pipeline: name, number of runs, last run time",
          lambda app, q: _runs.pipelines_json(app.store, q)),
    Route("GET /api/runs?pipeline=&state=&q=&limit=50&offset=0",
          "runs newest first, filtered by pipeline, state and id search",
          lambda app, q: _runs.runs_json(app.store, q)),
    Route("GET /api/runs/{run_id}", "one run: state, times, parameters, the DAG (nodes with states, edges)",
          lambda app, q, run: _run.run_json(app.store, run, q)),
    Route("GET /api/runs/{run_id}/executions?limit=100&offset=0", "every execution of a run, newest first",
          lambda app, q, run: _run.run_executions_json(app.store, run, q)),
    Route("GET /api/executions/{id}",
          "one execution: parameters, artifacts, cache hit source or miss reason, error, logs",
          lambda app, q, e: _run.execution_json(app.store, e, q)),
    Route("GET /api/executions/{id}/log",
          "what the execution's component printed and logged (as captured by the launcher)",
          lambda app, q, e: _FileAnswer(_run.execution_log_path(app.store, e))),
    Route("GET /api/artifacts?type=&name=&limit=50&offset=0",
          "artifacts newest first, by type and/or name (node.output)",
          lambda app, q: _artifact.artifacts_json(app.store, q)),
    Route("GET /api/artifacts/{id}", "one artifact: properties, producer, consumers, runs, files",
          lambda app, q, a: _artifact.artifact_json(app.store, a, q, mlflow_url=app.mlflow_url)),
    Route("GET /api/artifacts/{id}/view", "the data of the artifact's typed viewer",
          lambda app, q, a: _viewers.view_json(app.store, a, q, mlflow_url=app.mlflow_url)),
    Route("GET /api/artifacts/{id}/files/{path}", "a file inside the artifact's URI (403 outside it)",
          lambda app, q, a, rel: _FileAnswer(_artifact.artifact_file(app.store, a, rel or ""))),
    Route("GET /api/files?path=/abs/path", "a file under the URI of any recorded artifact (403 otherwise)",
          lambda app, q: _FileAnswer(_artifact.file_by_path(app.store, q.str("path") or ""))),
    # Two usages of one path: the first match dispatches both, to the same handler.
    Route("GET /api/lineage?artifact=ID&up=2&down=1",
          "the lineage graph around an artifact (up/down: steps or 'all')",
          lambda app, q: _artifact.lineage_json(app.store, q)),
    Route("GET /api/lineage?execution=ID", "an execution with its input, output and external files",
          lambda app, q: _artifact.lineage_json(app.store, q)),
    Route("GET /api/compare?runs=A,B", "two or more runs: parameter, metric and fingerprint differences",
          lambda app, q: _compare.compare_json(app.store, q)),
)
# (usage, what) pairs, as the public API has always exposed them.
API_ROUTES = [(r.usage, r.what) for r in ROUTES]


def open_store_read_only(url: str | None) -> MetadataStore:
    """Open an existing store without writing to it: no schema creation, no migration.

    Raises:
        InvalidArgumentError: There is no jfx store at the URL, or its schema is not the
            one this jfx reads (``jfx runs list`` with this version upgrades it).
        MetadataError: The database cannot be reached or opened.
    """
    from jfx._config import resolve_metadata_url
    from jfx.metadata._backend import backend_of, create_engine, normalize_url, opening, shown_url
    from jfx.metadata._migrate import needs_upgrade

    parsed = normalize_url(resolve_metadata_url(url))
    shown = shown_url(parsed)
    if backend_of(parsed) == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and not parsed.query.get("uri") and not Path(database).expanduser().is_file():
            raise InvalidArgumentError(f"no metadata store at {shown}: {database} does not exist (run a pipeline first, "
                                       "or pass --metadata-url)")
    engine = create_engine(parsed)
    try:
        with opening(parsed):
            stale = needs_upgrade(engine)
    finally:
        engine.dispose()
    if stale:
        raise InvalidArgumentError(f"{shown} has no jfx metadata schema at this version; the UI does not write to "
                                   "the store: run any jfx command on it first (e.g. jfx runs list), which migrates it")
    return MetadataStore(url)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json_bytes(payload: Any) -> bytes:
    """Strict JSON (NaN and infinities become null, which browsers can parse)."""
    try:
        text = json.dumps(payload, allow_nan=False, default=str, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(payload), allow_nan=False, default=str, separators=(",", ":"))
    return text.encode("utf-8")


@dataclass
class Response:
    """One answer. A large artifact file comes as ``body`` (its first chunk) then ``rest``,
    read a chunk at a time while it is sent, never whole in memory; ``length`` is the total."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    rest: Iterator[bytes] | None = None
    length: int | None = None


@dataclass(frozen=True)
class _Assets:
    signature: tuple  # (path, size, mtime) of every static file
    version: str
    page: bytes  # index.html, its /static/ addresses versioned
    imports: dict[str, list[str]]  # module -> the modules it imports (static imports), under static/


@dataclass(frozen=True)
class _PageAnswer:
    page: Page
    groups: tuple[str, ...]  # what the page's pattern matched in the address


def _page_of(path: str) -> _PageAnswer | None:
    """The page at ``path`` (as sent, not percent-decoded: app.js matches location.pathname)."""
    for page in PAGES:
        m = page.pattern.match(path)
        if m:
            return _PageAnswer(page, m.groups())
    return None


@dataclass(frozen=True)
class _FileAnswer:
    path: Path | str  # a local path or an object-store URI


class UIApp:
    """The UI's routes over one store, independent of the HTTP server (tests call it in-process).

    Args:
        store: An open store (the app only reads it).
        token: When set, every route needs ``Authorization: Bearer <token>``, a
            ``?token=<token>`` query parameter, or the cookie the latter sets.
        mlflow_url: The base URL of an MLflow UI, for links to a model's MLflow run.
    """

    def __init__(self, store: MetadataStore, *, token: str | None = None, mlflow_url: str | None = None) -> None:
        self.store = store
        self.token = token or None
        self.mlflow_url = mlflow_url or None
        self._assets: _Assets | None = None
        self._etags: dict[tuple, str] = {}
        self._api = [(route.pattern, route.handler) for route in ROUTES]

    # ------------------------------------------------------------------ dispatch

    def assets(self) -> _Assets:
        """The static files' version, index.html and each module's imports, redone when a file changes."""
        files = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
        signature = tuple((str(p), st.st_size, st.st_mtime_ns) for p in files for st in (p.stat(),))
        assets = self._assets
        if assets is None or assets.signature != signature:
            digest = hashlib.sha256()
            imports: dict[str, list[str]] = {}
            for p in files:
                rel, data = p.relative_to(STATIC_DIR).as_posix(), p.read_bytes()
                digest.update(rel.encode() + b"\0" + data + b"\0")
                if p.suffix == ".js":
                    imports[rel] = [posixpath.normpath(posixpath.join(posixpath.dirname(rel), m))
                                    for m in _IMPORT.findall(data.decode("utf-8"))]
            version = digest.hexdigest()[:16]
            page = (STATIC_DIR / "index.html").read_bytes().replace(b'"/static/', f'"/static/v-{version}/'.encode())
            assets = self._assets = _Assets(signature, version, page, imports)
        return assets

    def _page(self, answer: _PageAnswer, params: dict[str, list[str]]) -> bytes:
        """index.html, preloading the API answers the page starts with and the modules it runs."""
        assets, page = self.assets(), answer.page
        modules: list[str] = []

        def add(module: str) -> None:  # a module after those it imports
            if module not in modules and module in assets.imports:
                for dep in assets.imports[module]:
                    add(dep)
                modules.append(module)

        add("app.js")
        add(page.module)
        links = [f'<link rel="preload" as="fetch" crossorigin href="{html.escape(url)}">'
                 for url in page.first_requests(answer.groups, params)]
        links += [f'<link rel="modulepreload" href="/static/v-{assets.version}/{m}">' for m in modules]
        return assets.page.replace(_PRELOADS, "\n".join(links).encode())

    def _etag(self, path: Path, body: bytes) -> str:
        key = (str(path), len(body), path.stat().st_mtime_ns if path.exists() else 0)
        tag = self._etags.get(key)
        if tag is None:
            tag = self._etags[key] = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return tag

    def handle(self, method: str, target: str, headers: dict[str, str]) -> Response:
        """Answer one request (``headers`` with lower-case names)."""
        t0 = time.perf_counter()
        split = urlsplit(target)
        path = unquote(split.path) or "/"
        params = parse_qs(split.query, keep_blank_values=True)
        is_api = path.startswith("/api")
        extra: dict[str, str] = {}
        answer: Any = None
        html_page: bytes | None = None
        try:
            if method not in ("GET", "HEAD"):
                raise ApiError(405, f"{method} is not allowed: the metadata UI is read-only (GET only)")
            if self.token is not None:
                given = self._token_of(headers, params)
                if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                    raise ApiError(401, "this UI needs its token: open it with ?token=TOKEN once (a cookie keeps it), "
                                        "or send Authorization: Bearer TOKEN")
                if "token" in params:
                    extra["Set-Cookie"] = f"{TOKEN_COOKIE}={quote(self.token)}; Path=/; HttpOnly; SameSite=Strict"
                    if not is_api:  # drop the token from the address bar
                        rest = {k: v for k, v in params.items() if k != "token"}
                        location = split.path + ("?" + urlencode(rest, doseq=True) if rest else "")
                        return Response(303, b"", "text/plain", {**extra, "Location": location})
            if is_api:
                answer = self._api_answer(path, Query(params))
            elif path.startswith("/static/"):
                return self._static(path[len("/static/"):], extra, headers.get("if-none-match"))
            else:
                page = _page_of(split.path or "/")
                if page is None:
                    raise ApiError(404, f"no page {path}")
                html_page = self._page(page, params)
        except ApiError as err:
            return self._error(err.code, err.message, is_api, extra)
        except NotFoundError as err:
            return self._error(404, str(err), is_api, extra)
        except (InvalidArgumentError, ValueError) as err:
            return self._error(400, str(err), is_api, extra)
        except JfxError as err:
            log.exception("jfx ui: %s %s failed", method, target)
            return self._error(500, f"{type(err).__name__}: {err}", is_api, extra)
        except Exception as err:  # one bad page must not stop the server; the shape stays the same
            log.exception("jfx ui: %s %s failed", method, target)
            return self._error(500, f"internal error: {type(err).__name__}: {err}", is_api, extra)
        timing = {"Server-Timing": f"app;dur={(time.perf_counter() - t0) * 1000:.1f}", **extra}
        if html_page is not None:
            etag = '"' + hashlib.sha256(html_page).hexdigest()[:20] + '"'
            page_headers = {**timing, "Content-Security-Policy": _PAGE_CSP, "Cache-Control": "no-cache", "ETag": etag}
            if headers.get("if-none-match") == etag and not extra:
                return Response(304, b"", "text/html; charset=utf-8", page_headers)
            return Response(200, html_page, "text/html; charset=utf-8", page_headers)
        if isinstance(answer, _FileAnswer):
            return self._file(answer.path, timing)
        return Response(200, to_json_bytes(answer), "application/json", {**timing, "Cache-Control": "no-store"})

    def _token_of(self, headers: dict[str, str], params: dict[str, list[str]]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if params.get("token"):
            return params["token"][-1]
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no token
            return None
        morsel = cookie.get(TOKEN_COOKIE)
        return unquote(morsel.value) if morsel else None

    def _api_answer(self, path: str, query: Query) -> Any:
        for pattern, fn in self._api:
            m = pattern.match(path)
            if m:
                return fn(self, query, *m.groups())
        raise ApiError(404, f"no API route {path}; GET /api lists them")

    def _error(self, code: int, message: str, is_api: bool, extra: dict[str, str]) -> Response:
        """Every error, of pages and API alike, is ``{"error": {"code": ..., "message": ...}}``."""
        headers = {**extra, "Cache-Control": "no-store"}
        if code == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="jfx ui"'
        return Response(code, to_json_bytes({"error": {"code": code, "message": message}}), "application/json", headers)

    def _static(self, rel: str, extra: dict[str, str], if_none_match: str | None = None) -> Response:
        cache = "no-cache"
        versioned = _VERSIONED.match(rel)
        if versioned:  # an older version (a page loaded before a file changed) gets today's file, uncached
            rel = versioned.group(2)
            cache = _IMMUTABLE if versioned.group(1) == self.assets().version else "no-cache"
        root = STATIC_DIR
        target = (root / rel).resolve()
        if root not in target.parents or not target.is_file():
            return self._error(404, f"no static file {rel!r}", False, extra)
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".js":
            ctype = "text/javascript"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        body = target.read_bytes()
        etag = self._etag(target, body)
        headers = {**extra, "Cache-Control": cache, "ETag": etag}
        if if_none_match == etag:
            return Response(304, b"", ctype, headers)
        return Response(200, body, ctype, headers)

    def _file(self, path: Path | str, headers: dict[str, str]) -> Response:
        """A file (streamed from disk or the object store) or a folder's listing."""
        if not _files.is_file(path):
            if not _files.is_dir(path):
                raise ApiError(404, f"{path} does not exist")
            return Response(200, to_json_bytes({"directory": str(path), "entries": _files.entries(path)}),
                            "application/json", headers)
        name = _files.name_of(path)
        suffix = PurePosixPath(name).suffix
        size, first, rest = _files.stream(path)
        ctype = mimetypes.guess_type(name)[0]
        if suffix in _TEXT_SUFFIXES or (ctype is None and _looks_textual(first)):
            ctype = "text/plain" if suffix != ".json" else "application/json"
        ctype = ctype or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        return Response(200, first, ctype,
                        {**headers, "Content-Security-Policy": _FILE_CSP, "Cache-Control": "no-cache",
                         "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}"},
                        rest=rest, length=size)


def _looks_textual(data: bytes) -> bool:
    head = data[:4096]
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "jfx-ui"
    # Headers and body leave in one write (flushed after each request, which http.server does),
    # and with TCP_NODELAY: otherwise Nagle's algorithm holds a body sent after its headers until
    # the browser's delayed ACK of them, up to 40 ms on every keep-alive response.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's parameter name
        log.debug("%s - %s", self.address_string(), format % args)

    def _answer(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host", "").rsplit(":", 1)[0] if not headers.get("host", "").endswith("]") else headers["host"]
        if self.server.loopback_only and host and host.lower() not in _LOOPBACK_NAMES:
            # a page on another site resolving its own name to 127.0.0.1 (DNS rebinding) gets nothing
            response = self.server.app._error(403, f"Host {host!r} is not a loopback name", True, {})  # noqa: SLF001 - the app's own error page
        else:
            response = self.server.app.handle(self.command, self.path, headers)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        length = response.length if response.length is not None else len(response.body)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if self.command != "HEAD":
                self.wfile.write(response.body)
                for chunk in response.rest or ():
                    self.wfile.write(chunk)
        finally:
            close = getattr(response.rest, "close", None)
            if close is not None:
                close()  # the artifact file, when the client went away or it was a HEAD

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815 - http.server dispatches on do_<METHOD>


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: UIApp) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.loopback_only = address[0] in ("127.0.0.1", "localhost", "::1")


class UIServer:
    """``jfx ui``: the metadata UI served over HTTP.

    Args:
        metadata_url: The store (``None``: ``$JFX_METADATA_URL`` or the default SQLite file).
        host: Address to bind; 127.0.0.1 by default (this machine only).
        port: Port; 0 picks a free one.
        token: Protect every route with this token (see :class:`UIApp`).
        mlflow_url: Base URL of an MLflow UI, for links from models to their MLflow run.

    Example:
        >>> with UIServer("sqlite:////tmp/jfx-doc/metadata.sqlite", port=0) as ui:   # doctest: +SKIP
        ...     urllib.request.urlopen(ui.url + "api/runs").status
        200
    """

    def __init__(self, metadata_url: str | None = None, *, host: str = "127.0.0.1", port: int = 8080,
                 token: str | None = None, mlflow_url: str | None = None) -> None:
        self.store = open_store_read_only(metadata_url)
        self.app = UIApp(self.store, token=token, mlflow_url=mlflow_url)
        try:
            self._httpd = _HTTPServer((host, port), self.app)
        except OSError:
            self.store.close()
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])  # an IPv4 or IPv6 address
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{self.port}/"

    def start(self) -> UIServer:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="jfx-ui", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self.store.close()

    def __enter__(self) -> UIServer:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
