// What the HITL plugin asks of its provider, done on Baton: the interface's three actions, and the
// end user's messages it writes into the HITL conversation (the `hitl` channel), relayed to the desk.
//
// One HITL session is one Botpress conversation on channel `hitl`, tagged with the Baton handoff it
// is (`batonHandoffId`) and the end user's desk conversation (`batonConversationId`). Baton keeps one
// desk conversation per end user across handoffs, so the handoff, not the conversation, names a session.
import type { BatonApi, Speaker } from './baton-api'
import type { BotpressClient, BotpressConversation, Logger } from './botpress-client'
import type {
  CreateUserInput,
  CreateUserOutput,
  StartHitlInput,
  StartHitlOutput,
  StopHitlInput,
  StopHitlOutput,
} from './hitl-types'
import { toBaton, toHistory } from './messages'

/** What the integration works with: Botpress (its client), Baton (the bot API) and a log. */
export type Integration = {
  botpress: BotpressClient
  baton: BatonApi
  logger: Logger
}

/** Told to agents on the desk when the bot's side ends a handoff. */
export const CLOSED_IN_BOTPRESS =
  'Ended in Botpress: the user closed the session, no agent took it in time, or the bot stopped it'

/**
 * `createUser`: the Botpress user that stands for an end user in HITL sessions. Baton itself learns
 * the end user with their first handoff (startHitl sends their name and email), so nothing is sent
 * to the hub yet. An email finds the same person again.
 */
export async function createUser(it: Integration, input: CreateUserInput): Promise<CreateUserOutput> {
  const fields = { name: input.name, pictureUrl: input.pictureUrl, tags: input.email ? { email: input.email } : {} }
  let { user } = input.email
    ? await it.botpress.getOrCreateUser({ ...fields, discriminateByTags: ['email'] })
    : await it.botpress.createUser(fields)
  // Someone found by email may have a new name or picture since.
  const renamed = input.name && user.name !== input.name
  const repictured = input.pictureUrl && user.pictureUrl !== input.pictureUrl
  if (renamed || repictured) {
    ;({ user } = await it.botpress.updateUser({ id: user.id, name: input.name, pictureUrl: input.pictureUrl }))
  }
  return { userId: user.id }
}

/**
 * `startHitl`: hands the end user to the desk with the whole conversation so far, and answers with
 * the Botpress conversation of this session. The hub waits a moment before it calls back about the
 * handoff, because the plugin ignores events until it has linked the session (see webhook.ts).
 */
export async function startHitl(it: Integration, input: StartHitlInput): Promise<StartHitlOutput> {
  const { user } = await it.botpress.getUser({ id: input.userId })
  const { history, skipped } = toHistory(input.messageHistory)
  for (const reason of skipped) {
    it.logger.warn(`Left out of the handoff's history: ${reason}`)
  }
  const session = input.hitlSession ?? {}
  const started = await it.baton.startHandoff({
    user: {
      id: user.id,
      name: user.name || undefined,
      email: user.tags.email,
      attributes: user.pictureUrl ? { picture: user.pictureUrl } : undefined,
    },
    title: input.title,
    description: input.description,
    reason: session.reason,
    priority: session.priority,
    history,
  })
  // The hub answers an open handoff again for the same user, so the session may already exist.
  const { conversation } = await it.botpress.getOrCreateConversation({
    channel: 'hitl',
    tags: { batonHandoffId: started.handoff_id, batonConversationId: started.conversation_id },
    discriminateByTags: ['batonHandoffId'],
  })
  it.logger.info(`HITL session ${conversation.id} is Baton handoff ${started.handoff_id}`)
  return { conversationId: conversation.id }
}

/**
 * `stopHitl`: the bot's side ended the session (the user's close command, the agent-assignment
 * timeout, or the flow). The handoff is cancelled on the desk; the hub sends nothing back for it.
 */
export async function stopHitl(it: Integration, input: StopHitlInput): Promise<StopHitlOutput> {
  const { conversation } = await it.botpress.getConversation({ id: input.conversationId })
  const handoffId = sessionTag(conversation, 'batonHandoffId')
  const closed = await it.baton.closeHandoff(handoffId, CLOSED_IN_BOTPRESS)
  await it.botpress.updateConversation({ id: conversation.id, tags: { batonStatus: closed.status } })
  return {}
}

/** A message of the `hitl` channel, as the channel handler gets it. */
export type OutgoingMessage = {
  conversation: BotpressConversation
  /** The Botpress message: its id keeps a delivery Botpress retries from being stored twice. */
  message: { id: string }
  type: string
  payload: object
}

/**
 * A message the plugin wrote into the HITL conversation, relayed to the desk: the end user's words
 * (the plugin names them in `payload.userId`) or the plugin's own notices, which are the bot's.
 * Answers with the message's id on the desk, for the Botpress message's tag.
 */
export async function relayToBaton(it: Integration, outgoing: OutgoingMessage): Promise<{ batonMessageId: string }> {
  const conversationId = sessionTag(outgoing.conversation, 'batonConversationId')
  const userId = (outgoing.payload as { userId?: unknown }).userId
  const author: Speaker = typeof userId === 'string' && userId.length > 0 ? 'user' : 'bot'
  const relayed = await it.baton.relayMessage(conversationId, {
    ...toBaton(outgoing.type, outgoing.payload),
    author,
    idempotencyKey: outgoing.message.id,
  })
  return { batonMessageId: relayed.message_id }
}

function sessionTag(conversation: BotpressConversation, tag: 'batonHandoffId' | 'batonConversationId'): string {
  const value = conversation.tags[tag]
  if (!value) {
    throw new Error(`Botpress conversation ${conversation.id} is not a Baton handoff (it has no ${tag} tag)`)
  }
  return value
}
