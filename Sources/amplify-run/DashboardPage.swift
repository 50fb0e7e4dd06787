/// The dashboard's page: HTML, CSS and JS in one string, served at `/` (no CDN, no build step).
/// It uses only the JSON API; the item rows follow the run's event stream. Hooks for tests:
/// `data-item`/`data-outcome` on item rows, `data-question="SESSION/QUESTION"` on answer forms,
/// `data-action="approve"`/`"reject"` on the decision buttons.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>amplify-run</title>
<style>
:root { --bg:#f6f7f9; --panel:#fff; --ink:#1c2330; --muted:#667085; --line:#e3e6eb; --accent:#2f6fed;
  --ok:#16794c; --ok-bg:#e5f5ec; --bad:#b42318; --bad-bg:#fdecea; --warn:#9a5b00; --warn-bg:#fff4d6;
  --run:#175cd3; --run-bg:#e8f0fe; --idle:#475467; --idle-bg:#eef0f3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; align-items:center; gap:12px; padding:10px 16px; background:var(--ink); color:#fff; }
header h1 { font-size:16px; margin:0; font-weight:600; }
header select { flex:1; min-width:0; max-width:520px; font:inherit; padding:4px 6px; border-radius:6px; border:0; }
header .live { font-size:12px; opacity:.8; }
main { display:grid; grid-template-columns: minmax(0,1.25fr) minmax(0,1fr); gap:14px; padding:14px 16px; }
main > div { min-width:0; }
section { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:12px 14px; min-width:0; }
h2 { font-size:13px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:0 0 8px; }
#summary { display:flex; flex-wrap:wrap; gap:8px; align-items:center; margin-bottom:8px; }
.pill { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
.o-merged,.o-done,.o-approved { color:var(--ok); background:var(--ok-bg); }
.o-rejected,.o-failed,.o-conflict,.o-timed-out,.o-over-budget,.o-cancelled { color:var(--bad); background:var(--bad-bg); }
.o-waiting-for-you { color:var(--warn); background:var(--warn-bg); }
.o-running { color:var(--run); background:var(--run-bg); }
.o-pending,.o-skipped { color:var(--idle); background:var(--idle-bg); }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-size:12px; color:var(--muted); font-weight:600; padding:4px 6px; border-bottom:1px solid var(--line); }
td { padding:6px; border-bottom:1px solid var(--line); vertical-align:top; }
tr.item { cursor:pointer; }
tr.item:hover td { background:#f9fafb; }
tr.item.selected td { background:#eef4ff; }
td.detail { color:var(--muted); font-size:12px; word-break:break-word; }
.id { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
#dag { overflow-x:auto; }
#dag svg { display:block; }
.question { border:1px solid #f2d58a; background:var(--warn-bg); border-radius:8px; padding:10px; margin:8px 0; }
.question p { margin:0 0 8px; font-weight:600; }
.question .ctx { font-weight:400; color:var(--muted); font-size:12px; }
button { font:inherit; border-radius:6px; border:1px solid var(--line); background:#fff; padding:5px 12px; cursor:pointer; }
button:hover { border-color:#c5cbd3; }
button.primary { background:var(--accent); border-color:var(--accent); color:#fff; }
button.approve { background:var(--ok); border-color:var(--ok); color:#fff; }
button.reject { background:#fff; border-color:var(--bad); color:var(--bad); }
button:disabled { opacity:.5; cursor:default; }
input[type=text], textarea { font:inherit; padding:5px 8px; border:1px solid var(--line); border-radius:6px; width:100%; }
.row { display:flex; gap:6px; flex-wrap:wrap; align-items:center; }
.row input { flex:1; min-width:140px; }
pre { background:#0f1520; color:#e6e9ef; padding:10px; border-radius:8px; overflow:auto; max-height:360px; font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace; white-space:pre-wrap; word-break:break-word; }
pre .add { color:#7ee2a8; } pre .del { color:#ff9b91; } pre .hunk { color:#8fb8ff; }
.tabs { display:flex; gap:4px; margin:8px 0; }
.tabs button.on { background:var(--ink); color:#fff; border-color:var(--ink); }
#session .meta { color:var(--muted); font-size:12px; margin-bottom:8px; word-break:break-all; }
#message { position:fixed; bottom:14px; left:50%; transform:translateX(-50%); background:var(--ink); color:#fff; padding:8px 14px; border-radius:8px; display:none; max-width:90vw; }
.empty { color:var(--muted); }
@media (max-width: 820px) {
  main { grid-template-columns: 1fr; padding:10px; }
  header { flex-wrap:wrap; }
  header select { flex-basis:100%; width:100%; }
  td.title, th.title { display:none; }
  td, th { padding:5px 4px; }
}
</style>
</head>
<body>
<header><h1>amplify-run</h1><select id="runs" aria-label="run"></select><button id="cancel" class="reject" title="cancel the run">Cancel run</button><span class="live" id="live">connecting…</span></header>
<main>
  <div>
    <section>
      <div id="summary"></div>
      <div id="dag"></div>
    </section>
    <section style="margin-top:14px">
      <h2>Items</h2>
      <table><thead><tr><th>Item</th><th>Outcome</th><th>Stage</th><th>Time</th><th>Spent</th><th class="title">Title</th></tr></thead><tbody id="items"></tbody></table>
    </section>
  </div>
  <div>
    <section>
      <h2>Waiting for you</h2>
      <div id="questions" class="empty">Nothing is waiting for you.</div>
    </section>
    <section id="session" style="margin-top:14px">
      <h2>Session</h2>
      <div class="empty">Select an item to see its session.</div>
    </section>
  </div>
</main>
<div id="message"></div>
<script>
"use strict";
const $ = (s, e = document) => e.querySelector(s);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const state = { run: null, status: null, stream: null, session: null, sessionItem: null, tab: "log", logFrom: 0, timer: null, logTimer: null };

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, init);
  const text = await r.text();
  let data = text;
  if ((r.headers.get("Content-Type") || "").startsWith("application/json")) { try { data = JSON.parse(text); } catch (e) {} }
  if (!r.ok) throw new Error((data && data.error) || (r.status + " " + r.statusText));
  return { data, headers: r.headers };
}
function say(text) { const m = $("#message"); m.textContent = text; m.style.display = "block"; clearTimeout(say.t); say.t = setTimeout(() => m.style.display = "none", 4000); }
function outcomeClass(o) { return "o-" + String(o || "pending").replace(/ /g, "-"); }
function ms(n) { if (n == null) return "-"; if (n < 1000) return n + "ms"; if (n < 60000) return (n / 1000).toFixed(1) + "s"; const s = Math.floor(n / 1000); return s < 3600 ? Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s" : Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m"; }
function spent(i) { const p = []; if (i.cost != null) p.push("$" + Number(i.cost).toFixed(2)); if (i.tokens != null) p.push(i.tokens.toLocaleString("en-US") + " tokens"); if (i.turns != null) p.push(i.turns + (i.turns == 1 ? " turn" : " turns")); return p.join(" · ") || "-"; }

async function loadRuns() {
  const { data } = await api("/api/runs");
  const sel = $("#runs");
  const chosen = state.run || (data.length ? data[data.length - 1].run : null);
  sel.innerHTML = data.slice().reverse().map(r => `<option value="${esc(r.run)}">${esc(r.run)} · ${esc(r.workflow)} · ${esc(r.state)}</option>`).join("") || "<option>no runs yet</option>";
  if (chosen) { sel.value = chosen; if (chosen !== state.run) selectRun(chosen); }
}

function selectRun(run) {
  state.run = run; state.status = null;
  if (state.stream) state.stream.close();
  $("#dag").innerHTML = "";
  fetch(`/api/runs/${encodeURIComponent(run)}/dag.svg`).then(r => r.ok ? r.text() : "").then(svg => { if (state.run === run) $("#dag").innerHTML = svg; });
  refresh();
  // Only what comes next: the status just fetched holds the rest (`after=latest`).
  const es = new EventSource(`/api/runs/${encodeURIComponent(run)}/events?after=latest`);
  state.stream = es;
  es.onopen = () => { $("#live").textContent = "live"; refresh(); };
  es.onerror = () => { $("#live").textContent = "reconnecting…"; };
  // At most one refresh in flight and one waiting: a busy run is redrawn every 200 ms or so,
  // never starved by a steady stream of events.
  es.onmessage = () => {
    state.dirty = true;
    if (state.timer) return;
    state.timer = setTimeout(async () => {
      // Events that come during a refresh get one more after it: the last state is always drawn.
      while (state.dirty) { state.dirty = false; await refresh(); }
      state.timer = null;
    }, 100);
  };
}

async function refresh() {
  const run = state.run; if (!run) return;
  let s;
  try { s = (await api(`/api/runs/${encodeURIComponent(run)}`)).data; } catch (e) { say(e.message); return; }
  if (state.run !== run) return;
  state.status = s;
  renderSummary(s); renderItems(s); renderQuestions(s);
  const opt = [...$("#runs").options].find(o => o.value === run);
  if (opt) opt.textContent = `${run} · ${s.workflow} · ${s.state}`;
  $("#cancel").disabled = !!s.outcome;
  if (state.session) loadSession(state.session, false);
}

function renderSummary(s) {
  const counts = {};
  for (const i of s.items) counts[i.outcome] = (counts[i.outcome] || 0) + 1;
  const pills = Object.entries(counts).map(([o, n]) => `<span class="pill ${outcomeClass(o)}">${n} ${esc(o)}</span>`).join(" ");
  const budget = s.budget != null ? ` <span class="pill o-pending">spent $${Number(s.spent || 0).toFixed(2)} of $${Number(s.budget).toFixed(2)}</span>` : (s.spent != null ? ` <span class="pill o-pending">spent $${Number(s.spent).toFixed(2)}</span>` : "");
  $("#summary").innerHTML = `<strong>${esc(s.workflow)}</strong> <span class="pill ${s.outcome ? outcomeClass(s.outcome === "succeeded" ? "merged" : s.outcome === "cancelled" ? "cancelled" : "failed") : "o-running"}" id="run-state">${esc(s.state)}</span> ${pills}${budget}`;
}

function renderItems(s) {
  const body = $("#items");
  if (!s.items.length) { body.innerHTML = `<tr><td colspan="6" class="empty">No items yet.</td></tr>`; return; }
  body.innerHTML = s.items.map(i => `
    <tr class="item${state.sessionItem === i.item ? " selected" : ""}" data-item="${esc(i.item)}" data-outcome="${esc(i.outcome)}">
      <td class="id">${esc(i.item)}</td><td><span class="pill ${outcomeClass(i.outcome)}">${esc(i.outcome)}</span></td>
      <td>${esc(i.stage || "-")}</td><td>${ms(i["duration-ms"])}</td><td>${esc(spent(i))}</td><td class="title">${esc(i.title)}</td></tr>
    ${i.detail ? `<tr data-detail="${esc(i.item)}"><td></td><td colspan="5" class="detail">${esc(i.detail)}</td></tr>` : ""}`).join("");
  for (const tr of body.querySelectorAll("tr.item")) tr.onclick = () => openItem(tr.dataset.item);
}

function renderQuestions(s) {
  const open = [];
  for (const ses of s.sessions || []) for (const q of ses["pending-questions"] || []) open.push({ session: ses.session, item: ses.item, q });
  const box = $("#questions");
  const typing = box.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
  if (typing) return;  // never redraw under someone's typing
  if (!open.length) { box.className = "empty"; box.textContent = "Nothing is waiting for you."; return; }
  box.className = "";
  box.innerHTML = open.map(({ session, item, q }) => `
    <form class="question" data-question="${esc(session + "/" + q.id)}">
      <p><span class="id">${esc(item)}</span> asks: ${esc(q.question)}${q.context ? `<br><span class="ctx">${esc(q.context)}</span>` : ""}</p>
      <div class="row">
        ${(q.options || []).map(o => `<button type="button" class="option" data-answer="${esc(o)}">${esc(o)}</button>`).join("")}
        <input type="text" name="answer" placeholder="Your answer" aria-label="answer">
        <button type="submit" class="primary">Answer</button>
      </div>
    </form>`).join("");
  for (const f of box.querySelectorAll("form.question")) {
    const [session, qid] = [f.dataset.question.slice(0, f.dataset.question.indexOf("/")), f.dataset.question.slice(f.dataset.question.indexOf("/") + 1)];
    const send = async answer => {
      if (!answer.trim()) { say("Type an answer first."); return; }
      for (const b of f.querySelectorAll("button")) b.disabled = true;
      try { await api(`/api/sessions/${encodeURIComponent(session)}/answer`, { questionId: qid, answer }); say(`Answered ${qid}.`); f.remove(); }
      catch (e) { say(e.message); for (const b of f.querySelectorAll("button")) b.disabled = false; }
      refresh();
    };
    f.onsubmit = ev => { ev.preventDefault(); send(f.answer.value); };
    for (const b of f.querySelectorAll("button.option")) b.onclick = () => send(b.dataset.answer);
  }
}

function sessionOf(item) {
  const ses = (state.status && state.status.sessions || []).find(x => x.item === item);
  return ses ? ses.session : null;
}

function openItem(item) {
  const session = sessionOf(item);
  state.sessionItem = item;
  for (const tr of document.querySelectorAll("tr.item")) tr.classList.toggle("selected", tr.dataset.item === item);
  if (!session) { $("#session").innerHTML = `<h2>Session</h2><div class="empty">${esc(item)} has no session (yet).</div>`; state.session = null; return; }
  state.session = session; state.logFrom = 0;
  loadSession(session, true);
}

async function loadSession(id, fresh) {
  let s;
  try { s = (await api(`/api/sessions/${encodeURIComponent(id)}`)).data; } catch (e) { say(e.message); return; }
  if (state.session !== id) return;
  const panel = $("#session");
  const decided = s.decision ? s.decision.decision : null;
  const finished = state.status && state.status.outcome;
  const head = `<h2>Session</h2>
    <div><span class="id">${esc(s.session)}</span> ${decided ? `<span class="pill ${outcomeClass(decided)}">${esc(decided)}</span>` : ""} ${s.status ? `<span class="pill o-pending">${esc(s.status)}</span>` : ""}</div>
    <div class="meta">${esc(s.item && s.item.title || "")} · branch ${esc(s.branch)} · agent ${esc(s.agent.profile || "argv")} ${s.agent.alive ? "working (pid " + s.agent.pid + ")" : "not running"}${s.error ? " · " + esc(s.error) : ""}</div>
    <div class="row" id="decide">
      <input type="text" id="decision-text" placeholder="Summary or reason (optional)" aria-label="summary or reason">
      <button class="approve" data-action="approve" ${decided || finished ? "disabled" : ""}>Approve</button>
      <button class="reject" data-action="reject" ${decided || finished ? "disabled" : ""}>Reject</button>
    </div>
    <div class="tabs"><button data-tab="log">Log</button><button data-tab="diff">Diff</button></div>
    <pre id="view"></pre>`;
  if (fresh || !panel.querySelector("#view")) {
    panel.innerHTML = head;
    for (const b of panel.querySelectorAll(".tabs button")) b.onclick = () => { state.tab = b.dataset.tab; state.logFrom = 0; showTab(id); };
    for (const b of panel.querySelectorAll("button[data-action]")) b.onclick = () => decide(id, b.dataset.action);
    showTab(id);
  } else {
    const keep = panel.querySelector("#decision-text").value;
    const view = panel.querySelector("#view");
    panel.innerHTML = head;
    panel.querySelector("#decision-text").value = keep;
    panel.replaceChild(view, panel.querySelector("#view"));
    for (const b of panel.querySelectorAll(".tabs button")) { b.onclick = () => { state.tab = b.dataset.tab; state.logFrom = 0; showTab(id); }; b.classList.toggle("on", b.dataset.tab === state.tab); }
    for (const b of panel.querySelectorAll("button[data-action]")) b.onclick = () => decide(id, b.dataset.action);
  }
}

async function decide(id, action) {
  const text = $("#decision-text").value;
  const body = action === "approve" ? (text ? { summary: text } : {}) : (text ? { reason: text } : {});
  try { await api(`/api/sessions/${encodeURIComponent(id)}/${action}`, body); say(action === "approve" ? "Approved." : "Rejected."); }
  catch (e) { say(e.message); }
  refresh();
}

async function showTab(id) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("on", b.dataset.tab === state.tab);
  clearTimeout(state.logTimer);
  const view = $("#view"); if (!view) return;
  if (state.tab === "diff") {
    try { const { data } = await api(`/api/sessions/${encodeURIComponent(id)}/diff`); view.innerHTML = colourDiff(data) || '<span class="hunk">No changes on the branch yet.</span>'; }
    catch (e) { view.textContent = e.message; }
    return;
  }
  if (state.logFrom === 0) view.textContent = "";
  await followLog(id);
}

async function followLog(id) {
  if (state.session !== id || state.tab !== "log") return;
  const view = $("#view"); if (!view) return;
  try {
    const r = await fetch(`/api/sessions/${encodeURIComponent(id)}/log?from=${state.logFrom}`);
    const text = await r.text();
    if (text) {
      const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
      view.append(text);
      state.logFrom += new TextEncoder().encode(text).length;
      if (atEnd) view.scrollTop = view.scrollHeight;
    }
  } catch (e) {}
  state.logTimer = setTimeout(() => followLog(id), 1000);
}

function colourDiff(t) {
  return String(t).split("\n").map(l => {
    const e = esc(l);
    if (l.startsWith("+") && !l.startsWith("+++")) return `<span class="add">${e}</span>`;
    if (l.startsWith("-") && !l.startsWith("---")) return `<span class="del">${e}</span>`;
    if (l.startsWith("@@")) return `<span class="hunk">${e}</span>`;
    return e;
  }).join("\n");
}

$("#runs").onchange = e => selectRun(e.target.value);
$("#cancel").onclick = async () => {
  if (!state.run || !confirm(`Cancel run ${state.run}?`)) return;
  try { await api(`/api/runs/${encodeURIComponent(state.run)}/cancel`, {}); say("Cancelling…"); } catch (e) { say(e.message); }
};
loadRuns().catch(e => say(e.message));
setInterval(() => loadRuns().catch(() => {}), 30000);  // new runs; the selected one follows its stream
</script>
</body>
</html>
"""#
}
