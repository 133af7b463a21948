// Notebook outputs: the UI's own viewers drawn into a cell, from data embedded in the cell.
// jfx.notebook bundles this file with dom.js, charts.js, graph.js and viewers.js into one
// script per output (no server, no network); the output lives in a shadow root so the
// UI's stylesheet and the notebook's never touch.
import { badge, fill, fmtDuration, fmtValue, h, kvTable, table } from "./dom.js";
import { drawGraph } from "./graph.js";
import { renderViewer } from "./viewers.js";

const PAGE_ROWS = 25;
const PAGE_COLUMNS = 12;

function pager(items, size, show) {
  if (items.length <= size) return null;
  let page = 0;
  const pages = Math.ceil(items.length / size);
  const label = h("span", { class: "muted small pager-label" });
  const prev = h("button", { type: "button", class: "pager-prev" }, "‹ previous");
  const next = h("button", { type: "button", class: "pager-next" }, "next ›");
  const draw = () => {
    items.forEach((el, i) => show(el, Math.floor(i / size) === page));
    label.textContent = ` ${page * size + 1}–${Math.min(items.length, (page + 1) * size)} of ${items.length} `;
    prev.disabled = page === 0;
    next.disabled = page === pages - 1;
  };
  prev.addEventListener("click", () => { page = Math.max(0, page - 1); draw(); });
  next.addEventListener("click", () => { page = Math.min(pages - 1, page + 1); draw(); });
  draw();
  return h("div", { class: "pager" }, prev, label, next);
}

/** Page long tables and long lists of statistics columns, in place. */
function paginate(root) {
  for (const tbody of root.querySelectorAll("table > tbody:not([data-paged])")) {
    tbody.dataset.paged = "true";
    const bar = pager([...tbody.children], PAGE_ROWS, (el, on) => { el.hidden = !on; });
    if (bar) tbody.parentElement.after(bar);
  }
  for (const stats of root.querySelectorAll(".statistics:not([data-paged])")) {
    stats.dataset.paged = "true";
    const bar = pager([...stats.querySelectorAll(":scope > .stat-col, :scope > div > .stat-col")], PAGE_COLUMNS,
      (el, on) => { el.hidden = !on; });
    if (bar) stats.append(bar);
  }
}

function graphBox(nodes, edges, label) {
  const box = h("div", { class: "graph-box", "data-nodes": String(nodes.length) });
  // drawn once the box is in the document, where it has a size
  requestAnimationFrame(() => drawGraph(box, nodes, edges, { label }));
  return box;
}

function runNodes(run) {
  return run.nodes.map((n) => ({
    id: n.id, label: n.id, sub: n.component !== n.id ? n.component : n.duration_s != null ? fmtDuration(n.duration_s) : "",
    kind: "node", state: n.state, badge: n.halted ? "halted" : "",
    title: n.error || n.skip_reason || n.cache_miss_reason || "",
  }));
}

function artifactHead(a) {
  return h("div", { class: "nb-head" }, h("strong", {}, `${a.type} #${a.id}`), " ", h("span", { class: "muted" }, a.name || ""),
    a.state && a.state !== "LIVE" ? [" ", badge(a.state)] : null, h("div", { class: "muted small nb-uri" }, a.uri || ""));
}

async function artifactView(view) {
  const body = await renderViewer(view);
  const props = Object.entries(view.artifact.properties || {});
  return [artifactHead(view.artifact), ...(Array.isArray(body) ? body : [body]),
    props.length && !body.length ? kvTable(props.map(([k, v]) => [k, fmtValue(v)])) : null];
}

function runView(run) {
  return [
    h("div", { class: "nb-head" }, h("strong", {}, `run ${run.id}`), " ", badge(run.state),
      h("span", { class: "muted small" }, ` ${run.pipeline}${run.duration_s != null ? `, ${fmtDuration(run.duration_s)}` : ""}`)),
    graphBox(runNodes(run), run.edges, `DAG of ${run.id}`),
    table(["node", "state", "why"], run.nodes.map((n) => [n.id, badge(n.state),
      n.error || n.halted || n.skip_reason || n.cache_miss_reason || (n.cached_from ? `cached from execution ${n.cached_from}` : "")])),
  ];
}

function lineageView(graph) {
  const nodes = graph.nodes.map((n) => ({ ...n, title: n.kind === "execution" ? `run ${n.run_id || "?"}` : n.uri || n.path || "" }));
  return [h("div", { class: "nb-head" }, h("strong", {}, "lineage"), h("span", { class: "muted small" }, ` ${nodes.length} nodes`)),
    graphBox(nodes, graph.edges, "lineage graph")];
}

function runsView(runs) {
  return [table(["run", "pipeline", "state", "started", "duration"],
    runs.runs.map((r) => [r.id, r.pipeline, badge(r.state), r.start_time || "", r.duration_s != null ? fmtDuration(r.duration_s) : ""]))];
}

/** Draw one notebook output into `host`. payload: {kind, data, parts?}; css: the UI's stylesheet. */
export async function renderNotebook(host, payload, css) {
  const shadow = host.shadowRoot || host.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = css;
  const box = h("div", { class: "jfx-nb" });
  fill(shadow, style, box);
  const parts = [];
  for (const item of payload.items) {
    let nodes;
    try {
      if (item.kind === "artifact") nodes = await artifactView(item.data);
      else if (item.kind === "run") nodes = runView(item.data);
      else if (item.kind === "lineage") nodes = lineageView(item.data);
      else if (item.kind === "runs") nodes = runsView(item.data);
      else if (item.kind === "error") nodes = [h("div", { class: "error" }, item.data.message)];
      else nodes = [h("pre", {}, JSON.stringify(item.data, null, 2))];
    } catch (err) {
      nodes = [h("div", { class: "error" }, `cannot draw this ${item.kind}: ${err.message}`)];
    }
    parts.push(h("section", { class: "card nb-item", "data-kind": item.kind }, item.title ? h("h2", {}, item.title) : null, nodes));
  }
  fill(box, parts);
  paginate(box);
  // a viewer redraws its tables (another split chosen): page the new ones too
  new MutationObserver(() => paginate(box)).observe(box, { childList: true, subtree: true });
  host.dataset.drawn = "true";
}
