// The one path every user-visible string takes: `t("list.waiting")` in the language the agent
// chose (Settings) or, until they choose, the system's. The language is a rune, so whatever a
// template or a $derived read through `t` is drawn again when it changes.
//
// Only the UI's own words go through here. What customers, bots and agents wrote is shown as it
// is, as text, and goes into a message only as a value.

import { IntlMessageFormat, type PrimitiveType } from "intl-messageformat";
import { en, type Catalog, type MessageKey } from "./i18n/en";
import { fr } from "./i18n/fr";

export type { MessageKey } from "./i18n/en";

export type Language = "en" | "fr";
/** What the agent picked in Settings; `system` follows the computer's language. */
export type LanguageChoice = Language | "system";

export const LANGUAGES: readonly Language[] = ["en", "fr"];
/** Each language named in itself, as language pickers do (a French speaker looks for "Français"). */
export const LANGUAGE_NAMES: Record<Language, string> = { en: "English", fr: "Français" };

const CATALOGS: Record<Language, Catalog> = { en, fr };

// Which language this window speaks is a preference of this device (like its theme), not of the
// agent's account, so it is kept in localStorage rather than on the hub.
const STORAGE_KEY = "baton.language";

function savedChoice(): LanguageChoice {
  try {
    const saved = globalThis.localStorage?.getItem(STORAGE_KEY);
    return saved === "en" || saved === "fr" || saved === "system" ? saved : "system";
  } catch {
    return "system"; // storage refused (a locked-down webview): follow the system
  }
}

function systemLocale(): string {
  return globalThis.navigator?.language || "en";
}

/** The UI language for a locale: French for any `fr*`, English for everything else. */
export function languageFor(locale: string): Language {
  return locale.toLowerCase().startsWith("fr") ? "fr" : "en";
}

const current = $state({ choice: savedChoice(), systemLocale: systemLocale() });

export function languageChoice(): LanguageChoice {
  return current.choice;
}

export function language(): Language {
  return current.choice === "system" ? languageFor(current.systemLocale) : current.choice;
}

/** The locale for dates, times and numbers: the system's own when it speaks the UI's language
 * (so en-GB keeps its 24-hour clock and fr-CA its dates), otherwise the UI's language itself. */
export function locale(): string {
  const lang = language();
  return current.systemLocale.toLowerCase().startsWith(lang) ? current.systemLocale : lang;
}

export function setLanguageChoice(choice: LanguageChoice): void {
  current.choice = choice;
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, choice);
  } catch {
    // Not saved: the choice still holds for this window.
  }
  markDocument();
}

/** Screen readers and the browser's hyphenation read the page in the language it says it is in. */
function markDocument(): void {
  if (typeof document !== "undefined") document.documentElement.lang = language();
}

if (typeof window !== "undefined") {
  // The system's language changed while the app runs (or a test pretends it did).
  window.addEventListener("languagechange", () => {
    current.systemLocale = systemLocale();
    markDocument();
  });
}
markDocument();

/** Values a message is filled with: customer names, counts, what the hub said. */
export type MessageValues = Record<string, PrimitiveType>;

// Parsed once per language and key; `ignoreTag` for the plain-text `t`, where a `<` is only text.
const formatters = new Map<string, IntlMessageFormat>();
function formatter(key: MessageKey, withTags: boolean): IntlMessageFormat {
  const [lang, at] = [language(), locale()];
  const id = `${at}|${key}|${withTags}`;
  let found = formatters.get(id);
  if (!found) {
    found = new IntlMessageFormat(CATALOGS[lang][key], at, undefined, { ignoreTag: !withTags });
    formatters.set(id, found);
  }
  return found;
}

/** Whether `key` names a message (for keys built from what a peer sent, like an error's code). */
export function isMessageKey(key: string): key is MessageKey {
  return Object.hasOwn(en, key);
}

/** The message `key` in the current language, filled with `values`. */
export function t(key: MessageKey, values?: MessageValues): string {
  const formatted = formatter(key, false).format(values);
  return Array.isArray(formatted) ? formatted.join("") : String(formatted);
}

/** A run of a tagged message: plain text, or text in `<code>` or `<em>`. */
export interface TextPart {
  text: string;
  tag: "code" | "em" | null;
}

/** A message with `<code>`/`<em>` tags as runs, for a template to draw as elements (never as
 * HTML: the values stay text whatever they contain). */
export function tParts(key: MessageKey, values?: MessageValues): TextPart[] {
  const tagged =
    (tag: "code" | "em") =>
    (chunks: Array<string | TextPart>): TextPart => ({ text: chunks.map((c) => (typeof c === "string" ? c : c.text)).join(""), tag });
  const formatted = formatter(key, true).format<TextPart>({ ...values, code: tagged("code"), em: tagged("em") });
  const parts = Array.isArray(formatted) ? formatted : [formatted];
  return parts.map((p) => (typeof p === "string" ? { text: p, tag: null } : p));
}

/** A date and time as this language writes them ("21/11/2026 14:05:00" in French). */
export function dateTime(at: Date | string): string {
  return new Date(at).toLocaleString(locale());
}

/** A date as this language writes it ("21/11/2026" in French). */
export function date(at: Date | string): string {
  return new Date(at).toLocaleDateString(locale());
}
