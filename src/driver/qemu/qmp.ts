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

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Connects to a QEMU's QMP socket, runs `work`, and always closes the connection (QEMU 7.2 serves one client at a time). */
export async function withQmp<T>(socket: string, work: (client: QmpClient) => Promise<T>): Promise<T> {
  const client = await QmpClient.connect(socket)
  try {
    return await work(client)
  } finally {
    client.close()
  }
}

interface JobInfo {
  id: string
  status: string
  error?: string
}

/**
 * Runs a QMP command that starts a job (snapshot-save, snapshot-load, snapshot-delete) and
 * waits for it: such a command answers {} at once even when the job will fail; the outcome is
 * in query-jobs. The concluded job is dismissed; its error, if any, is thrown.
 */
export async function runJob(client: QmpClient, command: string, args: Record<string, unknown>, timeoutMs = 600_000): Promise<void> {
  const id = String(args['job-id'])
  await client.execute(command, args)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const jobs = (await client.execute('query-jobs')) as JobInfo[]
    const job = jobs.find((candidate) => candidate.id === id)
    if (job === undefined) return
    if (job.status === 'concluded' || job.status === 'null') {
      await client.execute('job-dismiss', {id}).catch(() => undefined)
      if (job.error !== undefined) throw new Error(job.error)
      return
    }
    if (Date.now() > deadline) throw new Error(`${command} did not finish within ${Math.round(timeoutMs / 1000)} s`)
    await pause(50)
  }
}

/**
 * Waits until QEMU's run state (query-status) is no longer `state`; returns the new one. Asked
 * every 10 ms: a resume waits on this (the incoming state read) before the guest may continue,
 * and a query costs QEMU next to nothing.
 */
export async function waitWhileStatus(client: QmpClient, state: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const {status} = (await client.execute('query-status')) as {status: string}
    if (status !== state) return status
    if (Date.now() > deadline) throw new Error(`QEMU stayed in state "${state}" for ${Math.round(timeoutMs / 1000)} s`)
    await pause(10)
  }
}

interface MigrationInfo {
  status?: string
  'error-desc'?: string
}

/** Waits until an outgoing migration has completed; its failure is thrown with QEMU's reason. */
export async function waitForMigration(client: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = (await client.execute('query-migrate')) as MigrationInfo
    if (info.status === 'completed') return
    if (info.status === 'failed' || info.status === 'cancelled') throw new Error(info['error-desc'] ?? `migration ${info.status}`)
    if (Date.now() > deadline) throw new Error(`saving the state did not finish within ${Math.round(timeoutMs / 1000)} s`)
    await pause(50)
  }
}
