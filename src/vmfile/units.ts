const UNITS: Record<string, number> = {'': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024}

/** The largest size vm accepts: 1 PiB, in MiB (far above any machine, far below float trouble). */
export const MAX_SIZE_MIB = 1024 ** 3

/**
 * The exact amount of a size in MiB, before rounding (1K is 1/1024). A bare number is MiB; a
 * string may carry K, M, G or T (optionally followed by B or iB, any case). Undefined when the
 * value is not a size at all.
 */
export function sizeAmountMiB(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value : undefined
  if (typeof value !== 'string') return undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value)
  if (match === null) return undefined
  const amount = Number(match[1]) * (UNITS[(match[2] ?? '').toLowerCase()] ?? Number.NaN)
  return Number.isFinite(amount) && amount > 0 ? amount : undefined
}

/**
 * Parses a size into whole MiB. Undefined when the value is not a size, or is below 1 MiB or
 * above MAX_SIZE_MIB (a size never rounds to 0).
 */
export function parseSizeMiB(value: unknown): number | undefined {
  const amount = sizeAmountMiB(value)
  if (amount === undefined || amount < 1 || amount > MAX_SIZE_MIB) return undefined
  return Math.round(amount)
}

/** 1536 -> "1.5G", 512 -> "512M". */
export function formatSizeMiB(mib: number): string {
  if (mib >= 1024 * 1024 && mib % (256 * 1024) === 0) return `${mib / 1024 / 1024}T`
  if (mib >= 1024 && mib % 256 === 0) return `${mib / 1024}G`
  return `${mib}M`
}
