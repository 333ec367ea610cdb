// The walking skeleton, end to end: Botpress posts a handoff to the hub inside the real app (solo
// mode), the handoff appears in the window, and a notification with its title reaches the desktop's
// notification server over D-Bus.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
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
});

/**
 * Saves what the window shows to target/e2e/NAME.png. WebKitWebDriver takes a minute or more per
 * screenshot under Xvfb, so only BATON_E2E_SCREENSHOT=1 asks for them.
 */
async function screenshot(name) {
  mkdirSync(path.join(root, "target/e2e"), { recursive: true });
  await browser.saveScreenshot(path.join(root, `target/e2e/${name}.png`)).catch(() => {});
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

test("an agent takes the handoff, replies with a template, notes and resolves it", { timeout: 120_000 }, withScreenshot("work", async () => {
  const webhook = await startFakeWebhook();
  try {
    // The admin adds a canned reply with the CLI while the desk runs (same data directory).
    execFileSync(path.join(root, "target/debug/baton-hub"), [
      "template", "add", "--data", path.join(dataDir, "hub"), "--name", "refund", "--text", "Your refund is on its way.",
    ]);

    const webhookField = await browser.$('[data-testid="webhook-url"]');
    await webhookField.setValue(webhook.url);
    await (await browser.$("form.webhook button")).click();
    await browser.waitUntil(async () => (await webhookField.getAttribute("placeholder")) === webhook.url, {
      timeout: 10_000,
      timeoutMsg: "the webhook URL was not saved",
    });

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
  const endpoint = await (await browser.$('[data-testid="endpoint-url"]')).getValue();
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
  assert.match(await shownText('[data-testid="error"]'), /relays only text/);
  await (await browser.$('[data-testid="discard"]')).click();
  await browser.waitUntil(async () => (await browser.$$('[data-testid="pending-message"]').length) === 0, {
    timeout: 10_000,
    timeoutMsg: "the discarded message is still shown",
  });
}));
