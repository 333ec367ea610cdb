// Loopback helpers the browser tests and the browser benchmark share.
import { createServer as createNetServer, connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A free loopback port (bound and released; the hub binds it right after). */
export function freePort() {
  return new Promise((done, fail) => {
    const server = createNetServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on("error", fail);
  });
}

/** Waits until something listens on `port`. */
export async function waitForPort(port, within = 20_000) {
  const deadline = Date.now() + within;
  for (;;) {
    const open = await new Promise((done) => {
      const socket = connect({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        done(true);
      });
      socket.on("error", () => done(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`baton-hub did not listen on ${port}`);
    await sleep(50);
  }
}
