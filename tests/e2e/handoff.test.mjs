// The walking skeleton, end to end: Botpress posts a handoff to the hub inside the real app (solo
// mode), the handoff appears in the window, and a notification with its title reaches the desktop's
// notification server over D-Bus.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { remote } from "webdriverio";
import { freePort, requireSession, root, startNotificationWatch, startTauriDriver, waitFor } from "./harness.mjs";

const app = process.env.BATON_APP ?? path.join(root, "target/debug/baton");
const TITLE = "Refund for order 1234";
const FIRST_MESSAGE = "Hi, the box was crushed 📦 <b>not bold</b>";

let browser;
let driver;
let notifications;
let port;
let dataDir;

/** What the app has written to its log file so far. */
function appLog() {
  try {
    return readFileSync(path.join(dataDir, "baton.log"), "utf8");
  } catch {
    return "";
  }
}

before(async () => {
  requireSession();
  notifications = await startNotificationWatch();
  port = await freePort();
  driver = await startTauriDriver({
    BATON_DATA_DIR: (dataDir = mkdtempSync(path.join(os.tmpdir(), "baton-e2e-"))),
    BATON_SOLO_LISTEN: `127.0.0.1:${port}`,
    RUST_LOG: "info",
    // WebKitGTK's GPU paths have no GPU under Xvfb: render in software so the window paints.
    WEBKIT_DISABLE_DMABUF_RENDERER: "1",
    WEBKIT_DISABLE_COMPOSITING_MODE: "1",
  });
  browser = await remote({
    hostname: "127.0.0.1",
    port: 4444,
    logLevel: "warn",
    // Classic WebDriver: WebKitWebDriver does not speak WebDriver BiDi, which webdriverio asks for by default.
    capabilities: { "wdio:enforceWebDriverClassic": true, "tauri:options": { application: app } },
  });
});

after(async () => {
  await browser?.deleteSession().catch(() => {});
  driver?.stop();
  notifications?.stop();
});

/**
 * Saves what the window shows to target/e2e/NAME.png. WebKitWebDriver takes about a minute per
 * screenshot under Xvfb, so only failures and BATON_E2E_SCREENSHOT=1 ask for one.
 */
async function screenshot(name) {
  mkdirSync(path.join(root, "target/e2e"), { recursive: true });
  await browser.saveScreenshot(path.join(root, `target/e2e/${name}.png`)).catch(() => {});
}

/** Runs a test body, keeping a screenshot of the window when it fails. */
function withScreenshot(name, body) {
  return async () => {
    try {
      await body();
      if (process.env.BATON_E2E_SCREENSHOT === "1") await screenshot(name);
    } catch (err) {
      await screenshot(`${name}-failed`);
      throw err;
    }
  };
}

async function botpress(endpoint, route, body) {
  const response = await fetch(`${endpoint}/${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `${route} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

/**
 * The text of the first element matching `selector` as laid out on screen (`innerText`).
 * WebKitWebDriver's own element-text command answers "" for visible text in this setup.
 */
async function shownText(selector) {
  return browser.execute((sel) => document.querySelector(sel)?.innerText ?? "", selector);
}

test("a Botpress handoff appears in the window and raises a desktop notification", withScreenshot("handoff", async () => {
  const endpointField = await browser.$('[data-testid="endpoint-url"]');
  await endpointField.waitForExist({ timeout: 30_000, timeoutMsg: `no endpoint shown; app log:\n${appLog()}` });
  const endpoint = await endpointField.getValue();
  assert.match(endpoint, new RegExp(`^http://127\\.0\\.0\\.1:${port}/botpress/[0-9a-f]{64}$`));

  // What Botpress sends for a first-time user who asks for a human (CONTRACTS §1.7).
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
