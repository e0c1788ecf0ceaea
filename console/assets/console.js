// The eventsd console: follows one channel over SSE with EventSource, which resumes after a
// dropped connection with the Last-Event-ID header by itself.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 2000; // older rows are dropped, so a busy stream cannot grow the page without bound

let source = null;
let paused = false;
let held = []; // events that arrived while paused
let lastId = "";
let dropped = false;
let shown = 0;

function setState(text, cls) {
  const s = $("state");
  s.textContent = text;
  s.className = "state " + cls;
}

function streamPath(channel) {
  return channel === "analytics" ? "/api/v1/analytics/stream" : "/api/v1/stream/" + channel;
}

function saveToken(token) {
  // EventSource sends no Authorization header; eventsd also reads the access_token cookie.
  // Over HTTPS the cookie is Secure: a browser then never sends it over plain HTTP.
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "access_token=" + encodeURIComponent(token) + "; path=/; SameSite=Strict" + secure;
  try { localStorage.setItem("eventsd.token", token); } catch (_) { /* private mode */ }
}

function connect() {
  disconnect();
  const token = $("token").value.trim();
  if (!token) return;
  saveToken(token);
  lastId = "";
  dropped = false;
  setState("connecting", "connecting");
  source = new EventSource(streamPath($("channel").value));
  source.onopen = () => {
    setState(dropped && lastId ? "live (resumed after " + lastId + ")" : "live", "live");
    dropped = false;
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setState("closed: check the token and channel", "error");
      $("connect-btn").disabled = false;
      $("disconnect-btn").disabled = true;
      return;
    }
    dropped = true;
    setState("reconnecting" + (lastId ? " after " + lastId : ""), "reconnecting");
  };
  source.onmessage = (e) => receive(e.lastEventId, e.data, false);
  source.addEventListener("resync", (e) => receive("", e.data, true));
  $("connect-btn").disabled = true;
  $("disconnect-btn").disabled = false;
}

function disconnect() {
  if (source) source.close();
  source = null;
  setState("disconnected", "");
  $("connect-btn").disabled = false;
  $("disconnect-btn").disabled = true;
}

function receive(id, data, notice) {
  if (id) lastId = id;
  const item = { id, data, notice };
  if (paused) {
    held.push(item);
    if (held.length > MAX_ROWS) held.shift();
    updateCounts();
    return;
  }
  render(item);
}

function describe(data) {
  let ev;
  try { ev = JSON.parse(data); } catch (_) { return { type: "?", time: "", payload: data, pretty: data }; }
  let inner = ev;
  let protocol = "";
  if (ev && ev.protocol && ev.event) { protocol = ev.protocol + " "; inner = ev.event; }
  const type = (inner && inner.type) || "?";
  let time = "";
  if (inner && inner.timestamp !== undefined) {
    const d = new Date(inner.timestamp);
    if (!isNaN(d)) time = d.toLocaleTimeString();
  }
  const rest = Object.assign({}, inner);
  delete rest.type;
  delete rest.timestamp;
  return { type: protocol + type, rawType: type, time, payload: JSON.stringify(rest), pretty: JSON.stringify(ev, null, 2) };
}

function render(item) {
  const d = describe(item.data);
  const li = document.createElement("li");
  li.dataset.type = d.rawType || "";
  li.dataset.id = item.id;
  if (item.notice) li.className = "notice";
  const row = document.createElement("button");
  row.type = "button";
  row.className = "row";
  row.setAttribute("aria-expanded", "false");
  for (const [cls, text] of [["time", d.time], ["type", d.type], ["payload", d.payload]]) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    row.appendChild(span);
  }
  row.addEventListener("click", () => {
    const open = li.querySelector("pre");
    if (open) { open.remove(); row.setAttribute("aria-expanded", "false"); return; }
    const pre = document.createElement("pre");
    pre.textContent = d.pretty;
    li.appendChild(pre);
    row.setAttribute("aria-expanded", "true");
  });
  li.appendChild(row);
  li.hidden = !matches(li);
  const list = $("events");
  if ($("newest-first").checked) list.prepend(li); else list.append(li);
  shown++;
  while (list.children.length > MAX_ROWS) {
    ($("newest-first").checked ? list.lastElementChild : list.firstElementChild).remove();
  }
  updateCounts();
}

function matches(li) {
  const f = $("filter").value.trim().toUpperCase();
  return !f || (li.dataset.type || "").includes(f) || li.classList.contains("notice");
}

function applyFilter() {
  for (const li of $("events").children) li.hidden = !matches(li);
  updateCounts();
}

function updateCounts() {
  const total = $("events").children.length;
  const visible = Array.from($("events").children).filter((li) => !li.hidden).length;
  $("counts").textContent = visible + " of " + total + " shown" + (held.length ? ", " + held.length + " held while paused" : "");
}

function togglePause() {
  paused = !paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(paused));
  if (!paused) {
    const items = held;
    held = [];
    items.forEach(render);
  }
  updateCounts();
}

function reorder() {
  const list = $("events");
  Array.from(list.children).reverse().forEach((li) => list.appendChild(li));
}

async function publish(e) {
  e.preventDefault();
  const out = $("pub-result");
  const token = $("token").value.trim();
  if (!token) { out.textContent = "paste a token first"; return; }
  try {
    const resp = await fetch("/api/v1/events/" + $("pub-channel").value, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: $("pub-body").value,
    });
    const ans = await resp.json();
    out.textContent = resp.ok ? "published: " + ans.stream + " #" + ans.seq : "error " + resp.status + ": " + ans.error;
  } catch (err) {
    out.textContent = "error: " + err.message;
  }
}

$("connect").addEventListener("submit", (e) => { e.preventDefault(); connect(); });
$("disconnect-btn").addEventListener("click", disconnect);
$("filter").addEventListener("input", applyFilter);
$("pause").addEventListener("click", togglePause);
$("clear").addEventListener("click", () => { $("events").replaceChildren(); held = []; updateCounts(); });
$("newest-first").addEventListener("change", reorder);
$("publish").addEventListener("submit", publish);

// A token in the fragment (#token=...&channel=...) connects at once; the fragment never
// reaches the server.
(function start() {
  const params = new URLSearchParams(location.hash.slice(1));
  let token = params.get("token");
  if (!token) { try { token = localStorage.getItem("eventsd.token"); } catch (_) { token = null; } }
  if (params.get("channel")) $("channel").value = params.get("channel");
  if (token) { $("token").value = token; }
  if (params.get("token")) { history.replaceState(null, "", location.pathname); connect(); }
})();
