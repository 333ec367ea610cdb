// Processes the end-to-end tests need around the app: a notification server, a D-Bus monitor that
// records every Notify call, and tauri-driver (which starts WebKitWebDriver and then the app).

import { spawn, execFileSync } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { readFileSync } from "node:fs";
import { remote } from "webdriverio";
import { setTimeout as sleep } from "node:timers/promises";

export const root = path.resolve(import.meta.dirname, "../..");

export function requireSession() {
  for (const name of ["DISPLAY", "DBUS_SESSION_BUS_ADDRESS"]) {
    if (!process.env[name]) {
      throw new Error(`${name} is not set: run under "xvfb-run -a dbus-run-session -- …" (make test does)`);
    }
  }
}

export async function waitFor(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Starts a long-running process and keeps what it prints. */
export function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  const output = { text: "" };
  child.stdout.on("data", (chunk) => (output.text += chunk));
  child.stderr.on("data", (chunk) => (output.text += chunk));
  child.on("error", (err) => (output.text += `\n[spawn error] ${err.message}`));
  return { child, output, stop: () => child.exitCode === null && child.kill("SIGTERM") };
}

function notificationsOwned() {
  try {
    const reply = execFileSync("dbus-send", [
      "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
      "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.Notifications",
    ]).toString();
    return reply.includes("boolean true");
  } catch {
    return false;
  }
}

/** A notification server (dunst) plus a monitor that records every Notify call on the session bus. */
export async function startNotificationWatch() {
  const dunst = start("dunst", []);
  await waitFor("dunst to own org.freedesktop.Notifications", () => notificationsOwned(), 10_000);
  const monitor = start("dbus-monitor", [
    "--session", "type='method_call',interface='org.freedesktop.Notifications',member='Notify'",
  ]);
  await sleep(300); // dbus-monitor registers its match rule right after it starts
  return {
    calls: () => monitor.output.text,
    stop: () => {
      monitor.stop();
      dunst.stop();
    },
  };
}

export async function startTauriDriver(env) {
  const bin = process.env.TAURI_DRIVER ?? path.join(process.env.HOME ?? "", ".cargo/bin/tauri-driver");
  const driver = start(bin, [], { env: { ...process.env, ...env } });
  await waitFor("tauri-driver on 4444", () => portOpen(4444));
  await waitFor("WebKitWebDriver on 4445", () => portOpen(4445));
  return driver;
}

/** A stand-in for Botpress's webhook: records every JSON call the hub makes. */
export function startFakeWebhook() {
  const calls = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      calls.push({ route: req.url.split("/").pop(), body: JSON.parse(body || "null") });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ calls, url: `http://127.0.0.1:${server.address().port}/wh-e2e`, server }));
  });
}

/** Posts to a hub's Botpress endpoint the way the HITL API integration does; returns the JSON answer. */
export async function botpress(endpoint, route, body) {
  const response = await fetch(`${endpoint}/${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${route} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

/**
 * The text of the first element matching `selector` as laid out on screen (`innerText`).
 * WebKitWebDriver's own element-text command answers "" for visible text in this setup.
 */
export function shownText(browser, selector) {
  return browser.execute((sel) => document.querySelector(sel)?.innerText ?? "", selector);
}

/** What a data directory's `baton.log` holds so far. */
export function logIn(dataDir) {
  try {
    return readFileSync(path.join(dataDir, "baton.log"), "utf8");
  } catch {
    return "";
  }
}

/**
 * Starts the built app under tauri-driver with `env` and opens a WebDriver session on its window;
 * returns `{ driver, browser }`.
 */
export async function startApp(env) {
  const app = process.env.BATON_APP ?? path.join(root, "target/debug/baton");
  const driver = await startTauriDriver({
    RUST_LOG: "info",
    // WebKitGTK's GPU paths have no GPU under Xvfb: render in software so the window paints.
    WEBKIT_DISABLE_DMABUF_RENDERER: "1",
    WEBKIT_DISABLE_COMPOSITING_MODE: "1",
    ...env,
  });
  const browser = await remote({
    hostname: "127.0.0.1",
    port: 4444,
    logLevel: "warn",
    // Classic WebDriver: WebKitWebDriver does not speak WebDriver BiDi, which webdriverio asks for by default.
    capabilities: { "wdio:enforceWebDriverClassic": true, "tauri:options": { application: app } },
  });
  return { driver, browser };
}

/** Runs dbus-send on the session bus and answers what it printed ("" when the call failed). */
function dbusSend(args) {
  try {
    return execFileSync("dbus-send", ["--session", "--print-reply", "--reply-timeout=2000", ...args], { timeout: 5_000 }).toString();
  } catch {
    return "";
  }
}

/**
 * The app's tray icon as the desktop's tray reads it: the StatusNotifierItem it exports on the
 * session bus (libayatana-appindicator's object), with its label (the unread count) and its menu's
 * labels. `null` while there is none.
 */
export function trayItem() {
  const names = dbusSend(["--dest=org.freedesktop.DBus", "/", "org.freedesktop.DBus.ListNames"]).match(/":1\.\d+"/g) ?? [];
  for (const quoted of names) {
    const name = quoted.replaceAll('"', "");
    const nodes = dbusSend([`--dest=${name}`, "/org/ayatana/NotificationItem", "org.freedesktop.DBus.Introspectable.Introspect"]);
    const node = nodes.match(/<node name="([^"]+)"/)?.[1];
    if (!node) continue;
    const item = `/org/ayatana/NotificationItem/${node}`;
    const get = (prop) => dbusSend([`--dest=${name}`, item, "org.freedesktop.DBus.Properties.Get", "string:org.kde.StatusNotifierItem", `string:${prop}`]);
    const label = get("XAyatanaLabel").match(/string "([^"]*)"/)?.[1] ?? null;
    const layout = dbusSend([`--dest=${name}`, `${item}/Menu`, "com.canonical.dbusmenu.GetLayout", "int32:0", "int32:-1", "array:string:label"]);
    const menu = [...layout.matchAll(/string "label"\s+variant\s+string "([^"]*)"/g)].map((m) => m[1]);
    return { label, menu };
  }
  return null;
}
