import {homedir} from 'node:os'
import path from 'node:path'

/**
 * Where vm keeps things. Per-user data (boxes, keys), caches (downloads, probes) and config
 * follow the XDG base directories; VM_HOME moves them all under one directory, and each has
 * its own variable. Project state lives in the project's .vm/ directory.
 */
export interface VmPaths {
  data: string
  cache: string
  config: string
  /** Short-lived sockets and leases; kept short because Unix socket paths max out at 108 bytes. */
  runtime: string
  boxes: string
  downloads: string
  keys: string
}

function xdg(env: NodeJS.ProcessEnv, variable: string, fallback: string): string {
  const value = env[variable]
  return value !== undefined && path.isAbsolute(value) ? path.join(value, 'vmfile') : path.join(homedir(), fallback, 'vmfile')
}

export function vmPaths(env: NodeJS.ProcessEnv = process.env): VmPaths {
  const home = env.VM_HOME === undefined || env.VM_HOME === '' ? undefined : path.resolve(env.VM_HOME)
  const pick = (own: string, sub: string, xdgVariable: string, fallback: string): string => {
    const value = env[own]
    if (value !== undefined && value !== '') return path.resolve(value)
    return home === undefined ? xdg(env, xdgVariable, fallback) : path.join(home, sub)
  }
  const data = pick('VM_DATA_DIR', 'data', 'XDG_DATA_HOME', '.local/share')
  const cache = pick('VM_CACHE_DIR', 'cache', 'XDG_CACHE_HOME', '.cache')
  const config = pick('VM_CONFIG_DIR', 'config', 'XDG_CONFIG_HOME', '.config')
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  const runtimeBase =
    env.XDG_RUNTIME_DIR !== undefined && path.isAbsolute(env.XDG_RUNTIME_DIR)
      ? path.join(env.XDG_RUNTIME_DIR, 'vmfile')
      : `/tmp/vmfile-${uid}`
  const runtime =
    env.VM_RUNTIME_DIR !== undefined && env.VM_RUNTIME_DIR !== ''
      ? path.resolve(env.VM_RUNTIME_DIR)
      : home === undefined
        ? runtimeBase
        : path.join(home, 'run')
  return {
    data,
    cache,
    config,
    runtime,
    boxes: env.VM_BOXES_DIR !== undefined && env.VM_BOXES_DIR !== '' ? path.resolve(env.VM_BOXES_DIR) : path.join(data, 'boxes'),
    downloads: path.join(cache, 'downloads'),
    keys: path.join(data, 'keys'),
  }
}

/** The project's state directory, like Vagrant's .vagrant/. */
export const PROJECT_STATE_DIR = '.vm'

export function projectStateDir(projectDir: string): string {
  return path.join(projectDir, PROJECT_STATE_DIR)
}

export function machineStateDir(projectDir: string, machine: string): string {
  return path.join(projectDir, PROJECT_STATE_DIR, 'machines', machine)
}
