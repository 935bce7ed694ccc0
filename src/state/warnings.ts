/**
 * Warnings from layers that have no progress callback to report through (the global machine
 * index is read by many services). The CLI routes them into its own warnings (the --json
 * result's `warnings`, or stderr, escaped); outside the CLI they go to stderr.
 */
type WarningSink = (text: string) => void

let sink: WarningSink = (text) => {
  process.stderr.write(`Warning: ${JSON.stringify(text).slice(1, -1)}\n`)
}

export function reportWarning(text: string): void {
  sink(text)
}

export function setWarningSink(next: WarningSink): void {
  sink = next
}
