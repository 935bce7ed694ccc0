import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {vi} from 'vitest'

import {recordBoxUse} from '../../src/box/references.js'
import {readStoredBox, type BoxKey, type StoredBox} from '../../src/box/store.js'
import {machineId, machinePaths} from '../../src/state/machine-files.js'
import {qemuPaths} from '../../src/driver/qemu/files.js'
import {makeDisk} from './box-fixtures.js'

export const key = (version: string, name = 'org/box'): BoxKey => ({name, version, architecture: 'amd64', provider: 'libvirt'})

export interface Home {
  home: string
  root: string
  env: NodeJS.ProcessEnv
}

/** A VM_HOME whose store holds real boxes (a qcow2 disk each), set as this process's VM_HOME. */
export function storeWith(keys: BoxKey[]): Home {
  const home = mkdtempSync(path.join(tmpdir(), 'vm-users-'))
  const root = path.join(home, 'data', 'boxes')
  for (const box of keys) {
    const dir = path.join(root, box.name.replace('/', '-VAGRANTSLASH-'), box.version, box.architecture, box.provider)
    makeDisk(path.join(dir, 'box.img'))
    writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({provider: box.provider, format: 'qcow2'}))
  }
  vi.stubEnv('VM_HOME', home)
  return {home, root, env: {VM_HOME: home}}
}

export async function stored(box: BoxKey, root: string): Promise<StoredBox> {
  const found = await readStoredBox(box, root)
  if (found === undefined) throw new Error(`no ${box.name} ${box.version}`)
  return found
}

/**
 * A machine as `vm up` creates it, without booting: the store's reference (the very call
 * createMachine makes), a real qcow2 overlay on the box's disk, and machine.json.
 */
export async function createMachine(project: string, name: string, box: StoredBox, root: string): Promise<string> {
  const paths = machinePaths(project, name)
  mkdirSync(paths.dir, {recursive: true})
  const id = machineId(project, name)
  await recordBoxUse(
    box,
    {id, name, projectDir: project, overlays: [qemuPaths(paths.dir, undefined).overlay(0)]},
    async () => {
      execFileSync('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-F',
        'qcow2',
        '-b',
        box.disks[0]!.path,
        qemuPaths(paths.dir, undefined).overlay(0),
      ])
    },
    root,
  )
  const pinned = {
    name: box.name,
    version: box.version,
    architecture: box.architecture,
    provider: box.provider,
    disks: box.disks.map((disk) => ({path: disk.path, format: disk.format})),
  }
  const config = {name, networks: [], forwardedPorts: [], syncedFolders: [], provision: [], ssh: {port: 22}}
  const now = new Date().toISOString()
  writeFileSync(
    paths.record,
    JSON.stringify({
      format: 1,
      id,
      name,
      projectDir: project,
      createdAt: now,
      box: pinned,
      config,
      macs: [],
      lastState: 'poweroff',
      updatedAt: now,
    }),
  )
  return id
}

export function project(home: string, label: string): string {
  const dir = path.join(home, label)
  mkdirSync(dir, {recursive: true})
  writeFileSync(path.join(dir, 'Vmfile'), 'box: org/box\n')
  return dir
}
