// What the app tests start from: Ana (an admin) and two customers waiting, over the in-memory
// backend; and how an agent opens one of them from the list.

import { fireEvent, screen } from "@testing-library/svelte";
import { agent, handoff, message, type MemoryInbox } from "./lib/memoryBackend";

export function inbox(): MemoryInbox {
  const me = agent("ag_me", "Ana", "admin");
  return {
    me,
    agents: [me],
    contacts: [
      { id: "u_sam", channel_id: "ch", name: "Sam Brooks", attributes: {}, created_at: "2026-11-30T08:00:00Z" },
      { id: "u_olga", channel_id: "ch", name: "Olga Petrova", attributes: {}, created_at: "2026-11-30T08:00:00Z" },
    ],
    handoffs: [handoff("ho_sam", "t_sam", "Parcel late"), handoff("ho_olga", "t_olga", "Wrong size")],
    messages: [
      { ...message("m_1", "t_sam", "Where is my parcel?"), author_id: "u_sam" },
      { ...message("m_2", "t_olga", "The shoes are too small"), author_id: "u_olga" },
    ],
    outbox: [],
    drafts: {},
    refuse: {},
  };
}

export async function openHandoff(title: string): Promise<void> {
  const item = (await screen.findByText(title)).closest("button");
  if (!item) throw new Error(`no list item for ${title}`);
  await fireEvent.click(item);
  await screen.findByTestId("conversation-title");
}
