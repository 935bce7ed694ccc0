import BoxAdd from './commands/box/add.js'
import BoxCatalog from './commands/box/catalog.js'
import BoxList from './commands/box/list.js'
import BoxOutdated from './commands/box/outdated.js'
import BoxPrune from './commands/box/prune.js'
import BoxRemove from './commands/box/remove.js'
import BoxRepackage from './commands/box/repackage.js'
import BoxUpdate from './commands/box/update.js'
import Destroy from './commands/destroy.js'
import GlobalStatus from './commands/global-status.js'
import Halt from './commands/halt.js'
import Init from './commands/init.js'
import Port from './commands/port.js'
import Provision from './commands/provision.js'
import Reload from './commands/reload.js'
import Resume from './commands/resume.js'
import Rsync from './commands/rsync.js'
import SnapshotDelete from './commands/snapshot/delete.js'
import SnapshotList from './commands/snapshot/list.js'
import SnapshotPop from './commands/snapshot/pop.js'
import SnapshotPush from './commands/snapshot/push.js'
import SnapshotRestore from './commands/snapshot/restore.js'
import SnapshotSave from './commands/snapshot/save.js'
import Ssh from './commands/ssh.js'
import SshConfig from './commands/ssh-config.js'
import Status from './commands/status.js'
import Suspend from './commands/suspend.js'
import Up from './commands/up.js'
import Validate from './commands/validate.js'

/**
 * Every command, by id ("box add" is "box:add"). oclif's explicit command discovery reads this
 * object from the bundle, so start-up imports one file instead of globbing command files.
 */
export const COMMANDS = {
  'box:add': BoxAdd,
  'box:catalog': BoxCatalog,
  'box:list': BoxList,
  'box:outdated': BoxOutdated,
  'box:prune': BoxPrune,
  'box:remove': BoxRemove,
  'box:repackage': BoxRepackage,
  'box:update': BoxUpdate,
  destroy: Destroy,
  'global-status': GlobalStatus,
  halt: Halt,
  init: Init,
  port: Port,
  provision: Provision,
  reload: Reload,
  resume: Resume,
  rsync: Rsync,
  'snapshot:delete': SnapshotDelete,
  'snapshot:list': SnapshotList,
  'snapshot:pop': SnapshotPop,
  'snapshot:push': SnapshotPush,
  'snapshot:restore': SnapshotRestore,
  'snapshot:save': SnapshotSave,
  ssh: Ssh,
  'ssh-config': SshConfig,
  status: Status,
  suspend: Suspend,
  up: Up,
  validate: Validate,
}

export {execute} from '@oclif/core'
export {commandNotFound} from './cli/command-not-found.js'
