"""Notifier: a real webhook receiver (http.server on 127.0.0.1) and a real SMTP server (aiosmtpd on
127.0.0.1) receive the outcome of succeeded and failed runs; delivery is retried, then fails its node
naming the destination, and the other nodes' records stay as they were."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jfx_flow as flow
import pytest
from jfx_requires import importorskip

from jfx import ExitHandler, Pipeline, RuntimeParameter
from jfx.components import Notifier
from jfx.components._notifier import outcome_from_states, webhook_payload
from jfx.orchestrators import LocalDagRunner, NodeState, RunState

UI = "http://ui.example:8080"
ERROR = "RuntimeError: explode was told to fail"


class Hook:
    """A webhook receiver: records each POSTed JSON body; answers ``statuses`` in turn, then 200."""

    def __init__(self, statuses=()):
        self.bodies: list[dict] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append({"content_type": self.headers["Content-Type"], **json.loads(raw)})
                status = outer.statuses.pop(0) if outer.statuses else 200
                data = b"ok" if status == 200 else b"no_service"
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/xyzzy-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_sink():
    """An SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message and accepts one login."""
    importorskip("aiosmtpd", hint="pip install aiosmtpd")
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Sink:
        def __init__(self):
            self.messages = []
            self.logins = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  message_from_bytes(envelope.content, policy=default_policy)))
            return "250 Message accepted for delivery"

    sink = Sink()

    def authenticate(server, session, envelope, mechanism, auth_data):
        sink.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"hunter2", handled=False)

    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


@pytest.fixture
def where(tmp_path, monkeypatch):
    for name in ("JFX_NOTIFY_WEBHOOK_URL", "JFX_SMTP_USER", "JFX_SMTP_PASSWORD", "JFX_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    return {"pipeline_root": str(tmp_path / "root"), "metadata_url": f"sqlite:///{tmp_path / 'md.sqlite'}"}


def notified(where, name="notified", **settings):
    """Notifier around number -> explode(fail=param) -> publish."""
    notify = Notifier(**settings).with_id("notify")
    with ExitHandler(notify):
        base = flow.number(value=3)
        boom = flow.explode(x=base.outputs["out"], fail=RuntimeParameter("fail", bool, default=True))
        pub = flow.publish(x=boom.outputs["out"])
    return Pipeline(name, [notify, base, boom, pub], **where)


def run(pipeline, **params):
    return LocalDagRunner(progress=False).run(pipeline, parameters=params)


def test_the_webhook_gets_a_failed_run_with_the_failed_node_its_error_and_the_link(where, hook):
    result = run(notified(where, webhook_url=hook.url, ui_url=UI))
    assert result.state == RunState.FAILED and result.nodes["notify"].state == NodeState.COMPLETE
    [body] = hook.bodies
    assert body["content_type"] == "application/json"
    assert body["state"] == "failed" and body["pipeline"] == "notified" and body["run_id"] == result.run_id
    assert body["failed_nodes"] == [{"node": "explode", "state": "failed", "error": ERROR}]
    assert body["skipped_nodes"] == [{"node": "publish", "reason": "upstream node explode failed"}]
    assert body["node_states"] == {"number": "complete", "explode": "failed", "publish": "skipped"}
    assert body["run_url"] == f"{UI}/runs/{result.run_id}"
    # Slack shows `text`: the state, the failed node and its error, and the link
    assert f"run {result.run_id} failed." in body["text"]
    assert f"explode failed: {ERROR}" in body["text"]
    assert f"<{UI}/runs/{result.run_id}|Open the run in jfx ui>" in body["text"]
    recorded = result.nodes["notify"].outputs["notification"][0]
    assert recorded.properties["state"] == "failed" and recorded.properties["sent"] == ["webhook"]
    assert recorded.properties["failed_nodes"] == ["explode"]


def test_the_webhook_gets_a_succeeded_run(where, hook, monkeypatch):
    monkeypatch.setenv("JFX_UI_URL", "https://jfx.example.org/")
    result = run(notified(where, webhook_url=hook.url), fail=False)
    assert result.state == RunState.COMPLETE
    [body] = hook.bodies
    assert body["state"] == "succeeded" and body["failed_nodes"] == [] and body["skipped_nodes"] == []
    assert body["node_states"] == {"number": "complete", "explode": "complete", "publish": "complete"}
    assert body["run_url"] == f"https://jfx.example.org/runs/{result.run_id}"
    assert body["text"].startswith(f"jfx pipeline notified: run {result.run_id} succeeded.")
    # again: the exit node is never replayed from the cache, so each run is announced
    run(notified(where, webhook_url=hook.url), fail=False)
    assert len(hook.bodies) == 2 and hook.bodies[1]["node_states"]["explode"] == "cached"


def test_the_default_link_is_the_local_jfx_ui_and_notify_on_failure_stays_quiet_on_success(where, hook):
    run(notified(where, webhook_url=hook.url, notify_on="failure"), fail=False)
    assert hook.bodies == []
    failed = run(notified(where, webhook_url=hook.url, notify_on="failure"))
    [body] = hook.bodies
    assert body["run_url"] == f"http://127.0.0.1:8080/runs/{failed.run_id}"  # jfx ui's own address


def test_an_email_reaches_the_smtp_server(where, smtp_sink):
    result = run(notified(where, smtp_host="127.0.0.1", smtp_port=smtp_sink.port, mail_from="jfx@example.com",
                          mail_to=["ml@example.com", "oncall@example.com"], ui_url=UI))
    [(sender, recipients, message)] = smtp_sink.messages
    assert sender == "jfx@example.com" and recipients == ["ml@example.com", "oncall@example.com"]
    assert message["Subject"] == f"[jfx] notified run {result.run_id} failed"
    body = message.get_content()
    assert f"explode failed: {ERROR}" in body
    assert "publish skipped: upstream node explode failed" in body
    assert f"The run: {UI}/runs/{result.run_id}" in body
    assert smtp_sink.logins == []  # no password in the environment: no login
    assert result.nodes["notify"].outputs["notification"][0].properties["sent"] == ["email"]


def test_the_smtp_login_comes_from_the_environment_never_the_ir(where, smtp_sink, hook, monkeypatch):
    monkeypatch.setenv("JFX_SMTP_USER", "jfx-bot")
    monkeypatch.setenv("JFX_SMTP_PASSWORD", "hunter2")
    pipeline = notified(where, webhook_url=hook.url, smtp_host="127.0.0.1", smtp_port=smtp_sink.port,
                        mail_from="jfx@example.com", mail_to=["ml@example.com"])
    assert "hunter2" not in json.dumps(pipeline.compile().to_dict())
    result = run(pipeline, fail=False)
    assert smtp_sink.logins == [("jfx-bot", "hunter2")]
    [(_, _, message)] = smtp_sink.messages
    assert message["Subject"] == f"[jfx] notified run {result.run_id} succeeded"
    assert result.nodes["notify"].outputs["notification"][0].properties["sent"] == ["webhook", "email"]
    # a wrong password: the login is refused, once (not retried), naming the server
    monkeypatch.setenv("JFX_SMTP_PASSWORD", "wrong")
    refused = run(pipeline, fail=False)
    assert refused.nodes["notify"].state == NodeState.FAILED
    assert f"the SMTP server 127.0.0.1:{smtp_sink.port} refused the login of jfx-bot: 535" in \
        refused.nodes["notify"].error
    assert [p for _, p in smtp_sink.logins].count("wrong") == 2  # one try: smtplib offers PLAIN, then LOGIN
    # a password over a plain connection to another machine is refused before anything is sent
    plain = run(notified(where, smtp_host="smtp.example.invalid", mail_from="a@example.com",
                         mail_to=["b@example.com"]), fail=False)
    assert "JFX_SMTP_PASSWORD is set but smtp_starttls is off" in plain.nodes["notify"].error
    assert "wrong" not in plain.nodes["notify"].error


def test_a_transient_failure_is_retried_then_delivered(where):
    receiver = Hook(statuses=[503, 500])
    try:
        result = run(notified(where, webhook_url=receiver.url, retries=2, retry_backoff_s=0.01), fail=False)
    finally:
        receiver.close()
    assert result.state == RunState.COMPLETE and result.nodes["notify"].state == NodeState.COMPLETE
    assert len(receiver.bodies) == 3 and receiver.bodies[2]["state"] == "succeeded"


def test_delivery_that_keeps_failing_fails_the_notifier_naming_the_url(where, smtp_sink):
    refusing = Hook(statuses=[404] * 5)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    try:
        result = run(notified(where, webhook_url=refusing.url, retries=2, retry_backoff_s=0.01), fail=False)
        # a 4xx is the receiver's final word: one try
        assert len(refusing.bodies) == 1
        error = result.nodes["notify"].error
        assert f"the webhook {refusing.url} answered HTTP 404 Not Found: no_service" in error
        # the pipeline's own nodes are recorded as they ended; the notifier's failure is its own
        assert {k: o.state for k, o in result.nodes.items() if k != "notify"} == {
            "number": NodeState.COMPLETE, "explode": NodeState.COMPLETE, "publish": NodeState.COMPLETE}
        assert result.nodes["notify"].state == NodeState.FAILED and result.state == RunState.FAILED

        # unreachable: retried, then failed; the e-mail is still sent
        failed = run(notified(where, webhook_url=dead, retries=1, retry_backoff_s=0.01, smtp_host="127.0.0.1",
                              smtp_port=smtp_sink.port, mail_from="jfx@example.com", mail_to=["ml@example.com"]))
        error = failed.nodes["notify"].error
        assert f"the webhook {dead} cannot be reached" in error and "(after 2 attempts)" in error
        assert len(smtp_sink.messages) == 1 and failed.nodes["explode"].state == NodeState.FAILED
        closed = run(notified(where, smtp_host="127.0.0.1", smtp_port=free_port(), mail_from="a@example.com",
                              mail_to=["b@example.com"], retries=0))
        assert "the SMTP server 127.0.0.1:" in closed.nodes["notify"].error
        assert "cannot be reached" in closed.nodes["notify"].error
    finally:
        refusing.close()


def test_a_webhook_url_from_the_environment_stays_out_of_the_ir_and_the_errors(where, hook, monkeypatch):
    monkeypatch.setenv("JFX_NOTIFY_WEBHOOK_URL", hook.url)
    pipeline = notified(where)
    assert "xyzzy-token" not in json.dumps(pipeline.compile().to_dict())
    run(pipeline, fail=False)
    assert hook.bodies[0]["state"] == "succeeded"
    hook.statuses = [403]
    refused = run(pipeline, fail=False)
    error = refused.nodes["notify"].error
    assert f"the webhook http://127.0.0.1:{hook.server.server_address[1]}/… (from $JFX_NOTIFY_WEBHOOK_URL)" in error
    assert "xyzzy-token" not in error


def test_settings_are_checked_with_the_fix(where, hook):
    def error_of(**settings):
        result = run(notified(where, **settings), fail=False)
        assert result.nodes["notify"].state == NodeState.FAILED
        return result.nodes["notify"].error

    assert "Notifier has nowhere to send: give webhook_url" in error_of()
    assert "needs mail_from and mail_to" in error_of(smtp_host="127.0.0.1")
    assert "mail_to needs smtp_host" in error_of(webhook_url=hook.url, mail_to=["a@example.com"])
    assert "notify_on='sometimes': expected one of always, failure, success" in error_of(
        webhook_url=hook.url, notify_on="sometimes")
    assert "webhook_url 'hooks.example.com': expected an http(s) URL" in error_of(webhook_url="hooks.example.com")
    assert hook.bodies == []
    # outside an ExitHandler it cannot know the outcome: refused, with the right way
    lone = Pipeline("lone", [Notifier(webhook_url=hook.url)], **where)
    result = LocalDagRunner(progress=False).run(lone)
    assert "runs as that block's exit node" in result.nodes["Notifier"].error
    assert "with jfx.ExitHandler(notify):" in result.nodes["Notifier"].traceback


def test_the_payload_of_a_halted_and_an_abandoned_run():
    outcome = outcome_from_states("p", "p-1", {"gen": "complete", "check": "complete", "train": "skipped",
                                               "side": "running"},
                                  {"check": "halted: 3 anomalies\n  amount: missing", "train": "upstream node "
                                   "check halted the pipeline"}, "http://127.0.0.1:8080")
    payload = webhook_payload(outcome)
    assert payload["state"] == "failed"  # a node still running when its block is done lost its process
    assert payload["failed_nodes"] == [{"node": "side", "state": "running",
                                        "error": "its execution is RUNNING: its process died"}]
    assert payload["halted_nodes"] == [{"node": "check", "report": "3 anomalies\n  amount: missing"}]
    assert "check halted the pipeline: 3 anomalies" in payload["text"]
