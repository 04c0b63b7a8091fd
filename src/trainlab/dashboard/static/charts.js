// Chart helpers: uPlot line charts that update in place, a canvas scatter with log axes and
// boxes (validation accuracy against one parameter), and an SVG parallel-coordinates view.
"use strict";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];

function colorOf(i) { return PALETTE[((i % 10) + 10) % 10]; }

// A chart's title line (its text drawn as text, like every label here).
function titleOf(text) {
  const t = document.createElement("div");
  t.className = "title";
  t.textContent = text;
  return t;
}

// A uPlot line chart in `el`; chart.update(data, labels) redraws, rebuilding only when the
// series change. data = [xs, ys1, ys2, ...]; el.dataset.points = the x values drawn.
function LineChart(el, title, opts) {
  opts = opts || {};
  const box = document.createElement("div");
  box.className = "chart";
  box.appendChild(titleOf(title));
  el.appendChild(box);
  let plot = null, key = "";
  this.el = box;
  this.update = function (data, labels, colors) {
    const k = labels.join("\u0001");
    box.dataset.points = data[0].length;
    box.dataset.series = data.slice(1).filter(ys => ys.some(v => v != null)).length;
    if (plot && k === key) { plot.setData(data); return; }
    if (plot) plot.destroy();
    key = k;
    const series = [{ label: opts.x || "x" }];
    labels.forEach((l, i) => series.push({
      label: l, stroke: (colors && colors[i]) || colorOf(i), width: opts.width || 1.5,
      spanGaps: true, points: { show: data[0].length < 60 },
      dash: opts.dashed && opts.dashed[i] ? [5, 5] : undefined,
    }));
    plot = new uPlot({
      width: opts.w || 520, height: opts.h || 260, series,
      legend: { show: labels.length <= 12 },
      scales: { x: { time: false }, y: opts.logY ? { distr: 3 } : (opts.y || {}) },
      axes: [{ label: opts.x || "" }, { label: opts.yLabel || "", size: 60 }],
      cursor: { drag: { x: true, y: false } },
    }, data, box);
  };
}

// Validation accuracy against one searched parameter, on the parameter's own scale: log10 for
// log scales, log10(1 - beta) for betas; choices side by side. Points coloured by round (or block),
// and each round's box (from round 1 on) shaded in its colour.
function paramScatter(el, dim, trials, boxes) {
  const W = 360, H = 240, L = 48, R = 10, T = 22, B = 34;
  const c = document.createElement("canvas");
  c.width = W; c.height = H; c.className = "chart";
  el.appendChild(c);
  const g = c.getContext("2d");
  const beta = dim.kind === "beta";
  const cat = dim.kind === "choice";
  const pts = trials.filter(t => t.value != null && t.params[dim.path] !== undefined);
  const xOf = v => cat ? dim.choices.findIndex(ch => String(ch) === String(v))
    : beta ? Math.log10(Math.max(1 - v, 1e-12)) : dim.log ? Math.log10(v) : v;
  let lo, hi;
  if (cat) { lo = -0.5; hi = dim.choices.length - 0.5; }
  else { lo = xOf(beta ? dim.high : dim.low); hi = xOf(beta ? dim.low : dim.high); }
  if (lo > hi) [lo, hi] = [hi, lo];
  if (hi === lo) { hi += 1; lo -= 1; }
  const vals = pts.map(t => t.value);
  let ylo = Math.min(...vals, 1), yhi = Math.max(...vals, 0);
  if (!vals.length) { ylo = 0; yhi = 1; }
  if (yhi - ylo < 1e-6) { ylo -= 0.05; yhi += 0.05; }
  const pad = (yhi - ylo) * 0.05; ylo -= pad; yhi += pad;
  const px = x => L + (x - lo) / (hi - lo) * (W - L - R);
  const py = y => T + (1 - (y - ylo) / (yhi - ylo)) * (H - T - B);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  (boxes || []).forEach((bx, r) => {
    if (r === 0 || !bx[dim.path] || cat) return;
    const [a, b] = bx[dim.path].map(xOf).sort((p, q) => p - q);
    g.fillStyle = colorOf(r) + "22"; g.strokeStyle = colorOf(r);
    g.fillRect(px(a), T, px(b) - px(a), H - T - B); g.strokeRect(px(a), T, px(b) - px(a), H - T - B);
  });
  g.strokeStyle = "#555"; g.strokeRect(L, T, W - L - R, H - T - B);
  g.fillStyle = "#333"; g.font = "11px sans-serif"; g.textAlign = "center";
  if (cat) dim.choices.forEach((ch, i) => g.fillText(String(ch), px(i), H - B + 14));
  else for (let k = 0; k <= 4; k++) {
    const x = lo + (hi - lo) * k / 4;
    const shown = beta ? 1 - Math.pow(10, x) : dim.log ? Math.pow(10, x) : x;
    g.fillText(Number(shown.toPrecision(3)).toString(), px(x), H - B + 14);
  }
  g.fillText(beta ? `${dim.path} (axis: 1 - beta, log)` : dim.path + (dim.log ? " (log)" : ""),
    (L + W - R) / 2, H - 4);
  g.textAlign = "right";
  for (let k = 0; k <= 4; k++) {
    const y = ylo + (yhi - ylo) * k / 4;
    g.fillText(y.toFixed(3), L - 4, py(y) + 4);
  }
  g.textAlign = "left"; g.fillText("val accuracy", 4, 12);
  pts.forEach((t, i) => {
    const jitter = cat ? ((t.number * 0.618) % 1 - 0.5) * 0.4 : 0;
    g.fillStyle = colorOf(t.group == null ? 0 : t.group);
    g.beginPath(); g.arc(px(xOf(t.params[dim.path]) + jitter), py(t.value), 3, 0, 7); g.fill();
  });
  c.dataset.points = pts.length;
  return c;
}

// Parallel coordinates: one axis per parameter (its own scale) and one for the value; a line
// per finished trial, darker and warmer the better it did.
function parallelCoordinates(el, dims, trials) {
  const W = Math.max(420, 150 * (dims.length + 1)), H = 260, T = 24, B = 30, P = 60;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "pc chart");
  const axes = dims.map(d => ({ label: d.path, dim: d })).concat([{ label: "val accuracy" }]);
  const pts = trials.filter(t => t.value != null);
  const scale = axes.map(a => {
    const d = a.dim;
    if (!d) { const v = pts.map(t => t.value); return { f: t => t.value, lo: Math.min(...v), hi: Math.max(...v) }; }
    if (d.kind === "choice") return { f: t => d.choices.findIndex(c => String(c) === String(t.params[d.path])), lo: 0, hi: Math.max(1, d.choices.length - 1), cat: d.choices };
    const tr = d.kind === "beta" ? v => Math.log10(Math.max(1 - v, 1e-12)) : d.log ? Math.log10 : v => v;
    const a1 = tr(d.low), a2 = tr(d.high);
    return { f: t => tr(t.params[d.path]), lo: Math.min(a1, a2), hi: Math.max(a1, a2) };
  });
  const x = i => P + i * (W - 2 * P) / Math.max(1, axes.length - 1);
  const y = (s, v) => T + (1 - (v - s.lo) / ((s.hi - s.lo) || 1)) * (H - T - B);
  const vs = pts.map(t => t.value), vlo = Math.min(...vs), vhi = Math.max(...vs);
  pts.sort((a, b) => a.value - b.value).forEach(t => {
    let d = "";
    scale.forEach((s, i) => {
      const v = s.f(t);
      if (v == null || Number.isNaN(v) || v === -1) return;
      d += (d ? "L" : "M") + x(i).toFixed(1) + "," + y(s, v).toFixed(1);
    });
    const q = (t.value - vlo) / ((vhi - vlo) || 1);
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d); path.setAttribute("fill", "none");
    path.setAttribute("stroke", `hsl(${(240 - 240 * q).toFixed(0)},70%,45%)`);
    path.setAttribute("stroke-opacity", (0.25 + 0.6 * q).toFixed(2));
    svg.appendChild(path);
  });
  axes.forEach((a, i) => {
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", x(i)); line.setAttribute("x2", x(i));
    line.setAttribute("y1", T); line.setAttribute("y2", H - B); line.setAttribute("class", "axis");
    svg.appendChild(line);
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", x(i)); text.setAttribute("y", H - 10); text.setAttribute("text-anchor", "middle");
    text.textContent = a.label + (a.dim && a.dim.kind === "beta" ? " (1-beta)" : a.dim && a.dim.log ? " (log)" : "");
    svg.appendChild(text);
    const s = scale[i];
    [[s.lo, H - B + 0], [s.hi, T]].forEach(([v, yy]) => {
      const lab = document.createElementNS(ns, "text");
      lab.setAttribute("x", x(i) + 4); lab.setAttribute("y", yy === T ? T - 6 : H - B + 12);
      let shown = s.cat ? String(s.cat[Math.round(v)]) : a.dim && a.dim.kind === "beta" ? (1 - Math.pow(10, v)) : a.dim && a.dim.log ? Math.pow(10, v) : v;
      lab.textContent = typeof shown === "number" ? Number(shown.toPrecision(3)).toString() : shown;
      svg.appendChild(lab);
    });
  });
  svg.dataset.lines = pts.length;
  el.appendChild(svg);
  return svg;
}

// Many curves on one canvas (a study's trials: uPlot slows down past a few hundred series).
// curves: [{points: [[x, y], ...], color}]; redraws in place on update.
function ManyLines(el, title) {
  const box = document.createElement("div");
  box.className = "chart";
  box.appendChild(titleOf(title));
  const c = document.createElement("canvas");
  c.width = 760; c.height = 320;
  box.appendChild(c);
  el.appendChild(box);
  this.el = box;
  this.update = function (curves) {
    const g = c.getContext("2d"), W = c.width, H = c.height, L = 50, R = 12, T = 10, B = 30;
    const xs = curves.flatMap(k => k.points.map(p => p[0]));
    const ys = curves.flatMap(k => k.points.map(p => p[1]).filter(v => v != null));
    g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
    box.dataset.points = new Set(xs).size;
    box.dataset.lines = curves.length;
    if (!xs.length) return;
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 - y0 < 1e-9) { y0 -= 0.05; y1 += 0.05; }
    const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    const px = x => L + (x - x0) / (x1 - x0) * (W - L - R), py = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    g.strokeStyle = "#555"; g.strokeRect(L, T, W - L - R, H - T - B);
    g.fillStyle = "#333"; g.font = "11px sans-serif"; g.textAlign = "right";
    for (let k = 0; k <= 4; k++) { const y = y0 + (y1 - y0) * k / 4; g.fillText(y.toFixed(3), L - 4, py(y) + 4); }
    g.textAlign = "center";
    for (let k = 0; k <= 4; k++) { const x = x0 + (x1 - x0) * k / 4; g.fillText(Number(x.toPrecision(3)), px(x), H - B + 14); }
    g.fillText("epoch", (L + W) / 2, H - 4);
    g.globalAlpha = curves.length > 100 ? 0.35 : 0.85;
    curves.forEach(k => {
      g.strokeStyle = k.color; g.beginPath();
      let on = false;
      k.points.forEach(([x, y]) => {
        if (y == null) { on = false; return; }
        on ? g.lineTo(px(x), py(y)) : g.moveTo(px(x), py(y)); on = true;
      });
      g.stroke();
    });
    g.globalAlpha = 1;
  };
}
