// The compare page: two or more runs side by side — parameter diff, metric diff, changed fingerprints.
import { fill, api, artifactHref, badge, fmtDuration, fmtNumber, fmtTime, fmtValue, h, runHref, setTitle } from "../lib/dom.js";
import { lineChart } from "../lib/charts.js";

/** Each trainer's curves with one line per run (and per run's validation curve), metric by metric. */
function trainingCurves(runs, training) {
  if (!training || !training.length) return h("p", { class: "muted" }, "No training history in these runs.");
  return training.map((t) => {
    const names = [...new Set(t.runs.flatMap((doc) => Object.keys((doc && doc.history) || {})).map((k) => k.replace(/^val_/, "")))];
    return [h("h3", {}, t.node), h("div", { class: "charts" }, names.map((name) => lineChart(
      t.runs.flatMap((doc, i) => (doc ? [name, `val_${name}`].filter((k) => doc.history[k]).map((k) => ({
        label: `run ${i + 1} ${k}`, points: doc.history[k].map((v, j) => [(doc.epochs || [])[j] ?? j, v]),
      })) : [])),
      { title: name, xLabel: "epoch" })))];
  });
}

async function picker(main, chosen) {
  const page = await api("/api/runs?limit=100");
  const boxes = page.runs.map((r) => h("input", { type: "checkbox", name: "runs", value: r.id, checked: chosen.includes(r.id), "aria-label": `select ${r.id}` }));
  const form = h("form", { method: "get", action: "/compare", class: "picker" },
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["", "Run", "Pipeline", "State", "Started"].map((c) => h("th", {}, c)))),
      h("tbody", {}, page.runs.map((r, i) => h("tr", {}, h("td", {}, boxes[i]), h("td", {}, r.id), h("td", {}, r.pipeline), h("td", {}, badge(r.state)), h("td", {}, fmtTime(r.start_time)))))),
    h("button", { type: "submit", class: "primary" }, "Compare"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    location.href = `/compare?runs=${ids.map(encodeURIComponent).join(",")}`;
  });
  fill(main, h("h1", {}, "Compare runs"), h("p", { class: "muted" }, "Pick two or more runs."), form);
}

function diffTable(runs, rows, cell, { label = (r) => r.name, onlyDiff = false } = {}) {
  const shown = onlyDiff ? rows.filter((r) => r.differs || r.changed) : rows;
  if (!shown.length) return h("p", { class: "muted" }, "No differences.");
  return h("div", { class: "scroll" }, h("table", { class: "grid diff" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r, i) => h("th", {}, h("a", { href: runHref(r.id) }, `run ${i + 1}`))))),
    h("tbody", {}, shown.map((row) => h("tr", { class: row.differs || row.changed ? "differs" : "" },
      h("th", {}, label(row)), runs.map((_, i) => h("td", {}, cell(row, i))))))));
}

export async function render(main) {
  setTitle("Compare runs");
  const chosen = (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean);
  if (chosen.length < 2) return picker(main, chosen);
  const c = await api(`/api/compare?runs=${chosen.map(encodeURIComponent).join(",")}`);
  const runs = c.runs;
  const onlyDiff = h("input", { type: "checkbox", id: "only-diff", checked: true });
  const body = h("div", {});
  const draw = () => {
    const od = onlyDiff.checked;
    fill(body, 
      h("section", { class: "card", id: "parameter-diff" }, h("h2", {}, "Parameters"),
        diffTable(runs, c.parameters, (r, i) => fmtValue(r.values[i]), { onlyDiff: false }),
        h("h3", {}, "Node parameters that differ"),
        diffTable(runs, c.node_parameters, (r, i) => fmtValue(r.values[i]), { label: (r) => `${r.node}.${r.name}` }),
        h("p", { class: "muted small" }, `${c.same_node_parameters} node parameters are the same in every run.`)),
      h("section", { class: "card", id: "metric-diff" }, h("h2", {}, "Metrics"),
        diffTable(runs, c.metrics, (r, i) => h("span", {}, fmtNumber(r.values[i]),
          i > 0 && r.deltas[i] ? h("span", { class: "muted small" }, ` ${r.deltas[i] > 0 ? "+" : ""}${fmtNumber(r.deltas[i], 3)}`) : null),
        { label: (r) => `${r.node}.${r.output} ${r.name}`, onlyDiff: od })),
      h("section", { class: "card", id: "artifact-diff" }, h("h2", {}, "Artifact fingerprints"),
        diffTable(runs, c.artifacts, (r, i) => r.ids[i] ? h("a", { href: artifactHref(r.ids[i]), title: r.fingerprints[i] || "" },
          h("code", {}, (r.fingerprints[i] || "").slice(0, 10) || "–"), ` #${r.ids[i]}`) : "–",
        { label: (r) => h("span", {}, `${r.node}.${r.output} `, h("span", { class: "muted small" }, r.type), r.changed ? h("span", { class: "tag" }, "changed") : null), onlyDiff: od })),
      h("section", { class: "card", id: "training-curves" }, h("h2", {}, "Training curves"), trainingCurves(runs, c.training)),
      h("section", { class: "card" }, h("h2", {}, "Node states"),
        diffTable(runs, c.nodes.map((n) => ({ ...n, differs: new Set(n.states).size > 1 })), (r, i) => (r.states[i] ? badge(r.states[i]) : "–"), { label: (r) => r.node })));
  };
  onlyDiff.addEventListener("change", draw);
  fill(main, 
    h("h1", {}, `Compare ${runs.length} runs`),
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["", "Run", "Pipeline", "State", "Started", "Duration"].map((x) => h("th", {}, x)))),
      h("tbody", {}, runs.map((r, i) => h("tr", {}, h("th", {}, `run ${i + 1}`), h("td", {}, h("a", { href: runHref(r.id) }, r.id)), h("td", {}, r.pipeline),
        h("td", {}, badge(r.state)), h("td", {}, fmtTime(r.start_time)), h("td", { class: "num" }, fmtDuration(r.duration_s)))))),
    h("p", {}, h("label", {}, onlyDiff, " show only what differs (metrics and fingerprints)"), " · ",
      h("a", { href: `/compare?runs=${chosen.map(encodeURIComponent).join(",")}&pick=1`, onclick: (ev) => { ev.preventDefault(); picker(main, chosen); } }, "change runs")),
    body);
  draw();
}
