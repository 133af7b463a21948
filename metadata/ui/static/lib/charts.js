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

/**
 * A chart on the unit square (ROC, precision-recall, calibration). series: [{label, points: [[x, y], ...],
 * dots}]; diagonal: draw y = x (chance for ROC, perfect calibration). Each series is an SVG path.
 */
export function unitChart(series, { width = 300, height = 260, title = "", xLabel = "", yLabel = "", diagonal = false, kind = "" } = {}) {
  const valid = series.filter((s) => s.points && s.points.some((p) => p[0] !== null && p[1] !== null));
  const left = 40, right = 10, top = title ? 20 : 8, bottom = 32;
  const pw = width - left - right, ph = height - top - bottom;
  const X = (x) => left + x * pw;
  const Y = (y) => top + ph - y * ph;
  const root = svg("svg", { class: `chart unit-chart${kind ? ` ${kind}` : ""}`, width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || "chart" });
  if (title) root.append(axisText(left, 13, title, "start", "chart-title"));
  for (let i = 0; i <= 4; i++) {
    const v = i / 4;
    root.append(svg("line", { x1: left, x2: left + pw, y1: Y(v), y2: Y(v), class: "grid-line" }), axisText(left - 4, Y(v) + 3, fmtNumber(v), "end"),
      axisText(X(v), top + ph + 12, fmtNumber(v)));
  }
  root.append(svg("rect", { x: left, y: top, width: pw, height: ph, fill: "none", class: "axis-line", stroke: "#b9c2cf" }));
  if (xLabel) root.append(axisText(left + pw / 2, height - 3, xLabel));
  if (yLabel) root.append(svg("text", { x: 10, y: top + ph / 2, "text-anchor": "middle", class: "axis", transform: `rotate(-90 10 ${top + ph / 2})` }, yLabel));
  if (diagonal) root.append(svg("line", { x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), class: "diagonal", stroke: "#b9c2cf", "stroke-dasharray": "4 3" }));
  if (!valid.length) root.append(axisText(left + pw / 2, top + ph / 2, "no data"));
  valid.forEach((s, si) => {
    const color = SERIES_COLORS[si % SERIES_COLORS.length];
    const pts = s.points.filter((p) => p[0] !== null && p[1] !== null && p[0] !== undefined && p[1] !== undefined);
    const d = pts.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" }, svg("title", {}, s.label)));
    if (s.dots) pts.forEach((p) => root.append(svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: color, class: "dot" },
      svg("title", {}, `${s.label}: ${fmtNumber(p[0])}, ${fmtNumber(p[1])}`))));
  });
  const legend = valid.length > 1 ? h("div", { class: "legend" }, valid.map((s, si) =>
    h("span", {}, h("i", { class: "swatch", style: `background:${SERIES_COLORS[si % SERIES_COLORS.length]}` }), s.label))) : null;
  return h("figure", { class: "figure" }, root, legend);
}

/** A confusion matrix as a heat map: labels [k], counts [k][k] (rows actual, columns predicted). */
export function heatmap(labels, counts, { title = "", cell = 44 } = {}) {
  const k = labels.length;
  const left = 90, top = (title ? 20 : 4) + 30, bottom = 22;
  const width = left + k * cell + 10, height = top + k * cell + bottom;
  const max = Math.max(1e-12, ...counts.flat());
  const root = svg("svg", { class: "chart heatmap", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || "confusion matrix" });
  if (title) root.append(axisText(4, 13, title, "start", "chart-title"));
  root.append(axisText(left + (k * cell) / 2, top - 20, "predicted"), axisText(4, top + k * cell + 16, "rows: actual", "start"));
  counts.forEach((row, i) => {
    root.append(axisText(left - 6, top + i * cell + cell / 2 + 3, String(labels[i]), "end"));
    row.forEach((c, j) => {
      const shade = c / max;
      root.append(svg("rect", { x: left + j * cell, y: top + i * cell, width: cell - 2, height: cell - 2, class: "cell",
        fill: `rgba(43,108,176,${(0.08 + 0.92 * shade).toFixed(3)})` }, svg("title", {}, `actual ${labels[i]}, predicted ${labels[j]}: ${fmtNumber(c)}`)),
      svg("text", { x: left + j * cell + cell / 2 - 1, y: top + i * cell + cell / 2 + 3, "text-anchor": "middle", class: "cell-text", fill: shade > 0.55 ? "#fff" : "#1a2433" }, fmtNumber(c, 3)));
    });
  });
  labels.forEach((l, j) => root.append(axisText(left + j * cell + cell / 2 - 1, top - 6, String(l))));
  return root;
}
