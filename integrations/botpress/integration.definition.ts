// The integration as Botpress sees it: Baton as a HITL provider. Everything a bot calls comes from
// the hitl interface 2.1.0 (createUser, startHitl, stopHitl, the hitlAssigned and hitlStopped
// events, the `hitl` channel); this file only adds what Baton needs around it.
import * as sdk from '@botpress/sdk'
import hitl from './bp_modules/hitl'
import { CONVERSATION_TAGS, MESSAGE_TAGS, USER_TAGS, configuration, handoffEntity } from './src/definitions'

export const INTEGRATION_NAME = 'baton-hitl'
export const INTEGRATION_VERSION = '0.1.0'

export default new sdk.IntegrationDefinition({
  name: INTEGRATION_NAME,
  version: INTEGRATION_VERSION,
  title: 'Baton',
  description: 'Hand conversations to human agents on a Baton desk (HITL)',
  readme: 'hub.md',
  icon: 'icon.svg',
  configuration,
  user: { tags: USER_TAGS },
  entities: { handoff: handoffEntity },
}).extend(hitl, (self) => ({
  entities: { hitlSession: self.entities.handoff },
  channels: {
    hitl: {
      title: 'Baton',
      description: 'A handoff on the Baton desk',
      conversation: { tags: CONVERSATION_TAGS },
      message: { tags: MESSAGE_TAGS },
    },
  },
}))
