// The app against a hub of its own (remote mode) that goes away: the window says it is offline and
// how much waits, a reply written meanwhile shows as pending, and once the hub is back the reply
// reaches Botpress exactly once.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  botpress as post,
  freePort,
  logIn,
  portOpen,
  requireSession,
  root,
  shownText as shownText_,
  start,
  startApp,
  startFakeWebhook,
  startNotificationWatch,
  trayItem,
  waitFor,
} from "./harness.mjs";

const appLog = () => logIn(appData);
const botpress = (route, body) => post(endpoint, route, body);
const shownText = (selector) => shownText_(browser, selector);

const hubBin = path.join(root, "target/debug/baton-hub");
const EMAIL = "ana@example.com";
const PASSWORD = "a long enough password";

let browser;
let driver;
let hub;
let hubPort;
let hubData;
let endpoint;
let appData;
let webhook;

function startHub() {
  hub = start(hubBin, ["serve", "--data", hubData, "--listen", `127.0.0.1:${hubPort}`]);
  return waitFor("the hub to listen", () => portOpen(hubPort), 20_000);
}

before(async () => {
  requireSession();
  webhook = await startFakeWebhook();
  hubData = mkdtempSync(path.join(os.tmpdir(), "baton-e2e-hub-"));
  execFileSync(hubBin, ["agent", "add", "--data", hubData, "--email", EMAIL, "--name", "Ana"], { input: PASSWORD });
  const added = execFileSync(hubBin, ["botpress", "add", "--data", hubData, "--name", "Bot", "--webhook-url", webhook.url]).toString();
  hubPort = await freePort();
  endpoint = `http://127.0.0.1:${hubPort}${added.trim().split("\n").pop().trim()}`;
  await startHub();
  ({ driver, browser } = await startApp({
    BATON_DATA_DIR: (appData = mkdtempSync(path.join(os.tmpdir(), "baton-e2e-app-"))),
    BATON_HUB_URL: `http://127.0.0.1:${hubPort}`,
  }));
});

after(async () => {
  await browser?.deleteSession().catch(() => {});
  driver?.stop();
  hub?.stop();
  webhook?.server.close();
  // A run leaves nothing behind in /tmp: CI shares the machine's disk.
  for (const dir of [hubData, appData]) if (dir) rmSync(dir, { recursive: true, force: true });
});

test("offline, the window counts what waits; back online, the reply arrives once", { timeout: 180_000 }, async () => {
  // Sign in (the token goes to the session's keyring).
  const email = await browser.$('form.sign-in input[type="email"]');
  await email.waitForExist({ timeout: 30_000, timeoutMsg: `no sign-in form; app log:\n${appLog()}` });
  await email.setValue(EMAIL);
  await (await browser.$('form.sign-in input[type="password"]')).setValue(PASSWORD);
  await (await browser.$("form.sign-in button")).click();

  const user = await botpress("createRemoteUser", { type: "createRemoteUser", payload: { role: "end-user", name: "Kim Ito" } });
  const ticket = await botpress("createRemoteConversation", { type: "createRemoteConversation", payload: { title: "Address change" } });
  await botpress("botSendsMessage", { type: "botSendsMessage", remoteConversationId: ticket.id, remoteUserId: user.id, payload: { text: "I moved last week" } });
  const item = await browser.$('[data-testid="handoff-item"]');
  await item.waitForExist({ timeout: 30_000, timeoutMsg: `the handoff never appeared; app log:\n${appLog()}` });
  await item.click();
  await browser.waitUntil(async () => (await shownText('[data-testid="connection"]')) === "Live", { timeout: 20_000 });

  // The hub goes away.
  hub.child.kill("SIGKILL");
  await browser.waitUntil(async () => (await shownText('[data-testid="offline-banner"]')).includes("Offline"), {
    timeout: 30_000,
    timeoutMsg: "no offline banner",
  });

  const composer = await browser.$('[data-testid="composer"]');
  await composer.setValue("Thanks Kim, updating it now");
  await (await browser.$('[data-testid="send"]')).click();
  await browser.waitUntil(async () => (await browser.$$('[data-testid="pending-message"]').length) === 1, {
    timeout: 10_000,
    timeoutMsg: `the reply is not shown as pending; page: ${(await shownText("main")).slice(0, 500)}`,
  });
  assert.match(await shownText('[data-testid="pending-message"]'), /Thanks Kim, updating it now/);
  await browser.waitUntil(async () => (await shownText('[data-testid="offline-banner"]')).includes("1 action waiting to be sent"), {
    timeout: 10_000,
    timeoutMsg: `the banner does not count the reply: ${await shownText('[data-testid="offline-banner"]')}`,
  });
  assert.match(await shownText('[data-testid="outbox-count"]'), /1 waiting/);
  assert.match(await shownText('[data-testid="offline-banner"]'), /Synced up to/);

  // The hub is back: the reply is delivered once, and the window says so.
  await startHub();
  await waitFor(
    "the reply at Botpress",
    () => webhook.calls.some((c) => c.route === "message-from-agent" && c.body.payload.text === "Thanks Kim, updating it now"),
    60_000,
  ).catch((err) => {
    throw new Error(`${err.message}\napp log:\n${appLog().slice(-3000)}`);
  });
  await browser.waitUntil(async () => (await browser.$$('[data-testid="pending-message"]').length) === 0, {
    timeout: 20_000,
    timeoutMsg: "the reply is still shown as pending",
  });
  await browser.waitUntil(async () => (await browser.$$('[data-testid="offline-banner"]').length) === 0, { timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 1000));
  const copies = webhook.calls.filter((c) => c.route === "message-from-agent" && c.body.payload.text === "Thanks Kim, updating it now");
  assert.equal(copies.length, 1, "delivered exactly once");
});

test("50 handoffs that arrived while the app was closed are one summary notification on start, and the tray counts them", { timeout: 180_000 }, async () => {
  await browser.deleteSession().catch(() => {});
  driver.stop();
  browser = undefined;
  for (let i = 1; i <= 50; i += 1) {
    const user = await botpress("createRemoteUser", { type: "createRemoteUser", payload: { role: "end-user", name: `Night customer ${i}` } });
    const ticket = await botpress("createRemoteConversation", { type: "createRemoteConversation", payload: { title: `Overnight ${i}` } });
    await botpress("botSendsMessage", { type: "botSendsMessage", remoteConversationId: ticket.id, remoteUserId: user.id, payload: { text: "anyone there?" } });
  }
  const notifications = await startNotificationWatch();
  try {
    ({ driver, browser } = await startApp({ BATON_DATA_DIR: appData, BATON_HUB_URL: `http://127.0.0.1:${hubPort}` }));
    await waitFor("the summary of the night", () => notifications.calls().includes("50 new handoffs"), 60_000).catch((err) => {
      throw new Error(`${err.message}\nD-Bus monitor saw:\n${notifications.calls().slice(-3000)}\napp log:\n${appLog().slice(-3000)}`);
    });
    await new Promise((r) => setTimeout(r, 4_000));
    const shown = (notifications.calls().match(/member=Notify/g) ?? []).length;
    assert.equal(shown, 1, `one notification for 50 handoffs, not ${shown}`);

    // The tray (its StatusNotifierItem on D-Bus) says how many wait unread, as the inbox counts them.
    const unread = await browser.execute(() => window.__TAURI_INTERNALS__.invoke("handoff_counts").then((c) => c.unread));
    assert.equal(unread, 50);
    await waitFor("the tray's count", () => trayItem()?.label === "50", 20_000).catch((err) => {
      throw new Error(`${err.message}: the tray shows ${JSON.stringify(trayItem())}`);
    });
    const tray = trayItem();
    for (const entry of ["Open Baton", "Go online", "Go offline", "Quit Baton"]) assert.ok(tray?.menu.includes(entry), `the tray menu has ${entry}: ${tray?.menu}`);

    // Reading one takes it off the count.
    const first = await browser.$('[data-testid="handoff-item"]');
    await first.waitForExist({ timeout: 20_000 });
    await first.click();
    await waitFor("the tray's count after reading one", () => trayItem()?.label === "49", 20_000).catch((err) => {
      throw new Error(`${err.message}: the tray shows ${JSON.stringify(trayItem())}`);
    });
  } finally {
    notifications.stop();
  }
});
