import {chmod, mkdir, readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {runProgram} from '../process/run.js'
import {packageRoot} from '../state/package-root.js'

/** The well-known insecure key pair every box trusts for the first login (see boxes/README.md). */
export function insecureKeyPaths(): {privateKey: string; publicKey: string} {
  const dir = path.join(packageRoot(), 'boxes', 'keys')
  return {privateKey: path.join(dir, 'vmfile_insecure_key'), publicKey: path.join(dir, 'vmfile_insecure_key.pub')}
}

/**
 * A usable copy of the insecure private key: git does not keep file modes and OpenSSH refuses
 * a private key others can read, so it is copied with mode 0600 into `dir`.
 */
export async function insecurePrivateKey(dir: string): Promise<string> {
  const target = path.join(dir, 'vmfile_insecure_key')
  await mkdir(dir, {recursive: true})
  const {writeFile} = await import('node:fs/promises')
  await writeFile(target, await readFile(insecureKeyPaths().privateKey), {mode: 0o600})
  await chmod(target, 0o600)
  return target
}

/** Makes a new ed25519 key pair at `file` (+ .pub); the private key has mode 0600. */
export async function generateKeyPair(file: string, comment: string): Promise<string> {
  await mkdir(path.dirname(file), {recursive: true})
  await rm(file, {force: true})
  await rm(`${file}.pub`, {force: true})
  await runProgram('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    missingHint: 'Install OpenSSH (apt-get install openssh-client).',
  })
  await chmod(file, 0o600)
  return (await readFile(`${file}.pub`, 'utf8')).trim()
}
