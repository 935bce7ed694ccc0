/**
 * Every command, by id ("box add" is "box:add"), each loaded only when it runs.
 *
 * oclif's explicit command discovery reads COMMANDS from dist/commands.js (src/cli/commands-entry.ts),
 * which loads this module, bundled as CommonJS, through the V8 code cache. At run time the flags,
 * arguments and help of every command come from oclif.manifest.json, so a command's module (and
 * what it imports: YAML, the box store, the machine code) is imported only when that command
 * runs: `vm --version` and `vm validate` do not parse the code of `vm up`. Writing the manifest
 * needs the real classes: `oclif manifest` runs with VM_COMMAND_CLASSES=1 (see package.json and
 * scripts/), which makes COMMANDS the classes themselves (loadClasses).
 *
 * To add a command: one line below, `id: () => import('./commands/FILE.js'),`.
 */
const LOADERS = {
  // Shell completion, from @oclif/plugin-autocomplete: bundled like any command rather than
  // loaded as a plugin (finding and reading a plugin at every start-up costs ~20 ms). The
  // package exports none of its files, hence the path into node_modules.
  autocomplete: () => import('../node_modules/@oclif/plugin-autocomplete/lib/commands/autocomplete/index.js'),
  'autocomplete:create': () => import('../node_modules/@oclif/plugin-autocomplete/lib/commands/autocomplete/create.js'),
  'autocomplete:script': () => import('../node_modules/@oclif/plugin-autocomplete/lib/commands/autocomplete/script.js'),
  'box:add': () => import('./commands/box/add.js'),
  'box:catalog': () => import('./commands/box/catalog.js'),
  'box:list': () => import('./commands/box/list.js'),
  'box:login': () => import('./commands/box/login.js'),
  'box:logout': () => import('./commands/box/logout.js'),
  'box:outdated': () => import('./commands/box/outdated.js'),
  'box:prune': () => import('./commands/box/prune.js'),
  'box:push': () => import('./commands/box/push.js'),
  'box:remove': () => import('./commands/box/remove.js'),
  'box:repackage': () => import('./commands/box/repackage.js'),
  'box:update': () => import('./commands/box/update.js'),
  console: () => import('./commands/console.js'),
  cp: () => import('./commands/cp.js'),
  destroy: () => import('./commands/destroy.js'),
  'global-status': () => import('./commands/global-status.js'),
  halt: () => import('./commands/halt.js'),
  help: () => import('./commands/help.js'),
  init: () => import('./commands/init.js'),
  package: () => import('./commands/package.js'),
  port: () => import('./commands/port.js'),
  provision: () => import('./commands/provision.js'),
  reload: () => import('./commands/reload.js'),
  resume: () => import('./commands/resume.js'),
  rsync: () => import('./commands/rsync.js'),
  'snapshot:delete': () => import('./commands/snapshot/delete.js'),
  'snapshot:list': () => import('./commands/snapshot/list.js'),
  'snapshot:pop': () => import('./commands/snapshot/pop.js'),
  'snapshot:push': () => import('./commands/snapshot/push.js'),
  'snapshot:restore': () => import('./commands/snapshot/restore.js'),
  'snapshot:save': () => import('./commands/snapshot/save.js'),
  ssh: () => import('./commands/ssh.js'),
  'ssh-config': () => import('./commands/ssh-config.js'),
  status: () => import('./commands/status.js'),
  suspend: () => import('./commands/suspend.js'),
  up: () => import('./commands/up.js'),
  validate: () => import('./commands/validate.js'),
} satisfies Record<string, () => Promise<{default: RunnableCommand}>>

/** What oclif needs of a command class to run it. */
interface RunnableCommand {
  id: string
  plugin?: unknown
  run(argv?: string[], config?: unknown): Promise<unknown>
}

/** A stand-in that oclif runs like the command: it imports the real class, then runs it. */
function deferred(load: () => Promise<{default: RunnableCommand}>): RunnableCommand {
  return class DeferredCommand {
    static id = ''
    static plugin: unknown

    static async run(argv?: string[], config?: unknown): Promise<unknown> {
      const real = (await load()).default
      real.id = this.id
      real.plugin = this.plugin
      return real.run(argv, config)
    }
  }
}

/** The real command classes, every module loaded (for `oclif manifest`, which reads their flags). */
export async function loadClasses(): Promise<Record<string, RunnableCommand>> {
  const entries = await Promise.all(Object.entries(LOADERS).map(async ([id, load]) => [id, (await load()).default] as const))
  return Object.fromEntries(entries)
}

/** Every command as a stand-in that loads its module only when it runs. */
export function deferredCommands(): Record<string, RunnableCommand> {
  return Object.fromEntries(Object.entries(LOADERS).map(([id, load]) => [id, deferred(load)]))
}

export {execute} from '@oclif/core'
export {commandNotFound} from './cli/command-not-found.js'
