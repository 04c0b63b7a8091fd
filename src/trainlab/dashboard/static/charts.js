// Chart helpers: uPlot line charts that update in place (log axes, smoothing), canvas scatters
// and a canvas of many curves (a study's trials) with hover, an SVG parallel-coordinates view,
// and the tick rules they share: 1, 2 or 5 times a power of ten, labelled "5e-5" when tiny.
// Every label and tooltip is drawn as text (textContent, fillText), never parsed as markup.
"use strict";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
// How a trial's state is drawn: line dash on curves, marker on scatters (and the legend's words).
const STATES = {
  complete: { dash: [], marker: "dot", label: "complete" },
  pruned: { dash: [5, 4], marker: "ring", label: "pruned (stopped early)" },
  diverged: { dash: [2, 3], marker: "cross", label: "diverged" },
  failed: { dash: [1, 4], marker: "square", label: "failed" },
  running: { dash: [8, 3, 2, 3], marker: "plus", label: "running" },
};

function colorOf(i) { return PALETTE[((i % 10) + 10) % 10]; }

// A tick or value label: plain for ordinary magnitudes, "5e-5" for tiny or huge ones, never
// float noise ("0.30000000000000004") nor a tiny number rounded to "0".
function fmtTick(v) {
  if (v == null || !Number.isFinite(v)) return "";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) {
    const [m, e] = v.toExponential().split("e");
    return Number(Number(m).toPrecision(3)) + "e" + Number(e);
  }
  return String(Number(v.toPrecision(6)));
}

// Ticks between lo and hi, at most n + 1 of them: multiples of the finest of 1, 2 or 5 times a
// power of ten that gives so few (whole numbers only when `integer`, as epochs are).
function niceTicks(lo, hi, n, integer) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, n);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const count = s => Math.floor(hi / s + 1e-9) - Math.ceil(lo / s - 1e-9) + 1;
  let step = [1, 2, 5, 10, 20].map(m => m * p).filter(s => !integer || s >= 1).find(s => count(s) <= n + 1) || 20 * p;
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

// Ticks of a log10 axis (lo, hi are log10 values): the powers of ten inside, with 2x and 5x
// between them when fewer than three decades are shown; returned as log10 values.
function logTicks(lo, hi) {
  const out = [];
  const few = hi - lo < 3;
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    (few ? [1, 2, 5] : [1]).forEach(m => {
      const v = k + Math.log10(m);
      if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
    });
  }
  return out.length >= 2 ? out : niceTicks(lo, hi, 4);
}

// uPlot axis options: nice steps and fmtTick labels (uPlot's own would say "0" for 5e-5).
const INCRS = [];
for (let e = -12; e <= 12; e++) [1, 2, 5].forEach(m => INCRS.push(Number((m * Math.pow(10, e)).toPrecision(3))));
const axisValues = (u, splits) => splits.map(fmtTick);
// A log axis keeps the ticks (and grid lines) at powers of ten, and at 2x and 5x between them
// when it spans fewer than three decades: uPlot's 2..9 lines in every decade read as a grey band.
function logFilter(u, splits) {
  const pos = splits.filter(v => v > 0);
  const few = pos.length && Math.log10(Math.max(...pos) / Math.min(...pos)) < 3;
  return splits.map(v => {
    const m = Number((v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9))).toPrecision(3));
    return m === 1 || (few && (m === 2 || m === 5)) ? v : null;
  });
}

// Whether a positive series spans enough to need a log axis (largest / smallest > 30).
function wantsLog(series) {
  const vs = series.flat().filter(v => v != null && v > 0);
  if (!vs.length) return false;
  let lo = Infinity, hi = -Infinity;
  vs.forEach(v => { if (v < lo) lo = v; if (v > hi) hi = v; });
  return hi / lo > 30;
}

// TensorBoard's smoothing: a debiased exponential moving average with weight w over the points
// drawn (non-finite points skipped).
function smoothed(ys, w) {
  let last = 0, t = 0;
  return ys.map(v => {
    if (v == null || !Number.isFinite(v)) return null;
    t += 1; last = last * w + (1 - w) * v;
    return last / (1 - Math.pow(w, t));
  });
}

// A chart's title line (its text drawn as text, like every label here).
function titleOf(text) {
  const t = document.createElement("div");
  t.className = "title";
  t.textContent = text;
  return t;
}

// A uPlot line chart in `el`; chart.update(data, labels, colors) redraws, rebuilding only when
// the series or the axes change; chart.set({logY}) switches the y axis. data = [xs, ys1, ...];
// el.dataset.points = the x values drawn, el.dataset.log = whether y is on a log axis.
function LineChart(el, title, opts) {
  opts = Object.assign({}, opts || {});
  const box = document.createElement("div");
  box.className = "chart";
  box.appendChild(titleOf(title));
  this.controls = document.createElement("div");
  this.controls.className = "controls";
  box.appendChild(this.controls);
  this.note = document.createElement("div");
  this.note.className = "note muted";
  box.appendChild(this.note);
  el.appendChild(box);
  let plot = null, key = "", last = null;
  this.el = box;
  this.opts = opts;
  this.set = o => { Object.assign(opts, o); key = ""; if (last) this.update(...last); };
  this.update = function (data, labels, colors, styles) {
    last = [data, labels, colors, styles];
    const k = labels.join("\u0001") + "|" + !!opts.logY;
    box.dataset.points = data[0].length;
    box.dataset.series = data.slice(1).filter(ys => ys.some(v => v != null)).length;
    box.dataset.log = opts.logY ? "1" : "0";
    if (opts.logY) data = [data[0], ...data.slice(1).map(ys => ys.map(v => v != null && v > 0 ? v : null))];
    if (plot && k === key) { plot.setData(data); return; }
    if (plot) plot.destroy();
    key = k;
    const series = [{ label: opts.x || "x", value: (u, v) => fmtTick(v) }];
    labels.forEach((l, i) => {
      const st = (styles && styles[i]) || {};
      series.push({
        label: l, stroke: (colors && colors[i]) || colorOf(i), width: st.width || opts.width || 1.5,
        spanGaps: true, points: { show: st.points != null ? st.points : data[0].length < 60, size: 5 },
        dash: st.dash || (opts.dashed && opts.dashed[i] ? [5, 5] : undefined),
        value: (u, v) => fmtTick(v),
      });
    });
    const y = opts.logY ? { distr: 3 } : Object.assign({}, opts.y || {});
    if (opts.unit && !opts.logY) y.range = (u, lo, hi) => [Math.max(0, Math.floor((lo ?? 0) * 10) / 10), Math.min(1, Math.ceil((hi ?? 1) * 10) / 10) || 1];
    plot = new uPlot({
      width: opts.w || 520, height: opts.h || 260, series,
      legend: { show: labels.length <= 12 },
      scales: { x: { time: false }, y },
      axes: [
        { label: opts.x || "", values: axisValues, incrs: opts.integerX ? INCRS.filter(v => v >= 1) : INCRS },
        { label: opts.yLabel || "", size: 60, values: axisValues, incrs: opts.logY ? undefined : INCRS,
          ...(opts.logY ? { filter: logFilter, grid: { filter: logFilter }, ticks: { filter: logFilter } } : {}) },
      ],
      cursor: { drag: { x: true, y: false } },
    }, data, box);
  };
}

// The one tooltip of the page: lines of text at the mouse.
function tooltip() {
  let tip = document.getElementById("tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "tip";
    document.body.appendChild(tip);
  }
  return {
    show(ev, lines) {
      tip.textContent = lines.join("\n");
      tip.style.display = "block";
      tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
      tip.style.top = (ev.clientY + 14) + "px";
    },
    hide() { tip.style.display = "none"; },
  };
}

// Hover on a canvas: `find(x, y)` (canvas pixels) gives the lines to show, or null.
function hoverable(canvas, find) {
  const tip = tooltip();
  canvas.addEventListener("mousemove", ev => {
    const r = canvas.getBoundingClientRect();
    const lines = find((ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height);
    lines ? tip.show(ev, lines) : tip.hide();
  });
  canvas.addEventListener("mouseleave", () => tip.hide());
}

// A scatter marker for a trial's state (dot, ring, cross, square, plus).
function marker(g, x, y, state, color) {
  const m = (STATES[state] || STATES.complete).marker;
  g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 1.5;
  g.beginPath();
  if (m === "dot") { g.arc(x, y, 3.5, 0, 7); g.fill(); }
  else if (m === "ring") { g.arc(x, y, 3.5, 0, 7); g.stroke(); }
  else if (m === "square") { g.rect(x - 3, y - 3, 6, 6); g.stroke(); }
  else if (m === "plus") { g.moveTo(x - 4, y); g.lineTo(x + 4, y); g.moveTo(x, y - 4); g.lineTo(x, y + 4); g.stroke(); }
  else { g.moveTo(x - 4, y - 4); g.lineTo(x + 4, y + 4); g.moveTo(x + 4, y - 4); g.lineTo(x - 4, y + 4); g.stroke(); }
  g.lineWidth = 1;
}

// A parameter's axis: value -> axis position and back, its range, ticks and their labels. Log
// scales on log10, betas on log10(1 - beta) (shown as beta), choices side by side.
function paramAxis(dim) {
  if (dim.kind === "choice") {
    const idx = v => dim.choices.findIndex(ch => String(ch) === String(v));
    return { of: idx, lo: -0.5, hi: dim.choices.length - 0.5, cat: true,
      ticks: dim.choices.map((_, i) => i), label: i => String(dim.choices[i]) };
  }
  if (dim.kind === "beta") {
    const of = v => Math.log10(Math.max(1 - v, 1e-12));
    const a = of(dim.high), b = of(dim.low);
    return { of, lo: Math.min(a, b), hi: Math.max(a, b), ticks: logTicks(Math.min(a, b), Math.max(a, b)),
      label: x => fmtTick(Number((1 - Math.pow(10, x)).toPrecision(6))) };
  }
  if (dim.log) {
    const lo = Math.log10(dim.low), hi = Math.log10(dim.high);
    return { of: Math.log10, lo, hi, ticks: logTicks(lo, hi), label: x => fmtTick(Number(Math.pow(10, x).toPrecision(6))) };
  }
  const integer = dim.kind === "int";
  return { of: v => v, lo: dim.low, hi: dim.high, ticks: niceTicks(dim.low, dim.high, 4, integer), label: fmtTick };
}

// The value a trial is drawn at: its best epoch's validation accuracy (a diverged trial's last
// epochs collapse; its test accuracy is that best epoch's).
const trialValue = t => t.best_value != null ? t.best_value : t.value;
// A trial's tooltip: number, state, value and every parameter.
function trialLines(t, params) {
  return [`trial ${t.number} · ${t.state}`, `val accuracy ${t.value == null && t.best_value == null ? "-" : (100 * trialValue(t)).toFixed(2) + "%"}` +
    (t.state !== "complete" && t.best_value != null ? " (best epoch)" : "")]
    .concat((params || Object.keys(t.params)).map(p => `${p} = ${fmtTick(typeof t.params[p] === "number" ? t.params[p] : NaN) || String(t.params[p])}`));
}

// The value axis of the study's charts: nice ticks around the values, inside [0, 1].
function valueRange(vals) {
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (!vals.length) { lo = 0; hi = 1; }
  if (hi - lo < 1e-6) { lo -= 0.05; hi += 0.05; }
  const pad = (hi - lo) * 0.05;
  lo = Math.max(0, lo - pad); hi = Math.min(1, hi + pad);
  if (hi <= lo) hi = lo + 0.1;
  return [lo, hi];
}

// Validation accuracy against one searched parameter, on the parameter's own scale. Points
// coloured by round (or block), marked by state, each round's box (from round 1 on) shaded in
// its colour; hover names the trial.
function paramScatter(el, dim, trials, boxes) {
  const W = 360, H = 240, L = 48, R = 10, T = 22, B = 34;
  const c = document.createElement("canvas");
  c.width = W; c.height = H; c.className = "chart";
  el.appendChild(c);
  const g = c.getContext("2d");
  const ax = paramAxis(dim);
  const pts = trials.filter(t => trialValue(t) != null && t.params[dim.path] !== undefined);
  let lo = ax.lo, hi = ax.hi;
  if (hi === lo) { hi += 1; lo -= 1; }
  const [ylo, yhi] = valueRange(pts.map(trialValue));
  const px = x => L + (x - lo) / (hi - lo) * (W - L - R);
  const py = y => T + (1 - (y - ylo) / (yhi - ylo)) * (H - T - B);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  (boxes || []).forEach((bx, r) => {
    if (r === 0 || !bx[dim.path] || ax.cat) return;
    const [a, b] = bx[dim.path].map(ax.of).sort((p, q) => p - q);
    g.fillStyle = colorOf(r) + "22"; g.strokeStyle = colorOf(r);
    g.fillRect(px(a), T, px(b) - px(a), H - T - B); g.strokeRect(px(a), T, px(b) - px(a), H - T - B);
  });
  g.strokeStyle = "#555"; g.strokeRect(L, T, W - L - R, H - T - B);
  g.fillStyle = "#333"; g.font = "11px sans-serif"; g.textAlign = "center";
  ax.ticks.forEach(x => g.fillText(ax.label(x), px(x), H - B + 14));
  g.fillText(dim.kind === "beta" ? `${dim.path} (axis: 1 - beta, log)` : dim.path + (dim.log ? " (log)" : ""), (L + W - R) / 2, H - 4);
  g.textAlign = "right";
  niceTicks(ylo, yhi, 4).forEach(y => g.fillText(fmtTick(y), L - 4, py(y) + 4));
  g.textAlign = "left"; g.fillText("val accuracy", 4, 12);
  const drawn = pts.map(t => {
    const jitter = ax.cat ? ((t.number * 0.618) % 1 - 0.5) * 0.4 : 0;
    const x = px(ax.of(t.params[dim.path]) + jitter), y = py(trialValue(t));
    marker(g, x, y, t.state, colorOf(t.group == null ? 0 : t.group));
    return [x, y, t];
  });
  hoverable(c, (mx, my) => {
    let best = null, d2 = 64;
    drawn.forEach(([x, y, t]) => { const d = (x - mx) ** 2 + (y - my) ** 2; if (d < d2) { d2 = d; best = t; } });
    return best && trialLines(best);
  });
  c.dataset.points = pts.length;
  return c;
}

// Parallel coordinates: one axis per parameter (its own scale) and one for the value; a line
// per finished trial, darker and warmer the better it did, dashed when it did not complete;
// hovering a line names its trial and thickens it.
function parallelCoordinates(el, dims, trials) {
  const W = Math.max(420, 150 * (dims.length + 1)), H = 260, T = 24, B = 30, P = 60;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "pc chart");
  const pts = trials.filter(t => trialValue(t) != null);
  const [vlo, vhi] = valueRange(pts.map(trialValue));
  const valueAxis = { of: v => v, lo: vlo, hi: vhi, ticks: niceTicks(vlo, vhi, 4), label: fmtTick };
  const axes = dims.map(d => ({ label: d.path, dim: d, ax: paramAxis(d) })).concat([{ label: "val accuracy", ax: valueAxis }]);
  const x = i => P + i * (W - 2 * P) / Math.max(1, axes.length - 1);
  const y = (a, v) => T + (1 - (v - a.lo) / ((a.hi - a.lo) || 1)) * (H - T - B);
  const tip = tooltip();
  pts.sort((a, b) => trialValue(a) - trialValue(b)).forEach(t => {
    let d = "";
    axes.forEach((a, i) => {
      const v = a.dim ? a.ax.of(t.params[a.dim.path]) : trialValue(t);
      if (v == null || Number.isNaN(v) || (a.ax.cat && v === -1)) return;
      d += (d ? "L" : "M") + x(i).toFixed(1) + "," + y(a.ax, v).toFixed(1);
    });
    const q = (trialValue(t) - vlo) / ((vhi - vlo) || 1);
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d); path.setAttribute("fill", "none");
    path.setAttribute("stroke", `hsl(${(240 - 240 * q).toFixed(0)},70%,45%)`);
    path.setAttribute("stroke-opacity", (0.25 + 0.6 * q).toFixed(2));
    const dash = (STATES[t.state] || STATES.complete).dash;
    if (dash.length) path.setAttribute("stroke-dasharray", dash.join(","));
    path.addEventListener("mouseenter", ev => { path.setAttribute("stroke-width", "3"); tip.show(ev, trialLines(t)); });
    path.addEventListener("mousemove", ev => tip.show(ev, trialLines(t)));
    path.addEventListener("mouseleave", () => { path.removeAttribute("stroke-width"); tip.hide(); });
    svg.appendChild(path);
  });
  const text = (tx, ty, s, anchor) => {
    const e = document.createElementNS(ns, "text");
    e.setAttribute("x", tx); e.setAttribute("y", ty); e.setAttribute("text-anchor", anchor || "start");
    e.textContent = s;
    svg.appendChild(e);
  };
  axes.forEach((a, i) => {
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", x(i)); line.setAttribute("x2", x(i));
    line.setAttribute("y1", T); line.setAttribute("y2", H - B); line.setAttribute("class", "axis");
    svg.appendChild(line);
    text(x(i), H - 10, a.label + (a.dim && a.dim.kind === "beta" ? " (1-beta axis)" : a.dim && a.dim.log ? " (log)" : ""), "middle");
    const ticks = a.ax.ticks.length > 6 ? a.ax.ticks.filter((_, k) => k % Math.ceil(a.ax.ticks.length / 6) === 0) : a.ax.ticks;
    ticks.forEach(v => text(x(i) + 4, y(a.ax, v) + 4, a.ax.label(v)));
  });
  svg.dataset.lines = pts.length;
  el.appendChild(svg);
  return svg;
}

// Many curves on one canvas (a study's trials: uPlot slows down past a few hundred series).
// curves: [{points: [[x, y], ...], color, dash, cross, lines (the tooltip)}]; redraws in place
// on update; hover names the nearest curve's trial and draws it thick.
function ManyLines(el, title) {
  const box = document.createElement("div");
  box.className = "chart";
  box.appendChild(titleOf(title));
  const c = document.createElement("canvas");
  c.width = 760; c.height = 320;
  box.appendChild(c);
  this.legend = document.createElement("div");
  this.legend.className = "legend";
  box.appendChild(this.legend);
  el.appendChild(box);
  this.el = box;
  let curves = [], frame = null, hot = null;
  const W = c.width, H = c.height, L = 50, R = 12, T = 10, B = 30;
  const draw = () => {
    const g = c.getContext("2d");
    g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
    if (!frame) return;
    const { px, py, x0, x1, y0, y1 } = frame;
    g.strokeStyle = "#555"; g.setLineDash([]); g.strokeRect(L, T, W - L - R, H - T - B);
    g.fillStyle = "#333"; g.font = "11px sans-serif"; g.textAlign = "right";
    niceTicks(y0, y1, 4).forEach(y => g.fillText(fmtTick(y), L - 4, py(y) + 4));
    g.textAlign = "center";
    niceTicks(x0, x1, 6, true).forEach(x => g.fillText(fmtTick(x), px(x), H - B + 14));
    g.fillText("epoch", (L + W) / 2, H - 4);
    const line = (k, width) => {
      g.strokeStyle = k.color; g.lineWidth = width; g.setLineDash(k.dash || []); g.beginPath();
      let on = false, end = null;
      k.points.forEach(([x, y]) => {
        if (y == null) { on = false; return; }
        on ? g.lineTo(px(x), py(y)) : g.moveTo(px(x), py(y)); on = true; end = [px(x), py(y)];
      });
      g.stroke(); g.setLineDash([]);
      if (k.cross && end) marker(g, end[0], end[1], "diverged", k.color);
    };
    g.globalAlpha = curves.length > 100 ? 0.35 : 0.85;
    curves.forEach(k => line(k, 1));
    g.globalAlpha = 1;
    if (hot) line(hot, 3);
    g.lineWidth = 1;
  };
  this.update = function (next) {
    curves = next;
    const xs = curves.flatMap(k => k.points.map(p => p[0]));
    const ys = curves.flatMap(k => k.points.map(p => p[1]).filter(v => v != null));
    box.dataset.points = new Set(xs).size;
    box.dataset.lines = curves.length;
    frame = null; hot = null;
    if (xs.length) {
      let x0 = Math.min(...xs), x1 = Math.max(...xs);
      if (x1 === x0) x1 = x0 + 1;
      const [y0, y1] = valueRange(ys);
      frame = { x0, x1, y0, y1, px: x => L + (x - x0) / (x1 - x0) * (W - L - R), py: y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B) };
    }
    draw();
  };
  hoverable(c, (mx, my) => {
    if (!frame) return null;
    let best = null, d2 = 100;
    curves.forEach(k => k.points.forEach(([x, y]) => {
      if (y == null) return;
      const d = (frame.px(x) - mx) ** 2 + (frame.py(y) - my) ** 2;
      if (d < d2) { d2 = d; best = k; }
    }));
    if (best !== hot) { hot = best; draw(); }
    return best && best.lines;
  });
  c.addEventListener("mouseleave", () => { if (hot) { hot = null; draw(); } });
}

// A legend of what colours and marks mean: [{color, mark (a state) or dash, text}].
function legendOf(el, items) {
  el.replaceChildren(...items.map(it => {
    const s = document.createElement("span");
    s.className = "key";
    const c = document.createElement("canvas");
    c.width = 26; c.height = 12;
    const g = c.getContext("2d");
    if (it.mark) marker(g, 13, 6, it.mark, it.color || "#333");
    else { g.strokeStyle = it.color || "#333"; g.lineWidth = 2; g.setLineDash(it.dash || []); g.beginPath(); g.moveTo(1, 6); g.lineTo(25, 6); g.stroke(); }
    s.append(c, document.createTextNode(" " + it.text));
    return s;
  }));
}

// Parameter importances as horizontal bars, largest first (as optuna-dashboard shows them).
function importanceBars(el, imp) {
  const rows = (imp && imp.params) || [];
  if (!rows.length) { el.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: (imp && imp.note) || "none yet" })); return; }
  const top = Math.max(...rows.map(r => r.importance || 0)) || 1;
  const t = document.createElement("table");
  t.className = "bars";
  rows.forEach(r => {
    const tr = t.insertRow();
    tr.insertCell().textContent = r.path;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (300 * (r.importance || 0) / top).toFixed(0) + "px";
    tr.insertCell().appendChild(bar);
    const v = tr.insertCell();
    v.className = "num"; v.textContent = r.importance == null ? "-" : r.importance.toFixed(3);
  });
  const note = document.createElement("p");
  note.className = "muted";
  note.textContent = `fANOVA (Optuna's default evaluator) over ${imp.trials} complete trials: the share of the validation accuracy's variance each parameter explains`;
  el.replaceChildren(t, note);
}
