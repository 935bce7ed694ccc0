import {chmod, readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {runProgram} from '../process/run.js'
import {writeFileAtomic} from '../state/atomic-file.js'
import {packageRoot} from '../state/package-root.js'
import {ensureStateDir} from '../state/private-dir.js'

/** The well-known insecure key pair vm's own boxes trust for the first login (see boxes/README.md). */
export function insecureKeyPaths(): {privateKey: string; publicKey: string} {
  return keyPair('vmfile_insecure_key')
}

/**
 * The private keys offered for a machine's first login when the Vmfile names none, in the
 * order ssh tries them: vm's own, then Vagrant's published insecure keys (ed25519, then RSA),
 * which boxes packaged for Vagrant trust. All are public by design (boxes/README.md).
 */
export const INSECURE_KEY_NAMES = ['vmfile_insecure_key', 'vagrant_insecure_key_ed25519', 'vagrant_insecure_key_rsa'] as const

function keyPair(name: string): {privateKey: string; publicKey: string} {
  const dir = path.join(packageRoot(), 'boxes', 'keys')
  return {privateKey: path.join(dir, name), publicKey: path.join(dir, `${name}.pub`)}
}

/** Every insecure key pair, in INSECURE_KEY_NAMES order. */
export function insecureKeyPairs(): Array<{privateKey: string; publicKey: string}> {
  return INSECURE_KEY_NAMES.map((name) => keyPair(name))
}

/**
 * Usable copies of the insecure private keys, in INSECURE_KEY_NAMES order: git does not keep
 * file modes and OpenSSH refuses a private key others can read, so each is copied with mode
 * 0600 into `dir`.
 */
export async function insecurePrivateKeys(dir: string): Promise<string[]> {
  await ensureStateDir(dir)
  const copies: string[] = []
  for (const name of INSECURE_KEY_NAMES) {
    const target = path.join(dir, name)
    await writeFileAtomic(target, await readFile(keyPair(name).privateKey), {mode: 0o600})
    copies.push(target)
  }
  return copies
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
