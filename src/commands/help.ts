import {Args, loadHelpClass, type Command} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {commandNotFoundError} from '../cli/command-not-found.js'

interface CommandSummary {
  id: string
  summary: string
}

export interface HelpResult {
  /** The command or topic asked about ("box add", "box"), or undefined for all of vm. */
  subject?: string
  /** The commands it covers: every visible command, those of a topic, or the one asked about. */
  commands: CommandSummary[]
  /** The flags of the command asked about, with their one-letter forms and summaries. */
  flags?: {name: string; char?: string; summary?: string}[]
}

/** "box:add" -> "box add": how users type ids. */
const spaced = (id: string): string => id.replaceAll(':', ' ')

export default class Help extends BaseCommand<HelpResult> {
  static override summary = 'Show help for vm or for one command.'
  static override description =
    'With no COMMAND, lists every command; "vm help box add" shows the usage, arguments and flags of one command, "vm help box" the commands of a topic. Same as "vm COMMAND --help".'

  static override strict = false
  static override examples = ['<%= config.bin %> help', '<%= config.bin %> help up', '<%= config.bin %> help box add']
  static override args = {
    command: Args.string({description: 'The command or topic to explain (words separated by spaces, e.g. "box add").'}),
  }

  async run(): Promise<HelpResult> {
    const {argv} = await this.parse(Help)
    const words = (argv as string[]).filter((word) => !word.startsWith('-'))
    const id = words.join(':')
    const visible = this.config.commands.filter((command) => command.hidden !== true)
    const command = id === '' ? undefined : this.config.findCommand(id)
    const topic = id === '' || command !== undefined ? undefined : this.config.findTopic(id)
    if (id !== '' && command === undefined && topic === undefined) {
      throw commandNotFoundError(
        spaced(id),
        visible.map((entry) => spaced(entry.id)),
      )
    }
    if (!this.jsonEnabled()) {
      const HelpClass = await loadHelpClass(this.config)
      await new HelpClass(this.config, this.config.pjson.oclif.helpOptions).showHelp(words)
    }
    const summarize = (entry: Command.Loadable): CommandSummary => ({
      id: spaced(entry.id),
      summary: entry.summary ?? entry.description ?? '',
    })
    if (command !== undefined) {
      const flags = Object.entries(command.flags)
        .filter(([, flag]) => flag.hidden !== true)
        .map(([name, flag]) => ({
          name,
          ...(flag.char === undefined ? {} : {char: flag.char}),
          ...(flag.summary === undefined ? {} : {summary: flag.summary}),
        }))
      return {subject: spaced(id), commands: [summarize(command)], flags}
    }
    const listed = topic === undefined ? visible : visible.filter((entry) => entry.id.startsWith(`${id}:`))
    return {...(topic === undefined ? {} : {subject: spaced(id)}), commands: listed.map(summarize)}
  }
}
