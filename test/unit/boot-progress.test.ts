import {describe, expect, it} from 'vitest'

import {BootProgress, bootLine, consoleText} from '../../src/cli/spinner.js'

function recorder(tty: boolean) {
  const writes: string[] = []
  let clock = 0
  const stream = {write: (text: string) => writes.push(text), isTTY: tty, columns: 60}
  const progress = new BootProgress(stream, {now: () => clock, redrawMs: 60_000, plainEveryMs: 5000})
  return {writes, progress, tick: (ms: number) => (clock += ms)}
}

describe('boot progress', () => {
  it('a console line is made safe: escape sequences dropped, control characters escaped, whitespace folded', () => {
    expect(consoleText('\u001B[0;32m  OK  \u001B[0m Started\tsshd\r')).toBe('OK Started sshd')
    expect(consoleText('evil \u001B]0;title\u0007 x')).toBe('evil \\x1b]0;title\\x07 x')
    expect(bootLine('web', 12_345, 'Freeing unused kernel memory')).toBe('[web] booting 12s: Freeing unused kernel memory')
    expect(bootLine('web', 0, '')).toBe('[web] booting 0s')
    expect(bootLine('web', 0, 'x'.repeat(100), 30)).toHaveLength(30)
  })

  it('not on a TTY: plain lines, one machine per line, no escape sequences, not more than one per machine every few seconds', () => {
    const {writes, progress, tick} = recorder(false)
    progress.update('web', 'Linux version 6.1')
    progress.update('db', 'Linux version 6.1')
    tick(1000)
    progress.update('web', 'virtio_blk')
    tick(5000)
    progress.update('web', 'dropbear')
    progress.update('db', 'Linux version 6.1') // nothing new: no line
    progress.done('web')
    progress.done('db')
    expect(writes).toEqual([
      '[web] booting 0s: Linux version 6.1\n',
      '[db] booting 0s: Linux version 6.1\n',
      '[web] booting 6s: dropbear\n',
    ])
    expect(writes.join('')).not.toContain('\u001B')
  })

  it('on a TTY: each machine keeps its own line, redrawn in place, and is erased when done', () => {
    const {writes, progress, tick} = recorder(true)
    progress.update('web', 'Linux version 6.1')
    progress.update('db', 'Booting')
    tick(3000)
    progress.update('web', 'Run /init')
    const last = writes.at(-1)!
    // Up two lines, clear, then one line per machine.
    expect(last).toBe('\u001B[2A\r\u001B[J[web] booting 3s: Run /init\n[db] booting 3s: Booting\n')
    progress.clear()
    expect(writes.at(-1)).toBe('\u001B[2A\r\u001B[J')
    progress.update('db', 'dropbear')
    expect(writes.at(-1)).toBe('[web] booting 3s: Run /init\n[db] booting 3s: dropbear\n')
    progress.done('web')
    expect(writes.at(-1)).toBe('\u001B[2A\r\u001B[J[db] booting 3s: dropbear\n')
    progress.done('db')
    expect(writes.at(-1)).toBe('\u001B[1A\r\u001B[J')
    progress.stop()
  })

  it('on a TTY: a line never wraps (the redraw counts on one row per machine)', () => {
    const {writes, progress} = recorder(true)
    progress.update('web', 'x'.repeat(200))
    expect(writes.at(-1)!.trimEnd().length).toBeLessThanOrEqual(59)
    progress.stop()
  })
})
