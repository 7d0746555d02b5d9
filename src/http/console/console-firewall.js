// The nftjail console's firewall section: the on/off switch (turning on rolls back by itself
// unless "Keep it on" is clicked in time, as `nftjail firewall enable --confirm-within` does),
// the rules in the order they apply with an add form and a delete button on the rules added
// through the API (none on protected rules or on rules written in firewall.d files), and the
// port forwards likewise. Uses console.js's helpers ($, api, cell, say, showTokenState) and
// refreshes when it does (the "nftjail-refresh" event).
"use strict";

// Where the rollback of an enable waiting for confirmation is due (ms since the epoch), or 0.
let rollbackAt = 0;
// Whether the firewall is on (the switch turns it off) or off (the switch turns it on).
let firewallOn = false;

function yes(value) {
  return value ? "yes" : "";
}

function renderFirewallStatus(firewall, warnings) {
  firewallOn = firewall.enabled;
  const pending = firewall.pending;
  rollbackAt = pending ? Date.now() + pending.rollback_in * 1000 : 0;
  const state = $("firewall-state");
  state.textContent = pending ? "on, not confirmed" : firewall.enabled ? "on" : "off";
  state.className = "badge" + (pending ? " pending" : firewall.enabled ? " on" : "");
  $("firewall-summary").textContent = firewall.enabled
    ? "input " + firewall.default_input + ", output " + firewall.default_output +
      ", forward " + firewall.default_forward + " for what no rule accepts; admin ports " +
      firewall.admin_ports.join(", ") + " (kept open by the lock-out check)"
    : "off: every port open, bans still enforced (on: input " + firewall.default_input +
      ", output " + firewall.default_output + ", forward " + firewall.default_forward + ")";
  const shown = $("firewall-warnings");
  shown.textContent = (warnings || []).join(" ");
  shown.hidden = !shown.textContent;
  const toggle = $("firewall-toggle");
  toggle.textContent = firewall.enabled ? "Turn off" : "Turn on";
  toggle.dataset.action = firewall.enabled ? "disable" : "enable";
  $("firewall-within-field").hidden = firewall.enabled;
  $("firewall-confirm").hidden = !pending;
  showPending();
}

// The countdown of an enable waiting for confirmation.
function showPending() {
  const shown = $("firewall-pending");
  if (!rollbackAt) {
    shown.hidden = true;
    return;
  }
  const left = Math.max(0, Math.round((rollbackAt - Date.now()) / 1000));
  shown.textContent = "rolls back in " + left + " s unless kept";
  shown.hidden = false;
}

function deleteButton(label, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "delete needs-token";
  button.textContent = label;
  button.addEventListener("click", () => handler(button));
  return button;
}

function renderRules(rules) {
  const body = $("rule-rows");
  body.replaceChildren();
  for (const rule of rules) {
    const row = document.createElement("tr");
    row.dataset.id = rule.id;
    row.dataset.protected = rule.protected;
    cell(row, rule.id, "num");
    cell(row, rule.chain);
    cell(row, rule.protocol);
    cell(row, rule.port, "target");
    cell(row, rule.source === null ? "any" : rule.source, "target");
    cell(row, rule.action);
    cell(row, rule.comment);
    cell(row, yes(rule.protected), "protected");
    cell(row, rule.origin);
    const actions = cell(row, "");
    // Protected rules and firewall.d rules are changed in their file: no button to fail.
    if (!rule.protected && rule.origin === "api") {
      actions.appendChild(deleteButton("delete", (button) =>
        remove("/api/v1/firewall/rules/", rule.id, "rule", button)));
    }
    body.appendChild(row);
  }
  $("rule-count").textContent = "(" + rules.length + ")";
}

function renderForwards(forwards) {
  const body = $("forward-rows");
  body.replaceChildren();
  for (const forward of forwards) {
    const row = document.createElement("tr");
    row.dataset.id = forward.id;
    cell(row, forward.id, "num");
    cell(row, forward.protocol);
    cell(row, forward.port, "target");
    cell(row, forward.to, "target");
    cell(row, forward.source === null ? "any" : forward.source, "target");
    cell(row, forward.comment);
    cell(row, forward.origin);
    const actions = cell(row, "");
    if (forward.origin === "api") {
      actions.appendChild(deleteButton("delete", (button) =>
        remove("/api/v1/firewall/forwards/", forward.id, "forward", button)));
    }
    body.appendChild(row);
  }
  $("forward-count").textContent = "(" + forwards.length + ")";
}

async function refreshFirewall() {
  try {
    const [status, rules, forwards] = await Promise.all([
      api("GET", "/api/v1/firewall"),
      api("GET", "/api/v1/firewall/rules"),
      api("GET", "/api/v1/firewall/forwards"),
    ]);
    renderFirewallStatus(status.firewall, status.warnings);
    renderRules(rules.rules || []);
    renderForwards(forwards.forwards || []);
    showTokenState();
    document.body.dataset.firewall = "loaded";
  } catch (e) {
    say("firewall: " + e.message, true);
  }
}

async function remove(path, id, kind, button) {
  button.disabled = true;
  try {
    await api("DELETE", path + id);
    say("deleted " + kind + " " + id, false);
  } catch (e) {
    say("delete " + kind + " " + id + ": " + e.message, true);
  }
  await refreshFirewall();
}

// Runs a change, says how it went, and shows the firewall as it is now.
async function change(what, method, path, body, done) {
  try {
    const reply = await api(method, path, body);
    const warnings = (reply.warnings || []).join(" ");
    say(done(reply) + (warnings ? " — " + warnings : ""), false);
    return reply;
  } catch (e) {
    say(what + ": " + e.message, true);
    return null;
  } finally {
    await refreshFirewall();
  }
}

$("firewall-toggle").addEventListener("click", async (event) => {
  event.target.disabled = true;
  if (event.target.dataset.action === "disable") {
    await change("turn the firewall off", "POST", "/api/v1/firewall/disable", undefined,
      () => "firewall off: every port open, bans still enforced");
    return;
  }
  const within = $("firewall-within").value.trim();
  await change("turn the firewall on", "POST", "/api/v1/firewall/enable",
    within ? { confirm_within: within } : undefined,
    () => within ? "firewall on: click \"Keep it on\" within " + within + ", or it turns itself off"
      : "firewall on");
});

$("firewall-confirm").addEventListener("click", async (event) => {
  event.target.disabled = true;
  await change("keep the firewall on", "POST", "/api/v1/firewall/confirm", undefined,
    () => "firewall on, kept");
});

// The value of an optional field: left out when empty.
function optional(body, key, id) {
  const value = $(id).value.trim();
  if (value) body[key] = value;
}

$("rule-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    chain: $("rule-chain").value,
    protocol: $("rule-protocol").value,
    port: $("rule-port").value.trim(),
    action: $("rule-action").value,
  };
  optional(body, "source", "rule-source");
  optional(body, "comment", "rule-comment");
  const reply = await change("add the rule", "POST", "/api/v1/firewall/rules", body,
    (r) => "added rule " + r.id);
  if (reply) {
    for (const id of ["rule-port", "rule-source", "rule-comment"]) $(id).value = "";
  }
});

$("forward-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    protocol: $("forward-protocol").value,
    port: $("forward-port").value.trim(),
    to: $("forward-to").value.trim(),
  };
  optional(body, "source", "forward-source");
  optional(body, "comment", "forward-comment");
  const reply = await change("add the forward", "POST", "/api/v1/firewall/forwards", body,
    (r) => "added forward " + r.id);
  if (reply) {
    for (const id of ["forward-port", "forward-to", "forward-source", "forward-comment"]) {
      $(id).value = "";
    }
  }
});

document.addEventListener("nftjail-refresh", refreshFirewall);
// Each second while an enable waits: the countdown, and the rollback seen when it comes.
setInterval(() => {
  if (!rollbackAt) return;
  showPending();
  if (Date.now() > rollbackAt + 1000) refreshFirewall();
}, 1000);
refreshFirewall();
