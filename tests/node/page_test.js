// page_test.js URL SHOTDIR KILL_NEVER KILL_HEALS SECRET...: the status page
// in Debian's headless Chromium (tests/cli/test_page.sh starts the monitor).
//  - the page loads, nothing but the monitor itself is asked for anything,
//    no script error, a row per service, all healthy, the strip and the
//    sparkline drawn, the event stream open; no secret in the page;
//  - a screenshot (SHOTDIR/status-page.png);
//  - `docker kill KILL_NEVER` (restart.policy never): its row shows
//    unhealthy within 2 seconds, without a reload;
//  - `docker kill KILL_HEALS`: its row shows unhealthy within 2 seconds, then
//    healthy again once the monitor restarted it, restarts counted;
//  - a second screenshot (SHOTDIR/status-page-after.png).
// Prints "ok - ..." / "FAIL - ..." lines; exits 1 on any failure.
"use strict";
const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");

const [url, shotdir, killNever, killHeals, ...secrets] = process.argv.slice(2);
let fails = 0;
const ok = (d) => console.log("ok   - " + d);
const bad = (d) => { fails++; console.log("FAIL - " + d); };
const check = (d, c, more) => (c ? ok(d) : bad(d + (more ? ": " + more : "")));

// The bound: the page must show a killed service unhealthy within 2 s
// of the kill, live (Docker's die event reaches the monitor in ~100 ms).
const SHOW_WITHIN_MS = 2000;

// When the container died, by the engine's own clock (State.FinishedAt; the
// same host clock as the page's): the 2 s are counted from the death, not from
// before `docker kill`, whose own run on a loaded machine is no part of the
// page's delay. Falls back to `before` when the time cannot be read.
function diedAt(ctr, before) {
  const iso = execFileSync("docker", ["inspect", "-f", "{{.State.FinishedAt}}", ctr]).toString().trim();
  const ms = Date.parse(iso.replace(/(\.\d{3})\d*/, "$1"));
  return Number.isFinite(ms) && ms >= before ? ms : before;
}

async function stateSeen(page, name, state, sinceMs, timeoutMs) {
  return page.waitForFunction(([n, s, t]) => (window.__seen || []).some(
    (e) => e.name === n && e.state === s && e.at >= t), [name, state, sinceMs],
  { timeout: timeoutMs, polling: 50 }).then(() => page.evaluate(([n, s, t]) =>
    window.__seen.find((e) => e.name === n && e.state === s && e.at >= t).at, [name, state, sinceMs]))
    .catch(() => null);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 420 } });
    const origin = new URL(url).origin;
    const foreign = [], errors = [];
    page.on("request", (r) => { if (!r.url().startsWith(origin + "/")) foreign.push(r.url()); });
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    const resp = await page.goto(url);
    check("GET / answers 200 text/html", resp.status() === 200 &&
          /^text\/html/.test(resp.headers()["content-type"] || ""), resp.status());
    const html = await resp.text();
    for (const s of secrets) check(`the page holds no secret (${s.length} chars)`, !html.includes(s));
    await page.waitForFunction(() => document.getElementById("live").className === "on",
                               null, { timeout: 10000 }).catch(() => {});
    check("the event stream is open", await page.$eval("#live", (e) => e.className) === "on");
    const rows = await page.$$eval("#rows tr", (t) => t.map((r) => [r.dataset.service, r.dataset.state]));
    // PAGE_ALSO: more services of the config, after these two (test_page.sh).
    const also = (process.env.PAGE_ALSO || "").split(" ").filter((x) => x);
    check("a row per service, each healthy", JSON.stringify(rows) ===
          JSON.stringify([killHeals, killNever, ...also].map((n) => [n, "healthy"])),
          JSON.stringify(rows));
    check("each strip is drawn", (await page.$$eval("svg.strip", (s) => s.map((x) => x.querySelectorAll("rect").length)))
          .every((n) => n >= 1));
    check("each sparkline is drawn", (await page.$$eval("svg.spark", (s) => s.map((x) => x.querySelectorAll("polyline").length)))
          .every((n) => n === 1));
    await page.screenshot({ path: shotdir + "/status-page.png" });
    ok("screenshot " + shotdir + "/status-page.png");

    // Every state a row takes, with the time it took it (the page's clock).
    await page.evaluate(() => {
      window.__marker = "no reload";
      window.__seen = [];
      new MutationObserver((ms) => ms.forEach((m) => window.__seen.push({
        name: m.target.dataset.service, state: m.target.dataset.state, at: Date.now() })))
        .observe(document.getElementById("rows"), { subtree: true, attributeFilter: ["data-state"] });
    });

    let t0 = await page.evaluate(() => Date.now());
    execFileSync("docker", ["kill", killNeverCtr()]);
    let died = diedAt(killNeverCtr(), t0);
    let at = await stateSeen(page, killNever, "unhealthy", t0, 15000);
    check(`${killNever} (policy never) shown unhealthy within ${SHOW_WITHIN_MS} ms of its death` +
          (at !== null ? ` (${at - died} ms; docker kill started ${died - t0} ms before)` : ""),
          at !== null && at - died <= SHOW_WITHIN_MS, at === null ? "never" : `${at - died} ms`);

    t0 = await page.evaluate(() => Date.now());
    execFileSync("docker", ["kill", healsCtr()]);
    died = diedAt(healsCtr(), t0);
    at = await stateSeen(page, killHeals, "unhealthy", t0, 15000);
    check(`${killHeals} shown unhealthy within ${SHOW_WITHIN_MS} ms of its death` +
          (at !== null ? ` (${at - died} ms; docker kill started ${died - t0} ms before)` : ""),
          at !== null && at - died <= SHOW_WITHIN_MS, at === null ? "never" : `${at - died} ms`);
    // Restarted by the monitor (postgres's start on a loaded machine: up to a minute).
    at = await stateSeen(page, killHeals, "healthy", t0, 90000);
    check(`${killHeals} shown healthy again after its restart`, at !== null);
    await page.waitForFunction((n) => /^[1-9]/.test(document.querySelector(
      `tr[data-service="${n}"] td.num`).textContent), killHeals, { timeout: 15000 }).catch(() => {});
    check(`${killHeals}: its restart is counted`, /^[1-9]/.test(await page.$eval(
      `tr[data-service="${killHeals}"] td.num`, (e) => e.textContent)));
    check(`${killNever} still unhealthy, its last error shown`, await page.$eval(
      `tr[data-service="${killNever}"]`, (r) => r.dataset.state === "unhealthy" &&
        r.querySelector("td.error").textContent.length > 0));
    check("the strip shows the unhealthy spell", await page.$eval(
      `tr[data-service="${killNever}"] svg.strip`, (s) => s.querySelector('rect[data-state="unhealthy"]') !== null));
    check("no reload", await page.evaluate(() => window.__marker === "no reload" &&
          performance.getEntriesByType("navigation").length === 1));
    check("nothing asked of another origin", foreign.length === 0, foreign.join(" "));
    check("no script error", errors.length === 0, errors.join(" | "));
    await page.screenshot({ path: shotdir + "/status-page-after.png" });
    ok("screenshot " + shotdir + "/status-page-after.png");
  } finally {
    await browser.close();
  }
  process.exit(fails ? 1 : 0);
})().catch((e) => { console.log("FAIL - " + (e && e.stack || e)); process.exit(1); });

function killNeverCtr() { return process.env.PAGE_CTR_PREFIX + killNever; }
function healsCtr() { return process.env.PAGE_CTR_PREFIX + killHeals; }
