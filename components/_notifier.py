"""Notifier: announce how a run ended, to a webhook (Slack-compatible) and/or by e-mail.

It is an exit handler's node: it runs after every node of its ``jfx.ExitHandler`` block,
whether they succeeded or failed, and reads their outcomes from
``current_context().upstream_states`` and ``upstream_reasons``::

    notify = Notifier(webhook_url="https://hooks.example.com/services/T0/B0/x",
                      smtp_host="smtp.example.com", smtp_starttls=True,
                      mail_from="jfx@example.com", mail_to=["ml-team@example.com"])
    with jfx.ExitHandler(notify):
        gen = ExampleGen(input_base="data/")
        ...
    pipeline = Pipeline("penguin", components=[notify, gen, ...])

The message says the run's state (``succeeded``, or ``failed`` when a node of the block
failed), the failed nodes with their errors, the skipped nodes and why, a node that halted
the pipeline, and a link to the run's page in ``jfx ui`` (``ui_url``, default
``$JFX_UI_URL``, else ``http://127.0.0.1:8080``).

* **Webhook**: ``POST`` of JSON ``{"text": ..., "pipeline", "run_id", "state",
  "failed_nodes": [{"node", "state", "error"}], "skipped_nodes", "halted_nodes",
  "node_states", "run_url"}``. Slack's incoming webhooks (and Mattermost's, Rocket.Chat's)
  show ``text``; other receivers read the fields. A Slack webhook URL is itself a secret:
  leave ``webhook_url`` empty and set ``$JFX_NOTIFY_WEBHOOK_URL`` in the task's
  environment (on Kubeflow from a Kubernetes secret: ``jfx compile --secret-env
  JFX_NOTIFY_WEBHOOK_URL=SECRET:KEY``), so it is in neither the IR nor the spec.
* **E-mail** over SMTP (``smtplib``): ``smtp_host``, ``smtp_port`` (default 587 with
  STARTTLS, else 25), ``mail_from``, ``mail_to``. With ``$JFX_SMTP_PASSWORD`` set, it logs
  in as ``$JFX_SMTP_USER`` (default: ``mail_from``); the password is never a parameter, and
  it is refused over a connection without STARTTLS unless the server is on this machine.

Delivery is retried on transient failures (a refused or dropped connection, a timeout, HTTP
5xx or 429, an SMTP 4xx reply) ``retries`` times with a doubling pause; a permanent refusal
(HTTP 4xx, SMTP 5xx, a failed login) is not retried. When a destination still fails, the
other is still tried, then the node fails with an error naming each URL or host. The
Notifier's failure is its own node's: like any node, it leaves the run FAILED, and it never
changes what was recorded for the other nodes.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, TypeVar

from jfx.errors import ComponentError
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._component import Output, Parameter, component
from jfx.pipelines._context import current_context

__all__ = ["NOTIFICATION_FILE", "Delivery", "RunOutcome", "Notifier", "email_message", "outcome_from_states",
           "send_email", "send_webhook", "webhook_payload"]

NOTIFICATION_FILE = "notification.json"
NOTIFY_ON = ("always", "failure", "success")
_FAILED = ("failed", "abandoned", "cancelled", "running", "pending")  # not done when the block is: its process died

NOT_AN_EXIT_HANDLER = """\
Notifier announces how the nodes of its ExitHandler block ended, so it runs as that block's exit node.
  Wrong:  notify = Notifier(webhook_url=URL); Pipeline("p", components=[gen, notify])
  Right:  notify = Notifier(webhook_url=URL)
          with jfx.ExitHandler(notify):
              gen = ExampleGen(input_base="data/")
          Pipeline("p", components=[notify, gen])"""


@dataclass(frozen=True)
class RunOutcome:
    """How the nodes of an exit handler's block ended: what a notification says.

    Attributes:
        pipeline, run_id: the run.
        state: ``succeeded``, or ``failed`` when a node failed (or its process died).
        node_states: each node's state (``complete``, ``cached``, ``failed``, ``skipped``, ...).
        failed: ``(node, state, error)`` of each node that failed.
        skipped: ``(node, reason)`` of each skipped node.
        halted: ``(node, report)`` of a node that halted the pipeline.
        run_url: the run's page in ``jfx ui``.
    """

    pipeline: str
    run_id: str
    state: str
    node_states: dict[str, str]
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    halted: list[tuple[str, str]] = field(default_factory=list)
    run_url: str = ""


def outcome_from_states(pipeline: str, run_id: str, states: Mapping[str, str], reasons: Mapping[str, str] | None,
                        ui_url: str) -> RunOutcome:
    """The outcome of a run from its nodes' states and reasons (an exit node's context).

    Example:
        >>> o = outcome_from_states("taxi", "taxi-1", {"gen": "complete", "train": "failed", "push": "skipped"},
        ...                         {"train": "ValueError: no rows", "push": "upstream node train failed"},
        ...                         "http://127.0.0.1:8080")
        >>> o.state, o.failed, o.run_url
        ('failed', [('train', 'failed', 'ValueError: no rows')], 'http://127.0.0.1:8080/runs/taxi-1')
    """
    reasons = dict(reasons or {})
    failed, skipped, halted = [], [], []
    for node, state in states.items():
        reason = reasons.get(node, "")
        if state in _FAILED:
            failed.append((node, state, reason or f"its execution is {state.upper()}: its process died"))
        elif state == "skipped":
            skipped.append((node, reason))
        elif reason.startswith("halted: "):
            halted.append((node, reason[len("halted: "):]))
    run_url = f"{ui_url.rstrip('/')}/runs/{urllib.parse.quote(run_id, safe='')}"
    return RunOutcome(pipeline, run_id, "failed" if failed else "succeeded", dict(states), failed, skipped, halted,
                      run_url)


def _summary_lines(outcome: RunOutcome) -> list[str]:
    lines = [f"jfx pipeline {outcome.pipeline}: run {outcome.run_id} {outcome.state}."]
    for node, state, error in outcome.failed:
        lines.append(f"{node} {state}: {error}")
    for node, report in outcome.halted:
        lines.append(f"{node} halted the pipeline: {report.splitlines()[0] if report else ''}")
    if outcome.skipped:
        lines.append("skipped: " + ", ".join(node for node, _ in outcome.skipped))
    return lines


def webhook_payload(outcome: RunOutcome) -> dict[str, Any]:
    """The webhook's JSON: Slack's ``text`` (with a ``<url|label>`` link) and the structured fields."""
    text = "\n".join(_summary_lines(outcome)) + f"\n<{outcome.run_url}|Open the run in jfx ui>"
    return {
        "text": text,
        "pipeline": outcome.pipeline,
        "run_id": outcome.run_id,
        "state": outcome.state,
        "failed_nodes": [{"node": n, "state": s, "error": e} for n, s, e in outcome.failed],
        "skipped_nodes": [{"node": n, "reason": r} for n, r in outcome.skipped],
        "halted_nodes": [{"node": n, "report": r} for n, r in outcome.halted],
        "node_states": outcome.node_states,
        "run_url": outcome.run_url,
    }


def email_message(outcome: RunOutcome, mail_from: str, mail_to: list[str]) -> EmailMessage:
    """The e-mail: subject ``[jfx] <pipeline> run <run id> <state>``, a plain-text body."""
    message = EmailMessage()
    message["Subject"] = f"[jfx] {outcome.pipeline} run {outcome.run_id} {outcome.state}"
    message["From"] = mail_from
    message["To"] = ", ".join(mail_to)
    body = _summary_lines(outcome)
    for node, reason in outcome.skipped:
        body.append(f"  {node} skipped: {reason or 'not run'}")
    body += ["", "Nodes:"] + [f"  {node}: {state}" for node, state in outcome.node_states.items()]
    body += ["", f"The run: {outcome.run_url}"]
    message.set_content("\n".join(body) + "\n")
    return message


# ---------------------------------------------------------------------- delivery

class _Transient(Exception):  # noqa: N818 - a retry signal within this module
    """A delivery failure worth another try."""


_T = TypeVar("_T")


@dataclass(frozen=True)
class Delivery:
    """How to deliver: tries and the pause between them (doubling), and each try's timeout."""

    retries: int = 2
    backoff_s: float = 1.0
    timeout_s: float = 10.0

    def attempt(self, send: Callable[[], _T]) -> _T:
        """Call ``send`` until it succeeds, retrying on :class:`_Transient`; the last error is raised."""
        for attempt in range(self.retries + 1):
            try:
                return send()
            except _Transient as err:
                if attempt == self.retries:
                    tries = f"{self.retries + 1} attempts" if self.retries else "1 attempt"
                    raise ComponentError(f"{err} (after {tries})") from None
                time.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")


def _shown_url(url: str, secret: bool) -> str:
    """The URL as errors show it: whole when it is a parameter, scheme and host when it is a secret."""
    if not secret:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/… (from $JFX_NOTIFY_WEBHOOK_URL)"


def send_webhook(url: str, payload: Mapping[str, Any], delivery: Delivery, *, secret: bool = False) -> int:
    """POST ``payload`` as JSON to ``url``; the HTTP status.

    Raises:
        ComponentError: the server refused (HTTP 4xx but 429, not retried) or stayed
            unreachable or failing (5xx, 429, connection errors, timeouts) after the retries;
            the message names the URL (scheme and host only when it came from the environment).
    """
    shown = _shown_url(url, secret)
    data = json.dumps(payload).encode()

    def send() -> int:
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "jfx-notifier"})
        try:
            with urllib.request.urlopen(request, timeout=delivery.timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            detail = err.read(200).decode(errors="replace").strip()
            what = f"the webhook {shown} answered HTTP {err.code} {err.reason}" + (f": {detail}" if detail else "")
            if err.code >= 500 or err.code == 429:
                raise _Transient(what) from None
            raise ComponentError(what) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise _Transient(f"the webhook {shown} cannot be reached ({reason})") from None

    return delivery.attempt(send)


def send_email(message: EmailMessage, host: str, port: int, delivery: Delivery, *, starttls: bool,
               user: str | None, password: str | None) -> None:
    """Send ``message`` through the SMTP server ``host:port`` (STARTTLS and login when asked).

    Raises:
        ComponentError: a refused login or recipient, a server that does not offer
            STARTTLS, or one that stayed unreachable (or answered 4xx) after the retries;
            the message names ``host:port``.
    """
    where = f"the SMTP server {host}:{port}"

    def send() -> None:
        try:
            with smtplib.SMTP(host, port, timeout=delivery.timeout_s) as smtp:
                smtp.ehlo()
                if starttls:
                    if not smtp.has_extn("starttls"):
                        raise ComponentError(f"{where} does not offer STARTTLS (smtp_starttls=True)")
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if password is not None:
                    smtp.login(user or str(message["From"]), password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as err:
            raise ComponentError(f"{where} refused the login of {user or message['From']}: "
                                 f"{err.smtp_code} {_text(err.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as err:
            refused = ", ".join(f"{who} ({code} {_text(text)})" for who, (code, text) in err.recipients.items())
            raise ComponentError(f"{where} refused the recipients: {refused}") from None
        except smtplib.SMTPResponseException as err:
            what = f"{where} answered {err.smtp_code} {_text(err.smtp_error)}"
            if 400 <= err.smtp_code < 500:
                raise _Transient(what) from None
            raise ComponentError(what) from None
        except (smtplib.SMTPException, OSError) as err:
            raise _Transient(f"{where} cannot be reached ({err or type(err).__name__})") from None

    delivery.attempt(send)


def _text(value: bytes | str) -> str:
    return (value.decode(errors="replace") if isinstance(value, bytes) else str(value)).strip()


def _is_loopback(host: str) -> bool:
    try:
        return all(str(info[4][0]) == "::1" or str(info[4][0]).startswith("127.")
                   for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


# ---------------------------------------------------------------------- the component

@component
def Notifier(  # noqa: N802 - components are named like the TFX components they mirror
    notification: Output[Artifact],
    webhook_url: Parameter[str] = "",
    smtp_host: Parameter[str] = "",
    smtp_port: Parameter[int] = 0,
    smtp_starttls: Parameter[bool] = False,
    mail_from: Parameter[str] = "",
    mail_to: Parameter[list] | None = None,
    ui_url: Parameter[str] = "",
    notify_on: Parameter[str] = "always",
    retries: Parameter[int] = 2,
    retry_backoff_s: Parameter[float] = 1.0,
    timeout_s: Parameter[float] = 10.0,
):
    """Announce how the nodes of its ``ExitHandler`` block ended (see the module's docstring).

    Args:
        notification: receives ``notification.json`` (what was sent, and where: no
            secret); properties ``state``, ``sent`` (``webhook``, ``email``) and
            ``failed_nodes``.
        webhook_url: POST the outcome here as Slack-compatible JSON (default:
            ``$JFX_NOTIFY_WEBHOOK_URL``; none: no webhook).
        smtp_host: send an e-mail through this SMTP server.
        smtp_port: its port (default: 587 with STARTTLS, else 25).
        smtp_starttls: upgrade the connection with STARTTLS (the certificate is verified).
        mail_from: the sender's address.
        mail_to: the recipients' addresses.
        ui_url: the ``jfx ui`` address the run's link points to (default: ``$JFX_UI_URL``,
            else ``http://127.0.0.1:8080``).
        notify_on: ``always``; ``failure``: only when a node failed; ``success``: only when none did.
        retries: further tries of a destination after a transient failure.
        retry_backoff_s: the pause before the first retry (doubling after each).
        timeout_s: each try's network timeout.

    Raises:
        ComponentError: it is not an exit handler's node, nothing to send to, a bad
            setting, or a destination that refused or stayed unreachable (named).
    """
    from jfx import _config

    ctx = current_context()
    if ctx is None or ctx.upstream_states is None:
        raise ComponentError(NOT_AN_EXIT_HANDLER)
    if notify_on not in NOTIFY_ON:
        raise ComponentError(f"Notifier notify_on={notify_on!r}: expected one of {', '.join(NOTIFY_ON)}")
    secret_url = not webhook_url
    url = webhook_url or _config.notify_webhook_url()
    if url and not str(url).startswith(("http://", "https://")):
        raise ComponentError(f"Notifier webhook_url {url!r}: expected an http(s) URL")
    recipients = [str(r) for r in (mail_to or [])]
    if smtp_host and (not mail_from or not recipients):
        raise ComponentError(f"Notifier smtp_host={smtp_host!r} needs mail_from and mail_to (a list of addresses)")
    if recipients and not smtp_host:
        raise ComponentError("Notifier mail_to needs smtp_host (the SMTP server that sends the e-mail)")
    if not url and not smtp_host:
        raise ComponentError("Notifier has nowhere to send: give webhook_url (or set $JFX_NOTIFY_WEBHOOK_URL), or "
                             "smtp_host with mail_from and mail_to")
    user, password = _config.smtp_login()
    if smtp_host and password is not None and not smtp_starttls and not _is_loopback(smtp_host):
        raise ComponentError(f"Notifier: ${_config.SMTP_PASSWORD_ENV} is set but smtp_starttls is off; the password "
                             f"would cross the network to {smtp_host} in clear. Set smtp_starttls=True")
    outcome = outcome_from_states(ctx.pipeline_name, ctx.run_id, ctx.upstream_states, ctx.upstream_reasons,
                                  ui_url or _config.ui_url())
    payload = webhook_payload(outcome)
    wanted = notify_on == "always" or (notify_on == "failure") == (outcome.state == "failed")
    delivery = Delivery(retries=max(0, int(retries)), backoff_s=float(retry_backoff_s), timeout_s=float(timeout_s))
    sent: list[str] = []
    errors: list[str] = []
    if wanted and url:
        try:
            send_webhook(url, payload, delivery, secret=secret_url)
            sent.append("webhook")
        except ComponentError as err:
            errors.append(str(err))
    if wanted and smtp_host:
        port = int(smtp_port) or (587 if smtp_starttls else 25)
        try:
            send_email(email_message(outcome, mail_from, recipients), smtp_host, port, delivery,
                       starttls=bool(smtp_starttls), user=user, password=password)
            sent.append("email")
        except ComponentError as err:
            errors.append(str(err))
    if errors:
        raise ComponentError("Notifier could not deliver: " + "; ".join(errors))
    notification.write_json({"payload": payload, "sent": sent, "notify_on": notify_on,
                             "email_to": recipients if "email" in sent else []}, NOTIFICATION_FILE)
    notification.properties["state"] = outcome.state
    notification.properties["sent"] = sent
    notification.properties["failed_nodes"] = [node for node, _, _ in outcome.failed]
