// `make bench`, solo part: a burst of Botpress handoffs into the real app's built-in hub while the
// window shows them, beside the same burst into a standalone `baton-hub serve` (the baseline, same
// run). Prints how long each Botpress call took: the built-in hub must answer like the standalone
// one, never starved by the window (target: no call slower than 1 s).
//
// Run under a display and a D-Bus session (make bench does): node bench-solo-burst.mjs
// BENCH_HANDOFFS (3000) and BENCH_CALLERS (8) change the load.

import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, portOpen, requireSession, root, start, startNotificationWatch, waitFor } from "./harness.mjs";

const HANDOFFS = Number(process.env.BENCH_HANDOFFS ?? 3000);
const CALLERS = Number(process.env.BENCH_CALLERS ?? 8);
const release = (name) => path.join(root, "target/release", name);

async function call(base, route, body) {
  const started = performance.now();
  try {
    const response = await fetch(`${base}/${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { ok: response.status === 200, ms: performance.now() - started, json: text ? JSON.parse(text) : {} };
  } catch {
    return { ok: false, ms: performance.now() - started, json: {} };
  }
}

/** One handoff as Botpress makes it: a user, a ticket, the user's first message. */
async function handoff(base, i, times) {
  const user = await call(base, "createRemoteUser", { type: "createRemoteUser", payload: { role: "end-user", name: `Customer ${i}` } });
  const ticket = await call(base, "createRemoteConversation", { type: "createRemoteConversation", payload: { title: `Burst ${i}` } });
  const message = await call(base, "botSendsMessage", {
    type: "botSendsMessage",
    remoteConversationId: ticket.json.id,
    remoteUserId: user.json.id,
    payload: { text: `I need a person (${i})` },
  });
  times.push(user, ticket, message);
}

async function burst(base) {
  const times = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (next < HANDOFFS) await handoff(base, next++, times);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const ms = times.map((t) => t.ms).sort((a, b) => a - b);
  const at = (q) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))];
  return {
    calls: ms.length,
    failed: times.filter((t) => !t.ok).length,
    over1s: ms.filter((m) => m > 1000).length,
    p50: at(0.5),
    p99: at(0.99),
    max: ms[ms.length - 1],
    handoffsPerSecond: HANDOFFS / seconds,
  };
}

function line(name, r) {
  return `${name.padEnd(34)} ${String(r.calls).padStart(6)} calls  ${String(r.failed).padStart(4)} failed  ${String(r.over1s).padStart(4)} over 1 s  p50 ${r.p50.toFixed(1).padStart(7)} ms  p99 ${r.p99.toFixed(1).padStart(7)} ms  max ${r.max.toFixed(0).padStart(6)} ms  ${r.handoffsPerSecond.toFixed(0).padStart(5)} handoffs/s`;
}

requireSession();
const notifications = await startNotificationWatch();
const env = { ...process.env, RUST_LOG: "warn", BATON_ALLOW_PRIVATE_URLS: "1" };

// Baseline: the standalone hub, same machine, same run.
const hubData = mkdtempSync(path.join(os.tmpdir(), "baton-bench-hub-"));
const hubPort = await freePort();
const add = start(release("baton-hub"), ["botpress", "add", "--data", hubData, "--name", "Bench", "--webhook-url", "http://127.0.0.1:9/hook"], { env });
await new Promise((resolve) => add.child.on("exit", resolve));
const endpointPath = add.output.text.trim().split("\n").pop();
const hub = start(release("baton-hub"), ["serve", "--data", hubData, "--listen", `127.0.0.1:${hubPort}`], { env });
await waitFor("the standalone hub", () => portOpen(hubPort));
const baseline = await burst(`http://127.0.0.1:${hubPort}${endpointPath}`);
hub.stop();

// The app in solo mode, window open, every handoff arriving in it.
const appData = mkdtempSync(path.join(os.tmpdir(), "baton-bench-app-"));
const appPort = await freePort();
const app = start(release("baton"), [], {
  env: { ...env, BATON_DATA_DIR: appData, BATON_SOLO_LISTEN: `127.0.0.1:${appPort}`, WEBKIT_DISABLE_DMABUF_RENDERER: "1", WEBKIT_DISABLE_COMPOSITING_MODE: "1" },
});
await waitFor("the app's built-in hub", () => portOpen(appPort), 60_000);
const solo = JSON.parse(readFileSync(path.join(appData, "hub", "solo.json"), "utf8"));
await sleep(2000); // the window loads and the app follows its hub
const inApp = await burst(`http://127.0.0.1:${appPort}${solo.endpoint_path}`);
app.stop();
notifications.stop();

console.log(`\nsolo burst: ${HANDOFFS} handoffs (3 Botpress calls each) from ${CALLERS} concurrent callers`);
console.log(line("standalone baton-hub (baseline)", baseline));
console.log(line("the app's built-in hub, window open", inApp));
console.log(`target: no call over 1 s in the app → ${inApp.over1s === 0 && inApp.failed === 0 ? "met" : "NOT met"}`);
process.exit(0);
