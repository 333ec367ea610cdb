// The integration as Botpress runs it: each handler builds what the plain modules need from
// Botpress's props (its client, the configuration, the bot's log) and hands over to them.
import * as sdk from '@botpress/sdk'
import { BatonApi } from './baton-api'
import type { BotpressClient, Logger } from './botpress-client'
import type { Configuration } from './definitions'
import { createUser, relayToBaton, startHitl, stopHitl, type Integration } from './hitl'
import type { BatonIntegration } from './hitl-types'
import { handleWebhook } from './webhook'

/** The integration's own margin before a new HITL session takes events (see webhook.ts). */
export const SETTLE_MS = 2000

type Props = {
  ctx: { configuration: Configuration }
  client: BotpressClient
  logger: { forBot(): Logger }
}

function integration({ ctx, client, logger }: Props): Integration {
  const { hubUrl, botToken } = ctx.configuration
  return { botpress: client, baton: new BatonApi(hubUrl, botToken), logger: logger.forBot() }
}

/** Botpress shows a RuntimeError's message to whoever called; any other error as "internal". */
async function shown<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    throw error instanceof sdk.RuntimeError ? error : new sdk.RuntimeError(error instanceof Error ? error.message : String(error))
  }
}

/** One handler for every message type of the `hitl` channel: each is relayed to the desk. */
async function relay(props: Props & Parameters<typeof relayToBaton>[1] & { ack: (x: { tags: { batonMessageId: string } }) => Promise<void> }) {
  const { batonMessageId } = await shown(() => relayToBaton(integration(props), props))
  await props.ack({ tags: { batonMessageId } })
}

export default new sdk.Integration<BatonIntegration>({
  register: async ({ ctx, logger, webhookUrl }) => {
    const { hubUrl, botToken } = ctx.configuration
    await shown(() => new BatonApi(hubUrl, botToken).checkCredentials())
    logger
      .forBot()
      .info(`Baton takes the bot token. Baton must send this bot's events to ${webhookUrl} (baton-hub bot set --events-url).`)
  },
  unregister: async () => {},
  actions: {
    createUser: (props) => shown(() => createUser(integration(props), props.input)),
    startHitl: (props) => shown(() => startHitl(integration(props), props.input)),
    stopHitl: (props) => shown(() => stopHitl(integration(props), props.input)),
  },
  channels: {
    hitl: {
      messages: { text: relay, image: relay, audio: relay, video: relay, file: relay, bloc: relay },
    },
  },
  handler: async (props) => {
    const context = { ...integration(props), signingSecret: props.ctx.configuration.signingSecret, now: Date.now, settleMs: SETTLE_MS }
    return handleWebhook(context, props.req)
  },
})
