import {spawn} from 'node:child_process'

/** `text` as one word of a POSIX shell command line. */
export const shellWord = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`

/**
 * Runs `command` (a shell command line) under a pseudo-terminal (util-linux script), feeding
 * it what `feed` writes as keys (`shown` is what the terminal showed so far); resolves with
 * everything the terminal showed and the exit code. Killed after 60 s.
 */
export function inTerminal(
  command: string,
  options: {cwd: string; env: NodeJS.ProcessEnv},
  feed: (keys: (text: string) => void, shown: () => string) => Promise<void>,
): Promise<{code: number; output: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: options.cwd,
      env: {...process.env, NO_COLOR: '1', TERM: 'dumb', ...options.env},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, output})
    })
    feed(
      (text) => child.stdin.write(text),
      () => output,
    ).catch(reject)
  })
}
