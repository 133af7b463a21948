// Layered (top-to-bottom) layout and SVG drawing of DAGs: the run DAG and the lineage graph.
import { fill, svg } from "./dom.js";

const W = 184, H = 46, VW = 12, GAP_SIB = 22, GAP_RANK = 44;

/**
 * Ranks by longest path from the sources; an edge that spans several ranks gets a thin virtual
 * node in each rank it crosses (so it is routed around the boxes); then barycentre ordering
 * within each rank. Returns box coordinates and, per edge index, the points its path goes through.
 */
export function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const known = new Set(ids);
  const kept = edges.map((e, i) => [e, i]).filter(([e]) => known.has(e.from) && known.has(e.to) && e.from !== e.to);
  const preds = new Map(ids.map((id) => [id, []]));
  const succs = new Map(ids.map((id) => [id, []]));
  for (const [e] of kept) {
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
  const maxRank = Math.max(0, ...rank.values());
  const layers = Array.from({ length: maxRank + 1 }, () => []);
  for (const id of ids) layers[rank.get(id)].push(id);
  // virtual nodes: the chain of a long edge
  const up = new Map(ids.map((id) => [id, []]));
  const down = new Map(ids.map((id) => [id, []]));
  const chains = new Map();
  const virtual = new Set();
  for (const [e, i] of kept) {
    const [a, b] = [rank.get(e.from), rank.get(e.to)];
    const chain = [];
    let prev = e.from;
    for (let r = a + 1; r < b; r++) {
      const v = `\u0000v${i}.${r}`;
      virtual.add(v);
      layers[r].push(v);
      rank.set(v, r);
      up.set(v, [prev]);
      down.set(v, []);
      down.get(prev).push(v);
      chain.push(v);
      prev = v;
    }
    if (b > a) {
      down.get(prev).push(e.to);
      up.get(e.to).push(prev);
    }
    chains.set(i, chain);
  }
  const widthOf = (id) => (virtual.has(id) ? VW : W);
  const pos = new Map();
  layers.forEach((layer) => layer.forEach((id, i) => pos.set(id, i)));
  const bary = (id, nbrs) => {
    const list = nbrs.get(id).map((n) => pos.get(n));
    return list.length ? list.reduce((x, y) => x + y, 0) / list.length : pos.get(id);
  };
  for (let sweep = 0; sweep < 8; sweep++) {
    const goingDown = sweep % 2 === 0;
    const order = goingDown ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of order) {
      const keyed = layer.map((id) => [bary(id, goingDown ? up : down), pos.get(id), id]);
      keyed.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      layer.splice(0, layer.length, ...keyed.map((k) => k[2]));
      layer.forEach((id, i) => pos.set(id, i));
    }
  }
  const span = (layer) => layer.reduce((sum, id) => sum + widthOf(id), 0) + Math.max(0, layer.length - 1) * GAP_SIB;
  const widest = Math.max(W, ...layers.map(span));
  const coords = new Map();
  layers.forEach((layer, r) => {
    let x = (widest - span(layer)) / 2;
    for (const id of layer) {
      coords.set(id, { x, y: r * (H + GAP_RANK) });
      x += widthOf(id) + GAP_SIB;
    }
  });
  const routes = new Map();
  for (const [e, i] of kept) {
    const a = coords.get(e.from), b = coords.get(e.to);
    const points = [[a.x + W / 2, a.y + H]];
    for (const v of chains.get(i)) {
      const c = coords.get(v);
      points.push([c.x + VW / 2, c.y], [c.x + VW / 2, c.y + H]);
    }
    points.push([b.x + W / 2, b.y]);
    routes.set(i, points);
  }
  for (const v of virtual) coords.delete(v);
  return { coords, routes, width: widest, height: (maxRank + 1) * (H + GAP_RANK) - GAP_RANK };
}

/** An SVG path through the points: vertical straight runs, S-curves between ranks. */
function routePath(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let k = 1; k < points.length; k++) {
    const [x0, y0] = points[k - 1], [x1, y1] = points[k];
    const last = k === points.length - 1;
    if (x0 === x1 && k % 2 === 0) d += ` L${x1},${y1}`; // through a virtual node
    else {
      const my = (y0 + y1) / 2;
      d += ` C${x0},${my} ${x1},${my} ${x1},${last ? y1 - 2 : y1}`;
    }
  }
  return d;
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
  const { coords, routes, width, height } = layout(nodes, edges);
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
  edges.forEach((e, i) => {
    const points = routes.get(i);
    if (!points) return;
    edgeLayer.append(svg("path", {
      d: routePath(points),
      class: `edge ${e.kind === "order" ? "edge-order" : ""}`, "marker-end": "url(#arrow)",
      "data-from": e.from, "data-to": e.to,
    }, svg("title", {}, e.key || "")));
  });
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
