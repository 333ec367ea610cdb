// The app as a French-speaking agent sees it, and switching languages in Settings.

import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, describe, expect, test } from "vitest";
import App from "./App.svelte";
import { setLanguageChoice } from "./lib/i18n.svelte";
import { memoryBackend } from "./lib/memoryBackend";
import { inbox, openHandoff } from "./testInbox";
import { pretendSystemLanguage } from "./testLanguage";

afterEach(() => {
  setLanguageChoice("system");
  localStorage.clear();
  pretendSystemLanguage("en-US");
});

describe("an agent whose computer speaks French", () => {
  test("sees the inbox in French, while customers' words stay as they wrote them", async () => {
    pretendSystemLanguage("fr-FR");
    render(App, { props: { backend: memoryBackend(inbox()) } });
    expect((await screen.findByTestId("tab-pending")).textContent).toContain("En attente");
    expect(screen.getByTestId("tab-mine").textContent).toContain("Les miens");
    expect((await screen.findByTestId("settings-toggle")).textContent).toBe("Paramètres");
    expect(screen.getByTestId("presence-toggle").textContent).toContain("En ligne");
    expect(document.documentElement.lang).toBe("fr");

    await openHandoff("Parcel late");
    expect(screen.getByTestId("assign").textContent).toBe("Prendre en charge");
    expect(screen.getByTestId("handoff-status").textContent).toBe("en attente");
    expect(screen.getByTestId("mark-unread").textContent).toBe("Marquer comme non lu");
    expect(screen.getByRole("textbox", { name: "Réponse au client" })).toBeTruthy();
    expect((await screen.findAllByTestId("message"))[0]?.textContent).toContain("Where is my parcel?");
  });

  test("reads the shortcuts with French key names", async () => {
    pretendSystemLanguage("fr-BE");
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await screen.findAllByTestId("handoff-item");
    await fireEvent.keyDown(window, { key: "?" });
    const shortcuts = screen.getByRole("dialog", { name: "Raccourcis clavier" });
    expect(shortcuts.textContent).toMatch(/Ctrl\+Entrée\s*Envoyer la réponse/);
    expect(shortcuts.textContent).toMatch(/Échap\s*Fermer cette liste/);
  });
});

describe("the language in Settings", () => {
  test("switches what the agent sees at once, is kept on this device, and can follow the system again", async () => {
    render(App, { props: { backend: memoryBackend(inbox()) } });
    const waiting = await screen.findByTestId("tab-pending");
    expect(waiting.textContent).toContain("Waiting");
    await fireEvent.click(await screen.findByTestId("settings-toggle"));

    const choice = (await screen.findByLabelText("Language")) as HTMLSelectElement;
    expect(choice.value).toBe("system");
    await fireEvent.change(choice, { target: { value: "fr" } });
    await waitFor(() => expect(waiting.textContent).toContain("En attente"));
    expect(screen.getByTestId("settings-close").textContent).toBe("Fermer");
    expect(screen.getByLabelText("Langue")).toBe(choice);
    expect(localStorage.getItem("baton.language")).toBe("fr");
    expect(document.documentElement.lang).toBe("fr");

    await fireEvent.change(choice, { target: { value: "system" } });
    await waitFor(() => expect(waiting.textContent).toContain("Waiting"));
    expect(document.documentElement.lang).toBe("en");
  });

  test("is told to the app, so its notifications and tray speak it too", async () => {
    const state = inbox();
    render(App, { props: { backend: memoryBackend(state) } });
    await waitFor(() => expect(state.language).toBe("en"));
    await fireEvent.click(await screen.findByTestId("settings-toggle"));
    await fireEvent.change(await screen.findByLabelText("Language"), { target: { value: "fr" } });
    await waitFor(() => expect(state.language).toBe("fr"));
  });
});
