// The dashboard's pages, drawn from the JSON API: home, run (panda), compare, study (caviar).
// Each page polls its API (runs every second, so a new epoch shows within 2 s).
"use strict";
const main = document.getElementById("main");
const POLL_MS = 1000;

const esc = s => String(s == null ? "" : s).replace(/[&<>"']/g,
  c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const pct = v => v == null ? "-" : (100 * v).toFixed(2) + "%";
const num = v => v == null ? "-" : typeof v === "number" ? Number(v.toPrecision(4)).toString() : String(v);
const enc = name => name.split("/").map(encodeURIComponent).join("/");
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}
function poll(fn) {
  let stopped = false;
  const tick = async () => {
    try { await fn(); document.getElementById("live").textContent = "updated " + new Date().toLocaleTimeString(); }
    catch (e) { document.getElementById("live").textContent = "waiting: " + e.message; }
    if (!stopped) setTimeout(tick, POLL_MS);
  };
  tick();
}
function section(title, id) {
  const s = document.createElement("section");
  s.innerHTML = `<h2>${esc(title)}</h2><div id="${id}"></div>`;
  main.appendChild(s);
  return s.querySelector("#" + id);
}

// A sortable table: columns [{key, label, fmt, num}], rows of objects; keeps its sort on redraw.
function SortTable(el, columns, opts) {
  opts = opts || {};
  let sortKey = opts.sort || null, dir = opts.dir || 1, rows = [];
  const draw = () => {
    const shown = rows.slice();
    if (sortKey) shown.sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      if (x == null) return 1; if (y == null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    el.innerHTML = `<table><thead><tr>${columns.map(c =>
      `<th class="sortable" data-key="${c.key}">${esc(c.label)}${c.key === sortKey ? (dir > 0 ? " ▲" : " ▼") : ""}</th>`).join("")}</tr></thead><tbody>${
      shown.map(r => `<tr>${columns.map(c => `<td class="${c.num ? "num" : ""}">${c.fmt ? c.fmt(r[c.key], r) : esc(r[c.key])}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
    el.querySelectorAll("th").forEach(th => th.onclick = () => {
      const k = th.dataset.key;
      if (k === sortKey) dir = -dir; else { sortKey = k; dir = 1; }
      draw();
    });
  };
  this.set = r => { rows = r; draw(); };
}

const badge = s => `<span class="badge ${esc(s)}">${esc(s)}</span>`;

// ------------------------------------------------------------------------------------- home
function home() {
  document.title = "trainlab dashboard";
  main.innerHTML = `<h1>Runs and studies</h1>
    <input type="search" id="filter" placeholder="search runs and studies">
    <button id="compare">compare selected</button> <span class="muted" id="pick"></span>`;
  const selected = new Set();
  const studiesEl = section("Studies (caviar)", "studies");
  const runsEl = section("Runs (panda)", "runs");
  const picturesEl = section("Pictures (lr-find, landscapes)", "loose-pictures");
  const studies = new SortTable(studiesEl, [
    { key: "name", label: "study", fmt: (v) => `<a href="/study/${enc(v)}">${esc(v)}</a>` },
    { key: "status", label: "status", fmt: badge },
    { key: "strategy", label: "strategy" },
    { key: "trials", label: "trials", num: true },
    { key: "best_value", label: "best val acc", fmt: pct, num: true },
    { key: "best_trial", label: "best trial", num: true },
  ], { sort: "name" });
  const runs = new SortTable(runsEl, [
    { key: "pick", label: "✓", fmt: (v, r) => `<input type="checkbox" class="pick" data-name="${esc(r.name)}" ${selected.has(r.name) ? "checked" : ""}>` },
    { key: "name", label: "run", fmt: (v) => `<a href="/run/${enc(v)}">${esc(v)}</a>` },
    { key: "status", label: "status", fmt: badge },
    { key: "epoch", label: "epoch", num: true },
    { key: "val_accuracy", label: "best val acc", fmt: pct, num: true },
    { key: "test_accuracy", label: "test acc", fmt: pct, num: true },
    { key: "advice", label: "advice", fmt: v => (v || []).map(c => `<span class="code">${esc(c)}</span>`).join(" ") },
    { key: "modified", label: "updated", fmt: v => v ? new Date(v * 1000).toLocaleString() : "-", num: true },
  ], { sort: "modified", dir: -1 });
  let data = { runs: [], studies: [] };
  const filter = document.getElementById("filter");
  const redraw = () => {
    const q = filter.value.toLowerCase();
    const hit = r => !q || JSON.stringify(r).toLowerCase().includes(q);
    runs.set(data.runs.filter(hit));
    studies.set(data.studies.filter(hit));
    runsEl.querySelectorAll("input.pick").forEach(cb => cb.onchange = () => {
      cb.checked ? selected.add(cb.dataset.name) : selected.delete(cb.dataset.name);
      document.getElementById("pick").textContent = `${selected.size} selected (2 to 10)`;
    });
  };
  filter.oninput = redraw;
  document.getElementById("compare").onclick = () => {
    const names = [...selected];
    if (names.length < 2 || names.length > 10) { document.getElementById("pick").textContent = "pick 2 to 10 runs"; return; }
    location.href = "/compare?runs=" + names.map(encodeURIComponent).join(",");
  };
  poll(async () => {
    const [r, s, p] = await Promise.all([getJSON("/api/runs"), getJSON("/api/studies"), getJSON("/api/pictures")]);
    if (JSON.stringify([r, s, p]) === JSON.stringify([data.runs, data.studies, data.pictures])) return;
    data = { runs: r, studies: s, pictures: p };
    picturesEl.innerHTML = p.length ? p.map(n => `<a href="/files/${enc(n)}"><img class="picture" src="/files/${enc(n)}" alt="${esc(n)}" title="${esc(n)}"></a>`).join("") : `<p class="muted">none (trainlab lr-find, trainlab landscape)</p>`;
    redraw();
  });
}

// -------------------------------------------------------------------------------------- run
const col = (rows, k) => rows.map(r => r[k] == null ? null : r[k]);

function runPage(name) {
  document.title = name + " - trainlab";
  main.innerHTML = `<h1>${esc(name)} <span id="status"></span></h1><div id="summary" class="muted"></div>`;
  const charts = section("Curves", "charts");
  charts.className = "charts";
  const loss = new LineChart(charts, "loss per step (raw, smoothed)", { x: "step" });
  loss.el.id = "loss-chart";
  const acc = new LineChart(charts, "accuracy per epoch (train vs validation)", { x: "epoch" });
  acc.el.id = "acc-chart";
  const lr = new LineChart(charts, "learning rate", { x: "epoch", logY: true });
  const ratio = new LineChart(charts, "update/weight ratio (band: 1e-3, 20x either way)", { x: "epoch", logY: true, dashed: [false, true, true, true] });
  const advice = section("Advice", "advice");
  const members = section("Members and averaged models", "members");
  const pictures = section("Pictures", "pictures");
  const config = section("Config", "config");
  let seen = "";
  poll(async () => {
    const r = await getJSON("/api/runs/" + enc(name));
    const key = JSON.stringify([r.status, r.metrics.length, r.steps.total, r.result, r.members]);
    if (key === seen) return;
    seen = key;
    document.getElementById("status").innerHTML = badge(r.status);
    document.getElementById("summary").textContent =
      `epoch ${num(r.epoch)} · best val ${pct(r.val_accuracy)} · test ${pct(r.test_accuracy)} · ${r.steps.total} steps` +
      (r.steps.total > r.steps.step.length ? ` (${r.steps.step.length} points drawn)` : "");
    loss.update([r.steps.step, r.steps.loss, r.steps.smoothed], ["loss", "smoothed"], ["#9ab", "#d62728"]);
    const ep = col(r.metrics, "epoch");
    acc.update([ep, col(r.metrics, "train_accuracy"), col(r.metrics, "val_accuracy")], ["train", "validation"]);
    lr.update([ep, col(r.metrics, "lr")], ["lr"]);
    const band = r.update_ratio_band;
    ratio.update([ep, col(r.metrics, "update_ratio"), ep.map(() => band[0]), ep.map(() => band[1]), ep.map(() => band[2])],
      ["update ratio", "1e-3 / 20", "1e-3", "1e-3 x 20"], ["#1f77b4", "#aaa", "#2ca02c", "#aaa"]);
    advice.innerHTML = r.advice_all.length
      ? `<ul class="advice">${r.advice_all.map(a => `<li><span class="code">${esc(a.code)}</span> ${esc(a.message)}</li>`).join("")}</ul>`
      : `<p class="muted">${r.result ? "no advice: the curves look healthy" : "advice comes when the run finishes"}</p>`;
    const avg = Object.entries(r.averaged || {});
    members.innerHTML = (r.members.length ? `<table><tr><th>member</th><th>status</th><th>epoch</th><th>val acc</th><th>test acc</th></tr>${
      r.members.map(m => `<tr><td><a href="/run/${enc(m.name)}">${esc(m.name)}</a></td><td>${badge(m.status)}</td><td class="num">${num(m.epoch)}</td><td class="num">${pct(m.val_accuracy)}</td><td class="num">${pct(m.test_accuracy)}</td></tr>`).join("")}</table>` : "") +
      (avg.length ? `<table><tr><th>averaged model</th><th>accuracy</th></tr>${avg.map(([k, v]) => `<tr><td>${esc(k.replace(/_/g, " "))}</td><td class="num">${pct(v)}</td></tr>`).join("")}</table>` : "") +
      (r.snapshots.length ? `<p>snapshots: ${r.snapshots.map(esc).join(", ")}</p>` : "") +
      (!r.members.length && !avg.length && !r.snapshots.length ? `<p class="muted">a single model</p>` : "");
    pictures.innerHTML = r.pictures.length ? r.pictures.map(p => `<a href="/files/${enc(p)}"><img class="picture" src="/files/${enc(p)}?t=${Date.now()}" alt="${esc(p)}"></a>`).join("") : `<p class="muted">none yet</p>`;
    config.innerHTML = `<pre>${esc(r.config)}</pre>`;
  });
}

// ---------------------------------------------------------------------------------- compare
function comparePage(names) {
  document.title = "compare - trainlab";
  main.innerHTML = `<h1>Compare ${names.length} runs</h1>`;
  if (names.length < 2 || names.length > 10) { main.innerHTML += `<p>pick 2 to 10 runs on the home page</p>`; return; }
  const charts = section("Curves", "charts");
  charts.className = "charts";
  const val = new LineChart(charts, "validation accuracy per epoch", { x: "epoch" });
  val.el.id = "compare-val";
  const trainLoss = new LineChart(charts, "train loss per epoch", { x: "epoch", logY: true });
  const stepLoss = new LineChart(charts, "smoothed loss per step", { x: "step" });
  const diffs = section("Config differences", "diffs");
  const summary = section("Results", "results");
  let seen = "";
  poll(async () => {
    const rs = await Promise.all(names.map(n => getJSON("/api/runs/" + enc(n))));
    const key = JSON.stringify(rs.map(r => [r.metrics.length, r.steps.total, r.status]));
    if (key === seen) return;
    seen = key;
    const join = (getX, getY) => uPlot.join(rs.map(r => [getX(r), getY(r)]));
    val.update(join(r => col(r.metrics, "epoch"), r => col(r.metrics, "val_accuracy")), names);
    trainLoss.update(join(r => col(r.metrics, "epoch"), r => col(r.metrics, "train_loss")), names);
    stepLoss.update(join(r => r.steps.step, r => r.steps.smoothed), names);
    const keys = [...new Set(rs.flatMap(r => Object.keys(r.config_values)))].sort();
    const differ = keys.filter(k => new Set(rs.map(r => JSON.stringify(r.config_values[k]))).size > 1);
    diffs.innerHTML = differ.length ? `<table id="diff-table"><tr><th>config</th>${names.map(n => `<th>${esc(n)}</th>`).join("")}</tr>${
      differ.map(k => `<tr><td>${esc(k)}</td>${rs.map(r => `<td class="diff">${esc(JSON.stringify(r.config_values[k]))}</td>`).join("")}</tr>`).join("")}</table>` : `<p>the configs are the same</p>`;
    summary.innerHTML = `<table><tr><th>run</th><th>status</th><th>epoch</th><th>best val</th><th>test</th></tr>${
      rs.map(r => `<tr><td><a href="/run/${enc(r.name)}">${esc(r.name)}</a></td><td>${badge(r.status)}</td><td class="num">${num(r.epoch)}</td><td class="num">${pct(r.val_accuracy)}</td><td class="num">${pct(r.test_accuracy)}</td></tr>`).join("")}</table>`;
  });
}

// ------------------------------------------------------------------------------------ study
function studyPage(name) {
  document.title = name + " - trainlab";
  main.innerHTML = `<h1>Study ${esc(name)} <span id="status"></span></h1><div id="summary" class="muted"></div><p id="elsewhere" class="muted"></p>`;
  const charts = section("Every trial's validation curve (caviar)", "curves");
  charts.className = "charts";
  const curves = new ManyLines(charts, "validation accuracy per epoch, one line per trial (colour: round or block)");
  curves.el.id = "caviar";
  const params = section("Validation accuracy against each parameter", "params");
  params.className = "charts";
  const pc = section("Parallel coordinates", "pc");
  const board = section("Leaderboard", "board");
  const retest = section("Re-test (new seeds)", "retest");
  const best = section("Best config (ready to copy)", "best");
  const pictures = section("Pictures", "study-pictures");
  let seen = "";
  poll(async () => {
    const s = await getJSON("/api/studies/" + encodeURIComponent(name));
    const key = JSON.stringify(s.trials.map(t => [t.state, t.curve.length, t.run]));
    document.getElementById("status").innerHTML = badge(s.status);
    if (key === seen) return;
    seen = key;
    const done = s.trials.filter(t => t.state !== "interrupted");
    document.getElementById("summary").textContent =
      `${s.trials.length} trials · database ${s.database} · best ${s.best ? pct(s.best.value) + " (trial " + s.best.trial + ")" : "-"}`;
    document.getElementById("elsewhere").textContent = s.elsewhere || "";
    const runOf = new Map(s.trials.map(t => [t.number, t.run]));
    const trialLink = n => runOf.get(n) ? `<a href="/run/${enc(runOf.get(n))}">${n}</a>` : `${n}`;
    const withCurve = done.filter(t => t.curve.length);
    curves.update(withCurve.map(t => ({ points: t.curve, color: colorOf(t.group == null ? t.number : t.group) })));
    params.innerHTML = "";
    s.space.forEach(d => paramScatter(params, d, done, s.boxes));
    pc.innerHTML = "";
    if (s.space.length) parallelCoordinates(pc, s.space, done);
    const paths = s.space.map(d => d.path);
    board.innerHTML = `<table><tr><th>rank</th><th>trial</th><th>state</th><th>val acc</th><th>test acc</th><th>epochs</th>${paths.map(p => `<th>${esc(p)}</th>`).join("")}</tr>${
      s.leaderboard.slice(0, 50).map(r => `<tr><td class="num">${r.rank}</td><td>${trialLink(r.trial)}</td><td>${esc(r.state)}</td><td class="num">${pct(r.value)}</td><td class="num">${pct(r.test_accuracy)}</td><td class="num">${num(r.epochs)}</td>${paths.map(p => `<td class="num">${num(r.params[p])}</td>`).join("")}</tr>`).join("")}</table>` +
      (s.leaderboard_total > 50 ? `<p class="muted">${s.leaderboard_total - 50} more in leaderboard.csv</p>` : "");
    retest.innerHTML = s.retest.length ? `<table><tr><th>trial</th><th>search val</th><th>re-test val mean</th><th>spread (std)</th><th>test mean</th><th>seeds</th><th>new rank</th></tr>${
      s.retest.map(e => `<tr><td>${e.trial}</td><td class="num">${pct(e.original_val_accuracy)}</td><td class="num">${pct(e.val_mean)}</td><td class="num">${pct(e.val_std)}</td><td class="num">${pct(e.test_mean)}</td><td>${esc((e.seeds || []).join(", "))}</td><td class="num">${e.retest_rank}</td></tr>`).join("")}</table>` : `<p class="muted">none (trainlab search --retest K)</p>`;
    best.innerHTML = s.best_yaml ? `<button id="copy">copy</button><pre id="best-yaml">${esc(s.best_yaml)}</pre>`
      : s.best ? `<pre>${esc(Object.entries(s.best.params).map(([k, v]) => `${k}: ${v}`).join("\n"))}</pre>` : `<p class="muted">no complete trial yet</p>`;
    const copy = document.getElementById("copy");
    if (copy) copy.onclick = () => navigator.clipboard && navigator.clipboard.writeText(s.best_yaml);
    pictures.innerHTML = s.pictures.map(p => `<a href="/files/${enc(p)}"><img class="picture" src="/files/${enc(p)}?t=${Date.now()}" alt="${esc(p)}"></a>`).join("") || `<p class="muted">none yet</p>`;
  });
}

// ----------------------------------------------------------------------------------- router
(function route() {
  const p = decodeURIComponent(location.pathname);
  if (p.startsWith("/run/")) runPage(p.slice(5));
  else if (p.startsWith("/study/")) studyPage(p.slice(7));
  else if (p === "/compare") comparePage((new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean));
  else home();
})();
