// The walking skeleton, end to end: Botpress posts a handoff to the hub inside the real app (solo
// mode), the handoff appears in the window, and a notification with its title reaches the desktop's
// notification server over D-Bus.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
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

before(async () => {
  requireSession();
  notifications = await startNotificationWatch();
  port = await freePort();
  driver = await startTauriDriver({
    BATON_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), "baton-e2e-")),
    BATON_SOLO_LISTEN: `127.0.0.1:${port}`,
    RUST_LOG: "info",
  });
  browser = await remote({
    hostname: "127.0.0.1",
    port: 4444,
    logLevel: "warn",
    capabilities: { browserName: "wry", "tauri:options": { application: app } },
  });
});

after(async () => {
  if (browser) {
    mkdirSync(path.join(root, "target/e2e"), { recursive: true });
    await browser.saveScreenshot(path.join(root, "target/e2e/handoff.png")).catch(() => {});
    await browser.deleteSession().catch(() => {});
  }
  driver?.stop();
  notifications?.stop();
});

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

test("a Botpress handoff appears in the window and raises a desktop notification", async () => {
  const endpointField = await browser.$('[data-testid="endpoint-url"]');
  await endpointField.waitForExist({ timeout: 30_000, timeoutMsg: `no endpoint shown; app log:\n${driver.output.text}` });
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
  await item.waitForExist({ timeout: 20_000, timeoutMsg: `the handoff never appeared; app log:\n${driver.output.text}` });
  assert.equal(await (await browser.$('[data-testid="handoff-title"]')).getText(), TITLE);
  await browser.waitUntil(async () => (await item.getText()).includes("Dana Reyes"), {
    timeout: 10_000,
    timeoutMsg: "the customer's name is not shown in the list",
  });
  await browser.waitUntil(
    async () => (await (await browser.$('[data-testid="handoff-last-message"]')).getText()) === FIRST_MESSAGE,
    { timeout: 10_000, timeoutMsg: "the last message is not shown in the list" },
  );

  await item.click();
  const message = await browser.$('[data-testid="message"]');
  await message.waitForExist({ timeout: 10_000 });
  assert.ok((await message.getText()).includes(FIRST_MESSAGE), "the customer's message is shown as text, not HTML");
  assert.equal(await browser.$$(".message b").length, 0, "customer content is never rendered as HTML");

  await waitFor(
    `a Notify call carrying "${TITLE}"`,
    () => notifications.calls().includes(TITLE),
    15_000,
  ).catch((err) => {
    throw new Error(`${err.message}\nD-Bus monitor saw:\n${notifications.calls()}\napp log:\n${driver.output.text}`);
  });
});
