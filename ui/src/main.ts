import { mount } from "svelte";
import App from "./App.svelte";
import { tauriBackend } from "./lib/backend";
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

export default mount(App, { target, props: { backend: tauriBackend } });
