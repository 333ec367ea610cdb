// The walking skeleton, end to end: Botpress posts a handoff to the hub inside the real app (solo
// mode), the handoff appears in the window, and a notification with its title reaches the desktop's
// notification server over D-Bus.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  botpress,
  freePort,
  logIn,
  requireSession,
  root,
  shownText as shownText_,
  startFakeWebhook,
  startApp,
  startNotificationWatch,
  waitFor,
} from "./harness.mjs";

const TITLE = "Refund for order 1234";
const FIRST_MESSAGE = "Hi, the box was crushed 📦 <b>not bold</b>";

let browser;
let driver;
let notifications;
let port;
let dataDir;

/** What the app has written to its log file so far. */
const appLog = () => logIn(dataDir);
const shownText = (selector) => shownText_(browser, selector);

before(async () => {
  requireSession();
  notifications = await startNotificationWatch();
  port = await freePort();
  ({ driver, browser } = await startApp({
    BATON_DATA_DIR: (dataDir = mkdtempSync(path.join(os.tmpdir(), "baton-e2e-"))),
    BATON_SOLO_LISTEN: `127.0.0.1:${port}`,
  }));
});

after(async () => {
  await browser?.deleteSession().catch(() => {});
  driver?.stop();
  notifications?.stop();
  // A run leaves nothing behind in /tmp: CI shares the machine's disk.
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Settings: open (while the bot is not fully connected it is open by itself). */
async function openSettings() {
  if (!(await (await browser.$('[data-testid="settings"]')).isExisting())) await (await browser.$('[data-testid="settings-toggle"]')).click();
  await (await browser.$('[data-testid="settings"]')).waitForExist({ timeout: 5_000 });
}

async function closeSettings() {
  if (await (await browser.$('[data-testid="settings"]')).isExisting()) await (await browser.$('[data-testid="settings-close"]')).click();
}

/** The solo desk's Botpress endpoint, as Settings shows it. */
async function endpointUrl() {
  await openSettings();
  const endpoint = await (await browser.$('[data-testid="endpoint-url"]')).getValue();
  await closeSettings();
  return endpoint;
}

/** Saves the Botpress webhook in Settings, as an agent pastes it. */
async function setWebhook(url) {
  await openSettings();
  await (await browser.$('[data-testid="webhook-url"]')).setValue(url);
  await (await browser.$("form.webhook button")).click();
  await browser.waitUntil(async () => (await shownText('[data-testid="webhook-set"]')).includes(url), { timeout: 10_000 });
  await closeSettings();
}

/**
 * Saves what the screen shows to target/e2e/NAME.png, with ImageMagick's `import` (fast) when it is
 * installed, else through WebKitWebDriver (a minute or more per screenshot under Xvfb). Only
 * BATON_E2E_SCREENSHOT=1 asks for them.
 */
async function screenshot(name) {
  mkdirSync(path.join(root, "target/e2e"), { recursive: true });
  const take = async (file) => {
    try {
      execFileSync("import", ["-window", "root", file]);
    } catch {
      await browser.saveScreenshot(file).catch(() => {});
    }
  };
  // Both themes: the window's theme follows the system's through one class on the root.
  const dark = await browser.execute(() => document.documentElement.classList.contains("dark"));
  await take(path.join(root, `target/e2e/${name}${dark ? "-dark" : ""}.png`));
  await browser.execute((d) => document.documentElement.classList.toggle("dark", d), !dark);
  await sleep(300);
  await take(path.join(root, `target/e2e/${name}${dark ? "" : "-dark"}.png`));
  await browser.execute((d) => document.documentElement.classList.toggle("dark", d), dark);
}

/** Runs a test body; with BATON_E2E_SCREENSHOT=1, keeps a screenshot of the window afterwards. */
function withScreenshot(name, body) {
  return async () => {
    const wanted = process.env.BATON_E2E_SCREENSHOT === "1";
    try {
      await body();
      if (wanted) await screenshot(name);
    } catch (err) {
      if (wanted) await screenshot(`${name}-failed`);
      throw err;
    }
  };
}

test("a Botpress handoff appears in the window and raises a desktop notification", { timeout: 120_000 }, withScreenshot("handoff", async () => {
  const endpointField = await browser.$('[data-testid="endpoint-url"]');
  await endpointField.waitForExist({ timeout: 30_000, timeoutMsg: `no endpoint shown; app log:\n${appLog()}` });
  const endpoint = await endpointField.getValue();
  assert.match(endpoint, new RegExp(`^http://127\\.0\\.0\\.1:${port}/botpress/[0-9a-f]{64}$`));

  // What Botpress sends for a first-time user who asks for a human (ARCHITECTURE.md, Botpress protocol §1.7).
  const user = await botpress(endpoint, "createRemoteUser", {
    type: "createRemoteUser",
    payload: { role: "end-user", name: "Dana Reyes", email: "dana@example.com" },
  });
  const ticket = await botpress(endpoint, "createRemoteConversation", {
    type: "createRemoteConversation",
    payload: { title: TITLE, description: "Order #1234 arrived damaged" },
  });
  await botpress(endpoint, "botSendsMessage", {
    type: "botSendsMessage",
    remoteConversationId: ticket.id,
    remoteUserId: user.id,
    payload: { text: FIRST_MESSAGE },
  });

  const item = await browser.$('[data-testid="handoff-item"]');
  await item.waitForExist({ timeout: 20_000, timeoutMsg: `the handoff never appeared; app log:\n${appLog()}` });
  assert.ok(await item.isDisplayed(), "the handoff is on screen");
  assert.equal(await shownText('[data-testid="handoff-title"]'), TITLE);
  await browser.waitUntil(async () => (await shownText('[data-testid="handoff-item"]')).includes("Dana Reyes"), {
    timeout: 10_000,
    timeoutMsg: "the customer's name is not shown in the list",
  });
  await browser.waitUntil(async () => (await shownText('[data-testid="handoff-last-message"]')) === FIRST_MESSAGE, {
    timeout: 10_000,
    timeoutMsg: "the last message is not shown in the list",
  });

  await item.click();
  const message = await browser.$('[data-testid="message"]');
  await message.waitForExist({ timeout: 10_000 });
  assert.ok((await shownText('[data-testid="message"]')).includes(FIRST_MESSAGE), "the customer's message is shown as text, not HTML");
  assert.equal(await browser.$$(".message b").length, 0, "customer content is never rendered as HTML");

  await waitFor(
    `a Notify call carrying "${TITLE}"`,
    () => notifications.calls().includes(TITLE),
    15_000,
  ).catch((err) => {
    throw new Error(`${err.message}\nD-Bus monitor saw:\n${notifications.calls()}\napp log:\n${appLog()}`);
  });

  // Clicking the notification (dunst invokes its default action over D-Bus) brings the window forward.
  execFileSync("dunstctl", ["action", "0"]);
  await waitFor("the app to handle the click", () => appLog().includes("notification clicked"), 10_000).catch(
    (err) => {
      throw new Error(`${err.message}\napp log:\n${appLog()}`);
    },
  );
  assert.equal(await browser.execute(() => document.hasFocus()), true, "the window has focus after the click");
}));

test("without a GPU, the window's process draws the inbox without loading software OpenGL", { timeout: 60_000 }, async (t) => {
  const gpu = (() => {
    try {
      return readdirSync("/dev/dri").some((name) => name.startsWith("renderD"));
    } catch {
      return false;
    }
  })();
  if (gpu) return t.skip("this machine has a GPU: the window keeps its OpenGL");
  // The app's process is the one that maps WebKit's UI library (the web process is another binary).
  const maps = execFileSync("pgrep", ["-x", "baton"]).toString().trim().split("\n")
    .map((pid) => { try { return readFileSync(`/proc/${pid}/maps`, "utf8"); } catch { return ""; } })
    .find((m) => m.includes("libwebkit2gtk"));
  assert.ok(maps, "the app's process is running");
  assert.ok(!/libLLVM|_dri\.so|libgallium/.test(maps), "Mesa's driver and LLVM (about 50 MB) are not in the window's process");
  assert.match(appLog(), /the window's OpenGL: off \(no GPU/);
  // And the window still draws what it shows: the handoff from the test before, with its message.
  assert.equal(await shownText('[data-testid="handoff-title"]'), TITLE);
  assert.ok(await browser.$('[data-testid="message"]').isDisplayed(), "the conversation is on screen");
});

test("an agent takes the handoff, replies with a template, notes and resolves it", { timeout: 120_000 }, withScreenshot("work", async () => {
  const webhook = await startFakeWebhook();
  try {
    // The admin adds a canned reply with the CLI while the desk runs (same data directory).
    execFileSync(path.join(root, "target/debug/baton-hub"), [
      "template", "add", "--data", path.join(dataDir, "hub"), "--name", "refund", "--text", "Your refund is on its way.",
    ]);

    await setWebhook(webhook.url);

    await (await browser.$('[data-testid="handoff-item"]')).click();
    await (await browser.$('[data-testid="assign"]')).click();
    await browser
      .waitUntil(async () => (await shownText('[data-testid="handoff-status"]')).toLowerCase() === "assigned", { timeout: 10_000 })
      .catch(async () => {
        throw new Error(
          `the handoff was not assigned: status ${await shownText('[data-testid="handoff-status"]')}, ` +
            `error ${await shownText('[data-testid="error"]')}, page ${(await shownText("main")).slice(0, 800)}`,
        );
      });
    await waitFor("agent-assigned at Botpress", () => webhook.calls.some((c) => c.route === "agent-assigned"), 10_000);

    const composer = await browser.$('[data-testid="composer"]');
    await composer.setValue("Hi Dana! :ref");
    const suggestion = await browser.$('[data-testid="template-suggestions"] button');
    await suggestion.waitForExist({ timeout: 10_000, timeoutMsg: "typing :ref offered no template" });
    await suggestion.click();
    assert.equal(await composer.getValue(), "Hi Dana! Your refund is on its way.");
    await (await browser.$('[data-testid="send"]')).click();

    await waitFor(
      "the reply at Botpress",
      () => webhook.calls.some((c) => c.route === "message-from-agent" && c.body.payload.text === "Hi Dana! Your refund is on its way."),
      10_000,
    );
    await browser.waitUntil(
      async () => (await browser.execute(() => [...document.querySelectorAll('[data-testid="delivery"]')].map((e) => e.innerText))).includes("Sent"),
      { timeout: 10_000, timeoutMsg: "the reply is not shown as sent" },
    );

    await (await browser.$('[data-testid="note-input"]')).setValue("Refund approved by Sam");
    await (await browser.$('[data-testid="notes"] + form button')).click();
    await browser.waitUntil(async () => (await shownText('[data-testid="notes"]')).includes("Refund approved by Sam"), {
      timeout: 10_000,
      timeoutMsg: "the note did not appear",
    });

    await (await browser.$('[data-testid="resolve"]')).click();
    await waitFor("stop-hitl at Botpress", () => webhook.calls.some((c) => c.route === "stop-hitl"), 10_000);
    const routes = webhook.calls.map((c) => c.route);
    assert.deepEqual(routes, ["agent-assigned", "message-from-agent", "message-from-agent", "stop-hitl"]);
    assert.ok(webhook.calls.every((c) => c.route === "stop-hitl" || c.body.remoteUserId.startsWith("agent:")));
  } finally {
    webhook.server.close();
  }
}));

test("history is searched in the window, and a reply the hub refuses stays with its reason until discarded", { timeout: 120_000 }, withScreenshot("search", async () => {
  const endpoint = await endpointUrl();
  const user = await botpress(endpoint, "createRemoteUser", {
    type: "createRemoteUser",
    payload: { role: "end-user", name: "Sam Okafor" },
  });
  const ticket = await botpress(endpoint, "createRemoteConversation", {
    type: "createRemoteConversation",
    payload: { title: "Broken lamp" },
  });
  await botpress(endpoint, "botSendsMessage", {
    type: "botSendsMessage",
    remoteConversationId: ticket.id,
    remoteUserId: user.id,
    payload: { text: "My lamp arrived broken, the shade is cracked" },
  });

  // Search answers from the device's cache, with the matched word marked.
  await (await browser.$('[data-testid="search-toggle"]')).click();
  const input = await browser.$('[data-testid="search-input"]');
  await input.waitForExist({ timeout: 10_000 });
  await browser.waitUntil(
    async () => {
      await input.setValue("cracked");
      await browser.pause(300);
      return (await shownText('[data-testid="search-results"]')).includes("cracked");
    },
    { timeout: 20_000, timeoutMsg: "search never found the new message" },
  );
  assert.equal(await browser.execute(() => document.querySelector('[data-testid="search-hit"] mark')?.textContent), "cracked");
  await (await browser.$('[data-testid="search-hit"]')).click();
  await browser.waitUntil(async () => (await shownText('[data-testid="conversation-title"]')) === "Broken lamp", {
    timeout: 10_000,
    timeoutMsg: "the search hit did not open its conversation",
  });

  // The solo channel relays text only: an image is refused, and the reason stays with the message.
  await (await browser.$('[data-testid="attach-toggle"]')).click();
  await (await browser.$('[data-testid="attach-url"]')).setValue("https://cdn.example.com/label.png");
  await (await browser.$('[data-testid="attach-send"]')).click();
  await browser.waitUntil(async () => (await shownText('[data-testid="pending-state"]')).includes("relays only text"), {
    timeout: 15_000,
    timeoutMsg: `no refused message shown; page: ${(await shownText("main")).slice(0, 600)}`,
  });
  // The refusal is said beside the form that sent it.
  assert.match(await shownText('[data-testid="attach-refused"]'), /relays only text/);
  await (await browser.$('[data-testid="discard"]')).click();
  await browser.waitUntil(async () => (await browser.$$('[data-testid="pending-message"]').length) === 0, {
    timeout: 10_000,
    timeoutMsg: "the discarded message is still shown",
  });
}));

/** Clicks the handoff in the list whose text includes `title`. */
async function openHandoff(title) {
  await browser.waitUntil(
    async () =>
      browser.execute((t) => {
        const item = [...document.querySelectorAll('[data-testid="handoff-item"]')].find((b) => b.innerText.includes(t));
        item?.click();
        return !!item;
      }, title),
    { timeout: 15_000, timeoutMsg: `"${title}" is not in the list` },
  );
  await browser.waitUntil(async () => (await shownText('[data-testid="conversation-title"]')) === title, {
    timeout: 10_000,
    timeoutMsg: `"${title}" did not open`,
  });
}

/** The composer on screen: which conversation it writes to, and what it holds. */
function composerState() {
  return browser.execute(() => {
    const box = document.querySelector('[data-testid="composer"]');
    return box ? { conversation: box.dataset.conversation, text: box.value } : null;
  });
}

async function newHandoff(endpoint, customer, title, text) {
  const user = await botpress(endpoint, "createRemoteUser", { type: "createRemoteUser", payload: { role: "end-user", name: customer } });
  const ticket = await botpress(endpoint, "createRemoteConversation", { type: "createRemoteConversation", payload: { title } });
  await botpress(endpoint, "botSendsMessage", { type: "botSendsMessage", remoteConversationId: ticket.id, remoteUserId: user.id, payload: { text } });
  return ticket.id;
}

test("a draft stays with its own conversation when switching, and Ctrl+Enter sends only to the one shown", { timeout: 120_000 }, withScreenshot("drafts", async () => {
  const webhook = await startFakeWebhook();
  try {
    // Back from the search view to the lists.
    if (await (await browser.$('[data-testid="search-input"]')).isExisting()) await (await browser.$('[data-testid="search-toggle"]')).click();
    await setWebhook(webhook.url);
    await (await browser.$('[data-testid="tab-pending"]')).click();

    const endpoint = await endpointUrl();
    const sam = await newHandoff(endpoint, "Sam Brooks", "Parcel late", "Where is my parcel?");
    const olga = await newHandoff(endpoint, "Olga Petrova", "Wrong size", "The shoes are too small");

    await openHandoff("Parcel late");
    await browser.waitUntil(async () => (await composerState())?.conversation === sam, { timeout: 10_000, timeoutMsg: "no composer for Sam" });
    await (await browser.$('[data-testid="composer"]')).setValue("Sam: your parcel ships Monday");

    // Straight to Olga, without waiting: her composer must start from her own (empty) draft.
    await openHandoff("Wrong size");
    await browser.waitUntil(async () => (await composerState())?.conversation === olga, { timeout: 10_000, timeoutMsg: "no composer for Olga" });
    await browser.pause(800);
    assert.deepEqual(await composerState(), { conversation: olga, text: "" }, "Olga's composer holds nothing of Sam's");

    const box = await browser.$('[data-testid="composer"]');
    await box.setValue("Olga: exchange approved");
    await browser.keys(["Control", "Enter"]);
    await waitFor("Olga's reply at Botpress", () => webhook.calls.some((c) => c.route === "message-from-agent" && c.body.payload.text === "Olga: exchange approved"), 15_000);

    await openHandoff("Parcel late");
    await browser.waitUntil(async () => (await composerState())?.text === "Sam: your parcel ships Monday", {
      timeout: 10_000,
      timeoutMsg: `Sam's draft was not kept: ${JSON.stringify(await composerState())}`,
    });
    const replies = webhook.calls.filter((c) => c.route === "message-from-agent" && c.body.remoteUserId.startsWith("agent:"));
    const agentTexts = replies.map((c) => [c.body.remoteConversationId, c.body.payload.text]).filter(([, t]) => t.includes(":") && (t.startsWith("Sam") || t.startsWith("Olga")));
    assert.deepEqual(agentTexts, [[olga, "Olga: exchange approved"]], "only Olga's words went out, to Olga");
  } finally {
    webhook.server.close();
  }
}));

test("a reply with no webhook set says why it waits; cancelling asks first; cancelled handoffs have a list", { timeout: 120_000 }, withScreenshot("cancel", async () => {
  // The admin clears the channel's webhook URL with the CLI while the desk runs.
  execFileSync(path.join(root, "target/debug/baton-hub"), [
    "botpress", "set", "--data", path.join(dataDir, "hub"), "--channel", "Botpress", "--webhook-url", "",
  ], { env: { ...process.env, BATON_ALLOW_PRIVATE_URLS: "1" } });
  const endpoint = await endpointUrl();
  await newHandoff(endpoint, "Ken Ito", "Invoice copy", "Can I get my invoice again?");
  await (await browser.$('[data-testid="tab-pending"]')).click();
  await openHandoff("Invoice copy");
  await (await browser.$('[data-testid="composer"]')).setValue("Sending it now");
  await (await browser.$('[data-testid="send"]')).click();
  await browser.waitUntil(
    async () => (await browser.execute(() => [...document.querySelectorAll('[data-testid="delivery"]')].map((e) => e.innerText).join("\n"))).includes("no Botpress webhook URL"),
    { timeout: 20_000, timeoutMsg: `the waiting reply does not say why: ${(await shownText("main")).slice(0, 800)}` },
  );

  // One click is not enough to end a customer's session.
  await (await browser.$('[data-testid="cancel"]')).click();
  await (await browser.$('[data-testid="cancel-confirm"]')).waitForExist({ timeout: 5_000 });
  await (await browser.$('[data-testid="cancel-no"]')).click();
  assert.notEqual((await shownText('[data-testid="handoff-status"]')).toLowerCase(), "cancelled");
  await (await browser.$('[data-testid="cancel"]')).click();
  await (await browser.$('[data-testid="cancel-yes"]')).click();
  await browser.waitUntil(async () => (await shownText('[data-testid="handoff-status"]')).toLowerCase() === "cancelled", {
    timeout: 10_000,
    timeoutMsg: "the handoff was not cancelled",
  });

  // A customer who ends the session while waiting is findable in the Cancelled list.
  const gone = await newHandoff(endpoint, "Lea Roux", "Changed my mind", "Never mind");
  await botpress(endpoint, "botSendsMessage", {
    type: "botSendsMessage", remoteConversationId: gone, remoteUserId: "BOT", payload: { text: "( The user has ended the session. )" },
  });
  await (await browser.$('[data-testid="tab-cancelled"]')).click();
  await browser.waitUntil(async () => (await shownText("nav.handoffs")).includes("Changed my mind"), {
    timeout: 15_000,
    timeoutMsg: `not in the Cancelled list: ${await shownText("nav.handoffs")}`,
  });
  assert.ok((await shownText("nav.handoffs")).includes("Invoice copy"));
}));

/** A stand-in for Meta's Graph API: records every message the hub sends and answers with a wamid. */
function startFakeGraph() {
  const sent = [];
  const uploads = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");
      if (req.method === "GET" && /^\/v[0-9.]+\/media-e2e$/.test(req.url) && req.headers.authorization === "Bearer wa-token") {
        const sha256 = createHash("sha256").update(png).digest("hex");
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({ url: `http://127.0.0.1:${server.address().port}/files/media-e2e`, mime_type: "image/png", sha256, file_size: png.length, id: "media-e2e" }),
        );
      } else if (req.method === "GET" && req.url === "/files/media-e2e" && req.headers.authorization === "Bearer wa-token") {
        res.writeHead(200, { "content-type": "image/png" }).end(png);
      } else if (req.method === "POST" && /^\/v[0-9.]+\/5550001234\/media$/.test(req.url) && req.headers.authorization === "Bearer wa-token") {
        // Meta's media upload: multipart with messaging_product, type and the file.
        const multipart = (req.headers["content-type"] ?? "").startsWith("multipart/form-data");
        const ok = multipart && body.includes('name="messaging_product"') && body.includes('filename="caja.png"');
        uploads.push(ok ? "caja.png" : `bad upload: ${req.headers["content-type"]}`);
        res.writeHead(ok ? 200 : 400, { "content-type": "application/json" }).end(JSON.stringify(ok ? { id: "up-e2e" } : { error: { code: 100 } }));
      } else if (req.method === "POST" && /^\/v[0-9.]+\/5550001234\/messages$/.test(req.url) && req.headers.authorization === "Bearer wa-token") {
        sent.push(JSON.parse(body || "null"));
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ messages: [{ id: `wamid.e2e${sent.length}` }] }));
      } else {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: 100, message: `unexpected ${req.method} ${req.url}` } }));
      }
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ sent, uploads, server, url: `http://127.0.0.1:${server.address().port}` })));
}

test("a WhatsApp customer's message raises a notification, and the agent's reply reaches WhatsApp once", { timeout: 120_000 }, withScreenshot("whatsapp", async () => {
  await sleep(3_000); // the earlier steps' handoffs are told first (a burst is told as one summary)
  const graph = await startFakeGraph();
  try {
    const added = execFileSync(
      path.join(root, "target/debug/baton-hub"),
      ["whatsapp", "add", "--data", path.join(dataDir, "hub"), "--name", "WhatsApp line", "--phone-number-id", "5550001234", "--verify-token", "vt", "--graph-url", graph.url],
      { input: "wa-app-secret\nwa-token\n", encoding: "utf8" },
    );
    const webhookPath = added.trim().split("\n").pop();
    const notification = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [{ id: "1", changes: [{ field: "messages", value: {
        messaging_product: "whatsapp",
        metadata: { display_phone_number: "15550001234", phone_number_id: "5550001234" },
        contacts: [{ profile: { name: "Marta Ruiz" }, wa_id: "34600111222" }],
        messages: [{ from: "34600111222", id: "wamid.e2e-in-1", timestamp: String(Math.floor(Date.now() / 1000)), type: "text", text: { body: "Hola, mi pedido no ha llegado" } }],
      } }] }],
    });
    const signature = "sha256=" + createHmac("sha256", "wa-app-secret").update(notification).digest("hex");
    const posted = await fetch(`http://127.0.0.1:${port}${webhookPath}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signature },
      body: notification,
    });
    assert.equal(posted.status, 200, await posted.text());

    await waitFor("a Notify call for the WhatsApp chat", () => notifications.calls().includes("Marta Ruiz on WhatsApp"), 15_000).catch((err) => {
      throw new Error(`${err.message}\nD-Bus monitor saw:\n${notifications.calls()}\napp log:\n${appLog()}`);
    });
    await (await browser.$('[data-testid="tab-pending"]')).click();
    const item = await browser.$("//button[@data-testid='handoff-item'][.//*[contains(., 'Marta Ruiz on WhatsApp')]]");
    await item.waitForExist({ timeout: 10_000, timeoutMsg: `the WhatsApp chat is not listed: ${(await shownText("nav")).slice(0, 600)}` });
    const listed = await browser.execute(() => [...document.querySelectorAll('[data-testid="handoff-item"]')].map((b) => b.innerText).join("\n---\n"));
    assert.match(listed, /WhatsApp[\s\S]*Marta Ruiz[\s\S]*left to reply/, listed);
    await item.click();
    await browser.waitUntil(async () => (await shownText('[data-testid="conversation-title"]')) === "Marta Ruiz on WhatsApp", { timeout: 10_000 });
    assert.match(await shownText('[data-testid="conversation-window"]'), /left to reply/);

    const composer = await browser.$('[data-testid="composer"]');
    await composer.setValue("Hola Marta, lo reviso ahora mismo");
    await (await browser.$('[data-testid="send"]')).click();
    await waitFor("the reply at the Graph API", () => graph.sent.some((m) => m.text?.body === "Hola Marta, lo reviso ahora mismo"), 15_000).catch((err) => {
      throw new Error(`${err.message}\ngraph saw: ${JSON.stringify(graph.sent)}\napp log:\n${appLog()}`);
    });
    await sleep(1000);
    const replies = graph.sent.filter((m) => m.text?.body === "Hola Marta, lo reviso ahora mismo");
    assert.equal(replies.length, 1, "sent exactly once");
    assert.equal(replies[0].to, "34600111222");

    // A photo from the customer shows inline, fetched through the hub.
    const photo = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [{ id: "1", changes: [{ field: "messages", value: {
        messaging_product: "whatsapp",
        metadata: { phone_number_id: "5550001234" },
        contacts: [{ profile: { name: "Marta Ruiz" }, wa_id: "34600111222" }],
        messages: [{ from: "34600111222", id: "wamid.e2e-in-2", timestamp: String(Math.floor(Date.now() / 1000)), type: "image",
                     image: { id: "media-e2e", mime_type: "image/png", caption: "la caja rota" } }],
      } }] }],
    });
    const photoPosted = await fetch(`http://127.0.0.1:${port}${webhookPath}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": "sha256=" + createHmac("sha256", "wa-app-secret").update(photo).digest("hex") },
      body: photo,
    });
    assert.equal(photoPosted.status, 200);
    const image = await browser.$('[data-testid="media-image"]');
    await image.waitForExist({ timeout: 15_000, timeoutMsg: `the photo is not shown: ${(await shownText("main")).slice(0, 600)}\napp log:\n${appLog()}` });
    await browser.waitUntil(async () => (await browser.execute(() => document.querySelector('[data-testid="media-image"]')?.naturalWidth ?? 0)) > 0, {
      timeout: 10_000,
      timeoutMsg: "the photo never loaded in the window",
    });

    // The agent answers the first message quoting it, reacts to the photo, and sends a photo
    // from their computer (through the app's upload command, the hub, and Meta's media upload).
    await (await browser.$('[data-testid="quote-reply"]')).click();
    await (await browser.$('[data-testid="quoting"]')).waitForExist({ timeout: 5_000 });
    await (await browser.$('[data-testid="composer"]')).setValue("Ya lo he encontrado");
    await (await browser.$('[data-testid="send"]')).click();
    await waitFor("the quoted reply", () => graph.sent.some((m) => m.text?.body === "Ya lo he encontrado"), 15_000);
    assert.equal(graph.sent.find((m) => m.text?.body === "Ya lo he encontrado").context?.message_id, "wamid.e2e-in-1");
    const reactButtons = await browser.$$('[data-testid="react"]');
    await reactButtons[reactButtons.length - 1].click();
    await (await browser.$('[aria-label="React 🙏"]')).click();
    await waitFor("the reaction", () => graph.sent.some((m) => m.type === "reaction"), 15_000);
    assert.deepEqual(graph.sent.find((m) => m.type === "reaction").reaction, { message_id: "wamid.e2e-in-2", emoji: "🙏" });

    const file = path.join(dataDir, "caja.png");
    writeFileSync(file, Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64"));
    await (await browser.$('[data-testid="file-input"]')).addValue(file);
    await (await browser.$('[data-testid="file-name"]')).waitForExist({ timeout: 5_000 });
    await (await browser.$('[data-testid="file-caption"]')).setValue("La nueva caja");
    await (await browser.$('[data-testid="file-send"]')).click();
    await waitFor("the photo at the Graph API", () => graph.sent.some((m) => m.type === "image"), 20_000).catch((err) => {
      throw new Error(`${err.message}
uploads: ${graph.uploads}
graph saw: ${JSON.stringify(graph.sent)}
window: ${appLog()}`);
    });
    assert.deepEqual(graph.uploads, ["caja.png"]);
    assert.deepEqual(graph.sent.find((m) => m.type === "image").image, { id: "up-e2e", caption: "La nueva caja" });
    // The agent's own photo shows in the conversation too.
    await browser.waitUntil(async () => (await browser.$$('[data-testid="media-image"]')).length === 2, {
      timeout: 15_000,
      timeoutMsg: `the sent photo is not shown: ${(await shownText("main")).slice(0, 800)}`,
    });
  } finally {
    graph.server.close();
  }
}));

/** A bot on loopback: takes Baton's events, checking Baton-Signature on each. */
function startFakeBot() {
  const events = [];
  let secret = "";
  let forged = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const header = String(req.headers["baton-signature"] ?? "");
      const t = /(?:^|,)t=(\d+)/.exec(header)?.[1];
      const v1 = /(?:^|,)v1=([0-9a-f]{64})/.exec(header)?.[1];
      const expected = t ? createHmac("sha256", secret).update(`${t}.${body}`).digest("hex") : "";
      if (!t || v1 !== expected || Math.abs(Date.now() / 1000 - Number(t)) > 300) {
        forged += 1;
        res.writeHead(401).end();
        return;
      }
      events.push(JSON.parse(body));
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        events,
        server,
        forged: () => forged,
        trust: (s) => (secret = s),
        url: `http://127.0.0.1:${server.address().port}/events`,
      }),
    ),
  );
}

/** The bot connected in the bot step; the next step puts it in front of the WhatsApp number. */
let orderBot;
let orderBotToken;
after(() => orderBot?.server.close());

test("a bot hands over with its history: the agent reads it, answers, and the bot hears the reply, signed", { timeout: 120_000 }, withScreenshot("bot", async () => {
  const bot = (orderBot = await startFakeBot());
  {
    const added = execFileSync(
      path.join(root, "target/debug/baton-hub"),
      ["bot", "add", "--data", path.join(dataDir, "hub"), "--name", "Order bot", "--events-url", bot.url],
      { encoding: "utf8" },
    );
    const token = (orderBotToken = /^token: (.+)$/m.exec(added)?.[1]);
    bot.trust(/^signing-secret: (.+)$/m.exec(added)?.[1] ?? "");
    assert.ok(token, added);
    const history = Array.from({ length: 20 }, (_, i) => ({
      author: i % 2 === 0 ? "user" : "bot",
      type: "text",
      payload: { text: i % 2 === 0 ? `customer line ${i}` : `bot line ${i}` },
    }));
    const started = await fetch(`http://127.0.0.1:${port}/bot/v1/handoffs`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ user: { id: "shop-user-7", name: "Lena Vogel" }, title: "Lena Vogel wants a person", priority: "urgent", history }),
    });
    assert.equal(started.status, 200, await started.clone().text());
    const { conversation_id: conversationId } = await started.json();

    await waitFor("a Notify call for the bot's handoff", () => notifications.calls().includes("Lena Vogel wants a person"), 15_000);
    await (await browser.$('[data-testid="tab-pending"]')).click();
    const item = await browser.$("//button[@data-testid='handoff-item'][.//*[contains(., 'Lena Vogel wants a person')]]");
    await item.waitForExist({ timeout: 10_000, timeoutMsg: `the bot's handoff is not listed: ${(await shownText("nav")).slice(0, 600)}` });
    assert.match(await item.getText(), /urgent/i);
    await item.click();
    await browser.waitUntil(async () => (await shownText('[data-testid="conversation-title"]')) === "Lena Vogel wants a person", { timeout: 10_000 });
    // The whole bot conversation is there, oldest first.
    await browser.waitUntil(async () => (await browser.$$('[data-testid="message"]')).length >= 20, {
      timeout: 10_000,
      timeoutMsg: `the history is not shown: ${(await shownText("main")).slice(0, 800)}`,
    });
    const texts = await browser.execute(() => [...document.querySelectorAll('[data-testid="message"]')].map((m) => m.innerText));
    assert.match(texts[0], /customer line 0/);
    assert.match(texts[19], /bot line 19/);

    await (await browser.$('[data-testid="composer"]')).setValue("Hallo Lena, ich kümmere mich darum");
    await (await browser.$('[data-testid="send"]')).click();
    await waitFor("the reply at the bot", () => bot.events.some((e) => e.type === "agent.message" && e.data.payload?.text === "Hallo Lena, ich kümmere mich darum"), 15_000).catch((err) => {
      throw new Error(`${err.message}\nthe bot heard: ${JSON.stringify(bot.events)}\napp log:\n${appLog()}`);
    });
    const kinds = bot.events.map((e) => e.type);
    assert.deepEqual(kinds.slice(0, 1), ["handoff.assigned"], JSON.stringify(kinds));
    const reply = bot.events.find((e) => e.data.payload?.text === "Hallo Lena, ich kümmere mich darum");
    assert.equal(reply.data.conversation_id, conversationId);
    assert.equal(reply.data.user_id, "shop-user-7");
    assert.equal(bot.forged(), 0, "every event was signed");
  }
}));

test("a bot in front of the WhatsApp number answers by itself; its drafted reply reaches the customer only as the agent approved it", { timeout: 120_000 }, withScreenshot("bot-draft", async () => {
  assert.ok(orderBot && orderBotToken, "the bot step ran first");
  const graph = await startFakeGraph();
  try {
    execFileSync(
      path.join(root, "target/debug/baton-hub"),
      ["whatsapp", "set", "--data", path.join(dataDir, "hub"), "--channel", "WhatsApp line", "--bot", "Order bot", "--graph-url", graph.url],
      { encoding: "utf8" },
    );
    await sleep(6_000); // the hub re-reads a channel's settings within 5 s
    const notification = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [{ id: "1", changes: [{ field: "messages", value: {
        messaging_product: "whatsapp",
        metadata: { phone_number_id: "5550001234" },
        contacts: [{ profile: { name: "Iker Sanz" }, wa_id: "34600999888" }],
        messages: [{ from: "34600999888", id: "wamid.e2e-bot-1", timestamp: String(Math.floor(Date.now() / 1000)), type: "text", text: { body: "¿Cuándo sale mi pedido 7781?" } }],
      } }] }],
    });
    const webhookPath = execFileSync(path.join(root, "target/debug/baton-hub"), ["whatsapp", "list", "--data", path.join(dataDir, "hub")], { encoding: "utf8" })
      .match(/\/whatsapp\/\S+/)?.[0];
    assert.ok(webhookPath);
    const posted = await fetch(`http://127.0.0.1:${port}${webhookPath}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": "sha256=" + createHmac("sha256", "wa-app-secret").update(notification).digest("hex") },
      body: notification,
    });
    assert.equal(posted.status, 200);
    let heard;
    await waitFor("the customer's message at the bot", () => (heard = orderBot.events.find((e) => e.type === "user.message")), 15_000).catch((err) => {
      throw new Error(`${err.message}\nthe bot heard: ${JSON.stringify(orderBot.events)}\napp log:\n${appLog()}`);
    });
    const conversationId = heard.data.conversation_id;
    const bot = (route, body) =>
      fetch(`http://127.0.0.1:${port}/bot/v1/conversations/${conversationId}/${route}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${orderBotToken}` },
        body: JSON.stringify(body),
      });
    // The bot answers by itself, then drafts a reply it wants a person to check.
    assert.equal((await bot("replies", { type: "text", payload: { text: "Un momento, lo miro." } })).status, 200);
    await waitFor("the bot's own answer at the Graph API", () => graph.sent.some((m) => m.text?.body === "Un momento, lo miro."), 15_000);
    const drafted = await bot("drafts", { text: "Tu pedido 7781 sale mañana." });
    assert.equal(drafted.status, 200, await drafted.clone().text());

    await (await browser.$('[data-testid="tab-pending"]')).click();
    const item = await browser.$("//button[@data-testid='handoff-item'][.//*[contains(., \"Approve the bot's reply\")]]");
    await item.waitForExist({ timeout: 10_000, timeoutMsg: `the draft is not in the queue: ${(await shownText("nav")).slice(0, 600)}` });
    await item.click();
    const approve = await browser.$('[data-testid="draft-edit"]');
    await approve.waitForExist({ timeout: 10_000, timeoutMsg: `the draft is not shown: ${(await shownText("main")).slice(0, 800)}` });
    assert.match(await shownText("main"), /Un momento, lo miro\.[\s\S]*Tu pedido 7781 sale mañana\.[\s\S]*Draft: waiting for approval/);
    // (Opening the conversation marks the customer's message read: that call is not a message.)
    const texts = () => graph.sent.filter((m) => m.type === "text").map((m) => m.text.body);
    assert.deepEqual(texts(), ["Un momento, lo miro."], "nothing went out before the decision");
    if (process.env.BATON_E2E_SCREENSHOT === "1") await screenshot("bot-draft-waiting");
    await approve.click();
    await (await browser.$('[data-testid="draft-text"]')).setValue("Tu pedido 7781 sale hoy por la tarde.");
    await (await browser.$('[data-testid="draft-approve-edited"]')).click();
    await waitFor("the approved text at the Graph API", () => graph.sent.some((m) => m.text?.body === "Tu pedido 7781 sale hoy por la tarde."), 15_000).catch((err) => {
      throw new Error(`${err.message}\ngraph saw: ${JSON.stringify(graph.sent)}\napp log:\n${appLog()}`);
    });
    await waitFor("the decision at the bot", () => orderBot.events.some((e) => e.type === "draft.decided"), 15_000);
    const decided = orderBot.events.find((e) => e.type === "draft.decided");
    assert.equal(decided.data.decision, "approved");
    assert.equal(decided.data.sent_by, "baton");
    assert.deepEqual(texts(), ["Un momento, lo miro.", "Tu pedido 7781 sale hoy por la tarde."]);
    assert.equal(graph.sent.find((m) => m.text?.body === "Tu pedido 7781 sale hoy por la tarde.").to, "34600999888");
    await browser.waitUntil(async () => (await shownText("main")).includes("Edited from the bot's draft"), { timeout: 10_000 });
    assert.equal(orderBot.forged(), 0);
  } finally {
    graph.server.close();
  }
}));

test("a burst of handoffs is one summary notification, and clicking a notification opens its conversation", { timeout: 120_000 }, withScreenshot("notification-click", async () => {
  const endpoint = await endpointUrl();
  const notifyCalls = () => (notifications.calls().match(/member=Notify/g) ?? []).length;
  const hand = async (title, name) => {
    const user = await botpress(endpoint, "createRemoteUser", { type: "createRemoteUser", payload: { role: "end-user", name } });
    const ticket = await botpress(endpoint, "createRemoteConversation", { type: "createRemoteConversation", payload: { title } });
    await botpress(endpoint, "botSendsMessage", { type: "botSendsMessage", remoteConversationId: ticket.id, remoteUserId: user.id, payload: { text: "hello?" } });
  };
  await sleep(3_000); // earlier steps' notices are out
  const before = notifyCalls();
  for (let i = 1; i <= 6; i += 1) await hand(`Burst ${i}`, `Burst customer ${i}`);
  await waitFor("the burst's summary", () => notifications.calls().includes("6 new handoffs"), 15_000).catch((err) => {
    throw new Error(`${err.message}\nD-Bus monitor saw:\n${notifications.calls().slice(-3000)}`);
  });
  await sleep(1_500);
  assert.equal(notifyCalls() - before, 1, "six handoffs, one notification");

  // One more, alone: its own notification; clicking it (dunst's default action) shows it.
  execFileSync("dunstctl", ["close-all"]);
  await hand("Click me to open", "Nora Quint");
  await waitFor("its notification", () => notifications.calls().includes("Click me to open"), 15_000);
  await sleep(500);
  execFileSync("dunstctl", ["action", "0"]);
  await browser.waitUntil(async () => (await shownText('[data-testid="conversation-title"]')) === "Click me to open", {
    timeout: 10_000,
    timeoutMsg: `the clicked notification's conversation is not shown: ${(await shownText("main")).slice(0, 400)}\napp log:\n${appLog().slice(-2000)}`,
  });
}));

test("the other screens an agent uses: Settings with my notifications, the Team view and the shortcuts", { timeout: 120_000 }, async () => {
  const wanted = process.env.BATON_E2E_SCREENSHOT === "1";
  await openSettings();
  await (await browser.$('[data-testid="notification-settings"]')).waitForExist({ timeout: 5_000 });
  assert.match(await shownText('[data-testid="notification-settings"]'), /Quiet hours/);
  if (wanted) await screenshot("settings");
  await closeSettings();

  await (await browser.$('[data-testid="team-toggle"]')).click();
  await browser.waitUntil(async () => (await shownText("main")).includes("Online"), { timeout: 5_000 });
  if (wanted) await screenshot("team");
  await (await browser.$('[data-testid="team-toggle"]')).click();

  // Reports, drawn by the chart library inside the window from this device's copy.
  await (await browser.$('[data-testid="reports-toggle"]')).click();
  await (await browser.$('[data-testid="report-table"]')).waitForExist({ timeout: 10_000, timeoutMsg: `no report: ${(await shownText("body")).slice(0, 400)}` });
  assert.ok((await browser.$$('[data-testid="report-row"]').length) >= 1);
  const drawn = await browser.execute(() => [...document.querySelectorAll('[data-testid="report-view"] canvas')].map((c) => c.width * c.height));
  assert.ok(drawn.length === 2 && drawn.every((area) => area > 0), `the charts were drawn: ${drawn}`);
  await (await browser.$('[data-testid="report-export"]')).click();
  await browser.waitUntil(async () => (await shownText('[data-testid="report-saved"]')).includes(".csv"), { timeout: 5_000 });
  if (wanted) await screenshot("reports");
  await (await browser.$('[data-testid="reports-toggle"]')).click();

  await (await browser.$('[data-testid="shortcuts-toggle"]')).click();
  await (await browser.$('[data-testid="shortcuts"]')).waitForExist({ timeout: 5_000 });
  assert.match(await shownText('[data-testid="shortcuts"]'), /Mark as unread/);
  if (wanted) await screenshot("shortcuts");
  await browser.keys("Escape");
});
