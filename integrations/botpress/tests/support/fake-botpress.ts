// Botpress Cloud, as far as this integration touches it: users, conversations, messages and events
// kept in memory. Like Botpress, it checks every message against the integration's declared `hitl`
// channel schemas and every event against its declared event schemas, and finds "get or create"
// entities by their discriminating tags. It also stands in for one behaviour of the HITL plugin
// that the integration must work around: events and messages about a session that the plugin has
// not linked yet (it links it only after startHitl answered) are ignored.
import { randomUUID } from 'node:crypto'
import definition from '../../integration.definition'
import type {
  BotpressClient,
  BotpressConversation,
  BotpressMessage,
  BotpressUser,
  HitlEvent,
} from '../../src/botpress-client'

type Tags = Record<string, string | undefined>

/** Whether `tags` has `wanted`'s values under `keys` (all of `wanted` by default); no keys match nothing. */
function matches(tags: Tags, wanted: Tags, keys: string[] = []): boolean {
  const compared = keys.length > 0 ? keys : Object.keys(wanted)
  return compared.length > 0 && compared.every((key) => tags[key] === wanted[key])
}

function defined(tags: Tags): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter((entry): entry is [string, string] => entry[1] !== undefined))
}

/** Botpress's answer to a call it refuses: like the real client, an error with a message. */
export class BotpressError extends Error {}

export type StoredMessage = BotpressMessage & { droppedByPlugin: boolean }
export type StoredEvent = HitlEvent & { droppedByPlugin: boolean }

export class FakeBotpress implements BotpressClient {
  readonly users = new Map<string, BotpressUser>()
  readonly conversations = new Map<string, BotpressConversation>()
  readonly messages: StoredMessage[] = []
  readonly events: StoredEvent[] = []
  /** Every call, by method name, in order. */
  readonly calls: string[] = []
  private _failures = 0

  constructor(
    private readonly _options: {
      /** Milliseconds since the epoch. */
      now?: () => number
      /** How long after its conversation is made the plugin has linked a session. */
      pluginLinksAfterMs?: number
    } = {}
  ) {}

  private _now(): number {
    return (this._options.now ?? Date.now)()
  }

  /** The next `n` calls fail, as when Botpress is down. */
  failNext(n: number): void {
    this._failures = n
  }

  private _call(method: string): void {
    this.calls.push(method)
    if (this._failures > 0) {
      this._failures -= 1
      throw new BotpressError(`Botpress is unavailable (${method})`)
    }
  }

  private _linked(conversationId: string): boolean {
    const conversation = this.conversations.get(conversationId)
    return !!conversation && this._now() - Date.parse(conversation.createdAt) >= (this._options.pluginLinksAfterMs ?? 0)
  }

  // ---- users ----

  async getUser({ id }: { id: string }) {
    this._call('getUser')
    const user = this.users.get(id)
    if (!user) {
      throw new BotpressError(`no user ${id}`)
    }
    return { user: structuredClone(user) }
  }

  async createUser(x: { name?: string; pictureUrl?: string; tags: Tags }) {
    this._call('createUser')
    const user: BotpressUser = { id: `user_${randomUUID()}`, name: x.name, pictureUrl: x.pictureUrl, tags: defined(x.tags) }
    this.users.set(user.id, user)
    return { user: structuredClone(user) }
  }

  async getOrCreateUser(x: { name?: string; pictureUrl?: string; tags: Tags; discriminateByTags: string[] }) {
    const found = [...this.users.values()].find((u) => matches(u.tags, x.tags, x.discriminateByTags))
    if (found) {
      this._call('getOrCreateUser')
      return { user: structuredClone(found) }
    }
    return this.createUser(x)
  }

  async updateUser(x: { id: string; name?: string; pictureUrl?: string; tags?: Tags }) {
    this._call('updateUser')
    const user = this.users.get(x.id)
    if (!user) {
      throw new BotpressError(`no user ${x.id}`)
    }
    Object.assign(user, defined({ name: x.name, pictureUrl: x.pictureUrl }))
    user.tags = { ...user.tags, ...defined(x.tags ?? {}) }
    return { user: structuredClone(user) }
  }

  // ---- conversations ----

  async getConversation({ id }: { id: string }) {
    this._call('getConversation')
    const conversation = this.conversations.get(id)
    if (!conversation) {
      throw new BotpressError(`no conversation ${id}`)
    }
    return { conversation: structuredClone(conversation) }
  }

  async getOrCreateConversation(x: { channel: 'hitl'; tags: Tags; discriminateByTags: string[] }) {
    this._call('getOrCreateConversation')
    if (!definition.channels?.[x.channel]) {
      throw new BotpressError(`the integration has no channel ${x.channel}`)
    }
    let conversation = [...this.conversations.values()].find(
      (c) => c.channel === x.channel && matches(c.tags, x.tags, x.discriminateByTags)
    )
    if (!conversation) {
      conversation = {
        id: `conv_${randomUUID()}`,
        channel: x.channel,
        createdAt: new Date(this._now()).toISOString(),
        tags: defined(x.tags),
      }
      this.conversations.set(conversation.id, conversation)
    }
    return { conversation: structuredClone(conversation) }
  }

  async listConversations(x: { channel: 'hitl'; tags: Tags }) {
    this._call('listConversations')
    const conversations = [...this.conversations.values()].filter(
      (c) => c.channel === x.channel && (Object.keys(x.tags).length === 0 || matches(c.tags, x.tags))
    )
    return { conversations: structuredClone(conversations) }
  }

  async updateConversation(x: { id: string; tags: Tags }) {
    this._call('updateConversation')
    const conversation = this.conversations.get(x.id)
    if (!conversation) {
      throw new BotpressError(`no conversation ${x.id}`)
    }
    conversation.tags = { ...conversation.tags, ...defined(x.tags) }
    return { conversation: structuredClone(conversation) }
  }

  // ---- messages and events ----

  async getOrCreateMessage(x: Parameters<BotpressClient['getOrCreateMessage']>[0]) {
    this._call('getOrCreateMessage')
    const declared = definition.channels?.hitl?.messages[x.type]
    if (!declared) {
      throw new BotpressError(`the hitl channel has no message type ${x.type}`)
    }
    const checked = declared.schema.safeParse(x.payload)
    if (!checked.success) {
      throw new BotpressError(`invalid ${x.type} payload: ${checked.error.message}`)
    }
    if (!this.conversations.has(x.conversationId) || !this.users.has(x.userId)) {
      throw new BotpressError('no such conversation or user')
    }
    const found = this.messages.find(
      (m) => m.conversationId === x.conversationId && matches(m.tags, x.tags, x.discriminateByTags)
    )
    if (found) {
      return { message: structuredClone(found) }
    }
    const message: StoredMessage = {
      id: `msg_${randomUUID()}`,
      conversationId: x.conversationId,
      userId: x.userId,
      type: x.type,
      payload: x.payload,
      tags: defined(x.tags),
      droppedByPlugin: !this._linked(x.conversationId),
    }
    this.messages.push(message)
    return { message: structuredClone(message) }
  }

  async createEvent(x: HitlEvent) {
    this._call('createEvent')
    const declared = definition.events?.[x.type]
    if (!declared) {
      throw new BotpressError(`the integration declares no event ${x.type}`)
    }
    const checked = declared.schema.safeParse(x.payload)
    if (!checked.success) {
      throw new BotpressError(`invalid ${x.type} payload: ${checked.error.message}`)
    }
    if (!this.conversations.has(x.payload.conversationId)) {
      throw new BotpressError(`no conversation ${x.payload.conversationId}`)
    }
    const event = { ...structuredClone(x), droppedByPlugin: !this._linked(x.payload.conversationId) }
    this.events.push(event)
    return { event: { id: `evt_${randomUUID()}`, ...x } }
  }

  // ---- what the HITL plugin would see ----

  /** The messages the agents' side wrote into a session, with each author's name. */
  messagesIn(conversationId: string): Array<StoredMessage & { author: string | undefined; authorTags: Tags }> {
    return this.messages
      .filter((m) => m.conversationId === conversationId)
      .map((m) => ({ ...m, author: this.users.get(m.userId)?.name, authorTags: this.users.get(m.userId)?.tags ?? {} }))
  }

  eventsAbout(conversationId: string): StoredEvent[] {
    return this.events.filter((e) => e.payload.conversationId === conversationId)
  }

  /** The user a `hitlAssigned` event names, as the plugin would look them up. */
  userNamed(id: string): BotpressUser | undefined {
    return this.users.get(id)
  }
}
