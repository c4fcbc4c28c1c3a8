// Parley playground: a small client of the REST API (/v1/*). No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  key: null,
  session: sessionStorage.getItem("parley.session"),
  pending: [],
  recorder: null,
  busy: false,
  caps: null,
  profileEdited: false,
};

const LEARNING_DELAY_MS = 3000;

class ApiProblem extends Error {
  constructor(status, body) {
    super(body.message || `The server answered HTTP ${status}.`);
    this.status = status;
    this.fix = body.fix || "";
    this.code = body.error || "http_error";
  }
}

// -- API ------------------------------------------------------------------------------------
async function request(method, path, body) {
  // Without a pasted key, the session cookie from the printed sign-in link authenticates.
  const headers = state.key ? { Authorization: `Bearer ${state.key}` } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw await problemOf(res);
  return res;
}

async function api(method, path, body) {
  return (await request(method, path, body)).json();
}

async function problemOf(res) {
  let body = {};
  try { body = await res.json(); } catch { /* not JSON: keep the status alone */ }
  return new ApiProblem(res.status, body);
}

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { event, data: data.join("\n") };
}

async function* sse(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let match;
    while ((match = /\r?\n\r?\n/.exec(buffer))) {
      const frame = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const parsed = parseFrame(frame);
      if (parsed.data) yield parsed;
    }
  }
}

// -- the key --------------------------------------------------------------------------------
function keyFromFragment() {
  const match = location.hash.match(/key=([^&]+)/);
  if (match) {
    localStorage.setItem("parley.key", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const link = location.hash.match(/^#link=(used|wait-(\d+))$/);
  if (!link) return null;
  history.replaceState(null, "", location.pathname);
  if (link[1] === "used") {
    return "That sign-in link was already used (each works once). Restart `parley serve` for a new one.";
  }
  return `Too many invalid keys came from this address. Wait ${link[2]} s, then open the same link again: it is still unused.`;
}

function askKey(message) {
  $("key-error").hidden = !message;
  $("key-error").textContent = message || "";
  $("key-input").value = "";
  if (!$("key-dialog").open) $("key-dialog").showModal();
}

async function useKey(key) {
  state.key = key;
  try {
    state.caps = await api("GET", "/v1/capabilities");
  } catch (err) {
    if (key === null && err.status === 401) askKey("");
    else askKey(err.status === 401 ? "That key was not accepted. " + err.fix : `${err.message} ${err.fix}`);
    return false;
  }
  if (key !== null) localStorage.setItem("parley.key", key);
  $("status").textContent = state.caps.model ? `model: ${state.caps.model}` : "no model configured";
  $("model-notice").textContent = state.caps.model_notice || "";
  $("model-notice").hidden = !state.caps.model_notice;
  $("voice-reply").closest("label").hidden = !state.caps.voice_reply;
  await Promise.all([loadProfile(), loadMemories(), loadSession()]);
  loadHealth();
  return true;
}

// The doctor's cheap checks: configuration, model, database; the fix shows on hover.
async function loadHealth() {
  try {
    const checks = await api("GET", "/playground/status");
    $("health").replaceChildren(...checks.map((c) => {
      const item = document.createElement("span");
      item.className = c.ok ? "ok" : "bad";
      item.textContent = `${c.ok ? "✓" : "✗"} ${c.name} `;
      item.title = c.ok ? c.detail : `${c.detail} — ${c.fix}`;
      return item;
    }));
  } catch (err) {
    $("health").textContent = `status unavailable: ${err.message}`;
  }
}

// -- conversation ---------------------------------------------------------------------------
function bubble(role, text) {
  const li = document.createElement("li");
  li.className = `msg ${role}`;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  li.append(body);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function showProblem(err) {
  const li = bubble("system", err.message);
  if (err.fix) {
    const fix = document.createElement("div");
    fix.className = "notes";
    fix.textContent = err.fix;
    li.append(fix);
  }
  if (err.status === 401) askKey("Your key is no longer accepted. " + (err.fix || ""));
}

function finish(li, final) {
  li.querySelector(".text").textContent = final.reply;
  li.dataset.turnId = final.turn_id ?? "";
  if (final.blocked) li.classList.add("blocked");
  if (final.error) li.classList.add("failed");
  const notes = document.createElement("div");
  notes.className = "notes";
  for (const a of final.attachments) {
    const note = document.createElement("div");
    if (a.error) {
      note.className = "bad icon icon-clip";
      note.textContent = `${a.name}: ${a.error}`;
    } else {
      note.className = "icon icon-clip";
      note.textContent = `${a.name} (${a.kind}) read`;
    }
    notes.append(note);
  }
  for (const step of final.steps) {
    const note = document.createElement("div");
    note.className = "icon icon-tool";
    note.textContent = `${step.tool} ${step.ok ? "✓" : "✗"} ${Math.round(step.duration_ms)} ms`;
    notes.append(note);
  }
  if (notes.childElementCount) li.append(notes);
  if (final.audio) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.src = `data:audio/${final.audio_format || "mpeg"};base64,${final.audio}`;
    li.append(audio);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  const facts = document.createElement("span");
  facts.textContent = `${Math.round(final.latency_ms)} ms · ${final.usage.input_tokens}+${final.usage.output_tokens} tokens`;
  meta.append(facts);
  if (final.turn_id && !final.error) meta.append(...rateButtons(li, final.turn_id));
  li.append(meta);
  li.scrollIntoView({ block: "end" });
}

function rateButtons(li, turnId) {
  return [[1, "👍", "Good answer"], [-1, "👎", "Bad answer"]].map(([score, label, name]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "rate";
    button.textContent = label;
    button.title = name;
    button.setAttribute("aria-label", name);
    button.setAttribute("aria-pressed", "false");
    button.dataset.score = String(score);
    button.addEventListener("click", () => rate(li, turnId, score));
    return button;
  });
}

async function rate(li, turnId, score) {
  try {
    await api("POST", "/v1/feedback", { turn_id: turnId, score });
    for (const b of li.querySelectorAll(".rate")) b.setAttribute("aria-pressed", String(b.dataset.score === String(score)));
  } catch (err) {
    showProblem(err);
  }
}

async function send(text) {
  const attachments = state.pending.splice(0);
  renderPending();
  const names = attachments.length ? `Attached: ${attachments.map((a) => a.name).join(", ")}` : "";
  bubble("user", [text, names].filter(Boolean).join("\n"));
  const li = bubble("assistant", "…");
  const body = { message: text, attachments };
  if (state.session) body.session_id = state.session;
  if ($("voice-reply").checked) body.voice_reply = true;
  let res;
  try {
    res = await request("POST", "/v1/chat/stream", body);
  } catch (err) {
    li.remove();
    showProblem(err);
    return;
  }
  let streamed = "";
  for await (const event of sse(res)) {
    const payload = JSON.parse(event.data);
    if (event.event === "delta") {
      streamed += payload.text;
      li.querySelector(".text").textContent = streamed;
    } else if (event.event === "done") {
      state.session = payload.session_id;
      sessionStorage.setItem("parley.session", state.session);
      finish(li, payload);
    }
  }
  refreshKnown();
  setTimeout(refreshKnown, LEARNING_DELAY_MS);
}

// What a turn taught Parley ("Hi, I'm Sam": a fact and the profile's name) is stored after its reply, by
// rules at once or by the model's fact extraction in the background: both panels are read again when the
// reply ends and once more a moment later. Read only after a reload, the name looked unlearned. A profile
// being edited is left as typed.
function refreshKnown() {
  loadMemories();
  if (!state.profileEdited) loadProfile();
}

async function loadSession() {
  $("messages").replaceChildren();
  if (!state.session) return;
  try {
    const session = await api("GET", `/v1/sessions/${encodeURIComponent(state.session)}`);
    for (const m of session.messages) restore(m);
  } catch {
    newSession();
  }
}

// A conversation read back after a reload: its answers can still be rated (a rating replaces the one given
// before), and a message a server crash left unanswered says so, instead of looking ignored.
function restore(m) {
  const li = bubble(m.role, m.content);
  if (m.interrupted) {
    const note = document.createElement("div");
    note.className = "notes";
    note.textContent = "Not answered: the server stopped during this turn. Send it again for an answer.";
    li.append(note);
  }
  if (m.role === "assistant" && m.turn_id) {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(...rateButtons(li, m.turn_id));
    li.append(meta);
  }
}

function newSession() {
  state.session = null;
  sessionStorage.removeItem("parley.session");
  $("messages").replaceChildren();
}

// -- attachments and voice notes ------------------------------------------------------------
function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addPending(file) {
  state.pending.push({ name: file.name, content_type: file.type || null, data: await base64Of(file) });
  renderPending();
}

function renderPending() {
  const chips = state.pending.map((a, i) => {
    const chip = document.createElement("span");
    chip.className = "chip icon icon-clip";
    chip.textContent = a.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove ${a.name}`);
    remove.addEventListener("click", () => { state.pending.splice(i, 1); renderPending(); });
    chip.append(remove);
    return chip;
  });
  $("pending").replaceChildren(...chips);
}

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showProblem({ message: `The microphone is not available (${err.name}).`,
                  fix: "Allow microphone access for this page, or attach an audio file instead." });
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    state.recorder = null;
    $("record").classList.replace("icon-stop", "icon-mic");
    $("record").classList.remove("recording");
    $("record").textContent = "Record";
    await addPending(new File(chunks, `voice-note.${ext}`, { type }));
  };
  recorder.start();
  state.recorder = recorder;
  $("record").classList.replace("icon-mic", "icon-stop");
  $("record").classList.add("recording");
  $("record").textContent = "Stop";
}

// -- profile and memories -------------------------------------------------------------------
async function loadProfile() {
  const profile = await api("GET", "/v1/profile");
  state.profileEdited = false;
  const form = $("profile-form");
  for (const name of ["display_name", "language", "timezone", "answer_style", "about"]) {
    form.elements[name].value = profile[name] || "";
  }
  form.elements.voice_replies.checked = profile.voice_replies;
}

async function saveProfile() {
  const form = $("profile-form");
  const changes = { voice_replies: form.elements.voice_replies.checked };
  for (const name of ["display_name", "language", "timezone", "about"]) changes[name] = form.elements[name].value;
  if (form.elements.answer_style.value) changes.answer_style = form.elements.answer_style.value;
  try {
    await api("PUT", "/v1/profile", changes);
    state.profileEdited = false;
    $("profile-note").textContent = "Saved.";
  } catch (err) {
    $("profile-note").textContent = `${err.message} ${err.fix}`;
  }
}

async function loadMemories() {
  const list = $("memories");
  const history = $("memories-history").checked;
  let data;
  try {
    data = await api("GET", `/v1/memories${history ? "?history=true" : ""}`);
  } catch {
    return;
  }
  if (!data.memories.length) {
    const empty = document.createElement("li");
    empty.className = "muted";
    empty.textContent = "Nothing yet.";
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...data.memories.map((m) => {
    const li = document.createElement("li");
    if (m.valid_to) li.className = "past";
    const text = document.createElement("span");
    text.textContent = m.scope === "person" ? m.content : `${m.content} (for the ${m.scope})`;
    const when = document.createElement("small");
    when.className = "muted";
    when.textContent = factDates(m);
    text.append(document.createElement("br"), when);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small";
    remove.textContent = "×";
    remove.title = "Forget this";
    remove.setAttribute("aria-label", `Forget: ${m.content}`);
    remove.addEventListener("click", async () => {
      await api("DELETE", `/v1/memories/${m.id}`).catch(showProblem);
      loadMemories();
    });
    li.append(text, remove);
    return li;
  }));
}

function factDates(m) {
  const day = (iso) => iso.slice(0, 10);
  const parts = [`said ${day(m.said_at)}`];
  if (m.author_id && m.scope !== "person") parts.push(`by ${m.author_id}`);
  if (m.valid_to) parts.push(`${m.superseded_by ? "superseded" : "ended"} ${day(m.valid_to)}`);
  else if (m.expires_at) parts.push(`until ${day(m.expires_at)}`);
  return parts.join(" · ");
}

async function forgetEverything() {
  if (!confirm("Delete everything Parley remembers about you here: memories, profile, conversations, feedback?")) return;
  try {
    await api("DELETE", "/v1/memories");
  } catch (err) {
    showProblem(err);
    return;
  }
  newSession();
  await Promise.all([loadProfile(), loadMemories()]);
  bubble("assistant", "Done: I forgot everything about you in this workspace.");
}

// -- wiring ---------------------------------------------------------------------------------
function wire() {
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("message").value.trim();
    if (state.busy || (!text && !state.pending.length)) return;
    state.busy = true;
    $("send").disabled = true;
    $("message").value = "";
    try {
      await send(text);
    } catch (err) {
      showProblem({ message: `The connection broke (${err.message}).`, fix: "Check that the server is running and try again." });
    } finally {
      state.busy = false;
      $("send").disabled = false;
      $("message").focus();
    }
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("attach").addEventListener("change", async (e) => {
    for (const file of e.target.files) await addPending(file);
    e.target.value = "";
  });
  $("record").addEventListener("click", toggleRecording);
  $("profile-form").addEventListener("submit", (e) => { e.preventDefault(); saveProfile(); });
  $("profile-form").addEventListener("input", () => { state.profileEdited = true; });
  $("memories-refresh").addEventListener("click", loadMemories);
  $("memories-history").addEventListener("change", loadMemories);
  $("forget").addEventListener("click", forgetEverything);
  $("new-session").addEventListener("click", newSession);
  $("change-key").addEventListener("click", () => askKey(""));
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await useKey($("key-input").value.trim())) $("key-dialog").close();
  });
}

async function start() {
  wire();
  const linkProblem = keyFromFragment();
  const signedIn = await useKey(localStorage.getItem("parley.key"));
  if (!signedIn && linkProblem) askKey(linkProblem);
}

start();
