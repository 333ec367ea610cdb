import { describe, expect, it, test } from "vitest";
import { cardsOf, choicesOf, duration, placeOf } from "./format";
import { age, connectionLabel, insertTemplate, matchTemplates, mediaUrl, preview, templateQuery } from "./format";
import { continuesRun, dayLabel, linkParts, offlineBanner, snippetParts, syncedLabel, waitLevel } from "./format";
import type { Message } from "./types";

const now = new Date("2026-11-21T12:00:00Z");

function message(over: Partial<Message>): Message {
  return {
    id: "m",
    conversation_id: "c",
    author: "end_user",
    type: "text",
    payload: {},
    status: "received",
    created_at: "2026-11-21T11:00:00Z",
    ...over,
  };
}

describe("age", () => {
  it("says how long a handoff has waited in the largest sensible unit", () => {
    expect(age("2026-11-21T11:59:30Z", now)).toBe("just now");
    expect(age("2026-11-21T11:56:00Z", now)).toBe("4 min");
    expect(age("2026-11-21T09:00:00Z", now)).toBe("3 h");
    expect(age("2026-11-18T12:00:00Z", now)).toBe("3 d");
  });
  it("shows nothing for a date it cannot read", () => {
    expect(age("soon", now)).toBe("");
  });
});

describe("links in messages", () => {
  it("finds web links in text and leaves the rest as text", () => {
    expect(linkParts("see https://shop.example/o/4711. thanks")).toEqual([
      { text: "see " },
      { text: "https://shop.example/o/4711", href: "https://shop.example/o/4711" },
      { text: ". thanks" },
    ]);
    expect(linkParts("javascript:alert(1) <b>x</b>")).toEqual([{ text: "javascript:alert(1) <b>x</b>" }]);
    expect(linkParts("(http://a.example/x)")).toEqual([{ text: "(" }, { text: "http://a.example/x", href: "http://a.example/x" }, { text: ")" }]);
  });
});

describe("the queue and the conversation", () => {
  it("colours a wait amber from 5 minutes and red from 15", () => {
    expect(waitLevel("2026-11-21T11:58:00Z", now)).toBe("fresh");
    expect(waitLevel("2026-11-21T11:54:00Z", now)).toBe("amber");
    expect(waitLevel("2026-11-21T11:40:00Z", now)).toBe("red");
  });
  it("names today and yesterday, and dates older days", () => {
    const local = (h: number, dayOffset = 0): string => new Date(now.getFullYear(), now.getMonth(), now.getDate() - dayOffset, h).toISOString();
    expect(dayLabel(local(9), now)).toBe("Today");
    expect(dayLabel(local(9, 1), now)).toBe("Yesterday");
    expect(dayLabel(local(9, 5), now)).not.toMatch(/Today|Yesterday/);
  });
  it("runs a writer's messages together only within five minutes", () => {
    const first = message({ created_at: "2026-11-21T11:00:00Z", author_id: "u1" });
    expect(continuesRun(first, message({ created_at: "2026-11-21T11:03:00Z", author_id: "u1" }))).toBe(true);
    expect(continuesRun(first, message({ created_at: "2026-11-21T11:06:00Z", author_id: "u1" }))).toBe(false);
    expect(continuesRun(first, message({ created_at: "2026-11-21T11:01:00Z", author: "agent", author_id: "a1" }))).toBe(false);
    expect(continuesRun(undefined, first)).toBe(false);
  });
});

describe("preview", () => {
  it("shows a message's text, or its type and link when it has none", () => {
    expect(preview(message({ text: "the box was crushed" }))).toBe("the box was crushed");
    expect(preview(message({ type: "image", payload: { imageUrl: "https://x/p.png" } }))).toBe(
      "[image] https://x/p.png",
    );
    expect(preview(null)).toBe("No messages yet");
  });
  it("never offers a javascript: link from a bot's payload", () => {
    expect(mediaUrl(message({ type: "image", payload: { imageUrl: "javascript:alert(1)" } }))).toBe(null);
  });
});

describe("connectionLabel", () => {
  it("tells the agent when the desk is offline and when it retries", () => {
    expect(connectionLabel({ state: "offline", error: "refused", retry_in_ms: 4200 })).toBe(
      "Offline — retrying in 4 s",
    );
    expect(connectionLabel({ state: "live", seq: 3 })).toBe("Live");
  });
});

describe("templates in the composer", () => {
  it("start at a colon typed at the start or after a space", () => {
    expect(templateQuery(":ref")).toBe("ref");
    expect(templateQuery("Hello :")).toBe("");
    expect(templateQuery("see you at 10:30")).toBe(null);
    expect(templateQuery("plain text")).toBe(null);
  });
  it("replace only the typed :name with the template's text", () => {
    expect(insertTemplate("Hi Dana, :ref", "Your refund is on its way.")).toBe("Hi Dana, Your refund is on its way.");
    expect(insertTemplate(":ref", "Done.")).toBe("Done.");
  });
  it("list names that start with the query first", () => {
    const names = matchTemplates([{ name: "prefund" }, { name: "refund" }, { name: "hello" }], "ref").map((t) => t.name);
    expect(names).toEqual(["refund", "prefund"]);
  });
});

describe("search snippets", () => {
  it("split into plain and matched runs, markup stays text", () => {
    expect(snippetParts("…the [box] was <b>[crushed]</b>")).toEqual([
      { text: "…the ", match: false },
      { text: "box", match: true },
      { text: " was <b>", match: false },
      { text: "crushed", match: true },
      { text: "</b>", match: false },
    ]);
    expect(snippetParts("no match")).toEqual([{ text: "no match", match: false }]);
  });
});

describe("offline state", () => {
  it("names what waits and what was refused", () => {
    expect(offlineBanner(0, 0)).toContain("nothing waiting");
    expect(offlineBanner(2, 1)).toContain("2 actions waiting to be sent; 1 refused by the hub");
  });
  it("says when the cache was last in step", () => {
    const now = new Date("2026-11-21T15:00:00");
    expect(syncedLabel(null, now)).toBe("Not synced yet");
    expect(syncedLabel(new Date("2026-11-21T14:05:00").toISOString(), now)).toMatch(/^Synced up to \d/);
    expect(syncedLabel(new Date("2026-11-03T14:05:00").toISOString(), now)).toContain("Nov");
  });
});

describe("rich messages", () => {
  const msg = (type: string, payload: Record<string, unknown>): Message => message({ type, text: undefined, payload });

  test("a location from Botpress or WhatsApp is a place with its name and a map link", () => {
    expect(placeOf(msg("location", { latitude: 40.4168, longitude: -3.7038, title: "Shop", address: "Gran Vía 1" }))).toEqual({
      latitude: 40.4168,
      longitude: -3.7038,
      label: "Shop, Gran Vía 1",
      mapUrl: "https://www.openstreetmap.org/?mlat=40.4168&mlon=-3.7038#map=16/40.4168/-3.7038",
    });
    expect(placeOf(msg("location", { location: { latitude: 1, longitude: 2, name: "Depot" } }))?.label).toBe("Depot");
    expect(placeOf(msg("location", { latitude: "north" }))).toBeNull();
  });

  test("cards keep their buttons, and only web links open", () => {
    const card = { title: "Order 1234", subtitle: "Shipped", actions: [{ action: "url", label: "Track", value: "https://t.example/1" }, { action: "postback", label: "Help", value: "help" }, { action: "url", label: "Bad", value: "javascript:alert(1)" }] };
    expect(cardsOf(msg("card", card))).toEqual([
      { title: "Order 1234", subtitle: "Shipped", imageUrl: null, buttons: [{ label: "Track", url: "https://t.example/1" }, { label: "Help", url: null }, { label: "Bad", url: null }] },
    ]);
    expect(cardsOf(msg("carousel", { items: [card, { nope: 1 }] }))).toHaveLength(1);
    expect(choicesOf(msg("choice", { text: "Pick one", options: [{ label: "Refund", value: "r" }, { label: "Exchange", value: "e" }] }))).toEqual({
      text: "Pick one",
      options: ["Refund", "Exchange"],
    });
  });
});

describe("report durations", () => {
  test("read as seconds, minutes or hours", () => {
    expect(duration(null)).toBe("–");
    expect(duration(42.4)).toBe("42 s");
    expect(duration(720)).toBe("12 min");
    expect(duration(7500)).toBe("2 h 05 min");
  });
});
