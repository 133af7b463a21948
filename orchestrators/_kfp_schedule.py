"""Kubeflow recurring runs: ``jfx submit --schedule CRON`` and ``jfx schedule list|pause|resume|delete``.

    jfx submit pipeline.yaml --host URL --schedule "0 2 * * *" [--max-concurrency N] [--no-catchup]
        [--start-time ISO] [--end-time ISO] [--pipeline-name NAME] [--pipeline-version NAME] ...
    jfx schedule list   --host URL [--namespace NS] [--json]
    jfx schedule pause  RECURRING_RUN_ID --host URL
    jfx schedule resume RECURRING_RUN_ID --host URL
    jfx schedule delete RECURRING_RUN_ID --host URL

A recurring run starts runs of a *pipeline version*, so scheduling uploads the spec as a
version of its Kubeflow pipeline (created if missing). The version's default name is
content-addressed (``<pipeline>-<sha256 of the spec, 12 hex digits>``): scheduling the same
spec again reuses it, and a changed spec gets a version of its own.

Kubeflow's scheduler reads cron with seconds: six fields, ``second minute hour
day-of-month month day-of-week`` (github.com/robfig/cron v1's ``Parse``, which the backend
uses to validate and to schedule). There, a five-field expression is *not* standard cron:
the seconds come first and the day-of-week is optional, so ``0 2 * * *`` would mean "at
second 0 of minute 2 of every hour". jfx therefore takes standard five-field cron (minute
first, as crontab(5)) and adds ``0`` seconds, and takes a six-field expression as it is.
Every field is checked as the backend will read it; an error names the field. The
descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` and
``@every <Go duration>`` pass through. Times are in the scheduler's time zone (UTC
unless the cluster sets one).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jfx.errors import InvalidArgumentError, NotFoundError

__all__ = ["MAX_CONCURRENCY", "ScheduledRun", "cmd_schedule", "create_schedule", "kfp_cron", "list_schedules",
           "set_schedule_enabled", "delete_schedule", "parse_time"]

MAX_CONCURRENCY = 10  # the backend refuses more (job_server.go: "Support 1-10")

# (name, lowest, highest, names for values): robfig/cron v1's fields, in order
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}),
    ("day-of-week", 0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")

CRON_HELP = """\
  standard cron: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" (every day at 02:00)
  or Kubeflow's: second minute hour day-of-month month day-of-week, e.g. "0 0 2 * * *"
  or a descriptor: @hourly, @daily, @weekly, @monthly, @yearly, "@every 6h\""""


def kfp_cron(expression: str) -> str:
    """The cron expression Kubeflow's scheduler reads (seconds first) for a 5- or 6-field one.

    Example:
        >>> kfp_cron("0 2 * * MON-FRI")
        '0 0 2 * * MON-FRI'
        >>> kfp_cron("30 */15 * * * *"), kfp_cron("@daily")
        ('30 */15 * * * *', '@daily')
        >>> kfp_cron("0 25 * * *")
        Traceback (most recent call last):
        ...
        jfx.errors.InvalidArgumentError: --schedule '0 25 * * *': the hour field '25' is out of range 0-23...

    Raises:
        InvalidArgumentError: the expression, naming the field that is wrong and why.
    """
    text = " ".join(str(expression).split())
    where = f"--schedule {expression!r}"
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            return text
        every = re.fullmatch(r"@every (\S+)", text)
        if every and _GO_DURATION.match(every.group(1)):
            return text
        if every:
            raise InvalidArgumentError(f"{where}: @every takes a duration like 90m, 6h or 1h30m, got "
                                       f"{every.group(1)!r}")
        raise InvalidArgumentError(f"{where}: unknown descriptor; expected one of {', '.join(_DESCRIPTORS)} "
                                   f"or '@every DURATION'\n{CRON_HELP}")
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise InvalidArgumentError(f"{where}: expected 5 fields (standard cron) or 6 (seconds first), got "
                                   f"{len(fields)}\n{CRON_HELP}")
    for value, field in zip(fields, _FIELDS, strict=True):
        for part in value.split(","):
            _check_part(part, field, value, where)
    return " ".join(fields)


def _check_part(part: str, field: tuple[str, int, int, dict[str, int]], value: str, where: str) -> None:
    """One comma-separated part of a field, as robfig/cron v1's ``getRange`` reads it."""
    name, low, high, names = field

    def bad(why: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{where}: the {name} field {value!r} {why}")

    def number(text: str) -> int:
        if text.lower() in names:
            return names[text.lower()]
        if not text.isdigit():
            hint = f" or a name ({'/'.join(n.upper() for n in names)})" if names else ""
            raise bad(f"has {text!r}, which is not a number{hint}")
        n = int(text)
        if not low <= n <= high:
            sunday = "; Kubeflow reads 0 as Sunday, not 7" if name == "day-of-week" and n == 7 else ""
            raise bad(f"is out of range {low}-{high}{sunday}")
        return n

    range_and_step = part.split("/")
    if len(range_and_step) > 2:
        raise bad("has more than one '/'")
    bounds = range_and_step[0].split("-")
    if len(bounds) > 2:
        raise bad("has more than one '-' in a range")
    if bounds[0] in ("*", "?"):
        if len(bounds) > 1:
            raise bad(f"has {range_and_step[0]!r}: '*' takes no range")
    else:
        start = number(bounds[0])
        end = number(bounds[1]) if len(bounds) == 2 else start
        if start > end:
            raise bad(f"has the range {range_and_step[0]!r}, which ends before it begins")
    if len(range_and_step) == 2:
        step = range_and_step[1]
        if not step.isdigit() or int(step) == 0:
            raise bad(f"has the step {step!r}; a step is a positive whole number")


def parse_time(value: str | datetime | None, flag: str) -> datetime | None:
    """An ISO 8601 time (``2027-01-01T02:00:00Z``); one without a zone is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            text = value.strip()
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
        except ValueError:
            raise InvalidArgumentError(f"{flag} {value!r}: expected an ISO 8601 time, e.g. 2027-01-01T02:00:00Z"
                                       ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ScheduledRun:
    """A recurring run created on a Kubeflow Pipelines server.

    Attributes:
        recurring_run_id: its Kubeflow id (``jfx schedule pause|resume|delete`` take it).
        url: its page in the Kubeflow Pipelines UI.
        cron: the cron expression sent (Kubeflow's six fields, or a descriptor).
        pipeline_id, version_id: the pipeline version it runs.
        experiment_id: the experiment its runs belong to.
    """

    recurring_run_id: str
    url: str
    cron: str
    pipeline_id: str
    version_id: str
    experiment_id: str


def create_schedule(package: str, host: str, cron: str, *, experiment: str | None = None,
                    params: Mapping[str, Any] | None = None, name: str | None = None,
                    pipeline_name: str | None = None, pipeline_version: str | None = None,
                    max_concurrency: int = 1, no_catchup: bool = False,
                    start_time: str | datetime | None = None, end_time: str | datetime | None = None,
                    token: str | None = None, namespace: str | None = None, cookies: str | None = None,
                    ssl_ca_cert: str | None = None) -> ScheduledRun:
    """Create a Kubeflow recurring run of a compiled spec (``kfp.Client.create_recurring_run``).

    The spec and the parameter values are checked as for a run (:func:`~jfx.orchestrators.
    _kfp_cli.submit_package`), then uploaded as a version of the pipeline ``pipeline_name``
    (default: the spec's; created if missing). The version's default name is
    ``<pipeline>-<content hash>``, reused when it exists; a version named explicitly
    must be new. Each run it starts is its own jfx run (``<pipeline>-kfp-<run id>``).

    Args:
        cron: standard 5-field cron, Kubeflow's 6 fields, or a descriptor (:func:`kfp_cron`).
        name: the recurring run's name (default ``<pipeline> <cron>``).
        max_concurrency: runs of it at once, 1 to 10.
        no_catchup: after a pause (or a start time in the past), start only the latest
            missed run instead of one per missed time.
        start_time, end_time: ISO 8601 times between which it starts runs (no zone: UTC).
        token, namespace, cookies, ssl_ca_cert: as for a run.

    Raises:
        InvalidArgumentError: a bad expression, value, time range or flag; a server that
            cannot be used or refuses (one line naming ``--host``).
    """
    import kfp_server_api

    from jfx.orchestrators._kfp_cli import _pipeline_id, check_package, connect, experiment_id_for, ui_prefix

    expression = kfp_cron(cron)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
            or not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise InvalidArgumentError(f"--max-concurrency {max_concurrency!r}: Kubeflow runs 1 to {MAX_CONCURRENCY} "
                                   "runs of a recurring run at once")
    start, end = parse_time(start_time, "--start-time"), parse_time(end_time, "--end-time")
    if start and end and end <= start:
        raise InvalidArgumentError(f"--end-time {end.isoformat()} is not after --start-time {start.isoformat()}")
    if params and params.get("jfx_run_id"):
        raise InvalidArgumentError("--param jfx_run_id: every run of a schedule is its own jfx run "
                                   "(<pipeline>-kfp-<run id>); leave it out")
    checked = check_package(package, params)
    version_name = pipeline_version or f"{checked.name}-{_spec_digest(package)}"
    with connect(host, token=token, cookies=cookies, ssl_ca_cert=ssl_ca_cert, namespace=namespace) as client:
        experiment_id = experiment_id_for(client, experiment, namespace)
        pipeline_id = _pipeline_id(client, pipeline_name or checked.name, namespace)
        version_id = None if pipeline_version else _version_id(client, pipeline_id, version_name)
        if version_id is None:
            version_id = str(client.upload_pipeline_version(package, version_name, pipeline_id=pipeline_id)
                             .pipeline_version_id)
        options: dict[str, Any] = dict(
            experiment_id=experiment_id, job_name=name or f"{checked.name} {cron.strip()}",
            start_time=start, end_time=end, cron_expression=expression, max_concurrency=max_concurrency,
            no_catchup=no_catchup, params=checked.arguments, pipeline_id=pipeline_id, version_id=version_id)
        if namespace:
            # kfp's create_recurring_run leaves the namespace out of the body, and a multi-user
            # server refuses that ("Recurring run has no namespace."): the same body, with it
            trigger = kfp_server_api.V2beta1Trigger(cron_schedule=kfp_server_api.V2beta1CronSchedule(
                start_time=start, end_time=end, cron=expression))
            body = kfp_server_api.V2beta1RecurringRun(
                experiment_id=experiment_id, mode=kfp_server_api.RecurringRunMode.ENABLE,
                pipeline_version_reference=kfp_server_api.V2beta1PipelineVersionReference(
                    pipeline_id=pipeline_id, pipeline_version_id=version_id),
                runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=checked.arguments),
                display_name=options["job_name"], no_catchup=no_catchup, trigger=trigger,
                max_concurrency=max_concurrency, namespace=namespace)
            created = client.recurring_runs.recurring_run_service_create_recurring_run(recurring_run=body)
        else:
            created = client.create_recurring_run(**options)
    recurring_id = str(created.recurring_run_id)
    return ScheduledRun(recurring_id, f"{ui_prefix(client)}/#/recurringrun/details/{recurring_id}", expression,
                        pipeline_id, version_id, experiment_id)


def _spec_digest(package: str) -> str:
    return hashlib.sha256(Path(package).read_bytes()).hexdigest()[:12]


def _version_id(client: Any, pipeline_id: str, name: str) -> str | None:
    """The id of the version ``name`` of the pipeline, or None."""
    from jfx.orchestrators._kfp_cli import _name_filter

    found = client.list_pipeline_versions(pipeline_id, filter=_name_filter(name))
    for version in found.pipeline_versions or []:
        if version.display_name == name:
            return str(version.pipeline_version_id)
    return None


def list_schedules(host: str, *, namespace: str | None = None, token: str | None = None,
                   cookies: str | None = None, ssl_ca_cert: str | None = None) -> list[dict[str, Any]]:
    """Every recurring run on the server (in ``namespace``), newest first, as plain dicts.

    Each has ``id``, ``name``, ``status`` (``ENABLED``/``DISABLED``), ``cron`` (or
    ``interval_s`` for a periodic one), ``max_concurrency``, ``no_catchup``,
    ``experiment_id``, ``pipeline_id``, ``version_id``, ``created_at`` and ``url``.
    """
    from jfx.orchestrators._kfp_cli import connect, ui_prefix

    found: list[dict[str, Any]] = []
    with connect(host, token=token, cookies=cookies, ssl_ca_cert=ssl_ca_cert, namespace=namespace) as client:
        token_ = ""
        while True:
            page = client.list_recurring_runs(page_token=token_, page_size=100, sort_by="created_at desc",
                                              namespace=namespace)
            found.extend(_summary(r, ui_prefix(client)) for r in page.recurring_runs or [])
            token_ = page.next_page_token or ""
            if not token_:
                return found


def _summary(run: Any, prefix: str) -> dict[str, Any]:
    trigger = run.trigger
    cron = trigger.cron_schedule if trigger is not None else None
    periodic = trigger.periodic_schedule if trigger is not None else None
    reference = run.pipeline_version_reference
    status = run.status or ("ENABLED" if run.mode == "ENABLE" else "DISABLED" if run.mode == "DISABLE" else "")
    created = run.created_at
    return {
        "id": run.recurring_run_id, "name": run.display_name, "status": status,
        "cron": cron.cron if cron is not None else None,
        "interval_s": int(periodic.interval_second) if periodic is not None and periodic.interval_second else None,
        "max_concurrency": int(run.max_concurrency) if run.max_concurrency else None,
        "no_catchup": bool(run.no_catchup), "experiment_id": run.experiment_id,
        "pipeline_id": reference.pipeline_id if reference is not None else None,
        "version_id": (reference.pipeline_version_id if reference is not None else None) or run.pipeline_version_id,
        "created_at": created.isoformat() if isinstance(created, datetime) else created,
        "url": f"{prefix}/#/recurringrun/details/{run.recurring_run_id}",
    }


def set_schedule_enabled(host: str, recurring_run_id: str, enabled: bool, **connection: Any) -> None:
    """Resume (``enabled``) or pause a recurring run."""
    _on_schedule(host, recurring_run_id, "enable_recurring_run" if enabled else "disable_recurring_run", connection)


def delete_schedule(host: str, recurring_run_id: str, **connection: Any) -> None:
    """Delete a recurring run (the runs it started stay)."""
    _on_schedule(host, recurring_run_id, "delete_recurring_run", connection)


def _on_schedule(host: str, recurring_run_id: str, method: str, connection: Mapping[str, Any]) -> None:
    import kfp_server_api

    from jfx.orchestrators._kfp_cli import connect

    if not recurring_run_id or not recurring_run_id.strip():
        raise InvalidArgumentError("name the recurring run by its id (jfx schedule list shows them)")
    with connect(host, **connection) as client:
        try:
            getattr(client, method)(recurring_run_id=recurring_run_id)
        except kfp_server_api.ApiException as err:
            if err.status == 404:
                raise NotFoundError(f"no recurring run {recurring_run_id!r} on {host.rstrip('/')} "
                                    "(jfx schedule list shows them)") from None
            raise


# ---------------------------------------------------------------------- the command line

def cmd_schedule(action: str, *, host: str, recurring_run_id: str | None = None, as_json: bool = False,
                 namespace: str | None = None, token: str | None = None, token_file: str | None = None,
                 cookies: str | None = None, cookies_file: str | None = None,
                 ssl_ca_cert: str | None = None) -> int:
    """``jfx schedule list|pause|resume|delete``: the flags' values, as given."""
    from jfx.orchestrators._kfp_cli import credentials

    token, cookies = credentials(token=token, token_file=token_file, cookies=cookies, cookies_file=cookies_file)
    connection = {"token": token, "cookies": cookies, "ssl_ca_cert": ssl_ca_cert, "namespace": namespace}
    if action == "list":
        rows = list_schedules(host, **connection)
        if as_json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no recurring runs")
        else:
            _print_table(rows)
        return 0
    assert recurring_run_id is not None
    if action == "delete":
        delete_schedule(host, recurring_run_id, **connection)
        print(f"deleted recurring run {recurring_run_id} (the runs it started stay)")
    else:
        set_schedule_enabled(host, recurring_run_id, action == "resume", **connection)
        print(f"{'resumed' if action == 'resume' else 'paused'} recurring run {recurring_run_id}")
    return 0


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    shown = [(r["id"], r["status"], r["cron"] or (f"every {r['interval_s']}s" if r["interval_s"] else ""),
              str(r["max_concurrency"] or ""), r["name"] or "") for r in rows]
    heads = ("ID", "STATUS", "SCHEDULE", "MAX", "NAME")
    widths = [max(len(h), *(len(str(s[i])) for s in shown)) for i, h in enumerate(heads)]
    for line in (heads, *shown):
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def cmd_submit_schedule(package: str, cron: str, *, host: str, values: Mapping[str, Any],
                        **options: Any) -> int:
    """``jfx submit --schedule``: create the recurring run and say what was made."""
    schedule = create_schedule(package, host, cron, params=values, **options)
    if cron.strip() != schedule.cron:
        print(f"schedule: {cron.strip()!r} (standard cron) is {schedule.cron!r} in Kubeflow's six fields "
              "(seconds first)", file=sys.stderr)
    print(f"created recurring run {schedule.recurring_run_id} ({schedule.cron})")
    print(f"  url:     {schedule.url}")
    print(f"  runs:    pipeline {schedule.pipeline_id}, version {schedule.version_id}")
    print(f"  pause:   jfx schedule pause {schedule.recurring_run_id} --host {host}")
    return 0
