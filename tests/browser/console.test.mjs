// The web console (/console) and the docs page (/docs) in a real browser: Debian's chromium,
// driven by playwright-core, against a pubhook that the Rust e2e test `console`
// (tests/e2e/console.rs) started and filled. It passes what it made in PUBHOOK_CONSOLE_FIXTURE:
//
//   {"base": "http://127.0.0.1:PORT", "chromium": "/usr/bin/chromium", "artifacts": "DIR",
//    "owner": {"username", "api_key"}, "admin": {"username", "api_key"},
//    "event": "...", "triggers": ["id", ...]}
//
// The owner's username and the registration's event hold HTML and script text: the page must
// show them as text and no element or script of theirs may appear. Steps run in order (each
// needs the one before); the first failure stops the run, with a screenshot beside the others.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const fixture = JSON.parse(process.env.PUBHOOK_CONSOLE_FIXTURE || "null");
if (!fixture) {
  console.error("PUBHOOK_CONSOLE_FIXTURE is not set: run this through `cargo test --test e2e console`");
  process.exit(2);
}
const { base, owner, admin, event, triggers } = fixture;
mkdirSync(fixture.artifacts, { recursive: true });

/** How long one wait in the page may take; a delivery on loopback takes milliseconds. */
const WAIT_MS = 15_000;

const browser = await chromium.launch({
  executablePath: fixture.chromium,
  headless: true,
  // CI runs as root, where chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
// Anything the page logs as an error (a CSP or Trusted Types refusal, an exception) fails the run.
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => {
  // The API's 4xx answers that the steps ask for are logged as failed loads: those are checked
  // by the responses below instead.
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(m.text());
});
page.on("response", (r) => {
  const path = new URL(r.url()).pathname;
  if (r.status() >= 400 && !path.startsWith("/v1/") && path !== "/favicon.ico") {
    pageErrors.push(`${r.status()} for ${path}`);
  }
});

let passed = 0;
let failed = 0;

async function step(name, run) {
  try {
    await run();
    assert.deepEqual(pageErrors, [], "the page logged errors");
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name}\n${e.stack || e}`);
    await page.screenshot({ path: join(fixture.artifacts, "console-failure.png"), fullPage: true });
    await finish();
  }
}

async function finish() {
  await browser.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

const text = (selector) => page.locator(selector).innerText();

async function signIn(who) {
  await page.fill("#username", who.username);
  await page.fill("#api-key", who.api_key);
  await page.click("#sign-in-form button[type=submit]");
}

/** What would show that a value was parsed as HTML instead of shown as text. */
async function injected() {
  return page.evaluate(() => ({
    xss: window.__xss ?? null,
    images: document.images.length,
    scripts: [...document.scripts].map((s) => s.src),
    bold: document.querySelectorAll("b").length,
  }));
}

async function assertNothingInjected() {
  assert.deepEqual(await injected(), {
    xss: null,
    images: 0,
    scripts: [`${base}/console/console.js`],
    bold: 0,
  });
}

async function go(hash) {
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
}

await step("the console page holds no data and is served under its policy", async () => {
  const response = await page.goto(`${base}/console`);
  assert.equal(response.status(), 200);
  const policy = response.headers()["content-security-policy"];
  assert.match(policy, /default-src 'self'/);
  assert.match(policy, /require-trusted-types-for 'script'/);
  const html = await response.text();
  for (const secret of [owner.username, owner.api_key, admin.api_key, event, ...triggers]) {
    assert.ok(!html.includes(secret), `the page's HTML holds ${secret}`);
  }
  await page.locator("#sign-in-form").waitFor();
});

await step("the API answers nothing without credentials", async () => {
  const statuses = await page.evaluate(async (paths) => {
    const out = [];
    for (const path of paths) out.push((await fetch(path)).status);
    return out;
  }, ["/v1/webhook/triggered?start=0&limit=10", "/v1/accounts?start=0&limit=10", `/v1/webhook/triggered/${triggers[0]}`, "/v1/me"]);
  assert.deepEqual(statuses, [401, 401, 401, 401]);
});

await step("a sign-in with a wrong key shows the API's error and keeps the form", async () => {
  await signIn({ username: owner.username, api_key: "0".repeat(40) });
  const error = page.locator("#sign-in-error");
  await error.waitFor({ state: "visible", timeout: WAIT_MS });
  assert.equal(await error.innerText(), "Sign-in failed: Invalid API key");
  assert.equal(await page.inputValue("#api-key"), "", "the key left the form");
  assert.ok(await page.locator("#app").isHidden());
  await signIn({ username: "nobody-here", api_key: owner.api_key });
  await page.waitForFunction(
    () => document.getElementById("sign-in-error").textContent.includes("Invalid API key or Username"),
  );
});

await step("the owner signs in; the HTML in its username is shown as text", async () => {
  await signIn(owner);
  await page.locator("#app").waitFor({ state: "visible", timeout: WAIT_MS });
  assert.equal(await text("#who-name"), owner.username);
  assert.ok(await page.locator("#sign-in-error").isHidden());
  await page.locator("table.records").waitFor({ timeout: WAIT_MS });
  await assertNothingInjected();
});

await step("the key is held nowhere but the tab's memory", async () => {
  const kept = await page.evaluate(() => ({
    cookie: document.cookie,
    local: localStorage.length,
    session: sessionStorage.length,
    url: location.href,
    inputs: [...document.querySelectorAll("input")].map((i) => i.value),
  }));
  assert.equal(kept.cookie, "");
  assert.equal(kept.local, 0);
  assert.equal(kept.session, 0);
  assert.ok(!kept.url.includes(owner.api_key), kept.url);
  assert.ok(!kept.inputs.includes(owner.api_key), "an input still holds the key");
  const cookies = await context.cookies();
  assert.deepEqual(cookies, []);
});

await step("registrations show the event's HTML and script text literally", async () => {
  await page.click("nav a[href='#/registrations']");
  const cell = page.locator("table.records tbody tr td strong").first();
  await cell.waitFor({ timeout: WAIT_MS });
  assert.equal(await cell.innerText(), event);
  assert.ok((await text("table.records")).includes("<b>bold</b> description"));
  await assertNothingInjected();
});

await step("the triggered list pages with the API's paging", async () => {
  await go("#/triggered?start=0&limit=2");
  const rows = page.locator("table.records tbody tr");
  const seen = [];
  for (let pageNo = 0; pageNo < 10; pageNo += 1) {
    await page.locator(".pager .muted").waitFor({ timeout: WAIT_MS });
    await page.waitForFunction(() => !document.querySelector("#view .muted")?.textContent.startsWith("Loading"));
    seen.push(...(await rows.locator("td:first-child a").allInnerTexts()));
    const next = page.locator(".pager a", { hasText: "Next page" });
    if ((await next.count()) === 0) break;
    const before = await text(".pager .muted");
    await next.click();
    await page.waitForFunction((b) => document.querySelector(".pager .muted")?.textContent !== b, before);
  }
  assert.deepEqual(seen, triggers, "every trigger once, oldest first");
});

await step("a tampered page parameter shows the API's 400 and the page still works", async () => {
  for (const hash of ["#/triggered?start=-1&limit=10", "#/triggered?start=0&limit=1000", "#/registrations?start=x&limit=1"]) {
    await go(hash);
    await page.waitForFunction(
      () => document.getElementById("view-error").textContent === "Invalid limit or start parameter",
      undefined,
      { timeout: WAIT_MS },
    );
    assert.ok(await page.locator("#view-error").isVisible(), hash);
  }
  await page.click("nav a[href='#/triggered']");
  await page.locator("table.records").waitFor({ timeout: WAIT_MS });
  assert.ok(await page.locator("#view-error").isHidden());
});

await step("opening a trigger shows its summary and attempts", async () => {
  await page.click(`table.records a[href='#/trigger/${triggers[0]}']`);
  const attempts = page.locator("table.attempts tbody tr");
  await attempts.first().waitFor({ timeout: WAIT_MS });
  const rows = await attempts.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.innerText)));
  const outcomes = rows.map((cells) => cells[1]).sort();
  assert.deepEqual(outcomes, ["delivered", "retrying"], JSON.stringify(rows));
  const delivered = rows.find((cells) => cells[1] === "delivered");
  assert.equal(delivered[2], "200");
  assert.equal(delivered[3], "—");
  assert.match(delivered[4], /^\d+\.\d ms$/);
  const retrying = rows.find((cells) => cells[1] === "retrying");
  assert.equal(retrying[2], "500");
  assert.equal(retrying[3], "http_status");
  const summary = await text("[aria-label='Delivery summary']");
  assert.match(summary, /delivered: 1/);
  assert.match(summary, /pending: 1/);
  await page.screenshot({ path: join(fixture.artifacts, "console.png"), fullPage: true });
});

await step("redelivering a delivery is answered with what was queued", async () => {
  const row = page.locator("table.attempts tbody tr", { hasText: "delivered" });
  await row.locator("button", { hasText: "Redeliver" }).click();
  await page.waitForFunction(() => /^Redelivering 1/.test(document.getElementById("notice").textContent), undefined, {
    timeout: WAIT_MS,
  });
  // The redelivery is one more attempt of that delivery, marked as one.
  await page.waitForFunction(
    () => {
      const redelivered = [...document.querySelectorAll("table.attempts tbody tr")].some((tr) =>
        tr.cells[0].textContent.includes("redelivery"),
      );
      if (!redelivered) document.querySelector("#view button:last-of-type")?.click();
      return redelivered;
    },
    undefined,
    { timeout: WAIT_MS, polling: 500 },
  );
});

await step("triggering from the console opens the new trigger", async () => {
  await page.click("nav a[href='#/registrations']");
  await page.locator("table.records button", { hasText: "Trigger" }).first().click();
  await page.waitForFunction(() => location.hash.startsWith("#/trigger/"), undefined, { timeout: WAIT_MS });
  const id = await page.evaluate(() => location.hash.slice("#/trigger/".length));
  assert.ok(!triggers.includes(id), "a new trigger");
  await page.locator("[aria-label='Delivery summary']").waitFor({ timeout: WAIT_MS });
  assert.match(await text("#notice"), /^Triggered “/);
  await assertNothingInjected();
});

await step("an account that is not an admin gets the API's refusal for the admin views", async () => {
  assert.ok(await page.locator("nav a[href='#/accounts']").isHidden(), "the admin links are hidden");
  await go("#/accounts");
  await page.waitForFunction(() => document.getElementById("view-error").textContent === "Not an Admin", undefined, {
    timeout: WAIT_MS,
  });
});

await step("signing out forgets the key", async () => {
  await page.click("#sign-out");
  await page.locator("#sign-in-form").waitFor({ state: "visible" });
  assert.ok(await page.locator("#app").isHidden());
  assert.equal(await page.locator("#view").innerText(), "");
});

await step("an admin sees accounts (the HTML username as text), workers and dead letters", async () => {
  await signIn(admin);
  await page.locator("#app").waitFor({ state: "visible", timeout: WAIT_MS });
  assert.equal(await text("#who-role"), "admin");
  await page.click("nav a[href='#/accounts']");
  const names = page.locator("table.records tbody td:first-child strong");
  await names.first().waitFor({ timeout: WAIT_MS });
  assert.ok((await names.allInnerTexts()).includes(owner.username));
  await assertNothingInjected();
  await page.screenshot({ path: join(fixture.artifacts, "console-accounts.png"), fullPage: true });
  await page.click("nav a[href='#/workers']");
  await page.locator("table.workers tbody tr").first().waitFor({ timeout: WAIT_MS });
  await page.click("nav a[href='#/dead-letters']");
  await page.waitForFunction(() => document.getElementById("view").textContent.includes("No records here"), undefined, {
    timeout: WAIT_MS,
  });
});

await step("the docs page renders the API's document", async () => {
  await page.goto(`${base}/docs`);
  const heading = page.locator(".swagger-ui .info .title");
  await heading.waitFor({ timeout: WAIT_MS });
  assert.match(await heading.innerText(), /pubhook/);
  await page.locator(".opblock-summary-path", { hasText: "/v1/me" }).first().waitFor({ timeout: WAIT_MS });
});

await finish();
