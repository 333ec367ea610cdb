import { mount } from "svelte";
import App from "./App.svelte";
import { tauriBackend, type Backend } from "./lib/backend";
import { webBackend } from "./lib/web";
import "./app.css";

// The theme follows the system's, and changes with it; dark rules hang off this one class.
const dark = window.matchMedia("(prefers-color-scheme: dark)");
const followTheme = (): void => {
  document.documentElement.classList.toggle("dark", dark.matches);
};
followTheme();
dark.addEventListener("change", followTheme);

const target = document.getElementById("app");
if (!target) throw new Error("index.html has no #app element");

// `vite build --mode memory` (ui/e2e/layout.mjs): sample handoffs kept in memory, to look at the
// window in a browser without Tauri. Any other mode (a real build) leaves the sample out.
// Inside the desktop app the UI talks to Rust; in a browser the hub served it to (/app/), to the
// hub over HTTP and its event stream (lib/web.ts).
const backend: Backend =
  import.meta.env.MODE === "memory"
    ? (await import("./lib/sampleInbox")).sampleBackend()
    : "__TAURI_INTERNALS__" in window
      ? tauriBackend
      : webBackend();

export default mount(App, { target, props: { backend } });
