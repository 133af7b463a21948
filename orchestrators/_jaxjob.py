"""A Trainer's ``workers`` on Kubeflow: the pods of a JAXJob (Kubeflow Training Operator).

When a pipeline compiled by :class:`~jfx.orchestrators.KubeflowDagRunner` has a Trainer
with ``workers=N`` (N > 1), the Trainer's task carries a JAXJob pod template
(:func:`worker_template`, in the task's environment as ``JFX_JAXJOB_TEMPLATE``). At run
time the Trainer, in that task's pod, writes the workers' spec to the pipeline root's
volume, creates the JAXJob (:func:`run_jaxjob`: N ``Worker`` replicas running
``python -m jfx.components._trainer_worker <folder>``, through the Kubernetes API with
the pod's service account), waits for it and deletes it. The Training Operator gives
each pod ``COORDINATOR_ADDRESS``/``COORDINATOR_PORT``/``NUM_PROCESSES``/``PROCESS_ID``
(worker 0 is the coordinator), which :meth:`jfx.core.Distributed.from_env` reads. A
failed JAXJob fails the Trainer with the operator's reason; a Trainer stopped (or
timed out) deletes its JAXJob, and the pods with it.

Not run against a cluster here: the manifest and the compiled spec are checked by
tests; the API calls follow the Training Operator's v1 API (``kubeflow.org/v1``,
``jaxjobs``).
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jfx.errors import ComponentError

__all__ = ["LAUNCHER_ENV", "TEMPLATE_ENV", "jaxjob_manifest", "run_jaxjob", "worker_template"]

LAUNCHER_ENV = "JFX_TRAINER_LAUNCHER"  # "jaxjob" in a Trainer task compiled with workers
TEMPLATE_ENV = "JFX_JAXJOB_TEMPLATE"
PORT = 6666  # the Training Operator's default JAX coordinator port (port name "jaxjob-port")
_SA = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def worker_template(image: str, *, env: Mapping[str, str], secret_env: Mapping[str, tuple[str, str]],
                    volumes: Mapping[str, str], resources: Mapping[str, Any],
                    accelerator_type: str = "nvidia.com/gpu") -> dict[str, Any]:
    """The pod template of every worker: the pipeline's image, environment, secrets,
    volumes and the Trainer node's ``with_resources`` (per worker)."""
    container: dict[str, Any] = {
        "name": "jax",  # the container the Training Operator configures
        "image": image,
        "ports": [{"name": "jaxjob-port", "containerPort": PORT}],
        "env": [{"name": k, "value": v} for k, v in env.items()]
        + [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}} for k, (s, key) in secret_env.items()],
        "volumeMounts": [{"name": f"jfx-volume-{i}", "mountPath": mount} for i, mount in enumerate(volumes)],
    }
    limits: dict[str, str] = {}
    if resources.get("cpu") is not None:
        limits["cpu"] = str(resources["cpu"])
    if resources.get("memory") is not None:
        limits["memory"] = str(resources["memory"])
    if resources.get("gpu"):
        limits[str(resources.get("accelerator") or accelerator_type)] = str(int(resources["gpu"]))
    if limits:
        container["resources"] = {"requests": dict(limits), "limits": limits}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": f"jfx-volume-{i}", "persistentVolumeClaim": {"claimName": claim}}
                    for i, claim in enumerate(volumes.values())],
    }
    if resources.get("node_selector"):
        spec["nodeSelector"] = dict(resources["node_selector"])
    if resources.get("tolerations"):
        spec["tolerations"] = list(resources["tolerations"])
    return {"spec": spec}


def jaxjob_manifest(name: str, template: Mapping[str, Any], workers: int, command: Sequence[str],
                    labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JAXJob: ``workers`` replicas of ``template`` running ``command``."""
    pod = json.loads(json.dumps(template))
    pod["spec"]["containers"][0]["command"] = list(command)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "JAXJob",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 0},
            "jaxReplicaSpecs": {"Worker": {"replicas": workers, "restartPolicy": "Never", "template": pod}},
        },
    }


def _api(method: str, path: str, body: Any = None) -> Any:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        raise ComponentError("the Trainer's task is set to run its workers as a JAXJob, but it is not in a "
                             "Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token = (_SA / "token").read_text().strip()
    ctx = ssl.create_default_context(cafile=str(_SA / "ca.crt"))
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"https://{host}:{port}{path}", data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        raise ComponentError(f"Kubernetes API {method} {path}: HTTP {err.code}: {detail} (does the pipeline's "
                             "service account may create jaxjobs.kubeflow.org, and is the Training Operator "
                             "installed?)") from err


def run_jaxjob(folder: Path, workers: int, *, node_id: str | None, poll_s: float = 5.0) -> None:
    """Runs the workers of ``folder``'s spec as a JAXJob and waits for it (see the module).

    Raises:
        ComponentError: the JAXJob failed (its reason), or the API refused it.
    """
    template = json.loads(os.environ[TEMPLATE_ENV])
    namespace = (_SA / "namespace").read_text().strip() if (_SA / "namespace").is_file() else "default"
    name = f"jfx-{(node_id or 'trainer').lower().replace('_', '-')[:30]}-{uuid.uuid4().hex[:8]}"
    manifest = jaxjob_manifest(name, template, workers,
                               ["python", "-m", "jfx.components._trainer_worker", str(folder)],
                               labels={"jfx.node": (node_id or "Trainer")[:63]})
    base = f"/apis/kubeflow.org/v1/namespaces/{namespace}/jaxjobs"
    _api("POST", base, manifest)
    try:
        while True:
            job = _api("GET", f"{base}/{name}")
            for cond in (job or {}).get("status", {}).get("conditions", []):
                if cond.get("status") != "True":
                    continue
                if cond.get("type") == "Succeeded":
                    return
                if cond.get("type") == "Failed":
                    raise ComponentError(f"JAXJob {namespace}/{name} failed: {cond.get('reason')}: "
                                         f"{cond.get('message')}; the workers' logs are in the pods "
                                         f"(kubectl logs -l training.kubeflow.org/job-name={name})")
            time.sleep(poll_s)
    finally:
        try:
            _api("DELETE", f"{base}/{name}", {"propagationPolicy": "Background"})
        except ComponentError:
            pass
