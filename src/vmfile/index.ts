/** The Vmfile: where it is, what it says, what it means once checked and given defaults. */
export {findVmfile, locateVmfile, parseVmfile, readVmfile, VMFILE_NAME} from './load.js'
export {formatProblem, validateDocument, type Problem} from './validate.js'
export {applyDefaults} from './defaults.js'
export {hostWarnings} from './host-warnings.js'
export {
  checkVmfile,
  displayName,
  invalidVmfileError,
  loadProject,
  resolveVmfileText,
  validateProject,
  type ValidateResult,
} from './project.js'
export type * from './types.js'
