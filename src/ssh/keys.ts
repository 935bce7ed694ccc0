import {chmod, readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {runProgram} from '../process/run.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import {packageRoot} from '../state/package-root.js'
import {ensureStateDir} from '../state/private-dir.js'

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
  await ensureStateDir(dir)
  await writeFileAtomic(target, await readFile(insecureKeyPaths().privateKey), {mode: 0o600})
  return target
}

/** Makes a new ed25519 key pair at `file` (+ .pub), both mode 0600, in a private directory. */
export async function generateKeyPair(file: string, comment: string): Promise<string> {
  await ensureStateDir(path.dirname(file))
  await rm(file, {force: true})
  await rm(`${file}.pub`, {force: true})
  await runProgram('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    missingHint: 'Install OpenSSH (apt-get install openssh-client).',
  })
  await chmod(file, 0o600)
  await chmod(`${file}.pub`, 0o600)
  return (await readFile(`${file}.pub`, 'utf8')).trim()
}
