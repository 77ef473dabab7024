// Browser tests of the vds web console (docs/TESTING.md "Web console"): Debian's chromium,
// driven by playwright-core, against a vdsd that scripts/console-test started.
//
// Environment (set by scripts/console-test):
//   VDS_URL          the API's base URL, e.g. http://127.0.20.1:43280
//   VDS_TOKEN_FILE   the daemon's api-token file
//   VDS_PORTAL       host:port of its iSCSI portal
//   PLAYWRIGHT_DIR   the node_modules directory holding playwright-core (outside the tree)
//   ARTIFACTS        where screenshots go
//   CHROMIUM         the browser executable (default /usr/bin/chromium)
//
// Prints "PASS: name" or "FAIL: name" per scenario, then "N passed, N failed"; exits non-zero
// on any failure. A browser that cannot start is a failure, never a skip.

import { spawn } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`FAIL: environment variable ${k} is not set (run scripts/console-test)`);
    process.exit(2);
  }
  return v;
};

const URL_ = env("VDS_URL");
const TOKEN = readFileSync(env("VDS_TOKEN_FILE"), "utf8").trim();
const PORTAL = env("VDS_PORTAL");
const ARTIFACTS = env("ARTIFACTS");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const require = createRequire(join(env("PLAYWRIGHT_DIR"), "x.js"));
const { chromium } = require("playwright-core");

mkdirSync(ARTIFACTS, { recursive: true });
const results = [];
const children = [];

function fail(msg) {
  throw new Error(msg);
}

async function scenario(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`PASS: ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL: ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

/** Calls the API directly (to check what the page did, never to do its work). */
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${TOKEN}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(URL_ + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function shot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  console.log(`  screenshot ${path}`);
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in a container has no user namespaces for chromium's sandbox.
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
    timeout: 30000,
  });
  results.push(["chromium starts", true]);
  console.log(`PASS: chromium starts (${browser.version()})`);
} catch (e) {
  console.log(`FAIL: chromium starts: ${e.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}

const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.setDefaultTimeout(10000);
const consoleErrors = [];
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("dialog", (d) => d.accept());
// Nothing leaves for the network but this daemon: no CDN, no font, no analytics.
const foreign = [];
page.on("request", (r) => {
  if (!r.url().startsWith(URL_ + "/") && !r.url().startsWith("data:")) foreign.push(r.url());
});
const urlsWithToken = [];
page.on("request", (r) => {
  if (r.url().includes(TOKEN)) urlsWithToken.push(r.url());
});

const lunName = `web-${Date.now() % 100000}`;

await scenario("a wrong token is refused, the right one signs in", async () => {
  const resp = await page.goto(URL_ + "/");
  const ctype = resp.headers()["content-type"] || "";
  if (resp.status() !== 200 || !ctype.startsWith("text/html")) {
    fail(`this vdsd does not serve the console at / (${resp.status()} ${ctype}): a binary built without it?`);
  }
  await page.fill("#token", "not-the-token-000000");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("[data-testid=login-error]", { timeout: 10000 });
  const msg = await page.textContent("[data-testid=login-error]");
  if (!msg.includes("E_ACCESSDENIED")) fail(`login error without the HRESULT name: ${msg}`);
  await page.fill("#token", TOKEN);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden]) [data-testid=luns] tbody tr[data-lun]", { timeout: 10000 });
  await page.waitForSelector("[data-testid=stream-state][data-live=yes]", { timeout: 10000 });
  const stored = await page.evaluate(() => Object.keys(sessionStorage));
  if (!stored.includes("vds-console-token")) fail(`token not in sessionStorage: ${stored}`);
  const local = await page.evaluate(() => localStorage.length);
  if (local !== 0) fail("something was put in localStorage");
  // Reloading keeps the sign-in (the tab's sessionStorage): the token is asked for once.
  await page.reload();
  await page.waitForSelector("#app:not([hidden]) [data-testid=luns] tbody tr[data-lun]", { timeout: 10000 });
  if (!(await page.isHidden("#login"))) fail("asked for the token again after a reload");
  await page.waitForSelector("[data-testid=stream-state][data-live=yes]", { timeout: 10000 });
  await shot(page, "overview");
});

await scenario("create a LUN; it appears through the event stream", async () => {
  await page.click("[data-view=activity]");
  const before = await page.locator("[data-testid=events] li").count();
  await page.click("[data-view=overview]");
  await page.fill("#create-lun input[name=name]", lunName);
  await page.fill("#create-lun input[name=size]", "64");
  await page.selectOption("#create-lun select[name=unit]", "1048576");
  await page.selectOption("#create-lun select[name=target]", { label: "default" });
  await page.click("#create-lun button[type=submit]");
  const row = page.locator(`[data-testid=luns] tr[data-name="${lunName}"]`);
  await row.waitFor({ timeout: 15000 });
  await page.click("[data-view=activity]");
  const lun = (await api("GET", "/v1/luns")).json.find((l) => l.friendly_name === lunName);
  if (!lun) fail("the LUN is not in the API");
  if (lun.size_bytes !== 64 * 1048576) fail(`size ${lun.size_bytes}`);
  await page.waitForSelector(`[data-testid=events] li[data-event=arrive][data-object="${lun.id}"]`, { timeout: 10000 });
  const after = await page.locator("[data-testid=events] li").count();
  if (after <= before) fail("no new event shown");
  await page.waitForSelector(`[data-testid=jobs] li progress[value="100"]`, { timeout: 10000 });
  await page.click("[data-view=overview]");
});

await scenario("a LUN created by another client appears through SSE alone", async () => {
  // No click in the page and no polling: only the event stream can tell it.
  await page.evaluate(() => stopPolling());
  try {
    await createdElsewhereAppears();
  } finally {
    await page.evaluate(() => startPolling());
  }
});

async function createdElsewhereAppears() {
  const name = `${lunName}-cli`;
  const r = await api("POST", (await firstSubsystemPath()) + "/luns?wait=true", { size_bytes: 1 << 20, friendly_name: name });
  if (r.status !== 201) fail(`create: ${r.status} ${JSON.stringify(r.json)}`);
  await page.locator(`[data-testid=luns] tr[data-name="${name}"]`).waitFor({ timeout: 10000 });
  const del = await api("DELETE", `/v1/luns/${r.json.id}`);
  if (del.status >= 300) fail(`delete: ${del.status}`);
  await page.locator(`[data-testid=luns] tr[data-name="${name}"]`).waitFor({ state: "detached", timeout: 10000 });
}

async function firstSubsystemPath() {
  const s = (await api("GET", "/v1/subsystems")).json[0];
  return `/v1/subsystems/${s.id}`;
}

await scenario("set the LUN OFFLINE: the status changes and the event is shown", async () => {
  const row = page.locator(`[data-testid=luns] tr[data-name="${lunName}"]`);
  await row.locator("select").selectOption("offline");
  await row.locator("button", { hasText: "Set" }).click();
  await page.waitForSelector(`[data-testid=luns] tr[data-name="${lunName}"] .badge[data-value=offline]`, { timeout: 10000 });
  const lun = (await api("GET", "/v1/luns")).json.find((l) => l.friendly_name === lunName);
  if (lun.status !== "offline") fail(`the API says ${lun.status}`);
  await page.click("[data-view=activity]");
  const ev = page.locator(`[data-testid=events] li[data-object="${lun.id}"]:not([data-event=arrive])`);
  await ev.first().waitFor({ timeout: 10000 });
  // The event is named after the reload it caused, with the status it left the LUN in.
  await ev.first().locator(".badge[data-value=offline]").waitFor({ timeout: 10000 });
  if (!(await ev.first().textContent()).includes(lunName)) fail("the event does not name the LUN");
  console.log(`  event: ${(await ev.first().textContent()).trim()}`);
  await shot(page, "activity");
  await page.click("[data-view=overview]");
  await row.locator("button.linklike").click();
  await page.waitForSelector("[data-testid=lun-detail]:not([hidden])");
  const detail = await page.textContent("[data-testid=lun-detail]");
  if (!detail.includes(lun.id) || !detail.includes("offline")) fail("the detail does not show the LUN");
  await page.locator("[data-testid=lun-detail]").scrollIntoViewIfNeeded();
  await shot(page, "lun");
});

await scenario("set the unmasking list of the LUN (a mask)", async () => {
  const mask = "iqn.2026-12.test:console-a;iqn.2026-12.test:console-b";
  await page.fill("[data-testid=mask-form] input", mask);
  // An event rebuilds the views while the operator types: what was typed stays.
  const other = await api("POST", (await firstSubsystemPath()) + "/luns?wait=true", { size_bytes: 1 << 20, friendly_name: `${lunName}-typing` });
  await page.locator(`[data-testid=luns] tr[data-name="${lunName}-typing"]`).waitFor();
  const typed = await page.inputValue("[data-testid=mask-form] input");
  if (typed !== mask) fail(`an event wiped the typed mask: ${typed}`);
  await api("DELETE", `/v1/luns/${other.json.id}`);
  await page.click("[data-testid=mask-form] button[type=submit]");
  await page.waitForFunction(
    (m) => [...document.querySelectorAll("[data-testid=luns] td[data-label=Mask]")].some((td) => td.textContent === m),
    mask,
    { timeout: 10000 },
  );
  const lun = (await api("GET", "/v1/luns")).json.find((l) => l.friendly_name === lunName);
  if (lun.unmasking_list !== mask) fail(`the API says ${lun.unmasking_list}`);
});

await scenario("an error is shown with its HRESULT name (bad size, CHAP secret, delete twice)", async () => {
  await page.fill("#create-lun input[name=name]", "");
  await page.fill("#create-lun input[name=size]", "0");
  await page.click("#create-lun button[type=submit]");
  await page.waitForSelector("[data-testid=error][data-hresult-name=E_INVALIDARG]", { timeout: 10000 });
  const text = await page.textContent("[data-testid=error]");
  if (!text.includes("0x80070057") || !text.includes("size_bytes")) fail(`error text: ${text}`);
  // A CHAP secret that is too short: the API's own message.
  const t = page.locator("[data-testid=targets] .target").first();
  await t.locator("input[type=password]").first().fill("short");
  await t.locator("button", { hasText: "Set target secret" }).click();
  await page.waitForFunction(() => document.querySelector("[data-testid=error]").textContent.includes("12 to 16"), null, { timeout: 10000 });
  // Delete the LUN twice: another client deletes it while the page has not heard (its event
  // stream and polling stopped), then the page's Delete is answered VDS_E_OBJECT_DELETED,
  // shown with its name, and the page's reload drops the row.
  const row = page.locator(`[data-testid=luns] tr[data-name="${lunName}"]`);
  const lun = (await api("GET", "/v1/luns")).json.find((l) => l.friendly_name === lunName);
  await page.evaluate(() => {
    stopPolling();
    state.streamAbort.abort();
  });
  try {
    await page.waitForSelector("[data-testid=stream-state][data-live=no]");
    const first = await api("DELETE", `/v1/luns/${lun.id}`);
    if (first.status !== 204) fail(`first delete: ${first.status} ${JSON.stringify(first.json)}`);
    await row.locator("button.danger").click();
    await page.waitForSelector("[data-testid=error][data-hresult-name=VDS_E_OBJECT_DELETED]", { timeout: 10000 });
    await row.waitFor({ state: "detached", timeout: 10000 });
  } finally {
    await page.evaluate(() => {
      streamEvents();
      startPolling();
    });
  }
  await page.waitForSelector("[data-testid=stream-state][data-live=yes]");
  const gone = (await api("GET", "/v1/luns")).json.find((l) => l.friendly_name === lunName);
  if (gone) fail("the LUN is still there");
  await page.locator("[data-testid=error]").first().scrollIntoViewIfNeeded();
  await shot(page, "error");
});

await scenario("a libiscsi session appears in the sessions view, and its LUN's own throughput and latency", async () => {
  const initiator = "iqn.2026-12.test:console-perf";
  const target = (await api("GET", (await firstSubsystemPath()) + "/targets")).json.find((t) => t.friendly_name === "default");
  const TARGET_IQN = target.iscsi_name;
  // A second LUN on the same target, never read: its own sparkline must stay flat while the
  // default LUN's moves (the rates are per LUN, not per target or session).
  const idleName = `${lunName}-idle`;
  const idle = await api("POST", (await firstSubsystemPath()) + "/luns?wait=true", {
    size_bytes: 1 << 20,
    friendly_name: idleName,
    targets: [target.id],
  });
  if (idle.status !== 201) fail(`create the idle LUN: ${idle.status} ${JSON.stringify(idle.json)}`);
  const perf = spawn("iscsi-perf", ["-t", "15", "-i", initiator, `iscsi://${PORTAL}/${TARGET_IQN}/0`], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(perf);
  let stderr = "";
  perf.stderr.on("data", (d) => (stderr += d));
  await page.click("[data-view=sessions]");
  const row = page.locator(`[data-testid=sessions] tr[data-initiator="${initiator}"]`);
  try {
    await row.waitFor({ timeout: 10000 });
  } catch (e) {
    fail(`no session row; iscsi-perf said: ${stderr.slice(0, 500)}`);
  }
  // Three polls later the sparkline has three points and a rate above zero.
  await page.waitForFunction(
    (ini) => {
      const tr = document.querySelector(`[data-testid=sessions] tr[data-initiator="${ini}"]`);
      const line = tr && tr.querySelector("polyline");
      return line && line.getAttribute("points").split(" ").length >= 3 && /read [1-9][0-9.]* [KMG]iB\/s/.test(tr.textContent);
    },
    initiator,
    { timeout: 15000 },
  );
  const s = (await api("GET", "/v1/sessions")).json.find((x) => x.initiator === initiator);
  if (!s || s.counters.bytes_read === 0) fail("the API shows no reads for the session");
  await shot(page, "sessions");
  // The LUN the session reads shows it among its paths.
  await page.click("[data-view=overview]");
  await page.locator(`[data-testid=luns] tr[data-name="default"] button.linklike`).click();
  await page.waitForSelector(`[data-testid=lun-paths] [data-initiator="${initiator}"]`, { timeout: 8000 });
  // The LUN's own throughput and latency, from its vds_lun_* series in /metrics: three points,
  // a read rate and a read latency above zero.
  await page.waitForFunction(
    () => {
      const tp = document.querySelector("[data-testid=lun-throughput]");
      const lat = document.querySelector("[data-testid=lun-latency]");
      if (!tp || !lat) return false;
      const pts = tp.querySelector("polyline").getAttribute("points").split(" ").length;
      const m = /read ([0-9.]+) (µs|ms)/.exec(lat.textContent);
      return pts >= 3 && /read [1-9][0-9.]* [KMG]iB\/s/.test(tp.textContent) && m && Number(m[1]) > 0;
    },
    null,
    { timeout: 15000 },
  );
  console.log(`  LUN pane: ${(await page.textContent("[data-testid=lun-io]")).trim()}`);
  // The idle LUN's cell in the table: as many points, all zero.
  const idleCell = page.locator(`[data-testid=luns] tr[data-name="${idleName}"] td[data-label="I/O"]`);
  const idleText = await idleCell.textContent();
  if (!idleText.includes("read 0 B/s")) fail(`the idle LUN shows reads: ${idleText}`);
  const idlePoints = (await idleCell.locator("polyline.r").getAttribute("points")).split(" ");
  if (idlePoints.length < 3 || idlePoints.some((p) => p.split(",")[1] !== "38.0")) {
    fail(`the idle LUN's sparkline is not flat: ${idlePoints.join(" ")}`);
  }
  await shot(page, "lun-io");
  // What the page drew agrees with the series it read.
  const metrics = await (await fetch(URL_ + "/metrics", { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  const readBytes = (id) => {
    const m = new RegExp(`^vds_lun_read_bytes_total\\{lun="${id}",[^}]*\\} (\\d+)$`, "m").exec(metrics);
    return m ? Number(m[1]) : null;
  };
  const dflt = (await api("GET", "/v1/luns")).json.find((l) => l.friendly_name === "default");
  if (!(readBytes(dflt.id) > 0)) fail(`/metrics shows no reads of the default LUN: ${readBytes(dflt.id)}`);
  if (readBytes(idle.json.id) !== 0) fail(`/metrics shows reads of the idle LUN: ${readBytes(idle.json.id)}`);
  await page.click("[data-view=sessions]");
  perf.kill("SIGTERM");
  await row.waitFor({ state: "detached", timeout: 20000 });
  const del = await api("DELETE", `/v1/luns/${idle.json.id}`);
  if (del.status !== 204) fail(`delete the idle LUN: ${del.status}`);
});

await scenario("set a portal and a controller status from the page", async () => {
  await page.click("[data-view=overview]");
  const portal = (await api("GET", (await firstSubsystemPath()) + "/portals")).json[0];
  const prow = page.locator(`[data-testid=portals] tr[data-portal="${portal.id}"]`);
  await prow.locator("select").selectOption("offline");
  await prow.locator("button", { hasText: "Set" }).click();
  await page.waitForSelector(`[data-testid=portals] tr[data-portal="${portal.id}"] .badge[data-value=offline]`, { timeout: 10000 });
  await prow.locator("select").selectOption("online");
  await prow.locator("button", { hasText: "Set" }).click();
  await page.waitForSelector(`[data-testid=portals] tr[data-portal="${portal.id}"] .badge[data-value=online]`, { timeout: 10000 });
  const after = (await api("GET", `/v1/portals/${portal.id}`)).json;
  if (after.status !== "online") fail(`portal ${after.status}`);
  // The only controller cannot go offline while LUNs are on it, or it can: either way the page
  // shows what the API said (the state, or the error with its name).
  const ctl = (await api("GET", (await firstSubsystemPath()) + "/controllers")).json[0];
  const crow = page.locator(`[data-testid=controllers] tr[data-controller="${ctl.id}"]`);
  const errorsBefore = await page.locator("[data-testid=error]").count();
  await crow.locator("select").selectOption("offline");
  await crow.locator("button", { hasText: "Set" }).click();
  await page.waitForFunction(
    ([id, n]) =>
      document.querySelector(`[data-testid=controllers] tr[data-controller="${id}"] .badge[data-value=offline]`) ||
      document.querySelectorAll("[data-testid=error]").length > n,
    [ctl.id, errorsBefore],
    { timeout: 10000 },
  );
  const now = (await api("GET", `/v1/controllers/${ctl.id}`)).json;
  console.log(`  controller is ${now.status}`);
  if (now.status === "offline") {
    const r = await api("POST", `/v1/controllers/${ctl.id}/status`, { status: "online" });
    if (r.status >= 300) fail(`controller back online: ${JSON.stringify(r.json)}`);
  }
});

await scenario("phone width: one column, nothing wider than the screen", async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  await p.goto(URL_ + "/");
  await p.fill("#token", TOKEN);
  await p.click("#login-form button[type=submit]");
  await p.waitForSelector("#app:not([hidden]) [data-testid=luns] tbody tr[data-lun]", { timeout: 10000 });
  const wide = await p.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) fail(`the page is ${wide}px wide at 390px`);
  const display = await p.evaluate(() => getComputedStyle(document.querySelector("[data-testid=luns] thead")).display);
  if (display !== "none") fail("tables are not stacked at phone width");
  await shot(p, "phone");
  const bad = await contrastFailures(p, "phone");
  if (bad.length) fail(bad.join("; "));
  await phone.close();
});

/** Every visible text of the page against its background: WCAG AA (4.5:1, 3:1 for large). */
async function contrastFailures(p, where) {
  const bad = await p.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return { rgb: [0, 0, 0], a: 0 };
      const v = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { rgb: v.slice(0, 3), a: v.length > 3 ? v[3] : 1 };
    };
    const lum = ([r, g, b]) => {
      const f = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c.a >= 0.5) return c.rgb;
      }
      return [255, 255, 255];
    };
    const out = [];
    for (const el of document.querySelectorAll("body *")) {
      const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join("");
      if (!text || el.getClientRects().length === 0 || el.closest("[hidden]")) continue;
      const st = getComputedStyle(el);
      if (st.visibility === "hidden" || st.display === "none") continue;
      const fg = parse(st.color).rgb;
      const l1 = lum(fg);
      const l2 = lum(background(el));
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`${el.tagName}.${el.className} "${text.slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
    return out;
  });
  return bad.map((b) => `${where}: ${b}`);
}

await scenario("WCAG AA contrast of every visible text, in every view", async () => {
  const bad = [];
  for (const view of ["overview", "sessions", "activity"]) {
    await page.click(`[data-view=${view}]`);
    bad.push(...(await contrastFailures(page, view)));
  }
  await page.click("[data-view=overview]");
  if (bad.length) fail(bad.join("; "));
});

await scenario("no console errors, no request leaves for another host, no token in a URL", async () => {
  if (foreign.length) fail(`requests to other hosts: ${foreign.join(" ")}`);
  if (urlsWithToken.length) fail(`token in URLs: ${urlsWithToken.join(" ")}`);
  const bad = consoleErrors.filter((m) => !/status of 4\d\d|Failed to load resource/.test(m));
  if (bad.length) fail(`console errors: ${bad.join(" | ")}`);
  // The page sets no cookie and asks for nothing the CSP forbids (a violation logs an error).
  const cookies = await context.cookies();
  if (cookies.length) fail(`cookies: ${JSON.stringify(cookies)}`);
});

await browser.close();
for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
const passed = results.filter((r) => r[1]).length;
const failed = results.length - passed;
console.log(`console.test.mjs: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
