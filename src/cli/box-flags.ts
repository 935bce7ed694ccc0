import {Flags} from '@oclif/core'

/** Flags shared by commands that download boxes. */
export const downloadFlags = {
  insecure: Flags.boolean({summary: 'Do not verify HTTPS certificates.'}),
  cacert: Flags.file({summary: 'Trust this CA bundle (PEM) for HTTPS.', exists: true}),
}

/**
 * Runs `work` with an AbortSignal that fires on Ctrl-C, so a download stops cleanly (the
 * service removes partial boxes) instead of the process dying mid-write.
 */
export async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const abort = () => controller.abort()
  process.once('SIGINT', abort)
  process.once('SIGTERM', abort)
  try {
    return await work(controller.signal)
  } finally {
    process.off('SIGINT', abort)
    process.off('SIGTERM', abort)
  }
}
