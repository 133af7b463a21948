// The run page: the DAG coloured by node state, a node's execution on click, every execution;
// while the run is RUNNING the page polls the API and redraws the states without a reload.
import { fill, api, badge, errorBox, executionHref, fmtDuration, fmtTime, fmtValue, h, kvTable, setTitle } from "../lib/dom.js";
import { drawGraph } from "../lib/graph.js";
import { executionView } from "./execution.js";

const POLL_MS = 1500;
const STATES = ["complete", "cached", "failed", "running", "pending", "skipped", "cancelled"];

function graphNodes(run) {
  return run.nodes.map((n) => ({
    id: n.id, label: n.id, sub: n.component !== n.id ? n.component : n.duration_s != null ? fmtDuration(n.duration_s) : "",
    kind: "node", state: n.state, badge: n.halted ? "halted" : n.executions > 1 ? `×${n.executions}` : "",
    title: n.error || n.skip_reason || (n.halted ? `halted the pipeline: ${n.halted.split("\n")[0]}` : "") ||
      n.cache_miss_reason || (n.cached_from ? `cached from execution ${n.cached_from}` : ""),
  }));
}

function structure(run) {
  return JSON.stringify([run.nodes.map((n) => n.id), run.edges]);
}

export async function render(main, runId) {
  let run = await api(`/api/runs/${encodeURIComponent(runId)}`);
  setTitle(run.id);
  const params = new URLSearchParams(location.search);
  let selected = params.get("node");
  const head = h("div", { class: "run-head" });
  const graphBox = h("div", { class: "graph-box", id: "dag" });
  const panel = h("aside", { class: "panel", id: "node-panel" }, h("p", { class: "muted" }, "Click a node to see its execution."));
  const execBox = h("div", { id: "executions" });
  const live = h("span", { class: "live", id: "live" });
  let graph = null, shape = "";

  const select = async (nodeId) => {
    selected = nodeId;
    const url = new URL(location.href);
    url.searchParams.set("node", nodeId);
    history.replaceState(null, "", url);
    if (graph) graph.select(nodeId);
    const node = run.nodes.find((n) => n.id === nodeId);
    if (!node) return;
    if (!node.execution_id) {
      fill(panel, h("h2", {}, node.id), badge(node.state), h("p", { class: "muted" }, `No execution in this run (${node.state}).`));
      return;
    }
    fill(panel, h("p", { class: "muted" }, "Loading…"));
    try {
      fill(panel, executionView(await api(`/api/executions/${node.execution_id}`), { compact: true }));
    } catch (err) {
      fill(panel, errorBox(err));
    }
  };

  const drawHead = () => {
    const counts = Object.entries(run.state_counts || {}).map(([s, n]) => h("span", { class: `count state-${s}` }, `${n} ${s}`));
    fill(head, 
      h("div", { class: "crumbs" }, h("a", { href: `/runs?pipeline=${encodeURIComponent(run.pipeline || "")}` }, run.pipeline || "runs"), " / run"),
      h("div", { class: "page-head" }, h("h1", {}, run.id), badge(run.state), live,
        h("a", { class: "button", href: `/compare?runs=${encodeURIComponent(run.id)}` }, "Compare with…")),
      run.deleted_time ? h("p", { class: "deleted-marker", id: "run-deleted" },
        `deleted by gc on ${fmtTime(run.deleted_time)}${run.delete_reason ? ` (${run.delete_reason})` : ""}: its artifacts that no kept run uses are gone`) : null,
      h("div", { class: "run-meta" },
        kvTable([["started", fmtTime(run.start_time)], ["duration", run.live ? "running" : fmtDuration(run.duration_s)],
          ["runner", run.runner], ["pipeline root", run.pipeline_root], run.attempts > 1 ? ["attempts", run.attempts] : null]),
        Object.keys(run.parameters || {}).length
          ? kvTable(Object.entries(run.parameters).map(([k, v]) => [k, fmtValue(v)]), "kv params") : null,
        h("div", { class: "counts" }, counts)));
  };

  const drawGraphNow = () => {
    graph = drawGraph(graphBox, graphNodes(run), run.edges, { onSelect: (n) => select(n.id), selected, label: `DAG of ${run.id}` });
    shape = structure(run);
  };

  const drawExecutions = async (offset = 0) => {
    const page = await api(`/api/runs/${encodeURIComponent(run.id)}/executions?limit=50&offset=${offset}`);
    const more = h("div", { class: "pager" }, h("span", { class: "muted" }, `${page.total} execution${page.total === 1 ? "" : "s"}`),
      offset > 0 ? h("button", { type: "button", onclick: () => drawExecutions(Math.max(0, offset - 50)) }, "← newer") : null,
      offset + 50 < page.total ? h("button", { type: "button", onclick: () => drawExecutions(offset + 50) }, "older →") : null);
    fill(execBox, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Execution", "Node", "State", "Started", "Duration", "Cached from"].map((c) => h("th", {}, c)))),
      h("tbody", {}, page.executions.map((e) => h("tr", {},
        h("td", {}, h("a", { href: executionHref(e.id) }, `#${e.id}`)), h("td", {}, e.node_id), h("td", {}, badge(e.node_state)),
        h("td", {}, fmtTime(e.start_time)), h("td", { class: "num" }, fmtDuration(e.duration_s)),
        h("td", {}, e.cached_from ? h("a", { href: executionHref(e.cached_from) }, `#${e.cached_from}`) : "–"))))), more);
  };

  const legend = h("div", { class: "legend states" }, STATES.map((s) => h("span", { class: `lg state-${s}` }, h("i", {}), s)));
  drawHead();
  fill(main, head, h("div", { class: "run-body" },
    h("section", { class: "card dag-card" }, h("h2", {}, "DAG"), legend, graphBox), panel),
    h("section", { class: "card" }, h("h2", {}, "Executions"), execBox));
  drawGraphNow();
  drawExecutions();
  if (selected) select(selected);

  // Live: poll while the run is RUNNING; node states change in place.
  const poll = async () => {
    if (!run.live) { live.textContent = ""; return; }
    live.textContent = "live";
    try {
      const next = await api(`/api/runs/${encodeURIComponent(run.id)}`);
      const before = new Map(run.nodes.map((n) => [n.id, `${n.state}/${n.execution_id}`]));
      run = next;
      drawHead();
      if (structure(run) !== shape) drawGraphNow();
      else for (const n of run.nodes) graph.setState(n.id, n.state);
      const changed = run.nodes.some((n) => before.get(n.id) !== `${n.state}/${n.execution_id}`);
      if (changed) {
        drawExecutions();
        if (selected) select(selected);
      }
      main.dataset.updated = String(Date.now());
    } catch (err) {
      live.textContent = `live (retrying: ${err.message})`;
    }
    setTimeout(poll, POLL_MS);
  };
  if (run.live) setTimeout(poll, POLL_MS);
}
