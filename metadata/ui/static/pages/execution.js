// One execution: parameters, input and output artifacts, cache outcome, timing, error and logs.
// Shown in the run page's side panel and on its own page (/executions/<id>).
import { fill, api, artifactHref, badge, details, executionHref, fileHref, fmtDuration, fmtTime, fmtValue, h, jsonBlock, kvTable, pre, runHref, setTitle,
} from "../lib/dom.js";

function artifactList(byKey) {
  const keys = Object.keys(byKey || {});
  if (!keys.length) return h("p", { class: "muted" }, "none");
  return h("ul", { class: "artifacts" }, keys.flatMap((key) => byKey[key].map((a) =>
    h("li", {}, h("span", { class: "key" }, key), " ",
      h("a", { href: artifactHref(a.id), class: "artifact-link", "data-key": key }, `${a.type} #${a.id}`),
      h("span", { class: "muted small" }, ` ${a.name}`),
      a.deleted ? h("span", { class: "small deleted-marker" }, ` ${a.deleted}`) : null))));
}

function cacheBlock(e) {
  const c = e.cache || {};
  if (c.hit || c.source) {
    const src = c.source || {};
    return h("div", { class: "cache hit" }, h("strong", {}, "Cache hit: "), "reused the outputs of ",
      h("a", { href: executionHref(src.id) }, `execution ${src.id}`),
      src.run_id ? [" in run ", h("a", { href: runHref(src.run_id) }, src.run_id)] : null);
  }
  if (c.miss_reason) return h("div", { class: "cache miss" }, h("strong", {}, "Ran because: "), c.miss_reason);
  return null;
}

export function executionView(e, { compact = false } = {}) {
  const parts = [
    h("div", { class: "exec-head" }, h("h2", {}, e.node_id), badge(e.node_state),
      h("a", { href: executionHref(e.id), class: "muted small" }, ` execution ${e.id}`)),
    e.description ? h("p", { class: "description muted" }, e.description) : null,
    kvTable([
      ["component", e.component],
      ["run", e.run_id ? h("a", { href: runHref(e.run_id) }, e.run_id) : "–"],
      ["started", fmtTime(e.start_time)],
      ["duration", fmtDuration(e.duration_s)],
      e.attempt > 1 ? ["attempt", e.attempt] : null,
      ["cache key", h("code", { class: "small" }, e.cache && e.cache.key ? e.cache.key.slice(0, 16) + "…" : "–")],
    ]),
    cacheBlock(e),
    e.halted ? h("div", { class: "cache halted" }, h("strong", {}, "Halted the pipeline: "), pre(e.halted)) : null,
    e.skip_reason ? h("div", { class: "cache halted" }, h("strong", {}, "Skipped: "), e.skip_reason) : null,
    e.error_message ? h("div", { class: "error exec-error" }, h("strong", {}, "Error: "), e.error_message) : null,
    e.traceback ? details("Traceback", !compact, pre(e.traceback, "code traceback")) : null,
    (e.attempts || []).length > 1 ? [h("h3", {}, "Attempts"), h("table", { class: "grid attempts" },
      h("thead", {}, h("tr", {}, ["attempt", "execution", "state", "started", "duration", "error"].map((c) => h("th", {}, c)))),
      h("tbody", {}, e.attempts.map((t) => h("tr", { class: t.id === e.id ? "current" : null },
        h("td", {}, String(t.attempt)), h("td", {}, t.id === e.id ? `#${t.id}` : h("a", { href: executionHref(t.id) }, `#${t.id}`)),
        h("td", {}, badge(t.node_state)), h("td", {}, fmtTime(t.start_time)), h("td", {}, fmtDuration(t.duration_s)),
        h("td", { class: "small" }, t.error_message || "")))))] : null,
    h("h3", {}, "Parameters"),
    Object.keys(e.parameters || {}).length ? kvTable(Object.entries(e.parameters).map(([k, v]) =>
      [k, (e.arg_docs || {})[k] ? h("div", {}, fmtValue(v), h("div", { class: "muted small arg-doc" }, e.arg_docs[k])) : v]))
      : h("p", { class: "muted" }, "none"),
    h("h3", {}, "Inputs"), artifactList(e.inputs),
    (e.external_inputs || []).length ? [h("h3", {}, "External inputs"), h("ul", { class: "artifacts" }, e.external_inputs.map((x) =>
      h("li", {}, h("span", { class: "key" }, x.parameter), " ", h("code", {}, x.path), x.fingerprint ? h("span", { class: "muted small" }, ` fingerprint ${x.fingerprint.slice(0, 12)}`) : null)))] : null,
    h("h3", {}, "Outputs"), artifactList(e.outputs),
    (e.logs || []).length ? [h("h3", {}, "Logs"), e.logs.map((l) => details(`${l.output}/${l.path}`, !compact,
      pre(l.text, "code log"), h("a", { href: l.artifact_id == null ? `/api/executions/${l.execution_id}/log` : fileHref(l.artifact_id, l.path) }, "whole file")))] : null,
    details("All properties", false, jsonBlock(e.properties)),
  ];
  return h("div", { class: "execution", "data-execution": e.id }, parts);
}

export async function render(main, id) {
  const e = await api(`/api/executions/${id}`);
  setTitle(`${e.node_id} · execution ${e.id}`);
  fill(main, h("div", { class: "crumbs" }, e.run_id ? [h("a", { href: runHref(e.run_id) }, e.run_id), " / "] : null, e.node_id),
    h("section", { class: "card" }, executionView(e)));
}
