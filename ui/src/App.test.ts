// The inbox as an agent sees it, rendered without Tauri: App over the in-memory backend.

import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { describe, expect, test, vi } from "vitest";
import App from "./App.svelte";
import { agent, handoff, memoryBackend, message, type MemoryInbox } from "./lib/memoryBackend";
import { inbox, openHandoff } from "./testInbox";

describe("the inbox", () => {
  test("lists who is waiting with their last message, and opens a conversation", async () => {
    render(App, { props: { backend: memoryBackend(inbox()) } });
    const items = await screen.findAllByTestId("handoff-item");
    expect(items.map((i) => i.textContent)).toEqual([
      expect.stringContaining("Sam Brooks"),
      expect.stringContaining("Olga Petrova"),
    ]);
    expect(items[0]?.textContent).toContain("Where is my parcel?");
    await openHandoff("Wrong size");
    expect(screen.getByTestId("conversation-title").textContent).toBe("Wrong size");
    expect((await screen.findAllByTestId("message")).map((m) => m.textContent)).toEqual([
      expect.stringContaining("The shoes are too small"),
    ]);
  });

  test("a refused reply stays in the conversation with the hub's reason until discarded", async () => {
    const data = inbox();
    data.refuse["t_sam"] = "Bob has this handoff";
    render(App, { props: { backend: memoryBackend(data) } });
    await openHandoff("Parcel late");
    const composer = (await screen.findByTestId("composer")) as HTMLTextAreaElement;
    await fireEvent.input(composer, { target: { value: "Your parcel ships Monday" } });
    await fireEvent.click(screen.getByTestId("send"));
    const pending = await screen.findByTestId("pending-message");
    expect(pending.textContent).toContain("Your parcel ships Monday");
    expect(within(pending).getByTestId("pending-state").textContent).toBe("Not sent: Bob has this handoff");
    expect((await screen.findByTestId("error")).textContent).toContain("Bob has this handoff");
    await fireEvent.click(within(pending).getByTestId("discard"));
    await waitFor(() => expect(screen.queryByTestId("pending-message")).toBeNull());
  });

  test("the outbox drawer lists what waits and what was refused", async () => {
    const data = inbox();
    data.refuse["t_olga"] = "this handoff is already resolved";
    const backend = memoryBackend(data);
    render(App, { props: { backend } });
    await backend.sendMessage("t_sam", "On my way").catch(() => {});
    await backend.sendMessage("t_olga", "Too late").catch(() => {});
    const count = await screen.findByTestId("outbox-count");
    expect(count.textContent).toContain("1 waiting · 1 refused");
    await fireEvent.click(count);
    const drawer = await screen.findByTestId("outbox");
    await waitFor(() => expect(drawer.textContent).toContain("“On my way”"));
    expect(drawer.textContent).toContain("refused: this handoff is already resolved");
  });

  test("search finds a message by its words and opens its conversation", async () => {
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await fireEvent.click(await screen.findByTestId("search-toggle"));
    await fireEvent.input(await screen.findByTestId("search-input"), { target: { value: "shoes" } });
    const hit = await screen.findByTestId("search-hit", {}, { timeout: 2000 });
    expect(hit.querySelector("mark")?.textContent).toBe("shoes");
    expect(within(hit).getByTestId("search-hit-customer").textContent).toBe("Olga Petrova");
    await fireEvent.click(hit);
    await waitFor(() => expect(screen.getByTestId("conversation-title").textContent).toBe("Wrong size"));
  });

  test("the arrow keys move from the search box through the results", async () => {
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await fireEvent.click(await screen.findByTestId("search-toggle"));
    const box = await screen.findByTestId("search-input");
    await fireEvent.input(box, { target: { value: "the" } });
    await waitFor(() => expect(screen.getAllByTestId("search-hit")).toHaveLength(1), { timeout: 2000 });
    await fireEvent.keyDown(box, { key: "ArrowDown" });
    expect(document.activeElement).toBe(screen.getAllByTestId("search-hit")[0]);
    await fireEvent.keyDown(document.activeElement as HTMLElement, { key: "ArrowUp" });
    expect(document.activeElement).toBe(box);
  });

  test("a WhatsApp chat shows its badge and reply window, and once the window closed, says why there is no composer", async () => {
    const data = inbox();
    const hourAgo = new Date(Date.now() - 60 * 60 * 1000).toISOString();
    const twoDaysAgo = new Date(Date.now() - 48 * 60 * 60 * 1000).toISOString();
    data.whatsapp = { t_sam: hourAgo, t_olga: twoDaysAgo };
    data.templates = [{ name: "order_update", language: "en_US", body: "Hello {{1}}, your order {{2}} is on its way.", parameters: 2 }];
    render(App, { props: { backend: memoryBackend(data) } });
    const badges = await screen.findAllByTestId("channel-badge");
    expect(badges).toHaveLength(2);
    const windows = screen.getAllByTestId("reply-window").map((w) => w.textContent ?? "");
    expect(windows.some((w) => /2[23] h \d+ min left to reply/.test(w))).toBe(true);
    expect(windows.some((w) => w.includes("reply window closed"))).toBe(true);

    await openHandoff("Wrong size");
    expect(screen.getByTestId("window-closed").textContent).toContain("approved template");
    expect(screen.queryByTestId("send")).toBeNull();
    // The composer gives way to the number's templates, filled in before they go.
    const params = await screen.findAllByTestId("template-parameter");
    expect(params).toHaveLength(2);
    const send = screen.getByTestId("template-send") as HTMLButtonElement;
    expect(send.disabled).toBe(true);
    await fireEvent.input(params[0]!, { target: { value: "Olga" } });
    await fireEvent.input(params[1]!, { target: { value: "#77" } });
    expect(screen.getByTestId("template-preview").textContent).toBe("Hello Olga, your order #77 is on its way.");
    await fireEvent.click(send);
    await waitFor(() => expect(data.outbox.some((i) => i.command.action === "message" && i.command.type === "template")).toBe(true));
    await openHandoff("Parcel late");
    expect(await screen.findByTestId("send")).toBeTruthy();
    expect(screen.queryByTestId("window-closed")).toBeNull();
  });

  test("a customer's WhatsApp photo shows inline, and a file that cannot be fetched says why", async () => {
    const data = inbox();
    data.whatsapp = { t_sam: new Date().toISOString() };
    const photo = (id: string, mediaId: string): MemoryInbox["messages"][number] => ({
      ...message(id, "t_sam", `[image] ${mediaId}`),
      type: "image",
      payload: { id: `wamid.${id}`, type: "image", image: { id: mediaId, mime_type: "image/jpeg" } },
    });
    data.messages.push(photo("m_photo", "media-1"), photo("m_gone", "media-2"));
    data.media = { m_photo: { mime_type: "image/jpeg", data_url: "data:image/jpeg;base64,/9j/4AAQ" } };
    render(App, { props: { backend: memoryBackend(data) } });
    await openHandoff("Parcel late");
    const image = (await screen.findByTestId("media-image")) as HTMLImageElement;
    expect(image.getAttribute("src")).toBe("data:image/jpeg;base64,/9j/4AAQ");
    expect((await screen.findByTestId("media-problem")).textContent).toContain("no such file");
  });

  test("on WhatsApp an agent quotes the customer's message, reacts to it, and sends a file from their computer", async () => {
    const data = inbox();
    data.whatsapp = { t_sam: new Date().toISOString() };
    data.messages[0] = { ...data.messages[0]!, payload: { id: "wamid.sam1", type: "text", text: { body: "Where is my parcel?" } } };
    render(App, { props: { backend: memoryBackend(data) } });
    await openHandoff("Parcel late");
    const commands = () => data.outbox.map((i) => i.command);

    await fireEvent.click(await screen.findByTestId("quote-reply"));
    expect(screen.getByTestId("quoting").textContent).toContain("Where is my parcel?");
    await fireEvent.input(screen.getByTestId("composer"), { target: { value: "It ships today" } });
    await fireEvent.click(screen.getByTestId("send"));
    await waitFor(() =>
      expect(commands()).toContainEqual({
        action: "message",
        conversation_id: "t_sam",
        type: "text",
        payload: { text: "It ships today", reply_to: "m_1" },
      }),
    );
    await waitFor(() => expect(screen.queryByTestId("quoting")).toBeNull());

    await fireEvent.click(screen.getByTestId("react"));
    await fireEvent.click(screen.getByRole("button", { name: "React 👍" }));
    await waitFor(() =>
      expect(commands()).toContainEqual({ action: "message", conversation_id: "t_sam", type: "reaction", payload: { message_id: "m_1", emoji: "👍" } }),
    );

    const input = screen.getByTestId("file-input") as HTMLInputElement;
    const receipt = new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], "receipt.png", { type: "image/png" });
    Object.defineProperty(input, "files", { value: [receipt] });
    await fireEvent.change(input);
    expect(screen.getByTestId("file-name").textContent).toBe("receipt.png · 4 B");
    await fireEvent.input(screen.getByTestId("file-caption"), { target: { value: "Your receipt" } });
    await fireEvent.click(screen.getByTestId("file-send"));
    await waitFor(() => {
      const sent = commands().find((c) => c.action === "message" && c.type === "image");
      expect(sent).toMatchObject({ payload: { mime_type: "image/png", filename: "receipt.png", title: "Your receipt" } });
    });
    await waitFor(() => expect(screen.queryByTestId("file")).toBeNull());
  });

  test("a file WhatsApp cannot take is refused beside the form, before any upload", async () => {
    const data = inbox();
    data.whatsapp = { t_sam: new Date().toISOString() };
    render(App, { props: { backend: memoryBackend(data) } });
    await openHandoff("Parcel late");
    const input = (await screen.findByTestId("file-input")) as HTMLInputElement;
    const huge = new File(["x"], "movie.mp4", { type: "video/mp4" });
    Object.defineProperty(huge, "size", { value: 40 * 1024 * 1024 });
    Object.defineProperty(input, "files", { value: [huge] });
    await fireEvent.change(input);
    expect(screen.getByRole("alert").textContent).toContain("at most 16 MB");
    expect((screen.getByTestId("file-send") as HTMLButtonElement).disabled).toBe(true);
  });

  test("a bot's draft waits for a decision: edited and approved, it is sent with the original kept; another is rejected with a reason", async () => {
    const data = inbox();
    data.handoffs.push({ ...handoff("ho_draft", "t_bot", "Approve the bot's reply"), for_draft: true });
    data.messages.push(
      { ...message("m_d1", "t_bot", "Your refund of $80 was sent.", "bot"), status: "draft" },
      { ...message("m_d2", "t_bot", "Everything is 50% off!", "bot"), status: "draft" },
    );
    const backend = memoryBackend(data);
    render(App, { props: { backend } });
    await openHandoff("Approve the bot's reply");
    const drafts = await screen.findAllByTestId("message");
    expect(drafts[0]?.textContent).toContain("Draft: waiting for approval");

    await fireEvent.click(within(drafts[0] as HTMLElement).getByTestId("draft-edit"));
    const editor = (await screen.findByTestId("draft-text")) as HTMLTextAreaElement;
    expect(editor.value).toBe("Your refund of $80 was sent.");
    await fireEvent.input(editor, { target: { value: "Your refund of $85 was sent." } });
    await fireEvent.click(screen.getByTestId("draft-approve-edited"));
    await waitFor(() => expect(screen.getByTestId("edited-from").textContent).toContain("Your refund of $80 was sent."));
    expect(backend.inbox.messages.find((m) => m.id === "m_d1")?.text).toBe("Your refund of $85 was sent.");

    const second = (await screen.findAllByTestId("message"))[1] as HTMLElement;
    await fireEvent.click(within(second).getByTestId("draft-reject"));
    await fireEvent.input(within(second).getByTestId("draft-reason"), { target: { value: "no such sale" } });
    await fireEvent.click(within(second).getByTestId("draft-reject-confirm"));
    await waitFor(() => expect(within(second).getByTestId("delivery").textContent).toContain("Rejected: no such sale"));
    expect(screen.queryAllByTestId("draft-approve")).toHaveLength(0);
  });

  test("the keyboard moves through the list, takes and resolves with a label, and ? lists the shortcuts", async () => {
    const backend = memoryBackend(inbox());
    render(App, { props: { backend } });
    await screen.findAllByTestId("handoff-item");
    await fireEvent.keyDown(window, { key: "?" });
    expect(screen.getByTestId("shortcuts").textContent).toContain("Next / previous conversation");
    await fireEvent.keyDown(window, { key: "Escape" });
    expect(screen.queryByTestId("shortcuts")).toBeNull();

    await fireEvent.keyDown(window, { key: "ArrowDown", altKey: true });
    await waitFor(() => expect(screen.getByTestId("conversation-title").textContent).toBe("Parcel late"));
    await fireEvent.keyDown(window, { key: "ArrowDown", altKey: true });
    await waitFor(() => expect(screen.getByTestId("conversation-title").textContent).toBe("Wrong size"));
    await fireEvent.keyDown(window, { key: "a", altKey: true });
    await waitFor(() => expect(backend.inbox.handoffs.find((h) => h.id === "ho_olga")?.status).toBe("assigned"));
    await fireEvent.keyDown(window, { key: "r", altKey: true });
    const labelField = await screen.findByLabelText("Resolution label");
    expect(document.activeElement).toBe(labelField);
    await fireEvent.input(labelField, { target: { value: "exchanged" } });
    await fireEvent.keyDown(labelField, { key: "Enter" });
    await waitFor(() => expect(backend.inbox.handoffs.find((h) => h.id === "ho_olga")).toMatchObject({ status: "resolved", label: "exchanged" }));
  });

  test("an admin's Team view shows who is online, how many each holds, and the longest wait", async () => {
    const data = inbox();
    data.agents.push(agent("ag_bob", "Bob", "agent"), { ...agent("ag_cy", "Cy", "agent"), presence: "offline" });
    data.handoffs.push({ ...handoff("ho_b1", "t_b1", "Bob's"), status: "assigned", assignee: "ag_bob" });
    data.handoffs[0] = { ...data.handoffs[0]!, created_at: new Date(Date.now() - 20 * 60_000).toISOString() };
    data.handoffs[1] = { ...data.handoffs[1]!, created_at: new Date(Date.now() - 5 * 60_000).toISOString() };
    render(App, { props: { backend: memoryBackend(data) } });
    await fireEvent.click(await screen.findByTestId("team-toggle"));
    const rows = await screen.findAllByTestId("team-row");
    expect(rows[0]?.textContent).toMatch(/Bob.*Online.*1 of/);
    expect(rows.some((r) => /Cy.*Offline.*0 of/.test(r.textContent ?? ""))).toBe(true);
    expect(screen.getByTestId("team-waiting").textContent).toMatch(/2 waiting · the longest for 20 min/);
  });

  test("going offline with handoffs in hand asks whether to return them to the queue", async () => {
    const data = inbox();
    data.handoffs.push({ ...handoff("ho_mine", "t_mine", "Mine one"), status: "assigned", assignee: "ag_me" });
    const backend = memoryBackend(data);
    let presence: string | null = null;
    backend.setPresence = async (s) => {
      presence = s;
    };
    render(App, { props: { backend } });
    await screen.findByTestId("count-mine");
    await fireEvent.click(await screen.findByTestId("presence-toggle"));
    expect(screen.getByTestId("offline-confirm").textContent).toContain("You hold 1.");
    expect(presence).toBeNull();
    await fireEvent.click(screen.getByTestId("offline-return"));
    await waitFor(() => expect(backend.inbox.handoffs.find((h) => h.id === "ho_mine")).toMatchObject({ status: "pending", assignee: null }));
    expect(presence).toBe("offline");
  });

  test("a link in a customer's message opens in the browser, and the rest stays text", async () => {
    const data = inbox();
    data.messages.push({ ...message("m_link", "t_sam", "Tracking: https://track.example/p/77. <b>thanks</b>"), author_id: "u_sam" });
    const backend = memoryBackend(data);
    render(App, { props: { backend } });
    await openHandoff("Parcel late");
    const link = await screen.findByTestId("message-link");
    expect(link.textContent).toBe("https://track.example/p/77");
    await fireEvent.click(link);
    await waitFor(() => expect(backend.inbox.opened).toEqual(["https://track.example/p/77"]));
    expect(document.querySelectorAll(".message b")).toHaveLength(0);
  });

  test("a clicked notification opens its conversation", async () => {
    const backend = memoryBackend(inbox());
    render(App, { props: { backend } });
    await screen.findAllByTestId("handoff-item");
    backend.clickNotification("t_olga");
    await waitFor(() => expect(screen.getByTestId("conversation-title").textContent).toBe("Wrong size"));
  });

  test("every tab shows how many it holds, and a customer waiting long is marked", async () => {
    const data = inbox();
    data.handoffs[0] = { ...data.handoffs[0]!, created_at: new Date(Date.now() - 20 * 60_000).toISOString() };
    data.handoffs.push({ ...handoff("ho_done", "t_done", "Done one"), status: "resolved" });
    data.handoffs.push({ ...handoff("ho_mine", "t_mine", "Mine one"), status: "assigned", assignee: "ag_me" });
    render(App, { props: { backend: memoryBackend(data) } });
    expect((await screen.findByTestId("count-pending")).textContent).toBe("2");
    expect(screen.getByTestId("count-mine").textContent).toBe("1");
    expect(screen.getByTestId("count-resolved").textContent).toBe("1");
    expect(screen.queryByTestId("count-cancelled")).toBeNull();
    const waits = screen.getAllByTestId("wait");
    expect(waits.some((w) => w.classList.contains("red"))).toBe(true);
  });

  test("an urgent handoff from a bot says so in the list; a normal one does not", async () => {
    const data = inbox();
    data.handoffs[1] = { ...data.handoffs[1]!, priority: "urgent" };
    render(App, { props: { backend: memoryBackend(data) } });
    const items = await screen.findAllByTestId("handoff-item");
    const olga = items.find((i) => i.textContent?.includes("Wrong size"));
    expect(within(olga!).getByTestId("priority").textContent).toBe("urgent");
    const sam = items.find((i) => i.textContent?.includes("Parcel late"));
    expect(within(sam!).queryByTestId("priority")).toBeNull();
  });

  test("an admin sees which number cannot send and how to fix it; an agent does not", async () => {
    const data = inbox();
    data.problems = [{ channel: "Support line", reason: "Meta refused the number's access token; an admin must set a new one" }];
    const { unmount } = render(App, { props: { backend: memoryBackend(data) } });
    expect((await screen.findByTestId("channel-problem")).textContent).toContain("Support line cannot send: Meta refused");
    unmount();
    const agentOnly = inbox();
    agentOnly.me = { ...agentOnly.me, role: "agent" };
    agentOnly.problems = data.problems;
    render(App, { props: { backend: memoryBackend(agentOnly) } });
    await screen.findAllByTestId("handoff-item");
    expect(screen.queryByTestId("channel-problem")).toBeNull();
  });
});

describe("the inbox's lists", () => {
  test("a conversation is unread until opened, and 'Mark as unread' closes it and marks it again", async () => {
    render(App, { props: { backend: memoryBackend(inbox()) } });
    await screen.findAllByTestId("handoff-item");
    expect(screen.getAllByTestId("unread")).toHaveLength(2);
    await openHandoff("Parcel late");
    await waitFor(() => expect(screen.getAllByTestId("unread")).toHaveLength(1));
    await fireEvent.click(screen.getByTestId("mark-unread"));
    await waitFor(() => expect(screen.getAllByTestId("unread")).toHaveLength(2));
    expect(screen.queryByTestId("conversation-title")).toBeNull();

    await fireEvent.click(screen.getByTestId("filter-unread"));
    await openHandoff("Wrong size");
    // Only what is unread is listed: the one just read leaves the list.
    await waitFor(() => expect(screen.getAllByTestId("handoff-item").map((i) => i.textContent)).toEqual([expect.stringContaining("Parcel late")]));
  });

  test("a tag is a view of the open handoffs carrying it, and All open says who holds each", async () => {
    const data = inbox();
    data.handoffs = [
      { ...handoff("ho_sam", "t_sam", "Parcel late"), tags: ["billing"] },
      { ...handoff("ho_olga", "t_olga", "Wrong size", "assigned", "ag_me") },
    ];
    const backend = memoryBackend(data);
    backend.team = async () => ({ agents: data.agents, tags: ["billing", "returns"], templates: [] });
    render(App, { props: { backend } });
    const billing = await screen.findByText("#billing");
    await fireEvent.click(billing);
    await waitFor(() => expect(screen.getAllByTestId("handoff-title").map((t) => t.textContent)).toEqual(["Parcel late"]));
    await fireEvent.click(screen.getByTestId("tab-open"));
    await waitFor(() => expect(screen.getAllByTestId("handoff-item")).toHaveLength(2));
    expect(screen.getByTestId("holder").textContent).toContain("Ana");
    expect(screen.getByTestId("count-open").textContent).toBe("2");
  });

  test("a list of 10,000 handoffs draws only the rows in sight", async () => {
    const data = inbox();
    data.handoffs = Array.from({ length: 10_000 }, (_, i) => handoff(`ho_${i}`, `t_${i}`, `Handoff ${i}`));
    data.messages = [];
    render(App, { props: { backend: memoryBackend(data) } });
    await screen.findByText("Handoff 0");
    expect((await screen.findByTestId("count-pending")).textContent).toBe("10000");
    expect(screen.getAllByTestId("handoff-item").length).toBeLessThan(40);
    const scroller = screen.getByTestId("handoff-scroller");
    scroller.scrollTop = 78 * 5_000;
    await fireEvent.scroll(scroller);
    await screen.findByText("Handoff 5000");
    expect(screen.queryByText("Handoff 0")).toBeNull();
    expect(screen.getAllByTestId("handoff-item").length).toBeLessThan(40);
  });
});

describe("my notification settings", () => {
  test("are in Settings: sound off and quiet hours at night are saved for this device", async () => {
    const backend = memoryBackend(inbox());
    render(App, { props: { backend } });
    await fireEvent.click(await screen.findByTestId("settings-toggle"));
    await fireEvent.click(await screen.findByTestId("notify-sound"));
    await fireEvent.click(screen.getByTestId("notify-quiet"));
    await fireEvent.input(screen.getByTestId("quiet-from"), { target: { value: "21:30" } });
    await fireEvent.click(screen.getByTestId("notify-save"));
    await screen.findByText("Saved.");
    expect(backend.inbox.notifications).toMatchObject({ sound: false, new_handoffs: true, quiet_from: "21:30", quiet_until: "07:00" });
  });
});

describe("presence", () => {
  test("an agent idle past the away timeout shows as away, and is online again at their next keystroke", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const data = inbox();
      data.awayAfterSecs = 60;
      const backend = memoryBackend(data);
      render(App, { props: { backend } });
      const toggle = await screen.findByTestId("presence-toggle");
      await waitFor(() => expect(toggle.textContent).toContain("Online"));
      vi.advanceTimersByTime(65_000);
      await waitFor(() => expect(toggle.textContent).toContain("Away"));
      expect(data.presence).toBe("away");
      await fireEvent.keyDown(window, { key: "x" });
      await waitFor(() => expect(toggle.textContent).toContain("Online"));
      expect(data.presence).toBe("online");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("rich messages", () => {
  test("a location, a card with its buttons and a choice are drawn as what they are, and the map opens in the browser", async () => {
    const data = inbox();
    data.messages.push(
      { ...message("m_loc", "t_sam", "[location]"), type: "location", payload: { latitude: 40.4168, longitude: -3.7038, address: "Gran Vía 1" }, author_id: "u_sam" },
      { ...message("m_card", "t_sam", "Order 1234", "bot"), type: "card", payload: { title: "Order 1234", subtitle: "Shipped", actions: [{ action: "url", label: "Track", value: "https://t.example/1" }] } },
      { ...message("m_choice", "t_sam", "Pick one", "bot"), type: "choice", payload: { text: "Pick one", options: [{ label: "Refund", value: "r" }, { label: "Exchange", value: "e" }] } },
    );
    render(App, { props: { backend: memoryBackend(data) } });
    await openHandoff("Parcel late");
    expect((await screen.findByTestId("place")).textContent).toContain("Gran Vía 1");
    expect(screen.getByTestId("card").textContent).toContain("Track ↗");
    expect(screen.getByTestId("choices").textContent).toMatch(/Refund.*Exchange/);
    expect(screen.queryByText("[location]")).toBeNull();
    await fireEvent.click(screen.getByTestId("map-link"));
    await waitFor(() => expect(data.opened?.[0]).toContain("openstreetmap.org/?mlat=40.4168"));
  });
});

describe("setting up", () => {
  test("'Send a test handoff' puts one in Waiting and says where it is", async () => {
    const backend = memoryBackend({ ...inbox(), endpointUrl: "http://127.0.0.1:8717/botpress/x" });
    render(App, { props: { backend } });
    await fireEvent.click(await screen.findByTestId("test-handoff"));
    expect((await screen.findByTestId("test-handoff-result")).textContent).toContain("waiting in Waiting");
    await screen.findByText("Test handoff from Baton");
  });
});

describe("signing in", () => {
  test("the sign-in form asks for the hub's address, starting from the last one, and offers a solo desk", async () => {
    const data = { ...inbox(), signedOut: true };
    render(App, { props: { backend: memoryBackend(data) } });
    const address = (await screen.findByTestId("hub-address")) as HTMLInputElement;
    expect(address.value).toBe("http://127.0.0.1:8717");
    await fireEvent.input(address, { target: { value: "https://baton.example.com" } });
    await fireEvent.input(screen.getByLabelText("Email"), { target: { value: "ana@example.com" } });
    await fireEvent.input(screen.getByLabelText("Password"), { target: { value: "a long enough password" } });
    await fireEvent.click(screen.getByText("Sign in"));
    await waitFor(() => expect(data.signedInTo).toEqual({ email: "ana@example.com", hubUrl: "https://baton.example.com" }));
    await fireEvent.click(screen.getByTestId("use-solo"));
    await waitFor(() => expect(data.hubChosen).toBeNull());
  });
});

describe("reports", () => {
  test("an admin sees the team's figures by agent, as a table, and exports them as CSV", async () => {
    const data = inbox();
    data.handoffs = [handoff("ho_1", "t_1", "One", "resolved", "ag_me"), handoff("ho_2", "t_2", "Two", "cancelled"), handoff("ho_3", "t_3", "Three")];
    render(App, { props: { backend: memoryBackend(data) } });
    await fireEvent.click(await screen.findByTestId("reports-toggle"));
    await screen.findByTestId("report-view");
    await fireEvent.change(screen.getByTestId("report-by"), { target: { value: "agent" } });
    await waitFor(() =>
      expect(screen.getAllByTestId("report-row").map((r) => r.textContent)).toEqual([
        expect.stringMatching(/^Ana1\s*1\s*0/),
        expect.stringMatching(/^unassigned2\s*0\s*1/),
      ]),
    );
    expect(screen.getAllByTestId("report-row")[0]?.textContent).toContain("2 min / 5 min");
    await fireEvent.click(screen.getByTestId("report-export"));
    expect((await screen.findByTestId("report-saved")).textContent).toContain("baton-report-");
  });
});
