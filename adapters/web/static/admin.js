// The admin page: a small view over /v1/admin. Every value from the server reaches the page as text
// (textContent, SVG text nodes), never as HTML. Charts are inline SVG drawn here: nothing is loaded
// from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = { settingsScope: null };

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: options.body ? { "Content-Type": "application/json" } : {},
    ...options,
  });
  if (response.status === 401 || response.status === 403) {
    showSignIn(response.status === 403 ? "That key is not an admin key." : "");
    throw new Error("signed out");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.message ? `${body.message} ${body.fix || ""}` : `HTTP ${response.status}`);
  }
  return response.status === 204 ? null : response.json();
}

// -- sign in ------------------------------------------------------------------------------------
function showSignIn(message) {
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").hidden = !message;
  $("sign-in-error").textContent = message || "";
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/admin/session", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key: $("key-input").value.trim() }),
  });
  $("key-input").value = "";
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showSignIn(body.message || `Sign-in failed (HTTP ${response.status}).`);
    return;
  }
  await start();
});

$("sign-out").addEventListener("click", async () => {
  await fetch("/admin/session", { method: "DELETE", credentials: "same-origin" });
  showSignIn("");
});

$("days").addEventListener("change", () => load());

// -- helpers ------------------------------------------------------------------------------------
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fill(table, headers, rows, numeric = [], empty = "Nothing in this period.") {
  table.replaceChildren();
  const head = el("tr");
  headers.forEach((h, i) => head.append(el("th", h, numeric.includes(i) ? "num" : "")));
  table.append(head);
  if (!rows.length) {
    const line = el("tr");
    const cell = el("td", empty, "muted");
    cell.colSpan = headers.length;
    line.append(cell);
    table.append(line);
  }
  for (const row of rows) {
    const tr = el("tr");
    row.forEach((value, i) => {
      const td = el("td", null, numeric.includes(i) ? "num" : "");
      if (value instanceof Node) td.append(value); else td.textContent = value === null || value === undefined ? "" : String(value);
      tr.append(td);
    });
    table.append(tr);
  }
}

const tokens = (n) => Math.round(n).toLocaleString("en");
const usd = (n) => (n === null || n === undefined ? "unknown" : `$${Number(n).toFixed(4)}`);
const when = (iso) => new Date(iso).toISOString().replace("T", " ").slice(0, 16);
const shown = (value) => (value === null || value === undefined ? "" : JSON.stringify(value));

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function barChart(container, points, format, colour = "#3b5bdb") {
  container.replaceChildren();
  if (!points.length) { container.append(el("div", "No data in this period.", "empty")); return; }
  const width = 600, height = 160, pad = 28, max = Math.max(...points.map((p) => p.value), 1e-9);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const step = (width - pad) / points.length;
  points.forEach((p, i) => {
    const h = ((height - pad) * p.value) / max;
    const bar = svg("rect", { x: pad + i * step + 1, y: height - pad - h, width: Math.max(step - 2, 1), height: h, fill: colour });
    bar.append(svg("title", {}, `${p.label}: ${format(p.value)}`));
    chart.append(bar);
  });
  chart.append(svg("text", { x: 2, y: 12, "font-size": 11, fill: "#6b7384" }, format(max)));
  chart.append(svg("text", { x: pad, y: height - 8, "font-size": 11, fill: "#6b7384" }, points[0].label));
  chart.append(svg("text", { x: width - 2, y: height - 8, "font-size": 11, fill: "#6b7384", "text-anchor": "end" },
    points[points.length - 1].label));
  container.append(chart);
}

function splitChart(container, rated, since) {
  container.replaceChildren();
  if (!rated.length) { container.append(el("div", "No ratings in this period.", "empty")); return; }
  const byDay = new Map(rated.map((d) => [d.day, d]));
  const days = everyDay(since).map((day) => byDay.get(day) || { day, up: 0, down: 0 });
  const width = 600, height = 160, mid = 76, max = Math.max(...days.map((d) => Math.max(d.up, d.down)), 1);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const step = width / days.length;
  days.forEach((d, i) => {
    const up = (60 * d.up) / max, down = (60 * d.down) / max;
    const good = svg("rect", { x: i * step + 1, y: mid - up, width: Math.max(step - 2, 1), height: up, fill: "#2b8a3e" });
    good.append(svg("title", {}, `${d.day}: ${d.up} good`));
    const bad = svg("rect", { x: i * step + 1, y: mid, width: Math.max(step - 2, 1), height: down, fill: "#c92a2a" });
    bad.append(svg("title", {}, `${d.day}: ${d.down} bad`));
    chart.append(good, bad);
  });
  chart.append(svg("line", { x1: 0, x2: width, y1: mid, y2: mid, stroke: "#e2e5ea" }));
  chart.append(svg("text", { x: 2, y: height - 4, "font-size": 11, fill: "#6b7384" }, days[0].day));
  chart.append(svg("text", { x: width - 2, y: height - 4, "font-size": 11, fill: "#6b7384", "text-anchor": "end" },
    days[days.length - 1].day));
  container.append(chart);
}

const PALETTE = ["#3b5bdb", "#2b8a3e", "#e67700", "#c92a2a", "#7048e8", "#1098ad", "#5c940d", "#d6336c"];

function lineChart(container, runs) {
  container.replaceChildren();
  const ordered = [...runs].reverse();
  const metrics = [...new Set(ordered.flatMap((r) => Object.keys(r.scores)))].sort();
  if (ordered.length === 0 || metrics.length === 0) {
    container.append(el("div", "No evaluation runs yet (`parley eval`).", "empty"));
    return;
  }
  const width = 600, height = 160, pad = 20;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const x = (i) => pad + (ordered.length === 1 ? 0 : (i * (width - 2 * pad)) / (ordered.length - 1));
  const y = (v) => height - pad - v * (height - 2 * pad);
  metrics.forEach((metric, m) => {
    const points = ordered.map((r, i) => [i, r.scores[metric]]).filter(([, v]) => typeof v === "number");
    const colour = PALETTE[m % PALETTE.length];
    chart.append(svg("polyline", { points: points.map(([i, v]) => `${x(i)},${y(v)}`).join(" "), fill: "none",
      stroke: colour, "stroke-width": 2 }));
    points.forEach(([i, v]) => {
      const dot = svg("circle", { cx: x(i), cy: y(v), r: 3, fill: colour });
      dot.append(svg("title", {}, `${metric}: ${v.toFixed(3)} (run ${ordered[i].id})`));
      chart.append(dot);
    });
    chart.append(svg("text", { x: width - pad, y: 12 + 12 * m, "font-size": 10, fill: colour, "text-anchor": "end" }, metric));
  });
  container.append(chart);
}

function sumBy(rows, keyOf) {
  const out = new Map();
  for (const r of rows) {
    const key = keyOf(r);
    const t = out.get(key) || { tokens: 0, cost: null, calls: 0, unpriced: 0 };
    t.tokens += r.input_tokens + r.output_tokens;
    if (r.cost_usd !== null) t.cost = (t.cost || 0) + r.cost_usd;
    t.calls += r.calls;
    t.unpriced += r.unpriced_calls;
    out.set(key, t);
  }
  return [...out.entries()].sort((a, b) => b[1].tokens - a[1].tokens);
}

function everyDay(since) {
  const days = [];
  const day = new Date(since.slice(0, 10) + "T00:00:00Z");
  const today = new Date().toISOString().slice(0, 10);
  for (let d = day.toISOString().slice(0, 10); d <= today; d = day.toISOString().slice(0, 10)) {
    days.push(d);
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return days;
}

// -- sections -----------------------------------------------------------------------------------
function renderUsage(usage) {
  const rows = usage.rows;
  const total = sumBy(rows, () => "all")[0]?.[1] || { tokens: 0, cost: null, calls: 0, unpriced: 0 };
  const totals = $("usage-totals");
  totals.replaceChildren();
  for (const [label, value] of [["model calls", tokens(total.calls)], ["tokens", tokens(total.tokens)],
    ["cost (known prices)", usd(total.cost)], ["calls of unknown cost", tokens(total.unpriced)]]) {
    const box = el("div");
    box.append(el("strong", value), el("span", label, "muted"));
    totals.append(box);
  }
  const byDay = new Map(sumBy(rows, (r) => r.day));
  const days = everyDay(usage.since);
  const tokenPoints = days.map((day) => ({ label: day, value: byDay.get(day)?.tokens || 0 }));
  barChart($("chart-tokens"), rows.length ? tokenPoints : [], tokens);
  const costPoints = days.map((day) => ({ label: day, value: byDay.get(day)?.cost || 0 }));
  barChart($("chart-cost"), costPoints.some((p) => p.value > 0) ? costPoints : [], usd, "#2b8a3e");
  const table = (id, keyOf) => fill($(id), ["", "tokens", "cost"],
    sumBy(rows, keyOf).slice(0, 10).map(([k, t]) => [k, tokens(t.tokens), usd(t.cost)]), [1, 2]);
  table("by-workspace", (r) => `${r.platform}/${r.workspace_id}`);
  table("by-channel", (r) => `${r.workspace_id} #${r.channel_id || "?"}`);
  table("by-person", (r) => `${r.workspace_id} ${r.user_id}`);
  table("by-model", (r) => r.model);
}

function renderFeedback(report, since) {
  splitChart($("chart-feedback"), report.days, since);
  fill($("worst"), ["turn", "where", "score", "reply"], report.worst.map((t) => [
    t.turn_id, `${t.platform}/${t.workspace_id} #${t.channel_id}`, `${t.score} (${t.ratings})`, t.reply]), [2]);
}

function renderRefusals(report) {
  fill($("refusal-categories"), ["category", "stage", "refusals", "marked mistaken"],
    report.categories.map((c) => [c.rail, c.stage, c.refusals, c.false_positives]), [2, 3]);
  fill($("refusals"), ["when", "category", "excerpt", ""], report.events.slice(0, 25).map((e) => {
    let mark;
    if (e.false_positive) {
      mark = el("span", "false positive", "tag fp");
    } else {
      mark = el("button", "Mark false positive", "small");
      mark.addEventListener("click", async () => {
        await api(`/v1/admin/refusals/${e.id}/false-positive`, { method: "POST" });
        await load();
      });
    }
    return [when(e.created_at), e.rail, e.excerpt, mark];
  }));
}

function renderEvals(runs) {
  lineChart($("chart-evals"), runs);
  fill($("evals"), ["run", "when", "suite", "model", "result"], runs.slice(0, 15).map((r) => [
    r.id, when(r.finished_at), r.suite, r.model || "",
    el("span", r.passed ? "passed" : `failed: ${r.failing.join(", ")}`, r.passed ? "pass" : "fail")]), [],
    "No evaluation runs yet.");
}

function renderLimits(limits) {
  fill($("limits"), ["workspace", "applies to", "limit", ""], limits.map((l) => {
    const clear = el("button", "Clear", "small");
    clear.addEventListener("click", async () => {
      const query = new URLSearchParams({ platform: l.platform, workspace_id: l.workspace_id, scope: l.scope,
        subject: l.subject, metric: l.metric, period: l.period });
      await guarded("limits-error", () => api(`/v1/admin/limits?${query}`, { method: "DELETE" }));
      await load();
    });
    const amount = l.metric === "usd" ? `$${l.amount}` : `${tokens(l.amount)} tokens`;
    return [`${l.platform}/${l.workspace_id}`, l.scope === "workspace" ? "workspace" : `${l.scope} ${l.subject}`,
      `${amount} per ${l.period}`, clear];
  }), [], "No limits set.");
}

function renderAudit(entries) {
  fill($("audit"), ["when", "workspace", "who", "door", "action", "what", "old", "new"], entries.map((e) => [
    when(e.created_at), `${e.platform}/${e.workspace_id}`, e.actor, e.door, e.action, e.target,
    shown(e.old_value), shown(e.new_value)]));
}

function renderSettings(view) {
  state.settingsScope = view;
  fill($("settings"), ["setting", "value", "from"], view.settings.map((s) => [
    s.key, s.value === null ? (s.builtin || "provider's default") : shown(s.value), el("span", s.source, `tag ${s.source}`)]));
  const select = $("setting-key");
  if (!select.options.length) view.settings.forEach((s) => select.append(new Option(s.key, s.key)));
  $("setting-edit").hidden = false;
}

async function guarded(errorId, action) {
  $(errorId).hidden = true;
  try {
    return await action();
  } catch (error) {
    if (error.message !== "signed out") { $(errorId).textContent = error.message; $(errorId).hidden = false; }
    return null;
  }
}

function scopeQuery() {
  return new URLSearchParams({ platform: $("set-platform").value.trim(), workspace_id: $("set-workspace").value.trim(),
    channel_id: $("set-channel").value.trim() });
}

$("settings-scope").addEventListener("submit", async (event) => {
  event.preventDefault();
  const view = await guarded("settings-error", () => api(`/v1/admin/settings?${scopeQuery()}`));
  if (view) renderSettings(view);
});

$("setting-edit").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("setting-value").value;
  let value;
  try { value = JSON.parse(text); } catch { value = text; }
  if ($("setting-key").value === "system_prompt") value = text;
  const scope = Object.fromEntries(scopeQuery());
  const view = await guarded("settings-error", () => api("/v1/admin/settings", {
    method: "PUT", body: JSON.stringify({ ...scope, key: $("setting-key").value, value }) }));
  if (view) { renderSettings(view); $("setting-value").value = ""; await load(); }
});

$("setting-unset").addEventListener("click", async () => {
  const query = scopeQuery();
  query.set("key", $("setting-key").value);
  const view = await guarded("settings-error", () => api(`/v1/admin/settings?${query}`, { method: "DELETE" }));
  if (view) { renderSettings(view); await load(); }
});

$("limit-edit").addEventListener("submit", async (event) => {
  event.preventDefault();
  const scope = $("limit-scope").value;
  const body = { platform: $("limit-platform").value.trim(), workspace_id: $("limit-workspace").value.trim(), scope,
    subject: scope === "workspace" ? "" : $("limit-subject").value.trim(), metric: $("limit-metric").value,
    period: $("limit-period").value, amount: Number($("limit-amount").value) };
  const done = await guarded("limits-error", () => api("/v1/admin/limits", { method: "PUT", body: JSON.stringify(body) }));
  if (done) await load();
});

// -- loading ------------------------------------------------------------------------------------
async function load() {
  const days = $("days").value;
  $("status").textContent = "Loading…";
  try {
    const [usage, feedback, refusals, evals, limits, audit] = await Promise.all([
      api(`/v1/admin/usage?days=${days}`), api(`/v1/admin/feedback?days=${days}`),
      api(`/v1/admin/refusals?days=${days}`), api("/v1/admin/evals"), api("/v1/admin/limits"),
      api(`/v1/admin/audit?days=${days}&limit=200`),
    ]);
    renderUsage(usage);
    renderFeedback(feedback, usage.since);
    renderRefusals(refusals);
    renderEvals(evals);
    renderLimits(limits);
    renderAudit(audit);
    $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.message !== "signed out") $("status").textContent = `Could not load: ${error.message}`;
  }
}

async function start() {
  const linkProblems = {
    "#link=used": "That sign-in link was already used or is not valid.",
    "#link=expired": "That sign-in link expired: a link works for 15 minutes after it is made.",
  };
  if (location.hash in linkProblems) {
    const problem = linkProblems[location.hash];
    history.replaceState(null, "", "/admin");
    showSignIn(`${problem} Run \`parley admin link\` for a new one, or sign in with an admin key.`);
    return;
  }
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  await load();
}

start();
