// The inbox in a browser, served by a real hub: `npm test` here (after `npm run build` in ui/ and
// `cargo build -p baton-hub`).
//
// Sets up a hub data directory with the hub's own CLI (an agent, a Botpress channel whose webhook
// is a tiny loopback server that records what the hub sends), starts `baton-hub serve` on a free
// loopback port, hands customers over through the hub's Botpress endpoint as the integration
// does, then drives Chromium (Debian's /usr/bin/chromium, or $CHROMIUM; playwright-core downloads
// no browser) through /app/ at a desktop (1280×800) and a phone (390×844) size: sign in, see the
// handoff waiting, take it, reply (the bot's webhook gets the text exactly once), resolve, find
// it by a word of the customer's message, open the customer. Each step is saved as a PNG in
// target/browser/. The page must load with no Content-Security-Policy violation and no error.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, existsSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";
import { freePort, waitForPort } from "./net.mjs";

const root = resolve(import.meta.dirname, "../..");
const HUB = process.env.BATON_HUB ?? join(root, "target/debug/baton-hub");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(root, "target/browser");
const EMAIL = "alice@example.com";
const PASSWORD = "correct horse battery";

let data;
let hub;
let hubLog;
let hubUrl;
let endpoint;
let webhook;
/** Bodies the hub posted to the bot's webhook. */
const delivered = [];

function cli(args, stdin = "") {
  const out = spawnSync(HUB, args, { input: stdin, env: { ...process.env, BATON_ALLOW_PRIVATE_URLS: "1" }, encoding: "utf8" });
  assert.equal(out.status, 0, `baton-hub ${args.join(" ")} failed: ${out.stderr}`);
  return out.stdout;
}

async function eventually(what, check, within = 15_000) {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** What the Botpress integration posts to the hub's endpoint. */
async function botpress(route, body) {
  const response = await fetch(`${hubUrl}${endpoint}/${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => null);
  assert.equal(response.status, 200, `${route}: ${JSON.stringify(answer)}`);
  return answer;
}

/** A customer handed over by the bot: a user, a ticket titled `title`, their first message. */
async function handOff(title, customer, text) {
  const user = await botpress("createRemoteUser", { type: "createRemoteUser", payload: { role: "end-user", name: customer } });
  const ticket = await botpress("createRemoteConversation", { type: "createRemoteConversation", payload: { title } });
  await botpress("botSendsMessage", { type: "botSendsMessage", remoteConversationId: ticket.id, remoteUserId: user.id, payload: { text } });
  return ticket.id;
}

before(async () => {
  assert.ok(existsSync(HUB), `${HUB} is missing: run cargo build -p baton-hub`);
  assert.ok(existsSync(join(root, "ui/dist/index.html")), "ui/dist is missing: run npm run build in ui/");
  mkdirSync(SHOTS, { recursive: true });
  webhook = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      delivered.push(body);
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise((done) => webhook.listen(0, "127.0.0.1", done));
  data = mkdtempSync(join(tmpdir(), "baton-browser-"));
  const dir = join(data, "hub");
  cli(["agent", "add", "--data", dir, "--email", EMAIL, "--name", "Alice"], PASSWORD);
  const out = cli(["botpress", "add", "--data", dir, "--name", "Support bot", "--webhook-url", `http://127.0.0.1:${webhook.address().port}/hook`]);
  endpoint = out.trim().split("\n").at(-1).trim();
  assert.match(endpoint, /^\/botpress\//);
  hubPort = await freePort();
  hubLog = join(data, "serve.log");
  hubUrl = `http://127.0.0.1:${hubPort}`;
  await startHub();
});

let hubPort;
// Even when the run is cut short, no hub is left behind.
process.on("exit", () => {
  if (hub && hub.exitCode === null) hub.kill("SIGKILL");
});

/** `baton-hub serve` on the test's port (again, after `stopHub`: same data, same sessions). */
async function startHub() {
  hub = spawn(HUB, ["serve", "--data", join(data, "hub"), "--listen", `127.0.0.1:${hubPort}`], {
    env: { ...process.env, BATON_ALLOW_PRIVATE_URLS: "1" },
    stdio: ["ignore", "ignore", openSync(hubLog, "a")],
  });
  await waitForPort(hubPort);
}

/** Kills the hub, as a crash or a lost network would take it away. */
async function stopHub() {
  if (hub && hub.exitCode === null && hub.signalCode === null) {
    const exited = new Promise((done) => hub.once("exit", done));
    hub.kill("SIGKILL");
    await exited;
  }
}

after(async () => {
  await stopHub();
  await new Promise((done) => (webhook ? webhook.close(done) : done()));
  if (data) rmSync(data, { recursive: true, force: true });
});

/** Watches a page for what must never happen: a CSP violation, a script error. */
function watch(page) {
  const problems = [];
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
    else if (message.type() === "error" && !/Failed to load resource: the server responded with a status of 401/.test(text)) problems.push(`console error: ${text}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

/** Clicks a header control, through the phone's menu when the header keeps it there. */
async function headerControl(page, testId) {
  const control = page.getByTestId(testId);
  if (!(await control.isVisible())) {
    const menu = page.getByTestId("menu-toggle");
    if (await menu.isVisible()) await menu.click();
  }
  await control.click();
}

const VIEWPORTS = [
  {
    name: "desktop",
    context: { viewport: { width: 1280, height: 800 } },
    title: "Parcel late",
    customer: "Sam Brooks",
    says: "Where is my parcel? It was due on Monday.",
    word: "parcel",
    reply: "Sorry Sam, your parcel left the depot this morning.",
  },
  {
    name: "phone",
    context: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
    title: "Wrong size",
    customer: "Olga Petrova",
    says: "The shoes I ordered are too small.",
    word: "shoes",
    reply: "Sorry Olga, a larger pair is on its way.",
  },
];

for (const v of VIEWPORTS) {
  test(`an agent works a handoff through in the browser at the ${v.name} size`, async () => {
    await handOff(v.title, v.customer, v.says);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    let step = 0;
    let page;
    const shot = async (what) => {
      step += 1;
      await page.screenshot({ path: join(SHOTS, `${v.name}-${String(step).padStart(2, "0")}-${what}.png`) });
    };
    try {
      const context = await browser.newContext(v.context);
      page = await context.newPage();
      const problems = watch(page);

      // The hub serves the app at /app/ with its policy, and the app says how to install it.
      const response = await page.goto(`${hubUrl}/app/`);
      assert.equal(response?.status(), 200);
      assert.match(response?.headers()["content-security-policy"] ?? "", /default-src 'none'/);
      assert.equal(await page.locator('link[rel="manifest"]').count(), 1);
      const manifest = await (await fetch(`${hubUrl}/app/manifest.webmanifest`)).json();
      assert.equal(manifest.name, "Baton");
      assert.equal(manifest.display, "standalone");
      // Chromium reads the manifest and its icons as an installable web app's ("Add to home screen").
      const cdp = await context.newCDPSession(page);
      const read = await cdp.send("Page.getAppManifest");
      assert.deepEqual(read.errors, [], "the manifest reads without errors");
      const installable = await cdp.send("Page.getInstallabilityErrors");
      // (A test's browser context is a private one, which Chromium never installs from: that alone
      // is expected.)
      const blocking = installable.installabilityErrors.map((e) => e.errorId).filter((id) => id !== "in-incognito");
      assert.deepEqual(blocking, [], "installable");

      // Signing in asks no hub address (the hub is this page's origin) and offers no solo desk.
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      assert.equal(await page.getByTestId("hub-address").count(), 0, "no hub address field in the browser");
      assert.equal(await page.getByTestId("use-solo").count(), 0, "no solo desk in the browser");
      await shot("sign-in");
      await page.getByLabel("Email").fill(EMAIL);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();

      // The handoff waits in the list; the stream is live.
      const row = page.getByRole("button", { name: new RegExp(v.title) }).first();
      await row.waitFor({ timeout: 15_000 });
      await eventually("the connection to be live", async () => (await page.getByTestId("connection").textContent())?.includes("Live"));
      const cookies = await page.context().cookies();
      const session = cookies.find((c) => c.name === "baton_session");
      assert.ok(session, "the session is a cookie");
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, "Strict");
      assert.equal(await page.evaluate(() => document.cookie.includes("baton_session")), false, "the page's scripts cannot read the session");
      await shot("waiting");

      // Taken.
      await row.click();
      await page.getByTestId("conversation-title").filter({ hasText: v.title }).first().waitFor();
      await page.locator('[data-testid="message"]', { hasText: v.says }).first().waitFor();
      await shot("conversation");
      await page.getByTestId("assign").click();
      await eventually("the handoff to be mine", async () => (await page.getByTestId("handoff-status").first().textContent())?.toLowerCase().includes("assigned"));
      await shot("assigned");

      // Replied: the bot's webhook gets exactly that text, once.
      await page.getByTestId("composer").fill(v.reply);
      await page.getByTestId("send").click();
      await page.locator('[data-testid="message"]', { hasText: v.reply }).first().waitFor();
      await eventually("the reply to reach the bot", () => delivered.some((b) => b.includes(v.reply)));
      await sleep(1000);
      assert.equal(delivered.filter((b) => b.includes(v.reply)).length, 1, "the reply went out exactly once");
      assert.equal(await page.getByTestId("composer").inputValue(), "", "the composer is empty once sent");
      await shot("replied");

      // Resolved.
      await page.getByTestId("resolve").click();
      await eventually("the handoff to be resolved", async () => (await page.getByTestId("handoff-status").first().textContent())?.toLowerCase().includes("resolved"));
      await shot("resolved");

      // Found again by a word of what the customer wrote.
      const back = page.getByTestId("conversation-back");
      if (await back.isVisible()) await back.click();
      await headerControl(page, "search-toggle");
      await page.getByTestId("search-input").fill(v.word);
      const hit = page.getByTestId("search-hit").filter({ hasText: v.customer }).first();
      await hit.waitFor();
      assert.match((await hit.textContent()) ?? "", new RegExp(v.word, "i"));
      await shot("search");
      await hit.click();
      await page.getByTestId("conversation-title").filter({ hasText: v.title }).first().waitFor({ state: "visible" });
      await shot("found");

      // The customer: beside the conversation on a desktop, behind its Customer button on a phone.
      const toggle = page.getByTestId("customer-toggle");
      if (await toggle.isVisible()) await toggle.click();
      const name = page.getByTestId("customer-name").filter({ hasText: v.customer }).first();
      await name.waitFor({ state: "visible" });
      await shot("customer");

      // Signing out ends the session on the hub and takes the cookie away (on a phone, from the
      // list's screen: Back twice).
      for (const back of ["customer-back", "conversation-back"]) {
        if (await page.getByTestId(back).isVisible()) await page.getByTestId(back).click();
      }
      await headerControl(page, "sign-out");
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      assert.equal((await page.context().cookies()).some((c) => c.name === "baton_session" && c.value), false, "the cookie is gone");
      await shot("signed-out");

      assert.deepEqual(problems, [], "no CSP violation or script error");
    } catch (err) {
      if (page) await shot("failed").catch(() => {});
      throw new Error(`${err.message}\n--- hub log ---\n${spawnSync("tail", ["-n", "30", hubLog], { encoding: "utf8" }).stdout}`, { cause: err });
    } finally {
      await browser.close();
    }
  });
}

test("offline, the browser says so, refuses to send visibly, and keeps the draft across a reload", async () => {
  const title = "Refund please";
  const draft = "I am checking your refund now";
  await handOff(title, "Ravi Kumar", "I would like my money back for order 1042.");
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  let page;
  let step = 0;
  const shot = async (what) => {
    step += 1;
    await page.screenshot({ path: join(SHOTS, `offline-${String(step).padStart(2, "0")}-${what}.png`) });
  };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${hubUrl}/app/`);
    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: new RegExp(title) }).first().click();
    await page.getByTestId("assign").click();
    await eventually("the handoff to be mine", async () => (await page.getByTestId("handoff-status").first().textContent())?.toLowerCase().includes("assigned"));
    await page.getByTestId("composer").fill(draft);
    // The draft is kept (after a short pause in typing) in this browser's storage.
    await eventually("the draft to be kept", () => page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith("baton.draft."))));

    // The hub goes away: the banner says the browser is offline, and a reply is refused visibly.
    await stopHub();
    await page.getByTestId("offline-banner").waitFor({ timeout: 15_000 });
    assert.match((await page.getByTestId("offline-banner").textContent()) ?? "", /Offline/);
    assert.match((await page.getByTestId("connection").textContent()) ?? "", /Offline/);
    await shot("offline");
    await page.getByTestId("send").click();
    const refused = page.getByTestId("error");
    await refused.waitFor();
    assert.match((await refused.textContent()) ?? "", /Not sent/);
    assert.equal(await page.getByTestId("composer").inputValue(), draft, "what was typed stays in the composer");
    assert.equal(delivered.filter((b) => b.includes(draft)).length, 0);
    await shot("not-sent");

    // Back online, a reload finds the session (the cookie) and the draft.
    await startHub();
    await page.reload();
    await eventually("the connection to be live", async () => (await page.getByTestId("connection").textContent())?.includes("Live"), 20_000);
    await page.getByTestId("tab-mine").click();
    await page.getByRole("button", { name: new RegExp(title) }).first().click();
    await eventually("the draft to be back", async () => (await page.getByTestId("composer").inputValue()) === draft);
    await shot("draft-kept");
    const unexpected = problems.filter((p) => !/ERR_CONNECTION_REFUSED|WebSocket connection|Failed to fetch|Failed to load resource/.test(p));
    assert.deepEqual(unexpected, [], "no CSP violation or script error");
  } catch (err) {
    if (page) await shot("failed").catch(() => {});
    throw new Error(`${err.message}\n--- hub log ---\n${spawnSync("tail", ["-n", "30", hubLog], { encoding: "utf8" }).stdout}`, { cause: err });
  } finally {
    await browser.close();
  }
});
