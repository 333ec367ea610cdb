// The `hitl` interface as a package, in the shape `bp add` generates under bp_modules/ (see
// README.md: this registry's @botpress/cli cannot install interfaces, so it is written by hand
// from the local copy of the interface; `bp add` on a machine with Botpress access replaces it).
import * as sdk from '@botpress/sdk'
import hitl from '../../interfaces/hitl/interface.definition'

export default {
  type: 'interface',
  name: hitl.name,
  version: hitl.version,
  definition: {
    name: hitl.name,
    version: hitl.version,
    attributes: hitl.attributes,
    entities: hitl.entities,
    events: hitl.events,
    actions: hitl.actions,
    channels: hitl.channels,
  },
} satisfies sdk.InterfacePackage
