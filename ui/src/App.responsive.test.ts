// The inbox on an agent's phone and tablet: one screen at a time with Back (the app's and the
// browser's), the header's buttons in a menu, a long press for the frequent actions, pull to
// refresh; on a tablet, the customer in a drawer. jsdom draws nothing, so what is "in sight" here
// is what is not `hidden` (the accessibility tree); ui/e2e/layout.mjs measures the real layout.

import { computeAccessibleName } from "dom-accessibility-api";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, test } from "vitest";
import App from "./App.svelte";
import { setLanguageChoice, type Language } from "./lib/i18n.svelte";
import { layoutFor } from "./lib/layout.svelte";
import { handoff, memoryBackend, message } from "./lib/memoryBackend";
import { inbox, openHandoff } from "./testInbox";

/** The window is `width` CSS pixels wide (jsdom's own is 1024), as a phone or a tablet would be. */
function windowWidth(width: number): void {
  Object.defineProperty(window, "innerWidth", { value: width, configurable: true, writable: true });
  window.dispatchEvent(new Event("resize"));
}

afterEach(() => {
  windowWidth(1024);
  setLanguageChoice("system");
  localStorage.clear();
});

const list = () => screen.queryByRole("navigation", { name: "Handoffs" });
const conversation = () => screen.queryByRole("region", { name: "Conversation" });
const customer = () => screen.queryByRole("complementary", { name: "Customer" });
const holdFor = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The desk has loaded: its header, the counts, and the list as they make it. */
async function ready(): Promise<HTMLElement[]> {
  await screen.findByTestId("count-pending");
  await holdFor(20);
  return screen.findAllByTestId("handoff-item");
}

/** A finger held on the row titled `title` for longer than a long press, then lifted. */
async function longPress(title: string): Promise<HTMLElement> {
  const row = (await screen.findByText(title)).closest("button");
  if (!row) throw new Error(`no row for ${title}`);
  await fireEvent.pointerDown(row, { pointerId: 1, pointerType: "touch", clientX: 50, clientY: 300 });
  await holdFor(550);
  await fireEvent.pointerUp(row, { pointerId: 1, pointerType: "touch", clientX: 50, clientY: 300 });
  await fireEvent.click(row);
  return screen.findByRole("dialog", { name: `Actions for “${title}”` });
}

describe("the layout for a window's width", () => {
  test("is a phone's up to 600 px, a tablet's up to 1024 px, and a desktop's beyond", () => {
    expect([360, 390, 600, 601, 800, 1024, 1025, 1280].map(layoutFor)).toEqual(["phone", "phone", "phone", "tablet", "tablet", "tablet", "desktop", "desktop"]);
  });
});

describe("on a phone", () => {
  test("the list fills the screen; a conversation opens in its place with a Back button, and Back returns to the list", async () => {
    windowWidth(360);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await ready();
    expect(list()).not.toBeNull();
    expect(conversation()).toBeNull();
    expect(customer()).toBeNull();

    await openHandoff("Wrong size");
    const back = await screen.findByRole("button", { name: "Back to the list" });
    expect(within(conversation() as HTMLElement).getByRole("heading", { name: "Wrong size" })).toBeTruthy();
    expect(list()).toBeNull();
    expect(document.activeElement).toBe(back);

    await fireEvent.click(back);
    await waitFor(() => expect(list()).not.toBeNull());
    expect(conversation()).toBeNull();
    // The keyboard is back on the conversation the agent left.
    expect(document.activeElement?.textContent).toContain("Wrong size");
  });

  test("the Customer button opens the customer's screen, and the browser's (Android's) Back goes back as the app's does", async () => {
    windowWidth(390);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await openHandoff("Parcel late");
    await fireEvent.click(await screen.findByRole("button", { name: "Customer" }));
    await screen.findByRole("button", { name: "Back to the conversation" });
    expect(within(customer() as HTMLElement).getByTestId("customer-name").textContent).toBe("Sam Brooks");
    expect(conversation()).toBeNull();

    history.back();
    await waitFor(() => expect(conversation()).not.toBeNull());
    expect(customer()).toBeNull();
    expect(screen.getByRole("button", { name: "Back to the list" })).toBeTruthy();

    history.back();
    await waitFor(() => expect(list()).not.toBeNull());
    expect(conversation()).toBeNull();
  });

  test("the header's Search, Team, Reports, Settings and shortcuts wait in a menu; each takes the screen, and Back closes it", async () => {
    windowWidth(360);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await ready();
    expect(screen.queryByRole("button", { name: "Settings" })).toBeNull();

    const menu = screen.getByRole("button", { name: "Menu" });
    await fireEvent.click(menu);
    expect(menu.getAttribute("aria-expanded")).toBe("true");
    const items = within(screen.getByRole("group", { name: "Menu" })).getAllByRole("button").map((b) => b.textContent);
    expect(items).toEqual(["Search", "Team", "Reports", "Settings", "Keyboard shortcuts"]);

    await fireEvent.click(screen.getByRole("button", { name: "Settings" }));
    expect(await screen.findByRole("region", { name: "Settings" })).toBeTruthy();
    expect(list()).toBeNull();
    expect(screen.queryByRole("group", { name: "Menu" })).toBeNull();

    history.back();
    await waitFor(() => expect(screen.queryByRole("region", { name: "Settings" })).toBeNull());
    expect(list()).not.toBeNull();

    // Search from the menu; a conversation found opens over it, and Back returns to the results.
    await fireEvent.click(menu);
    await fireEvent.click(screen.getByRole("button", { name: "Search" }));
    await fireEvent.input(await screen.findByTestId("search-input"), { target: { value: "shoes" } });
    await fireEvent.click(await screen.findByTestId("search-hit", {}, { timeout: 2000 }));
    await screen.findByRole("button", { name: "Back to the list" });
    expect(screen.queryByRole("navigation", { name: "Search" })).toBeNull();
    history.back();
    await waitFor(() => expect(screen.queryByRole("navigation", { name: "Search" })).not.toBeNull());
    expect(screen.getByTestId("search-hit").textContent).toContain("Olga Petrova");
  });

  test("a long press on a waiting row offers Assign to me; taking it puts the handoff in Mine, where a long press offers Resolve", async () => {
    windowWidth(360);
    const data = inbox();
    render(App, { props: { backend: memoryBackend(data) } });
    const sheet = await longPress("Wrong size");
    // The press that opened the actions did not also open the conversation.
    expect(conversation()).toBeNull();
    expect(within(sheet).queryByRole("button", { name: "Resolve" })).toBeNull();

    await fireEvent.click(within(sheet).getByRole("button", { name: "Assign to me" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    await waitFor(() => expect(screen.getAllByTestId("handoff-title").map((t) => t.textContent)).toEqual(["Parcel late"]));
    expect(screen.getByTestId("count-mine").textContent).toBe("1");

    await fireEvent.click(screen.getByTestId("tab-mine"));
    const mine = await longPress("Wrong size");
    expect(within(mine).queryByRole("button", { name: "Assign to me" })).toBeNull();
    await fireEvent.click(within(mine).getByRole("button", { name: "Resolve" }));
    await waitFor(() => expect(screen.queryByText("Wrong size")).toBeNull());
    expect(data.handoffs.find((h) => h.id === "ho_olga")?.status).toBe("resolved");
  });

  test("the actions close on Escape, on a tap outside them and on Back, and Open shows the conversation", async () => {
    windowWidth(360);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await longPress("Parcel late");
    await fireEvent.keyDown(window, { key: "Escape" });
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());

    await longPress("Parcel late");
    await fireEvent.click(screen.getByTestId("action-sheet-scrim"));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());

    await longPress("Parcel late");
    history.back();
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());

    const sheet = await longPress("Parcel late");
    await fireEvent.click(within(sheet).getByRole("button", { name: "Open the conversation" }));
    await screen.findByRole("button", { name: "Back to the list" });
    expect(screen.getByTestId("conversation-title").textContent).toBe("Parcel late");
    history.back();
    await waitFor(() => expect(list()).not.toBeNull());
  });

  test("pulling the list down from its top reads the inbox again", async () => {
    windowWidth(360);
    const data = inbox();
    render(App, { props: { backend: memoryBackend(data) } });
    const [first] = await ready();
    // A handoff the app was not told about (as when an update was missed).
    data.handoffs.push(handoff("ho_new", "t_new", "Arrived meanwhile"));
    data.messages.push(message("m_new", "t_new", "Hello?"));

    const finger = { pointerId: 7, pointerType: "touch" };
    await fireEvent.pointerDown(first!, { ...finger, clientY: 100 });
    await fireEvent.pointerMove(first!, { ...finger, clientY: 150 });
    expect(screen.getByRole("status").textContent).toContain("Pull to refresh");
    await fireEvent.pointerMove(first!, { ...finger, clientY: 260 });
    expect(screen.getByRole("status").textContent).toContain("Release to refresh");
    await fireEvent.pointerUp(first!, { ...finger, clientY: 260 });
    await fireEvent.click(first!);

    await screen.findByText("Arrived meanwhile");
    expect(screen.getByTestId("count-pending").textContent).toBe("3");
    expect(conversation()).toBeNull();
  });

  test("a short pull does not refresh", async () => {
    windowWidth(360);
    const data = inbox();
    render(App, { props: { backend: memoryBackend(data) } });
    const [first] = await ready();
    data.handoffs.push(handoff("ho_new", "t_new", "Arrived meanwhile"));
    const finger = { pointerId: 7, pointerType: "touch" };
    await fireEvent.pointerDown(first!, { ...finger, clientY: 100 });
    await fireEvent.pointerMove(first!, { ...finger, clientY: 130 });
    await fireEvent.pointerUp(first!, { ...finger, clientY: 130 });
    await holdFor(100);
    expect(screen.queryByText("Arrived meanwhile")).toBeNull();
  });

  test.each<Language>(["en", "fr"])("every control in sight has an accessible name (%s)", async (lang) => {
    setLanguageChoice(lang);
    windowWidth(360);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    const unnamed = (): string[] =>
      [...document.querySelectorAll("button, a[href], input, select, textarea, [role=tab]")]
        .filter((el) => !el.closest("[hidden]") && computeAccessibleName(el).trim() === "")
        .map((el) => el.outerHTML.slice(0, 160));
    await ready();
    await fireEvent.click(screen.getByTestId("menu-toggle"));
    expect(unnamed()).toEqual([]);
    await fireEvent.keyDown(window, { key: "Escape" });
    await openHandoff("Parcel late");
    expect(unnamed()).toEqual([]);
    await fireEvent.click(screen.getByTestId("customer-toggle"));
    await screen.findByTestId("customer-back");
    expect(unnamed()).toEqual([]);
  });
});

describe("on a tablet", () => {
  test("the list and the conversation share the screen; the customer opens in a drawer that Escape closes", async () => {
    windowWidth(800);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await openHandoff("Parcel late");
    expect(list()).not.toBeNull();
    expect(screen.queryByRole("button", { name: "Back to the list" })).toBeNull();

    const toggle = screen.getByRole("button", { name: "Customer" });
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    await fireEvent.click(toggle);
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    expect(document.activeElement).toBe(screen.getByRole("button", { name: "Close the customer details" }));
    expect(within(customer() as HTMLElement).getByTestId("customer-name").textContent).toBe("Sam Brooks");

    await fireEvent.keyDown(window, { key: "Escape" });
    await waitFor(() => expect(toggle.getAttribute("aria-expanded")).toBe("false"));
    await waitFor(() => expect(document.activeElement).toBe(toggle));

    // A tap beside the drawer closes it too.
    await fireEvent.click(toggle);
    await fireEvent.click(screen.getByTestId("scrim"));
    await waitFor(() => expect(toggle.getAttribute("aria-expanded")).toBe("false"));
  });
});

describe("on a desktop", () => {
  test("the three columns stay: no Back, no Customer button, the header's buttons in the header", async () => {
    windowWidth(1280);
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await openHandoff("Parcel late");
    expect(list()).not.toBeNull();
    expect(customer()).not.toBeNull();
    expect(screen.queryByRole("button", { name: "Back to the list" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Customer" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Menu" })).toBeNull();
    expect(screen.getByTestId("shortcuts-toggle").textContent).toBe("?");
  });
});
