import {constants} from 'node:fs'
import {access, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {UserError} from '../../errors/errors.js'
import {runProgram} from '../../process/run.js'
import {writeFileAtomic} from '../../state/atomic-file.js'
import type {Accelerator} from './spec.js'

export interface KvmProbe {
  usable: boolean
  /** Why KVM cannot be used (absent, not permitted, does not run a guest). */
  reason: string
  /** Milliseconds the probe took. */
  ms: number
}

export interface AccelChoice {
  accel: Accelerator
  warning?: string
}

/** auto: KVM when it works, else TCG with a warning; kvm forced and unusable is an error. */
export function chooseAccelerator(requested: 'auto' | Accelerator, kvm: KvmProbe): AccelChoice {
  if (requested === 'tcg') return {accel: 'tcg'}
  if (kvm.usable) return {accel: 'kvm'}
  if (requested === 'kvm') {
    throw new UserError(`KVM was asked for (accel: kvm) but cannot be used: ${kvm.reason}`, {
      code: 'KVM_UNUSABLE',
      hint: 'Set "accel: auto" or "accel: tcg" in the Vmfile to use software emulation, or fix KVM access (the kvm group, /dev/kvm permissions, virtualization enabled in the firmware).',
    })
  }
  return {accel: 'tcg', warning: `KVM cannot be used (${kvm.reason}); using TCG software emulation, which is much slower.`}
}

/** The code the probe guest writes to QEMU's isa-debug-exit port; QEMU exits with (code << 1) | 1. */
const PROBE_CODE = 0x2a
export const PROBE_EXIT = (PROBE_CODE << 1) | 1

/** kvm-probe.S assembled: real mode -> protected mode -> paging + long mode -> out 0xf4. */
const PROBE_PROGRAM =
  'fa2e660f0116a8000f20c06683c8010f22c066ea1a000f00080066b810008ed88ec08ed0bf0010000031c0b9000c0000f3abc70500100000' +
  '03200000c7050020000003300000c70500300000830000000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f' +
  '20c00d000000800f22c0ea81000f001800b02ae6f4f466900000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf00' +
  '1f0088000f000000'
/** At the reset vector (0xFFF0): jmp to offset 0. */
const RESET_JUMP = 'e90d00'

/**
 * The 64 KiB firmware image of the probe guest: it proves that a vCPU runs 64-bit code with
 * paging, as a Linux kernel needs, in a few milliseconds.
 */
export function probeFirmware(): Buffer {
  const rom = Buffer.alloc(0x10000, 0xf4) // hlt everywhere else
  Buffer.from(PROBE_PROGRAM, 'hex').copy(rom, 0)
  Buffer.from(RESET_JUMP, 'hex').copy(rom, 0xfff0)
  return rom
}

/** Runs the probe guest under `accel`; resolves with whether it exited as expected in time. */
export async function runProbeGuest(qemuBinary: string, accel: Accelerator, timeoutMs: number): Promise<{ok: boolean; detail: string}> {
  // A fresh directory of its own (mkdtemp, mode 0700): a predictable name in /tmp could be taken by another user first.
  const dir = await mkdtemp(path.join(tmpdir(), 'vm-probe-'))
  const rom = path.join(dir, 'probe.rom')
  try {
    await writeFile(rom, probeFirmware(), {flag: 'wx'})
    const args = ['-machine', `pc,accel=${accel}`, '-nodefaults', '-no-user-config', '-display', 'none', '-m', '16']
    args.push('-bios', rom, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04')
    await runProgram(qemuBinary, args, {timeoutMs, okCodes: [PROBE_EXIT]})
    return {ok: true, detail: 'ran a guest'}
  } catch (error) {
    const message = (error as Error).message
    return {ok: false, detail: message.includes('timed out') ? `a KVM vCPU did not run a test guest within ${timeoutMs} ms` : message}
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

async function bootId(): Promise<string> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim()
  } catch {
    return 'unknown'
  }
}

/**
 * Whether KVM is present, permitted and actually runs a guest.
 * The probe guest enters long mode: hosts have been seen where a real-mode guest runs under
 * KVM but a 64-bit one never does (the vCPU spins), and only the latter matters. The answer is cached per host
 * boot in `cacheFile` (KVM does not start or stop working without a reboot, module reloads aside).
 */
export async function probeKvm(qemuBinary: string, cacheFile: string, timeoutMs = 1500, device = '/dev/kvm'): Promise<KvmProbe> {
  const boot = await bootId()
  try {
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as {boot: string; device: string; probe: KvmProbe}
    if (cached.boot === boot && cached.device === device) return cached.probe
  } catch {
    // no cache yet
  }
  const start = Date.now()
  let probe: KvmProbe
  try {
    await access(device, constants.R_OK | constants.W_OK)
    const result = await runProbeGuest(qemuBinary, 'kvm', timeoutMs)
    probe = {usable: result.ok, reason: result.ok ? 'KVM works' : result.detail, ms: Date.now() - start}
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const reason = code === 'ENOENT' ? `${device} does not exist` : `${device} is not readable and writable by this user (${code})`
    probe = {usable: false, reason, ms: Date.now() - start}
  }
  await mkdir(path.dirname(cacheFile), {recursive: true})
  await writeFileAtomic(cacheFile, JSON.stringify({boot, device, probe}), {mode: 0o644})
  return probe
}
