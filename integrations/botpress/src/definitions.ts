// What the integration declares to Botpress besides the hitl interface: its configuration, the
// entity behind the plugin's "Extra configuration", and the tags it keeps on Botpress users,
// conversations and messages. integration.definition.ts and the typings in ./hitl-types.ts both
// read these, so a tag or field cannot be declared in one place and used under another name.
import * as sdk from '@botpress/sdk'

const { z } = sdk

export const configuration = {
  schema: z.object({
    hubUrl: z
      .string()
      .url()
      .title('Baton hub URL')
      .describe('Where your Baton hub answers, e.g. https://baton.example.com (the bot API is under /bot/v1)'),
    botToken: z
      .string()
      .min(1)
      .title('Bot token')
      .describe('The "token:" line that `baton-hub bot add` printed'),
    signingSecret: z
      .string()
      .min(1)
      .title('Signing secret')
      .describe('The "signing-secret:" line that `baton-hub bot add` printed; checks that events come from your hub'),
  }),
}

export type Configuration = sdk.z.infer<typeof configuration.schema>

/** Baton's handoff priorities (the bot API's `priority`). */
export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const

/** The plugin shows this entity's fields as "Extra configuration" of Start HITL. */
export const handoffEntity = {
  title: 'Baton handoff',
  description: 'What Baton shows agents about a handoff besides its title and description',
  schema: z.object({
    priority: z
      .enum(PRIORITIES)
      .optional()
      .title('Priority')
      .describe('How urgent the handoff is on the desk; Baton sorts the queue by it'),
    reason: z
      .string()
      .optional()
      .title('Reason')
      .describe('Why the bot hands over ("asked for a human", "refund over $500"…); shown to agents'),
  }),
}

export type HandoffEntity = sdk.z.infer<typeof handoffEntity.schema>

/** Tags on Botpress users. */
export const USER_TAGS = {
  /** On a user that stands for a Baton agent: the agent's id on the desk. */
  batonAgentId: { title: 'Baton agent id', description: 'The Baton agent this Botpress user stands for' },
  /** On a user made by createUser: the customer's email, which finds them again. */
  email: { title: 'Email', description: 'The end user’s email address, as the HITL plugin gave it' },
} as const

/** Tags on the Botpress conversation (channel `hitl`) of one HITL session: one Baton handoff. */
export const CONVERSATION_TAGS = {
  batonHandoffId: { title: 'Baton handoff id', description: 'The handoff this HITL session is on the desk' },
  batonConversationId: {
    title: 'Baton conversation id',
    description: 'The desk conversation of the end user (the same across their handoffs)',
  },
  batonAgentId: { title: 'Baton agent id', description: 'The agent who holds the handoff, once one took it' },
  batonStatus: { title: 'Baton status', description: 'How the handoff ended on the desk (resolved, cancelled…)' },
} as const

/** Tags on messages of a HITL conversation. */
export const MESSAGE_TAGS = {
  batonMessageId: { title: 'Baton message id', description: 'The same message on the desk' },
} as const

export type UserTag = keyof typeof USER_TAGS
export type ConversationTag = keyof typeof CONVERSATION_TAGS
export type MessageTag = keyof typeof MESSAGE_TAGS
