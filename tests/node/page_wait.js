// page_wait.js URL NAME DEP: the status page (tests/cli/test_page.sh) shows
// that NAME's held (re)start waits for DEP (depends_on): its row names DEP
// (data-waiting-for) and says "waiting for DEP (healthy, now STATE)" and
// when it gives up, live, within 10 s. Prints "ok - ..." / "FAIL - ..."
// lines; exits 1 on any failure.
"use strict";
const { chromium } = require("playwright-core");

const [url, name, dep] = process.argv.slice(2);
let fails = 0;
const check = (d, c, more) => {
  if (c) console.log("ok   - " + d);
  else { fails++; console.log("FAIL - " + d + (more ? ": " + more : "")); }
};

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 420 } });
    await page.goto(url);
    const sel = `tr[data-service="${name}"]`;
    await page.waitForFunction(([s, d]) => {
      const r = document.querySelector(s);
      return r && r.dataset.waitingFor === d;
    }, [sel, dep], { timeout: 10000, polling: 100 }).catch(() => {});
    const got = await page.$eval(sel, (r) => ({ w: r.dataset.waitingFor,
      text: r.querySelector(".wait").textContent, hidden: r.querySelector(".wait").hidden }));
    check(`${name}'s row names what it waits for (${dep})`, got.w === dep, JSON.stringify(got));
    check(`${name}'s row says so`, !got.hidden &&
          new RegExp(`^waiting for ${dep} \\(healthy, now [a-z]+\\); gives up in `).test(got.text),
          JSON.stringify(got));
  } finally {
    await browser.close();
  }
  process.exit(fails ? 1 : 0);
})().catch((e) => { console.log("FAIL - " + (e && e.stack || e)); process.exit(1); });
