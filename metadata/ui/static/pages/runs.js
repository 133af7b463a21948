// The runs page: pipelines, then their runs (state, start, duration, parameters), filtered and paged.
import { fill, api, badge, fmtDuration, fmtNumber, fmtTime, fmtValue, h, runHref, setTitle } from "../lib/dom.js";
import { lineChart } from "../lib/charts.js";

const PAGE = 50;
// The server stops counting at a cap: an inexact count is a lower bound, shown as "10,000+".
const count = (n, exact) => `${Number(n).toLocaleString("en-US")}${exact === false ? "+" : ""}`;

export async function render(main) {
  setTitle("Runs");
  const params = new URLSearchParams(location.search);
  const filters = { pipeline: params.get("pipeline") || "", state: params.get("state") || "", q: params.get("q") || "",
    deleted: params.get("deleted") === "1" ? "1" : "" };
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const query = new URLSearchParams({ limit: PAGE, offset });
  for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
  const [pipelines, page] = await Promise.all([api("/api/pipelines"), api(`/api/runs?${query}`)]);

  const form = h("form", { class: "filters", method: "get", action: "/runs", role: "search" },
    h("label", {}, "Pipeline ", h("select", { name: "pipeline" }, h("option", { value: "" }, "all"),
      pipelines.pipelines.map((p) => h("option", { value: p.name, selected: p.name === filters.pipeline }, `${p.name} (${count(p.runs, p.runs_exact)})`)))),
    h("label", {}, "State ", h("select", { name: "state" }, h("option", { value: "" }, "any"),
      page.states.map((s) => h("option", { value: s, selected: s === filters.state }, s.toLowerCase())))),
    h("label", {}, "Run id ", h("input", { name: "q", type: "search", value: filters.q, placeholder: "search by id", autocomplete: "off" })),
    h("label", {}, h("input", { name: "deleted", type: "checkbox", value: "1", checked: filters.deleted === "1", id: "show-deleted" }),
      " show runs deleted by gc"),
    h("button", { type: "submit" }, "Filter"));

  // Metric columns (as MLflow's runs table): chosen in the URL (?metrics=a,b), sortable, filterable.
  const names = page.metric_names || [];
  const wanted = (params.get("metrics") || "").split(",").filter((m) => names.includes(m));
  const columns = wanted.length ? wanted : names.filter((n) => /accuracy|loss|auc|rmse|mae|mse/i.test(n)).slice(0, 3);
  const sortBy = params.get("sort") || "";
  const filter = parseFilter(params.get("where") || "");
  let shown = page.runs.filter((r) => !filter || filter.test((r.metrics || {})[filter.name]));
  if (sortBy) {
    const desc = sortBy.startsWith("-");
    const key = desc ? sortBy.slice(1) : sortBy;
    const value = (r) => (r.metrics || {})[key];
    shown = [...shown].sort((a, b) => (value(a) == null) - (value(b) == null) || (desc ? value(b) - value(a) : value(a) - value(b)));
  }
  const selected = new Set();
  const compare = h("button", { type: "button", class: "primary", disabled: true, id: "compare-selected" }, "Compare selected");
  compare.addEventListener("click", () => { location.href = `/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`; });
  const rows = shown.map((r) => {
    const box = h("input", { type: "checkbox", "aria-label": `select ${r.id}`, value: r.id, class: "pick" });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(r.id); else selected.delete(r.id);
      compare.disabled = selected.size < 2;
      compare.textContent = selected.size >= 2 ? `Compare ${selected.size} runs` : "Compare selected";
    });
    const paramText = Object.entries(r.parameters || {}).map(([k, v]) => `${k}=${fmtValue(v)}`).join(", ");
    return h("tr", { class: `run-row${r.deleted_time ? " deleted" : ""}`, "data-run": r.id },
      h("td", {}, box),
      h("td", {}, h("a", { href: runHref(r.id), class: "run-link" }, r.id)),
      h("td", {}, r.pipeline || "–"),
      h("td", {}, badge(r.state), r.deleted_time ? [" ", h("span", { class: "badge state-deleted", title: `deleted by gc on ${fmtTime(r.deleted_time)}` }, "deleted")] : null),
      h("td", {}, fmtTime(r.start_time)),
      h("td", { class: "num" }, r.state === "RUNNING" ? "running" : fmtDuration(r.duration_s)),
      h("td", { class: "params", title: paramText }, paramText || "–"),
      columns.map((m) => h("td", { class: "num metric", "data-metric": m }, (r.metrics || {})[m] == null ? "–" : fmtNumber(r.metrics[m]))));
  });
  const metricHead = columns.map((m) => {
    const next = sortBy === `-${m}` ? m : `-${m}`;
    const arrow = sortBy === m ? " ▲" : sortBy === `-${m}` ? " ▼" : "";
    return h("th", { class: "num metric", title: `sort by ${m}` }, h("a", { href: withParams(params, { sort: next, offset: null }) }, m + arrow));
  });
  const metricForm = names.length ? h("form", { class: "filters metric-filters", method: "get", action: "/runs" },
    Object.entries(filters).filter(([, v]) => v).map(([k, v]) => h("input", { type: "hidden", name: k, value: v })),
    h("label", {}, "Metric columns ", h("select", { name: "metrics", multiple: true, size: Math.min(4, names.length), id: "metric-columns" },
      names.map((n) => h("option", { value: n, selected: columns.includes(n) }, n)))),
    h("label", {}, "Where ", h("input", { name: "where", value: params.get("where") || "", placeholder: "Evaluator.accuracy >= 0.9",
      id: "metric-where", autocomplete: "off" })),
    h("button", { type: "submit" }, "Apply")) : null;
  if (metricForm) {
    metricForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const picked = [...metricForm.querySelector("select").selectedOptions].map((o) => o.value);
      location.href = withParams(params, { metrics: picked.join(",") || null, where: metricForm.querySelector("#metric-where").value || null, offset: null });
    });
  }
  // A chosen metric across this pipeline's runs, oldest to newest
  const chart = filters.pipeline && columns.length ? h("section", { class: "card", id: "metric-chart" }, h("h2", {}, `Metrics across runs of ${filters.pipeline}`),
    h("div", { class: "charts" }, columns.map((m) => lineChart([{ label: m, points: [...page.runs].reverse()
      .map((r, i) => [i + 1, (r.metrics || {})[m] ?? null]) }], { title: m, xLabel: "run (oldest → newest, this page)" })))) : null;
  const nav = h("div", { class: "pager" },
    h("span", { class: "muted" }, page.total ? `runs ${offset + 1}–${offset + page.runs.length} of ${count(page.total, page.total_exact)}` : "no runs"),
    offset > 0 ? h("a", { href: pageHref(params, Math.max(0, offset - PAGE)) }, "← newer") : null,
    offset + PAGE < page.total ? h("a", { href: pageHref(params, offset + PAGE) }, "older →") : null);
  fill(main, 
    h("div", { class: "page-head" }, h("h1", {}, "Runs"), compare),
    h("div", { class: "pipelines" }, pipelines.pipelines.map((p) =>
      h("a", { class: `chip${p.name === filters.pipeline ? " active" : ""}`, href: `/runs?pipeline=${encodeURIComponent(p.name)}` },
        h("strong", {}, p.name), ` ${count(p.runs, p.runs_exact)} run${p.runs === 1 && p.runs_exact !== false ? "" : "s"}`))),
    form,
    metricForm,
    filter && filter.error ? h("div", { class: "error" }, filter.error) : null,
    chart,
    h("table", { class: "grid runs", id: "runs" },
      h("thead", {}, h("tr", {}, ["", "Run", "Pipeline", "State", "Started", "Duration", "Parameters"].map((c) => h("th", {}, c)), metricHead)),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7 + columns.length, class: "muted" }, "No runs match.")))),
    nav);
}

const OPS = { ">=": (a, b) => a >= b, "<=": (a, b) => a <= b, ">": (a, b) => a > b, "<": (a, b) => a < b, "==": (a, b) => a === b, "!=": (a, b) => a !== b };

/** "name >= 0.9" → {name, test(value)}; a malformed one → {error}; empty → null. */
function parseFilter(text) {
  if (!text.trim()) return null;
  const m = text.match(/^\s*([\w.\-\/]+)\s*(>=|<=|==|!=|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$/i);
  if (!m || Number.isNaN(Number(m[3]))) {
    return { name: "", error: `cannot read the filter "${text}": write <metric> <op> <number>, e.g. Evaluator.accuracy >= 0.9`, test: () => true };
  }
  const [, name, op, value] = m;
  return { name, test: (v) => v != null && OPS[op](v, Number(value)) };
}

function withParams(params, changes) {
  const p = new URLSearchParams(params);
  for (const [k, v] of Object.entries(changes)) if (v === null) p.delete(k); else p.set(k, v);
  return `/runs?${p}`;
}

function pageHref(params, offset) {
  const p = new URLSearchParams(params);
  p.set("offset", offset);
  return `/runs?${p}`;
}
