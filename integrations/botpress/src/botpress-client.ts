// The part of Botpress's client this integration uses. The SDK's client is one (src/index.ts passes
// it in, and tsc checks that it fits); the tests pass a double that keeps users, conversations,
// messages and events in memory, since Botpress Cloud cannot be reached from here.
import type { ConversationTag, MessageTag, UserTag } from './definitions'
import type { HitlAssigned, HitlMessage, HitlStopped } from './hitl-types'

type Tags<K extends string> = Partial<Record<K, string>>

export type BotpressUser = {
  id: string
  name?: string
  pictureUrl?: string
  tags: Tags<UserTag>
}

export type BotpressConversation = {
  id: string
  channel: string
  /** ISO time: when the HITL session's conversation was made. */
  createdAt: string
  tags: Tags<ConversationTag>
}

export type BotpressMessage = {
  id: string
  conversationId: string
  userId: string
  type: string
  payload: object
  tags: Tags<MessageTag>
}

type UserFields = { name?: string; pictureUrl?: string; tags: Tags<UserTag> }

export type HitlEvent = { type: 'hitlAssigned'; payload: HitlAssigned } | { type: 'hitlStopped'; payload: HitlStopped }

export interface BotpressClient {
  getUser(x: { id: string }): Promise<{ user: BotpressUser }>
  createUser(x: UserFields): Promise<{ user: BotpressUser }>
  getOrCreateUser(x: UserFields & { discriminateByTags: UserTag[] }): Promise<{ user: BotpressUser }>
  updateUser(x: { id: string; name?: string; pictureUrl?: string; tags?: Tags<UserTag> }): Promise<{ user: BotpressUser }>

  getConversation(x: { id: string }): Promise<{ conversation: BotpressConversation }>
  getOrCreateConversation(x: {
    channel: 'hitl'
    tags: Tags<ConversationTag>
    discriminateByTags: ConversationTag[]
  }): Promise<{ conversation: BotpressConversation }>
  listConversations(x: { channel: 'hitl'; tags: Tags<ConversationTag> }): Promise<{ conversations: BotpressConversation[] }>
  updateConversation(x: { id: string; tags: Tags<ConversationTag> }): Promise<{ conversation: BotpressConversation }>

  getOrCreateMessage(
    x: HitlMessage & {
      conversationId: string
      userId: string
      tags: Tags<MessageTag>
      discriminateByTags: MessageTag[]
    }
  ): Promise<{ message: BotpressMessage }>

  createEvent(x: HitlEvent): Promise<unknown>
}

/** Where the integration writes what an operator needs to know (Botpress's bot logs). */
export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}
