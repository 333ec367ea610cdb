// The integration's typings, as `bp gen` would write them into .botpress/ (this registry's
// @botpress/cli cannot generate them). Input types come from the interface's own schemas, so a
// change of interface shows up here as a type error; outputs and message payloads are spelled out
// from the same interface file, where its schemas are too loosely typed to infer them.
import * as sdk from '@botpress/sdk'
import type { INTEGRATION_NAME, INTEGRATION_VERSION } from '../integration.definition'
import type hitl from '../interfaces/hitl/interface.definition'
import type { Configuration, ConversationTag, HandoffEntity, MessageTag, UserTag } from './definitions'

type Hitl = typeof hitl
type Infer<S> = S extends sdk.z.ZodTypeAny ? sdk.z.infer<S> : never

export type CreateUserInput = Infer<Hitl['actions']['createUser']['input']['schema']>
export type CreateUserOutput = { userId: string }

/** One message of the bot conversation before the handoff (any Botpress message type). */
export type HistoryMessage = {
  source: { type: 'user'; userId: string } | { type: 'bot' }
  type: string
  payload: Record<string, unknown>
}

export type StartHitlInput = {
  userId: string
  title?: string
  description?: string
  hitlSession?: HandoffEntity
  messageHistory: HistoryMessage[]
}
export type StartHitlOutput = { conversationId: string }

export type StopHitlInput = Infer<Hitl['actions']['stopHitl']['input']['schema']>
export type StopHitlOutput = Record<string, never>

export type HitlAssigned = Infer<Hitl['events']['hitlAssigned']['schema']>
export type HitlStopped = Infer<Hitl['events']['hitlStopped']['schema']>

/** What the interface adds to every message of the `hitl` channel. */
type HitlSpecific = { userId?: string; additionalData?: string }
type Payload<S> = Infer<S> & HitlSpecific

/** The `hitl` channel's message types (interface 2.1.0): payloads by type. */
export type HitlMessages = {
  text: Payload<typeof sdk.messages.defaults.text.schema>
  image: Payload<typeof sdk.messages.defaults.image.schema>
  audio: Payload<typeof sdk.messages.defaults.audio.schema>
  video: Payload<typeof sdk.messages.defaults.video.schema>
  file: Payload<typeof sdk.messages.defaults.file.schema>
  bloc: Payload<typeof sdk.messages.markdownBloc.schema>
}
export type HitlMessageType = keyof HitlMessages
/** A message for the `hitl` channel: its type and a payload of that type. */
export type HitlMessage = { [T in HitlMessageType]: { type: T; payload: HitlMessages[T] } }[HitlMessageType]
export type BlocItem = HitlMessages['bloc']['items'][number]

type Tags<K extends string> = { [Tag in K]: string }

export type BatonIntegration = sdk.DefaultIntegration<{
  name: typeof INTEGRATION_NAME
  version: typeof INTEGRATION_VERSION
  configuration: Configuration
  actions: {
    createUser: { input: CreateUserInput; output: CreateUserOutput }
    startHitl: { input: StartHitlInput; output: StartHitlOutput }
    stopHitl: { input: StopHitlInput; output: StopHitlOutput }
  }
  channels: {
    hitl: {
      messages: HitlMessages
      message: { tags: Tags<MessageTag> }
      conversation: { tags: Tags<ConversationTag> }
    }
  }
  events: { hitlAssigned: HitlAssigned; hitlStopped: HitlStopped }
  states: {}
  configurations: {}
  user: { tags: Tags<UserTag> }
  entities: { handoff: HandoffEntity }
}>
