// How the window lays the inbox out for its width, and the screens the Back button closes.
//
// A desktop window shows the list, the conversation and the customer side by side; a tablet the
// list and the conversation, with the customer in a drawer; a phone one screen at a time (list →
// conversation → customer), each a step back in the window's history, so the browser's and
// Android's Back button go back the way the app's own Back buttons do.

export type Layout = "phone" | "tablet" | "desktop";

/** The widest phone, and the widest tablet, in CSS pixels (app.css uses the same numbers). */
export const PHONE_MAX_WIDTH = 600;
export const TABLET_MAX_WIDTH = 1024;

/** The layout for a window `width` CSS pixels wide. */
export function layoutFor(width: number): Layout {
  return width <= PHONE_MAX_WIDTH ? "phone" : width <= TABLET_MAX_WIDTH ? "tablet" : "desktop";
}

/** The key of this app's entries in `history.state`: how many layers were open at that entry. */
const DEPTH = "batonLayers";

function depthOf(state: unknown): number {
  if (typeof state !== "object" || state === null || !(DEPTH in state)) return 0;
  const depth = (state as Record<string, unknown>)[DEPTH];
  return typeof depth === "number" && depth > 0 ? depth : 0;
}

/**
 * Screens and panels opened over one another, newest last, each one entry in the window's history:
 * opening pushes an entry, and going back (the app's Back, the browser's, Android's) pops it and
 * closes what it opened. Call `popped` from the window's `popstate`.
 */
export class BackStack<Kind extends string> {
  /** What is open, bottom first. */
  kinds: Kind[] = $state([]);
  #closers: Array<() => void> = [];
  /** The depth of the entry the app started on: a page reloaded deep in its history finds its
   * earlier entries there, with nothing of this app's open over them. */
  readonly #base = depthOf(history.state);

  /** The layer on top, if any. */
  get top(): Kind | null {
    return this.kinds.at(-1) ?? null;
  }

  /** Opens `kind` over what is open; `close` runs when the agent goes back from it. */
  open(kind: Kind, close: () => void): void {
    this.kinds = [...this.kinds, kind];
    this.#closers.push(close);
    history.pushState({ [DEPTH]: this.#base + this.kinds.length }, "");
  }

  /** Puts `kind` in the top layer's place (closing that one): one step back still leaves both. */
  swap(kind: Kind, close: () => void): void {
    if (this.kinds.length === 0) return this.open(kind, close);
    const previous = this.#closers.pop();
    this.kinds = [...this.kinds.slice(0, -1), kind];
    this.#closers.push(close);
    history.replaceState({ [DEPTH]: this.#base + this.kinds.length }, "");
    previous?.();
  }

  /** Goes back `count` layers, the way the Back button does (the layers close on `popstate`). */
  back(count = 1): void {
    const steps = Math.min(count, this.kinds.length);
    if (steps > 0) history.go(-steps);
  }

  /** How many layers on top are of these kinds. */
  countOnTop(kinds: readonly Kind[]): number {
    let count = 0;
    for (let i = this.kinds.length - 1; i >= 0 && kinds.includes(this.kinds[i] as Kind); i--) count++;
    return count;
  }

  /** The window went back to the entry whose state is `state`: the layers above it close. */
  popped(state: unknown): void {
    // Back past where the app started (a page reloaded deep in its history): nothing is open.
    const depth = Math.max(0, depthOf(state) - this.#base);
    while (this.kinds.length > depth) {
      this.kinds = this.kinds.slice(0, -1);
      this.#closers.pop()?.();
    }
  }
}
