// Tests run in an English jsdom; this makes the "system" speak another language, as when an agent's
// computer is set to French, and tells the app the way a browser does (a `languagechange` event).

export function pretendSystemLanguage(locale: string): void {
  Object.defineProperty(window.navigator, "language", { value: locale, configurable: true });
  window.dispatchEvent(new Event("languagechange"));
}
