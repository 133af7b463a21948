// The page of `jfx export --format web`: raw rows (a form, or a CSV file) → the model's
// outputs, with onnxruntime-web in this page. The rows are prepared as jfx.core.load_onnx and
// `jfx serve` prepare them: numbers checked as the server checks JSON numbers, strings
// encoded with the signature's vocabulary and out-of-vocabulary buckets or hash buckets
// (BLAKE2b-64 of the UTF-8 bytes, as jfx.core._encoding.stable_hash).
//
// For scripts and tests: window.jfxReady (a promise, resolved once the model is loaded),
// window.jfxPredict(rows) (rows: objects of raw values; resolves to a result), window.jfxResult
// (the last result the page showed), window.jfxError (the last error message, or null).
import * as ort from "./ort.wasm.bundle.min.js"; // onnxruntime-web's ort.wasm.bundle.min.mjs

// ------------------------------------------------------------------ stable hash (BLAKE2b, 8-byte digest)

const M64 = (1n << 64n) - 1n;
const IV = [0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n];
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4], [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13], [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11], [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5], [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0]];

const rotr = (x, n) => ((x >> BigInt(n)) | (x << BigInt(64 - n))) & M64;

function mix(v, a, b, c, d, x, y) {
  v[a] = (v[a] + v[b] + x) & M64; v[d] = rotr(v[d] ^ v[a], 32);
  v[c] = (v[c] + v[d]) & M64; v[b] = rotr(v[b] ^ v[c], 24);
  v[a] = (v[a] + v[b] + y) & M64; v[d] = rotr(v[d] ^ v[a], 16);
  v[c] = (v[c] + v[d]) & M64; v[b] = rotr(v[b] ^ v[c], 63);
}

function compress(h, block, counter, last) {
  const view = new DataView(block.buffer, block.byteOffset, 128);
  const m = Array.from({ length: 16 }, (_, i) => view.getBigUint64(8 * i, true));
  const v = [...h, ...IV];
  v[12] ^= counter & M64;
  v[13] ^= counter >> 64n;
  if (last) v[14] ^= M64;
  for (let r = 0; r < 12; r++) {
    const s = SIGMA[r % 10];
    mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]); mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]); mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]); mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]); mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (let i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

const utf8 = new TextEncoder();

/** The 64-bit hash jfx.core.stable_hash gives (a BigInt); null hashes as the empty string. */
export function stableHash(value) {
  const data = utf8.encode(value === null || value === undefined ? "" : String(value));
  const h = IV.slice();
  h[0] ^= 0x01010008n; // digest length 8, no key, fanout 1, depth 1
  let offset = 0;
  let counter = 0n;
  while (data.length - offset > 128) {
    counter += 128n;
    compress(h, data.subarray(offset, offset + 128), counter, false);
    offset += 128;
  }
  const last = new Uint8Array(128);
  last.set(data.subarray(offset));
  counter += BigInt(data.length - offset);
  compress(h, last, counter, true);
  return h[0]; // the digest's 8 bytes, little endian
}

/** Ids of strings (or null) with an encoder spec, as jfx.core.encode_strings. */
export function encodeStrings(values, spec) {
  const cache = new Map();
  const out = new Int32Array(values.length);
  if ("hash_buckets" in spec) {
    const n = BigInt(spec.hash_buckets);
    values.forEach((v, i) => {
      const key = v === null ? "" : v;
      if (!cache.has(key)) cache.set(key, Number(stableHash(key) % n));
      out[i] = cache.get(key);
    });
    return out;
  }
  const index = new Map(spec.vocabulary.map((w, i) => [w, i]));
  const size = spec.vocabulary.length;
  const k = BigInt(spec.oov_buckets || 0);
  const oov = (s) => size + (k ? Number(stableHash(s) % k) : 0);
  values.forEach((v, i) => {
    if (v === null) { out[i] = oov(null); return; } // null is always out of vocabulary
    if (index.has(v)) { out[i] = index.get(v); return; }
    if (!cache.has(v)) cache.set(v, oov(v));
    out[i] = cache.get(v);
  });
  return out;
}

// ------------------------------------------------------------------ raw rows → tensors

const INT_RANGE = { int32: [-2147483648, 2147483647], int8: [-128, 127], uint8: [0, 255] };
const FLOAT32_MAX = 3.4028234663852886e38;
const ARRAYS = { float32: Float32Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };

function describe(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return `the boolean ${v} (a boolean is not a number)`;
  if (typeof v === "string") return `the string ${JSON.stringify(v.slice(0, 40))}`;
  if (Array.isArray(v)) return `a list (${JSON.stringify(v).slice(0, 40)})`;
  if (typeof v === "object") return `an object (${JSON.stringify(v).slice(0, 40)})`;
  return String(v);
}

class InputError extends Error {}

/** One numeric value as `jfx serve` takes it from JSON (strict): the number to store, or an error. */
function checkNumber(name, spec, v, row) {
  const where = `feature '${name}' of row ${row}`;
  if (spec.dtype === "bool") {
    if (typeof v !== "boolean") throw new InputError(`${where} is ${describe(v)}; a bool feature takes true or false`);
    return v ? 1 : 0;
  }
  if (spec.source_type === "bool") {
    if (v === null) return NaN;
    if (typeof v !== "boolean") {
      throw new InputError(`${where} is ${describe(v)}; a ${spec.dtype} feature takes true or false, or null for a missing value`);
    }
    return v ? 1 : 0;
  }
  const range = INT_RANGE[spec.dtype];
  if (range) {
    if (typeof v !== "number") {
      throw new InputError(`${where} is ${describe(v)}; a ${spec.dtype} feature takes whole numbers (it has no missing value: null is refused)`);
    }
    if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
      throw new InputError(`${where} is ${describe(v)}; a ${spec.dtype} feature takes whole numbers from ${range[0]} to ${range[1]}`);
    }
    return v;
  }
  if (v === null) return NaN; // a missing value
  if (typeof v !== "number") {
    throw new InputError(`${where} is ${describe(v)}; a ${spec.dtype} feature takes numbers, or null for a missing value`);
  }
  if (!Number.isFinite(Math.fround(v))) {
    throw new InputError(`${where} is ${describe(v)}, which is not a finite ${spec.dtype} (at most ±${FLOAT32_MAX.toPrecision(4)}); send a finite number, or null for a missing value`);
  }
  return v;
}

/** The feeds of rows (objects of raw values) for the signature's inputs. */
export function prepare(signature, rows) {
  const feeds = {};
  for (const [name, spec] of Object.entries(signature.inputs)) {
    const width = spec.shape.reduce((a, b) => a * b, 1);
    const values = [];
    rows.forEach((row, i) => {
      if (!(name in row)) {
        throw new InputError(`feature '${name}' is missing from row ${i}; the model expects ${Object.keys(signature.inputs).sort().join(", ")}`);
      }
      const v = row[name];
      if (spec.shape.length) {
        if (!Array.isArray(v) || v.length !== width) {
          throw new InputError(`feature '${name}' of row ${i} is ${describe(v)}; expected a list of ${width} values`);
        }
        values.push(...v.map((x) => [x, i]));
      } else {
        values.push([v, i]);
      }
    });
    const dims = [rows.length, ...spec.shape];
    if (spec.dtype === "string") {
      const bad = values.find(([v]) => !(v === null || typeof v === "string"));
      if (bad) throw new InputError(`feature '${name}' must hold strings (or null); row ${bad[1]} has ${describe(bad[0])}`);
      feeds[name] = new ort.Tensor("int32", encodeStrings(values.map(([v]) => v), spec.encoder), dims);
      continue;
    }
    const dtype = spec.onnx_dtype || spec.dtype;
    const data = new ARRAYS[dtype](values.length);
    values.forEach(([v, i], k) => { data[k] = checkNumber(name, spec, v, i); });
    feeds[name] = new ort.Tensor(dtype, data, dims);
  }
  return feeds;
}

// ------------------------------------------------------------------ CSV → raw rows

// pyarrow's default null values (jfx reads CSV examples with pyarrow, strings included)
const NULLS = new Set(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
  "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"]);
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** RFC 4180 records (quoted fields, doubled quotes, CRLF or LF); blank lines are skipped. */
export function parseCsv(text) {
  const records = [];
  let record = [];
  let field = "";
  let quoted = false;
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  const endRecord = () => {
    record.push(field);
    if (!(record.length === 1 && record[0] === "")) records.push(record);
    record = [];
    field = "";
  };
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === ",") { record.push(field); field = ""; } else if (c === "\n") endRecord();
    else if (c === "\r") { if (text[i + 1] !== "\n") endRecord(); } else field += c;
  }
  if (quoted) throw new InputError("the CSV file ends inside a quoted field");
  if (field !== "" || record.length) endRecord();
  return records;
}

/** A text cell (CSV or form) as the raw value a client would send for the feature. */
function cellValue(name, spec, text, where) {
  const s = text.trim();
  if (spec.dtype === "string") return NULLS.has(text) ? null : text;
  const parseOne = (t) => {
    if (spec.dtype === "bool" || spec.source_type === "bool") {
      const l = t.toLowerCase();
      if (l === "true" || l === "1") return true;
      if (l === "false" || l === "0") return false;
      if (NULLS.has(t) && spec.dtype !== "bool") return null;
      throw new InputError(`${where}: ${JSON.stringify(t)} is not true or false`);
    }
    if (NULLS.has(t)) {
      if (INT_RANGE[spec.dtype]) throw new InputError(`${where}: a value is missing; the ${spec.dtype} feature takes whole numbers`);
      return null;
    }
    if (!NUMBER.test(t)) throw new InputError(`${where}: ${JSON.stringify(t.slice(0, 40))} is not a number`);
    return Number(t);
  };
  if (spec.shape.length) {
    const parts = s.replace(/^\[|\]$/g, "").split(/[\s,;]+/).filter((p) => p !== "");
    return parts.map(parseOne);
  }
  return parseOne(s);
}

/** Rows of raw values from a CSV text: the header names the columns; the model's inputs must be among them. */
export function rowsFromCsv(signature, text) {
  const records = parseCsv(text);
  if (!records.length) throw new InputError("the CSV file is empty; it needs a header line and rows");
  const header = records[0].map((h) => h.trim());
  const names = Object.keys(signature.inputs);
  const missing = names.filter((n) => !header.includes(n));
  if (missing.length) {
    throw new InputError(`the CSV has no column ${missing.map((m) => `'${m}'`).join(", ")}; the model needs ${names.join(", ")}`);
  }
  if (records.length === 1) throw new InputError("the CSV file has a header but no rows");
  const at = Object.fromEntries(names.map((n) => [n, header.indexOf(n)]));
  return records.slice(1).map((cells, r) => {
    if (cells.length !== header.length) {
      throw new InputError(`CSV row ${r + 1} (line ${r + 2}) has ${cells.length} cells; the header has ${header.length}`);
    }
    return Object.fromEntries(names.map((n) => [n, cellValue(n, signature.inputs[n], cells[at[n]],
      `CSV row ${r + 1} (line ${r + 2}), column '${n}'`)]));
  });
}

// ------------------------------------------------------------------ the model

let session = null;
let signature = null;

/** Runs the model on rows of raw values: {rows, outputs: {name: per-row values}, classes, ms}. */
export async function predict(rows) {
  if (!rows.length) throw new InputError("no rows to predict");
  const t0 = performance.now();
  const results = await session.run(prepare(signature, rows));
  const outputs = {};
  for (const name of session.outputNames) {
    const t = results[name];
    const flat = Array.from(t.data, (x) => (typeof x === "bigint" ? Number(x) : x));
    const width = t.dims.slice(1).reduce((a, b) => a * b, 1);
    outputs[name] = t.dims.length > 1 ? rows.map((_, i) => flat.slice(i * width, (i + 1) * width)) : flat;
  }
  const labels = signature.label_names;
  const classes = outputs.class_ids && labels ? outputs.class_ids.map((c) => labels[c] ?? String(c)) : null;
  return { rows: rows.length, outputs, classes, ms: performance.now() - t0 };
}

// ------------------------------------------------------------------ the page

const $ = (id) => document.getElementById(id);
const fmt = (x) => (typeof x !== "number" ? String(x) : Number.isInteger(x) ? String(x)
  : Math.abs(x) < 1e-4 ? x.toExponential(2) : x.toFixed(4));

function showError(message) {
  window.jfxError = message;
  $("error").textContent = message;
  $("error").hidden = false;
}

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function buildForm() {
  const fields = $("fields");
  for (const [name, spec] of Object.entries(signature.inputs)) {
    const label = el("label");
    const kind = spec.dtype === "string" ? "string" : spec.shape.length ? `${spec.dtype}[${spec.shape.join(", ")}]` : spec.dtype;
    label.append(el("span", {}, name), el("span", { class: "dtype" }, kind));
    let input;
    if (spec.dtype === "string" && spec.encoder.vocabulary) {
      input = el("select");
      for (const word of spec.encoder.vocabulary) input.append(el("option", { value: word }, word));
      input.append(el("option", { value: "" }, "(missing)"));
    } else if (spec.dtype === "bool" || spec.source_type === "bool") {
      input = el("select");
      for (const v of ["true", "false"]) input.append(el("option", { value: v }, v));
      if (spec.dtype !== "bool") input.append(el("option", { value: "" }, "(missing)"));
    } else if (spec.dtype === "string" || spec.shape.length) {
      input = el("input", { type: "text", placeholder: spec.shape.length ? `${spec.shape.join("×")} numbers, e.g. 1, 2` : "text" });
    } else {
      input = el("input", { type: "number", step: INT_RANGE[spec.dtype] ? "1" : "any", placeholder: INT_RANGE[spec.dtype] ? "" : "empty: missing" });
    }
    input.name = name;
    input.id = `f-${name}`;
    label.append(input);
    fields.append(label);
  }
}

function rowFromForm() {
  const row = {};
  for (const [name, spec] of Object.entries(signature.inputs)) {
    const input = $(`f-${name}`);
    const where = `field '${name}'`;
    if (input.validity && input.validity.badInput) throw new InputError(`${where}: not a number`);
    if (spec.dtype === "string") row[name] = input.value === "" && input.tagName === "SELECT" ? null : input.value;
    else row[name] = cellValue(name, spec, input.value, where);
  }
  return row;
}

function render(result) {
  const table = $("table");
  const head = table.tHead;
  const body = table.tBodies[0];
  head.textContent = "";
  body.textContent = "";
  const cols = [["#", null]];
  const labels = signature.label_names;
  const probs = result.outputs.probabilities;
  if (result.classes) cols.push(["class", "class"]);
  if (probs && Array.isArray(probs[0])) {
    probs[0].forEach((_, j) => cols.push([`P(${labels ? labels[j] : j})`, `p${j}`]));
  }
  for (const name of Object.keys(result.outputs)) {
    if ((name === "probabilities" && probs) || (name === "class_ids" && result.classes) || (result.classes && name === "logits")) continue;
    cols.push([name, `o:${name}`]);
  }
  const tr = el("tr");
  for (const [title, key] of cols) tr.append(el("th", key === "class" ? { class: "class" } : {}, title));
  head.append(tr);
  const shown = Math.min(result.rows, 2000);
  for (let i = 0; i < shown; i++) {
    const row = el("tr");
    for (const [, key] of cols) {
      if (key === null) row.append(el("td", {}, String(i)));
      else if (key === "class") row.append(el("td", { class: "class" }, result.classes[i]));
      else if (key.startsWith("p")) {
        const j = Number(key.slice(1));
        const best = probs[i].indexOf(Math.max(...probs[i])) === j;
        row.append(el("td", best ? { class: "best" } : {}, fmt(probs[i][j])));
      } else {
        const v = result.outputs[key.slice(2)][i];
        row.append(el("td", {}, Array.isArray(v) ? v.map(fmt).join(", ") : fmt(v)));
      }
    }
    body.append(row);
  }
  $("summary").textContent = `${result.rows} row${result.rows === 1 ? "" : "s"} in ${result.ms.toFixed(1)} ms` +
    (shown < result.rows ? ` (the first ${shown} shown; window.jfxResult has them all)` : "");
  $("results").hidden = false;
}

async function run(getRows) {
  $("error").hidden = true;
  window.jfxError = null;
  try {
    const result = await predict(await getRows());
    window.jfxResult = result;
    render(result);
  } catch (err) {
    window.jfxResult = null;
    showError(err instanceof InputError ? err.message : `${err.name || "Error"}: ${err.message || err}`);
  }
}

async function load() {
  const base = new URL("./", import.meta.url).href;
  ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation headers
  // the .wasm next to this script (the JavaScript glue is in the bundle): offline, from any static server
  ort.env.wasm.wasmPaths = { wasm: new URL("ort-wasm-simd-threaded.wasm", base).href };
  const response = await fetch(new URL("signature.json", base));
  if (!response.ok) throw new Error(`signature.json: HTTP ${response.status}`);
  signature = await response.json();
  const model = new URL(signature.model || "model.onnx", base).href;
  session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  const source = String(signature.source || "").split(/[\\/]/).filter(Boolean);
  const title = signature.metadata?.label_key ? `predicts ${signature.metadata.label_key}` : "jfx model";
  document.title = source.length >= 2 ? `${source.slice(-2).join(" v")} — jfx` : "jfx model";
  $("title").textContent = source.length >= 2 ? `${source.at(-2)} (version ${source.at(-1)})` : "jfx model";
  buildForm();
  $("status").textContent = `${title}; ${Object.keys(signature.inputs).length} inputs, outputs ` +
    `${session.outputNames.join(", ")}${signature.quantization ? ` (${signature.quantization.type})` : ""}. Ready.`;
  $("predict").disabled = false;
  $("csv").disabled = false;
  $("row-form").addEventListener("submit", (e) => { e.preventDefault(); run(async () => [rowFromForm()]); });
  $("csv").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) run(async () => rowsFromCsv(signature, await file.text()));
  });
}

window.jfxResult = null;
window.jfxError = null;
window.jfxPredict = predict;
window.jfxEncodeStrings = encodeStrings;
window.jfxStableHash = (s) => stableHash(s).toString();
window.jfxReady = load().catch((err) => {
  $("status").textContent = "The model could not be loaded.";
  showError(`cannot load the model: ${err.message || err}`);
  throw err;
});
