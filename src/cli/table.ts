import {escapeControl} from './terminal-text.js'

/**
 * A plain text table, one string per line: columns padded to their widest cell, two spaces
 * apart. Cells are escaped first (a newline in a value cannot break the table) so the widths
 * are those of what is printed.
 */
export function renderTable(headers: string[], rows: string[][]): string[] {
  const cells = rows.map((row) => row.map((cell) => escapeControl(cell)))
  const widths = headers.map((header, column) => Math.max(header.length, ...cells.map((row) => (row[column] ?? '').length)))
  const line = (values: string[]) =>
    values
      .map((cell, column) => (column === values.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(headers), ...cells.map(line)]
}
