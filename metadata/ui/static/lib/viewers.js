// Typed viewers: one renderer per artifact kind (the data comes from /api/artifacts/<id>/view).
import { fill, api, artifactHref, badge, details, fileHref, fmtBytes, fmtTime, fmtNumber, fmtValue, h, jsonBlock, kvTable, pre, section, table,
} from "./dom.js";
import { SERIES_COLORS, heatmap, histogram, lineChart, topValues, unitChart } from "./charts.js";

const PERCENTILES = [0, 1, 5, 25, 50, 75, 95, 99, 100];

// ------------------------------------------------------------------ statistics

function pct(col) {
  const total = (col.count || 0) + (col.missing || 0);
  return total ? `${(((col.missing || 0) / total) * 100).toFixed(1)}%` : "–";
}

function statRows(cols) {
  const get = (c, f) => (c ? f(c) : null);
  const num = (c) => (c && c.numeric) || {};
  const str = (c) => (c && c.string) || {};
  return [
    ["count", (c) => get(c, (x) => x.count)],
    ["missing", (c) => get(c, (x) => `${x.missing ?? 0} (${pct(x)})`)],
    ["mean", (c) => num(c).mean], ["std", (c) => num(c).std], ["min", (c) => num(c).min],
    ["median", (c) => (num(c).quantiles ? num(c).quantiles[50] : null)], ["max", (c) => num(c).max],
    ["zeros", (c) => num(c).zeros], ["unique", (c) => str(c).unique], ["avg length", (c) => str(c).avg_length],
  ].filter(([, f]) => cols.some((c) => c && f(c) !== undefined && f(c) !== null));
}

/** datasets: [{label, doc}] — one split, two splits, or two runs' statistics side by side. */
export function statisticsTable(datasets) {
  const names = [];
  for (const d of datasets) for (const name of Object.keys(d.doc.columns || {})) if (!names.includes(name)) names.push(name);
  const head = h("div", { class: "legend" }, datasets.map((d, i) =>
    h("span", {}, h("i", { class: "swatch", style: `background:${SERIES_COLORS[i]}` }), `${d.label}: ${fmtNumber(d.doc.num_rows)} rows`)));
  const rows = names.map((name) => {
    const cols = datasets.map((d) => (d.doc.columns || {})[name]);
    const first = cols.find(Boolean) || {};
    const stats = statRows(cols);
    const statTable = h("table", { class: "grid compact" },
      datasets.length > 1 ? h("thead", {}, h("tr", {}, h("th", {}, ""), datasets.map((d) => h("th", {}, d.label)))) : null,
      h("tbody", {}, stats.map(([label, f]) => h("tr", {}, h("th", {}, label), cols.map((c) => h("td", { class: "num" }, fmtValue(c ? f(c) : null)))))));
    const numeric = cols.some((c) => c && c.numeric && c.numeric.histogram);
    const chart = numeric
      ? histogram(cols.map((c, i) => c && c.numeric && c.numeric.histogram ? { label: datasets[i].label, ...c.numeric.histogram } : null), { title: "histogram" })
      : topValues(cols.map((c, i) => c && c.string ? { label: datasets[i].label, values: c.string.top_values || [], total: c.count } : null));
    const more = [];
    if (numeric) {
      more.push(h("div", { class: "quantiles" }, h("table", { class: "grid compact" },
        h("thead", {}, h("tr", {}, h("th", {}, "quantile"), datasets.map((d) => h("th", {}, d.label)))),
        h("tbody", {}, PERCENTILES.map((p) => h("tr", {}, h("th", {}, `${p}%`),
          cols.map((c) => h("td", { class: "num" }, fmtValue(c && c.numeric && c.numeric.quantiles ? c.numeric.quantiles[p] : null)))))))),
        histogram(cols.map((c, i) => c && c.numeric && c.numeric.quantile_histogram ? { label: datasets[i].label, ...c.numeric.quantile_histogram } : null), { title: "quantile histogram" }));
      if (cols.some((c) => c && c.string)) {
        more.push(topValues(cols.map((c, i) => c && c.string ? { label: datasets[i].label, values: c.string.top_values || [], total: c.count } : null)));
      }
    }
    return h("div", { class: "stat-col", "data-column": name },
      h("div", { class: "stat-name" }, h("strong", {}, name), h("div", { class: "muted small" }, first.type || ""),
        cols.some((c) => c && c.missing) ? h("div", { class: "warn small" }, `missing ${cols.map((c) => (c ? pct(c) : "–")).join(" / ")}`) : null),
      h("div", { class: "stat-table" }, statTable),
      h("div", { class: "stat-chart" }, chart, more.length ? details("quantiles and more", false, more) : null));
  });
  return h("div", { class: "statistics" }, head, rows);
}

async function statisticsViewer(view) {
  const splits = Object.keys(view.data.splits);
  const a = view.artifact;
  const box = h("div", { class: "stats-box" });
  const splitA = h("select", { id: "split-a", "aria-label": "split" }, splits.map((s) => h("option", { value: s }, s)));
  const other = h("select", { id: "compare-with", "aria-label": "compare with" }, h("option", { value: "" }, "nothing"),
    splits.map((s) => h("option", { value: `split:${s}` }, `split ${s} of this artifact`)));
  // Statistics of the same node in other runs.
  try {
    const same = await api(`/api/artifacts?type=${encodeURIComponent(a.type)}&name=${encodeURIComponent(a.name)}&limit=20`);
    for (const o of same.artifacts) {
      if (o.id === a.id || o.deleted) continue; // gc deleted its files: nothing to compare with
      other.append(h("option", { value: `artifact:${o.id}` }, `#${o.id} ${o.name} of run ${o.run_id || fmtTime(o.create_time)}`));
    }
  } catch (err) { /* listing other runs is optional */ }
  const splitB = h("select", { id: "split-b", "aria-label": "other split", hidden: true });
  let otherDoc = null;
  const draw = () => {
    const sets = [{ label: `#${a.id} ${splitA.value}`, doc: view.data.splits[splitA.value] }];
    const v = other.value;
    if (v.startsWith("split:")) sets.push({ label: `#${a.id} ${v.slice(6)}`, doc: view.data.splits[v.slice(6)] });
    else if (v.startsWith("artifact:") && otherDoc && otherDoc.splits[splitB.value]) {
      sets.push({ label: `#${v.slice(9)} ${splitB.value}`, doc: otherDoc.splits[splitB.value] });
    }
    fill(box, statisticsTable(sets));
  };
  splitA.addEventListener("change", draw);
  splitB.addEventListener("change", draw);
  other.addEventListener("change", async () => {
    const v = other.value;
    splitB.hidden = !v.startsWith("artifact:");
    if (v.startsWith("artifact:")) {
      const o = await api(`/api/artifacts/${v.slice(9)}/view`);
      otherDoc = o.data;
      fill(splitB, ...Object.keys(otherDoc.splits).map((s) => h("option", { value: s, selected: s === splitA.value }, s)));
    }
    draw();
  });
  draw();
  return [h("div", { class: "filters" }, h("label", {}, "Split ", splitA), h("label", {}, "Side by side with ", other, " ", splitB)), box];
}

// ---------------------------------------------------------------- other kinds

// TFDV's comparator form ({"infinity_norm": {"threshold": t}}), or the older {"linf": t}
function comparatorText(comparator) {
  if (!comparator) return "–";
  return Object.entries(comparator).map(([k, v]) => `${k} ≤ ${v && typeof v === "object" ? v.threshold : v}`).join(", ") || "–";
}

function environmentText(c) {
  const parts = [...(c.in_environment || []).map((e) => `in ${e}`), ...(c.not_in_environment || []).map((e) => `not in ${e}`)];
  return parts.length ? parts.join(", ") : "–";
}

function schemaViewer(view) {
  const cols = view.data.columns || {};
  const out = [];
  if (view.data.default_environment) out.push(h("p", {}, `Environments: ${view.data.default_environment.join(", ")}`));
  out.push(table(["Column", "Type", "Required", "Min presence", "Domain", "Range", "Environments", "Drift", "Skew", "Description"],
    Object.entries(cols).map(([name, c]) => [h("strong", {}, name), c.type, c.required === false ? "no" : "yes", c.min_presence,
      c.domain ? h("span", { title: c.domain.join(", ") }, c.domain.slice(0, 8).join(", ") + (c.domain.length > 8 ? ` … (${c.domain.length})` : "")) : "–",
      c.range ? `${fmtValue(c.range.min)} … ${fmtValue(c.range.max)}` : "–",
      environmentText(c), comparatorText(c.drift_comparator || c.drift), comparatorText(c.skew_comparator), c.description || ""]),
    { class: "grid schema" }));
  return out;
}

function anomaliesViewer(view) {
  const d = view.data;
  const out = [h("p", {}, d.passed ? badge("passed") : badge("failed"), ` ${d.anomaly_count ?? 0} anomal${d.anomaly_count === 1 ? "y" : "ies"}`)];
  const rows = [];
  for (const [split, list] of Object.entries(d.splits || {})) {
    for (const a of list) rows.push([split, a.column ?? "(table)", h("code", {}, a.kind), badge(a.severity), a.description]);
  }
  out.push(rows.length ? table(["Split (where)", "Column (where)", "What", "Severity", "Why"], rows, { class: "grid anomalies" })
    : h("p", { class: "muted" }, "No anomalies."));
  if (d.environment) out.push(h("p", {}, `Validated as ${d.environment} data`));
  for (const [key, title] of [["drift", "Drift against the baseline"], ["skew", "Skew against the training data"]]) {
    const rows = [];
    for (const [split, cols] of Object.entries(d[key] || {})) {
      for (const [col, m] of Object.entries(cols)) {
        const over = m.threshold !== null && m.threshold !== undefined && m.value > m.threshold;
        rows.push(h("tr", { class: over ? "bad" : "" }, h("td", {}, split), h("td", {}, col), h("td", {}, m.metric),
          h("td", { class: "num" }, fmtNumber(m.value)), h("td", { class: "num" }, fmtValue(m.threshold)), h("td", {}, m.baseline_split || "")));
      }
    }
    if (rows.length) out.push(h("h3", {}, title), table(["Split", "Column", "Metric", "Value", "Threshold", "Baseline split"], rows));
  }
  if (d.expectations) out.push(h("h3", {}, "Expectations"), jsonBlock(d.expectations));
  return out;
}

function blessingBox(b) {
  if (!b) return null;
  const checks = (b.checks || []).map((c) => h("tr", { class: c.passed === false ? "bad" : "" },
    h("td", {}, c.metric), h("td", {}, c.kind, c.on && c.on !== "value" ? ` (${c.on === "ci_lower" ? "interval's lower" : "interval's upper"} end)` : ""), h("td", { class: "num" }, fmtNumber(c.value)),
    h("td", { class: "num" }, c.kind === "change" ? `baseline ${fmtValue(c.baseline)}` : fmtValue(c.bound)),
    h("td", {}, c.passed === null ? "skipped" : c.passed ? "passed" : "FAILED"), h("td", {}, c.reason)));
  return h("div", { class: `blessing ${b.blessed ? "blessed" : "not-blessed"}` },
    h("h3", {}, b.blessed ? "Blessed" : "Not blessed", b.artifact ? h("a", { class: "small", href: artifactHref(b.artifact.id) }, ` (blessing #${b.artifact.id})`) : null),
    h("ul", {}, (b.reasons || []).map((r) => h("li", {}, r))),
    checks.length ? table(["Metric", "Threshold", "Value", "Bound", "Result", "Why"], checks) : null);
}

/** "[lower, upper]" of a confidence interval, or null. */
function ciText(ci) {
  return ci ? `[${fmtNumber(ci.lower)}, ${fmtNumber(ci.upper)}]` : null;
}

function metricsTable(m) {
  const slices = m.slices || [];
  const overall = (slices[0] && slices[0].candidate) || {};
  const names = Object.keys(overall).filter((k) => typeof overall[k] === "number");
  const hasBaseline = slices.some((s) => s.baseline);
  const rows = slices.map((s) => h("tr", { "data-slice": s.slice_name }, h("th", {}, s.slice_name), names.map((n) => {
    const c = s.candidate ? s.candidate[n] : null, b = s.baseline ? s.baseline[n] : null;
    const ci = s.intervals && s.intervals.candidate ? s.intervals.candidate[n] : null;
    return h("td", { class: "num", "data-metric": n }, fmtNumber(c), hasBaseline ? h("span", { class: "muted small" }, ` (${fmtNumber(b)})`) : null,
      ci ? h("div", { class: "ci muted small", title: `${Math.round(m.confidence_intervals.confidence_level * 100)}% interval, std error ${fmtNumber(ci.std_error)}` }, ciText(ci)) : null);
  })));
  return h("div", { class: "scroll" }, h("table", { class: "grid compact metrics" }, h("thead", {}, h("tr", {}, h("th", {}, "slice"), names.map((n) => h("th", {}, n)))), h("tbody", {}, rows)));
}

const FAIRNESS_RATES = [["false_positive_rate", "FPR"], ["false_negative_rate", "FNR"], ["positive_rate", "positive rate"], ["precision", "precision"]];

/** Fairness indicators: each rate at each threshold per slice, with its gap against the overall slice. */
function fairnessSection(m) {
  const thresholds = m.fairness_thresholds || [];
  const slices = (m.slices || []).filter((s) => s.candidate && s.candidate.fairness);
  if (!thresholds.length || !slices.length) return null;
  const multi = !Object.keys(slices[0].candidate.fairness).some((k) => k.includes("@"));
  const classes = multi ? Object.keys(slices[0].candidate.fairness) : [null];
  const body = h("div", {});
  const pick = (obj, cls) => (obj && cls !== null ? obj[cls] : obj) || {};
  const draw = (cls) => {
    const columns = FAIRNESS_RATES.flatMap(([rate, label]) => thresholds.map((t) => [`${rate}@${fmtNumber(t)}`, `${label} @${fmtNumber(t)}`]));
    const rows = slices.map((s) => h("tr", { "data-slice": s.slice_name }, h("th", {}, s.slice_name), columns.map(([key]) => {
      const v = pick(s.candidate.fairness, cls)[key], gap = pick(s.candidate.fairness_gap, cls)[key];
      const big = typeof gap === "number" && Math.abs(gap) >= 0.1;
      return h("td", { class: "num" }, fmtNumber(v), s.slice_name !== "Overall" && typeof gap === "number"
        ? h("div", { class: `gap small ${big ? "big" : "muted"}` }, `${gap >= 0 ? "+" : ""}${fmtNumber(gap, 3)}`) : null);
    })));
    fill(body, h("div", { class: "scroll" }, h("table", { class: "grid compact fairness" },
      h("thead", {}, h("tr", {}, h("th", {}, "slice"), columns.map(([, label]) => h("th", {}, label)))), h("tbody", {}, rows))));
  };
  const chooser = multi ? h("select", { id: "fairness-class", "aria-label": "class" }, classes.map((c) => h("option", { value: c }, c))) : null;
  if (chooser) chooser.addEventListener("change", () => draw(chooser.value));
  draw(classes[0]);
  return h("div", { class: "eval-fairness" }, h("h3", {}, "Fairness indicators"),
    h("p", { class: "muted small" }, "A row is predicted positive when its score is above the threshold",
      multi ? ["; one class against the rest: ", chooser] : " (the positive class)",
      ". Under each rate: its gap against the overall slice."), body);
}

function curveSeries(plots, key, cls, x, y) {
  return ["candidate", "baseline"].map((role) => {
    const p = plots[role] && plots[role][key];
    const c = p && cls !== null ? p[cls] : p;
    return c && c[x] ? { label: role, points: c[x].map((v, i) => [v, c[y][i]]) } : null;
  }).filter(Boolean);
}

/** Per slice: ROC and precision-recall curves, calibration and the confusion matrix (from plots.json). */
function plotsSection(all) {
  const slices = (all || []).filter((s) => s.candidate && Object.keys(s.candidate).length);
  if (!slices.length) return null;
  const roc = slices[0].candidate.roc_curve;
  const multi = roc && !("fpr" in roc) && Object.keys(roc).length > 0;
  const classes = multi ? Object.keys(roc) : [null];
  const sliceSelect = h("select", { id: "plot-slice", "aria-label": "slice" }, slices.map((s, i) => h("option", { value: i }, s.slice_name)));
  const classSelect = multi ? h("select", { id: "plot-class", "aria-label": "class" }, classes.map((c) => h("option", { value: c }, c))) : null;
  const body = h("div", { class: "charts" });
  const draw = () => {
    const s = slices[Number(sliceSelect.value)];
    const cls = classSelect ? classSelect.value : null;
    const of = cls ? ` (${cls} vs rest)` : "";
    const charts = [
      unitChart(curveSeries(s, "roc_curve", cls, "fpr", "tpr"), { title: `ROC${of}`, xLabel: "false positive rate", yLabel: "true positive rate", diagonal: true, kind: "roc" }),
      unitChart(curveSeries(s, "pr_curve", cls, "recall", "precision"), { title: `Precision-recall${of}`, xLabel: "recall", yLabel: "precision", kind: "pr" }),
    ];
    const cal = s.candidate.calibration;
    if (cal) {
      const series = ["candidate", "baseline"].map((role) => s[role] && s[role].calibration ? {
        label: role, dots: true,
        points: s[role].calibration.buckets.filter((b) => b.weight > 0).map((b) => [b.mean_prediction, b.mean_label]),
      } : null).filter(Boolean);
      charts.push(unitChart(series, { title: `Calibration (${cal.class})`, xLabel: "mean prediction", yLabel: "mean label", diagonal: true, kind: "calibration" }));
    }
    const cm = s.candidate.confusion_matrix;
    if (cm) charts.push(h("figure", { class: "figure" }, heatmap(cm.labels, cm.weighted || cm.counts, { title: `Confusion matrix${cm.weighted ? " (weighted)" : ""}` })));
    fill(body, ...charts);
  };
  sliceSelect.addEventListener("change", draw);
  if (classSelect) classSelect.addEventListener("change", draw);
  draw();
  return h("div", { class: "eval-plots" }, h("h3", {}, "Plots"),
    h("p", { class: "muted small" }, "slice ", sliceSelect, classSelect ? [" class ", classSelect] : null), body);
}

function evaluationViewer(view) {
  const m = view.data.metrics;
  const ci = m.confidence_intervals;
  return [
    blessingBox(view.data.blessing),
    h("p", { class: "muted" }, `${m.model_type}, label ${m.label_key}, splits ${(m.splits || []).join(", ")}`,
      m.models && m.models.candidate ? [" · candidate ", h("a", { href: artifactHref(m.models.candidate.id) }, `model #${m.models.candidate.id}`)] : null,
      m.models && m.models.baseline ? [" · baseline ", h("a", { href: artifactHref(m.models.baseline.id) }, `model #${m.models.baseline.id}`), " (in brackets)"] : null,
      ci ? ` · under each value: its ${Math.round(ci.confidence_level * 100)}% confidence interval (Poisson bootstrap, ${ci.num_bootstrap_samples} samples, seed ${ci.seed})` : null),
    metricsTable(m),
    fairnessSection(m),
    plotsSection(view.data.plots),
  ];
}

function curves(training) {
  if (!training) return h("p", { class: "muted" }, "No training history.");
  const hist = training.history || {};
  const epochs = training.epochs || [];
  const base = [...new Set(Object.keys(hist).map((k) => k.replace(/^val_/, "")))];
  const charts = base.map((name) => lineChart(
    [name, `val_${name}`].filter((k) => hist[k]).map((k) => ({ label: k, points: hist[k].map((v, i) => [epochs[i] ?? i, v]) })),
    { title: name, xLabel: "epoch" }));
  return h("div", {},
    h("p", { class: "muted" }, `${epochs.length} epochs`, training.best_epoch != null ? `, best epoch ${training.best_epoch}` : "",
      training.stopped_early ? ", stopped early" : "",
      training.weights_epoch != null ? `, model weights (and its metrics) from epoch ${training.weights_epoch}` : "",
      training.artifact ? [" · ", h("a", { href: artifactHref(training.artifact.id) }, `ModelRun #${training.artifact.id}`)] : null),
    h("div", { class: "charts" }, charts));
}

function mlflowBox(m) {
  if (!m) return h("p", { class: "muted" }, "No MLflow run recorded.");
  return kvTable([
    ["MLflow run", m.url ? h("a", { href: m.url, target: "_blank", rel: "noopener", class: "mlflow-link" }, m.run_id) : h("code", {}, m.run_id)],
    ["experiment", m.experiment_id], ["tracking URI", m.tracking_uri],
    !m.url && m.command ? ["show with", h("code", {}, m.command)] : null,
  ]);
}

function signatureTables(sig) {
  if (!sig) return h("p", { class: "muted" }, "No signature.json.");
  const inputs = Object.entries(sig.inputs || {}).map(([k, v]) => [h("strong", {}, k), v.dtype, JSON.stringify(v.shape),
    v.encoder && v.encoder.vocabulary ? v.encoder.vocabulary.join(", ") : "–"]);
  const outputs = Object.entries(sig.outputs || {}).map(([k, v]) => [h("strong", {}, k), v.dtype, JSON.stringify(v.shape)]);
  return h("div", { class: "two" },
    h("div", {}, h("h3", {}, "Inputs"), table(["Name", "dtype", "shape", "vocabulary"], inputs)),
    h("div", {}, h("h3", {}, "Outputs"), table(["Name", "dtype", "shape"], outputs)));
}

function modelViewer(view) {
  const d = view.data;
  return [
    h("h3", {}, "Signature"), signatureTables(d.signature),
    kvTable([["size", fmtBytes(d.size_bytes)], ...Object.entries(d.files).map(([k, v]) => [k, fmtBytes(v)])]),
    h("h3", {}, "MLflow"), mlflowBox(d.mlflow),
    h("h3", {}, "Training curves"), curves(d.training),
  ];
}

function verdictViewer(view, key = "blessed") {
  const d = view.data;
  const ok = d[key];
  return [h("p", {}, badge(ok ? (key === "pushed" ? "pushed" : "blessed") : key === "pushed" ? "not-pushed" : "not-blessed")),
    (d.reasons || []).length ? h("ul", {}, d.reasons.map((r) => h("li", {}, pre(r, "inline")))) : null,
    d.latency_ms ? kvTable(Object.entries(d.latency_ms).map(([k, v]) => [`latency ${k} (ms)`, v])) : null,
    d.checks && !Array.isArray(d.checks) ? table(["Check", "Passed", "Detail"], Object.entries(d.checks).map(([k, c]) => [k, c.passed ? "yes" : "no", c.detail || ""])) : null,
    d.checks && Array.isArray(d.checks) ? blessingBox(d) : null,
    d.destinations ? h("div", {}, h("h3", {}, "Destinations"), jsonBlock(d.destinations)) : null,
    details("JSON", false, jsonBlock(d))];
}

function examplesViewer(view) {
  const d = view.data || {};
  return [kvTable(Object.entries(d.row_counts || {}).map(([s, n]) => [`rows in ${s}`, n])),
    table(["Column", "Type"], Object.entries(d.columns || {}))];
}

function csvTable(text, limit = 50) {
  const rows = text.split(/\r?\n/).filter((l) => l.length).slice(0, limit + 1).map((l) => l.split(","));
  if (!rows.length) return h("p", { class: "muted" }, "empty");
  return h("div", { class: "scroll" }, table(rows[0], rows.slice(1), { class: "grid compact" }));
}

function filesViewer(view) {
  return view.data.files.map((f) => h("div", { class: "preview" },
    h("h3", {}, h("a", { href: fileHref(view.artifact.id, f.path) }, f.path), h("span", { class: "muted small" }, ` ${fmtBytes(f.size)}${f.truncated ? ", first 64 kB" : ""}`)),
    f.json !== undefined ? jsonBlock(f.json) : f.format === "csv" && !f.truncated ? csvTable(f.text) : pre(f.text)));
}

/** Render the viewer of one artifact into an array of nodes. */
export async function renderViewer(view) {
  switch (view.kind) {
    case "statistics": return statisticsViewer(view);
    case "schema": return schemaViewer(view);
    case "anomalies": return anomaliesViewer(view);
    case "evaluation": return evaluationViewer(view);
    case "blessing": return [blessingBox(view.data), details("JSON", false, jsonBlock(view.data))];
    case "infra_blessing": return verdictViewer(view, "blessed");
    case "pushed_model": return verdictViewer(view, "pushed");
    case "model": return modelViewer(view);
    case "model_run": return [h("h3", {}, "Training curves"), curves(view.data.training), h("h3", {}, "MLflow"), mlflowBox(view.data.mlflow),
      view.data.log ? details("trainer.log", false, pre(view.data.log, "code log")) : null];
    case "examples": return examplesViewer(view);
    case "transform_graph": return view.data ? [details("transform.json", true, jsonBlock(view.data))] : [];
    case "value": return [jsonBlock(view.data)];
    case "files": return filesViewer(view);
    default: return [];
  }
}

export { section };
