/**
 * Ctrl-C (SIGINT) and SIGTERM for a command that may have work to undo. Outside a hold, a signal
 * ends the process at once, as it does by default. Inside one (e.g. while a machine vm started is
 * booting), it aborts `signal` so the holder can undo its work; a second signal ends the process.
 */
export interface Interruption {
  signal: AbortSignal
  /** Marks work in progress that must be undone on a signal; call the returned function when done. */
  hold(): () => void
}

export class InterruptHandler implements Interruption {
  private readonly controller = new AbortController()
  private holds = 0
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.holds === 0 || this.controller.signal.aborted) {
      this.dispose()
      process.kill(process.pid, signal)
      return
    }
    this.controller.abort(signal)
  }

  constructor() {
    process.on('SIGINT', this.onSignal)
    process.on('SIGTERM', this.onSignal)
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  hold(): () => void {
    this.holds++
    let released = false
    return () => {
      if (!released) this.holds--
      released = true
    }
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal)
    process.off('SIGTERM', this.onSignal)
  }
}
