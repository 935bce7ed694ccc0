import {setTimeout as sleep} from 'node:timers/promises'

import type {Virsh} from './virsh.js'

/** What `virsh domstate --reason` says: the state and why ("shut off (shutdown)"). */
export interface DomainState {
  state: 'running' | 'paused' | 'shut off' | 'crashed' | 'missing' | string
  reason: string | undefined
}

/** Reads `virsh -q domstate --reason DOMAIN` output, e.g. "running (booted)" or "shut off (destroyed)". */
export function parseDomState(text: string): DomainState {
  const match = /^\s*([a-z ]+?)\s*(?:\(([^)]*)\))?\s*$/m.exec(text.trim())
  return {state: match?.[1] ?? text.trim(), reason: match?.[2]}
}

/** The domain's state now (never remembered): a domain that does not exist is 'missing'. `timeoutMs` bounds a host that does not answer. */
export async function domainState(virsh: Virsh, domain: string, timeoutMs?: number): Promise<DomainState> {
  const result = await virsh.runUnless('domain-missing', ['domstate', '--reason', domain], {
    doing: `read the state of domain ${domain}`,
    timeoutMs,
  })
  return result === undefined ? {state: 'missing', reason: undefined} : parseDomState(result.stdout)
}

/** A domain that runs (or is paused, i.e. holds its QEMU). */
export function isAlive(state: DomainState): boolean {
  return state.state === 'running' || state.state === 'paused' || state.state === 'in shutdown' || state.state === 'pmsuspended'
}

/** Polls until the domain no longer runs or `ms` pass; true when it stopped. */
export async function waitUntilStopped(virsh: Virsh, domain: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (!isAlive(await domainState(virsh, domain))) return true
    if (Date.now() >= deadline) return false
    await sleep(500)
  }
}

/** "127.0.0.1:0" (virsh vncdisplay: host and display number) as host:port. */
export function vncAddress(text: string): string | undefined {
  const match = /^\s*(\S*):(\d+)\s*$/m.exec(text)
  if (match === null) return undefined
  const host = match[1] === '' ? '127.0.0.1' : match[1]!
  return `${host}:${5900 + Number(match[2])}`
}
