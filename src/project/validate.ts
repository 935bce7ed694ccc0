/**
 * Moved: the Vmfile pipeline and its host warnings live in src/vmfile (loadProject,
 * validateProject, hostWarnings). This re-export remains only until src/machine/project.ts
 * imports hostWarnings from '../vmfile/index.js'; then this file is deleted.
 */
export {hostWarnings} from '../vmfile/host-warnings.js'
