// The dashboard's pages, drawn from the JSON API: home, run (panda), compare, study (caviar).
// Each page polls its API (runs every second, so a new epoch shows within 2 s).
// Every value from a run or study is drawn as text (h() and fill() make text nodes; attributes
// are set one by one, never parsed as markup): nothing a file holds can become markup or code.
"use strict";
const main = document.getElementById("main");
const POLL_MS = 1000;

// Children: nodes, or anything else drawn as its text; null, undefined and false draw nothing.
const nodes = kids => kids.flat(Infinity).filter(k => k != null && k !== false)
  .map(k => k instanceof Node ? k : document.createTextNode(String(k)));
// h("a", {href: "/run/x", class: "c"}, child, ...): an element; no event-handler attributes.
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => {
    if (/^on/i.test(k)) throw new Error("h(): no event-handler attributes: " + k);
    if (v != null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  });
  e.append(...nodes(kids));
  return e;
}
const fill = (el, ...kids) => { el.replaceChildren(...nodes(kids)); return el; };
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
  const body = h("div", { id });
  main.appendChild(h("section", null, h("h2", null, title), body));
  return body;
}
// A table: a header row of labels, then rows of cells (a cell: a node, text, or a <td>).
const cell = (v, cls) => v instanceof Node && v.tagName === "TD" ? v : h("td", { class: cls || null }, v);
const numCell = v => h("td", { class: "num" }, v);
const table = (attrs, labels, rows) => h("table", attrs,
  h("tr", null, labels.map(l => h("th", null, l))), rows.map(r => h("tr", null, r.map(c => cell(c)))));
const runLink = name => h("a", { href: "/run/" + enc(name) }, name);
const picture = (name, bust) => h("a", { href: "/files/" + enc(name) },
  h("img", { class: "picture", src: "/files/" + enc(name) + (bust ? "?t=" + Date.now() : ""), alt: name, title: name }));

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
    const head = columns.map(c => {
      const th = h("th", { class: "sortable", "data-key": c.key }, c.label, c.key === sortKey ? (dir > 0 ? " ▲" : " ▼") : "");
      th.onclick = () => {
        if (c.key === sortKey) dir = -dir; else { sortKey = c.key; dir = 1; }
        draw();
      };
      return th;
    });
    fill(el, h("table", null, h("thead", null, h("tr", null, head)), h("tbody", null,
      shown.map(r => h("tr", null, columns.map(c => h("td", { class: c.num ? "num" : null }, c.fmt ? c.fmt(r[c.key], r) : r[c.key])))))));
  };
  this.set = r => { rows = r; draw(); };
}

const badge = s => h("span", { class: "badge " + s }, s);

// ------------------------------------------------------------------------------------- home
function home() {
  document.title = "trainlab dashboard";
  fill(main, h("h1", null, "Runs and studies"),
    h("input", { type: "search", id: "filter", placeholder: "search runs and studies" }), "\n",
    h("button", { id: "compare" }, "compare selected"), " ", h("span", { class: "muted", id: "pick" }));
  const selected = new Set();
  const studiesEl = section("Studies (caviar)", "studies");
  const runsEl = section("Runs (panda)", "runs");
  const picturesEl = section("Pictures (lr-find, landscapes)", "loose-pictures");
  const studies = new SortTable(studiesEl, [
    { key: "name", label: "study", fmt: (v) => h("a", { href: "/study/" + enc(v) }, v) },
    { key: "status", label: "status", fmt: badge },
    { key: "strategy", label: "strategy" },
    { key: "trials", label: "trials", num: true },
    { key: "best_value", label: "best val acc", fmt: pct, num: true },
    { key: "best_trial", label: "best trial", num: true },
  ], { sort: "name" });
  const runs = new SortTable(runsEl, [
    { key: "pick", label: "✓", fmt: (v, r) => h("input", { type: "checkbox", class: "pick", "data-name": r.name, checked: selected.has(r.name) }) },
    { key: "name", label: "run", fmt: (v, r) => [runLink(v), r.kind && r.kind !== "run" ? h("span", { class: "kind" }, " " + r.kind) : null, r.error ? h("div", { class: "error" }, r.error) : null] },
    { key: "status", label: "status", fmt: badge },
    { key: "epoch", label: "epoch", num: true },
    { key: "val_accuracy", label: "best val acc", fmt: pct, num: true },
    { key: "test_accuracy", label: "test acc", fmt: pct, num: true },
    { key: "advice", label: "advice", fmt: v => (v || []).map(c => [h("span", { class: "code" }, c), " "]) },
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
    fill(picturesEl, p.length ? p.map(n => picture(n)) : h("p", { class: "muted" }, "none (trainlab lr-find, trainlab landscape)"));
    redraw();
  });
}

// -------------------------------------------------------------------------------------- run
const col = (rows, k) => rows.map(r => r[k] == null ? null : r[k]);
const SMOOTHING = 0.98; // the trainer's curves.png smoothing, computed over every step by the server

// /run/<name>: a run (the panda), or a `trainlab compare` folder drawn as its comparison.
async function runPage(name) {
  document.title = name + " - trainlab";
  let r = null;
  try { r = await getJSON("/api/runs/" + enc(name)); } catch (e) { /* the run view says why */ }
  if (r && r.kind === "compare") comparisonPage(name); else runView(name);
}

function runView(name) {
  fill(main, h("h1", null, name, " ", h("span", { id: "status" })), h("div", { id: "summary", class: "muted" }),
    h("p", { id: "error", class: "error" }));
  const charts = section("Curves", "charts");
  charts.className = "charts";
  const loss = new LineChart(charts, "loss: per step (raw, smoothed) and per epoch (train, validation)", { x: "step" });
  loss.el.id = "loss-chart";
  const logBox = h("input", { type: "checkbox", id: "loss-log" });
  const slider = h("input", { type: "range", id: "smoothing", min: 0, max: 0.999, step: 0.001, value: SMOOTHING });
  const shown = h("span", { id: "smoothing-value", class: "num" }, SMOOTHING.toFixed(3));
  fill(loss.controls, h("label", { class: "control" }, logBox, " log scale"), h("label", { class: "control" }, "smoothing ", slider, " ", shown));
  const acc = new LineChart(charts, "accuracy per epoch (train vs validation)", { x: "epoch", unit: true, integerX: true });
  acc.el.id = "acc-chart";
  const lr = new LineChart(charts, "learning rate", { x: "epoch", logY: true, integerX: true });
  const ratio = new LineChart(charts, "update/weight ratio (band: 1e-3, 20x either way)", { x: "epoch", logY: true, integerX: true, dashed: [false, true, true, true] });
  ratio.el.id = "ratio-chart";
  const advice = section("Advice", "advice");
  const members = section("Members and averaged models", "members");
  const pictures = section("Pictures", "pictures");
  const config = section("Config", "config");
  let seen = "", metrics = [], steps = null, run = null, userLog = null;
  const drawLoss = () => {
    const w = Number(slider.value);
    shown.textContent = w.toFixed(3);
    const smooth = w === SMOOTHING ? steps.smoothed : smoothed(steps.loss, w);
    const ep = metrics.filter(m => typeof m.step === "number");
    const data = uPlot.join([[steps.step, steps.loss, smooth], [col(ep, "step"), col(ep, "train_loss"), col(ep, "val_loss")]]);
    if (userLog == null) loss.opts.logY = wantsLog(data.slice(1));
    logBox.checked = !!loss.opts.logY;
    loss.update(data, ["loss", w ? `smoothed (${w.toFixed(3)})` : "smoothed (off)", "train loss (epoch)", "val loss (epoch)"],
      ["#b9c7d6", "#1f77b4", "#2ca02c", "#d62728"], [{ points: false }, { width: 2, points: false }, { points: true, width: 1 }, { points: true, width: 2 }]);
    loss.note.textContent = steps.total === 0
      ? (run.kind === "trial" ? "steps are not kept for search trials (a trial keeps best.pt, result.json, config.yaml and metrics.jsonl): the loss per epoch is shown"
        : "no per-step loss recorded (steps.jsonl): the loss per epoch is shown")
      : steps.total > steps.step.length ? `${steps.total} steps: ${steps.step.length} points drawn (each stretch's lowest and highest loss)` : "";
  };
  logBox.onchange = () => { userLog = logBox.checked; loss.set({ logY: userLog }); };
  slider.oninput = () => steps && drawLoss();
  poll(async () => {
    const since = steps ? `?since=${metrics.length},${steps.total}` : "";
    const r = await getJSON("/api/runs/" + enc(name) + since);
    metrics = metrics.slice(0, r.metrics_from || 0).concat(r.metrics);
    if (!r.steps.unchanged) steps = r.steps;
    const key = JSON.stringify([r.status, metrics.length, steps.total, r.result, r.members, r.error]);
    if (key === seen) return;
    seen = key; run = r;
    fill(document.getElementById("status"), badge(r.status));
    document.getElementById("error").textContent = r.error || "";
    document.getElementById("summary").textContent =
      `${r.kind} · epoch ${num(r.epoch)} · best val ${pct(r.val_accuracy)} · test ${pct(r.test_accuracy)}` +
      (r.result && r.result.best_epoch != null ? ` (both of epoch ${r.result.best_epoch}, the best)` : "") + ` · ${steps.total} steps`;
    drawLoss();
    const ep = col(metrics, "epoch");
    acc.update([ep, col(metrics, "train_accuracy"), col(metrics, "val_accuracy")], ["train", "validation"]);
    lr.update([ep, col(metrics, "lr")], ["lr"]);
    const band = r.update_ratio_band;
    ratio.update([ep, col(metrics, "update_ratio"), ep.map(() => band[0]), ep.map(() => band[1]), ep.map(() => band[2])],
      ["update ratio", "1e-3 / 20", "1e-3", "1e-3 x 20"], ["#1f77b4", "#aaa", "#2ca02c", "#aaa"]);
    fill(advice, r.advice_all.length
      ? h("ul", { class: "advice" }, r.advice_all.map(a => h("li", null, h("span", { class: "code" }, a.code), " ", a.message)))
      : h("p", { class: "muted" }, r.result ? "no advice: the curves look healthy" : "advice comes when the run finishes"));
    const avg = Object.entries(r.averaged || {});
    fill(members,
      r.members.length ? table(null, ["member", "status", "epoch", "val acc", "test acc"], r.members.map(m =>
        [runLink(m.name), badge(m.status), numCell(num(m.epoch)), numCell(pct(m.val_accuracy)), numCell(pct(m.test_accuracy))])) : null,
      avg.length ? table(null, ["averaged model", "accuracy"], avg.map(([k, v]) => [k.replace(/_/g, " "), numCell(pct(v))])) : null,
      r.snapshots.length ? h("p", null, "snapshots: " + r.snapshots.join(", ")) : null,
      !r.members.length && !avg.length && !r.snapshots.length ? h("p", { class: "muted" }, "a single model") : null);
    fill(pictures, r.pictures.length ? r.pictures.map(p => picture(p, true)) : h("p", { class: "muted" }, "none yet"));
    fill(config, h("pre", null, r.config));
  });
}

// A `trainlab compare` folder: the verdict of each pair, each config's mean over the paired
// seeds, the paired picture (compare.png) and every seed run.
function comparisonPage(name) {
  fill(main, h("h1", null, "Comparison ", name, " ", h("span", { id: "status" })), h("div", { id: "summary", class: "muted" }),
    h("p", { id: "error", class: "error" }));
  const verdicts = section("Verdicts (paired seeds)", "verdicts");
  const configs = section("Configs", "configs");
  const picture_ = section("Paired picture", "compare-picture");
  const runs = section("Runs (one per config and seed)", "seed-runs");
  let seen = "";
  poll(async () => {
    const r = await getJSON("/api/runs/" + enc(name));
    const key = JSON.stringify(r);
    if (key === seen) return;
    seen = key;
    fill(document.getElementById("status"), badge(r.status));
    document.getElementById("error").textContent = r.error || "";
    const c = r.comparison;
    const acc = c && /accuracy/.test(c.metric);
    const pts = v => v == null ? "-" : acc ? (100 * v).toFixed(2) : fmtTick(v);
    document.getElementById("summary").textContent = c
      ? `trainlab compare · metric ${c.metric} · ${c.seeds.length} paired seeds · ${Math.round(100 * c.nominal_confidence)}% confidence` + (c.correction !== "none" ? ` (${c.correction} correction)` : "")
      : `trainlab compare · still running: ${r.runs} runs so far (the verdict comes when it finishes)`;
    fill(verdicts, c ? table({ id: "verdict-table" }, ["a", "b", acc ? "b - a (points)" : "b - a", "interval", "p", "better", "verdict"], c.pairs.map(p =>
      [p.a, p.b, numCell(pts(p.diff)), numCell(`[${pts(p.ci_low)}, ${pts(p.ci_high)}]`), numCell(p.p_value == null ? "-" : Number(p.p_value.toPrecision(3)).toString()), p.better == null ? "-" : p[p.better], p.verdict]))
      : h("p", { class: "muted" }, "no verdict yet"));
    fill(configs, c ? table(null, ["config", "metric", "mean", "sd", "seeds", "file"], c.configs.map(k =>
      [k.name, k.metric, numCell(/accuracy/.test(k.metric) ? pct(k.mean) : fmtTick(k.mean)), numCell(/accuracy/.test(k.metric) ? pct(k.std) : fmtTick(k.std)), numCell(k.n), k.config])) : null);
    fill(picture_, r.picture ? h("div", { class: "wide" }, picture(r.picture, true)) : h("p", { class: "muted" }, "none yet"));
    fill(runs, r.groups.length ? r.groups.map(g => [h("h3", null, g.config), table(null, ["run", "status", "epoch", "best val", "test"], g.runs.map(m =>
      [runLink(m.name), badge(m.status), numCell(num(m.epoch)), numCell(pct(m.val_accuracy)), numCell(pct(m.test_accuracy))]))])
      : h("p", { class: "muted" }, "no runs yet"));
  });
}

// ---------------------------------------------------------------------------------- compare
function comparePage(names) {
  document.title = "compare - trainlab";
  fill(main, h("h1", null, `Compare ${names.length} runs`));
  if (names.length < 2 || names.length > 10) { main.appendChild(h("p", null, "pick 2 to 10 runs on the home page")); return; }
  const charts = section("Curves", "charts");
  charts.className = "charts";
  const val = new LineChart(charts, "validation accuracy per epoch", { x: "epoch", unit: true, integerX: true });
  val.el.id = "compare-val";
  const trainLoss = new LineChart(charts, "train loss per epoch", { x: "epoch", logY: true, integerX: true });
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
    const stepData = join(r => r.steps.step, r => r.steps.smoothed);
    stepLoss.opts.logY = wantsLog(stepData.slice(1));
    stepLoss.update(stepData, names);
    const keys = [...new Set(rs.flatMap(r => Object.keys(r.config_values)))].sort();
    const differ = keys.filter(k => new Set(rs.map(r => JSON.stringify(r.config_values[k]))).size > 1);
    fill(diffs, differ.length ? table({ id: "diff-table" }, ["config", ...names], differ.map(k =>
      [k, ...rs.map(r => h("td", { class: "diff" }, JSON.stringify(r.config_values[k])))])) : h("p", null, "the configs are the same"));
    fill(summary, table(null, ["run", "status", "epoch", "best val", "test"], rs.map(r =>
      [[runLink(r.name), r.error ? h("div", { class: "error" }, r.error) : null], badge(r.status), numCell(num(r.epoch)), numCell(pct(r.val_accuracy)), numCell(pct(r.test_accuracy))])));
  });
}

// ------------------------------------------------------------------------------------ study
function studyPage(name) {
  document.title = name + " - trainlab";
  fill(main, h("h1", null, "Study ", name, " ", h("span", { id: "status" })), h("div", { id: "summary", class: "muted" }),
    h("p", { id: "elsewhere", class: "muted" }));
  const charts = section("Every trial's validation curve (caviar)", "curves");
  charts.className = "charts";
  const curves = new ManyLines(charts, "validation accuracy per epoch, one line per trial (hover: the trial)");
  curves.el.id = "caviar";
  const importance = section("Parameter importances", "importances");
  const paramsKey = h("div", { class: "legend", id: "params-legend" });
  const params = section("Validation accuracy against each parameter (hover: the trial)", "params");
  params.className = "charts";
  params.before(paramsKey);
  const pc = section("Parallel coordinates", "pc");
  const board = section("Leaderboard", "board");
  const retest = section("Re-test (new seeds)", "retest");
  const best = section("Best config (ready to copy)", "best");
  const pictures = section("Pictures", "study-pictures");
  let seen = "";
  poll(async () => {
    const s = await getJSON("/api/studies/" + encodeURIComponent(name));
    const key = JSON.stringify([s.trials.map(t => [t.state, t.curve.length, t.run]), s.importances]);
    fill(document.getElementById("status"), badge(s.status));
    if (key === seen) return;
    seen = key;
    const done = s.trials.filter(t => t.state !== "interrupted");
    document.getElementById("summary").textContent =
      `${s.trials.length} trials · database ${s.database} · best ${s.best ? pct(s.best.value) + " (trial " + s.best.trial + ")" : "-"}`;
    document.getElementById("elsewhere").textContent = s.elsewhere || "";
    const runOf = new Map(s.trials.map(t => [t.number, t.run]));
    const trialLink = n => runOf.get(n) ? h("a", { href: "/run/" + enc(runOf.get(n)) }, n) : n;
    const withCurve = done.filter(t => t.curve.length);
    const paths = s.space.map(d => d.path);
    const grouped = s.grouping != null;
    const colour = t => colorOf(grouped ? (t.group == null ? 0 : t.group) : t.number);
    curves.update(withCurve.map(t => ({ points: t.curve, color: colour(t), dash: (STATES[t.state] || STATES.complete).dash,
      cross: t.state === "diverged", lines: trialLines(t, paths) })));
    const groups = grouped ? [...new Set(done.map(t => t.group).filter(g => g != null))].sort((a, b) => a - b) : [];
    const states = Object.keys(STATES).filter(st => done.some(t => t.state === st));
    const groupKeys = groups.map(g => ({ color: colorOf(g), text: `${s.grouping} ${g}` }));
    legendOf(curves.legend, [...groupKeys, ...states.map(st => ({ dash: STATES[st].dash, text: STATES[st].label + (st === "diverged" ? " (× where it stopped)" : "") }))]);
    legendOf(paramsKey, [...groupKeys, ...states.map(st => ({ mark: st, text: STATES[st].label }))]);
    importanceBars(importance, s.importances);
    fill(params);
    s.space.forEach(d => paramScatter(params, d, done, s.boxes));
    fill(pc);
    if (s.space.length) parallelCoordinates(pc, s.space, done);
    const top = s.leaderboard.slice(0, 50);
    fill(board, h("p", { class: "muted", id: "board-count" }, top.length < s.leaderboard_total
      ? `top ${top.length} of ${s.leaderboard_total} trials (every trial: leaderboard.csv in the study directory)` : `all ${s.leaderboard_total} trials`),
      table(null, ["rank", "trial", "state", "best val acc", "test acc", "epochs", ...paths], top.map(r =>
      [numCell(r.rank), trialLink(r.trial), r.state, numCell(pct(r.best_value != null ? r.best_value : r.value)), numCell(pct(r.test_accuracy)), numCell(num(r.epochs)), ...paths.map(p => numCell(num(r.params[p])))])),
      h("p", { class: "muted" }, "val and test accuracy are both the best epoch's (a pruned or diverged trial's last epochs may be worse)"));
    fill(retest, s.retest.length ? table(null, ["trial", "search val", "re-test val mean", "spread (std)", "test mean", "seeds", "new rank"], s.retest.map(e =>
      [e.trial, numCell(pct(e.original_val_accuracy)), numCell(pct(e.val_mean)), numCell(pct(e.val_std)), numCell(pct(e.test_mean)), (e.seeds || []).join(", "), numCell(e.retest_rank)]))
      : h("p", { class: "muted" }, "none (trainlab search --retest K)"));
    const copy = h("button", { id: "copy" }, "copy");
    copy.onclick = () => navigator.clipboard && navigator.clipboard.writeText(s.best_yaml);
    fill(best, s.best_yaml ? [copy, h("pre", { id: "best-yaml" }, s.best_yaml)]
      : s.best ? h("pre", null, Object.entries(s.best.params).map(([k, v]) => `${k}: ${v}`).join("\n")) : h("p", { class: "muted" }, "no complete trial yet"));
    fill(pictures, s.pictures.length ? s.pictures.map(p => picture(p, true)) : h("p", { class: "muted" }, "none yet"));
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
