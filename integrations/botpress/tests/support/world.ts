// One test's world: a real hub with an agent (Alice) and a bot channel whose events URL is the
// test's events endpoint, which feeds the integration's webhook handler; Botpress Cloud is the
// in-memory double. Everything is torn down when the test ends.
import { createHmac, randomUUID } from 'node:crypto'
import { onTestFinished } from 'vitest'
import { BatonApi } from '../../src/baton-api'
import type { Logger } from '../../src/botpress-client'
import { createUser, relayToBaton, startHitl, type Integration } from '../../src/hitl'
import type { HandoffEntity } from '../../src/definitions'
import type { HistoryMessage } from '../../src/hitl-types'
import { handleWebhook, type WebhookContext, type WebhookRequest } from '../../src/webhook'
import { Agent } from './desk'
import { EventsEndpoint } from './events-endpoint'
import { FakeBotpress } from './fake-botpress'
import { HubData, HubProcess } from './hub'

export type World = {
  data: HubData
  hub: HubProcess
  endpoint: EventsEndpoint
  botpress: FakeBotpress
  /** The integration's core, wired to the hub and to the Botpress double. */
  it: Integration
  webhook: WebhookContext
  /** What the integration wrote to the bot's log. */
  log: string[]
  alice: Agent
}

export function capturingLogger(log: string[]): Logger {
  return {
    info: (m) => log.push(`info: ${m}`),
    warn: (m) => log.push(`warn: ${m}`),
    error: (m) => log.push(`error: ${m}`),
  }
}

export async function world(
  options: { settleMs?: number; pluginLinksAfterMs?: number; botpressNow?: () => number } = {}
): Promise<World> {
  const endpoint = await EventsEndpoint.start()
  const data = await HubData.create({ eventsUrl: endpoint.url, agent: { email: 'alice@example.com', name: 'Alice' } })
  const hub = await HubProcess.start(data)
  onTestFinished(async ({ task }) => {
    if (task.result?.state === 'fail') {
      console.log(`--- baton-hub log (last 30 lines) ---\n${hub.log().split('\n').slice(-30).join('\n')}`)
    }
    hub.stop()
    await endpoint.close()
    data.remove()
  })
  const botpress = new FakeBotpress({ pluginLinksAfterMs: options.pluginLinksAfterMs, now: options.botpressNow })
  const log: string[] = []
  const it: Integration = { botpress, baton: new BatonApi(hub.url, data.token), logger: capturingLogger(log) }
  const webhook: WebhookContext = { ...it, signingSecret: data.signingSecret, now: Date.now, settleMs: options.settleMs ?? 0 }
  endpoint.handler = (req) => handleWebhook(webhook, req)
  const alice = await Agent.signIn(hub.url, 'alice@example.com', 'Alice')
  return { data, hub, endpoint, botpress, it, webhook, log, alice }
}

/** One HITL session as the plugin opened it, with the ids each side knows it by. */
export type Session = {
  /** The Botpress user that stands for the end user (from createUser). */
  userId: string
  /** The session's Botpress conversation (from startHitl). */
  conversationId: string
  handoffId: string
  deskConversationId: string
}

/** What the HITL plugin does when the bot escalates: createUser, then startHitl with the history. */
export async function escalate(
  w: World,
  who: { name: string; email?: string },
  start: { title?: string; description?: string; hitlSession?: HandoffEntity; history?: HistoryMessage[] } = {}
): Promise<Session> {
  const { userId } = await createUser(w.it, who)
  const { conversationId } = await startHitl(w.it, { userId, messageHistory: start.history ?? [], ...start })
  const { conversation } = await w.botpress.getConversation({ id: conversationId })
  const { batonHandoffId, batonConversationId } = conversation.tags
  if (!batonHandoffId || !batonConversationId) {
    throw new Error(`startHitl made a conversation without its Baton ids: ${JSON.stringify(conversation)}`)
  }
  return { userId, conversationId, handoffId: batonHandoffId, deskConversationId: batonConversationId }
}

/**
 * What the plugin does with the end user's message while a session is active: it writes it into
 * the session's conversation as the bot, naming the user in `payload.userId` (and repeating the
 * type), which reaches the integration's `hitl` channel handler.
 */
export async function userWrites(
  w: World,
  session: Session,
  type: string,
  payload: Record<string, unknown>,
  messageId = `msg_${randomUUID()}`
): Promise<string> {
  const { conversation } = await w.botpress.getConversation({ id: session.conversationId })
  const { batonMessageId } = await relayToBaton(w.it, {
    conversation,
    message: { id: messageId },
    type,
    payload: { type, ...payload, userId: session.userId },
  })
  return batonMessageId
}

/** A call to the webhook as the hub would make it, signed with `secret` at `t` (Unix seconds). */
export function signedCall(body: string, secret: string, t = Math.floor(Date.now() / 1000)): WebhookRequest {
  const v1 = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')
  return { method: 'POST', headers: { 'content-type': 'application/json', 'baton-signature': `t=${t},v1=${v1}` }, body }
}
