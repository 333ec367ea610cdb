// The only module that talks to Tauri. Components get a `Backend` and never import Tauri, so tests
// and previews can pass another implementation.

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  CommandError,
  ConversationView,
  DeskStatus,
  HandoffStatus,
  HandoffSummary,
  Update,
} from "./types";

export interface Backend {
  deskStatus(): Promise<DeskStatus>;
  listHandoffs(status?: HandoffStatus): Promise<HandoffSummary[]>;
  openConversation(conversationId: string): Promise<ConversationView>;
  signIn(email: string, password: string): Promise<void>;
  onUpdate(handler: (update: Update) => void): Promise<() => void>;
  onStatus(handler: (status: DeskStatus) => void): Promise<() => void>;
}

/** Turns whatever a command rejected with into `{code, message}`. */
export function asCommandError(err: unknown): CommandError {
  if (typeof err === "object" && err !== null && "code" in err && "message" in err) {
    const e = err as { code: unknown; message: unknown };
    return { code: String(e.code), message: String(e.message) };
  }
  return { code: "unknown", message: typeof err === "string" ? err : String(err) };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (err) {
    throw asCommandError(err);
  }
}

function subscribe<T>(event: string, handler: (payload: T) => void): Promise<UnlistenFn> {
  return listen<T>(event, (e) => handler(e.payload));
}

export const tauriBackend: Backend = {
  deskStatus: () => call<DeskStatus>("desk_status"),
  listHandoffs: (status) => call<HandoffSummary[]>("list_handoffs", { status: status ?? null }),
  openConversation: (conversationId) =>
    call<ConversationView>("open_conversation", { conversationId }),
  signIn: (email, password) => call<void>("sign_in", { email, password }),
  onUpdate: (handler) => subscribe<Update>("baton:update", handler),
  onStatus: (handler) => subscribe<DeskStatus>("baton:status", handler),
};
