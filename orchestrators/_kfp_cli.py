"""What ``jfx compile``, ``jfx submit`` and ``jfx run --runner kfp-local`` do (their flags are in cli.py).

    jfx compile PIPELINE_FILE --target kubeflow --image IMAGE -o pipeline.yaml
        [--pipeline-root DIR] [--metadata-url URL] [--volume MOUNT=PVC ...]
        [--metadata-secret SECRET:KEY] [--env K=V ...] [--local]
        [--s3-secret SECRET[:ACCESS_KEY_KEY:SECRET_KEY_KEY]] [--s3-endpoint URL] [--gcs-secret SECRET[:KEY]]
        [--secret-env ENV=SECRET:KEY ...]
    jfx submit pipeline.yaml --host URL [--experiment NAME] [--param k=v ...] [--run-name NAME]
        [--token-file FILE] [--cookies-file FILE] [--ssl-ca-cert FILE] [--namespace NS]
        [--pipeline-name NAME] [--pipeline-version NAME]
        [--no-cache] [--from NODE] [--to NODE] [--from-run RUN_ID]
        [--schedule CRON [--max-concurrency N] [--no-catchup] [--start-time ISO] [--end-time ISO]]
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jfx.orchestrators._kubeflow import SubmittedRun

__all__ = ["LOCAL_IMAGE", "CheckedPackage", "KfpLocalRunner", "check_backend_version", "check_no_password",
           "check_package", "check_submitted_values", "cmd_compile", "cmd_submit", "connect", "credentials",
           "server_info", "submit_package"]

# The image named in a spec compiled for kfp.local: tasks run in this Python, not in it.
LOCAL_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}"


def _pairs(items: Sequence[str], flag: str, sep: str = "=") -> dict[str, str]:
    from jfx.errors import InvalidArgumentError

    found: dict[str, str] = {}
    for item in items:
        key, ok, value = item.partition(sep)
        if not ok or not key.strip() or not value:
            raise InvalidArgumentError(f"{flag} {item!r}: expected KEY{sep}VALUE")
        found[key.strip()] = value
    return found


def cmd_compile(file: str, *, output: str, image: str | None = None, pipeline_root: str | None = None,
                metadata_url: str | None = None, volumes: Sequence[str] = (), metadata_secret: str | None = None,
                env: Sequence[str] = (), local: bool = False, s3_secret: str | None = None,
                s3_endpoint: str | None = None, gcs_secret: str | None = None,
                secret_env: Sequence[str] = ()) -> int:
    """``jfx compile``: the flags' values, as given (``volumes``, ``env`` and ``secret_env`` as ``KEY=VALUE``)."""
    from jfx.errors import InvalidArgumentError
    from jfx.orchestrators._kubeflow import KubeflowDagRunner
    from jfx.pipelines import load_pipeline

    if not image and not local:
        raise InvalidArgumentError("jfx compile --target kubeflow needs --image IMAGE (the jfx image the tasks run in)")
    secret = None
    if metadata_secret:
        name, ok, key = metadata_secret.partition(":")
        if not ok or not name or not key:
            raise InvalidArgumentError(f"--metadata-secret {metadata_secret!r}: expected SECRET:KEY")
        secret = (name, key)
    s3: str | tuple[str, str, str] | None = None
    if s3_secret:
        parts = s3_secret.split(":")
        if len(parts) == 1 and parts[0]:
            s3 = parts[0]
        elif len(parts) == 3 and all(parts):
            s3 = (parts[0], parts[1], parts[2])
        else:
            raise InvalidArgumentError(f"--s3-secret {s3_secret!r}: expected SECRET or SECRET:ACCESS_KEY_KEY:SECRET_KEY_KEY")
    gcs: str | tuple[str, str] | None = None
    if gcs_secret:
        name, ok, key = gcs_secret.partition(":")
        if not name or (ok and not key):
            raise InvalidArgumentError(f"--gcs-secret {gcs_secret!r}: expected SECRET or SECRET:KEY")
        gcs = (name, key) if ok else name
    from_secrets: dict[str, tuple[str, str]] = {}
    for variable, source in _pairs(secret_env, "--secret-env").items():
        name, ok, key = source.partition(":")
        if not ok or not name or not key:
            raise InvalidArgumentError(f"--secret-env {variable}={source}: expected ENV=SECRET:KEY")
        from_secrets[variable] = (name, key)
    runner = KubeflowDagRunner(image or LOCAL_IMAGE, pipeline_root=pipeline_root,
                               metadata_url=metadata_url, local=local,
                               volumes=_pairs(volumes, "--volume"), metadata_secret=secret,
                               env=_pairs(env, "--env"), s3_secret=s3, s3_endpoint=s3_endpoint, gcs_secret=gcs,
                               secret_env=from_secrets)
    pipeline = load_pipeline(file)
    path = runner.compile(pipeline, output)
    ir = pipeline.compile()
    print(f"compiled pipeline {ir.name} ({len(ir.nodes)} nodes) for Kubeflow Pipelines: {path}")
    print(f"submit it with: jfx submit {path} --host URL")
    return 0


def cmd_submit(package: str, *, host: str, params: Sequence[str] = (), experiment: str | None = None,
               run_name: str | None = None, token: str | None = None, namespace: str | None = None,
               enable_cache: bool = True, from_nodes: Sequence[str] | None = None,
               to_nodes: Sequence[str] | None = None, from_run: str | None = None,
               token_file: str | None = None, cookies: str | None = None, cookies_file: str | None = None,
               ssl_ca_cert: str | None = None, pipeline_name: str | None = None,
               pipeline_version: str | None = None, schedule: str | None = None,
               max_concurrency: int | None = None, no_catchup: bool = False, start_time: str | None = None,
               end_time: str | None = None) -> int:
    """``jfx submit``: the flags' values, as given (``params`` as ``KEY=VALUE`` strings).

    With ``schedule`` (a cron expression) it creates a recurring run instead of a run
    (:func:`jfx.orchestrators._kfp_schedule.create_schedule`).
    """
    from jfx.errors import InvalidArgumentError

    if not schedule:
        given = [flag for flag, value in (("--max-concurrency", max_concurrency is not None),
                                          ("--no-catchup", no_catchup), ("--start-time", start_time),
                                          ("--end-time", end_time)) if value]
        if given:
            raise InvalidArgumentError(f"{', '.join(given)}: for a recurring run; add --schedule CRON")

    values: dict[str, Any] = _pairs(params, "--param")
    if not enable_cache:
        values["jfx_enable_cache"] = "false"
    if from_nodes:
        values["jfx_from_nodes"] = list(from_nodes)
    if to_nodes:
        values["jfx_to_nodes"] = list(to_nodes)
    if from_run:
        values["jfx_from_run"] = from_run
    token, cookies = credentials(token=token, token_file=token_file, cookies=cookies, cookies_file=cookies_file)
    if schedule:
        from jfx.orchestrators._kfp_schedule import cmd_submit_schedule

        return cmd_submit_schedule(
            package, schedule, host=host, values=values, experiment=experiment, name=run_name,
            pipeline_name=pipeline_name, pipeline_version=pipeline_version,
            max_concurrency=1 if max_concurrency is None else max_concurrency, no_catchup=no_catchup,
            start_time=start_time, end_time=end_time, token=token, namespace=namespace, cookies=cookies,
            ssl_ca_cert=ssl_ca_cert)
    run = submit_package(package, host, experiment=experiment, params=values, run_name=run_name, token=token,
                         namespace=namespace, cookies=cookies, ssl_ca_cert=ssl_ca_cert,
                         pipeline_name=pipeline_name, pipeline_version=pipeline_version)
    print(f"submitted run {run.run_id}")
    print(f"  url:     {run.url}")
    print(f"  jfx run: {run.jfx_run_id}  (jfx runs show {run.jfx_run_id}, against the pipeline's metadata database)")
    return 0


# ---------------------------------------------------------------------- submit

TOKEN_ENV = "KF_PIPELINES_TOKEN"               # a bearer token for the Kubeflow Pipelines API
COOKIES_ENV = "KF_PIPELINES_COOKIES"           # session cookies (name=value; name2=value2)
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"    # kfp's own: a service-account token file, read per request
EXPERIMENT_ENV = "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME"  # kfp's own


def credentials(*, token: str | None = None, token_file: str | None = None, cookies: str | None = None,
                cookies_file: str | None = None) -> tuple[str | None, str | None]:
    """The token and cookies that the connection flags give (a file's content; a warning for a value on the line)."""
    from jfx.errors import InvalidArgumentError

    if token and token_file:
        raise InvalidArgumentError("--token and --token-file: give one of them")
    if cookies and cookies_file:
        raise InvalidArgumentError("--cookies and --cookies-file: give one of them")
    for flag, value, instead in (("--token", token, f"--token-file FILE or ${TOKEN_ENV}"),
                                 ("--cookies", cookies, f"--cookies-file FILE or ${COOKIES_ENV}")):
        if value:
            print(f"jfx: warning: {flag} shows in process lists and shell history; use {instead}", file=sys.stderr)
    if token_file:
        token = read_secret_file(token_file, "--token-file")
    if cookies_file:
        cookies = read_secret_file(cookies_file, "--cookies-file")
    return token, cookies


def read_secret_file(path: str, flag: str) -> str:
    """The stripped content of a token or cookie file (one line naming ``flag`` if it cannot be read)."""
    from pathlib import Path

    from jfx.errors import InvalidArgumentError

    try:
        text = Path(path).expanduser().read_text().strip()
    except OSError as err:
        raise InvalidArgumentError(f"{flag} {path}: cannot be read ({err.strerror or err})") from None
    if not text:
        raise InvalidArgumentError(f"{flag} {path}: the file is empty")
    return text


def check_backend_version(version: str) -> None:
    """Refuse a backend older than the spec needs (see :func:`jfx.orchestrators._kubeflow.check_backend_version`)."""
    from jfx.orchestrators._kubeflow import check_backend_version as check

    check(version)


def server_info(host: str, *, token: str | None = None, cookies: str | None = None,
                ssl_ca_cert: str | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """What the Kubeflow Pipelines API server at ``host`` says of itself (``GET /apis/v2beta1/healthz``).

    The server answers ``tag_name`` (its release), ``commit_sha`` and ``multi_user``
    (kubeflow/pipelines ``backend/src/apiserver/main.go``, 2.14.0); kfp's
    ``Client.get_kfp_healthz()`` keeps only ``multi_user`` and ``pipeline_store``, so the
    endpoint is read here, with the same credentials the client sends.

    Raises:
        InvalidArgumentError: the server cannot be reached, refuses the credentials, or is
            not a Kubeflow Pipelines v2 API (one line naming ``--host``).
    """
    import json
    import ssl
    import urllib.error
    import urllib.request

    from jfx.errors import InvalidArgumentError

    url = f"{host}/apis/v2beta1/healthz"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookies:
        headers["Cookie"] = cookies
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # as kfp's client: no proxy from the environment
    if ssl_ca_cert:
        try:
            context = ssl.create_default_context(cafile=ssl_ca_cert)
        except (ssl.SSLError, ValueError) as err:
            raise InvalidArgumentError(f"--ssl-ca-cert {ssl_ca_cert}: not a PEM bundle of CA certificates "
                                       f"({getattr(err, 'reason', None) or err})") from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise InvalidArgumentError(
                f"--host {host}: the server refused the credentials (HTTP {err.code}); give a token (--token-file, "
                f"${TOKEN_ENV}, ${SA_TOKEN_ENV}) or session cookies (--cookies-file, ${COOKIES_ENV})") from None
        if err.code == 404:
            raise InvalidArgumentError(f"--host {host}: no Kubeflow Pipelines v2 API there ({url}: HTTP 404)") from None
        raise InvalidArgumentError(f"--host {host}: {url} answered HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        if isinstance(reason, ssl.SSLCertVerificationError):
            why = getattr(reason, "verify_message", None) or reason.reason or "certificate verify failed"
            fix = (f"is it the CA that signed the server's certificate, for this host name? (--ssl-ca-cert "
                   f"{ssl_ca_cert})" if ssl_ca_cert else
                   "if a private CA signed it, give that CA's certificate with --ssl-ca-cert FILE")
            raise InvalidArgumentError(f"--host {host}: certificate verify failed: the server's TLS certificate is "
                                       f"not trusted ({why}); {fix}") from None
        raise InvalidArgumentError(f"--host {host}: cannot reach the Kubeflow Pipelines API ({reason})") from None
    try:
        info = json.loads(body)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise InvalidArgumentError(
            f"--host {host}: {url} did not answer JSON, so it is not the Kubeflow Pipelines API (a login page? "
            f"give a token or session cookies: --token-file, --cookies-file)")
    return info


def submit_package(package: str, host: str, *, experiment: str | None = None,
                   params: Mapping[str, Any] | None = None, run_name: str | None = None,
                   token: str | None = None, namespace: str | None = None, cookies: str | None = None,
                   ssl_ca_cert: str | None = None, pipeline_name: str | None = None,
                   pipeline_version: str | None = None) -> SubmittedRun:
    """Create a run of a compiled spec on the Kubeflow Pipelines server at ``host``.

    Before anything is created: the parameters are checked against the spec (an
    overridden pipeline root, metadata URL or path parameter is checked as at compile
    time), the server is asked its version (older than ``_kubeflow.MIN_BACKEND_VERSION``:
    refused) and whether it is multi-user (then ``namespace`` is required).

    Args:
        token: a bearer token; default ``$KF_PIPELINES_TOKEN``, else the service-account
            token file named by ``$KF_PIPELINES_SA_TOKEN_PATH``, else kfp's own settings.
        namespace: the namespace of a multi-user installation; sent only when given.
        cookies: session cookies (``name=value; ...``); default ``$KF_PIPELINES_COOKIES``.
        ssl_ca_cert: a CA bundle that signs the server's certificate.
        pipeline_name, pipeline_version: upload the spec as a version of this pipeline
            (created if missing; default name: the spec's pipeline) and run that version,
            so runs group under the pipeline and can be scheduled from it. Either one
            turns this on; the version's default name is the run's name.
        run_name: default ``<pipeline>-<UTC time>``.

    Returns:
        the run's Kubeflow id, its UI address, its jfx run id and its experiment.
    """
    from datetime import datetime, timezone

    from jfx.orchestrators._kubeflow import SubmittedRun

    checked = check_package(package, params)
    run_name = run_name or f"{checked.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    with connect(host, token=token, cookies=cookies, ssl_ca_cert=ssl_ca_cert, namespace=namespace) as client:
        experiment_id = experiment_id_for(client, experiment, namespace)
        run_options: dict[str, Any] = {"pipeline_package_path": package}
        if pipeline_name or pipeline_version:
            pipeline_id = _pipeline_id(client, pipeline_name or checked.name, namespace)
            uploaded = client.upload_pipeline_version(package, pipeline_version or run_name, pipeline_id=pipeline_id)
            run_options = {"pipeline_id": pipeline_id, "version_id": uploaded.pipeline_version_id}
        result = client.run_pipeline(experiment_id, run_name, params=checked.arguments, **run_options)
    url = f"{ui_prefix(client)}/#/runs/details/{result.run_id}"
    jfx_run_id = str(checked.arguments.get("jfx_run_id") or "") or f"{checked.name}-kfp-{result.run_id}"
    return SubmittedRun(result.run_id, url, jfx_run_id, getattr(result, "experiment_id", None) or experiment_id)


@dataclass(frozen=True)
class CheckedPackage:
    """A compiled spec and the values given for a run of it, checked (:func:`check_package`)."""

    spec: dict[str, Any]
    name: str  # the pipeline's name (its display name)
    arguments: dict[str, Any]  # parameter values, typed as the spec declares


def check_package(package: str, params: Mapping[str, Any] | None) -> CheckedPackage:
    """Read the compiled spec at ``package`` and check the values given for its parameters.

    Raises:
        InvalidArgumentError: no such file, not a spec, an unknown parameter, a value of
            the wrong type, an unknown node of a partial run, or a value the pods could
            not use (:func:`check_submitted_values`).
    """
    from pathlib import Path

    from jfx.errors import InvalidArgumentError
    from jfx.orchestrators._kubeflow import RESERVED_PARAMETERS, _parse_kfp_value, _read_spec, _spec_ir

    if not Path(package).is_file():
        raise InvalidArgumentError(f"{package}: no such compiled pipeline file")
    spec = _read_spec(package)
    info = spec.get("pipelineInfo", {})
    name = info.get("displayName") or info.get("name", "")
    inputs = (spec.get("root", {}).get("inputDefinitions", {}) or {}).get("parameters", {}) or {}
    arguments = dict(params or {})
    unknown = set(arguments) - set(inputs)
    if unknown:
        raise InvalidArgumentError(
            f"{package}: the pipeline has no parameter(s) {', '.join(sorted(unknown))}; its parameters: "
            f"{', '.join(k for k in inputs if k not in RESERVED_PARAMETERS) or '(none)'}"
        )
    arguments = {k: _parse_kfp_value(k, v, inputs[k].get("parameterType", "STRING")) for k, v in arguments.items()}
    if arguments.get("jfx_from_nodes") or arguments.get("jfx_to_nodes"):
        _spec_ir(spec, package).select(list(arguments.get("jfx_from_nodes") or []),
                                       list(arguments.get("jfx_to_nodes") or []))  # unknown node ids raise here
    elif arguments.get("jfx_from_run"):
        raise InvalidArgumentError("--from-run needs --from or --to: only a partial run reuses an earlier run")
    check_submitted_values(package, spec, arguments)
    return CheckedPackage(spec, name, arguments)


@contextlib.contextmanager
def connect(host: str, *, token: str | None = None, cookies: str | None = None, ssl_ca_cert: str | None = None,
            namespace: str | None = None) -> Iterator[Any]:
    """A ``kfp.Client`` for the server at ``host``, once the server has said it is one jfx can use.

    The server is asked its version first (older than ``MIN_BACKEND_VERSION``: refused)
    and whether it is multi-user (then ``namespace`` is required). Inside the block,
    kfp's printed links and FutureWarnings are silenced, and a refusal by the server
    (``kfp_server_api.ApiException``) becomes one line naming ``--host``.

    Args:
        token: default ``$KF_PIPELINES_TOKEN``, else the service-account token file named
            by ``$KF_PIPELINES_SA_TOKEN_PATH``, else kfp's own settings.
        cookies: default ``$KF_PIPELINES_COOKIES``.

    Raises:
        InvalidArgumentError: a malformed ``--host``, a missing CA file, an empty namespace,
            an unreachable, old or multi-user server (without a namespace), or the
            server's refusal of a request made in the block.
    """
    import io
    import re
    import warnings
    from pathlib import Path

    from jfx.errors import InvalidArgumentError

    if not host or not re.match(r"^https?://", host):
        raise InvalidArgumentError(f"--host {host!r}: expected the Kubeflow Pipelines address, e.g. http://localhost:8080")
    host = host.rstrip("/")
    if ssl_ca_cert and not Path(ssl_ca_cert).is_file():
        raise InvalidArgumentError(f"--ssl-ca-cert {ssl_ca_cert}: no such file")
    if namespace is not None and not namespace.strip():
        raise InvalidArgumentError("--namespace '': name a namespace, or leave the flag out")
    token = token or os.environ.get(TOKEN_ENV) or None
    cookies = cookies or os.environ.get(COOKIES_ENV) or None
    sa_token_path = os.environ.get(SA_TOKEN_ENV) if not token else None
    probe_token = read_secret_file(sa_token_path, f"${SA_TOKEN_ENV}") if sa_token_path else token
    about = server_info(host, token=probe_token, cookies=cookies, ssl_ca_cert=ssl_ca_cert)
    version = str(about.get("tag_name") or "")
    if version and version != "unknown":
        check_backend_version(version)
    else:
        from jfx.orchestrators._kubeflow import MIN_BACKEND_VERSION

        print(f"jfx: warning: the Kubeflow Pipelines server at {host} does not say its version; jfx pipelines need "
              f"{MIN_BACKEND_VERSION} or later", file=sys.stderr)
    if about.get("multi_user") and not namespace:
        raise InvalidArgumentError(
            f"the Kubeflow Pipelines server at {host} runs in multi-user mode: give your profile's namespace with "
            "--namespace NS (the server refuses an experiment without one)")

    import kfp
    import kfp_server_api
    from kfp.client import set_volume_credentials

    options: dict[str, Any] = {"host": host, "cookies": cookies, "ssl_ca_cert": ssl_ca_cert}
    if token:
        options["existing_token"] = token
    elif sa_token_path:
        options["credentials"] = set_volume_credentials.ServiceAccountTokenVolumeCredentials(sa_token_path)
    if namespace:
        options["namespace"] = namespace
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # kfp prints its own links
            warnings.simplefilter("ignore", FutureWarning)
            yield kfp.Client(**options)
    except kfp_server_api.ApiException as err:
        raise InvalidArgumentError(f"--host {host}: the server refused: {_api_error(err)}") from None


def ui_prefix(client: Any) -> str:
    """The Kubeflow Pipelines UI's address, for links to runs and recurring runs."""
    return str(client._get_url_prefix())  # noqa: SLF001 - kfp.Client has no public accessor for its UI address


def experiment_id_for(client: Any, experiment: str | None, namespace: str | None) -> str:
    """The id of the experiment ``experiment`` (default ``$KF_PIPELINES_DEFAULT_EXPERIMENT_NAME``, else Default)."""
    return _experiment_id(client, experiment or os.environ.get(EXPERIMENT_ENV) or "Default", namespace)


def _name_filter(name: str) -> str:
    import json

    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def _experiment_id(client: Any, name: str, namespace: str | None) -> str:
    """The id of the experiment ``name``, created if missing; the namespace is sent only when given."""
    import kfp_server_api

    found = client.experiments.experiment_service_list_experiments(filter=_name_filter(name), namespace=namespace)
    if found.experiments:
        return str(found.experiments[0].experiment_id)
    body = kfp_server_api.V2beta1Experiment(display_name=name, namespace=namespace)  # None is left out of the body
    return str(client.experiments.experiment_service_create_experiment(experiment=body).experiment_id)


def _pipeline_id(client: Any, name: str, namespace: str | None) -> str:
    """The id of the pipeline ``name``, created (without a version) if missing."""
    import kfp_server_api

    found = client.pipelines.pipeline_service_list_pipelines(filter=_name_filter(name), namespace=namespace)
    if found.pipelines:
        return str(found.pipelines[0].pipeline_id)
    body = kfp_server_api.V2beta1Pipeline(display_name=name, namespace=namespace)
    return str(client.pipelines.pipeline_service_create_pipeline(pipeline=body).pipeline_id)


def _api_error(err: Any) -> str:
    """One line from a kfp_server_api.ApiException: the status and the server's message."""
    import json

    message = ""
    try:
        body = json.loads(err.body or "{}")
        message = str(body.get("message") or body.get("error") or "")
    except (TypeError, ValueError, AttributeError):
        message = str(err.body or "")
    return " ".join(f"HTTP {err.status} {err.reason or ''} {message}".split())


def check_submitted_values(package: str, spec: Mapping[str, Any], arguments: Mapping[str, Any]) -> None:
    """Check at submit time what the values given for a run change, as compile time checks the spec.

    A spec compiled with ``--local`` is refused; the metadata URL (the spec's and a
    ``jfx_metadata_url`` given) must carry no password and be a server the pods reach; a
    ``jfx_pipeline_root`` given must be on an object store or under a mounted volume; and
    a runtime parameter given is checked like its default at compile time (a local path
    the pods cannot see is refused).

    Raises:
        InvalidArgumentError: one line naming the parameter.
    """
    import dataclasses

    from jfx import _storage as storage
    from jfx.errors import InvalidArgumentError
    from jfx.orchestrators._kfp_code import UPLOADED_PARAMETERS, _is_uri, _under, prepare_for_cluster
    from jfx.orchestrators._kubeflow import _check_cluster_root, _check_cluster_url, _spec_ir

    if _spec_constant(spec, "jfx_runner") == "kfp-local":
        raise InvalidArgumentError(f"{package}: compiled with --local, for kfp.local on this machine; compile it "
                                   "without --local to run it on a Kubeflow cluster")
    inputs = (spec.get("root", {}).get("inputDefinitions", {}) or {}).get("parameters", {}) or {}
    compiled_url = (inputs.get("jfx_metadata_url") or {}).get("defaultValue") or ""
    if compiled_url:
        check_no_password(compiled_url, f"{package}: the compiled-in metadata URL")
    url = arguments.get("jfx_metadata_url")
    mounts = _spec_mounts(spec, package)
    root = arguments.get("jfx_pipeline_root")
    try:
        if url:
            check_no_password(str(url), "--param jfx_metadata_url")
            _check_cluster_url(str(url))
        if root:
            if storage.is_remote(str(root)):
                storage.check_uri(str(root))
            else:
                _check_cluster_root(str(root), dict.fromkeys(mounts, ""))
    except InvalidArgumentError as err:
        message = str(err)
        if not message.startswith("--param"):
            which = "jfx_pipeline_root" if root and str(root) in message else "jfx_metadata_url"
            message = f"--param {which}: {message}"
        raise InvalidArgumentError(message) from None
    ir = _spec_ir(spec, package)
    given = {k: v for k, v in arguments.items() if k in ir.parameters}
    if not given:
        return
    params = {k: dataclasses.replace(p, default=given[k]) if k in given else p for k, p in ir.parameters.items()}
    nodes = tuple(dataclasses.replace(n, parameters={k: p for k, p in n.parameters.items() if p.runtime in given})
                  for n in ir.nodes)
    for node in nodes:
        for key, p in node.parameters.items():
            value = given[str(p.runtime)]
            if key in UPLOADED_PARAMETERS and isinstance(value, str) and value and not _is_uri(value) \
                    and not _under(os.path.abspath(os.path.expanduser(value)), mounts):
                raise InvalidArgumentError(
                    f"node {node.id!r}: parameter {key}={value!r} (from --param {p.runtime}) is a local path; files "
                    "are uploaded at compile time only: give its object-store URI or a path under a mounted volume")
    try:
        prepare_for_cluster(dataclasses.replace(ir, parameters=params, nodes=nodes), "", upload=False, check=True,
                            volumes=mounts)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(str(err).replace("(the default of runtime parameter ", "(from --param ")) from None


def check_no_password(url: str, where: str) -> None:
    """Refuse a database URL that carries a password (it would show in the Kubeflow UI and every task's log).

    Example:
        >>> check_no_password("postgresql+psycopg://jfx@db/jfx", "--metadata-url")
        >>> check_no_password("postgresql+psycopg://jfx:hunter2@db/jfx", "--metadata-url")
        Traceback (most recent call last):
        ...
        jfx.errors.InvalidArgumentError: --metadata-url 'postgresql+psycopg://jfx:***@db/jfx' carries a password...
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from jfx.errors import InvalidArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # not a database URL: the URL check names it
    if parsed.password:
        raise InvalidArgumentError(
            f"{where} {parsed.render_as_string(hide_password=True)!r} carries a password, which would show in the "
            "Kubeflow UI, the run's spec and every task's log; put the URL in a Kubernetes secret and compile with "
            "--metadata-secret SECRET:KEY")


def _spec_constant(spec: Mapping[str, Any], name: str) -> Any:
    """The constant a node task passes as input ``name`` (None if no task does)."""
    for comp in (spec.get("components") or {}).values():
        for task in ((comp.get("dag") or {}).get("tasks") or {}).values():
            value = ((task.get("inputs") or {}).get("parameters") or {}).get(name, {}).get("runtimeValue", {})
            if "constant" in value:
                return value["constant"]
    for comp in (spec.get("root", {}).get("dag") or {}).get("tasks", {}).values():
        value = ((comp.get("inputs") or {}).get("parameters") or {}).get(name, {}).get("runtimeValue", {})
        if "constant" in value:
            return value["constant"]
    return None


def _spec_mounts(spec: Mapping[str, Any], package: str) -> tuple[str, ...]:
    """The mount paths of the volumes the spec's tasks mount (kfp-kubernetes ``pvcMount``)."""
    import yaml

    mounts: set[str] = set()
    with open(package) as fh:
        for doc in yaml.safe_load_all(fh):
            if not isinstance(doc, dict):
                continue
            kubernetes = (doc.get("platforms") or {}).get("kubernetes") or {}
            for executor in ((kubernetes.get("deploymentSpec") or {}).get("executors") or {}).values():
                mounts.update(m["mountPath"] for m in executor.get("pvcMount") or [] if m.get("mountPath"))
    return tuple(sorted(mounts))


class KfpLocalRunner:
    """``jfx run --runner kfp-local``: compile the pipeline and run the spec with kfp.local.

    A :class:`~jfx.orchestrators._run.Runner`: each task's log goes to
    ``$JFX_HOME/kfp-local/<run id>.log``, named on standard error.
    """

    def __init__(self, *, metadata_url: str | None = None, pipeline_root: str | None = None) -> None:
        from jfx.orchestrators._kubeflow import KubeflowDagRunner

        self.runner = KubeflowDagRunner(LOCAL_IMAGE, pipeline_root=pipeline_root, metadata_url=metadata_url,
                                        local=True)

    def run(
        self,
        pipeline: Any,
        *,
        parameters: dict[str, Any] | None = None,
        enable_cache: bool = True,
        run_id: str | None = None,
        resume_run_id: str | None = None,
        from_nodes: list[str] | None = None,
        to_nodes: list[str] | None = None,
        from_run: str | None = None,
    ) -> Any:
        """Run ``pipeline`` with kfp.local (see :meth:`KubeflowDagRunner.run`)."""
        from jfx._config import jfx_home
        from jfx.errors import InvalidArgumentError
        from jfx.orchestrators._run import as_ir, new_run_id

        if resume_run_id:
            raise InvalidArgumentError("--resume runs on the local and beam runners; drop --runner kfp-local")
        ir = as_ir(pipeline)
        run_id = run_id or new_run_id(ir.name)
        log = jfx_home() / "kfp-local" / f"{run_id}.log"
        print(f"compiling {ir.name} for Kubeflow and running it with kfp.local; task logs: {log}", file=sys.stderr)
        return self.runner.run(ir, parameters=parameters, enable_cache=enable_cache, from_nodes=from_nodes,
                               to_nodes=to_nodes, from_run=from_run, run_id=run_id, log=log)
