// What agents do on the desk reaches Botpress: a real baton-hub posts its signed events to the
// test's events endpoint, which feeds the integration's webhook handler.
import { describe, expect, test } from 'vitest'
import { handleWebhook } from '../src/webhook'
import { eventually } from './support/desk'
import { CARD, EVERY_TYPE } from './support/samples'
import { escalate, signedCall, world, type Session, type World } from './support/world'

const ASSIGN_NOTICE = 'You have been assigned to our agent Alice.'

/** The messages of a session as the plugin would relay them: author's name, type and payload. */
function botpressSees(w: World, session: Session) {
  return w.botpress.messagesIn(session.conversationId).map((m) => ({ author: m.author, type: m.type, payload: m.payload }))
}

async function taken(w: World, session: Session): Promise<void> {
  await w.alice.take(session.handoffId)
  await eventually(
    () => w.botpress.messagesIn(session.conversationId).length === 1,
    () => `Botpress has ${JSON.stringify(w.botpress.messages)}; the hub was called ${JSON.stringify(w.endpoint.calls)}`
  )
}

describe('an agent on the desk', () => {
  test('taking the handoff is announced to the plugin as hitlAssigned, by a Botpress user with the agent’s name', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })

    await taken(w, session)

    const [assigned] = w.botpress.eventsAbout(session.conversationId)
    if (assigned?.type !== 'hitlAssigned') {
      throw new Error(`Botpress got ${JSON.stringify(w.botpress.events)}`)
    }
    expect(assigned.payload.conversationId).toBe(session.conversationId)
    // The plugin looks this user up to tell the end user who joined.
    const agentUser = w.botpress.userNamed(assigned.payload.userId)
    const holder = (await w.alice.handoff(session.handoffId))?.assignee
    expect(agentUser).toMatchObject({ name: 'Alice', tags: { batonAgentId: holder } })
    // The desk's own notice goes out in her name too.
    expect(botpressSees(w, session)).toEqual([{ author: 'Alice', type: 'text', payload: { text: ASSIGN_NOTICE } }])
    expect(w.botpress.conversations.get(session.conversationId)?.tags.batonAgentId).toBe(holder)
  })

  test('replying reaches the Botpress conversation as the agent, and the desk shows the reply sent', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    await taken(w, session)

    await w.alice.reply(session.deskConversationId, 'Hi Zoë, I can refund that today')

    await eventually(
      () => botpressSees(w, session).length === 2,
      () => JSON.stringify(botpressSees(w, session))
    )
    expect(botpressSees(w, session)[1]).toEqual({
      author: 'Alice',
      type: 'text',
      payload: { text: 'Hi Zoë, I can refund that today' },
    })
    const sent = await eventually(
      async () =>
        (await w.alice.messagesOf(session.deskConversationId)).find(
          (m) => m.text === 'Hi Zoë, I can refund that today' && m.status === 'sent'
        ),
      async () => JSON.stringify(await w.alice.messagesOf(session.deskConversationId))
    )
    expect(w.botpress.messagesIn(session.conversationId)[1]?.tags).toEqual({ batonMessageId: sent.id })
  })

  test('sending any message type gets it to Botpress as a type the hitl channel carries', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Every kind' })
    await taken(w, session)

    for (const { type, payload } of EVERY_TYPE) {
      await w.alice.send(session.deskConversationId, type, payload)
    }

    await eventually(
      () => botpressSees(w, session).length === 1 + EVERY_TYPE.length,
      () => `Botpress has ${JSON.stringify(botpressSees(w, session))}; the hub got ${JSON.stringify(w.endpoint.calls.map((c) => c.body))}`
    )
    const cardItems = [
      { type: 'image', payload: { imageUrl: CARD.imageUrl, title: 'Order #1042' } },
      {
        type: 'text',
        payload: { text: 'Order #1042\n2 items, shipped Monday\n• Track it\n• Open the order: https://shop.example.com/orders/1042' },
      },
    ]
    expect(botpressSees(w, session).slice(1)).toEqual(
      [
        { type: 'text', payload: { text: 'Hi, my parcel arrived crushed' } },
        { type: 'image', payload: { imageUrl: 'https://files.example.com/box.jpg', title: 'box.jpg' } },
        { type: 'audio', payload: { audioUrl: 'https://files.example.com/note.ogg' } },
        { type: 'video', payload: { videoUrl: 'https://files.example.com/unboxing.mp4', title: 'Unboxing' } },
        { type: 'file', payload: { fileUrl: 'https://files.example.com/invoice.pdf', title: 'invoice.pdf' } },
        {
          type: 'bloc',
          payload: {
            items: [{ type: 'location', payload: { latitude: 45.5017, longitude: -73.5673, address: '1 Main St', title: 'Home' } }],
          },
        },
        { type: 'bloc', payload: { items: cardItems } },
        { type: 'bloc', payload: { items: [...cardItems, { type: 'text', payload: { text: 'Order #1043\n• This one' } }] } },
        { type: 'text', payload: { text: 'What went wrong?\n• It is damaged\n• Something is missing' } },
        { type: 'text', payload: { text: 'Where do you live?\n• Canada' } },
        { type: 'text', payload: { text: '**Refunds** take _five_ days' } },
        {
          type: 'bloc',
          payload: {
            items: [
              { type: 'text', payload: { text: 'Here is your return label' } },
              { type: 'text', payload: { text: '_Print it_ and stick it on the box' } },
              { type: 'file', payload: { fileUrl: 'https://files.example.com/label.pdf', title: 'label.pdf' } },
            ],
          },
        },
      ].map((message) => ({ author: 'Alice', ...message }))
    )
  })

  test('resolving the handoff stops the session in Botpress with hitlStopped', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    await taken(w, session)

    await w.alice.resolve(session.handoffId, 'refunded')

    await eventually(
      () => w.botpress.eventsAbout(session.conversationId).length === 2,
      () => JSON.stringify(w.botpress.events)
    )
    expect(w.botpress.eventsAbout(session.conversationId).map((e) => [e.type, e.payload])).toEqual([
      ['hitlAssigned', expect.objectContaining({ conversationId: session.conversationId })],
      ['hitlStopped', { conversationId: session.conversationId }],
    ])
    expect(w.botpress.conversations.get(session.conversationId)?.tags.batonStatus).toBe('resolved')
  })
})

describe('the webhook', () => {
  test('applies an event the hub sends again (its answer was lost) only once', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    await taken(w, session)
    await w.alice.reply(session.deskConversationId, 'one moment please')
    await w.alice.resolve(session.handoffId)
    await eventually(
      () => w.botpress.eventsAbout(session.conversationId).length === 2,
      () => JSON.stringify(w.botpress.events)
    )
    const before = { messages: botpressSees(w, session), events: structuredClone(w.botpress.events) }
    expect(w.endpoint.calls.map((c) => c.type)).toEqual(['handoff.assigned', 'agent.message', 'agent.message', 'handoff.closed'])

    for (const call of [...w.endpoint.calls]) {
      const again = await handleWebhook(w.webhook, call.request)
      expect(again.status).toBe(200)
    }

    expect(botpressSees(w, session)).toEqual(before.messages)
    expect(w.botpress.events).toEqual(before.events)
  })

  test('answers the hub with an error while Botpress is down, and the reply arrives once when it is back', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    await taken(w, session)

    w.botpress.failNext(3)
    await w.alice.reply(session.deskConversationId, 'are you still there?')

    await eventually(
      () => botpressSees(w, session).length === 2,
      () => JSON.stringify(w.endpoint.calls.map((c) => [c.type, c.status]))
    )
    const tries = w.endpoint.callsFor('agent.message').slice(1)
    expect(tries.map((c) => c.status)).toEqual([500, 500, 500, 200])
    expect(new Set(tries.map((c) => c.id)).size).toBe(1)
    expect(botpressSees(w, session)[1]).toEqual({ author: 'Alice', type: 'text', payload: { text: 'are you still there?' } })
    expect(w.log).toContainEqual(expect.stringMatching(/^error: Could not apply Baton event .*Botpress is unavailable/))
  })

  test('refuses a call that is not signed with the bot’s secret, and nothing changes', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    const forged = JSON.stringify({
      id: 'ev_forged',
      type: 'handoff.closed',
      created_at: new Date().toISOString(),
      data: { handoff_id: session.handoffId, conversation_id: session.deskConversationId, status: 'resolved', label: null, agent: null },
    })
    const now = Math.floor(Date.now() / 1000)
    const callsBefore = [...w.botpress.calls]

    const answers = await Promise.all(
      [
        signedCall(forged, 'not-the-secret'),
        signedCall(forged, w.data.signingSecret, now - 301),
        signedCall(forged, w.data.signingSecret, now + 301),
        { ...signedCall(forged, w.data.signingSecret), body: forged.replace('resolved', 'cancelled') },
        { method: 'POST', headers: {}, body: forged },
        { method: 'POST', headers: { 'baton-signature': 'sha256=abc' }, body: forged },
      ].map((request) => handleWebhook(w.webhook, request))
    )

    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 401])
    expect(answers.map((a) => JSON.parse(a.body ?? '{}').error)).toEqual([
      'the signature does not match the body',
      expect.stringContaining('more than five minutes from now'),
      expect.stringContaining('more than five minutes from now'),
      'the signature does not match the body',
      'no Baton-Signature header',
      'Baton-Signature is not t=…,v1=…',
    ])
    expect(w.botpress.calls).toEqual(callsBefore)
    expect(w.botpress.events).toEqual([])
    // The same event, signed by the hub's secret within five minutes, is taken.
    expect((await handleWebhook(w.webhook, signedCall(forged, w.data.signingSecret, now - 299))).status).toBe(200)
    expect(w.botpress.eventsAbout(session.conversationId).map((e) => e.type)).toEqual(['hitlStopped'])
  })

  test('holds back an agent who answers the moment the handoff opens until the plugin has linked the session', async () => {
    // The plugin links a session only after startHitl answered, and ignores events before that.
    const w = await world({ settleMs: 2500, pluginLinksAfterMs: 2000 })
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })

    await w.alice.take(session.handoffId)
    await w.alice.reply(session.deskConversationId, 'Hi, Alice here')

    await eventually(
      () => botpressSees(w, session).length === 2,
      () => JSON.stringify(w.endpoint.calls.map((c) => [c.type, c.status]))
    )
    expect(w.endpoint.callsFor('handoff.assigned')[0]?.status).toBe(425)
    expect(w.botpress.events.map((e) => [e.type, e.droppedByPlugin])).toEqual([['hitlAssigned', false]])
    expect(w.botpress.messagesIn(session.conversationId).map((m) => [m.payload, m.droppedByPlugin])).toEqual([
      [{ text: ASSIGN_NOTICE }, false],
      [{ text: 'Hi, Alice here' }, false],
    ])
  })

  test('without that margin the plugin would have dropped the agent’s first words', async () => {
    const w = await world({ settleMs: 0, pluginLinksAfterMs: 60_000 })
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })

    await taken(w, session)

    expect(w.botpress.events.map((e) => [e.type, e.droppedByPlugin])).toEqual([['hitlAssigned', true]])
    expect(w.botpress.messagesIn(session.conversationId).map((m) => m.droppedByPlugin)).toEqual([true])
  })

  test('acknowledges an event for a handoff no HITL session is, and an event it has no use for, and changes nothing', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    const event = (type: string, data: Record<string, unknown>) =>
      signedCall(JSON.stringify({ id: `ev_${type}`, type, created_at: new Date().toISOString(), data }), w.data.signingSecret)

    const unknownHandoff = await handleWebhook(
      w.webhook,
      event('handoff.assigned', { handoff_id: 'ho_elsewhere', conversation_id: 't_x', user_id: 'u', agent: { id: 'ag_1', name: 'Bo' } })
    )
    const whatsapp = await handleWebhook(
      w.webhook,
      event('user.message', { conversation_id: session.deskConversationId, type: 'text', payload: { text: 'hola' } })
    )

    expect([unknownHandoff.status, whatsapp.status]).toEqual([200, 200])
    expect(JSON.parse(unknownHandoff.body ?? '').ignored).toMatch(/no HITL session for handoff ho_elsewhere/)
    expect(JSON.parse(whatsapp.body ?? '').ignored).toMatch(/user.message/)
    expect(w.botpress.events).toEqual([])
    expect(w.botpress.messages).toEqual([])
  })

  test('refuses for good a message the hitl channel cannot carry, and Botpress gets nothing', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Refund' })
    const data = {
      handoff_id: session.handoffId,
      conversation_id: session.deskConversationId,
      message_id: 'm_1',
      agent: { id: 'ag_1', name: 'Alice' },
    }
    const call = (type: string, payload: unknown) =>
      handleWebhook(
        w.webhook,
        signedCall(
          JSON.stringify({ id: `ev_${type}`, type: 'agent.message', created_at: new Date().toISOString(), data: { ...data, type, payload } }),
          w.data.signingSecret
        )
      )

    const answers = await Promise.all([
      call('hologram', { beam: true }),
      call('image', { title: 'no picture' }),
      call('bloc', { items: [{ type: 'bloc', payload: { items: [] } }] }),
    ])

    expect(answers.map((a) => [a.status, JSON.parse(a.body ?? '').error])).toEqual([
      [422, 'the hitl channel carries no "hologram" messages'],
      [422, expect.stringMatching(/^not a valid image message at imageUrl/)],
      [422, 'a bloc cannot hold another bloc (items.0)'],
    ])
    expect(w.botpress.messages).toEqual([])
  })

  test('answers what is not an event from the hub plainly', async () => {
    const w = await world()

    const get = await handleWebhook(w.webhook, { method: 'GET', headers: {} })
    const notJson = await handleWebhook(w.webhook, signedCall('{"id":', w.data.signingSecret))
    const notAnEvent = await handleWebhook(w.webhook, signedCall('{"hello":"there"}', w.data.signingSecret))
    const missingData = await handleWebhook(
      w.webhook,
      signedCall(JSON.stringify({ id: 'ev_1', type: 'handoff.assigned', created_at: '', data: { handoff_id: 'ho_1' } }), w.data.signingSecret)
    )

    expect([get.status, notJson.status, notAnEvent.status, missingData.status]).toEqual([405, 400, 400, 400])
    expect(JSON.parse(missingData.body ?? '').error).toMatch(/^a handoff.assigned event without what it needs/)
    expect(w.botpress.calls).toEqual([])
  })
})
