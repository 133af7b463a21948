"""A Kubeflow Pipelines API server (v2beta1) on loopback, for the submit and schedule tests.

It answers as the backend does where jfx depends on it: healthz with the release's tag_name and
multi_user (backend/src/apiserver/main.go); experiments refused without a namespace in multi-user
mode (server/experiment_server.go); pipelines, uploaded versions and their listing; runs; and
recurring runs (server/job_server.go): created with max_concurrency checked to 1-10 and, in
multi-user mode, refused without a namespace ("Recurring run has no namespace."), listed
(``recurringRuns``, the proto's field name; a namespace refused in single-user mode, required in
multi-user mode; paged), read, enabled (``:enable``), disabled (``:disable``) and deleted.
Every request is recorded with its headers and JSON body, as the kfp client sent it.
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_RECURRING = re.compile(r"^/apis/v2beta1/recurringruns/([^/:]+)(?::(enable|disable))?$")
_VERSIONS = re.compile(r"^/apis/v2beta1/pipelines/([^/]+)/versions$")


class FakeKfp:
    """A Kubeflow Pipelines API server (v2beta1) that records what the kfp client sends.

    ``tls`` (certificate file, key file) serves https. ``version`` is the healthz
    ``tag_name``; ``multi_user`` makes it refuse an experiment or a
    recurring run without a namespace as the backend does; ``credentials`` (a set of
    Authorization or Cookie header values) makes every route answer 401 without one of them.
    ``recurring`` holds the recurring runs by id, as the server would answer them.
    """

    def __init__(self, tls: tuple[str, str] | None = None):
        self.requests: list[tuple[str, str, dict, dict]] = []
        self.queries: list[tuple[str, dict]] = []
        self.experiments: dict[str, str] = {"Default": "exp-default"}
        self.pipelines: dict[str, str] = {}
        self.versions: list[dict] = []
        self.recurring: dict[str, dict] = {}
        self.version = "2.14.3"
        self.multi_user = False
        self.credentials: set[str] | None = None
        ids = itertools.count(1)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status, message, code):
                return self._reply({"error": message, "message": message, "code": code}, status)

            def _record(self, body):
                url = urlparse(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, url.path, headers, body))
                outer.queries.append((url.path, parse_qs(url.query)))
                return url

            def _refused(self):
                if outer.credentials is None:
                    return False
                sent = {self.headers.get("Authorization"), self.headers.get("Cookie")}
                if sent & outer.credentials:
                    return False
                self._reply({"error": "unauthenticated", "code": 16}, 401)
                return True

            def _recurring_run(self, path):
                found = _RECURRING.match(path)
                if not found:
                    return None, None
                return outer.recurring.get(found.group(1)), found

            def do_GET(self):
                url = self._record({})
                if self._refused():
                    return None
                query = parse_qs(url.query)
                if url.path == "/apis/v2beta1/healthz":
                    return self._reply({"commit_sha": "0123abc", "tag_name": outer.version,
                                        "multi_user": outer.multi_user, "pipeline_store": "database"})
                wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"] if "filter" in query else None
                if url.path == "/apis/v2beta1/experiments":
                    if wanted in outer.experiments:
                        return self._reply({"experiments": [{"experiment_id": outer.experiments[wanted],
                                                             "display_name": wanted}], "total_size": 1})
                    return self._reply({})
                if url.path == "/apis/v2beta1/pipelines":
                    if wanted in outer.pipelines:
                        return self._reply({"pipelines": [{"pipeline_id": outer.pipelines[wanted],
                                                           "display_name": wanted}], "total_size": 1})
                    return self._reply({})
                versions = _VERSIONS.match(url.path)
                if versions:
                    found = [{"pipeline_id": v["pipelineid"], "pipeline_version_id": v["id"], "display_name": v["name"]}
                             for v in outer.versions if v["pipelineid"] == versions.group(1)
                             and (wanted is None or v["name"] == wanted)]
                    return self._reply({"pipeline_versions": found, "total_size": len(found)} if found else {})
                if url.path == "/apis/v2beta1/recurringruns":
                    namespace = (query.get("namespace") or [""])[0]
                    if outer.multi_user and not namespace:
                        return self._error(400, "Invalid ListRecurringRuns request. No namespace provided in "
                                                "multi-user mode.", 3)
                    if not outer.multi_user and namespace:
                        return self._error(400, "Invalid ListRecurringRuns request. Namespace should not be "
                                                "provided in single-user mode.", 3)
                    listed = [r for r in outer.recurring.values()
                              if not namespace or r.get("namespace") == namespace]
                    start = int((query.get("page_token") or ["0"])[0] or 0)
                    size = int((query.get("page_size") or ["10"])[0])
                    page = listed[start:start + size]
                    body = {"recurringRuns": page, "total_size": len(listed)} if page else {}
                    if start + size < len(listed):
                        body["next_page_token"] = str(start + size)
                    return self._reply(body)
                run, found = self._recurring_run(url.path)
                if found and not found.group(2):
                    if run is None:
                        return self._error(404, f"Job {found.group(1)} not found", 5)
                    return self._reply(run)
                return self._reply({"error": "not found"}, 404)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                multipart = self.headers.get("Content-Type", "").startswith("multipart/form-data")
                body = {"multipart": raw.decode(errors="replace")} if multipart else json.loads(raw or b"{}")
                url = self._record(body)
                if self._refused():
                    return None
                if url.path == "/apis/v2beta1/experiments":
                    if outer.multi_user and not body.get("namespace"):
                        return self._reply({"error": "Invalid input error: An experiment cannot have an empty "
                                                     "namespace in multi-user mode", "code": 3}, 400)
                    outer.experiments[body["display_name"]] = f"exp-{len(outer.experiments)}"
                    return self._reply({"experiment_id": outer.experiments[body["display_name"]],
                                        "display_name": body["display_name"], "namespace": body.get("namespace")})
                if url.path == "/apis/v2beta1/pipelines":
                    outer.pipelines[body["display_name"]] = f"pipe-{len(outer.pipelines) + 1}"
                    return self._reply({"pipeline_id": outer.pipelines[body["display_name"]],
                                        "display_name": body["display_name"]})
                if url.path == "/apis/v2beta1/pipelines/upload_version":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    if any(v["name"] == query["name"] and v["pipelineid"] == query["pipelineid"]
                           for v in outer.versions):
                        return self._reply({"error": "Already exist error: a version of that name exists",
                                            "message": "a version of that name exists", "code": 6}, 409)
                    version = {**query, "id": f"ver-{len(outer.versions) + 1}", "file": body["multipart"]}
                    outer.versions.append(version)
                    return self._reply({"pipeline_id": query["pipelineid"], "pipeline_version_id": version["id"],
                                        "display_name": query["name"]})
                if url.path == "/apis/v2beta1/runs":
                    return self._reply({"run_id": "run-123", "display_name": body.get("display_name"),
                                        "experiment_id": body.get("experiment_id"), "state": "PENDING"})
                if url.path == "/apis/v2beta1/recurringruns":
                    concurrency = int(body.get("max_concurrency") or 0)
                    if not 1 <= concurrency <= 10:
                        return self._error(400, "Validate create job request failed: The max concurrency of the "
                                                f"recurring run is out of range. Support 1-10. Received {concurrency}.", 3)
                    if outer.multi_user and not body.get("namespace"):
                        return self._error(400, "Invalid input error: Recurring run has no namespace.", 3)
                    run_id = f"rr-{next(ids)}"
                    enabled = body.get("mode", "ENABLE") == "ENABLE"
                    outer.recurring[run_id] = {
                        **body, "recurring_run_id": run_id, "max_concurrency": str(concurrency),
                        "created_at": "2026-12-06T00:00:00Z", "status": "ENABLED" if enabled else "DISABLED"}
                    return self._reply(outer.recurring[run_id])
                run, found = self._recurring_run(url.path)
                if found and found.group(2):
                    if run is None:
                        return self._error(404, f"Job {found.group(1)} not found", 5)
                    enable = found.group(2) == "enable"
                    run["mode"], run["status"] = ("ENABLE", "ENABLED") if enable else ("DISABLE", "DISABLED")
                    return self._reply({})
                return self._reply({"error": "not found"}, 404)

            def do_DELETE(self):
                url = self._record({})
                if self._refused():
                    return None
                run, found = self._recurring_run(url.path)
                if found and not found.group(2):
                    if run is None:
                        return self._error(404, f"Job {found.group(1)} not found", 5)
                    del outer.recurring[found.group(1)]
                    return self._reply({})
                return self._reply({"error": "not found"}, 404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:  # (certificate chain file, key file): serve https
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self, path):
        return [r for r in self.requests if r[0] == "POST" and r[1] == path]

    def created(self):
        return [r for r in self.requests if r[0] == "POST"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# The environment that would point the kfp client elsewhere (a context file in $HOME, tokens).
KFP_ENV = ("KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_TOKEN", "KF_PIPELINES_COOKIES",
           "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_UI_ENDPOINT")
