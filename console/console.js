// vds console: the whole client, hand-written, no build step, no dependencies.
//
// - The API token is asked for once and kept in sessionStorage (this tab only); every call
//   sends it as `Authorization: Bearer`, never in a URL.
// - The event stream (`GET /v1/events`, server-sent events) is read with fetch() and a stream
//   reader, because EventSource cannot send an Authorization header. Each event refreshes the
//   views; the stream reconnects after a pause when it ends.
// - Every failed call shows the API's error body: the HRESULT's name, its code and the message.
// - Text from the API only ever goes into the page as text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "vds-console-token";
const POLL_MS = 2000;
const SPARK_POINTS = 60;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  subsystems: [],
  controllers: [],
  drives: [],
  pools: [],
  targets: [],
  portalGroups: {}, // target id -> [portal group]
  portals: [],
  luns: [],
  jobs: [],
  sessions: [],
  selectedLun: null,
  // session key -> { last: counters, t: ms, read: [], write: [] } (bytes per second)
  rates: new Map(),
  targetRates: new Map(), // target id -> { read: [], write: [] }
  // LUN id -> { last: counters, t: ms, read: [], write: [] (bytes per second),
  //             rlat: [], wlat: [] (mean ms per poll), inFlight, errors } from /metrics
  lunRates: new Map(),
  lunMetricsError: null, // why /metrics could not be read, shown in the LUN pane
  events: 0,
  pendingEvents: [], // { id, what (span), departed, tries } of events not yet named
  names: new Map(), // object id -> friendly name, kept after the object goes
  streamAbort: null,
  refreshTimer: null,
  pollTimer: null,
};

// ---- small DOM helpers --------------------------------------------------------------------

const $ = (sel) => document.querySelector(sel);

/** An element with attributes and children; strings become text nodes (never markup). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function bytes(n) {
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${BYTE_UNITS[i]}`;
}

function shortId(id) {
  return String(id || "").slice(0, 8);
}

/** A coloured badge for a status or health value. */
function badge(value) {
  const v = String(value || "unknown");
  let kind = "off";
  if (["online", "healthy", "succeeded", "stable", "running"].includes(v)) kind = "ok";
  else if (/fail|bad|error|missing|corrupt|lost|not_ready/.test(v)) kind = "bad";
  else if (/degrad|rebuild|pending|partial|stale|warn|regenerat|queued|cancel|not_found|unknown/.test(v))
    kind = "warn";
  return h("span", { class: `badge badge-${kind}`, "data-value": v }, v.replace(/_/g, " "));
}

function cell(label, ...children) {
  return h("td", { "data-label": label }, ...children);
}

// ---- the API ------------------------------------------------------------------------------

/** An API failure, as the error body names it. */
class ApiFailure extends Error {
  constructor(status, name, hresult, message) {
    super(message);
    this.status = status;
    this.name = name;
    this.hresult = hresult;
  }
}

/** Calls the API; the answer is parsed as JSON, or returned as text when `asText` (/metrics). */
async function api(method, path, body, asText) {
  const headers = { Authorization: `Bearer ${state.token}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiFailure(0, "NETWORK", "", `${method} ${path}: ${e.message}`);
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch (_) {
      json = null;
    }
  }
  if (!resp.ok) {
    const e = json && json.error;
    const failure = e
      ? new ApiFailure(resp.status, e.name, e.hresult, e.message)
      : new ApiFailure(resp.status, `HTTP ${resp.status}`, "", text.slice(0, 300));
    if (resp.status === 401) signOut(`The token was refused: ${failure.name} (${failure.hresult}): ${failure.message}`);
    throw failure;
  }
  return asText ? text : json;
}

/** Shows a failure with its HRESULT name, code and message, until dismissed. */
function showError(what, err) {
  const box = $("#errors");
  const name = err instanceof ApiFailure ? err.name : "Error";
  const code = err instanceof ApiFailure && err.hresult ? ` (${err.hresult})` : "";
  const item = h(
    "div",
    { class: "error", "data-testid": "error", "data-hresult-name": name },
    h(
      "div",
      { class: "what" },
      h("div", {}, what),
      h("span", { class: "hr-name" }, name),
      code,
      ": ",
      err.message || "",
    ),
    h("button", { type: "button", class: "danger", onclick: () => item.remove() }, "Dismiss"),
  );
  box.prepend(item);
  while (box.children.length > 5) box.lastChild.remove();
}

/** Runs an action; a failure is shown, then the views refresh either way. */
async function act(what, fn) {
  try {
    const r = await fn();
    if (r && r.state && r.operation) trackJob(what, r);
    return r;
  } catch (e) {
    showError(what, e);
    return null;
  } finally {
    scheduleRefresh(0);
  }
}

/** A job answered with 202: shown in the jobs list; its failure is shown as an error. */
async function trackJob(what, job) {
  for (let i = 0; i < 600 && (job.state === "running" || job.state === "queued"); i++) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      job = await api("GET", `/v1/jobs/${job.id}`);
    } catch (e) {
      showError(what, e);
      return;
    }
  }
  if (job.state !== "succeeded" && job.name && job.name !== "S_OK") {
    showError(what, new ApiFailure(200, job.name, job.hresult, job.message || job.state));
  }
  scheduleRefresh(0);
}

// ---- loading the model ----------------------------------------------------------------------

async function loadAll() {
  const subsystems = await api("GET", "/v1/subsystems");
  const per = await Promise.all(
    subsystems.map(async (s) => {
      const base = `/v1/subsystems/${s.id}`;
      const [controllers, drives, pools, targets, portals] = await Promise.all([
        api("GET", `${base}/controllers`),
        api("GET", `${base}/drives`),
        api("GET", `${base}/pools`),
        api("GET", `${base}/targets`),
        api("GET", `${base}/portals`),
      ]);
      return { controllers, drives, pools, targets, portals };
    }),
  );
  const [luns, jobs] = await Promise.all([api("GET", "/v1/luns"), api("GET", "/v1/jobs")]);
  state.subsystems = subsystems;
  state.controllers = per.flatMap((p) => p.controllers);
  state.drives = per.flatMap((p) => p.drives);
  state.pools = per.flatMap((p) => p.pools);
  state.targets = per.flatMap((p) => p.targets);
  state.portals = per.flatMap((p) => p.portals);
  state.luns = luns;
  state.jobs = jobs;
  const groups = await Promise.all(
    state.targets.map((t) => api("GET", `/v1/targets/${t.id}/portal-groups`).catch(() => [])),
  );
  state.portalGroups = {};
  state.targets.forEach((t, i) => (state.portalGroups[t.id] = groups[i]));
}

function scheduleRefresh(delay) {
  if (state.refreshTimer) clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, delay === undefined ? 150 : delay);
}

async function refresh() {
  state.refreshTimer = null;
  if (!state.token) return;
  try {
    await loadAll();
    renderAll();
  } catch (e) {
    if (state.token) showError("Loading the array", e);
  }
}

// ---- rendering: the array ---------------------------------------------------------------------

/**
 * The views are rebuilt from the API after every event: what the operator has typed or picked
 * but not yet sent (an input with `data-keep`, marked `data-dirty` on input) and the focus are
 * carried over to the rebuilt element with the same key, so an event never wipes a form.
 */
function keepingInput(render) {
  const kept = new Map();
  for (const el of document.querySelectorAll("[data-keep][data-dirty]")) {
    kept.set(el.dataset.keep, { value: el.value, checked: el.checked });
  }
  const active = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.keep : null;
  render();
  for (const el of document.querySelectorAll("[data-keep]")) {
    const k = kept.get(el.dataset.keep);
    if (k) {
      el.value = k.value;
      el.checked = k.checked;
      el.dataset.dirty = "1";
    }
    if (active && el.dataset.keep === active) el.focus();
  }
}

/** Sending a form makes its inputs clean again: the next rebuild shows the API's values. */
function sent(...inputs) {
  for (const i of inputs) delete i.dataset.dirty;
}

function renderAll() {
  keepingInput(renderViews);
  for (const list of [state.luns, state.targets, state.controllers, state.drives, state.pools]) {
    for (const o of list) state.names.set(o.id, o.friendly_name);
  }
  for (const p of state.portals) state.names.set(p.id, portalAddr(p));
  describeEvents();
}

function renderViews() {
  renderSubsystems();
  renderLuns();
  renderLunDetail();
  renderControllers();
  renderDrives();
  renderPools();
  renderPortals();
  renderTargets();
  renderJobs();
}

function statusSelect(current, values, onset, label, key) {
  const sel = h(
    "select",
    { "aria-label": label, "data-keep": key },
    values.map((v) => h("option", { value: v, selected: v === current }, v)),
  );
  return h(
    "span",
    { class: "actions" },
    sel,
    h("button", { type: "button", class: "secondary", onclick: () => {
      sent(sel);
      onset(sel.value);
    } }, "Set"),
  );
}

function renderSubsystems() {
  const box = clear($("#subsystems"));
  for (const s of state.subsystems) {
    box.append(
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, "Name"),
        h("dd", {}, s.friendly_name),
        h("dt", {}, "Identification"),
        h("dd", { class: "mono" }, s.identification),
        h("dt", {}, "Status"),
        h("dd", {}, badge(s.status), " ", badge(s.health)),
        h("dt", {}, "Objects"),
        h(
          "dd",
          {},
          `${state.controllers.length} controllers, ${state.drives.length} drives, ` +
            `${state.pools.length} pools, ${state.targets.length} targets, ` +
            `${state.portals.length} portals, ${state.luns.length} LUNs`,
        ),
        h("dt", {}, "Flags"),
        h("dd", { class: "mono" }, (s.flags || []).join(" ")),
      ),
    );
  }
}

function targetName(id) {
  const t = state.targets.find((t) => t.id === id);
  return t ? t.friendly_name : shortId(id);
}

function renderLuns() {
  const body = clear($("#luns tbody"));
  $("#luns").classList.add("stack");
  if (state.luns.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No LUNs.")));
  }
  for (const l of state.luns) {
    const tr = h(
      "tr",
      { "data-lun": l.id, "data-name": l.friendly_name, class: state.selectedLun === l.id ? "selected" : "" },
      cell(
        "Name",
        h(
          "button",
          { type: "button", class: "linklike", onclick: () => selectLun(l.id) },
          l.friendly_name,
        ),
      ),
      cell("Size", bytes(l.size_bytes)),
      cell("Type", l.type),
      cell("Status", badge(l.status)),
      cell("Health", badge(l.health)),
      cell("Mask", h("code", {}, l.unmasking_list || "")),
      cell("Targets", (l.targets || []).map(targetName).join(", ")),
      cell("I/O", lunIoCell(l)),
      cell(
        "Actions",
        h(
          "span",
          { class: "actions" },
          statusSelect(l.status, ["online", "offline"], (v) => setLunStatus(l, v), `Status of ${l.friendly_name}`, `lun-status-${l.id}`),
          h("button", { type: "button", class: "danger", onclick: () => deleteLun(l) }, "Delete"),
        ),
      ),
    );
    body.append(tr);
  }
}

function setLunStatus(l, status) {
  return act(`Set the status of LUN ${l.friendly_name} to ${status}`, () =>
    api("POST", `/v1/luns/${l.id}/status`, { status }),
  );
}

function deleteLun(l) {
  if (!window.confirm(`Delete LUN ${l.friendly_name}? Its data is lost.`)) return;
  return act(`Delete LUN ${l.friendly_name}`, () => api("DELETE", `/v1/luns/${l.id}`));
}

function selectLun(id) {
  state.selectedLun = id;
  keepingInput(() => {
    renderLuns();
    renderLunDetail();
  });
  $("#lun-detail").scrollIntoView({ block: "nearest" });
}

function renderLunDetail() {
  const sec = $("#lun-detail");
  const l = state.luns.find((x) => x.id === state.selectedLun);
  if (!l) {
    sec.hidden = true;
    return;
  }
  sec.hidden = false;
  $("#lun-detail-title").textContent = `LUN ${l.friendly_name}`;
  const body = clear($("#lun-detail-body"));
  const mask = h("input", { value: l.unmasking_list || "", "aria-label": "Unmasking list", size: 40, "data-keep": `mask-${l.id}` });
  const targetBoxes = state.targets
    .filter((t) => t.subsystem === l.subsystem)
    .map((t) =>
      h(
        "label",
        {},
        h("input", { type: "checkbox", value: t.id, checked: (l.targets || []).includes(t.id), "data-keep": `lun-target-${l.id}-${t.id}` }),
        ` ${t.friendly_name}`,
      ),
    );
  body.append(
    h(
      "dl",
      { class: "kv" },
      h("dt", {}, "ID"),
      h("dd", { class: "mono" }, l.id),
      h("dt", {}, "Identification"),
      h("dd", { class: "mono" }, l.identification),
      h("dt", {}, "Status"),
      h("dd", {}, badge(l.status), " ", badge(l.health), " ", badge(l.transition_state)),
      h("dt", {}, "Size"),
      h("dd", {}, `${bytes(l.size_bytes)} (${l.size_bytes} bytes, block ${l.block_size})`),
      h("dt", {}, "Type"),
      h("dd", {}, `${l.type}${l.thin ? ", thin" : ""}${l.read_only ? ", read-only" : ""}`),
      h("dt", {}, "Backing"),
      h("dd", { class: "mono" }, l.backing ? `${l.backing.kind} ${l.backing.path || l.backing.image || ""}` : ""),
      h("dt", {}, "Plexes"),
      h("dd", {}, (l.plexes || []).map((p) => h("span", {}, `${shortId(p.id)} ${p.type} `, badge(p.status), " "))),
      h("dt", {}, "Flags"),
      h("dd", { class: "mono" }, (l.flags || []).join(" ")),
      h("dt", {}, "Paths"),
      h("dd", { id: "lun-paths", "data-testid": "lun-paths" }, h("span", { class: "empty" }, "…")),
      h("dt", {}, "I/O"),
      h("dd", { id: "lun-io", "data-testid": "lun-io" }, lunIoParts(l)),
    ),
    h(
      "form",
      {
        class: "inline-form",
        "data-testid": "mask-form",
        onsubmit: (ev) => {
          ev.preventDefault();
          sent(mask);
          act(`Set the unmasking list of ${l.friendly_name}`, () =>
            api("PATCH", `/v1/luns/${l.id}`, { unmasking_list: mask.value }),
          );
        },
      },
      h("label", {}, "Unmasking list (initiator IQNs separated by ';', or '*' for every initiator)", mask),
      h("button", { type: "submit" }, "Set mask"),
    ),
    h(
      "form",
      {
        class: "inline-form",
        onsubmit: (ev) => {
          ev.preventDefault();
          const boxes = targetBoxes.map((lb) => lb.querySelector("input"));
          sent(...boxes);
          const ids = boxes.filter((i) => i.checked).map((i) => i.value);
          act(`Set the targets of ${l.friendly_name}`, () => api("PUT", `/v1/luns/${l.id}/targets`, { targets: ids }));
        },
      },
      h("fieldset", {}, h("legend", {}, "Targets"), targetBoxes.length ? targetBoxes : h("span", { class: "empty" }, "no targets")),
      h("button", { type: "submit" }, "Set targets"),
    ),
  );
  loadLunPaths(l);
}

/** The LUN's live paths (`GET /v1/luns/{id}/paths`): which sessions reach it, through where. */
async function loadLunPaths(l) {
  let paths;
  try {
    paths = await api("GET", `/v1/luns/${l.id}/paths`);
  } catch (e) {
    paths = null;
  }
  const box = document.getElementById("lun-paths");
  if (!box || state.selectedLun !== l.id) return;
  if (paths === null) {
    box.replaceChildren(h("span", { class: "empty" }, "not available"));
  } else if (paths.length === 0) {
    box.replaceChildren(h("span", { class: "empty" }, "no session reaches this LUN"));
  } else {
    box.replaceChildren(
      ...paths.map((p) =>
        h("div", { "data-initiator": p.initiator }, h("code", {}, `${p.initiator} ${p.initiator_address}:${p.initiator_port}`), " → ", targetName(p.target), " ", badge(p.status)),
      ),
    );
  }
}

function renderControllers() {
  const body = clear($("#controllers tbody"));
  $("#controllers").classList.add("stack");
  for (const c of state.controllers) {
    body.append(
      h(
        "tr",
        { "data-controller": c.id },
        cell("Name", c.friendly_name),
        cell("Status", badge(c.status)),
        cell("Health", badge(c.health)),
        cell("Ports", String(c.number_of_ports)),
        cell(
          "Set status",
          statusSelect(c.status, ["online", "offline"], (v) =>
            act(`Set the status of controller ${c.friendly_name} to ${v}`, () =>
              api("POST", `/v1/controllers/${c.id}/status`, { status: v }),
            ), `Status of ${c.friendly_name}`, `controller-status-${c.id}`),
        ),
      ),
    );
  }
}

function renderDrives() {
  const body = clear($("#drives tbody"));
  $("#drives").classList.add("stack");
  for (const d of state.drives) {
    body.append(
      h(
        "tr",
        {},
        cell("Name", d.friendly_name),
        cell("Kind", d.kind || ""),
        cell("Size", bytes(d.size_bytes)),
        cell("Bus/slot", `${d.bus_number}/${d.slot_number}`),
        cell("Status", badge(d.status)),
        cell("Health", badge(d.health)),
      ),
    );
  }
}

function renderPools() {
  const body = clear($("#pools tbody"));
  $("#pools").classList.add("stack");
  for (const p of state.pools) {
    body.append(
      h(
        "tr",
        {},
        cell("Name", p.friendly_name),
        cell("Type", p.type),
        cell("Status", badge(p.status)),
        cell("Health", badge(p.health)),
        cell("Used / managed", `${bytes(p.consumed_space)} / ${bytes(p.total_managed_space)}`),
      ),
    );
  }
}

function portalAddr(p) {
  return p.address_type === "ipv6" ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`;
}

function renderPortals() {
  const body = clear($("#portals tbody"));
  $("#portals").classList.add("stack");
  for (const p of state.portals) {
    body.append(
      h(
        "tr",
        { "data-portal": p.id },
        cell("Address", h("code", {}, portalAddr(p))),
        cell("Status", badge(p.status)),
        cell("Portal groups", (p.portal_groups || []).map(shortId).join(", ")),
        cell(
          "Set status",
          statusSelect(p.status, ["online", "offline"], (v) =>
            act(`Set the status of portal ${portalAddr(p)} to ${v}`, () =>
              api("POST", `/v1/portals/${p.id}/status`, { status: v }),
            ), `Status of portal ${portalAddr(p)}`, `portal-status-${p.id}`),
        ),
      ),
    );
  }
}

function renderTargets() {
  const box = clear($("#targets"));
  const sel = $("#create-lun select[name=target]");
  const keep = sel.value;
  clear(sel).append(h("option", { value: "" }, "(none)"));
  for (const t of state.targets) {
    sel.append(h("option", { value: t.id, selected: t.id === keep }, t.friendly_name));
    const groups = state.portalGroups[t.id] || [];
    const secret = h("input", { type: "password", "aria-label": `CHAP secret of ${t.friendly_name}`, placeholder: "12 to 16 characters", autocomplete: "new-password", "data-keep": `secret-${t.id}` });
    const iname = h("input", { "aria-label": "Initiator name", placeholder: "iqn.… of the initiator", "data-keep": `initiator-${t.id}` });
    const isecret = h("input", { type: "password", "aria-label": "Initiator's secret", placeholder: "secret (empty: forget)", autocomplete: "new-password", "data-keep": `initiator-secret-${t.id}` });
    box.append(
      h(
        "div",
        { class: "target", "data-target": t.id },
        h("dl", { class: "kv" },
          h("dt", {}, "Target"), h("dd", {}, h("strong", {}, t.friendly_name), " ", h("code", {}, t.iscsi_name)),
          h("dt", {}, "CHAP"), h("dd", {}, t.chap_enabled ? badge("chap_enabled") : badge("no_chap")),
          h("dt", {}, "LUNs"), h("dd", {}, (t.luns || []).map((id) => {
            const l = state.luns.find((x) => x.id === id);
            return l ? l.friendly_name : shortId(id);
          }).join(", ") || "none"),
          h("dt", {}, "Portal groups"),
          h("dd", {}, groups.length === 0 ? "none" : groups.map((g) =>
            h("div", {}, `tag ${g.tag}: `, (g.portals || []).map((pid) => {
              const p = state.portals.find((x) => x.id === pid);
              return h("code", {}, p ? portalAddr(p) + " " : shortId(pid) + " ");
            })))),
        ),
        h("form", { class: "inline-form", onsubmit: (ev) => {
          ev.preventDefault();
          const v = secret.value;
          secret.value = "";
          sent(secret);
          act(`Set the CHAP secret of ${t.friendly_name}`, () =>
            api("PUT", `/v1/targets/${t.id}/shared-secret`, v ? { secret: v } : {}));
        } },
          h("label", {}, "Target CHAP secret (empty: clear)", secret),
          h("button", { type: "submit" }, "Set target secret")),
        h("form", { class: "inline-form", onsubmit: (ev) => {
          ev.preventDefault();
          const v = isecret.value;
          isecret.value = "";
          sent(iname, isecret);
          act(`Set the CHAP secret of initiator ${iname.value} on ${t.friendly_name}`, () =>
            api("PUT", `/v1/targets/${t.id}/initiator-secrets/${encodeURIComponent(iname.value)}`, v ? { secret: v } : {}));
        } },
          h("label", {}, "Initiator", iname),
          h("label", {}, "Initiator's CHAP secret", isecret),
          h("button", { type: "submit" }, "Set initiator secret")),
      ),
    );
  }
}

// ---- jobs and events --------------------------------------------------------------------------

function renderJobs() {
  const list = clear($("#jobs"));
  if (state.jobs.length === 0) list.append(h("li", { class: "empty" }, "No jobs."));
  // The newest 50: the daemon remembers more than a person reads.
  for (const j of state.jobs.slice(-50).reverse()) {
    list.append(
      h(
        "li",
        { "data-job": j.id },
        h(
          "div",
          {},
          h("strong", {}, j.operation.replace(/_/g, " ")),
          " ",
          badge(j.state),
          " ",
          j.output && j.output.friendly_name ? j.output.friendly_name : h("code", {}, shortId(j.object)),
          ` ${j.percent || 0}%`,
        ),
        h("progress", { max: 100, value: j.percent || 0, "aria-label": `${j.operation} progress` }, `${j.percent}%`),
        j.name && j.name !== "S_OK" && j.state !== "running"
          ? h("div", { class: "hr-name" }, `${j.name} (${j.hresult}) ${j.message || ""}`)
          : null,
      ),
    );
  }
}

function addEvent(kind, data) {
  const list = $("#events");
  let ev = null;
  try {
    ev = JSON.parse(data);
  } catch (_) {
    ev = null;
  }
  const time = ev && ev.time ? new Date(ev.time) : new Date();
  const text =
    kind === "lagged"
      ? `missed ${data} events (the console reloads the array)`
      : ev
        ? `${ev.object_type} ${ev.event}${ev.status ? " → " + ev.status : ""} ${shortId(ev.id)}`
        : data;
  const what = h("span", { class: "what" });
  const li = h(
    "li",
    { "data-event": ev ? ev.event : kind, "data-object": ev ? ev.id : "" },
    h("time", { datetime: time.toISOString() }, time.toLocaleTimeString()),
    text,
    " ",
    what,
  );
  list.prepend(li);
  while (list.children.length > 300) list.lastChild.remove();
  state.events++;
  // The event names only the object; its name and status are filled in by the reload the
  // event causes (a departed object keeps the name it had).
  if (ev && ev.id) state.pendingEvents.push({ id: ev.id, what, departed: ev.event === "depart" || ev.event === "removed", tries: 0 });
}

/** Every object the console knows, by id. */
function objectById(id) {
  for (const list of [state.luns, state.targets, state.portals, state.controllers, state.drives, state.pools, state.subsystems]) {
    const o = list.find((x) => x.id === id);
    if (o) return o;
  }
  return null;
}

/** Names the objects of the events shown since the last reload (and remembers the names). */
function describeEvents() {
  const still = [];
  for (const p of state.pendingEvents) {
    const o = objectById(p.id);
    const name = o ? o.friendly_name || (o.address ? portalAddr(o) : "") : state.names.get(p.id);
    if (name) p.what.replaceChildren(`(${name})`, o && o.status && !p.departed ? " " : "", o && o.status && !p.departed ? badge(o.status) : "");
    else if (p.tries++ < 3) still.push(p);
  }
  state.pendingEvents = still;
}

function setStreamState(live, text) {
  const el = $("#stream-state");
  el.hidden = false;
  el.textContent = text;
  el.className = `pill ${live ? "pill-live" : "pill-muted"}`;
  el.dataset.live = live ? "yes" : "no";
}

/** Reads `GET /v1/events` with fetch (it sends the token, EventSource cannot). */
async function streamEvents() {
  while (state.token) {
    const abort = new AbortController();
    state.streamAbort = abort;
    try {
      const resp = await fetch("/v1/events", {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
        signal: abort.signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (resp.status === 401) {
        signOut("The token was refused by the event stream.");
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      setStreamState(true, "events: live");
      scheduleRefresh(0); // anything missed while not connected
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          dispatch(buf.slice(0, at));
          buf = buf.slice(at + 2);
        }
        if (buf.length > 1 << 20) buf = ""; // a broken stream cannot grow without bound
      }
    } catch (e) {
      if (abort.signal.aborted) {
        setStreamState(false, "events: off");
        return;
      }
    }
    setStreamState(false, "events: reconnecting");
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** One server-sent event: `event:` (default `message`) and `data:` lines. */
function dispatch(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return;
  addEvent(kind, data.join("\n"));
  scheduleRefresh();
}

// ---- sessions and sparklines ----------------------------------------------------------------

function push(arr, v) {
  arr.push(v);
  while (arr.length > SPARK_POINTS) arr.shift();
}

function sessionKey(s) {
  return `${s.target}|${s.initiator}|${s.isid}|${s.tsih}`;
}

async function pollSessions() {
  if (!state.token) return;
  let sessions;
  try {
    sessions = await api("GET", "/v1/sessions");
  } catch (e) {
    return; // shown once by the array refresh, not every two seconds
  }
  const now = performance.now();
  const seen = new Set();
  const perTarget = new Map();
  for (const s of sessions) {
    const key = sessionKey(s);
    seen.add(key);
    let r = state.rates.get(key);
    if (!r) {
      r = { last: s.counters, t: now, read: [], write: [] };
      state.rates.set(key, r);
    } else {
      const dt = Math.max((now - r.t) / 1000, 0.001);
      push(r.read, Math.max(0, s.counters.bytes_read - r.last.bytes_read) / dt);
      push(r.write, Math.max(0, s.counters.bytes_written - r.last.bytes_written) / dt);
      r.last = s.counters;
      r.t = now;
    }
    const agg = perTarget.get(s.target) || { read: 0, write: 0 };
    agg.read += r.read.length ? r.read[r.read.length - 1] : 0;
    agg.write += r.write.length ? r.write[r.write.length - 1] : 0;
    perTarget.set(s.target, agg);
  }
  for (const k of [...state.rates.keys()]) if (!seen.has(k)) state.rates.delete(k);
  for (const t of state.targets) {
    const agg = perTarget.get(t.id) || { read: 0, write: 0 };
    const tr = state.targetRates.get(t.id) || { read: [], write: [] };
    push(tr.read, agg.read);
    push(tr.write, agg.write);
    state.targetRates.set(t.id, tr);
  }
  state.sessions = sessions;
  renderSessions();
}

/** A sparkline of read (blue) and write (brown) values, drawn as SVG through the DOM. */
function sparkline(read, write, label, fmt = (v) => `${bytes(v)}/s`, floor = 1) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${SPARK_POINTS} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(floor, ...read, ...write);
  for (const [series, cls] of [[read, "r"], [write, "w"]]) {
    const line = document.createElementNS(NS, "polyline");
    const off = SPARK_POINTS - series.length;
    line.setAttribute("points", series.map((v, i) => `${off + i},${(38 - (v / max) * 36).toFixed(1)}`).join(" "));
    line.setAttribute("class", cls);
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
  }
  const last = (a) => (a.length ? a[a.length - 1] : 0);
  return h(
    "div",
    { class: "spark" },
    svg,
    h("div", { class: "legend" }, `read ${fmt(last(read))} · write ${fmt(last(write))}`),
  );
}

// ---- per-LUN throughput and latency, from the LUNs' series in /metrics ------------------------

/** The label set of one Prometheus sample (`a="x",b="y\"z"`), or null when malformed. */
function parseLabels(text) {
  const out = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0 || text[eq + 1] !== '"') return null;
    const key = text.slice(i, eq).trim();
    let j = eq + 2;
    let v = "";
    while (j < text.length && text[j] !== '"') {
      if (text[j] === "\\" && j + 1 < text.length) {
        v += text[j + 1] === "n" ? "\n" : text[j + 1];
        j += 2;
      } else v += text[j++];
    }
    if (j >= text.length) return null;
    out[key] = v;
    i = j + 1;
    if (text[i] === ",") i++;
  }
  return out;
}

/**
 * The per-LUN counters of a /metrics exposition: LUN id -> { read, written, rsum, rcount, wsum,
 * wcount, inFlight, errors }. Only the `vds_lun_*` samples are read; docs/INTERFACE.md "Metrics".
 */
function parseLunMetrics(text) {
  const luns = new Map();
  for (const line of text.split("\n")) {
    if (!line.startsWith("vds_lun_")) continue;
    const open = line.indexOf("{");
    const close = line.lastIndexOf("}");
    if (open < 0 || close < open) continue;
    const name = line.slice(0, open);
    const labels = parseLabels(line.slice(open + 1, close));
    const value = Number(line.slice(close + 1).trim());
    if (!labels || !labels.lun || !Number.isFinite(value)) continue;
    let m = luns.get(labels.lun);
    if (!m) {
      m = { read: 0, written: 0, rsum: 0, rcount: 0, wsum: 0, wcount: 0, inFlight: 0, errors: 0 };
      luns.set(labels.lun, m);
    }
    if (name === "vds_lun_read_bytes_total") m.read = value;
    else if (name === "vds_lun_written_bytes_total") m.written = value;
    else if (name === "vds_lun_errors_total") m.errors += value;
    else if (name === "vds_lun_in_flight_commands") m.inFlight = value;
    else if (name === "vds_lun_command_duration_seconds_sum") m[labels.op === "read" ? "rsum" : "wsum"] = value;
    else if (name === "vds_lun_command_duration_seconds_count") m[labels.op === "read" ? "rcount" : "wcount"] = value;
  }
  return luns;
}

/** Reads /metrics and turns each LUN's counters into rates since the last poll. */
async function pollLunMetrics() {
  if (!state.token) return;
  let luns;
  try {
    luns = parseLunMetrics(await api("GET", "/metrics", undefined, true));
    state.lunMetricsError = null;
  } catch (e) {
    state.lunMetricsError = `${e.name}${e.hresult ? ` (${e.hresult})` : ""}: ${e.message}`;
    updateLunIo();
    return;
  }
  // A LUN no command has reached yet has no series: its counters are zero.
  for (const l of state.luns) {
    if (!luns.has(l.id)) luns.set(l.id, { read: 0, written: 0, rsum: 0, rcount: 0, wsum: 0, wcount: 0, inFlight: 0, errors: 0 });
  }
  const now = performance.now();
  for (const [id, m] of luns) {
    let r = state.lunRates.get(id);
    if (!r) {
      state.lunRates.set(id, { last: m, t: now, read: [], write: [], rlat: [], wlat: [], inFlight: m.inFlight, errors: m.errors });
      continue;
    }
    const dt = Math.max((now - r.t) / 1000, 0.001);
    const d = (k) => Math.max(0, m[k] - r.last[k]);
    push(r.read, d("read") / dt);
    push(r.write, d("written") / dt);
    // The mean time of the commands answered in this interval (none answered: 0).
    push(r.rlat, d("rcount") ? (d("rsum") / d("rcount")) * 1000 : 0);
    push(r.wlat, d("wcount") ? (d("wsum") / d("wcount")) * 1000 : 0);
    r.last = m;
    r.t = now;
    r.inFlight = m.inFlight;
    r.errors = m.errors;
  }
  for (const id of [...state.lunRates.keys()]) if (!luns.has(id)) state.lunRates.delete(id);
  updateLunIo();
}

const NO_RATES = { read: [], write: [], rlat: [], wlat: [], inFlight: 0, errors: 0 };

/** A latency in milliseconds, shown in µs below 1 ms. */
function ms(v) {
  if (v < 1) {
    const us = v * 1000;
    return `${us < 10 ? us.toFixed(1) : us.toFixed(0)} µs`;
  }
  return `${v < 100 ? v.toFixed(2) : v.toFixed(0)} ms`;
}

/** The LUN table's cell: the LUN's own read and write throughput. */
function lunIoCell(l) {
  const r = state.lunRates.get(l.id) || NO_RATES;
  return sparkline(r.read, r.write, `Throughput of LUN ${l.friendly_name}`);
}

/** The LUN pane's part: throughput, mean latency, commands in flight and errors. */
function lunIoParts(l) {
  if (state.lunMetricsError) {
    return [h("span", { class: "note", "data-testid": "lun-io-error" }, `Per-LUN counters unavailable: ${state.lunMetricsError}`)];
  }
  const r = state.lunRates.get(l.id) || NO_RATES;
  return [
    h("div", { class: "note" }, "Throughput"),
    h("div", { "data-testid": "lun-throughput" }, sparkline(r.read, r.write, `Throughput of LUN ${l.friendly_name}`)),
    h("div", { class: "note" }, "Mean latency of the commands answered in each 2 s"),
    h(
      "div",
      { "data-testid": "lun-latency" },
      // 0 is "none answered"; the scale starts at 1 µs.
      sparkline(r.rlat, r.wlat, `Mean latency of LUN ${l.friendly_name}`, (v) => (v ? ms(v) : "none"), 0.001),
    ),
    h("span", { class: "note", "data-testid": "lun-counts" }, `in flight ${r.inFlight} · errors ${r.errors}`),
  ];
}

/** Replaces only the I/O cells and the pane's I/O part: no form the operator is using moves. */
function updateLunIo() {
  for (const l of state.luns) {
    const td = document.querySelector(`[data-testid=luns] tr[data-lun="${l.id}"] td[data-label="I/O"]`);
    if (td) td.replaceChildren(lunIoCell(l));
  }
  const l = state.luns.find((x) => x.id === state.selectedLun);
  const box = document.getElementById("lun-io");
  if (l && box) box.replaceChildren(...lunIoParts(l));
}

function renderSessions() {
  const body = clear($("#sessions tbody"));
  $("#sessions").classList.add("stack");
  if (state.sessions.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No sessions.")));
  }
  for (const s of state.sessions) {
    const r = state.rates.get(sessionKey(s)) || { read: [], write: [] };
    body.append(
      h(
        "tr",
        { "data-session": sessionKey(s), "data-initiator": s.initiator },
        cell("Initiator", h("code", {}, s.initiator), s.initiator_alias ? ` (${s.initiator_alias})` : ""),
        cell("Target", h("code", {}, s.target_iqn)),
        cell("ISID / TSIH", h("code", {}, `${s.isid} / ${s.tsih}`)),
        cell("Connections", (s.connections || []).map((c) => h("div", {}, h("code", {}, `${c.peer_address} → ${c.local_address}`), ` ${c.auth_method}`))),
        cell("Logged in", s.login_time),
        cell("Commands", String(s.counters.commands)),
        cell("Read / written", `${bytes(s.counters.bytes_read)} / ${bytes(s.counters.bytes_written)}`),
        cell("Errors", String(s.counters.errors)),
        cell("Throughput", sparkline(r.read, r.write, `Throughput of ${s.initiator}`)),
      ),
    );
  }
  const sparks = clear($("#target-sparks"));
  for (const t of state.targets) {
    const tr = state.targetRates.get(t.id) || { read: [], write: [] };
    sparks.append(h("div", { "data-target": t.id }, h("strong", {}, t.friendly_name), sparkline(tr.read, tr.write, `Throughput of ${t.friendly_name}`)));
  }
  // Only the LUN pane's paths: the rest of the pane (its forms) stays as the operator left it.
  const l = state.luns.find((x) => x.id === state.selectedLun);
  if (l && document.getElementById("lun-paths")) loadLunPaths(l);
}

// ---- sign-in, views, start ------------------------------------------------------------------

function showView(name) {
  for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-pressed", String(b.dataset.view === name));
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
}

function signOut(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.streamAbort) state.streamAbort.abort();
  stopPolling();
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#stream-state").hidden = true;
  $("#login").hidden = false;
  const old = $("#login .error");
  if (old) old.remove();
  if (message) $("#login").append(h("div", { class: "error", role: "alert", "data-testid": "login-error" }, message));
}

async function signIn(token) {
  state.token = token;
  try {
    await api("GET", "/v1/provider");
  } catch (e) {
    if (state.token) signOut(`Sign-in failed: ${e.name}: ${e.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  await refresh();
  streamEvents();
  startPolling();
}

/**
 * Polls the sessions and /metrics (their counters feed the sparklines) and, while jobs run,
 * the jobs.
 */
function startPolling() {
  stopPolling();
  pollSessions();
  pollLunMetrics();
  state.pollTimer = setInterval(() => {
    pollSessions();
    pollLunMetrics();
    if (state.jobs.some((j) => j.state === "running" || j.state === "queued")) scheduleRefresh(0);
  }, POLL_MS);
}

/** The browser tests stop the polling to prove that a change arrives through the events. */
function stopPolling() {
  if (state.pollTimer) clearInterval(state.pollTimer);
  state.pollTimer = null;
}

function parseSize(text, unit) {
  const t = String(text).trim();
  if (!/^\d+(\.\d+)?$/.test(t)) return null;
  const n = Number(t) * Number(unit);
  return Number.isSafeInteger(Math.round(n)) ? Math.round(n) : null;
}

function init() {
  const dirty = (ev) => {
    if (ev.target.dataset && ev.target.dataset.keep) ev.target.dataset.dirty = "1";
  };
  document.addEventListener("input", dirty);
  document.addEventListener("change", dirty);
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("#token");
    const token = input.value.trim();
    input.value = "";
    if (token) signIn(token);
  });
  $("#logout").addEventListener("click", () => signOut(null));
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#create-lun").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const size = parseSize(f.size.value, f.unit.value);
    const sub = state.subsystems[0];
    if (!sub) return;
    // A size that is not a number goes to the API as given, so its own error is shown.
    const body = { size_bytes: size === null ? f.size.value : size };
    if (f.name.value.trim()) body.friendly_name = f.name.value.trim();
    if (f.target.value) body.targets = [f.target.value];
    act(`Create LUN ${body.friendly_name || ""}`.trim(), () => api("POST", `/v1/subsystems/${sub.id}/luns`, body));
  });
  if (state.token) signIn(state.token);
}

document.addEventListener("DOMContentLoaded", init);
