// The service worker (public/sw.js) as the browser runs it: the file itself, loaded against a
// stand-in `self` (its registration, its windows), receiving pushes and clicks.

import { describe, expect, test, vi } from "vitest";
import SOURCE from "../../public/sw.js?raw";

interface FakeWindow {
  url: string;
  postMessage: ReturnType<typeof vi.fn>;
  focus: ReturnType<typeof vi.fn>;
}

/** A tab of the browser at `url`. */
function tab(url: string): FakeWindow {
  return { url, postMessage: vi.fn(), focus: vi.fn(async () => undefined) };
}

/** The service worker installed at /app/, with these tabs open. */
function worker(windows: FakeWindow[] = []) {
  const listeners = new Map<string, (event: unknown) => void>();
  const self = {
    addEventListener: (type: string, listener: (event: unknown) => void) => listeners.set(type, listener),
    registration: { scope: "https://baton.example.com/app/", showNotification: vi.fn(async () => undefined) },
    clients: { matchAll: vi.fn(async () => windows), openWindow: vi.fn(async () => null) },
  };
  new Function("self", SOURCE)(self);
  /** Fires an event and waits for what it asked the browser to wait for. */
  const fire = async (type: string, event: object): Promise<void> => {
    const waits: Promise<unknown>[] = [];
    listeners.get(type)?.({ ...event, waitUntil: (p: Promise<unknown>) => waits.push(p) });
    await Promise.all(waits);
  };
  return {
    self,
    push: (data: { json(): unknown; text(): string } | null) => fire("push", { data }),
    click: (conversationId: string) => {
      const notification = { data: { conversation_id: conversationId }, close: vi.fn() };
      return fire("notificationclick", { notification }).then(() => notification);
    },
  };
}

const payload = { title: "New message from Sam Brooks", body: "Sam Brooks wrote in a conversation you hold", conversation_id: "t_sam", kind: "customer_wrote" };

describe("the service worker", () => {
  test("a push shows its title and body, one notification per conversation that rings again when replaced", async () => {
    const sw = worker();
    await sw.push({ json: () => payload, text: () => JSON.stringify(payload) });
    expect(sw.self.registration.showNotification).toHaveBeenCalledWith("New message from Sam Brooks", {
      body: "Sam Brooks wrote in a conversation you hold",
      icon: "icons/icon-192.png",
      tag: "t_sam",
      renotify: true,
      data: { conversation_id: "t_sam" },
    });
  });

  test("a push that is not the hub's JSON still shows, under Baton's name", async () => {
    const sw = worker();
    await sw.push({
      json: () => {
        throw new SyntaxError("not JSON");
      },
      text: () => "Something happened",
    });
    expect(sw.self.registration.showNotification).toHaveBeenCalledWith("Baton", { body: "Something happened", icon: "icons/icon-192.png", data: { conversation_id: "" } });
  });

  test("clicking a notification closes it and opens its conversation in the tab already open", async () => {
    const open = tab("https://baton.example.com/app/");
    const sw = worker([tab("https://baton.example.com/elsewhere"), open]);
    const notification = await sw.click("t_sam");
    expect(notification.close).toHaveBeenCalled();
    expect(open.postMessage).toHaveBeenCalledWith({ type: "open", conversation_id: "t_sam" });
    expect(open.focus).toHaveBeenCalled();
    expect(sw.self.clients.openWindow).not.toHaveBeenCalled();
  });

  test("with no tab open, clicking a notification opens one on its conversation", async () => {
    const sw = worker([tab("https://baton.example.com/elsewhere")]);
    await sw.click("t_sam & co");
    expect(sw.self.clients.openWindow).toHaveBeenCalledWith("./?conversation=t_sam%20%26%20co");
  });
});
