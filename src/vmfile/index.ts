/**
 * The Vmfile: what the rest of vm may use. loadProject is the one way from a Vmfile to a
 * project (the steps it runs in order stay inside this folder); checkVmfile and parseVmfile
 * serve tests and tools that check text without a project.
 */
export {parseVmfile, VMFILE_NAME} from './load.js'
export {formatProblem, type Problem} from './validate.js'
export {defaultOf} from './defaults.js'
export {DEFAULT_SYNCED_FOLDER} from './schema.js'
export {hostWarnings} from './host-warnings.js'
export {
  checkVmfile,
  displayName,
  engineProblemsError,
  invalidVmfileError,
  loadProject,
  resolveVmfileText,
  validateProject,
  type ValidateResult,
} from './project.js'
export type * from './types.js'
