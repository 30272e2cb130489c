// The sarra console: polls /api/status and draws it; the ledger look-up;
// the configuration builder. Everything shown is set as text (never as
// HTML): file names come from other people's messages.
"use strict";

const POLL_MS = 2000;
const HOUR = 3600;
const TOKEN = document.querySelector('meta[name="sarra-token"]').content;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : c === null || c === undefined ? "" : String(c));
  }
  return e;
}

function utc(t) {
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function secs(t) {
  if (t === null || t === undefined) return "-";
  return t < 100 ? t.toFixed(1) + "s" : Math.round(t) + "s";
}

function num(x, digits) {
  return x === null || x === undefined ? "-" : Number(x).toFixed(digits);
}

// -- the configurations ---------------------------------------------------------

function row(c) {
  const canvas = el("canvas", {width: "300", height: "48", class: "plot"});
  const tr = el("tr", {"data-name": c.name},
    el("td", {class: "name"}, c.name),
    el("td", {class: "state state-" + c.state}, c.state),
    el("td", {class: "health health-" + c.health, title: c.reason || ""},
       c.health + (c.reason ? " (" + c.reason + ")" : "")),
    el("td", {class: "instances"}, c.up + "/" + c.instances),
    el("td", {class: "rate"}, num(c.messages_per_s, 2)),
    el("td", {class: "bytes"}, num(c.bytes_per_s / 1e6, 2)),
    el("td", {class: "lag"}, secs(c.lag) + (c.lag_p95 !== null ? " (" + secs(c.lag_p95) + ")" : "")),
    el("td", {class: "queue"}, c.broker_queue === null ? "-" : c.broker_queue),
    el("td", {class: "retry"}, c.retry_queue),
  );
  const td = el("td", {class: "hour"});
  td.append(canvas);
  tr.append(td);
  return [tr, canvas];
}

// the last hour of a flow, a slot a minute (the minute under way at the right
// edge): msgs/s as bars (blue; a red foot where messages failed) and the lag
// as a line (orange), each on its own scale
function plot(canvas, history, now) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 2, top = h - 2 * pad;
  const slot = w / 60, current = now - now % 60;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#f4f6f8";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#c8ced4";
  ctx.beginPath(); ctx.moveTo(0, h - pad); ctx.lineTo(w, h - pad); ctx.stroke();
  const shown = history.filter(p => current - p[0] < HOUR);
  canvas.dataset.points = String(shown.length);
  if (!shown.length) return;
  const x = t => (59 - Math.round((current - t) / 60)) * slot;
  const maxRate = Math.max(...shown.map(p => p[1]), 1e-9);
  const lags = shown.filter(p => p[2] !== null);
  const maxLag = Math.max(...lags.map(p => p[2]), 1e-9);
  for (const [t, rate, , failed] of shown) {
    const bh = Math.max(top * rate / maxRate, rate > 0 ? 1 : 0);
    ctx.fillStyle = "#3b7dd8";
    ctx.fillRect(x(t), h - pad - bh, slot - 1, bh);
    if (failed > 0) {
      ctx.fillStyle = "#d33";
      ctx.fillRect(x(t), h - pad - 3, slot - 1, 3);
    }
  }
  if (lags.length) {
    ctx.strokeStyle = "#e08a1e";
    ctx.lineWidth = 2;
    ctx.beginPath();
    lags.forEach(([t, , lag], i) => {
      const y = h - pad - top * lag / maxLag;
      if (i === 0) ctx.moveTo(x(t), y);
      ctx.lineTo(x(t) + slot - 1, y);
    });
    ctx.stroke();
  }
  canvas.title = "last hour: up to " + maxRate.toFixed(2) + " msgs/s" +
    (lags.length ? ", lag up to " + secs(maxLag) : "");
}

function outcomes(tbody, rows) {
  tbody.replaceChildren(...rows.slice(0, 20).map(r => el("tr", {},
    el("td", {}, utc(r.time)), el("td", {}, r.name), el("td", {class: "file"}, r.relpath),
    el("td", {}, r.code === null ? "-" : r.code),
    el("td", {class: "reason", title: r.reason}, r.reason))));
}

function show(data) {
  const tbody = document.querySelector("#configs tbody");
  const rows = [], canvases = [];
  for (const c of data.configurations) {
    const [tr, canvas] = row(c);
    rows.push(tr); canvases.push([canvas, c]);
  }
  tbody.replaceChildren(...rows);
  for (const [canvas, c] of canvases) plot(canvas, c.history, data.time);
  document.getElementById("none").hidden = data.configurations.length > 0;
  const problems = document.getElementById("problems");
  problems.hidden = !data.errors.length;
  problems.textContent = data.errors.length ?
    "cannot be read: " + data.errors.join(", ") + " (see sarra check)" : "";
  const all = state => data.configurations.flatMap(
    c => c.recent[state].map(r => Object.assign({name: c.name}, r)))
    .sort((a, b) => b.time - a.time);
  sources(data.sources);
  outcomes(document.querySelector("#deliveries tbody"), all("ok"));
  outcomes(document.querySelector("#failures tbody"), all("failed"));
  document.getElementById("updated").textContent = "updated " + utc(data.time) + " UTC";
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

// the switch's view: who posts what (its dd_sara), who gets it (the log
// messages its log router sends back to each source)
function sources(list) {
  document.getElementById("switch").hidden = !list.length;
  document.querySelector("#sources tbody").replaceChildren(...list.map(s => el("tr",
    {"data-source": s.source}, el("td", {class: "name"}, s.source),
    el("td", {class: "rate"}, num(s.post[1], 1)), el("td", {class: "posts"}, s.post[0]),
    el("td", {class: "rate"}, num(s.log_ok[1], 1)), el("td", {class: "ok"}, s.log_ok[0]),
    el("td", {class: "rate"}, num(s.log_failed[1], 1)),
    el("td", {class: "bad"}, s.log_failed[0]))));
}

async function poll() {
  try {
    const answer = await fetch("/api/status", {cache: "no-store"});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    show(await answer.json());
  } catch (err) {
    document.getElementById("updated").textContent = "not updated: " + err.message;
  }
  setTimeout(poll, POLL_MS);
}

// -- where did my file go ----------------------------------------------------------

async function lookUp(event) {
  event.preventDefault();
  const file = document.getElementById("l-file").value;
  const note = document.getElementById("l-note");
  const tbody = document.querySelector("#ledger-rows tbody");
  const answer = await fetch("/api/ledger?file=" + encodeURIComponent(file));
  const data = await answer.json();
  if (!answer.ok) { note.textContent = data.error; tbody.replaceChildren(); return; }
  note.textContent = data.rows.length + " log message" + (data.rows.length === 1 ? "" : "s") +
    " about " + data.file;
  tbody.replaceChildren(...data.rows.map(r => el("tr", {class: r.code < 400 ? "ok" : "bad"},
    el("td", {}, utc(r.time)), el("td", {class: "file"}, r.relpath), el("td", {}, r.code),
    el("td", {}, r.user + "@" + r.host), el("td", {}, r.cluster || "-"),
    el("td", {}, num(r.duration, 3) + "s"),
    el("td", {class: "reason", title: r.message}, r.message), el("td", {}, r.ledger))));
}

// -- the builder ------------------------------------------------------------------

const FIELDS = ["name", "broker", "exchange", "subtopic", "reject", "accept", "directory",
                "mirror", "strip"];

function form() {
  const f = {};
  for (const name of FIELDS) {
    const input = document.getElementById("b-" + name);
    f[name] = input.type === "checkbox" ? input.checked : input.value;
  }
  return f;
}

// quiet: the text only (the form as the page opens: no error before any input)
async function build(write, quiet) {
  const answer = await fetch("/api/build", {
    method: "POST", headers: {"Content-Type": "application/json", "X-Sarra-Token": TOKEN},
    body: JSON.stringify({form: form(), write: write})});
  const data = await answer.json();
  const result = document.getElementById("b-result");
  if (!answer.ok) { result.textContent = data.error; return; }
  document.getElementById("b-text").textContent = data.text;
  if (quiet) return;
  for (const name of FIELDS) {
    document.getElementById("e-" + name).textContent = data.errors[name] || "";
  }
  result.className = data.ok ? "ok" : "bad";
  if (write) {
    result.textContent = data.written ? "written: " + data.written :
      "not written: " + Object.keys(data.errors).join(", ") + " to correct";
  } else {
    result.textContent = data.ok ? "loads as dd_subscribe would read it" : "";
  }
}

let pending = null;
function rebuild() {
  clearTimeout(pending);
  pending = setTimeout(() => build(false), 250);
}

document.addEventListener("DOMContentLoaded", () => {
  poll();
  document.getElementById("ledger-form").addEventListener("submit", lookUp);
  const builder = document.getElementById("builder-form");
  builder.addEventListener("input", rebuild);
  builder.addEventListener("submit", event => { event.preventDefault(); build(true); });
  build(false, true);
});
