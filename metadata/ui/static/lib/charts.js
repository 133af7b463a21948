// SVG charts: histograms, line charts (training curves, quantile curves) and horizontal bars.
import { fmtNumber, h, svg } from "./dom.js";

export const SERIES_COLORS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c"];

function axisText(x, y, text, anchor = "middle", cls = "axis") {
  return svg("text", { x, y, "text-anchor": anchor, class: cls }, text);
}

/**
 * Histogram of one or more series over buckets. series: [{label, boundaries: [n+1], counts: [n]}].
 * With several series the bars are normalised to fractions, so splits of different sizes compare.
 */
export function histogram(series, { width = 360, height = 120, title = "" } = {}) {
  let valid = series.filter((s) => s && s.counts && s.counts.length);
  valid = commonBuckets(valid);
  if (!valid.length) return h("span", { class: "muted" }, "no histogram");
  const norm = valid.length > 1;
  const values = valid.map((s) => {
    const total = s.counts.reduce((a, b) => a + b, 0) || 1;
    return s.counts.map((c) => (norm ? c / total : c));
  });
  const max = Math.max(...values.flat(), 1e-12);
  const n = Math.max(...valid.map((s) => s.counts.length));
  const left = 6, bottom = 18, top = title ? 14 : 4;
  const plotW = width - left * 2, plotH = height - bottom - top;
  const slot = plotW / n, bar = (slot - 2) / valid.length;
  const root = svg("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || "histogram" });
  if (title) root.append(axisText(left, 10, title, "start", "chart-title"));
  valid.forEach((s, si) => {
    values[si].forEach((v, i) => {
      const bh = (v / max) * plotH;
      const lo = s.boundaries ? s.boundaries[i] : i, hi = s.boundaries ? s.boundaries[i + 1] : i + 1;
      root.append(svg("rect", {
        x: left + i * slot + 1 + si * bar, y: top + plotH - bh, width: Math.max(bar, 1), height: Math.max(bh, 0),
        fill: SERIES_COLORS[si % SERIES_COLORS.length], class: "bar",
      }, svg("title", {}, `${s.label || ""} [${fmtNumber(lo)}, ${fmtNumber(hi)}): ${s.rebinned ? "≈" : ""}${fmtNumber(s.counts[i], 3)}${norm ? ` (${(v * 100).toFixed(1)}%)` : ""}`)));
    });
  });
  const b = valid[0].boundaries;
  if (b && b.length) {
    root.append(axisText(left, height - 4, fmtNumber(b[0]), "start"), axisText(width - left, height - 4, fmtNumber(b[b.length - 1]), "end"));
  }
  root.append(svg("line", { x1: left, x2: width - left, y1: top + plotH, y2: top + plotH, class: "axis-line" }));
  return root;
}

/**
 * Series whose buckets differ (two splits or two runs have their own min and max) are re-binned onto
 * one set of equal-width buckets over the union of their ranges, each count spread uniformly over
 * its own bucket, so that bar i means the same interval in every series.
 */
export function commonBuckets(series) {
  if (series.length < 2 || !series.every((s) => s.boundaries && s.boundaries.length === s.counts.length + 1)) return series;
  const same = series.every((s) => s.boundaries.length === series[0].boundaries.length &&
    s.boundaries.every((b, i) => b === series[0].boundaries[i]));
  if (same) return series;
  const lo = Math.min(...series.map((s) => s.boundaries[0]));
  const hi = Math.max(...series.map((s) => s.boundaries[s.boundaries.length - 1]));
  const n = Math.max(...series.map((s) => s.counts.length));
  const width = (hi - lo) / n || 1;
  const edges = Array.from({ length: n + 1 }, (_, i) => lo + i * width);
  return series.map((s) => {
    const counts = new Array(n).fill(0);
    s.counts.forEach((c, i) => {
      const a = s.boundaries[i], b = s.boundaries[i + 1];
      if (!c) return;
      if (b <= a) { counts[Math.min(n - 1, Math.max(0, Math.floor((a - lo) / width)))] += c; return; }
      for (let k = 0; k < n; k++) {
        const overlap = Math.min(b, edges[k + 1]) - Math.max(a, edges[k]);
        if (overlap > 0) counts[k] += (c * overlap) / (b - a);
      }
    });
    return { ...s, boundaries: edges, counts, rebinned: true };
  });
}

/** Line chart. series: [{label, points: [[x, y], ...]}]. */
export function lineChart(series, { width = 420, height = 200, title = "", xLabel = "" } = {}) {
  const valid = series.filter((s) => s.points && s.points.some((p) => p[1] !== null && p[1] !== undefined));
  if (!valid.length) return h("span", { class: "muted" }, "no data");
  const pts = valid.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const left = 46, right = 10, top = title ? 20 : 8, bottom = 30;
  const pw = width - left - right, ph = height - top - bottom;
  const X = (x) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y) => top + ph - ((y - y0) / (y1 - y0)) * ph;
  const root = svg("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || "line chart" });
  if (title) root.append(axisText(left, 13, title, "start", "chart-title"));
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    root.append(svg("line", { x1: left, x2: left + pw, y1: Y(y), y2: Y(y), class: "grid-line" }), axisText(left - 4, Y(y) + 3, fmtNumber(y, 3), "end"));
  }
  root.append(axisText(left, height - 14, fmtNumber(x0), "start"), axisText(left + pw, height - 14, fmtNumber(x1), "end"));
  if (xLabel) root.append(axisText(left + pw / 2, height - 2, xLabel));
  valid.forEach((s, si) => {
    const color = SERIES_COLORS[si % SERIES_COLORS.length];
    const d = s.points.filter((p) => p[1] !== null && p[1] !== undefined)
      .map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" }, svg("title", {}, s.label)));
  });
  const legend = h("div", { class: "legend" }, valid.map((s, si) =>
    h("span", {}, h("i", { class: "swatch", style: `background:${SERIES_COLORS[si % SERIES_COLORS.length]}` }), s.label)));
  return h("figure", { class: "figure" }, root, legend);
}

/** Horizontal bars of top values, one group per value. series: [{label, values: [{value, count}], total}]. */
export function topValues(series, { limit = 10 } = {}) {
  const valid = series.filter((s) => s && s.values && s.values.length);
  if (!valid.length) return h("span", { class: "muted" }, "no top values");
  const names = [];
  for (const s of valid) for (const v of s.values.slice(0, limit)) if (!names.includes(v.value)) names.push(v.value);
  const frac = valid.map((s) => new Map(s.values.map((v) => [v.value, v.count / (s.total || 1)])));
  const counts = valid.map((s) => new Map(s.values.map((v) => [v.value, v.count])));
  return h("div", { class: "bars" }, names.slice(0, limit).map((name) =>
    h("div", { class: "bar-row" }, h("span", { class: "bar-name", title: String(name) }, String(name)),
      h("span", { class: "bar-cells" }, valid.map((s, si) => {
        const f = frac[si].get(name) || 0;
        return h("span", { class: "bar-cell", title: `${s.label}: ${counts[si].get(name) ?? 0} (${(f * 100).toFixed(1)}%)` },
          h("i", { style: `width:${Math.max(f * 100, 0.5)}%;background:${SERIES_COLORS[si % SERIES_COLORS.length]}` }),
          h("small", {}, `${counts[si].get(name) ?? 0}`));
      })))));
}
