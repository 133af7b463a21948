"""``ExampleValidator``: check statistics against a schema, a baseline and expectations.

It writes ``<anomalies.uri>/anomalies.json`` and ``report.txt`` (docs/artifacts.md) and,
when a Great Expectations suite ran, Data Docs under ``data_docs/`` that work offline.
With anomalies and ``halt_on_anomalies`` it then raises :class:`~jfx.errors.HaltPipeline`
with the report: the outputs are still published, and what depends on it is skipped.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any, Optional

from jfx.components._anomalies import Anomaly, ValidationResult, detect_anomalies, detect_comparator, format_report
from jfx import _storage as storage
from jfx.components._examples import localized, split_files
from jfx.components._schema import _read_statistics, load_schema
from jfx.errors import DataValidationError, HaltPipeline, InvalidArgumentError
from jfx.pipelines._artifacts import ExampleAnomalies, ExampleStatistics, Examples, Schema
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._layouts import ANOMALIES_FILE

__all__ = ["ExampleValidator", "load_expectation_suite", "run_expectations"]

REPORT_FILE = "report.txt"
DATA_DOCS_DIR = "data_docs"

_SUITE_EXAMPLE = """\
Right (a Great Expectations 1.x ExpectationSuite):
  {"name": "penguins", "expectations": [
     {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "species"}},
     {"type": "expect_column_values_to_be_between",
      "kwargs": {"column": "body_mass_g", "min_value": 2000, "max_value": 7000}}]}"""


# ----------------------------------------------------------------------------- expectation suites


def load_expectation_suite(path: str | Path) -> dict[str, Any]:
    """Read and check an expectation suite JSON file (the GX 1.x ExpectationSuite format).

    Returns:
        ``{"name": str, "expectations": [{"type", "kwargs", "meta"}, ...]}``. The
        pre-1.0 key ``expectation_type`` is accepted for ``type``.

    Raises:
        DataValidationError: the file is missing, not JSON, or not a suite; the message
            names the file (and the expectation at fault).
    """
    path = Path(path).expanduser()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataValidationError(f"expectation suite {path}: cannot read it ({err.strerror or err})") from err
    except json.JSONDecodeError as err:
        raise DataValidationError(f"expectation suite {path}: not valid JSON: {err}\n{_SUITE_EXAMPLE}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("expectations"), list):
        raise DataValidationError(f"expectation suite {path}: expected an object with an \"expectations\" "
                                  f"list\n{_SUITE_EXAMPLE}")
    expectations = []
    for i, exp in enumerate(doc["expectations"]):
        etype = exp.get("type", exp.get("expectation_type")) if isinstance(exp, dict) else None
        kwargs = exp.get("kwargs", {}) if isinstance(exp, dict) else None
        if not isinstance(etype, str) or not etype.startswith("expect_") or not isinstance(kwargs, dict):
            raise DataValidationError(f"expectation suite {path}: expectation {i} must be an object with "
                                      f"\"type\": \"expect_...\" and \"kwargs\": {{...}}, got {exp!r}\n{_SUITE_EXAMPLE}")
        expectations.append({"type": etype, "kwargs": kwargs, "meta": exp.get("meta") or {}})
    name = doc.get("name") or doc.get("expectation_suite_name") or path.stem
    return {"name": str(name), "expectations": expectations}


def _gx_context(docs_dir: Path) -> Any:
    """An ephemeral, offline GX context (no analytics, no progress bars) with one docs site."""
    import great_expectations as gx  # ~3.5 s: imported only when a suite is run
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars={"globally": False, "metric_calculations": False},  # type: ignore[arg-type]  # GX reads the dict form
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.add_data_docs_site("jfx", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    return context


def _read_split(examples: Examples, split: str) -> Any:
    import pyarrow as pa

    tables = [storage.open_parquet(f).read() for f in split_files(examples, split)]
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_expectations(suite_file: str | Path, examples: Examples, splits: list[str],
                     docs_dir: Path) -> tuple[dict[str, list[Anomaly]], dict[str, dict[str, Any]]]:
    """Run an expectation suite on each split's data; build offline Data Docs in ``docs_dir``.

    Returns:
        ``(anomalies, summaries)`` per split: one ``expectation_failed`` anomaly per
        failed expectation, and ``{"suite", "success", "evaluated", "failed"}``.

    Raises:
        DataValidationError: the suite file is malformed or names an unknown expectation.
    """
    suite_doc = load_expectation_suite(suite_file)
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = _gx_context(docs_dir)
    suite = ExpectationSuite(name=suite_doc["name"])
    for i, exp in enumerate(suite_doc["expectations"]):
        try:
            suite.add_expectation_configuration(
                ExpectationConfiguration(type=exp["type"], kwargs=exp["kwargs"], meta=exp["meta"]))
        except Exception as err:  # GX raises several types for unknown names or bad kwargs
            raise DataValidationError(
                f"expectation suite {suite_file}: expectation {i} ({exp['type']}) is not valid: {err}") from err
    suite = context.suites.add(suite)
    source = context.data_sources.add_pandas("jfx")
    anomalies: dict[str, list[Anomaly]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    for split in splits:
        batch = source.add_dataframe_asset(split).add_batch_definition_whole_dataframe(split)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name}-{split}", data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"jfx-{split}", validation_definitions=[definition], result_format="SUMMARY",
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["jfx"])]))
        result = checkpoint.run(batch_parameters={"dataframe": _read_split(examples, split)})
        found: list[Anomaly] = []
        evaluated = 0
        for run in result.run_results.values():
            for res in run.results:
                evaluated += 1
                if res.success:
                    continue
                cfg = res.expectation_config
                kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
                column = kwargs.get("column")
                summary = res.result or {}
                observed = ""
                if "unexpected_count" in summary:
                    observed = (f"{summary['unexpected_count']} unexpected value(s) "
                                f"({summary.get('unexpected_percent', 0.0):.2f}%)")
                    partial = summary.get("partial_unexpected_counts") or []
                    if partial:
                        observed += ", e.g. " + ", ".join(f"{p['value']!r} ({p['count']})" for p in partial[:5])
                elif "observed_value" in summary:
                    observed = f"observed {_short(summary['observed_value'])}"
                error = (res.exception_info or {}).get("exception_message") if res.exception_info else None
                if error:
                    observed = f"could not be evaluated: {error}"
                found.append(Anomaly(
                    column, "expectation_failed",
                    f"split {split!r}{f', column {column!r}' if column else ''}: expectation {cfg.type} "
                    f"{_short(kwargs)} failed: {observed or 'see the Data Docs'}.",
                    details={"expectation": cfg.type, "kwargs": json.loads(_short(kwargs, 10**6)),
                             "result": json.loads(json.dumps(summary, default=str))}))
        anomalies[split] = found
        summaries[split] = {"suite": suite.name, "success": not found, "evaluated": evaluated,
                            "failed": len(found), "data_docs": f"{DATA_DOCS_DIR}/index.html"}
    make_offline(docs_dir, summaries)
    return anomalies, summaries


# ----------------------------------------------------------------------------- offline Data Docs

_EXTERNAL_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.I)
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script\s*>", re.I)
_EXTERNAL_IMG = re.compile(r"(<img\b[^>]*\bsrc\s*=\s*)([\"'])(?:https?:)?//[^\"']*\2", re.I)
_EXTERNAL_HREF = re.compile(r"(\bhref\s*=\s*)([\"'])(?:https?:)?//[^\"']*\2", re.I)
_STATIC_REF = re.compile(r"(\b(?:src|href)\s*=\s*)([\"'])(?:\.\./)*static/", re.I)
_CSS_URL = re.compile(r"url\(\s*([\"']?)(?:https?:)?//[^)\"']*\1\s*\)", re.I)
# Images GX ships but no page of ours shows (large GIFs and PNGs of its tutorials).
_UNUSED_STATIC = ("iterative-dev-loop.png", "glossary_scroller.gif", "validation_failed_unexpected_values.gif")

OFFLINE_CSS = """\
/* jfx: Data Docs are built offline, so the CDN stylesheets GX links are removed;
   this minimal sheet keeps the pages readable. */
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: top; }
.alert-danger, .text-danger { color: #a00; }
.text-success { color: #080; }
.container-fluid, .row { display: block; }
.col-md-2, .col-md-10, .col-12 { display: block; }
img { max-height: 3rem; }
ul.nav { list-style: none; padding: 0; }
"""


def _offline_html(text: str, depth: int) -> str:
    up = "../" * depth
    text = _EXTERNAL_LINK.sub("", text)
    text = _EXTERNAL_SCRIPT.sub("", text)
    text = _EXTERNAL_IMG.sub(lambda m: f'{m.group(1)}"{up}static/images/logo-long.png"', text)
    text = _EXTERNAL_HREF.sub(lambda m: f'{m.group(1)}"#"', text)
    # GX computes some pages' depth wrongly (validation pages sit one folder deeper than
    # their "../" prefixes say); point every static reference at the real folder.
    text = _STATIC_REF.sub(lambda m: f"{m.group(1)}{m.group(2)}{up}static/", text)
    stylesheet = f'<link rel="stylesheet" href="{up}static/styles/jfx_offline.css">'
    return re.sub(r"</head>", stylesheet + "</head>", text, count=1, flags=re.I)


def _index_block(docs_dir: Path, summaries: dict[str, dict[str, Any]]) -> str:
    """A static list of the validation pages: GX's own index table is built by jQuery."""
    items = []
    for page in sorted(docs_dir.glob("validations/**/*.html")):
        split = page.stem[len("jfx-"):] if page.stem.startswith("jfx-") else page.stem
        summary = summaries.get(split, {})
        status = "" if not summary else (" — passed" if summary.get("success") else
                                         f" — {summary.get('failed')} of {summary.get('evaluated')} failed")
        items.append(f'<li><a href="{html.escape(page.relative_to(docs_dir).as_posix())}">'
                     f"split {html.escape(split)}</a>{html.escape(status)}</li>")
    return ('<section class="jfx-validations"><h2>Validation results (jfx)</h2><ul>'
            + "".join(items) + "</ul></section>")


def make_offline(docs_dir: Path, summaries: dict[str, dict[str, Any]] | None = None) -> None:
    """Rewrite built Data Docs so that no page loads anything from the internet.

    GX links Bootstrap, jQuery, Vega and Font Awesome from CDNs and its logo from S3.
    Offline those only stall the page: the ``<link>``/``<script>`` tags are removed,
    external images point at the local logo, external links become ``#``, and a small
    local stylesheet replaces Bootstrap. The validation pages are static HTML and stay
    complete; the index's result table (drawn by jQuery) gets a static list of links
    instead, and the interactive filters and Vega charts are lost.
    """
    for page in docs_dir.rglob("*.html"):
        depth = len(page.relative_to(docs_dir).parts) - 1
        text = _offline_html(page.read_text(encoding="utf-8"), depth)
        if depth == 0 and page.name == "index.html":
            text = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + _index_block(docs_dir, summaries or {}),
                          text, count=1, flags=re.I)
        page.write_text(text, encoding="utf-8")
    styles = docs_dir / "static" / "styles"
    styles.mkdir(parents=True, exist_ok=True)
    for css in styles.glob("*.css"):
        css.write_text(_CSS_URL.sub("url('../images/logo-long.png')", css.read_text(encoding="utf-8")),
                       encoding="utf-8")
    (styles / "jfx_offline.css").write_text(OFFLINE_CSS, encoding="utf-8")
    for name in _UNUSED_STATIC:
        (docs_dir / "static" / "images" / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- the component


def _expectations_fingerprint(params: dict[str, Any]) -> str:
    """The suite file's content hash: an edited suite misses the cache."""
    path = params.get("expectations")
    if not path:
        return "none"
    try:
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
    except OSError:
        return "missing"


@component(name="ExampleValidator", external_fingerprint=_expectations_fingerprint, streaming=True)
def ExampleValidator(  # noqa: N802 - components are named like the TFX classes they replace
    statistics: Input[ExampleStatistics],
    schema: Input[Schema],
    anomalies: Output[ExampleAnomalies],
    baseline_statistics: Optional[Input[ExampleStatistics]] = None,  # noqa: UP045 - the DSL reads Optional[...]
    expectations: Parameter[str] | None = None,
    examples: Optional[Input[Examples]] = None,  # noqa: UP045 - the DSL reads Optional[...]
    halt_on_anomalies: Parameter[bool] = True,
    exclude_splits: Parameter[list] | None = None,
    environment: Parameter[str] | None = None,
    training_statistics: Optional[Input[ExampleStatistics]] = None,  # noqa: UP045 - the DSL reads Optional[...]
):
    """Validate each split: schema anomalies, skew and drift, expectation suites.

    Schema checks (per split and column): missing required column, new column, type
    change, values outside the string domain, values outside the numeric range,
    presence below ``min_presence`` or ``min_count``; with ``environment``, as TFDV's
    environments say (a column not in it is not required, and is reported if present).
    Columns named ``_jfx_...`` (request-log metadata) are never new columns.
    Drift (with ``baseline_statistics``) and skew (with ``training_statistics``), each
    against the split of the same name, else the first split: L-infinity distance for
    categorical columns, Jensen–Shannon divergence for numeric ones, checked where the
    schema's ``drift_comparator`` / ``skew_comparator`` sets a threshold and reported for
    every column. Expectations: a Great Expectations suite file run on each split's rows
    (needs ``examples``), with offline Data Docs under ``data_docs/``.

    Args:
        statistics: the splits' statistics (StatisticsGen).
        schema: the schema (SchemaGen or ImportSchemaGen).
        anomalies: receives ``anomalies.json``, ``report.txt`` and maybe ``data_docs/``;
            properties ``passed`` and ``anomaly_count``.
        baseline_statistics: statistics to measure drift against (e.g. the previous span).
        expectations: path of a GX 1.x ExpectationSuite JSON file.
        examples: the Examples the statistics describe (needed for ``expectations``).
        halt_on_anomalies: raise HaltPipeline (after writing the outputs) when anything
            is found, so that the nodes downstream are skipped.
        exclude_splits: split names not to validate.
        environment: the environment the data comes from, e.g. ``"SERVING"`` for request
            logs (which hold no label); ``None``: every schema column is expected.
        training_statistics: the training data's statistics, for the skew check of
            serving data (the schema's ``skew_comparator`` thresholds).

    Raises:
        HaltPipeline: anomalies were found and ``halt_on_anomalies`` is set; its message
            is the readable report.
        DataValidationError: the schema or the expectation suite is malformed.
        InvalidArgumentError: ``expectations`` without ``examples``, or an ``environment``
            the schema does not name.
    """
    if expectations and examples is None:
        raise InvalidArgumentError(
            f"ExampleValidator: expectations={expectations!r} needs the rows to check; wire the Examples "
            "too: ExampleValidator(..., examples=example_gen.outputs['examples'], expectations=...)")
    # the examples stream from where they are recorded; the small inputs are local copies
    schema, statistics = localized(schema), localized(statistics)
    baseline_statistics = None if baseline_statistics is None else localized(baseline_statistics)
    training_statistics = None if training_statistics is None else localized(training_statistics)
    table_schema = load_schema(schema)
    known = table_schema.environments
    if environment is not None and known and environment not in known:
        raise InvalidArgumentError(
            f"ExampleValidator: environment={environment!r} is not one the schema names "
            f"({', '.join(known)}); environment names are case-sensitive")
    stats = _read_statistics(statistics)
    skip = set(exclude_splits or [])
    splits = [s for s in stats if s not in skip]
    baselines = {
        "drift": _read_statistics(baseline_statistics) if baseline_statistics is not None else {},
        "skew": _read_statistics(training_statistics) if training_statistics is not None else {},
    }

    result = ValidationResult(environment=environment)
    for split in splits:
        result.splits[split] = detect_anomalies(stats[split], table_schema, split=split, environment=environment)
        for kind, baseline in baselines.items():
            if not baseline:
                continue
            base_split = split if split in baseline else next(iter(baseline))
            measured, found = detect_comparator(stats[split], baseline[base_split], table_schema, kind,
                                                split=split, baseline_split=base_split, environment=environment)
            getattr(result, kind)[split] = measured
            result.splits[split].extend(found)
    if expectations:
        docs = Path(anomalies.uri) / DATA_DOCS_DIR
        assert examples is not None  # checked above
        failed, summaries = run_expectations(expectations, examples, splits, docs)
        for split in splits:
            result.splits[split].extend(failed.get(split, []))
        result.expectations = summaries

    report = format_report(result)
    anomalies.write_json(result.to_dict(), ANOMALIES_FILE)
    anomalies.path(REPORT_FILE).write_text(report, encoding="utf-8")
    anomalies.properties.update(passed=result.passed, anomaly_count=result.anomaly_count, splits=splits)
    if not result.passed and halt_on_anomalies:
        raise HaltPipeline(report)
