// The hitl interface's actions (createUser, startHitl, stopHitl) against a real baton-hub: what
// the plugin gets back, and what agents then see on the desk.
import { describe, expect, test } from 'vitest'
import { BatonApi } from '../src/baton-api'
import { CLOSED_IN_BOTPRESS, createUser, startHitl, stopHitl } from '../src/hitl'
import type { HistoryMessage } from '../src/hitl-types'
import { eventually } from './support/desk'
import { EVERY_TYPE } from './support/samples'
import { escalate, world } from './support/world'

const user = (userId = 'user_downstream') => ({ type: 'user' as const, userId })
const bot = { type: 'bot' as const }

describe('createUser', () => {
  test('makes the Botpress user who stands for the end user, and finds the same person again by email', async () => {
    const w = await world()
    const first = await createUser(w.it, { name: 'Zoë Martin', email: 'zoe@example.com', pictureUrl: 'https://i.example.com/z.png' })
    const again = await createUser(w.it, { name: 'Zoë M.', email: 'zoe@example.com' })
    const someoneElse = await createUser(w.it, { name: 'Unknown User' })
    const alsoUnknown = await createUser(w.it, { name: 'Unknown User' })

    expect(again.userId).toBe(first.userId)
    expect(w.botpress.userNamed(first.userId)).toMatchObject({
      name: 'Zoë M.',
      pictureUrl: 'https://i.example.com/z.png',
      tags: { email: 'zoe@example.com' },
    })
    expect(new Set([first.userId, someoneElse.userId, alsoUnknown.userId]).size).toBe(3)
    // Nobody is on the desk until they are handed over.
    expect(await w.alice.contacts()).toEqual([])
  })
})

describe('startHitl', () => {
  test('opens a handoff with the end user, its title, description, priority and reason, and the conversation so far', async () => {
    const w = await world()
    const history: HistoryMessage[] = [
      { source: user(), type: 'text', payload: { text: 'my parcel arrived crushed' } },
      { source: bot, type: 'text', payload: { text: 'Sorry to hear that! Do you want a refund?' } },
      { source: user(), type: 'text', payload: { text: 'I want to talk to a person' } },
    ]
    const session = await escalate(
      w,
      { name: 'Zoë Martin', email: 'zoe@example.com' },
      {
        title: 'Crushed parcel',
        description: 'Order #1042',
        hitlSession: { priority: 'high', reason: 'asked for a human' },
        history,
      }
    )

    expect(session.conversationId).toMatch(/^conv_/)
    const handoff = await w.alice.handoff(session.handoffId)
    expect(handoff).toMatchObject({
      status: 'pending',
      title: 'Crushed parcel',
      description: 'asked for a human — Order #1042',
      priority: 'high',
      conversation_id: session.deskConversationId,
    })
    const [customer] = await w.alice.contacts()
    expect(customer).toMatchObject({ name: 'Zoë Martin', email: 'zoe@example.com' })
    const seen = (await w.alice.messagesOf(session.deskConversationId)).map((m) => [m.author, m.text])
    expect(seen).toEqual([
      ['end_user', 'my parcel arrived crushed'],
      ['bot', 'Sorry to hear that! Do you want a refund?'],
      ['end_user', 'I want to talk to a person'],
    ])
  })

  test('a long history brings its latest 500 messages, and an empty or oversized one is left out, not the handoff', async () => {
    const w = await world()
    const history: HistoryMessage[] = Array.from({ length: 600 }, (_, i) => ({ source: i % 2 === 0 ? user() : bot, type: 'text', payload: { text: `line ${i}` } }))
    history.push({ source: user(), type: 'text', payload: { text: '   ' } })
    history.push({ source: user(), type: 'text', payload: { text: 'x'.repeat(70 * 1024) } })
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Long chat', history })

    const seen = (await w.alice.messagesOf(session.deskConversationId)).map((m) => m.text)
    expect(seen).toHaveLength(500)
    expect(seen[0]).toBe('line 100')
    expect(seen[499]).toBe('line 599')
  })

  test('brings every Botpress message type of the history to the desk as that type, without what Botpress adds to it', async () => {
    const w = await world()
    const history: HistoryMessage[] = EVERY_TYPE.map(({ type, payload }, i) => ({
      source: i % 2 === 0 ? user() : bot,
      type,
      // What the plugin's relaying and the hitl channel add around a message's own fields.
      payload: { ...payload, type, userId: 'user_downstream', additionalData: '{"from":"webchat"}' },
    }))
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Every kind', history })

    const seen = await w.alice.messagesOf(session.deskConversationId)
    expect(seen.map((m) => ({ author: m.author, type: m.type, payload: m.payload }))).toEqual(
      EVERY_TYPE.map(({ type, payload }, i) => ({ author: i % 2 === 0 ? 'end_user' : 'bot', type, payload }))
    )
    const readable = Object.fromEntries(seen.map((m) => [m.type, m.text]))
    expect(readable).toMatchObject({
      text: 'Hi, my parcel arrived crushed',
      markdown: '**Refunds** take _five_ days',
      card: 'Order #1042',
      location: 'Home',
      bloc: 'Here is your return label · _Print it_ and stick it on the box · label.pdf',
    })
  })

  test('leaves out a history message that is not what its type says, names it in the log, and still hands over', async () => {
    const w = await world()
    const session = await escalate(
      w,
      { name: 'Zoë' },
      {
        title: 'Odd history',
        history: [
          { source: user(), type: 'text', payload: { text: 'first' } },
          { source: bot, type: 'image', payload: { title: 'no picture in it' } },
          { source: user(), type: 'hologram', payload: { beam: true } },
          { source: user(), type: 'text', payload: { text: 'last' } },
        ],
      }
    )

    expect((await w.alice.messagesOf(session.deskConversationId)).map((m) => m.text)).toEqual(['first', 'last'])
    expect(w.log.filter((line) => line.startsWith('warn: Left out'))).toEqual([
      expect.stringContaining('messageHistory[1] (image)'),
      expect.stringContaining('messageHistory[2] (hologram)'),
    ])
  })

  test('gives one Botpress conversation per handoff: the same while it is open, a new one for the next handoff', async () => {
    const w = await world()
    const first = await escalate(w, { name: 'Zoë', email: 'zoe@example.com' }, { title: 'First' })
    const sameAgain = await escalate(w, { name: 'Zoë', email: 'zoe@example.com' }, { title: 'First, asked twice' })
    expect(sameAgain).toEqual(first)

    await w.alice.take(first.handoffId)
    await w.alice.resolve(first.handoffId, 'refunded')
    const next = await escalate(w, { name: 'Zoë', email: 'zoe@example.com' }, { title: 'Second' })

    expect(next.conversationId).not.toBe(first.conversationId)
    expect(next.handoffId).not.toBe(first.handoffId)
    // The desk keeps one conversation per person, across handoffs.
    expect(next.deskConversationId).toBe(first.deskConversationId)
    expect((await w.alice.handoffs()).map((h) => [h.title, h.status])).toEqual([
      ['First', 'resolved'],
      ['Second', 'pending'],
    ])
  })

  test('fails with Baton’s reason when the hub refuses the bot token, and nothing reaches the desk', async () => {
    const w = await world()
    const { userId } = await createUser(w.it, { name: 'Zoë' })
    const wrongToken = { ...w.it, baton: new BatonApi(w.hub.url, 'not-the-token') }

    await expect(startHitl(wrongToken, { userId, title: 'Refund', messageHistory: [] })).rejects.toThrow(/401/)
    expect(await w.alice.handoffs()).toEqual([])
    expect(w.botpress.conversations.size).toBe(0)
  })
})

describe('stopHitl', () => {
  test('cancels the handoff on the desk with the reason, and nothing is sent back to Botpress', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    await w.alice.take(session.handoffId)
    await eventually(
      () => w.botpress.eventsAbout(session.conversationId).length === 1,
      () => `Botpress got ${JSON.stringify(w.botpress.events)}`
    )

    expect(await stopHitl(w.it, { conversationId: session.conversationId })).toEqual({})

    expect(await w.alice.handoff(session.handoffId)).toMatchObject({ status: 'cancelled', label: CLOSED_IN_BOTPRESS })
    expect(w.botpress.conversations.get(session.conversationId)?.tags.batonStatus).toBe('cancelled')
    // The hub tells the bot nothing about an end the bot itself asked for.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(w.endpoint.calls.map((c) => c.type)).toEqual(['handoff.assigned', 'agent.message'])
    expect(w.botpress.eventsAbout(session.conversationId).map((e) => e.type)).toEqual(['hitlAssigned'])
  })

  test('of a conversation that is no Baton handoff fails with a clear error', async () => {
    const w = await world()
    const { conversation } = await w.botpress.getOrCreateConversation({ channel: 'hitl', tags: {}, discriminateByTags: [] })

    await expect(stopHitl(w.it, { conversationId: conversation.id })).rejects.toThrow(/is not a Baton handoff/)
  })
})
