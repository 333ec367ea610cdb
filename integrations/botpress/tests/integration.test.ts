// The integration as Botpress loads it: its definition (what `bp deploy` publishes) and its
// handlers (what Botpress calls), each driven the way Botpress would, against a real baton-hub.
import * as sdk from '@botpress/sdk'
import { describe, expect, test, vi } from 'vitest'
import definition from '../integration.definition'
import type { Configuration } from '../src/definitions'
import integration, { SETTLE_MS } from '../src/index'
import { eventually } from './support/desk'
import { freePort } from './support/hub'
import { capturingLogger, world, type World } from './support/world'

type Common = Omit<Parameters<typeof integration.register>[0], 'webhookUrl'>

/** What Botpress passes every handler: the context with the configuration, its client, its log. */
function botpressProps(w: World, configuration: Configuration, log: string[]): Common {
  return {
    ctx: {
      botId: 'bot_1',
      botUserId: 'user_bot',
      integrationId: 'intver_1',
      integrationAlias: 'baton-hitl',
      webhookId: 'wh_1',
      operation: 'action_triggered',
      configurationType: null,
      configuration,
    },
    client: w.botpress as unknown as Common['client'],
    logger: { forBot: () => capturingLogger(log) } as unknown as Common['logger'],
  }
}

const configured = (w: World): Configuration => ({ hubUrl: `${w.hub.url}/`, botToken: w.data.token, signingSecret: w.data.signingSecret })

describe('the integration definition', () => {
  test('declares Baton as a provider of the hitl interface 2.1.0, with Baton’s handoff as the plugin’s extra configuration', () => {
    expect(definition.interfaces).toEqual({
      'hitl<handoff>': {
        name: 'hitl',
        version: '2.1.0',
        entities: { hitlSession: { name: 'handoff' } },
        actions: { createUser: { name: 'createUser' }, startHitl: { name: 'startHitl' }, stopHitl: { name: 'stopHitl' } },
        events: { hitlAssigned: { name: 'hitlAssigned' }, hitlStopped: { name: 'hitlStopped' } },
        channels: { hitl: { name: 'hitl' } },
      },
    })
    expect(Object.keys(definition.channels?.hitl?.messages ?? {})).toEqual(['text', 'image', 'audio', 'video', 'file', 'bloc'])
    expect(Object.keys(definition.configuration?.schema.shape ?? {})).toEqual(['hubUrl', 'botToken', 'signingSecret'])
    expect(definition.entities?.handoff?.schema.safeParse({ priority: 'urgent', reason: 'angry' }).success).toBe(true)
    expect(definition.entities?.handoff?.schema.safeParse({ priority: 'whenever' }).success).toBe(false)
  })
})

describe('saving the configuration', () => {
  test('checks that the hub is there and takes the bot token, and says where the hub must send events', async () => {
    const w = await world()
    const log: string[] = []
    const webhookUrl = 'https://webhook.botpress.cloud/wh_1'

    await integration.register({ ...botpressProps(w, configured(w), log), webhookUrl })

    expect(log).toEqual([expect.stringContaining(`Baton must send this bot's events to ${webhookUrl}`)])
    // The check changed nothing on the desk.
    expect(await w.alice.contacts()).toEqual([])
  })

  test('fails with what to fix when the token is wrong or the hub cannot be reached', async () => {
    const w = await world()
    const log: string[] = []
    const register = (configuration: Configuration) =>
      integration.register({ ...botpressProps(w, configuration, log), webhookUrl: 'https://webhook.botpress.cloud/wh_1' })
    const nobody = `http://127.0.0.1:${await freePort()}`

    const wrongToken = register({ ...configured(w), botToken: 'not-the-token' })
    await expect(wrongToken).rejects.toBeInstanceOf(sdk.RuntimeError)
    await expect(wrongToken).rejects.toThrow('Baton refused the bot token: copy the "token:" line of `baton-hub bot add`')
    await expect(register({ ...configured(w), hubUrl: nobody })).rejects.toThrow(/^Baton cannot be reached at http:\/\/127\.0\.0\.1:\d+/)
    expect(log).toEqual([])
  })
})

describe('Botpress’s calls', () => {
  test('go through the integration’s actions, channel and webhook for a whole session', async () => {
    // Sessions made long enough ago that the webhook's settling margin is behind them.
    const w = await world({ botpressNow: () => Date.now() - 2 * SETTLE_MS })
    const log: string[] = []
    const props = botpressProps(w, configured(w), log)
    const metadata = { setCost: () => {} }
    w.endpoint.handler = async (req) => {
      const answer = await integration.webhook({ ...props, req: { ...req, path: '/', query: '' } })
      return { status: answer?.status ?? 200, headers: answer?.headers, body: answer?.body }
    }

    const { userId } = await integration.actions.createUser({ ...props, type: 'createUser', metadata, input: { name: 'Zoë', email: 'zoe@example.com' } })
    const { conversationId } = await integration.actions.startHitl({
      ...props,
      type: 'startHitl',
      metadata,
      input: { userId, title: 'Refund', messageHistory: [{ source: { type: 'bot' }, type: 'text', payload: { text: 'How can I help?' } }] },
    })
    const { conversation } = await w.botpress.getConversation({ id: conversationId })
    const handoffId = conversation.tags.batonHandoffId ?? ''
    const deskConversationId = conversation.tags.batonConversationId ?? ''

    const ack = vi.fn(async (_: { tags: { batonMessageId?: string } }) => {})
    // Optional in newer SDKs (which also take `messageCreated`), so looked up with care.
    const relayText = integration.channels.hitl.messages?.text
    if (!relayText) {
      throw new Error('the hitl channel has no text handler')
    }
    type TextProps = Parameters<typeof relayText>[0]
    await relayText({
      ...props,
      type: 'text',
      payload: { text: 'I want my money back', userId },
      conversation: conversation as unknown as TextProps['conversation'],
      message: { id: 'msg_1' } as unknown as TextProps['message'],
      user: { id: 'user_bot', tags: {} } as unknown as TextProps['user'],
      ack,
    })
    const onDesk = await w.alice.messagesOf(deskConversationId)
    expect(onDesk.map((m) => [m.author, m.text])).toEqual([
      ['bot', 'How can I help?'],
      ['end_user', 'I want my money back'],
    ])
    expect(ack).toHaveBeenCalledWith({ tags: { batonMessageId: onDesk[1]?.id } })

    await w.alice.take(handoffId)
    await w.alice.reply(deskConversationId, 'Refunded!')
    await eventually(
      () => w.botpress.messagesIn(conversationId).length === 2,
      () => JSON.stringify(w.endpoint.calls.map((c) => [c.type, c.status, c.body]))
    )
    expect(w.botpress.eventsAbout(conversationId).map((e) => e.type)).toEqual(['hitlAssigned'])
    expect(w.botpress.messagesIn(conversationId).map((m) => [m.author, m.payload])).toEqual([
      ['Alice', { text: 'You have been assigned to our agent Alice.' }],
      ['Alice', { text: 'Refunded!' }],
    ])

    await integration.actions.stopHitl({ ...props, type: 'stopHitl', metadata, input: { conversationId } })
    expect(await w.alice.handoff(handoffId)).toMatchObject({ status: 'cancelled' })

    // A failing action reaches Botpress as an error it shows, with the reason.
    await expect(
      integration.actions.stopHitl({ ...props, type: 'stopHitl', metadata, input: { conversationId: 'conv_nope' } })
    ).rejects.toBeInstanceOf(sdk.RuntimeError)
  })
})
