// Processes the end-to-end tests need around the app: a notification server, a D-Bus monitor that
// records every Notify call, and tauri-driver (which starts WebKitWebDriver and then the app).

import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
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
