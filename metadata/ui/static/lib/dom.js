// Small DOM helpers shared by every page: element builders, formatting, the JSON API client.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  return el;
}

/** Replace the children of `el` (null, undefined and false children are skipped, unlike replaceChildren). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** h("div", {class: "x"}, child, ...) → an HTML element. Text children are escaped. */
export function h(tag, attrs, ...children) {
  return append(setAttrs(document.createElement(tag), attrs), children);
}

/** svg("rect", {...}, ...) → an SVG element. */
export function svg(tag, attrs, ...children) {
  return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** GET a JSON API route; throws ApiError with the server's {"error": {code, message}}. */
export async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    throw new ApiError(res.status, `${path}: the answer is not JSON (${res.status})`);
  }
  if (!res.ok) {
    const err = (body && body.error) || {};
    throw new ApiError(err.code || res.status, err.message || res.statusText);
  }
  return body;
}

export function errorBox(err) {
  const code = err && err.code ? `${err.code} ` : "";
  return h("div", { class: "error", role: "alert" }, h("strong", {}, `${code}error`), " ", err.message || String(err));
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - 60 * m)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtNumber(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return Math.abs(v) >= 10000 ? v.toLocaleString("en-US") : String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(digits)));
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function fmtValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return fmtNumber(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function badge(state) {
  const s = String(state || "unknown").toLowerCase();
  return h("span", { class: `badge state-${s}` }, s);
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

export const runHref = (id) => `/runs/${encodeURIComponent(id)}`;
export const artifactHref = (id) => `/artifacts/${id}`;
export const executionHref = (id) => `/executions/${id}`;
export const fileHref = (artifactId, path) =>
  `/api/artifacts/${artifactId}/files/${path.split("/").map(encodeURIComponent).join("/")}`;

/** A two-column key/value table. */
export function kvTable(rows, cls = "kv") {
  return h("table", { class: cls }, h("tbody", {}, rows.filter(Boolean).map(([k, v]) =>
    h("tr", {}, h("th", {}, k), h("td", {}, v instanceof Node ? v : fmtValue(v))))));
}

/** A table from column names and rows of cells (nodes or values). */
export function table(columns, rows, attrs = {}) {
  return h("table", { class: "grid", ...attrs },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => (r instanceof Node ? r : h("tr", {}, r.map((c) => h("td", {}, c instanceof Node ? c : fmtValue(c))))))));
}

export function pre(text, cls = "code") {
  return h("pre", { class: cls }, text);
}

export function jsonBlock(value) {
  return pre(JSON.stringify(value, null, 2));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

/** Collapsible details block. */
export function details(summary, open, ...children) {
  return h("details", { open: open || null }, h("summary", {}, summary), ...children);
}

export function setTitle(text) {
  document.title = `${text} · jfx metadata`;
}
