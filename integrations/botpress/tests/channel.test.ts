// The `hitl` channel: what the plugin writes into a session's conversation (the end user's words,
// its own notices) reaches the desk, through a real baton-hub.
import { describe, expect, test } from 'vitest'
import { relayToBaton } from '../src/hitl'
import { escalate, userWrites, world } from './support/world'

/** One message of each type the hitl channel of interface 2.1.0 declares. */
const CHANNEL_TYPES: Array<{ type: string; payload: Record<string, unknown> }> = [
  { type: 'text', payload: { text: 'the box is in the photo' } },
  { type: 'image', payload: { imageUrl: 'https://files.example.com/box.jpg', title: 'box.jpg' } },
  { type: 'audio', payload: { audioUrl: 'https://files.example.com/voice.ogg' } },
  { type: 'video', payload: { videoUrl: 'https://files.example.com/box.mp4' } },
  { type: 'file', payload: { fileUrl: 'https://files.example.com/receipt.pdf', title: 'receipt.pdf' } },
  {
    type: 'bloc',
    payload: {
      items: [
        { type: 'text', payload: { text: 'Both sides:' } },
        { type: 'image', payload: { imageUrl: 'https://files.example.com/side-a.jpg' } },
        { type: 'location', payload: { latitude: 45.5, longitude: -73.6, address: 'The depot' } },
        { type: 'markdown', payload: { markdown: '*crushed* on the left' } },
      ],
    },
  },
]

describe('the hitl channel', () => {
  test('brings each of its message types to the desk as the end user’s, without what the plugin adds to it', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Crushed box' })

    for (const { type, payload } of CHANNEL_TYPES) {
      await userWrites(w, session, type, { ...payload, additionalData: 'ticket-7' })
    }

    const seen = await w.alice.messagesOf(session.deskConversationId)
    expect(seen.map((m) => ({ author: m.author, type: m.type, payload: m.payload }))).toEqual(
      CHANNEL_TYPES.map(({ type, payload }) => ({ author: 'end_user', type, payload }))
    )
    expect(seen[0]?.text).toBe('the box is in the photo')
  })

  test('brings the plugin’s own notices to the desk as the bot’s', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Crushed box' })
    const { conversation } = await w.botpress.getConversation({ id: session.conversationId })

    // The plugin writes its notices without a userId, e.g. before it calls stopHitl.
    await relayToBaton(w.it, {
      conversation,
      message: { id: 'msg_notice' },
      type: 'text',
      payload: { type: 'text', text: '( The user has ended the session. )' },
    })

    expect((await w.alice.messagesOf(session.deskConversationId)).map((m) => [m.author, m.text])).toEqual([
      ['bot', '( The user has ended the session. )'],
    ])
  })

  test('stores a message Botpress delivers twice once', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Crushed box' })

    const first = await userWrites(w, session, 'text', { text: 'hello?' }, 'msg_retried')
    const again = await userWrites(w, session, 'text', { text: 'hello?' }, 'msg_retried')

    expect(again).toBe(first)
    expect((await w.alice.messagesOf(session.deskConversationId)).map((m) => m.id)).toEqual([first])
  })

  test('refuses a message in a conversation that is no Baton handoff, and the desk gets nothing', async () => {
    const w = await world()
    const session = await escalate(w, { name: 'Zoë' }, { title: 'Crushed box' })
    const { conversation: stranger } = await w.botpress.getOrCreateConversation({
      channel: 'hitl',
      tags: {},
      discriminateByTags: [],
    })

    await expect(
      relayToBaton(w.it, { conversation: stranger, message: { id: 'msg_1' }, type: 'text', payload: { text: 'hi' } })
    ).rejects.toThrow(/is not a Baton handoff/)
    expect(await w.alice.messagesOf(session.deskConversationId)).toEqual([])
  })
})
