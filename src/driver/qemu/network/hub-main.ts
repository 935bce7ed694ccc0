// The private-network switch, run detached by `vm up`: node dist/hub.js SOCKET LOCKFILE.
// It exits once no machine has been connected for a while, under the network's lock, so a
// `vm up` that holds the lock either finds it running or starts a new one.
import {existsSync, rmSync} from 'node:fs'

import {acquireFileLock} from '../../../state/file-lock.js'
import {startHub} from './hub.js'

const IDLE_MS = Number(process.env.VM_HUB_IDLE_MS ?? 15_000)

const [socketPath, lockFile] = process.argv.slice(2)
if (socketPath === undefined || lockFile === undefined) {
  console.error('usage: hub.js SOCKET LOCKFILE')
  process.exit(2)
}

process.title = 'vm-network-hub'
const hub = await startHub(socketPath)
console.log(`${new Date().toISOString()} hub ${process.pid} listening on ${socketPath}`)
let idleSince = Date.now()

const timer = setInterval(() => {
  void (async () => {
    if (hub.ports() > 0) {
      idleSince = Date.now()
      return
    }
    if (Date.now() - idleSince < IDLE_MS) return
    // The runtime directory is gone (its owner removed it): nothing to hand over, just stop.
    if (!existsSync(socketPath)) process.exit(0)
    const unlock = await acquireFileLock(lockFile)
    try {
      if (hub.ports() > 0) return
      clearInterval(timer)
      rmSync(socketPath, {force: true})
      await hub.close()
      console.log(`${new Date().toISOString()} hub ${process.pid} idle, exiting`)
    } finally {
      await unlock()
    }
    process.exit(0)
  })()
}, 1000)
