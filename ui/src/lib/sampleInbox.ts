// A busy inbox kept in memory, for looking at the window in a browser without Tauri: built only in
// the `memory` mode (`vite build --mode memory`, which ui/e2e/layout.mjs uses to check the layout
// on phone, tablet and desktop screens). A real build never includes it (main.ts).
//
// Ana (an admin) holds a conversation with a customer who wrote several times; others wait, one
// urgent, one on WhatsApp, one a bot's draft; Bob holds one; a reply was refused by the hub.

import { agent, handoff, memoryBackend, message, type MemoryInbox } from "./memoryBackend";
import type { Backend } from "./backend";
import type { Message } from "./types";

const minutesAgo = (minutes: number): string => new Date(Date.now() - minutes * 60_000).toISOString();

export function sampleInbox(): MemoryInbox {
  const me = agent("ag_ana", "Ana Lindqvist", "admin");
  const bob = agent("ag_bob", "Bob Martin");
  const chloe = { ...agent("ag_chloe", "Chloé Durand"), presence: "away" as const };
  const contact = (id: string, name: string, attributes: Record<string, string> = {}) => ({ id, channel_id: "ch", name, email: `${id.slice(2)}@example.com`, attributes, created_at: minutesAgo(600) });
  const said = (id: string, conversation: string, text: string, author: Message["author"], minutes: number, authorId?: string): Message => ({
    ...message(id, conversation, text, author),
    created_at: minutesAgo(minutes),
    ...(authorId ? { author_id: authorId } : {}),
  });
  const waiting = (id: string, conversation: string, title: string, minutes: number, extra: Partial<ReturnType<typeof handoff>> = {}) => ({
    ...handoff(id, conversation, title),
    created_at: minutesAgo(minutes),
    updated_at: minutesAgo(minutes),
    ...extra,
  });
  return {
    me,
    agents: [me, bob, chloe],
    contacts: [
      contact("u_dana", "Dana Reyes", { phone: "+1 555 0100", plan: "Business", language: "en" }),
      contact("u_sam", "Sam Brooks"),
      contact("u_olga", "Olga Petrova-Vasilyevskaya", { plan: "Free" }),
      contact("u_marta", "Marta Ruiz", { phone: "+34 600 000 000" }),
      contact("u_kim", "Kim Ito"),
      contact("u_lee", "Lee Wong"),
    ],
    handoffs: [
      waiting("ho_lamp", "t_lamp", "Broken lamp", 42, { status: "assigned", assignee: me.id, description: "The customer asks for a replacement; the bot could not find the order." }),
      waiting("ho_refund", "t_refund", "Refund for a cancelled order", 31, { priority: "urgent" }),
      waiting("ho_parcel", "t_parcel", "Parcel late", 18),
      waiting("ho_size", "t_size", "Wrong size — the shoes pinch at the toes and I would like a bigger pair, or my money back", 12, { priority: "high" }),
      waiting("ho_marta", "t_marta", "Marta Ruiz on WhatsApp", 7),
      { ...waiting("ho_draft", "t_draft", "Approve the bot's reply", 3), for_draft: true },
      waiting("ho_invoice", "t_invoice", "Invoice address", 55, { status: "assigned", assignee: bob.id }),
      waiting("ho_old", "t_old", "Lamp flickers", 60 * 24 * 20, { status: "resolved", assignee: me.id, label: "replaced" }),
      waiting("ho_pw", "t_pw", "Password reset", 60 * 5, { status: "resolved", assignee: bob.id }),
    ],
    messages: [
      said("m_old", "t_old", "My lamp flickers when I turn it on.", "end_user", 60 * 24 * 20, "u_dana"),
      said("m_l1", "t_lamp", "Hi! The lamp I ordered arrived broken: the glass shade is cracked.", "end_user", 50, "u_dana"),
      said("m_l2", "t_lamp", "I'm sorry to hear that. Let me find someone who can help.", "bot", 49),
      said("m_l3", "t_lamp", "Hello Dana, I'm Ana. Could you send me your order number?", "agent", 40, me.id),
      said("m_l4", "t_lamp", "Sure, it's 1234-5678. I also attached a photo of the box, which was dented on one corner when it came.", "end_user", 38, "u_dana"),
      said("m_l5", "t_lamp", "Thank you. I've asked the warehouse for a replacement; it should ship tomorrow.", "agent", 35, me.id),
      said("m_l6", "t_lamp", "Great, thanks! Will I need to send the broken one back?", "end_user", 30, "u_dana"),
      said("m_r1", "t_refund", "I cancelled order 9911 last week and I still have not been refunded.", "end_user", 31, "u_lee"),
      said("m_p1", "t_parcel", "Where is my parcel?", "end_user", 18, "u_sam"),
      said("m_s1", "t_size", "The shoes are too small", "end_user", 12, "u_olga"),
      { ...said("m_m1", "t_marta", "Hola, mi pedido no ha llegado", "end_user", 7, "u_marta"), payload: { id: "wamid.m1", type: "text", text: { body: "Hola, mi pedido no ha llegado" } } },
      said("m_d0", "t_draft", "Has my refund been sent?", "end_user", 4, "u_kim"),
      { ...said("m_d1", "t_draft", "Your refund of $80 was sent on Monday.", "bot", 3), status: "draft" },
      said("m_i1", "t_invoice", "Please change the address on my invoice.", "end_user", 55, "u_sam"),
      said("m_pw1", "t_pw", "I forgot my password.", "end_user", 60 * 5, "u_kim"),
    ],
    outbox: [],
    drafts: {},
    refuse: { t_invoice: "Bob Martin has this handoff" },
    whatsapp: { t_marta: minutesAgo(7) },
    templates: [{ name: "order_update", language: "es", body: "Hola {{1}}, su pedido {{2}} está en camino.", parameters: 2 }],
    endpointUrl: "http://127.0.0.1:8717/botpress/3f9c2a7e5b1d4c8a9e6f0b2d7a4c1e8f",
  };
}

/** The sample inbox behind the window, with a reply the hub refused waiting in the outbox; signed
 * out of a team's hub (the sign-in form) when the page's address asks (`?signed-out`). */
export function sampleBackend(): Backend {
  const signedOut = new URLSearchParams(location.search).has("signed-out");
  const backend = memoryBackend({ ...sampleInbox(), signedOut });
  void backend.sendMessage("t_invoice", "I have updated the address.").catch(() => {});
  return backend;
}
