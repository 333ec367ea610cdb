import { IntlMessageFormat } from "intl-messageformat";
import { afterEach, describe, expect, test } from "vitest";
import { en, type MessageKey } from "./i18n/en";
import { fr } from "./i18n/fr";
import { language, languageChoice, locale, setLanguageChoice, t, tParts } from "./i18n.svelte";
import { pretendSystemLanguage } from "../testLanguage";
import { asCommandError } from "./backend";

type Element = ReturnType<IntlMessageFormat["getAst"]>[number];

// The element types of ICU's parse tree (TYPE in @formatjs/icu-messageformat-parser).
const [ARGUMENT, NUMBER, DATE, TIME, SELECT, PLURAL, TAG] = [1, 2, 3, 4, 5, 6, 8];

/** The values a message takes, each with how it is used: as a plural, or as a value. */
function parametersOf(message: string): Map<string, "plural" | "value"> {
  const found = new Map<string, "plural" | "value">();
  const visit = (elements: Element[]): void => {
    for (const el of elements) {
      if (!("value" in el)) continue; // a plural's `#`, which names nothing
      if (el.type === PLURAL) found.set(el.value, "plural");
      else if ([ARGUMENT, NUMBER, DATE, TIME, SELECT].includes(el.type) && !found.has(el.value)) found.set(el.value, "value");
      if ("options" in el) for (const option of Object.values(el.options)) visit(option.value);
      if (el.type === TAG && "children" in el) visit(el.children);
    }
  };
  visit(new IntlMessageFormat(message, "en").getAst());
  return found;
}

/** The message filled with a sample for every value (2 for a plural), tags as plain text. */
function filled(message: string, lang: string): string {
  const values: Record<string, string | number | ((chunks: string[]) => string)> = { code: (c) => c.join(""), em: (c) => c.join("") };
  for (const [name, use] of parametersOf(message)) values[name] = use === "plural" ? 2 : "x";
  const result = new IntlMessageFormat(message, lang).format<string>(values);
  return Array.isArray(result) ? result.join("") : String(result);
}

const keys = Object.keys(en) as MessageKey[];

describe("the catalogs", () => {
  test("French has a message for every English key, and no other", () => {
    expect(Object.keys(fr).sort()).toEqual([...keys].sort());
  });

  test("every message in both languages is well-formed ICU and leaves no brace unfilled", () => {
    for (const key of keys) {
      for (const [lang, message] of [["en", en[key]], ["fr", fr[key]]] as const) {
        expect(() => filled(message, lang), `${lang} ${key}`).not.toThrow();
        expect(filled(message, lang), `${lang} ${key}`).not.toMatch(/[{}]/);
      }
    }
  });

  test("each French message takes the same values as the English one, and a plural stays a plural", () => {
    for (const key of keys) {
      const [english, french] = [parametersOf(en[key]), parametersOf(fr[key])];
      // An error in English is what the hub or the app wrote ({detail}); French may say it without.
      const mayLeaveOut = key.startsWith("error.") ? ["detail"] : [];
      const needed = [...english.keys()].filter((name) => !mayLeaveOut.includes(name) || french.has(name));
      expect([...french.keys()].sort(), key).toEqual(needed.sort());
      for (const [name, use] of english) if (use === "plural") expect(french.get(name), `${key} {${name}}`).toBe("plural");
    }
  });

  test("French writes apostrophes as ’, which ICU never reads as quoting", () => {
    expect(keys.filter((key) => fr[key].includes("'"))).toEqual([]);
  });
});

describe("choosing the language", () => {
  afterEach(() => {
    setLanguageChoice("system");
    localStorage.clear();
    pretendSystemLanguage("en-US");
  });

  test("follows the system: French for any French locale, English for everything else", () => {
    pretendSystemLanguage("fr-CA");
    expect([language(), locale(), t("list.waiting")]).toEqual(["fr", "fr-CA", "En attente"]);
    pretendSystemLanguage("de-DE");
    expect([language(), locale(), t("list.waiting")]).toEqual(["en", "en", "Waiting"]);
    expect(document.documentElement.lang).toBe("en");
  });

  test("a language picked in Settings wins over the system's, is saved on this device, and marks the page", () => {
    pretendSystemLanguage("en-GB");
    setLanguageChoice("fr");
    expect([languageChoice(), language(), t("conversation.resolve")]).toEqual(["fr", "fr", "Résoudre"]);
    expect(localStorage.getItem("baton.language")).toBe("fr");
    expect(document.documentElement.lang).toBe("fr");
  });

  test("plurals and values read naturally in both languages", () => {
    expect(t("offline.waiting", { count: 0 })).toBe("nothing waiting to be sent");
    expect(t("offline.waiting", { count: 1 })).toBe("1 action waiting to be sent");
    expect(t("offline.waiting", { count: 3 })).toBe("3 actions waiting to be sent");
    setLanguageChoice("fr");
    expect(t("app.youHold", { count: 1 })).toBe("Vous avez 1 transfert en cours.");
    expect(t("app.youHold", { count: 2 })).toBe("Vous avez 2 transferts en cours.");
    expect(t("media.problem", { kind: "image", problem: "introuvable" })).toBe("La photo ne peut pas être affichée\u00a0: introuvable");
  });

  test("what the hub refused is said in the window's language: as the hub wrote it in English, in French by its code", () => {
    const refused = { code: "conflict", message: "Alice already holds this handoff" };
    expect(asCommandError(refused)).toEqual(refused);
    expect(asCommandError({ code: "something_new", message: "the hub's own words" }).message).toBe("the hub's own words");
    setLanguageChoice("fr");
    // A code that covers several reasons says which in the hub's words.
    expect(asCommandError(refused)).toEqual({ code: "conflict", message: "Pas possible dans l’état actuel\u00a0; le hub précise\u00a0: Alice already holds this handoff" });
    expect(asCommandError({ code: "forbidden", message: "only an admin can cancel a handoff" }).message).toBe(
      "Vous n’avez pas le droit de faire cela\u00a0; le hub précise\u00a0: only an admin can cancel a handoff",
    );
    expect(asCommandError({ code: "bad_request", message: "no such tag" }).message).toBe("Le hub a refusé la demande (no such tag).");
    // A code French has no words for keeps what was said rather than saying nothing.
    expect(asCommandError({ code: "something_new", message: "the hub's own words" }).message).toBe("the hub's own words");
  });

  test("a customer's words put in a message stay text, even when they look like markup", () => {
    const parts = tParts("app.channelProblem", { channel: "<b>Line</b>", reason: "{oops}", command: "baton-hub x" });
    expect(parts).toEqual([
      { text: "<b>Line</b> cannot send: {oops} (", tag: null },
      { text: "baton-hub x", tag: "code" },
      { text: ").", tag: null },
    ]);
  });
});
