// What a screen reader user meets: every control has a name (in both languages), and what others
// write in the open conversation is announced without taking the focus away.

import { computeAccessibleName } from "dom-accessibility-api";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, describe, expect, test } from "vitest";
import App from "./App.svelte";
import { setLanguageChoice, type Language } from "./lib/i18n.svelte";
import { handoff, memoryBackend, message, type MemoryInbox } from "./lib/memoryBackend";
import { inbox, openHandoff } from "./testInbox";

const CONTROLS = "button, a[href], input, select, textarea, summary, [role=button], [role=tab]";

/** The controls on screen that a screen reader could only call "button" or "edit text". */
function unnamedControls(): string[] {
  return [...document.querySelectorAll(CONTROLS)].filter((el) => computeAccessibleName(el).trim() === "").map((el) => el.outerHTML.slice(0, 160));
}

function controlCount(): number {
  return document.querySelectorAll(CONTROLS).length;
}

/** A busy inbox: a WhatsApp chat Ana holds (replies, reactions, files), a bot's draft, a card with
 * a link, a note and an earlier handoff, a reply the hub refused, and a channel that cannot send. */
function busyInbox(): MemoryInbox {
  const data = inbox();
  data.endpointUrl = "http://127.0.0.1:8717/botpress/x";
  data.whatsapp = { t_sam: new Date().toISOString() };
  data.handoffs = [
    handoff("ho_sam", "t_sam", "Parcel late", "assigned", "ag_me"),
    { ...handoff("ho_old", "t_old", "Earlier question", "resolved", "ag_me"), created_at: "2026-11-01T09:00:00Z" },
    ...data.handoffs.slice(1),
  ];
  data.messages[0] = { ...data.messages[0]!, payload: { id: "wamid.sam1", type: "text", text: { body: "Where is my parcel?" } } };
  data.messages.push(
    { ...message("m_old", "t_old", "An old question"), author_id: "u_sam" },
    { ...message("m_draft", "t_sam", "It left the depot today.", "bot"), status: "draft" },
    { ...message("m_card", "t_sam", "Order 1234", "bot"), type: "card", payload: { title: "Order 1234", imageUrl: "https://t.example/p.png", actions: [{ action: "url", label: "Track", value: "https://t.example/1" }] } },
    { ...message("m_failed", "t_sam", "Sent too late", "agent"), author_id: "ag_me", status: "failed" },
  );
  data.refuse["t_sam"] = "the channel refused it";
  data.problems = [{ channel: "Support line", reason: "the token expired" }];
  return data;
}

afterEach(() => {
  setLanguageChoice("system");
  localStorage.clear();
});

describe.each<Language>(["en", "fr"])("every control has an accessible name (%s)", (lang) => {
  test("in the inbox, with a conversation open and its forms unfolded", async () => {
    setLanguageChoice(lang);
    const data = busyInbox();
    const backend = memoryBackend(data);
    render(App, { props: { backend } });
    await fireEvent.click(await screen.findByTestId("tab-mine"));
    await openHandoff("Parcel late");
    await backend.sendMessage("t_sam", "On my way").catch(() => {});
    await screen.findByTestId("pending-message");
    await fireEvent.click(screen.getByTestId("react"));
    await fireEvent.click(screen.getByTestId("attach-toggle"));
    await fireEvent.click(screen.getByTestId("outbox-count"));
    await fireEvent.click(screen.getByTestId("tab-open"));
    await screen.findByTestId("filter-agent");
    expect(controlCount()).toBeGreaterThan(40);
    expect(unnamedControls()).toEqual([]);
  });

  test("in Settings, Search, the Team view, the shortcuts and Reports", async () => {
    setLanguageChoice(lang);
    const backend = memoryBackend(busyInbox());
    render(App, { props: { backend } });
    await fireEvent.click(await screen.findByTestId("test-handoff"));
    await screen.findByTestId("test-handoff-result");
    await screen.findByTestId("notification-settings");
    expect(unnamedControls()).toEqual([]);

    await fireEvent.click(screen.getByTestId("search-toggle"));
    await fireEvent.input(await screen.findByTestId("search-input"), { target: { value: "parcel" } });
    await screen.findByTestId("search-hit", {}, { timeout: 2000 });
    expect(unnamedControls()).toEqual([]);

    await fireEvent.click(screen.getByTestId("team-toggle"));
    await screen.findAllByTestId("team-row");
    await fireEvent.keyDown(window, { key: "?" });
    await screen.findByTestId("shortcuts");
    expect(unnamedControls()).toEqual([]);

    await fireEvent.click(screen.getByTestId("reports-toggle"));
    await screen.findByTestId("report-view");
    expect(unnamedControls()).toEqual([]);
  });

  test("on the sign-in form", async () => {
    setLanguageChoice(lang);
    render(App, { props: { backend: memoryBackend({ ...inbox(), signedOut: true }) } });
    await screen.findByTestId("hub-address");
    expect(unnamedControls()).toEqual([]);
  });
});

describe("a new message in the open conversation", () => {
  test("is announced politely with who wrote it; opening a conversation and my own replies are not", async () => {
    const data = inbox();
    const backend = memoryBackend(data);
    render(App, { props: { backend } });
    await openHandoff("Parcel late");
    const announcer = screen.getByTestId("announcement");
    expect(announcer.getAttribute("aria-live")).toBe("polite");
    expect(announcer.textContent).toBe("");

    data.messages.push({ ...message("m_new", "t_sam", "Any news?"), author_id: "u_sam" });
    backend.emit({ type: "inbox_changed", conversations: ["t_sam"] });
    await waitFor(() => expect(announcer.textContent).toBe("New message from Sam Brooks: Any news?"));

    data.messages.push({ ...message("m_mine", "t_sam", "Checking now", "agent"), author_id: "ag_me" });
    backend.emit({ type: "inbox_changed", conversations: ["t_sam"] });
    await screen.findByText("Checking now");
    expect(announcer.textContent).toBe("New message from Sam Brooks: Any news?");

    await openHandoff("Wrong size");
    await waitFor(() => expect(announcer.textContent).toBe(""));
  });
});
