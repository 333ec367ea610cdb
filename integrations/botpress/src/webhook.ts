// Baton's events, arriving at the integration's webhook (the bot's events URL on the hub), turned
// into what the HITL plugin listens for: `handoff.assigned` → `hitlAssigned`, `agent.message` → a
// message by the agent in the HITL conversation, `handoff.closed` → `hitlStopped`.
//
// What the answer means to the hub: a 2xx is taken; 408, 409, 425, 429 and 5xx are tried again
// later, with the same event id, in order per conversation; any other 4xx (401 for a bad signature,
// 422 for a message the channel cannot carry) is refused for good, and an agent's message then
// shows as failed on the desk.
import * as sdk from '@botpress/sdk'
import type { BotpressConversation, BotpressUser } from './botpress-client'
import type { Integration } from './hitl'
import { UnsupportedMessage, toHitl } from './messages'
import { SIGNATURE_HEADER, checkSignature } from './signature'

export type WebhookRequest = {
  method: string
  headers: Record<string, string | undefined>
  /** The raw body, exactly as the hub sent it (the signature covers these bytes). */
  body?: string
}

export type WebhookResponse = { status: number; headers?: Record<string, string>; body?: string }

export type WebhookContext = Integration & {
  signingSecret: string
  /** Milliseconds since the epoch. */
  now: () => number
  /**
   * How long after a HITL session's conversation was made its events wait. The plugin links the
   * session only after startHitl has answered, and drops what arrives for it before that; the hub
   * holds its calls a moment, and this is the integration's own margin on top.
   */
  settleMs: number
}

/** Who writes the desk's messages that no agent wrote (automatic notices). */
export const DESK = { id: 'baton-desk', name: 'Support team' } as const

const { z } = sdk

const agent = z.object({ id: z.string().min(1), name: z.string() })
const session = { handoff_id: z.string().min(1), conversation_id: z.string().min(1) }
const envelope = z.object({ id: z.string().min(1), type: z.string(), created_at: z.string(), data: z.unknown() })
const assigned = z.object({ ...session, agent })
const agentMessage = z.object({
  ...session,
  message_id: z.string().min(1),
  type: z.string(),
  payload: z.unknown(),
  agent: agent.nullable(),
})
const closed = z.object({ ...session, status: z.string(), label: z.string().nullish(), agent: agent.nullable() })

type Agent = sdk.z.infer<typeof agent>

function answer(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): WebhookResponse {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }
}

function header(headers: WebhookRequest['headers'], name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name)
  return key === undefined ? undefined : headers[key]
}

/** Handles one call to the webhook; never throws (a failure is an answer the hub acts on). */
export async function handleWebhook(ctx: WebhookContext, req: WebhookRequest): Promise<WebhookResponse> {
  if (req.method.toUpperCase() !== 'POST') {
    return answer(405, { error: 'Baton posts its events here' }, { allow: 'POST' })
  }
  const raw = req.body ?? ''
  const signed = checkSignature(header(req.headers, SIGNATURE_HEADER), raw, ctx.signingSecret, Math.floor(ctx.now() / 1000))
  if (!signed.ok) {
    ctx.logger.warn(`Refused a call to the Baton webhook: ${signed.reason}`)
    return answer(401, { error: signed.reason })
  }
  let body: unknown
  try {
    body = JSON.parse(raw)
  } catch {
    return answer(400, { error: 'the body is not JSON' })
  }
  const parsed = envelope.safeParse(body)
  if (!parsed.success) {
    return answer(400, { error: 'not a Baton event ({"id","type","created_at","data"})' })
  }
  const event = parsed.data
  try {
    switch (event.type) {
      case 'handoff.assigned':
        return await withData(event.type, assigned, event.data, (data) => onAssigned(ctx, data))
      case 'agent.message':
        return await withData(event.type, agentMessage, event.data, (data) => onAgentMessage(ctx, data))
      case 'handoff.closed':
        return await withData(event.type, closed, event.data, (data) => onClosed(ctx, data))
      default:
        // `user.message` is for a bot in front of a WhatsApp number, which this is not.
        ctx.logger.warn(`Ignored a Baton event of type ${event.type}`)
        return answer(200, { ignored: `no use for ${event.type} events` })
    }
  } catch (error) {
    if (error instanceof UnsupportedMessage) {
      ctx.logger.warn(`Refused an agent's message from Baton: ${error.message}`)
      return answer(422, { error: error.message })
    }
    // Botpress could not take it now: the hub tries again with the same event.
    const why = error instanceof Error ? error.message : String(error)
    ctx.logger.error(`Could not apply Baton event ${event.id} (${event.type}): ${why}`)
    return answer(500, { error: why })
  }
}

/** Runs `apply` on the event's data if it has what an event of `type` needs; 400 otherwise. */
async function withData<S extends sdk.z.ZodTypeAny>(
  type: string,
  schema: S,
  data: unknown,
  apply: (data: sdk.z.infer<S>) => Promise<WebhookResponse>
): Promise<WebhookResponse> {
  const parsed = schema.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return answer(400, { error: `a ${type} event without what it needs: ${issue?.path.join('.')} ${issue?.message ?? ''}` })
  }
  return apply(parsed.data)
}

type Found = { conversation: BotpressConversation } | { response: WebhookResponse }

/** The HITL session that is handoff `handoffId`, if it is old enough to take events. */
async function sessionOf(ctx: WebhookContext, handoffId: string): Promise<Found> {
  const { conversations } = await ctx.botpress.listConversations({ channel: 'hitl', tags: { batonHandoffId: handoffId } })
  const conversation = conversations[0]
  if (!conversation) {
    // A handoff whose startHitl never got its answer back: the plugin knows no session for it.
    ctx.logger.warn(`No HITL session is Baton handoff ${handoffId}; its event is dropped`)
    return { response: answer(200, { ignored: `no HITL session for handoff ${handoffId}` }) }
  }
  const wait = Date.parse(conversation.createdAt) + ctx.settleMs - ctx.now()
  if (wait > 0) {
    const seconds = Math.ceil(wait / 1000)
    return { response: answer(425, { error: 'the HITL session is still being set up' }, { 'retry-after': `${seconds}` }) }
  }
  return { conversation }
}

/** The Botpress user that stands for `agent` (the plugin shows its name to the end user). */
async function userFor(ctx: WebhookContext, agent: Agent): Promise<BotpressUser> {
  const { user } = await ctx.botpress.getOrCreateUser({
    name: agent.name,
    tags: { batonAgentId: agent.id },
    discriminateByTags: ['batonAgentId'],
  })
  if (user.name === agent.name) {
    return user
  }
  // Renamed on the desk since.
  return (await ctx.botpress.updateUser({ id: user.id, name: agent.name })).user
}

async function onAssigned(ctx: WebhookContext, data: sdk.z.infer<typeof assigned>): Promise<WebhookResponse> {
  const found = await sessionOf(ctx, data.handoff_id)
  if ('response' in found) {
    return found.response
  }
  const { conversation } = found
  // The same event again (its answer was lost): the plugin would announce the agent twice.
  if (conversation.tags.batonAgentId === data.agent.id) {
    return answer(200, { ok: true, repeat: true })
  }
  const agentUser = await userFor(ctx, data.agent)
  await ctx.botpress.createEvent({ type: 'hitlAssigned', payload: { conversationId: conversation.id, userId: agentUser.id } })
  await ctx.botpress.updateConversation({ id: conversation.id, tags: { batonAgentId: data.agent.id } })
  return answer(200, { ok: true })
}

async function onAgentMessage(ctx: WebhookContext, data: sdk.z.infer<typeof agentMessage>): Promise<WebhookResponse> {
  // Checked first: a message the channel cannot carry is refused whatever the session's state.
  const message = toHitl(data.type, data.payload)
  const found = await sessionOf(ctx, data.handoff_id)
  if ('response' in found) {
    return found.response
  }
  const author = await userFor(ctx, data.agent ?? DESK)
  // Keyed by the desk's message id: the same event again finds the message instead of repeating it.
  await ctx.botpress.getOrCreateMessage({
    ...message,
    conversationId: found.conversation.id,
    userId: author.id,
    tags: { batonMessageId: data.message_id },
    discriminateByTags: ['batonMessageId'],
  })
  return answer(200, { ok: true })
}

async function onClosed(ctx: WebhookContext, data: sdk.z.infer<typeof closed>): Promise<WebhookResponse> {
  const found = await sessionOf(ctx, data.handoff_id)
  if ('response' in found) {
    return found.response
  }
  const { conversation } = found
  if (conversation.tags.batonStatus) {
    return answer(200, { ok: true, repeat: true })
  }
  await ctx.botpress.createEvent({ type: 'hitlStopped', payload: { conversationId: conversation.id } })
  await ctx.botpress.updateConversation({ id: conversation.id, tags: { batonStatus: data.status } })
  return answer(200, { ok: true })
}
