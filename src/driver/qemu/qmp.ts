import {connect, type Socket} from 'node:net'

/**
 * A minimal QMP client: connect to the machine's socket, negotiate capabilities, run
 * commands one at a time. Events are ignored.
 */
export class QmpClient {
  private buffer = ''
  private waiting: Array<{resolve: (value: unknown) => void; reject: (error: Error) => void}> = []

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => this.receive(chunk))
    socket.on('close', () => this.failAll(new Error('QMP connection closed')))
    socket.on('error', (error) => this.failAll(error))
  }

  static async connect(path: string, timeoutMs = 3000): Promise<QmpClient> {
    const socket = connect(path)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`QMP socket ${path} did not answer within ${timeoutMs} ms`)), timeoutMs)
      socket.once('connect', () => (clearTimeout(timer), resolve()))
      socket.once('error', (error) => (clearTimeout(timer), reject(error)))
    })
    const client = new QmpClient(socket)
    await client.next() // greeting
    await client.execute('qmp_capabilities')
    return client
  }

  private receive(chunk: string): void {
    this.buffer += chunk
    let newline = this.buffer.indexOf('\n')
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline).trim()
      this.buffer = this.buffer.slice(newline + 1)
      newline = this.buffer.indexOf('\n')
      if (line === '') continue
      const message = JSON.parse(line) as {event?: string; error?: {class: string; desc: string}; return?: unknown; QMP?: unknown}
      if (message.event !== undefined) continue
      const waiter = this.waiting.shift()
      if (waiter === undefined) continue
      if (message.error !== undefined) waiter.reject(new Error(`QMP: ${message.error.class}: ${message.error.desc}`))
      else waiter.resolve(message.return ?? message.QMP)
    }
  }

  private failAll(error: Error): void {
    for (const waiter of this.waiting.splice(0)) waiter.reject(error)
  }

  private next(): Promise<unknown> {
    return new Promise((resolve, reject) => this.waiting.push({resolve, reject}))
  }

  /** Runs one QMP command and returns its "return" value. */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = this.next()
    this.socket.write(`${JSON.stringify(args === undefined ? {execute: command} : {execute: command, arguments: args})}\n`)
    return reply
  }

  close(): void {
    this.socket.destroy()
  }
}
