import {Flags} from '@oclif/core'

/** --provision-with, shared by vm up and vm provision. */
export const provisionWithFlag = Flags.string({
  summary: 'Run only these provisioners (names or types, comma-separated).',
  delimiter: ',',
  multiple: true,
})
