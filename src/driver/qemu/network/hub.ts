import {rmSync} from 'node:fs'
import net from 'node:net'

/**
 * The switch behind a private network: QEMU's `-netdev stream` connects each NIC to a Unix
 * socket and sends Ethernet frames, each preceded by its length as a 32-bit big-endian
 * number. The hub learns which connection each source MAC lives behind, sends unicast frames
 * there and floods the rest (broadcast, multicast, unknown destinations) to every other port.
 * No host interface is attached, so neither the host nor the internet can reach the network.
 */

const MAX_FRAME = 65_536 + 64

/** Splits a byte stream into length-prefixed frames. */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Buffer[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const frames: Buffer[] = []
    for (;;) {
      if (this.buffered.length < 4) break
      const length = this.buffered.readUInt32BE(0)
      if (length > MAX_FRAME) throw new Error(`frame of ${length} bytes is too large`)
      if (this.buffered.length < 4 + length) break
      frames.push(this.buffered.subarray(4, 4 + length))
      this.buffered = this.buffered.subarray(4 + length)
    }
    return frames
  }
}

export function encodeFrame(frame: Buffer): Buffer {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(frame.length, 0)
  return Buffer.concat([header, frame])
}

const macOf = (frame: Buffer, offset: number): string => frame.subarray(offset, offset + 6).toString('hex')

export interface Hub {
  server: net.Server
  ports(): number
  close(): Promise<void>
}

/** Listens on `socketPath` and switches frames between the connections. */
export function startHub(socketPath: string): Promise<Hub> {
  const ports = new Set<net.Socket>()
  const learned = new Map<string, net.Socket>()
  const server = net.createServer((socket) => {
    ports.add(socket)
    const reader = new FrameReader()
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[]
      try {
        frames = reader.push(chunk)
      } catch {
        socket.destroy()
        return
      }
      for (const frame of frames) {
        if (frame.length < 14) continue
        const source = macOf(frame, 6)
        // The group bit of the first byte marks broadcast and multicast sources as bogus.
        if ((frame[6]! & 1) === 0) learned.set(source, socket)
        const wire = encodeFrame(frame)
        const destination = (frame[0]! & 1) === 0 ? learned.get(macOf(frame, 0)) : undefined
        if (destination !== undefined && destination !== socket && !destination.destroyed) destination.write(wire)
        else if (destination === undefined) for (const port of ports) if (port !== socket && !port.destroyed) port.write(wire)
      }
    })
    const forget = (): void => {
      ports.delete(socket)
      for (const [mac, port] of learned) if (port === socket) learned.delete(mac)
    }
    socket.on('close', forget)
    socket.on('error', forget)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    rmSync(socketPath, {force: true})
    server.listen(socketPath, () => {
      server.off('error', reject)
      resolve({
        server,
        ports: () => ports.size,
        close: () =>
          new Promise<void>((done) => {
            for (const port of ports) port.destroy()
            server.close(() => done())
          }),
      })
    })
  })
}
