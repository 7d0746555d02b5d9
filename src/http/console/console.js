// The nftjail console: reads the JSON API of the daemon that served this page and shows its
// jails, the last 24 hours, the banned list with unban buttons and the ban log (the firewall's part is in
// console-firewall.js, which uses the helpers defined here). The API token (needed to
// ban and unban, and to read when the daemon has a read token) comes from the URL fragment
// (#token=…, never sent to the server) or the token field, and is kept in this tab's
// sessionStorage. It travels only as an Authorization header; the page uses no cookie.
"use strict";

const REFRESH_MS = 5000;
const MAX_ROWS = 500;
const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem("nftjail-token") || "";
}

function setToken(value) {
  if (value) {
    sessionStorage.setItem("nftjail-token", value.trim());
  } else {
    sessionStorage.removeItem("nftjail-token");
  }
  showTokenState();
}

// A token in the fragment is taken once, then removed from the address bar and history.
(function tokenFromFragment() {
  const match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  if (match) {
    setToken(decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function showTokenState() {
  const has = token() !== "";
  $("token-state").textContent = has ? "token set" : "read-only: paste the token to ban and unban";
  for (const button of document.querySelectorAll(".needs-token")) {
    button.disabled = !has;
    button.title = has ? "" : "paste the API token first (nftjail http-token)";
  }
}

function say(text, error) {
  const message = $("message");
  message.textContent = text;
  message.className = error ? "error" : "";
  message.hidden = !text;
}

// Calls the API; resolves to its JSON, rejects with its message.
async function api(method, path, body) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  let reply;
  try {
    reply = await response.json();
  } catch (e) {
    throw new Error(method + " " + path + ": HTTP " + response.status);
  }
  if (!response.ok || !reply.ok) {
    throw new Error((reply.message || reply.error || "HTTP " + response.status) +
      (reply.error ? " (" + reply.error + ")" : ""));
  }
  return reply;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  return new Date(seconds * 1000).toLocaleString();
}

function renderJails(jails) {
  const body = $("jail-rows");
  body.replaceChildren();
  const select = $("ban-jail");
  const chosen = select.value;
  select.replaceChildren();
  for (const jail of jails) {
    const row = document.createElement("tr");
    row.dataset.jail = jail.name;
    cell(row, jail.name);
    cell(row, jail.kind);
    cell(row, jail.currently_failed, "num");
    cell(row, jail.total_failed, "num");
    cell(row, jail.currently_banned, "num");
    cell(row, jail.total_banned, "num");
    body.appendChild(row);
    const option = document.createElement("option");
    option.value = option.textContent = jail.name;
    select.appendChild(option);
  }
  // Keep the administrator's choice; start on the manual jail when there is one.
  if (chosen && jails.some((j) => j.name === chosen)) {
    select.value = chosen;
  } else if (jails.some((j) => j.name === "manual")) {
    select.value = "manual";
  }
}

function renderBans(bans) {
  const filter = $("ban-filter").value.trim();
  const shown = filter ? bans.filter((b) => b.target.includes(filter) || b.jail.includes(filter)) : bans;
  const body = $("ban-rows");
  body.replaceChildren();
  for (const ban of shown.slice(0, MAX_ROWS)) {
    const row = document.createElement("tr");
    row.dataset.jail = ban.jail;
    row.dataset.target = ban.target;
    cell(row, ban.jail);
    cell(row, ban.target, "target");
    cell(row, when(ban.since));
    cell(row, when(ban.expires));
    cell(row, ban.count, "num");
    cell(row, ban.origin);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "unban needs-token";
    button.textContent = "unban";
    button.addEventListener("click", () => unban(ban.jail, ban.target, button));
    cell(row, "").appendChild(button);
    body.appendChild(row);
  }
  $("banned-count").textContent = "(" + bans.length + ")";
  const more = $("bans-more");
  more.hidden = shown.length <= MAX_ROWS;
  more.textContent = "and " + (shown.length - MAX_ROWS) + " more: filter the list, or use `nftjail banned`";
  showTokenState();
}

const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function renderCharts(history) {
  const charts = $("charts");
  charts.replaceChildren();
  const width = 288, height = 80;
  for (const series of history.jails) {
    const n = series.failures.length;
    const top = Math.max(1, ...series.failures, ...series.bans);
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.jail = series.jail;
    const title = document.createElement("h3");
    const name = document.createElement("span");
    name.textContent = series.jail;
    const totals = document.createElement("span");
    totals.className = "muted";
    const sum = (values) => values.reduce((a, b) => a + b, 0);
    totals.textContent = sum(series.failures) + " failures, " + sum(series.bans) + " bans";
    title.append(name, totals);
    const svg = svgElement("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img" });
    const label = svgElement("title", {});
    label.textContent = series.jail + ": failures and bans per " + history.bucket_seconds / 60 + " minutes, peak " + top;
    svg.appendChild(label);
    const x = (i) => (i * width) / Math.max(1, n - 1);
    const y = (v) => height - (v * (height - 2)) / top;
    let points = "0," + height;
    series.failures.forEach((v, i) => { points += " " + x(i).toFixed(1) + "," + y(v).toFixed(1); });
    points += " " + width + "," + height;
    svg.appendChild(svgElement("polygon", { points, class: "failures" }));
    series.bans.forEach((v, i) => {
      if (v > 0) {
        const top_y = y(v);
        svg.appendChild(svgElement("rect", { x: x(i) - 0.5, y: top_y, width: 1.5, height: height - top_y, class: "bans" }));
      }
    });
    const axis = document.createElement("div");
    axis.className = "axis";
    const left = document.createElement("span");
    left.textContent = "24 h ago";
    const peak = document.createElement("span");
    peak.textContent = "peak " + top;
    const right = document.createElement("span");
    right.textContent = "now";
    axis.append(left, peak, right);
    box.append(title, svg, axis);
    charts.appendChild(box);
  }
}

const LOG_ROWS = 200;

// Seconds as people write them: 600 -> 10m, 86400 -> 1d; null is permanent.
function span(seconds) {
  if (seconds === null || seconds === undefined) return "permanent";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds >= size && seconds % size === 0) return seconds / size + unit;
  }
  return seconds + "s";
}

function renderLog(events) {
  const body = $("log-rows");
  body.replaceChildren();
  const newest = events.slice(-LOG_ROWS).reverse();
  for (const event of newest) {
    const row = document.createElement("tr");
    row.dataset.action = event.action;
    row.dataset.target = event.target;
    cell(row, when(event.time));
    cell(row, event.action, "action-" + event.action);
    cell(row, event.jail);
    cell(row, event.target, "target");
    cell(row, event.action === "ban" ? span(event.duration) : "");
    cell(row, event.count, "num");
    cell(row, event.origin);
    // Attacker-written text: only ever set as text, never parsed as markup.
    if (event.lines && event.lines.length) row.title = event.lines.join("\n");
    body.appendChild(row);
  }
  $("log-count").textContent = "(" + events.length + (events.length > LOG_ROWS ? ", newest " + LOG_ROWS + " shown" : "") + ")";
}

let lastBans = [];

async function refresh() {
  try {
    const day_ago = Math.floor(Date.now() / 1000) - 86400;
    const [status, bans, history, log, ping] = await Promise.all([
      api("GET", "/api/v1/status"),
      api("GET", "/api/v1/bans"),
      api("GET", "/api/v1/history"),
      api("GET", "/api/v1/log?since=" + day_ago),
      api("GET", "/api/v1/ping"),
    ]);
    renderJails(status.jails || []);
    lastBans = bans.bans || [];
    renderBans(lastBans);
    renderCharts(history);
    renderLog(log.events || []);
    $("version").textContent = "version " + ping.version;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "true";
  } catch (e) {
    say(e.message, true);
  }
  // The other parts of the page (the firewall's) refresh with this one.
  document.dispatchEvent(new Event("nftjail-refresh"));
}

async function unban(jail, target, button) {
  button.disabled = true;
  try {
    const path = "/api/v1/jails/" + encodeURIComponent(jail) + "/bans/" + encodeURIComponent(target);
    await api("DELETE", path);
    say("unbanned " + target + " from " + jail, false);
  } catch (e) {
    say("unban " + target + ": " + e.message, true);
  }
  await refresh();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token").value);
  $("token").value = "";
  refresh();
});

$("ban-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const target = $("ban-target").value.trim();
  const length = $("ban-for").value.trim();
  const jail = $("ban-jail").value;
  if (!target || !jail) return;
  const body = { target };
  if (length) body["for"] = length;
  try {
    const reply = await api("POST", "/api/v1/jails/" + encodeURIComponent(jail) + "/bans", body);
    const refused = (reply.rejected || []).map((r) => r.text + ": " + r.error).join("; ");
    say(refused ? "refused: " + refused : "banned " + target + " in " + jail, Boolean(refused));
    $("ban-target").value = "";
  } catch (e) {
    say("ban " + target + ": " + e.message, true);
  }
  refresh();
});

$("ban-filter").addEventListener("input", () => renderBans(lastBans));

showTokenState();
refresh();
setInterval(refresh, REFRESH_MS);
