// Layered (top-to-bottom) layout and SVG drawing of DAGs: the run DAG and the lineage graph.
import { fill, svg } from "./dom.js";

const W = 184, H = 46, GAP_SIB = 22, GAP_RANK = 44;

/** Ranks by longest path from the sources, then barycentre ordering within each rank. */
export function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const known = new Set(ids);
  const preds = new Map(ids.map((id) => [id, []]));
  const succs = new Map(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (!known.has(e.from) || !known.has(e.to) || e.from === e.to) continue;
    succs.get(e.from).push(e.to);
    preds.get(e.to).push(e.from);
  }
  const indeg = new Map(ids.map((id) => [id, preds.get(id).length]));
  const rank = new Map();
  const queue = ids.filter((id) => indeg.get(id) === 0);
  for (const id of queue) rank.set(id, 0);
  while (queue.length) {
    const id = queue.shift();
    for (const s of succs.get(id)) {
      rank.set(s, Math.max(rank.get(s) || 0, rank.get(id) + 1));
      indeg.set(s, indeg.get(s) - 1);
      if (indeg.get(s) === 0) queue.push(s);
    }
  }
  for (const id of ids) if (!rank.has(id)) rank.set(id, 0); // a cycle: should not happen in lineage
  // Sinks with a single predecessor sit right after it (short edges for outputs).
  const maxRank = Math.max(0, ...rank.values());
  const layers = Array.from({ length: maxRank + 1 }, () => []);
  for (const id of ids) layers[rank.get(id)].push(id);
  const pos = new Map();
  const index = () => layers.forEach((layer) => layer.forEach((id, i) => pos.set(id, i)));
  index();
  const bary = (id, nbrs) => {
    const list = nbrs.get(id).map((n) => pos.get(n));
    return list.length ? list.reduce((a, b) => a + b, 0) / list.length : pos.get(id);
  };
  for (let sweep = 0; sweep < 6; sweep++) {
    const down = sweep % 2 === 0;
    const order = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of order) {
      const keyed = layer.map((id) => [bary(id, down ? preds : succs), pos.get(id), id]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      layer.splice(0, layer.length, ...keyed.map((k) => k[2]));
      layer.forEach((id, i) => pos.set(id, i));
    }
  }
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const coords = new Map();
  layers.forEach((layer, r) => {
    const offset = ((widest - layer.length) * (W + GAP_SIB)) / 2;
    layer.forEach((id, i) => coords.set(id, { x: offset + i * (W + GAP_SIB), y: r * (H + GAP_RANK) }));
  });
  return { coords, width: widest * (W + GAP_SIB) - GAP_SIB, height: (maxRank + 1) * (H + GAP_RANK) - GAP_RANK };
}

function clip(text, max) {
  text = String(text ?? "");
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/**
 * Draw a DAG into `container`. nodes: {id, label, sub, kind, state, badge}; edges: {from, to, key, kind}.
 * opts.onSelect(node) is called on click; opts.selected marks a node; opts.center marks the centre.
 * Returns {svg, select(id), setState(id, state)}.
 */
export function drawGraph(container, nodes, edges, opts = {}) {
  const { coords, width, height } = layout(nodes, edges);
  const pad = 16;
  const root = svg("svg", { class: "graph", role: "img", "aria-label": opts.label || "graph" });
  const defs = svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })));
  const view = svg("g", { class: "viewport" });
  root.append(defs, view);
  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  view.append(edgeLayer, nodeLayer);
  for (const e of edges) {
    const a = coords.get(e.from), b = coords.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const my = (y1 + y2) / 2;
    edgeLayer.append(svg("path", {
      d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 2}`,
      class: `edge ${e.kind === "order" ? "edge-order" : ""}`, "marker-end": "url(#arrow)",
      "data-from": e.from, "data-to": e.to,
    }, svg("title", {}, e.key || "")));
  }
  const groups = new Map();
  for (const n of nodes) {
    const c = coords.get(n.id);
    const g = svg("g", {
      class: `node kind-${n.kind || "node"} state-${String(n.state || "").toLowerCase()}${n.id === opts.center ? " center" : ""}`,
      transform: `translate(${c.x},${c.y})`, "data-id": n.id, "data-label": n.label, tabindex: "0", role: "button",
      "aria-label": `${n.label} ${n.sub || ""} ${n.state || ""}`.trim(),
    });
    const shape = n.kind === "execution" || n.kind === "external"
      ? svg("rect", { width: W, height: H, rx: n.kind === "external" ? 3 : 22, class: "shape" })
      : svg("rect", { width: W, height: H, rx: 7, class: "shape" });
    g.append(shape, svg("rect", { width: 6, height: H, rx: 3, class: "stripe" }),
      svg("text", { x: 14, y: 19, class: "label" }, clip(n.label, 24)),
      svg("text", { x: 14, y: 35, class: "sub" }, clip(n.sub, 27)),
      svg("title", {}, [n.label, n.sub, n.state, n.title].filter(Boolean).join("\n")));
    if (n.badge) g.append(svg("text", { x: W - 8, y: 16, class: "nbadge", "text-anchor": "end" }, n.badge));
    const fire = () => opts.onSelect && opts.onSelect(n);
    g.addEventListener("click", fire);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); fire(); } });
    if (opts.onOpen) g.addEventListener("dblclick", () => opts.onOpen(n));
    nodeLayer.append(g);
    groups.set(n.id, g);
  }
  fill(container, root);

  // Pan (drag) and zoom (wheel), starting fitted to the container.
  const box = container.getBoundingClientRect();
  const vw = Math.max(box.width || 800, 300);
  const fit = Math.min(1, (vw - 2 * pad) / Math.max(width, 1));
  let scale = Math.max(opts.minScale || 0.6, fit);
  const vh = Math.max(Math.min(height * scale + 2 * pad, opts.maxHeight || 900), 160);
  scale = Math.max(Math.min(scale, (vh - 2 * pad) / Math.max(height, 1)), 0.45);
  root.setAttribute("width", "100%");
  root.setAttribute("height", vh);
  let tx = Math.max(pad, (vw - width * scale) / 2), ty = Math.max(pad, (vh - height * scale) / 2);
  const focus = opts.center && coords.get(opts.center);
  if (focus) { // keep the centre node in view when the graph is larger than the box
    const cx = tx + (focus.x + W / 2) * scale, cy = ty + (focus.y + H / 2) * scale;
    if (cx < pad + W * scale / 2 || cx > vw - pad - W * scale / 2) tx += vw / 2 - cx;
    if (cy < pad + H * scale / 2 || cy > vh - pad - H * scale / 2) ty += vh / 2 - cy;
  }
  const apply = () => view.setAttribute("transform", `translate(${tx},${ty}) scale(${scale})`);
  apply();
  root.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = root.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    const f = Math.exp(-ev.deltaY * 0.0015);
    const next = Math.min(3, Math.max(0.15, scale * f));
    tx = px - ((px - tx) * next) / scale;
    ty = py - ((py - ty) * next) / scale;
    scale = next;
    apply();
  }, { passive: false });
  let drag = null;
  root.addEventListener("pointerdown", (ev) => {
    if (ev.target.closest(".node")) return;
    drag = { x: ev.clientX, y: ev.clientY, tx, ty };
    root.setPointerCapture(ev.pointerId);
  });
  root.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    tx = drag.tx + ev.clientX - drag.x;
    ty = drag.ty + ev.clientY - drag.y;
    apply();
  });
  root.addEventListener("pointerup", () => { drag = null; });

  const api = {
    svg: root,
    select(id) {
      for (const [gid, g] of groups) g.classList.toggle("selected", gid === id);
    },
    setState(id, state) {
      const g = groups.get(id);
      if (!g) return;
      for (const c of [...g.classList]) if (c.startsWith("state-")) g.classList.remove(c);
      g.classList.add(`state-${String(state).toLowerCase()}`);
    },
  };
  if (opts.selected) api.select(opts.selected);
  return api;
}

export const NODE_SIZE = { W, H };
