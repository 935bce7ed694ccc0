const UNITS: Record<string, number> = {'': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024}

/**
 * Parses a size into MiB. A bare number is MiB; a string may carry K, M, G or T (optionally
 * followed by B or iB, any case). Returns undefined when the text is not a size.
 */
export function parseSizeMiB(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.round(value) : undefined
  if (typeof value !== 'string') return undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value)
  if (match === null) return undefined
  const amount = Number(match[1]) * (UNITS[(match[2] ?? '').toLowerCase()] ?? Number.NaN)
  if (!Number.isFinite(amount) || amount <= 0) return undefined
  return Math.round(amount)
}

/** 1536 -> "1.5G", 512 -> "512M". */
export function formatSizeMiB(mib: number): string {
  if (mib >= 1024 && mib % 256 === 0) return `${mib / 1024}G`
  return `${mib}M`
}
