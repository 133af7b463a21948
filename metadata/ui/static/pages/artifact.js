// The artifact page: type, URI, properties, producer, consumers, files, its typed viewer,
// and an interactive lineage graph (expand, collapse, re-centre) across runs and pipelines.
import { fill, api, artifactHref, badge, details, errorBox, executionHref, fileHref, fmtBytes, fmtDuration, fmtTime, fmtValue, h, jsonBlock,
  kvTable, runHref, setTitle, table,
} from "../lib/dom.js";
import { drawGraph } from "../lib/graph.js";
import { renderViewer } from "../lib/viewers.js";

const DEPTHS = [["1", "1"], ["2", "2"], ["3", "3"], ["5", "5"], ["all", "all"], ["0", "none"]];

function execLine(e, extra) {
  return h("li", {}, h("a", { href: executionHref(e.id) }, `${e.node_id} #${e.id}`), " ", badge(e.node_state),
    extra ? h("span", { class: "muted small" }, ` ${extra}`) : null,
    e.run_id ? [h("span", { class: "muted small" }, " in "), h("a", { href: runHref(e.run_id), class: "small" }, e.run_id)] : null);
}

function toGraphNode(n) {
  return {
    ...n, badge: n.cached_reuses ? `+${n.cached_reuses} cached` : "",
    title: n.kind === "external" ? n.path : n.kind === "execution" ? `run ${n.run_id || "?"}` : n.uri,
  };
}

/** The lineage explorer: a graph that grows (expand) and shrinks (collapse) around a centre. */
class Lineage {
  constructor(box, info, controls) {
    this.box = box;
    this.info = info;
    this.controls = controls;
    this.nodes = new Map();
    this.edges = new Map();
    this.addedBy = new Map();
    this.expanded = new Set();
    this.selected = null;
  }

  async center(nodeId, preloaded) {
    const [kind, ref] = [nodeId[0], nodeId.slice(1)];
    const q = kind === "a"
      ? `artifact=${ref}&up=${this.controls.up.value}&down=${this.controls.down.value}`
      : `execution=${ref.split(".")[0]}`;
    const g = preloaded ? await preloaded : await api(`/api/lineage?${q}`);
    this.nodes.clear(); this.edges.clear(); this.addedBy.clear(); this.expanded.clear();
    this.centerId = g.center;
    this.merge(g, null);
    this.truncated = g.truncated;
    this.selected = g.center;
    this.draw();
    this.showInfo(this.nodes.get(g.center));
  }

  merge(g, by) {
    const added = [];
    for (const n of g.nodes) {
      if (!this.nodes.has(n.id)) {
        this.nodes.set(n.id, n);
        if (by) this.addedBy.set(n.id, by);
        added.push(n.id);
      } else if (n.cached_reuses) {
        this.nodes.get(n.id).cached_reuses = Math.max(this.nodes.get(n.id).cached_reuses || 0, n.cached_reuses);
      }
    }
    for (const e of g.edges) this.edges.set(`${e.from}>${e.to}>${e.key}`, e);
    return added;
  }

  async expand(n) {
    const q = n.kind === "artifact" ? `artifact=${n.ref}&up=1&down=1` : `execution=${n.ref}`;
    const g = await api(`/api/lineage?${q}`);
    const added = this.merge(g, n.id);
    this.expanded.add(n.id);
    this.draw();
    this.showInfo(n, added.length ? `${added.length} node${added.length === 1 ? "" : "s"} added` : "nothing new: every neighbour is shown");
  }

  collapse(n) {
    // Remove what this node's expansions added (and, in turn, what those nodes added).
    const drop = new Set();
    const visit = (id) => {
      for (const [child, parent] of this.addedBy) if (parent === id && !drop.has(child) && child !== this.centerId) { drop.add(child); visit(child); }
    };
    visit(n.id);
    for (const id of drop) { this.nodes.delete(id); this.addedBy.delete(id); this.expanded.delete(id); }
    for (const [k, e] of this.edges) if (!this.nodes.has(e.from) || !this.nodes.has(e.to)) this.edges.delete(k);
    this.expanded.delete(n.id);
    this.draw();
    this.showInfo(n, drop.size ? `${drop.size} node${drop.size === 1 ? "" : "s"} removed` : "nothing to collapse");
  }

  draw() {
    const nodes = [...this.nodes.values()].map(toGraphNode);
    const edges = [...this.edges.values()];
    this.graph = drawGraph(this.box, nodes, edges, {
      center: this.centerId, selected: this.selected, label: "lineage graph", maxHeight: 900, minScale: 0.7,
      onSelect: (n) => { this.selected = n.id; this.graph.select(n.id); this.showInfo(this.nodes.get(n.id)); },
      onOpen: (n) => this.expand(this.nodes.get(n.id)),
    });
    this.box.dataset.nodes = String(nodes.length);
  }

  showInfo(n, note) {
    if (!n) return;
    const open = n.kind === "artifact" ? h("a", { href: artifactHref(n.ref), class: "button" }, "Open artifact")
      : n.kind === "execution" ? h("a", { href: executionHref(n.ref), class: "button" }, "Open execution") : null;
    const act = (label, fn, cls = "") => h("button", { type: "button", class: cls, onclick: async () => {
      try { await fn(); } catch (err) { fill(this.info, errorBox(err)); }
    } }, label);
    fill(this.info, 
      h("div", { class: "lin-title" }, h("strong", {}, n.label), " ", h("span", { class: "muted" }, n.sub), " ", badge(n.state)),
      n.kind === "external" ? h("p", {}, h("code", {}, n.path), n.fingerprint ? h("span", { class: "muted small" }, ` fingerprint ${n.fingerprint.slice(0, 16)}`) : null) : null,
      n.kind === "artifact" ? h("p", { class: "small" }, h("code", {}, n.uri)) : null,
      n.kind === "artifact" && n.deleted ? h("p", { class: "small deleted-marker" }, n.deleted) : null,
      n.kind === "execution" && n.run_id ? h("p", { class: "small" }, "run ", h("a", { href: runHref(n.run_id) }, n.run_id)) : null,
      h("div", { class: "actions" },
        n.kind !== "external" ? act("Expand", () => this.expand(n), "primary expand") : null,
        this.expanded.has(n.id) ? act("Collapse", () => this.collapse(n), "collapse") : null,
        n.kind !== "external" && n.id !== this.centerId ? act("Re-centre", () => this.center(n.id), "recenter") : null,
        open),
      note ? h("p", { class: "muted small" }, note) : null,
      this.truncated ? h("p", { class: "warn small" }, "The graph was cut at its size limit; expand nodes to see more.") : null);
  }
}

export async function render(main, id) {
  const first = api(`/api/lineage?artifact=${id}&up=2&down=1`); // fetched alongside the artifact
  first.catch(() => {});
  const [a, view] = await Promise.all([api(`/api/artifacts/${id}`), api(`/api/artifacts/${id}/view`).catch((err) => ({ error: err }))]);
  setTitle(`${a.type} #${a.id}`);
  const producer = a.producer;
  const summary = kvTable([
    ["type", h("strong", {}, a.type)], ["name", a.name || "–"], ["URI", h("code", {}, a.uri)],
    ["state", badge(a.state)], ["fingerprint", h("code", {}, a.fingerprint || "–")], ["created", fmtTime(a.create_time)],
    a.deleted ? ["deleted", deletedMarker(a)] : null,
    !a.exists && !a.deleted ? ["on disk", h("span", { class: "warn" }, "the URI no longer exists")] : null,
  ]);
  const props = Object.entries(a.properties || {});
  // a deleted artifact's files are gone: no link to them
  const files = a.deleted
    ? h("p", { class: "muted", id: "files-deleted" }, `No files: the artifact was ${a.deleted}.`)
    : a.files.length
      ? table(["File", "Size"], a.files.map((f) => [h("a", { href: fileHref(a.id, f.path), class: "file-link" }, f.path || "(the artifact)"), fmtBytes(f.size)]))
      : h("p", { class: "muted" }, "No files.");

  let viewer = null;
  if (view.error) viewer = section2("Viewer", errorBox(view.error));
  else if (view.kind !== "none") {
    const titled = { statistics: "Statistics", schema: "Schema", anomalies: "Anomalies", evaluation: "Evaluation",
      blessing: "Blessing", infra_blessing: "Infra validation", model: "Model", model_run: "Training", pushed_model: "Push",
      examples: "Examples", transform_graph: "Transform", value: "Value", files: "Contents" }[view.kind] || view.kind;
    viewer = section2(titled, ...(await renderViewer(view)));
    viewer.id = "viewer";
    viewer.dataset.kind = view.kind;
  }

  const up = h("select", { id: "lineage-up", "aria-label": "upstream steps" }, DEPTHS.map(([v, l]) => h("option", { value: v, selected: v === "2" }, l)));
  const down = h("select", { id: "lineage-down", "aria-label": "downstream steps" }, DEPTHS.map(([v, l]) => h("option", { value: v, selected: v === "1" }, l)));
  const graphBox = h("div", { class: "graph-box", id: "lineage" });
  const info = h("div", { class: "lin-info", id: "lineage-info" });
  const lineage = new Lineage(graphBox, info, { up, down });
  const reload = (preloaded) => lineage.center(`a${a.id}`, preloaded).catch((err) => fill(graphBox, errorBox(err)));
  up.addEventListener("change", () => reload());
  down.addEventListener("change", () => reload());

  fill(main, 
    h("div", { class: "crumbs" }, producer && producer.run_id ? [h("a", { href: runHref(producer.run_id) }, producer.run_id), " / ",
      h("a", { href: `${runHref(producer.run_id)}?node=${encodeURIComponent(producer.node_id)}` }, producer.node_id), " / "] : null, `${a.type} #${a.id}`),
    h("div", { class: "page-head" }, h("h1", {}, `${a.type} #${a.id}`), h("span", { class: "muted" }, a.name),
      a.deleted ? deletedMarker(a) : null),
    h("div", { class: "two" },
      section2("Artifact", summary, props.length ? details("Properties", true, kvTable(props.map(([k, v]) => [k, propValue(v)]))) : null),
      section2("Made by and used by",
        h("h3", {}, "Producer"), producer ? h("ul", { class: "plain" }, execLine(producer, producer.duration_s != null ? fmtDuration(producer.duration_s) : "")) : h("p", { class: "muted" }, "none recorded"),
        a.cached_reuses ? h("p", { class: "muted small" }, `reused by ${a.cached_reuses} cached execution${a.cached_reuses === 1 ? "" : "s"}`) : null,
        h("h3", {}, `Consumers (${a.consumers_total})`),
        a.consumers.length ? h("ul", { class: "plain" }, a.consumers.map((e) => execLine(e, `as ${e.input}`))) : h("p", { class: "muted" }, "none"),
        h("h3", {}, "Runs"), h("ul", { class: "plain" }, a.runs.map((r) => h("li", {}, h("a", { href: runHref(r.id) }, r.id), " ", badge(r.state)))))),
    viewer,
    section2("Lineage", h("div", { class: "filters" }, h("label", {}, "Upstream steps ", up), h("label", {}, "Downstream steps ", down),
      h("span", { class: "muted small" }, "Click a node for its actions; double-click expands it. Drag to pan, wheel to zoom.")),
      h("div", { class: "lineage-wrap" }, graphBox, info)),
    section2(`Files${a.files_truncated ? " (first 500)" : ""}`, files));
  await reload(first);
}

/** "deleted by gc on <date> (why)": the artifact's record stays for lineage, its files are gone. */
export function deletedMarker(a) {
  return h("span", { class: "deleted-marker", title: a.delete_reason || "" }, a.deleted);
}

function section2(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

function propValue(v) {
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== "object")) return v.map(fmtValue).join(", ");
  return typeof v === "object" && v !== null ? jsonBlock(v) : fmtValue(v);
}
