// Small pure helpers for what the inbox shows; tested in format.test.ts. Their words come from
// the catalogs (lib/i18n), in the language the UI speaks now.

import { locale, t, type MessageKey } from "./i18n.svelte";
import type { AgentCommand, Author, ConnectionState, Message, Presence } from "./types";

/** "just now", "4 min", "2 h", "3 d": how long something has been waiting. */
export function age(iso: string, now: Date): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now.getTime() - then) / 1000));
  if (seconds < 60) return t("time.justNow");
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return t("time.minutes", { minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t("time.hours", { hours });
  return t("time.days", { days: Math.floor(hours / 24) });
}

/** How long a customer has waited, against what a team expects: amber from 5 minutes, red from 15. */
export function waitLevel(iso: string, now: Date): "fresh" | "amber" | "red" {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "fresh";
  const minutes = (now.getTime() - then) / 60_000;
  return minutes >= 15 ? "red" : minutes >= 5 ? "amber" : "fresh";
}

/** A message's text as runs of plain text and web links, for rendering as text and `<a>` (never
 * as HTML). Trailing punctuation after a link ("see https://x.example/a.") is not part of it. */
export function linkParts(text: string): Array<{ text: string; href?: string }> {
  const parts: Array<{ text: string; href?: string }> = [];
  const re = /https?:\/\/[^\s<>"']+/gi;
  let at = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const href = m[0].replace(/[.,;:!?)\]]+$/, "");
    if (m.index > at) parts.push({ text: text.slice(at, m.index) });
    parts.push({ text: href, href });
    at = m.index + href.length;
    re.lastIndex = at;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

/** The day a message was written, for the separators between days: "Today", "Yesterday", or a date. */
export function dayLabel(iso: string, now: Date): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const day = (d: Date): number => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(now) - day(at)) / 86_400_000);
  if (days === 0) return t("time.today");
  if (days === 1) return t("time.yesterday");
  return at.toLocaleDateString(locale(), { weekday: "long", day: "numeric", month: "long", year: at.getFullYear() === now.getFullYear() ? undefined : "numeric" });
}

/** A message's time of day ("14:32"); the exact date and time go in its tooltip. */
export function clockTime(iso: string): string {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
}

/** Whether `message` continues `previous`'s run: same writer, same day, within 5 minutes. Only the
 * first message of a run shows who wrote it. */
export function continuesRun(previous: Message | undefined, message: Message): boolean {
  if (!previous) return false;
  const gap = Date.parse(message.created_at) - Date.parse(previous.created_at);
  return (
    previous.author === message.author &&
    (previous.author_id ?? null) === (message.author_id ?? null) &&
    new Date(previous.created_at).toDateString() === new Date(message.created_at).toDateString() &&
    gap >= 0 &&
    gap < 5 * 60_000
  );
}

const AUTHOR_LABELS: Record<Author, MessageKey> = {
  end_user: "author.end_user",
  bot: "author.bot",
  agent: "author.agent",
  system: "author.system",
};

export function authorLabel(author: Author, customer: string | null): string {
  return author === "end_user" && customer ? customer : t(AUTHOR_LABELS[author]);
}

/** One line that stands for a message in a list: its text, or what kind of thing it is. */
export function preview(message: Message | null): string {
  if (!message) return t("list.noMessages");
  if (message.text) return message.text;
  const url = mediaUrl(message);
  return url ? `[${message.type}] ${url}` : `[${message.type}]`;
}

/** The http(s) URL a media message points to, if any; other schemes are never offered as links. */
export function mediaUrl(message: Message): string | null {
  for (const key of ["imageUrl", "audioUrl", "videoUrl", "fileUrl"]) {
    const value = message.payload[key];
    if (typeof value === "string" && /^https?:\/\//i.test(value)) return value;
  }
  return null;
}

/** How an agent's presence reads. */
export function presenceLabel(presence: Presence): string {
  return t(presence === "online" ? "presence.online" : presence === "away" ? "presence.away" : "presence.offline");
}

/** Whether an agent idle since `lastActive` should show as away now (`afterSecs` of no input). */
export function idleTooLong(lastActive: number, now: number, afterSecs: number): boolean {
  return afterSecs > 0 && now - lastActive >= afterSecs * 1000;
}

export function connectionLabel(state: ConnectionState | null): string {
  if (!state) return t("connection.starting");
  switch (state.state) {
    case "connecting":
      return t("connection.connecting");
    case "live":
      return t("connection.live");
    case "offline":
      return t("connection.offline", { seconds: Math.max(1, Math.round(state.retry_in_ms / 1000)) });
  }
}

/**
 * The `:name` being typed at the end of a composer text, if any: what the template picker filters
 * by. A colon starts one only at the beginning or after whitespace, so "10:30" is not a template.
 */
export function templateQuery(text: string): string | null {
  const match = /(?:^|\s):([\w-]*)$/.exec(text);
  return match ? (match[1] ?? "") : null;
}

/** The composer text with the `:name` being typed replaced by a template's text. */
export function insertTemplate(text: string, templateText: string): string {
  return text.replace(/(^|\s):[\w-]*$/, (_m, before: string) => `${before}${templateText}`);
}

/** Templates whose name starts with (then contains) the query. */
export function matchTemplates<T extends { name: string }>(templates: T[], query: string): T[] {
  const q = query.toLowerCase();
  const starts = templates.filter((t) => t.name.toLowerCase().startsWith(q));
  const contains = templates.filter((t) => !t.name.toLowerCase().startsWith(q) && t.name.toLowerCase().includes(q));
  return [...starts, ...contains];
}

const DELIVERY_LABELS: Record<string, MessageKey> = {
  queued: "delivery.queued",
  sent: "delivery.sent",
  delivered: "delivery.delivered",
  read: "delivery.read",
  uncertain: "delivery.uncertain",
  failed: "delivery.failed",
  draft: "delivery.draft",
  rejected: "delivery.rejected",
};

export function deliveryLabel(status: string): string | null {
  const key = DELIVERY_LABELS[status];
  return key ? t(key) : null;
}

/** A search snippet as runs of plain and matched text (`[word]` marks a match), for rendering as text. */
export function snippetParts(snippet: string): Array<{ text: string; match: boolean }> {
  const parts: Array<{ text: string; match: boolean }> = [];
  const re = /\[([^\[\]]*)\]/g;
  let at = 0;
  for (let m = re.exec(snippet); m !== null; m = re.exec(snippet)) {
    if (m.index > at) parts.push({ text: snippet.slice(at, m.index), match: false });
    parts.push({ text: m[1] ?? "", match: true });
    at = m.index + m[0].length;
  }
  if (at < snippet.length) parts.push({ text: snippet.slice(at), match: false });
  return parts;
}

/** "Synced up to 14:05" (today) or "Synced up to 3 Nov, 14:05"; "Not synced yet" before the first sync. */
export function syncedLabel(syncedAt: string | null, now: Date): string {
  if (!syncedAt) return t("sync.never");
  const at = new Date(syncedAt);
  const time = at.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
  const sameDay = at.toDateString() === now.toDateString();
  return sameDay
    ? t("sync.today", { time })
    : t("sync.earlier", { date: at.toLocaleDateString(locale(), { day: "numeric", month: "short" }), time });
}

/** What the offline banner says: that the desk is offline and what waits to be sent. */
export function offlineBanner(queued: number, failed: number): string {
  const waiting = t("offline.waiting", { count: queued });
  const refused = failed === 0 ? "" : t("offline.refused", { count: failed });
  return t("offline.banner", { waiting, refused });
}

/** The text of a queued reply or note; null for a command without text. */
export function commandText(command: AgentCommand): string | null {
  return "text" in command && typeof command.text === "string" ? command.text : null;
}

/** The same reply or note with new text (other commands are returned as they are). */
export function withText(command: AgentCommand, text: string): AgentCommand {
  return command.action === "message" || command.action === "note" ? { ...command, text } : command;
}

/** WhatsApp's 24-hour window: free-form replies are allowed this long after the customer last wrote. */
export const WINDOW_MS = 24 * 60 * 60 * 1000;

/** Whether a WhatsApp customer can still get a free-form reply, and what the header says about it. */
export function replyWindow(lastInbound: string | null, now: Date): { open: boolean; label: string } {
  const last = lastInbound ? Date.parse(lastInbound) : Number.NaN;
  if (Number.isNaN(last)) return { open: false, label: t("whatsapp.windowClosed") };
  const left = last + WINDOW_MS - now.getTime();
  if (left <= 0) return { open: false, label: t("whatsapp.windowClosed") };
  const minutes = Math.floor(left / 60_000);
  if (minutes < 60) return { open: true, label: t("whatsapp.minutesLeft", { minutes }) };
  return { open: true, label: t("whatsapp.hoursLeft", { hours: Math.floor(minutes / 60), minutes: minutes % 60 }) };
}

/** A template's body with `{{1}}`, `{{2}}`, … replaced by the parameters (what the customer reads). */
export function fillTemplate(body: string, parameters: string[]): string {
  return body.replace(/\{\{(\d+)\}\}/g, (whole, n: string) => parameters[Number(n) - 1] ?? whole);
}

/** How WhatsApp sends a file of this type: a photo, video or voice message shown inline, or else a
 * document (its rules: JPEG/PNG images, MP4/3GPP video, AAC/AMR/MP3/M4A/OGG audio). */
export function uploadKind(mimeType: string): "image" | "video" | "audio" | "file" {
  const mime = mimeType.toLowerCase();
  if (["image/jpeg", "image/png"].includes(mime)) return "image";
  if (["video/mp4", "video/3gpp"].includes(mime)) return "video";
  if (["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"].includes(mime)) return "audio";
  return "file";
}

/** The message a WhatsApp message answers: its quote (`context.id`, a wamid) from the customer,
 * or `reply_to` (a message id) from an agent. */
export function quotedMessage(message: Message, messages: Message[]): Message | null {
  const replyTo = message.payload.reply_to;
  if (typeof replyTo === "string") return messages.find((m) => m.id === replyTo) ?? null;
  const context = message.payload.context;
  const wamid = typeof context === "object" && context !== null ? (context as { id?: unknown }).id : undefined;
  if (typeof wamid !== "string") return null;
  return messages.find((m) => m.author === "end_user" && m.payload.id === wamid) ?? null;
}

/** A WhatsApp media message's kind and file name, when the hub can fetch its file. */
export function whatsappMedia(message: Message): { kind: string; filename: string | null } | null {
  if (typeof message.payload.upload === "string") {
    const filename = message.payload.filename;
    return { kind: message.type === "file" ? "document" : message.type, filename: typeof filename === "string" ? filename : null };
  }
  if (!["image", "video", "audio", "document", "sticker"].includes(message.type)) return null;
  const media = message.payload[message.type];
  if (typeof media !== "object" || media === null || typeof (media as { id?: unknown }).id !== "string") return null;
  const filename = (media as { filename?: unknown }).filename;
  return { kind: message.type, filename: typeof filename === "string" ? filename : null };
}

/** A place a message points at: from a Botpress `location` payload or a WhatsApp location. */
export interface Place {
  latitude: number;
  longitude: number;
  /** The place's name and address, when given. */
  label: string | null;
  /** The place on OpenStreetMap, to open in the browser. */
  mapUrl: string;
}

export function placeOf(message: Message): Place | null {
  if (message.type !== "location") return null;
  const p = message.payload as Record<string, unknown>;
  const inner = typeof p.location === "object" && p.location !== null ? (p.location as Record<string, unknown>) : p;
  const [latitude, longitude] = [inner.latitude, inner.longitude];
  if (typeof latitude !== "number" || typeof longitude !== "number") return null;
  const label = [inner.title, inner.name, inner.address].filter((v): v is string => typeof v === "string" && v.trim() !== "").join(", ");
  return {
    latitude,
    longitude,
    label: label || null,
    mapUrl: `https://www.openstreetmap.org/?mlat=${latitude}&mlon=${longitude}#map=16/${latitude}/${longitude}`,
  };
}

/** A card as the customer saw it: a title, maybe a subtitle and a picture, and its buttons. */
export interface Card {
  title: string;
  subtitle: string | null;
  imageUrl: string | null;
  /** Each button's label, and the web page it opens when it is a link. */
  buttons: Array<{ label: string; url: string | null }>;
}

function card(value: unknown): Card | null {
  if (typeof value !== "object" || value === null) return null;
  const c = value as Record<string, unknown>;
  if (typeof c.title !== "string") return null;
  const actions = Array.isArray(c.actions) ? c.actions : [];
  return {
    title: c.title,
    subtitle: typeof c.subtitle === "string" ? c.subtitle : null,
    imageUrl: typeof c.imageUrl === "string" && /^https?:\/\//i.test(c.imageUrl) ? c.imageUrl : null,
    buttons: actions
      .filter((a): a is Record<string, unknown> => typeof a === "object" && a !== null && typeof (a as Record<string, unknown>).label === "string")
      .map((a) => ({
        label: a.label as string,
        url: a.action === "url" && typeof a.value === "string" && /^https?:\/\//i.test(a.value) ? a.value : null,
      })),
  };
}

/** The cards of a `card` or `carousel` message (none for other kinds). */
export function cardsOf(message: Message): Card[] {
  const p = message.payload as Record<string, unknown>;
  if (message.type === "card") return [card(p)].filter((c): c is Card => c !== null);
  if (message.type === "carousel" && Array.isArray(p.items)) return p.items.map(card).filter((c): c is Card => c !== null);
  return [];
}

/** The options a `choice` or `dropdown` message offered the customer. */
export function choicesOf(message: Message): { text: string; options: string[] } | null {
  if (message.type !== "choice" && message.type !== "dropdown") return null;
  const p = message.payload as Record<string, unknown>;
  const options = Array.isArray(p.options) ? p.options : [];
  return {
    text: typeof p.text === "string" ? p.text : "",
    options: options.map((o) => (typeof o === "object" && o !== null ? (o as Record<string, unknown>).label : null)).filter((l): l is string => typeof l === "string"),
  };
}

/** A report's duration: "45 s", "12 min", "2 h 05 min"; "–" where there is none. */
export function duration(secs: number | null | undefined): string {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return t("time.none");
  const s = Math.round(secs);
  if (s < 60) return t("time.seconds", { seconds: s });
  if (s < 3600) return t("time.minutes", { minutes: Math.round(s / 60) });
  const h = Math.floor(s / 3600);
  return t("time.hoursMinutes", { hours: h, minutes: String(Math.round((s % 3600) / 60)).padStart(2, "0") });
}
