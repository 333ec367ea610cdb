// Message types both ways. Baton stores Botpress's own message types (text, image, audio, video,
// file, location, card, carousel, choice, dropdown, markdown, bloc), so what a bot says reaches the
// desk as it is; the `hitl` channel of interface 2.1.0 carries only text, image, audio, video, file
// and bloc, so what an agent sends in another type is turned into those before it reaches Botpress.
import * as sdk from '@botpress/sdk'
import type { BatonMessage, HistoryItem } from './baton-api'
import type { BlocItem, HistoryMessage, HitlMessage } from './hitl-types'

/** A message that cannot be carried: its type is unknown, or its payload is not of its type. */
export class UnsupportedMessage extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UnsupportedMessage'
  }
}

const { defaults } = sdk.messages

/**
 * Each Botpress message type with the SDK's schema of its payload, as the hitl interface lists
 * them for `messageHistory` (a bloc may hold markdown there). Parsing with these keeps a type's own
 * fields and drops what Botpress adds around them (`userId`, `additionalData`, the plugin's `type`).
 */
const BOTPRESS_TYPES = {
  ...defaults,
  markdown: sdk.messages.markdown,
  bloc: sdk.messages.markdownBloc,
} satisfies Record<string, { schema: sdk.z.AnyZodObject }>

type BotpressType = keyof typeof BOTPRESS_TYPES

function isBotpressType(type: string): type is BotpressType {
  return Object.prototype.hasOwnProperty.call(BOTPRESS_TYPES, type)
}

function parsed<S extends sdk.z.ZodTypeAny>(type: string, schema: S, payload: unknown): sdk.z.infer<S> {
  const result = schema.safeParse(payload)
  if (!result.success) {
    const issue = result.error.issues[0]
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : ''
    throw new UnsupportedMessage(`not a valid ${type} message${where}: ${issue?.message ?? 'invalid payload'}`)
  }
  return result.data
}

// ---- Botpress → Baton ---------------------------------------------------------------------------

/** A Botpress message as the bot API takes it: the same type, the payload without Botpress's extras. */
export function toBaton(type: string, payload: unknown): BatonMessage {
  if (!isBotpressType(type)) {
    throw new UnsupportedMessage(`Baton takes no "${type}" messages`)
  }
  return { type, payload: parsed(type, BOTPRESS_TYPES[type].schema, payload) }
}

/**
 * The conversation before the handoff, as the bot API takes it. A message that could not be stored
 * is left out and named in `skipped`, rather than losing the whole handoff over it.
 */
export function toHistory(messages: HistoryMessage[]): { history: HistoryItem[]; skipped: string[] } {
  let history: HistoryItem[] = []
  const skipped: string[] = []
  messages.forEach((message, index) => {
    try {
      const item = { author: message.source.type === 'user' ? ('user' as const) : ('bot' as const), ...toBaton(message.type, message.payload) }
      checkedForHub(item)
      history.push(item)
    } catch (error) {
      if (!(error instanceof UnsupportedMessage)) {
        throw error
      }
      skipped.push(`messageHistory[${index}] (${message.type}): ${error.message}`)
    }
  })
  // The hub takes the latest MAX_HISTORY: the oldest are the least useful to the agent.
  if (history.length > MAX_HISTORY) {
    skipped.push(`the oldest ${history.length - MAX_HISTORY} messages (the hub keeps the last ${MAX_HISTORY})`)
    history = history.slice(-MAX_HISTORY)
  }
  return { history, skipped }
}

/** The most history messages the hub takes with a handoff (`POST /bot/v1/handoffs`). */
export const MAX_HISTORY = 500
/** The largest payload the hub takes for one message. */
export const MAX_PAYLOAD_BYTES = 64 * 1024

/** What the hub would refuse about one history message (and with it the whole handoff). */
function checkedForHub(item: HistoryItem): void {
  if (Buffer.byteLength(JSON.stringify(item.payload)) > MAX_PAYLOAD_BYTES) {
    throw new UnsupportedMessage(`larger than the hub's ${MAX_PAYLOAD_BYTES / 1024} KiB per message`)
  }
  const text = (item.payload as { text?: unknown }).text
  if (item.type === 'text' && typeof text === 'string' && text.trim() === '') {
    throw new UnsupportedMessage('an empty text')
  }
}

// ---- Baton → Botpress ---------------------------------------------------------------------------

type Card = sdk.z.infer<typeof defaults.card.schema>
type Choice = sdk.z.infer<typeof defaults.choice.schema>

/** A card as bloc items: its picture, then its title, subtitle and buttons as text. */
function cardItems(card: Card): BlocItem[] {
  const lines = [card.title, card.subtitle, ...card.actions.map((a) => (a.action === 'url' ? `• ${a.label}: ${a.value}` : `• ${a.label}`))]
  const text = lines.filter((line): line is string => !!line).join('\n')
  const items: BlocItem[] = []
  if (card.imageUrl) {
    items.push({ type: 'image', payload: { imageUrl: card.imageUrl, title: card.title } })
  }
  items.push({ type: 'text', payload: { text } })
  return items
}

/** A choice as text: the question, then one line per option (the user answers by typing it). */
function choiceText(choice: Choice): string {
  return [choice.text, ...choice.options.map((option) => `• ${option.label}`)].join('\n')
}

/** What one message of the desk becomes inside a bloc. */
function blocItems(message: HitlMessage): BlocItem[] {
  switch (message.type) {
    case 'bloc':
      return message.payload.items
    case 'text':
      return [{ type: 'text', payload: { text: message.payload.text } }]
    case 'image':
      return [{ type: 'image', payload: message.payload }]
    case 'audio':
      return [{ type: 'audio', payload: message.payload }]
    case 'video':
      return [{ type: 'video', payload: message.payload }]
    case 'file':
      return [{ type: 'file', payload: message.payload }]
  }
}

/** A bloc from the desk: any message types but bloc, each checked as its own type. */
const blocOfAnything = sdk.z.object({
  items: sdk.z.array(sdk.z.object({ type: sdk.z.string(), payload: sdk.z.unknown() })).min(1),
})

function bloc(items: BlocItem[]): HitlMessage {
  return { type: 'bloc', payload: { items } }
}

/**
 * An agent's message from the desk as a message of the `hitl` channel, which the HITL plugin relays
 * to the end user: text, image, audio, video and file as they are; markdown, choices and dropdowns
 * as text; a location, a card or a carousel as a bloc.
 */
export function toHitl(type: string, payload: unknown): HitlMessage {
  switch (type) {
    case 'text':
      return { type, payload: { text: parsed(type, defaults.text.schema, payload).text } }
    case 'markdown':
      // Webchat renders markdown in text messages; the channel has no markdown type of its own.
      return { type: 'text', payload: { text: parsed(type, sdk.messages.markdown.schema, payload).markdown } }
    case 'image':
      return { type, payload: parsed(type, defaults.image.schema, payload) }
    case 'audio':
      return { type, payload: parsed(type, defaults.audio.schema, payload) }
    case 'video':
      return { type, payload: parsed(type, defaults.video.schema, payload) }
    case 'file':
      return { type, payload: parsed(type, defaults.file.schema, payload) }
    case 'location':
      return bloc([{ type: 'location', payload: parsed(type, defaults.location.schema, payload) }])
    case 'card':
      return bloc(cardItems(parsed(type, defaults.card.schema, payload)))
    case 'carousel':
      return bloc(parsed(type, defaults.carousel.schema, payload).items.flatMap(cardItems))
    case 'choice':
    case 'dropdown':
      return { type: 'text', payload: { text: choiceText(parsed(type, defaults.choice.schema, payload)) } }
    case 'bloc': {
      // The desk's bloc may hold any type but another bloc: each item is carried as above.
      const { items } = parsed(type, blocOfAnything, payload)
      const carried = items.flatMap((item, index) => {
        if (item.type === 'bloc') {
          throw new UnsupportedMessage(`a bloc cannot hold another bloc (items.${index})`)
        }
        return blocItems(toHitl(item.type, item.payload))
      })
      return bloc(carried)
    }
    default:
      throw new UnsupportedMessage(`the hitl channel carries no "${type}" messages`)
  }
}
