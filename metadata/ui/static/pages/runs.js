// The runs page: pipelines, then their runs (state, start, duration, parameters), filtered and paged.
import { fill, api, badge, fmtDuration, fmtTime, fmtValue, h, runHref, setTitle } from "../lib/dom.js";

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

  const selected = new Set();
  const compare = h("button", { type: "button", class: "primary", disabled: true, id: "compare-selected" }, "Compare selected");
  compare.addEventListener("click", () => { location.href = `/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`; });
  const rows = page.runs.map((r) => {
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
      h("td", { class: "params", title: paramText }, paramText || "–"));
  });
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
    h("table", { class: "grid runs", id: "runs" },
      h("thead", {}, h("tr", {}, ["", "Run", "Pipeline", "State", "Started", "Duration", "Parameters"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No runs match.")))),
    nav);
}

function pageHref(params, offset) {
  const p = new URLSearchParams(params);
  p.set("offset", offset);
  return `/runs?${p}`;
}
