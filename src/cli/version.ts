import {readFileSync} from 'node:fs'
import {arch, platform} from 'node:os'

/**
 * `vm --version` without loading oclif: the same line oclif prints (its config.userAgent,
 * "vmfile/0.1.0 linux-x64 node-v20.20.2"; "wsl" for the platform under WSL), read from the
 * package.json next to `bin/`. bin/run.js takes this path only when --version comes first,
 * which is when oclif would print the version.
 */
export async function printVersion(packageJson: URL): Promise<void> {
  const {name, version} = JSON.parse(readFileSync(packageJson, 'utf8')) as {name: string; version: string}
  const {isWsl} = await import('wsl-utils')
  const machine = arch() === 'ia32' ? 'x86' : arch()
  process.stdout.write(`${name}/${version} ${isWsl ? 'wsl' : platform()}-${machine} node-${process.version}\n`)
}
