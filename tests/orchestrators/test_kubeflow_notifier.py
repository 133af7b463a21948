"""The Notifier on Kubeflow: its webhook comes from a Kubernetes secret (``secret_env``, not the spec),
and run through the KFP backend harness (tests/resources/jfx_kfp_backend.py) it announces a failed run
from the run's finish task, where Argo leaves the exit node after a failure."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from jfx_requires import importorskip, unavailable

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

import jfx_kfp_backend as kb
import yaml

from jfx.cli import main as jfx_main
from jfx.errors import InvalidArgumentError
from jfx.orchestrators import KubeflowDagRunner
from jfx.pipelines import load_pipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

IMAGE = "registry.example/jfx:0.1"
FLOW = Path(__file__).resolve().parents[2] / "tests" / "resources" / "jfx_flow.py"
NOTIFIED = '''

from jfx.components import Notifier


def notified():
    notify = Notifier(ui_url="http://ui.example:8080").with_id("notify")
    with ExitHandler(notify):
        base = number(value=3)
        boom = explode(x=base.outputs["out"], fail=RuntimeParameter("fail", bool, default=True))
        pub = publish(x=boom.outputs["out"])
    return Pipeline("flow-notify", [notify, base, boom, pub])


pipeline = notified()
'''
SECRET_ENV = {"JFX_NOTIFY_WEBHOOK_URL": ("jfx-notify", "webhook"), "JFX_SMTP_PASSWORD": ("jfx-notify", "smtp")}


def source(tmp_path: Path) -> Path:
    """jfx_flow with the notified pipeline, outside the checkout (the user's own project)."""
    folder = tmp_path / "project"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / FLOW.name
    target.write_text(FLOW.read_text() + NOTIFIED)
    return target


def executors(package: str) -> dict[str, dict]:
    with open(package) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if isinstance(d, dict)]
    [platform] = [d for d in docs if "platforms" in d]
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_secret_env_reaches_every_task_and_no_value_is_in_the_spec(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert jfx_main(["compile", str(source(tmp_path)), "--image", IMAGE, "-o", str(out),
                     "--metadata-secret", "jfx-db:url", "--pipeline-root", "/mnt/jfx/artifacts",
                     "--volume", "/mnt/jfx=jfx-pvc",
                     "--secret-env", "JFX_NOTIFY_WEBHOOK_URL=jfx-notify:webhook",
                     "--secret-env", "JFX_SMTP_PASSWORD=jfx-notify:smtp"]) == 0
    found = executors(str(out))
    assert len(found) == 2  # every node's task shares one executor; the finish task has its own
    for executor in found.values():
        by_secret = {s["secretName"]: s["keyToEnv"] for s in executor["secretAsEnv"]}
        assert by_secret["jfx-notify"] == [{"secretKey": "webhook", "envVar": "JFX_NOTIFY_WEBHOOK_URL"},
                                           {"secretKey": "smtp", "envVar": "JFX_SMTP_PASSWORD"}]
        assert by_secret["jfx-db"] == [{"secretKey": "url", "envVar": "JFX_METADATA_URL"}]
    assert jfx_main(["compile", str(source(tmp_path)), "--image", IMAGE, "-o", str(out),
                     "--secret-env", "JFX_SMTP_PASSWORD=jfx-notify"]) == 1
    assert "--secret-env JFX_SMTP_PASSWORD=jfx-notify: expected ENV=SECRET:KEY" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="secret_env 'BAD NAME'"):
        KubeflowDagRunner(IMAGE, secret_env={"BAD NAME": ("s", "k")})
    with pytest.raises(InvalidArgumentError, match="also given as a plain environment variable"):
        KubeflowDagRunner(IMAGE, env={"JFX_SMTP_PASSWORD": "x"}, secret_env={"JFX_SMTP_PASSWORD": ("s", "k")})


def test_a_failed_kubeflow_run_is_announced_from_the_exit_task(tmp_path):
    why = kb.unshare_available()
    if why:
        unavailable(f"the KFP backend harness needs private mount namespaces: {why}")
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/xyzzy-token"
    try:
        url = f"sqlite:///{tmp_path / 'md.sqlite'}"
        runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "artifacts"), metadata_url=url, local=True,
                                   secret_env={"JFX_NOTIFY_WEBHOOK_URL": ("jfx-notify", "webhook")})
        package = runner.compile(load_pipeline(source(tmp_path)), tmp_path / "flow.yaml")
        assert "xyzzy-token" not in Path(package).read_text()
        run = kb.Backend(tmp_path / "pods", secrets={"jfx-notify": {"webhook": hook}}).run(package, {"fail": True})
    finally:
        server.shutdown()
        server.server_close()
    assert run.phase == "Failed"
    # the exit node runs once, in its own task (the exit hook of the nodes' block), after explode
    # failed and Argo started nothing more; the secret reaches that task
    [notify] = run.of("notify")
    assert notify.hook_of and notify.phase == "Succeeded"
    assert "jfx-notify" in json.dumps(notify.kubernetes)  # the webhook's secret is mounted as env there
    [body] = bodies
    run_id = f"flow-notify-kfp-{run.run_id}"
    assert body["state"] == "failed" and body["run_id"] == run_id
    assert body["failed_nodes"] == [{"node": "explode", "state": "failed",
                                     "error": "RuntimeError: explode was told to fail"}]
    assert body["node_states"] == {"number": "complete", "explode": "failed", "publish": "skipped"}
    assert body["run_url"] == f"http://ui.example:8080/runs/{run_id}"
